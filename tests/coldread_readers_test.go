package tests

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestColdReadByReaders: a file of random bytes with a hole and a short
// last chunk, read cold (after a remount) by the readers the benchmark
// times, cat, dd bs=1M and rsync --whole-file: each gets the file's bytes
// (the daemon reads the records straight into the kernel's requests).
func TestColdReadByReaders(t *testing.T) {
	needTool(t, "cmp", "diffutils")
	needTool(t, "rsync", "rsync")
	base, pool, _ := newPoolDirs(t, 2, "1")
	mnt := mountNew(t, base, pool)
	ref := filepath.Join(base, "ref")
	data := randomFile(t, ref, 48<<20+5000)
	clear(data[20<<20 : 20<<20+256<<10]) // two chunks of zeros: a hole
	writeFile(t, ref, data)
	mustRun(t, "", nil, "cp", ref, filepath.Join(mnt, "f"))
	snapfsOK(t, "-p", pool, "sync")
	for _, reader := range []struct {
		name string
		cmd  func(src, dst string) []string
	}{
		{"cat", func(src, dst string) []string { return []string{"sh", "-c", `cat "$0" > "$1"`, src, dst} }},
		{"dd", func(src, dst string) []string {
			return []string{"dd", "if=" + src, "of=" + dst, "bs=1M", "status=none"}
		}},
		{"rsync", func(src, dst string) []string { return []string{"rsync", "--whole-file", src, dst} }},
	} {
		t.Run(reader.name, func(t *testing.T) {
			umount(t, pool, mnt)
			mountAt(t, pool, "vol", mnt)
			out := filepath.Join(base, "out-"+reader.name)
			c := reader.cmd(filepath.Join(mnt, "f"), out)
			mustRun(t, "", nil, c[0], c[1:]...)
			mustRun(t, "", nil, "cmp", ref, out)
		})
	}
}

// TestColdReadFlippedByte: one byte of one record flipped on the only
// copy. A cold dd or cat of the file fails with EIO, and what it wrote
// before failing is the file's bytes: no byte of the bad record, nor any
// other unverified byte, reaches a reader. The other files read.
func TestColdReadFlippedByte(t *testing.T) {
	base, pool, disks := newPoolDirs(t, 1, "1")
	mnt := mountNew(t, base, pool)
	data := randomFile(t, filepath.Join(mnt, "f"), 8<<20)
	other := randomFile(t, filepath.Join(mnt, "g"), 1<<20)
	snapfsOK(t, "-p", pool, "sync")
	umount(t, pool, mnt)
	flipOneRecord(t, disks[0], 20) // one of f's 64 chunks, g's start at 64
	for _, reader := range []string{"dd", "cat"} {
		t.Run(reader, func(t *testing.T) {
			mountAt(t, pool, "vol", mnt)
			defer umount(t, pool, mnt)
			out := filepath.Join(base, "out-"+reader)
			var r result
			if reader == "dd" {
				r = run(t, "", nil, "dd", "if="+filepath.Join(mnt, "f"), "of="+out, "bs=1M", "status=none")
			} else {
				r = run(t, "", nil, "sh", "-c", `cat "$0" > "$1"`, filepath.Join(mnt, "f"), out)
			}
			if r.err == nil || !strings.Contains(r.stderr, "Input/output error") {
				t.Fatalf("%s of a file with a bad record: %v, stderr %q; want EIO", reader, r.err, r.stderr)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) >= len(data) || !bytes.Equal(got, data[:len(got)]) {
				t.Fatalf("%s wrote %d bytes before EIO; the file's first bytes: %v", reader, len(got), bytes.Equal(got, data[:min(len(got), len(data))]))
			}
			g, err := os.ReadFile(filepath.Join(mnt, "g"))
			if err != nil || !bytes.Equal(g, other) {
				t.Fatalf("the other file: %v", err)
			}
		})
	}
}

// flipOneRecord flips one payload byte of the k-th record (from 0) in
// the packs of member directory disk.
func flipOneRecord(t *testing.T, disk string, k int) {
	t.Helper()
	packs, _ := filepath.Glob(filepath.Join(disk, "packs", "*.pack"))
	for _, p := range packs {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for off := 0; off+recordHeader <= len(b); {
			if string(b[off:off+4]) != "SNPK" {
				off += 4096
				continue
			}
			stored := int(binary.LittleEndian.Uint32(b[off+60:]))
			if k == 0 {
				b[off+recordHeader+stored/3] ^= 0x42
				if err := os.WriteFile(p, b, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			k--
			off += (recordHeader + stored + 4095) / 4096 * 4096
		}
	}
	t.Fatalf("fewer records than that in %s", disk)
}
