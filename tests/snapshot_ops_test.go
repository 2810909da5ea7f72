package tests

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRollback rolls a mounted volume back through the daemon: the live
// tree equals the snapshot at once (the kernel's caches are invalidated),
// newer snapshots refuse it unless -r, an open file that the snapshot does
// not have answers ESTALE, and one that it has reads the old bytes. The
// rollback survives a remount, and fsck is clean.
func TestRollback(t *testing.T) {
	mnt, pool := mountVolume(t, mountOpts{})
	live := filepath.Join(mnt, "tree")
	mustRun(t, "", nil, "cp", "-a", filepath.Join(goSrc(t), "bufio"), live)
	writeFile(t, filepath.Join(live, "big"), pattern(3<<20, 7))
	before := manifest(t, live)
	check(t, os.Mkdir(filepath.Join(mnt, ".snapshots", "s1"), 0o755))

	// Change everything, and keep files open across the rollback.
	writeFile(t, filepath.Join(live, "big"), pattern(1<<20, 9))
	check(t, os.Remove(filepath.Join(live, "scan.go")))
	check(t, os.Rename(filepath.Join(live, "bufio.go"), filepath.Join(live, "moved.go")))
	check(t, os.Chmod(filepath.Join(live, "bufio_test.go"), 0o600))
	check(t, os.Mkdir(filepath.Join(live, "newdir"), 0o755))
	writeFile(t, filepath.Join(live, "newdir", "new"), []byte("new"))
	fresh, err := os.Create(filepath.Join(live, "fresh"))
	check(t, err)
	defer fresh.Close()
	_, err = fresh.Write([]byte("written after the snapshot"))
	check(t, err)
	old, err := os.Open(filepath.Join(live, "example_test.go"))
	check(t, err)
	defer old.Close()
	// Stat every changed name so the kernel caches the new state.
	for _, n := range []string{"big", "moved.go", "bufio_test.go", "newdir/new", "fresh"} {
		_, err := os.Stat(filepath.Join(live, n))
		check(t, err)
	}
	if _, err := os.Stat(filepath.Join(live, "scan.go")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("stat scan.go before rollback: %v", err)
	}
	check(t, os.Mkdir(filepath.Join(mnt, ".snapshots", "s2"), 0o755))

	// Refused without -r, with one line naming the newer snapshot.
	r := snapfs(t, "-p", pool, "snapshot", "rollback", "vol@s1")
	if r.err == nil || !strings.Contains(r.stderr, "s2") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Fatalf("rollback past a newer snapshot: err %v, stderr %q", r.err, r.stderr)
	}
	out := snapfsOK(t, "-p", pool, "snapshot", "rollback", "-r", "vol@s1")
	if !strings.Contains(out, "rolled vol back to s1") {
		t.Fatalf("rollback output: %q", out)
	}

	// At once: no waiting for cache timeouts.
	compareManifests(t, "live tree right after rollback", before, manifest(t, live))
	if _, err := os.Stat(filepath.Join(live, "scan.go")); err != nil {
		t.Fatalf("scan.go is back in the snapshot's state: %v", err)
	}
	mustRun(t, "", nil, "diff", "-r", filepath.Join(mnt, ".snapshots", "s1", "tree"), live)
	if _, err := os.Stat(filepath.Join(mnt, ".snapshots", "s2")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("s2 survived a recursive rollback: %v", err)
	}
	if _, err := fresh.Write([]byte("more")); !errors.Is(err, syscall.ESTALE) {
		t.Fatalf("write to a file the rollback removed: %v, want ESTALE", err)
	}
	buf := make([]byte, 64)
	n, err := old.ReadAt(buf, 0)
	want, rerr := os.ReadFile(filepath.Join(mnt, ".snapshots", "s1", "tree", "example_test.go"))
	check(t, rerr)
	if (err != nil && n == 0) || string(buf[:n]) != string(want[:n]) {
		t.Fatalf("read through a handle open across the rollback: %q, %v", buf[:n], err)
	}

	// New writes work, and everything survives a remount.
	writeFile(t, filepath.Join(live, "after"), []byte("after"))
	check(t, fresh.Close())
	check(t, old.Close())
	after := manifest(t, live)
	remount(t, pool, "vol", mnt)
	compareManifests(t, "live tree after remount", after, manifest(t, live))
	umount(t, pool, mnt)
	out = snapfsOK(t, "-p", pool, "fsck")
	if !strings.Contains(out, "0 problem(s)") {
		t.Fatalf("fsck after rollback: %q", out)
	}
}

// TestSnapshotManyVolumes takes one snapshot of two mounted volumes in one
// call, through the daemon, while both are written: each snapshot holds
// what was written before the call, and a refused call takes none.
func TestSnapshotManyVolumes(t *testing.T) {
	mnt, pool := mountVolume(t, mountOpts{})
	snapfsOK(t, "-p", pool, "volume", "create", "vol2")
	mnt2 := filepath.Join(filepath.Dir(mnt), "mnt2")
	check(t, os.Mkdir(mnt2, 0o755))
	mountAt(t, pool, "vol2", mnt2)
	writeFile(t, filepath.Join(mnt, "f"), []byte("one before"))
	writeFile(t, filepath.Join(mnt2, "f"), []byte("two before"))
	check(t, os.Mkdir(filepath.Join(mnt2, ".snapshots", "taken"), 0o755))

	r := snapfs(t, "-p", pool, "snapshot", "create", "vol", "vol2", "taken")
	if r.err == nil || !strings.Contains(r.stderr, "no snapshot taken") {
		t.Fatalf("a name taken in one volume: err %v, stderr %q", r.err, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(mnt, ".snapshots", "taken")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("a refused call left a snapshot in vol: %v", err)
	}
	out := snapfsOK(t, "-p", pool, "snapshot", "create", "vol", "vol2", "both")
	if !strings.Contains(out, "atomically") {
		t.Fatalf("output: %q", out)
	}
	// The pause is logged by the daemon.
	logged, err := os.ReadFile(filepath.Join(pool, "daemon.log"))
	check(t, err)
	if !strings.Contains(string(logged), "snapshot both of 2 volumes [vol vol2]: writers paused") {
		t.Errorf("the daemon did not log the pause:\n%s", logged)
	}
	writeFile(t, filepath.Join(mnt, "f"), []byte("one after"))
	writeFile(t, filepath.Join(mnt2, "f"), []byte("two after"))
	for m, want := range map[string]string{mnt: "one before", mnt2: "two before"} {
		got, err := os.ReadFile(filepath.Join(m, ".snapshots", "both", "f"))
		check(t, err)
		if string(got) != want {
			t.Errorf("%s/.snapshots/both/f = %q, want %q", m, got, want)
		}
	}
}

// TestMountReadAhead: the daemon widens the kernel's read-ahead window of
// its mount to 1 MiB (the FUSE init reply cannot raise it past 128 KiB).
func TestMountReadAhead(t *testing.T) {
	needRootUser(t) // only root may write read_ahead_kb
	mnt, _ := mountVolume(t, mountOpts{})
	var st unix.Stat_t
	check(t, unix.Stat(mnt, &st))
	got, err := os.ReadFile(fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev)))
	check(t, err)
	if strings.TrimSpace(string(got)) != "1024" {
		t.Fatalf("read_ahead_kb of the mount: %q, want 1024", got)
	}
}
