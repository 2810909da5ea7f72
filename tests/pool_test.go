package tests

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// recordHeader is pool.HeaderSize: the payload of a record starts there.
const recordHeader = 72

// flipFirstRecord flips one payload byte of the first record of the
// first non-empty pack of member directory disk.
func flipFirstRecord(t *testing.T, disk string) {
	t.Helper()
	packs, _ := filepath.Glob(filepath.Join(disk, "packs", "*.pack"))
	for _, p := range packs {
		fi, err := os.Stat(p)
		if err != nil || fi.Size() < recordHeader+64 {
			continue
		}
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		b := []byte{0}
		if _, err := f.ReadAt(b, recordHeader+33); err != nil {
			t.Fatal(err)
		}
		b[0] ^= 0x21
		if _, err := f.WriteAt(b, recordHeader+33); err != nil {
			t.Fatal(err)
		}
		return
	}
	t.Fatalf("no record in %s", disk)
}

// newPoolDirs creates a pool with n members labelled d0..dn-1 and the
// given copies, plus volume "vol"; it returns the base, pool and disks.
func newPoolDirs(t *testing.T, n int, copies string) (base, pool string, disks []string) {
	t.Helper()
	base = t.TempDir()
	pool = filepath.Join(base, "pool")
	args := []string{"pool", "create", pool, "--copies", copies}
	for i := 0; i < n; i++ {
		d := filepath.Join(base, "disk"+string(rune('0'+i)))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		disks = append(disks, d)
		args = append(args, "--member", d, "--domain", "d"+string(rune('0'+i)))
	}
	snapfsOK(t, args...)
	snapfsOK(t, "-p", pool, "volume", "create", "vol")
	return base, pool, disks
}

