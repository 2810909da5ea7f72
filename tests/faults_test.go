package tests

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Member faults through the mount (issue 6, part 3): a member's disk
// fails a chosen operation with EIO, tears a pack record, or fills up; the
// metadata disk fills up. In each case the writer sees the right errno,
// everything already stored stays readable, the daemon keeps serving, and
// the pool passes fsck afterwards. EIO and torn records are injected in the
// daemon through the pool's FaultFS ($SNAPFS_FAULTS, armed once mounted);
// full disks are real: small tmpfs mounts.

// faultEnv is the environment that arms faults in the daemon.
func faultEnv(spec string) []string { return []string{"SNAPFS_FAULTS=" + spec} }

// remountFaulty unmounts mnt cleanly and mounts it again with faults armed.
func remountFaulty(t *testing.T, pool, mnt, spec string) {
	t.Helper()
	umount(t, pool, mnt)
	mountAtEnv(t, faultEnv(spec), pool, "vol", mnt)
	if !strings.Contains(readFrom(filepath.Join(pool, "daemon.log"), 0), "faults armed: "+spec) {
		t.Fatalf("the daemon did not log that it armed %q", spec)
	}
}

// writeSync writes p whole and fsyncs it, returning the first error.
func writeSync(p string, data []byte) error { return writeMaybeSync(p, data, true) }

// mustRead fails the test unless p reads back as want.
func mustRead(t *testing.T, p string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read %s: %d bytes (want %d), %v", p, len(got), len(want), err)
	}
}

// fsckClean runs snapfs fsck on an unmounted pool and fails the test on
// any problem.
func fsckClean(t *testing.T, pool string) {
	t.Helper()
	if r := snapfs(t, "-p", pool, "fsck"); r.err != nil {
		t.Fatalf("fsck: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
}

// TestFaultMemberReadEIO: a member fails pack reads with EIO. One failed
// read is retried (the location hint, then the chunk's reference) and the
// reader gets every byte; a member that keeps failing gives the reader
// EIO, never wrong bytes, while the daemon keeps serving writes; once the
// disk answers again (a restart without the fault) everything reads back.
func TestFaultMemberReadEIO(t *testing.T) {
	mnt, pool := mountVolume(t, mountOpts{})
	a := pattern(1<<20, 1) // 8 chunks, striped over both members
	if err := writeSync(filepath.Join(mnt, "a"), a); err != nil {
		t.Fatal(err)
	}
	remountFaulty(t, pool, mnt, "op=read,path=/packs/,nth=1,err=EIO")
	mustRead(t, filepath.Join(mnt, "a"), a)

	remountFaulty(t, pool, mnt, "op=read,path=disk1/packs/,err=EIO,sticky")
	_, err := os.ReadFile(filepath.Join(mnt, "a"))
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("read with a member failing every read: %v, want EIO", err)
	}
	b := pattern(300_000, 2)
	if err := writeSync(filepath.Join(mnt, "b"), b); err != nil {
		t.Fatalf("write while a member fails reads: %v", err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "a")); err != nil {
		t.Fatalf("stat while a member fails reads: %v", err)
	}
	remount(t, pool, "vol", mnt)
	mustRead(t, filepath.Join(mnt, "a"), a)
	mustRead(t, filepath.Join(mnt, "b"), b)
	umount(t, pool, mnt)
	fsckClean(t, pool)
}

// TestFaultMemberSyncEIO: a member's fdatasync fails. The fsync(2) of the
// file whose records it held returns EIO; the member is marked failed and
// takes no more records; later writes go to the other member and are
// durable; what was stored before reads back; fsck is clean at the next
// open (which frees the records of the failed flush).
func TestFaultMemberSyncEIO(t *testing.T) {
	mnt, pool := mountVolume(t, mountOpts{})
	keep := pattern(1<<20, 3)
	if err := writeSync(filepath.Join(mnt, "keep"), keep); err != nil {
		t.Fatal(err)
	}
	remountFaulty(t, pool, mnt, "op=sync,path=/packs/,nth=1,err=EIO")
	err := writeSync(filepath.Join(mnt, "x"), pattern(1<<20, 4))
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("fsync with a failing member sync: %v, want EIO", err)
	}
	mustRead(t, filepath.Join(mnt, "keep"), keep)
	y := pattern(1<<20, 5)
	if err := writeSync(filepath.Join(mnt, "y"), y); err != nil {
		t.Fatalf("write after the failed sync: %v", err)
	}
	mustRead(t, filepath.Join(mnt, "y"), y)
	if got := failedMembers(t, pool); got != 1 {
		t.Errorf("pool status shows %d failed members, want 1", got)
	}
	if err := os.Remove(filepath.Join(mnt, "x")); err != nil {
		t.Fatal(err)
	}
	umountAfterFault(t, pool, mnt)
	fsckClean(t, pool)
	checkSpace(t, pool, "after a failed sync")
	mountAt(t, pool, "vol", mnt)
	mustRead(t, filepath.Join(mnt, "keep"), keep)
	mustRead(t, filepath.Join(mnt, "y"), y)
}

