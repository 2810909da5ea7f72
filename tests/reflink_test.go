package tests

import (
	"crypto/rand"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// copy_file_range(2) through the mount: coreutils cp uses it, and the
// daemon shares whole chunks by reference (store/reflink.go).

// storedLine returns the "logical ... stored ... chunks N" line of pool
// status, after snapfs sync has committed every buffered write.
func storedLine(t *testing.T, pool string) (logical, stored string) {
	t.Helper()
	snapfsOK(t, "-p", pool, "sync")
	out := snapfsOK(t, "-p", pool, "pool", "status")
	m := regexp.MustCompile(`logical (\S+ \S+)\s+stored (\S+ \S+)\s+ratio \S+\s+chunks (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("pool status has no logical/stored line:\n%s", out)
	}
	return m[1], m[2] + " in " + m[3] + " chunks"
}

// randomFile writes n random bytes (never zeros: zero chunks are holes) to p.
func randomFile(t *testing.T, p string, n int) []byte {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	writeFile(t, p, b)
	return b
}

// timed runs name args and returns how long it took.
func timed(t *testing.T, name string, args ...string) time.Duration {
	t.Helper()
	start := time.Now()
	mustRun(t, "", nil, name, args...)
	return time.Since(start)
}

// TestCopyFileRangeByReference: cp of a large file inside the volume adds
// no stored byte and takes a fraction of a byte copy (dd); a file restored
// from a snapshot with cp, and one copied into a branch, read as their
// sources; du and pool status agree on the logical bytes.
func TestCopyFileRangeByReference(t *testing.T) {
	mnt, pool := mountVolume(t, mountOpts{})
	const size = 64 << 20
	f := filepath.Join(mnt, "big")
	data := randomFile(t, f, size)
	_, storedBefore := storedLine(t, pool)

	byteCopy := timed(t, "dd", "if="+f, "of="+filepath.Join(mnt, "bytes"), "bs=1M", "status=none")
	cpCopy := timed(t, "cp", f, filepath.Join(mnt, "copy"))
	t.Logf("64 MiB inside the volume: cp (copy_file_range) %v, dd (read and write) %v", cpCopy, byteCopy)
	wantContent(t, filepath.Join(mnt, "copy"), data)
	if cpCopy > byteCopy/2 {
		t.Errorf("cp took %v, dd %v: a copy by reference should take a fraction of a byte copy", cpCopy, byteCopy)
	}
	logical, stored := storedLine(t, pool)
	if stored != storedBefore {
		t.Errorf("stored after the copies: %s, want %s unchanged", stored, storedBefore)
	}
	if logical != "192 MiB" {
		t.Errorf("logical after two copies of 64 MiB: %s, want 192 MiB", logical)
	}
	du := mustRun(t, mnt, nil, "du", "-c", "--block-size=1M", "big", "bytes", "copy")
	if !regexp.MustCompile(`(?m)^192\s+total$`).MatchString(du) {
		t.Errorf("du of the three files: %q, want a total of 192 MiB as pool status says", du)
	}

	// Restore from a snapshot over a changed file, and copy into a branch.
	check(t, os.Mkdir(filepath.Join(mnt, ".snapshots", "s1"), 0o755))
	randomFile(t, f, size)
	mustRun(t, "", nil, "cp", filepath.Join(mnt, ".snapshots", "s1", "big"), f)
	wantContent(t, f, data)
	snapfsOK(t, "-p", pool, "branch", "create", "vol@s1", "b1")
	mustRun(t, "", nil, "cp", f, filepath.Join(mnt, ".snapshots", "b1", "frombig"))
	wantContent(t, filepath.Join(mnt, ".snapshots", "b1", "frombig"), data)
	if _, stored := storedLine(t, pool); stored != storedBefore {
		t.Errorf("stored after the restore and the copy into a branch: %s, want %s (the overwrite's chunks were released)", stored, storedBefore)
	}

	// Unaligned offsets: bytes are copied, and read back right.
	small := filepath.Join(mnt, "small")
	sdata := randomFile(t, small, 1<<20)
	in, err := os.Open(small)
	check(t, err)
	defer in.Close()
	out, err := os.OpenFile(filepath.Join(mnt, "shifted"), os.O_RDWR|os.O_CREATE, 0o644)
	check(t, err)
	defer out.Close()
	offIn, offOut := int64(1000), int64(5000)
	n, err := unix.CopyFileRange(int(in.Fd()), &offIn, int(out.Fd()), &offOut, 300_000, 0)
	if err != nil || n != 300_000 {
		t.Fatalf("copy_file_range at unaligned offsets: %d %v", n, err)
	}
	want := append(make([]byte, 5000), sdata[1000:301_000]...)
	wantContent(t, filepath.Join(mnt, "shifted"), want)
}

// TestCopyFileRangeBadInput: overlapping ranges within one file are EINVAL
// (as ext4), a snapshot cannot be opened to copy into (EROFS), and a copy
// between two pools is done by the kernel's fallback with the right bytes;
// nothing stored changes after a refusal.
func TestCopyFileRangeBadInput(t *testing.T) {
	mnt, _ := mountVolume(t, mountOpts{})
	f := filepath.Join(mnt, "f")
	data := randomFile(t, f, 1<<20)
	fd, err := os.OpenFile(f, os.O_RDWR, 0)
	check(t, err)
	defer fd.Close()
	offIn, offOut := int64(0), int64(4096)
	_, err = unix.CopyFileRange(int(fd.Fd()), &offIn, int(fd.Fd()), &offOut, 1<<19, 0)
	wantErrno(t, "copy_file_range onto an overlapping range of the same file", err, syscall.EINVAL)
	wantContent(t, f, data)

	check(t, os.Mkdir(filepath.Join(mnt, ".snapshots", "s1"), 0o755))
	_, err = os.OpenFile(filepath.Join(mnt, ".snapshots", "s1", "f"), os.O_WRONLY, 0)
	wantErrno(t, "open a snapshot's file to copy into", err, syscall.EROFS)
	_, err = os.OpenFile(filepath.Join(mnt, ".snapshots", "s1", "new"), os.O_WRONLY|os.O_CREATE, 0o644)
	wantErrno(t, "create a file in a snapshot to copy into", err, syscall.EROFS)

	// Another pool, mounted by its own daemon.
	mnt2, _ := mountVolume(t, mountOpts{})
	out, err := os.OpenFile(filepath.Join(mnt2, "x"), os.O_RDWR|os.O_CREATE, 0o644)
	check(t, err)
	defer out.Close()
	in, err := os.Open(f)
	check(t, err)
	defer in.Close()
	n, err := unix.CopyFileRange(int(in.Fd()), nil, int(out.Fd()), nil, 1<<20, 0)
	switch {
	case err == syscall.EXDEV:
		t.Logf("copy_file_range between pools: EXDEV (no kernel fallback)")
	case err != nil || n != 1<<20:
		t.Fatalf("copy_file_range between pools: %d %v", n, err)
	default:
		wantContent(t, filepath.Join(mnt2, "x"), data)
	}
	mustRun(t, "", nil, "cp", f, filepath.Join(mnt2, "y"))
	wantContent(t, filepath.Join(mnt2, "y"), data)
	wantContent(t, f, data)
}