func mountNew(t *testing.T, base, pool string) string {
	t.Helper()
	checkFuse(t)
	mnt := filepath.Join(base, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	mountAt(t, pool, "vol", mnt)
	return mnt
}

func TestPoolFsckExitCodes(t *testing.T) {
	base, pool, disks := newPoolDirs(t, 2, "1")
	// An empty pool is clean, opened directly.
	out := snapfsOK(t, "-p", pool, "fsck")
	if !strings.Contains(out, "0 problem(s)") {
		t.Fatalf("fsck of an empty pool: %s", out)
	}
	mnt := mountNew(t, base, pool)
	data := pattern(3<<20, 7)
	if err := os.WriteFile(filepath.Join(mnt, "f"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	snapfsOK(t, "-p", pool, "sync")
	// Through the daemon.
	out = snapfsOK(t, "-p", pool, "fsck")
	if !strings.Contains(out, "0 problem(s)") {
		t.Fatalf("fsck through the daemon: %s", out)
	}
	umount(t, pool, mnt)
	out = snapfsOK(t, "-p", pool, "fsck", "--json")
	var rep struct {
		Records int64 `json:"records"`
		Chunks  int64 `json:"chunks"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Records == 0 || rep.Chunks == 0 {
		t.Fatalf("fsck --json: %v: %s", err, out)
	}
	flipFirstRecord(t, disks[0])
	r := snapfs(t, "-p", pool, "fsck")
	if r.err == nil {
		t.Fatalf("fsck passed a flipped byte: %s", r.stdout)
	}
	if !strings.Contains(r.stdout, "crc") || !strings.Contains(r.stderr, "1 problem(s) left") {
		t.Fatalf("fsck output:\nstdout: %s\nstderr: %s", r.stdout, r.stderr)
	}
	// With copies=1 the damage cannot be repaired: still non-zero.
	if r := snapfs(t, "-p", pool, "fsck", "--repair"); r.err == nil {
		t.Fatalf("fsck --repair fixed a lost copy: %s", r.stdout)
	}
	// And a read of the damaged chunk is EIO, never wrong bytes.
	mountAt(t, pool, "vol", mnt)
	got, err := os.ReadFile(filepath.Join(mnt, "f"))
	if err == nil || bytes.Equal(got, data) {
		t.Fatalf("read of a damaged file: %d bytes, %v", len(got), err)
	}
	if !strings.Contains(err.Error(), "input/output error") {
		t.Fatalf("read error %v, want EIO", err)
	}
	umount(t, pool, mnt)
	if r := snapfs(t, "-p", pool, "pool", "scrub"); r.err == nil || !strings.Contains(r.stdout, "1 unrepairable") {
		t.Fatalf("scrub of a lost copy: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
}

func TestPoolScrubRepairsFlippedByte(t *testing.T) {
	base, pool, disks := newPoolDirs(t, 2, "2")
	mnt := mountNew(t, base, pool)
	data := pattern(2<<20, 3)
	name := filepath.Join(mnt, "f")
	if err := os.WriteFile(name, data, 0o644); err != nil {
		t.Fatal(err)
	}
	snapfsOK(t, "-p", pool, "sync")
	flipFirstRecord(t, disks[0])
	// Not read here: a read around the bad copy rewrites it
	// (TestPoolReadRepairsFlippedBytes).
	remount(t, pool, "vol", mnt)
	if r := snapfs(t, "-p", pool, "pool", "scrub", "--no-repair"); r.err == nil || !strings.Contains(r.stdout, "1 bad, 0 repaired") {
		t.Fatalf("scrub --no-repair with a bad copy: %v %s", r.err, r.stdout)
	}
	out := snapfsOK(t, "-p", pool, "pool", "scrub") // through the daemon
	if !strings.Contains(out, "1 bad, 1 repaired, 0 unrepairable") {
		t.Fatalf("scrub: %s", out)
	}
	out = snapfsOK(t, "-p", pool, "pool", "scrub")
	if !strings.Contains(out, "0 bad") {
		t.Fatalf("second scrub: %s", out)
	}
	umount(t, pool, mnt)
	snapfsOK(t, "-p", pool, "fsck")
	out = snapfsOK(t, "-p", pool, "pool", "scrub", "--json") // opened directly
	var rep struct{ Bad, Copies int64 }
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Bad != 0 || rep.Copies == 0 {
		t.Fatalf("scrub --json: %v %s", err, out)
	}
}

// flipEveryRecord flips one payload byte of every record in the packs of
// member directory disk and returns how many it flipped.
func flipEveryRecord(t *testing.T, disk string) int {
	t.Helper()
	packs, _ := filepath.Glob(filepath.Join(disk, "packs", "*.pack"))
	n := 0
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
			b[off+recordHeader+stored/2] ^= 0x42
			n++
			off += (recordHeader + stored + 4095) / 4096 * 4096
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return n
}

// TestPoolReadRepairsFlippedBytes: every copy on one member of a copies=2
// pool has a byte flipped. Reading the file through the mount (cmp
// against the original) gets every byte from the good copies, and the
// daemon rewrites each bad copy a read came across: pool status counts
// them, the daemon log names each chunk once, and a verify-only scrub
// finds only the bad copies no read touched (the reads tried the other
// copy first). A scrub rewrites those; fsck is clean.
func TestPoolReadRepairsFlippedBytes(t *testing.T) {
	needTool(t, "cmp", "diffutils")
	base, pool, disks := newPoolDirs(t, 2, "2")
	mnt := mountNew(t, base, pool)
	ref := filepath.Join(base, "ref")
	if err := os.WriteFile(ref, pattern(4<<20, 7), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "", nil, "cp", ref, filepath.Join(mnt, "f"))
	snapfsOK(t, "-p", pool, "sync")
	umount(t, pool, mnt)
	flipped := flipEveryRecord(t, disks[0])
	if flipped < 32 {
		t.Fatalf("flipped %d records, want the file's 32 chunks", flipped)
	}
	logPath := filepath.Join(pool, "daemon.log")
	logStart := fileSize(logPath)
	mountAt(t, pool, "vol", mnt)
	mustRun(t, "", nil, "cmp", ref, filepath.Join(mnt, "f"))

	var st struct {
		ReadRepairs struct{ Found, Rewritten, Failed, Skipped, Pending int64 } `json:"read_repairs"`
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if err := json.Unmarshal([]byte(snapfsOK(t, "-p", pool, "pool", "status", "--json")), &st); err != nil {
			t.Fatal(err)
		}
		r := st.ReadRepairs
		if r.Found > 0 && r.Pending == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("read repairs not done: %+v", r)
		}
		time.Sleep(100 * time.Millisecond)
	}
	r := st.ReadRepairs
	if r.Rewritten != r.Found || r.Found > int64(flipped) {
		t.Fatalf("read repairs %+v of %d bad copies", r, flipped)
	}
	out := snapfsOK(t, "-p", pool, "pool", "status")
	if !strings.Contains(out, fmt.Sprintf("reads found %d bad copies since the pool was opened: %d rewritten", r.Found, r.Rewritten)) {
		t.Fatalf("pool status does not report the read repairs:\n%s", out)
	}
	logged := map[string]int{}
	for _, line := range strings.Split(readFrom(logPath, logStart), "\n") {
		if strings.Contains(line, "is bad") && strings.Contains(line, "rewritten from a good copy") {
			chunk, _, _ := strings.Cut(strings.TrimPrefix(line[strings.Index(line, "snapfs: chunk "):], "snapfs: chunk "), ":")
			logged[chunk]++
		}
	}
	if int64(len(logged)) != r.Found {
		t.Fatalf("daemon log names %d chunks with bad copies, want %d: %v", len(logged), r.Found, logged)
	}
	for c, n := range logged {
		if n != 1 {
			t.Fatalf("chunk %s logged %d times", c, n)
		}
	}
	// Copies the reads did not try (another copy was read first) are
	// still bad: scrub's.
	left := int64(flipped) - r.Rewritten
	if r := snapfs(t, "-p", pool, "pool", "scrub", "--no-repair"); (r.err == nil) != (left == 0) || !strings.Contains(r.stdout, fmt.Sprintf("%d bad, 0 repaired", left)) {
		t.Fatalf("verify-only scrub after the read repairs (want %d bad): %v %s", left, r.err, r.stdout)
	}
	if out := snapfsOK(t, "-p", pool, "pool", "scrub"); !strings.Contains(out, fmt.Sprintf("%d bad, %d repaired, 0 unrepairable", left, left)) {
		t.Fatalf("scrub: %s", out)
	}
	mustRun(t, "", nil, "cmp", ref, filepath.Join(mnt, "f"))
	umount(t, pool, mnt)
	snapfsOK(t, "-p", pool, "fsck")
}

func poolMembers(t *testing.T, pool string) []struct {
	Path string `json:"path"`
	Used int64  `json:"used"`
} {
	t.Helper()
	var s struct {
		Members []struct {
			Path string `json:"path"`
			Used int64  `json:"used"`
		} `json:"members"`
	}
	if err := json.Unmarshal([]byte(snapfsOK(t, "-p", pool, "pool", "status", "--json")), &s); err != nil {
		t.Fatal(err)
	}
	return s.Members
}

func TestPoolAddMember(t *testing.T) {
	base, pool, _ := newPoolDirs(t, 1, "1")
	d1 := filepath.Join(base, "new1")
	os.Mkdir(d1, 0o755)
	snapfsOK(t, "-p", pool, "pool", "add-member", d1, "--domain", "x1")
	if m := poolMembers(t, pool); len(m) != 2 || m[1].Path != d1 {
		t.Fatalf("members after offline add: %+v", m)
	}
	if r := snapfs(t, "-p", pool, "pool", "add-member", d1); r.err == nil {
		t.Fatal("added a member twice")
	}
	_, other, odisks := newPoolDirs(t, 1, "1")
	_ = other
	if r := snapfs(t, "-p", pool, "pool", "add-member", odisks[0]); r.err == nil || !strings.Contains(r.stderr, "already belongs") {
		t.Fatalf("member of another pool: %v %s", r.err, r.stderr)
	}
	// Online, through the daemon: new data lands on the new member.
	mnt := mountNew(t, base, pool)
	d2 := filepath.Join(base, "new2")
	os.Mkdir(d2, 0o755)
	out := snapfsOK(t, "-p", pool, "pool", "add-member", d2, "--domain", "x2")
	if !strings.Contains(out, d2) {
		t.Fatalf("add-member: %s", out)
	}
	if err := os.WriteFile(filepath.Join(mnt, "f"), pattern(8<<20, 5), 0o644); err != nil {
		t.Fatal(err)
	}
	snapfsOK(t, "-p", pool, "sync")
	m := poolMembers(t, pool)
	if len(m) != 3 || m[2].Path != d2 || m[2].Used == 0 {
		t.Fatalf("members after online add: %+v", m)
	}
	umount(t, pool, mnt)
	snapfsOK(t, "-p", pool, "fsck")
	if m := poolMembers(t, pool); len(m) != 3 {
		t.Fatalf("members after reopen: %+v", m)
	}
}