// TestFaultTornPackWrite: a member tears a pack record (half written, then
// EIO). The record goes to the other member instead, so the writer sees
// success; the torn bytes are cut off the pack, and fsck and the space
// check find nothing left of them.
func TestFaultTornPackWrite(t *testing.T) {
	mnt, pool := mountVolume(t, mountOpts{})
	keep := pattern(1<<20, 6)
	if err := writeSync(filepath.Join(mnt, "keep"), keep); err != nil {
		t.Fatal(err)
	}
	remountFaulty(t, pool, mnt, "op=write,path=/packs/,nth=1,err=EIO,torn")
	x := pattern(1<<20, 7)
	if err := writeSync(filepath.Join(mnt, "x"), x); err != nil {
		t.Fatalf("write with a torn pack write: %v (the other member should take the record)", err)
	}
	mustRead(t, filepath.Join(mnt, "x"), x)
	mustRead(t, filepath.Join(mnt, "keep"), keep)
	if got := failedMembers(t, pool); got != 1 {
		t.Fatalf("pool status shows %d failed members after the torn write, want 1", got)
	}
	umountAfterFault(t, pool, mnt)
	fsckClean(t, pool)
	checkSpace(t, pool, "after a torn pack write")
	mountAt(t, pool, "vol", mnt)
	mustRead(t, filepath.Join(mnt, "x"), x)
	mustRead(t, filepath.Join(mnt, "keep"), keep)
}

// umountAfterFault unmounts mnt after a member failed under the daemon:
// the unmount must succeed (and say so in the daemon's log), though the
// final close may report the failed member.
func umountAfterFault(t *testing.T, pool, mnt string) {
	t.Helper()
	if r := snapfs(t, "umount", mnt); r.err != nil {
		t.Logf("snapfs umount after a member fault: %v: %s", r.err, r.stderr)
	}
	if isMounted(mnt) {
		t.Fatalf("%s still mounted after snapfs umount", mnt)
	}
}

