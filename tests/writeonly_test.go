package tests

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Write-only opens are replied with FOPEN_DIRECT_IO on mounts without the
// kernel writeback cache (fs/node.go, writeOnlyDirect): their writes skip
// the page cache, and the kernel no longer asks for security.capability
// before the first write of each file. These tests hold what the page
// cache path gave: other opens and mappings of the file see the bytes, and
// a write removes file capabilities as on ext4.

// testWriteOnlyCoherence: bytes written through a write-only descriptor
// are what a read of another open, and a shared mapping made before the
// write, return; the size grows as the writes extend the file.
func testWriteOnlyCoherence(t *testing.T, dir string) {
	p := filepath.Join(dir, "f")
	old := pattern(3*4096, 1)
	writeFile(t, p, old)

	rw, err := os.OpenFile(p, os.O_RDWR, 0)
	check(t, err)
	defer rw.Close()
	m, err := unix.Mmap(int(rw.Fd()), 0, len(old), unix.PROT_READ, unix.MAP_SHARED)
	check(t, err)
	defer unix.Munmap(m)
	got := make([]byte, len(old))
	if _, err := rw.ReadAt(got, 0); err != nil || !bytes.Equal(got, old) || !bytes.Equal(m, old) {
		t.Fatalf("before the write: read err %v, equal %v, mapping equal %v", err, bytes.Equal(got, old), bytes.Equal(m, old))
	}

	wo, err := os.OpenFile(p, os.O_WRONLY, 0)
	check(t, err)
	defer wo.Close()
	mid := pattern(100, 2)
	if _, err := wo.WriteAt(mid, 4000); err != nil { // across the first page boundary
		t.Fatal(err)
	}
	want := append([]byte(nil), old...)
	copy(want[4000:], mid)
	if _, err := rw.ReadAt(got, 0); err != nil || !bytes.Equal(got, want) {
		t.Errorf("read through another open after a write-only write: %s (err %v)", describeDiff(want, got), err)
	}
	if !bytes.Equal(m, want) {
		t.Errorf("shared mapping after a write-only write: %s", describeDiff(want, m))
	}

	tail := pattern(5000, 3)
	if _, err := wo.WriteAt(tail, int64(len(old))); err != nil { // extends the file
		t.Fatal(err)
	}
	want = append(want, tail...)
	if sz := stat(t, p).Size; sz != int64(len(want)) {
		t.Errorf("size after an extending write-only write: %d, want %d", sz, len(want))
	}
	got = make([]byte, len(want))
	if n, err := rw.ReadAt(got, 0); n != len(want) || !bytes.Equal(got, want) {
		t.Errorf("read after an extending write-only write: %d bytes, err %v: %s", n, err, describeDiff(want, got))
	}

	ap, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
	check(t, err)
	defer ap.Close()
	if _, err := ap.Write([]byte("appended")); err != nil {
		t.Fatal(err)
	}
	want = append(want, "appended"...)
	check(t, ap.Close())
	check(t, wo.Close())
	wantContent(t, p, want)
}

// testWriteDropsCapability: a write removes security.capability, as ext4's
// file_remove_privs does for any writer, through a write-only open (the
// daemon's work, fs/handle.go) and a read-write one (the kernel's); a
// chmod does not.
func testWriteDropsCapability(t *testing.T, dir string) {
	needRootUser(t)
	needTool(t, "setcap", "libcap2-bin")
	needTool(t, "getcap", "libcap2-bin")
	for _, tc := range []struct {
		name string
		flag int
	}{
		{"write-only", os.O_WRONLY},
		{"write-only append", os.O_WRONLY | os.O_APPEND},
		{"read-write", os.O_RDWR},
	} {
		p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "-"))
		writeFile(t, p, []byte("binary"))
		mustRun(t, dir, nil, "setcap", "cap_net_raw+ep", p)
		if out := mustRun(t, dir, nil, "getcap", p); !strings.Contains(out, "cap_net_raw") {
			t.Fatalf("%s: getcap after setcap: %q", tc.name, out)
		}
		check(t, os.Chmod(p, 0o755))
		if out := mustRun(t, dir, nil, "getcap", p); !strings.Contains(out, "cap_net_raw") {
			t.Errorf("%s: chmod removed the capability: getcap %q", tc.name, out)
		}
		f, err := os.OpenFile(p, tc.flag, 0)
		check(t, err)
		if tc.flag&os.O_APPEND != 0 {
			_, err = f.Write([]byte("x"))
		} else {
			_, err = f.WriteAt([]byte("x"), 0)
		}
		check(t, err)
		check(t, f.Close())
		if out := mustRun(t, dir, nil, "getcap", p); strings.Contains(out, "cap_net_raw") {
			t.Errorf("%s: a write kept the capability: getcap %q", tc.name, out)
		}
		if _, err := unix.Getxattr(p, "security.capability", make([]byte, 64)); err != unix.ENODATA {
			t.Errorf("%s: getxattr security.capability after a write: %v, want ENODATA", tc.name, err)
		}
	}
}