// failedMembers counts the members pool status does not show as ok.
func failedMembers(t *testing.T, pool string) int {
	t.Helper()
	var st struct {
		Members []struct {
			State string `json:"state"`
		} `json:"members"`
	}
	if err := json.Unmarshal([]byte(snapfsOK(t, "-p", pool, "pool", "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, m := range st.Members {
		if m.State != "ok" {
			n++
		}
	}
	return n
}

// mountTmpfs mounts a tmpfs of size bytes at dir (created) until the test
// ends. It needs root; without it the test fails when FUSE tests are
// required and skips otherwise.
func mountTmpfs(t *testing.T, dir string, size int64) {
	t.Helper()
	if os.Geteuid() != 0 {
		if fuseRequired() {
			t.Fatal("this test mounts a tmpfs and needs root")
		}
		t.Skip("needs root to mount a tmpfs")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "", nil, "mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", size), "tmpfs", dir)
	t.Cleanup(func() {
		if r := run(t, "", nil, "umount", dir); r.err != nil {
			t.Errorf("umount %s: %v: %s", dir, r.err, r.stderr)
		}
	})
}

// TestFaultMemberFull: both members are small tmpfs file systems. A
// write that does not fit fails with ENOSPC (dd says "No space left on
// device"); the file written before reads back; once the big file is
// removed and its records punched, the same write succeeds.
func TestFaultMemberFull(t *testing.T) {
	base := t.TempDir()
	d1, d2 := filepath.Join(base, "disk1"), filepath.Join(base, "disk2")
	mountTmpfs(t, d1, 48<<20)
	mountTmpfs(t, d2, 48<<20)
	pool, mnt := filepath.Join(base, "pool"), filepath.Join(base, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	snapfsOK(t, "pool", "create", pool, "--member", d1, "--member", d2)
	snapfsOK(t, "-p", pool, "volume", "create", "vol")
	mountAt(t, pool, "vol", mnt)

	keep := pattern(8<<20, 8)
	if err := writeSync(filepath.Join(mnt, "keep"), keep); err != nil {
		t.Fatal(err)
	}
	r := run(t, "", nil, "dd", "if=/dev/urandom", "of="+filepath.Join(mnt, "big"), "bs=1M", "count=200", "conv=fsync")
	if r.err == nil || !strings.Contains(r.stderr, "No space left on device") {
		t.Fatalf("dd of 200 MiB onto 96 MiB of members: %v: %s; want No space left on device", r.err, r.stderr)
	}
	mustRead(t, filepath.Join(mnt, "keep"), keep)
	if err := os.Remove(filepath.Join(mnt, "big")); err != nil {
		t.Fatal(err)
	}
	// The space comes back once reclaim has punched the records (after a
	// grace period for reads) and the pool has looked at statfs again.
	again := pattern(40<<20, 9)
	var err error
	for end := time.Now().Add(30 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if err = writeSync(filepath.Join(mnt, "again"), again); err == nil {
			break
		}
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("write after freeing space: %v, want success or ENOSPC while reclaim runs", err)
		}
	}
	if err != nil {
		t.Fatalf("write of 40 MiB after removing the big file: %v", err)
	}
	mustRead(t, filepath.Join(mnt, "again"), again)
	mustRead(t, filepath.Join(mnt, "keep"), keep)
	umount(t, pool, mnt)
	fsckClean(t, pool)
	checkSpace(t, pool, "after filling the members")
}

// TestFaultMetaFull: the pool directory (meta/) is a small tmpfs. Creating
// files fails with ENOSPC before Pebble runs out of room (it cannot survive
// a failed log write); files stored before read back, unlinks still work,
// a snapshot is refused with ENOSPC, and once space is freed on that file
// system creates work again. The daemon then exits cleanly and fsck
// passes.
func TestFaultMetaFull(t *testing.T) {
	base := t.TempDir()
	pool, mnt := filepath.Join(base, "pool"), filepath.Join(base, "mnt")
	d1, d2 := filepath.Join(base, "disk1"), filepath.Join(base, "disk2")
	mountTmpfs(t, pool, 24<<20)
	for _, d := range []string{mnt, d1, d2} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	snapfsOK(t, "pool", "create", pool, "--member", d1, "--member", d2)
	snapfsOK(t, "-p", pool, "volume", "create", "vol")
	// Another tenant of the metadata disk, removed later to free space.
	ballast := filepath.Join(pool, "ballast")
	if err := os.WriteFile(ballast, pattern(8<<20, 10), 0o644); err != nil {
		t.Fatal(err)
	}
	mountAt(t, pool, "vol", mnt)
	keep := pattern(1<<20, 11)
	if err := writeSync(filepath.Join(mnt, "keep"), keep); err != nil {
		t.Fatal(err)
	}
	// Fill the metadata with small files until a create fails; a hang
	// here is the failure this test exists for.
	done := make(chan error, 1)
	var made int
	go func() {
		for i := 0; i < 200_000; i++ {
			if err := os.WriteFile(filepath.Join(mnt, fmt.Sprintf("f%d", i)), []byte("x"), 0o644); err != nil {
				done <- err
				return
			}
			made = i + 1
		}
		done <- errors.New("200000 creates fit: the metadata disk never filled")
	}()
	select {
	case err := <-done:
		if !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("create on a full metadata disk: %v, want ENOSPC", err)
		}
	case <-time.After(5 * time.Minute):
		t.Fatal("creates on a filling metadata disk hung for 5 minutes")
	}
	t.Logf("%d files created before ENOSPC", made)
	mustRead(t, filepath.Join(mnt, "keep"), keep)
	if err := os.Mkdir(filepath.Join(mnt, ".snapshots", "full"), 0o755); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("snapshot on a full metadata disk: %v, want ENOSPC", err)
	}
	f, err := os.OpenFile(filepath.Join(mnt, "keep"), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	_, werr := f.Write([]byte("more"))
	f.Close()
	if !errors.Is(werr, syscall.ENOSPC) {
		t.Errorf("write(2) on a full metadata disk: %v, want ENOSPC", werr)
	}
	for i := 0; i < 100; i++ {
		if err := os.Remove(filepath.Join(mnt, fmt.Sprintf("f%d", i))); err != nil {
			t.Fatalf("unlink on a full metadata disk: %v", err)
		}
	}
	if err := os.Remove(ballast); err != nil {
		t.Fatal(err)
	}
	// The guard looks at statfs every 50 ms.
	var cerr error
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if cerr = writeSync(filepath.Join(mnt, "after"), []byte("room again")); cerr == nil {
			break
		}
	}
	if cerr != nil {
		t.Fatalf("create after freeing the metadata disk: %v", cerr)
	}
	mustRead(t, filepath.Join(mnt, "keep"), keep)
	mustRead(t, filepath.Join(mnt, "after"), []byte("room again"))
	umount(t, pool, mnt)
	fsckClean(t, pool)
}

// TestFaultMemberFailsReadsCopies2: in a copies=2 pool of three members,
// one member's disk answers every pack read with EIO. Every file reads
// back (the other copy); the member is counted and degraded for failing
// reads, and pool status says so and how to fix it; writes go on; a
// scrub rewrites each copy the member cannot read on another member, so
// that every file keeps two readable copies; fsck is clean after.
func TestFaultMemberFailsReadsCopies2(t *testing.T) {
	checkFuse(t)
	base := t.TempDir()
	pool := filepath.Join(base, "pool")
	var disks []string
	args := []string{"pool", "create", pool, "--copies", "2"}
	for i, dom := range []string{"a", "b", "c"} {
		d := filepath.Join(base, fmt.Sprintf("disk%d", i+1))
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
		disks = append(disks, d)
		args = append(args, "--member", d, "--domain", dom)
	}
	snapfsOK(t, args...)
	snapfsOK(t, "-p", pool, "volume", "create", "vol")
	mnt := mountNew(t, base, pool)
	files := writeTree(t, mnt, 12, 512<<10)
	snapfsOK(t, "-p", pool, "sync")

	remountFaulty(t, pool, mnt, "op=read,path=disk2/packs/,err=EIO,sticky")
	checkTree(t, mnt, files)
	var st struct {
		State   string `json:"state"`
		Members []struct {
			Path       string `json:"path"`
			State      string `json:"state"`
			ReadErrors int64  `json:"read_errors"`
			FailsReads bool   `json:"fails_reads"`
		} `json:"members"`
	}
	if err := json.Unmarshal([]byte(snapfsOK(t, "-p", pool, "pool", "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if m := st.Members[1]; st.State != "degraded" || m.State != "degraded" || !m.FailsReads || m.ReadErrors < 4 {
		t.Fatalf("pool status with a member failing reads: %+v", st)
	}
	out := snapfsOK(t, "-p", pool, "pool", "status")
	for _, want := range []string{"state degraded", "member " + disks[1] + " fails reads", "I/O errors", "pool remove-member " + disks[1]} {
		if !strings.Contains(out, want) {
			t.Fatalf("pool status lacks %q:\n%s", want, out)
		}
	}
	more := writeTree(t, filepath.Join(mnt), 2, 300<<10) // f000, f001 rewritten
	for name, data := range more {
		files[name] = data
	}
	var rep struct {
		Bad          int64 `json:"bad"`
		Repaired     int64 `json:"repaired"`
		Unrepairable int64 `json:"unrepairable"`
		Chunks       int64 `json:"chunks"`
		Copies       int64 `json:"copies"`
	}
	if err := json.Unmarshal([]byte(snapfsOK(t, "-p", pool, "pool", "scrub", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Bad == 0 || rep.Repaired != rep.Bad || rep.Unrepairable != 0 || rep.Copies != 2*rep.Chunks {
		t.Fatalf("scrub with a member failing reads: %+v", rep)
	}
	checkTree(t, mnt, files)
	if err := json.Unmarshal([]byte(snapfsOK(t, "-p", pool, "pool", "scrub", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Bad != 0 {
		t.Fatalf("a second scrub found %d bad copies: the first left copies on the failing member", rep.Bad)
	}
	umountAfterFault(t, pool, mnt)
	fsckClean(t, pool)
	mountAt(t, pool, "vol", mnt)
	checkTree(t, mnt, files)
}
