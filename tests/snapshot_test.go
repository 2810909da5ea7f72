package tests

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestSnapshot takes a snapshot with mkdir in .snapshots, changes the live
// tree, and checks that the snapshot still shows the old tree, read-only.
func TestSnapshot(t *testing.T) {
	mnt, pool := mountVolume(t, mountOpts{})
	live := filepath.Join(mnt, "tree")
	mustRun(t, "", nil, "cp", "-a", filepath.Join(goSrc(t), "bufio"), live)
	writeFile(t, filepath.Join(live, "big"), pattern(1<<20, 60))
	check(t, unix.Setxattr(filepath.Join(live, "big"), "user.v", []byte("1"), 0))
	before := manifest(t, live)

	snapdir := filepath.Join(mnt, ".snapshots")
	check(t, os.Mkdir(filepath.Join(snapdir, "s1"), 0o755))
	snapTree := filepath.Join(snapdir, "s1", "tree")
	compareManifests(t, "snapshot right after mkdir", before, manifest(t, snapTree))

	// Change the live tree in every way; the snapshot must not move.
	f, err := os.OpenFile(filepath.Join(live, "big"), os.O_WRONLY, 0)
	check(t, err)
	_, err = f.WriteAt([]byte("changed"), 500_000)
	check(t, err)
	check(t, f.Close())
	check(t, os.Remove(filepath.Join(live, "scan.go")))
	check(t, os.Rename(filepath.Join(live, "bufio.go"), filepath.Join(live, "moved.go")))
	check(t, os.Truncate(filepath.Join(live, "example_test.go"), 3))
	check(t, os.Chmod(filepath.Join(live, "bufio_test.go"), 0o600))
	check(t, unix.Setxattr(filepath.Join(live, "big"), "user.v", []byte("2"), 0))
	writeFile(t, filepath.Join(live, "new"), []byte("new"))
	compareManifests(t, "snapshot after live changes", before, manifest(t, snapTree))
	n, err := unix.Getxattr(filepath.Join(snapTree, "big"), "user.v", make([]byte, 8))
	if err != nil || n != 1 {
		t.Errorf("xattr in the snapshot: %d, %v", n, err)
	}
	if r := run(t, "", nil, "diff", "-r", snapTree, live); r.err == nil {
		t.Errorf("diff -r of snapshot and changed live tree finds no difference")
	}

	// The snapshot is read-only: every change is EROFS.
	ro := map[string]error{
		"create":   openErr(os.OpenFile(filepath.Join(snapTree, "x"), os.O_CREATE|os.O_WRONLY, 0o644)),
		"open rw":  openErr(os.OpenFile(filepath.Join(snapTree, "big"), os.O_RDWR, 0)),
		"unlink":   os.Remove(filepath.Join(snapTree, "big")),
		"mkdir":    os.Mkdir(filepath.Join(snapTree, "d"), 0o755),
		"rmdir":    unix.Rmdir(snapTree),
		"rename":   unix.Rename(filepath.Join(snapTree, "big"), filepath.Join(snapTree, "big2")),
		"chmod":    os.Chmod(filepath.Join(snapTree, "big"), 0o600),
		"truncate": os.Truncate(filepath.Join(snapTree, "big"), 0),
		"setxattr": unix.Setxattr(filepath.Join(snapTree, "big"), "user.v", []byte("3"), 0),
		"symlink":  os.Symlink("x", filepath.Join(snapTree, "l")),
		"link":     os.Link(filepath.Join(snapTree, "big"), filepath.Join(snapTree, "big3")),
		"utimes":   unix.UtimesNanoAt(unix.AT_FDCWD, filepath.Join(snapTree, "big"), []unix.Timespec{{}, {}}, 0),
	}
	for _, op := range sortedKeys(ro) {
		wantErrno(t, "in a snapshot: "+op, ro[op], syscall.EROFS)
	}
	wantErrno(t, "link from a snapshot into the live view",
		os.Link(filepath.Join(snapTree, "big"), filepath.Join(live, "big4")), syscall.EXDEV)

	// Listing, rename and removal of snapshots.
	if names := readNames(t, snapdir); strings.Join(names, ",") != "s1" {
		t.Errorf(".snapshots lists %q, want [s1]", names)
	}
	for _, e := range readNames(t, mnt) {
		if e == ".snapshots" {
			t.Errorf("the root lists .snapshots without -o snapdir=visible")
		}
	}
	check(t, os.Mkdir(filepath.Join(snapdir, "s2"), 0o755))
	check(t, unix.Rename(filepath.Join(snapdir, "s2"), filepath.Join(snapdir, "s2b")))
	wantErrno(t, "mkdir of an existing snapshot name", os.Mkdir(filepath.Join(snapdir, "s1"), 0o755), syscall.EEXIST)
	remount(t, pool, "vol", mnt)
	compareManifests(t, "snapshot after remount", before, manifest(t, snapTree))
	if names := readNames(t, snapdir); strings.Join(names, ",") != "s1,s2b" {
		t.Errorf(".snapshots after remount lists %q, want [s1 s2b]", names)
	}
	check(t, unix.Rmdir(filepath.Join(snapdir, "s2b")))
	if _, err := os.Stat(filepath.Join(snapdir, "s2b")); !os.IsNotExist(err) {
		t.Errorf("stat of a destroyed snapshot: %v", err)
	}

	// The CLI goes through the mount while the volume is mounted.
	snapfsOK(t, "-p", pool, "snapshot", "create", "vol", "cli")
	if _, err := os.Stat(filepath.Join(snapdir, "cli", "tree", "new")); err != nil {
		t.Errorf("snapshot taken with the CLI while mounted: %v", err)
	}
	if out := snapfsOK(t, "-p", pool, "snapshot", "list", "vol"); !strings.Contains(out, "cli") || !strings.Contains(out, "s1") {
		t.Errorf("snapshot list while mounted:\n%s", out)
	}
	snapfsOK(t, "-p", pool, "snapshot", "destroy", "vol@cli")
	if names := readNames(t, snapdir); strings.Join(names, ",") != "s1" {
		t.Errorf(".snapshots after snapshot destroy lists %q, want [s1]", names)
	}
}

func openErr(f *os.File, err error) error {
	if f != nil {
		f.Close()
	}
	return err
}

// TestBranch creates a writable branch of a snapshot with the CLI and runs
// the POSIX suite inside it; the live volume and the snapshot stay as they
// were.
func TestBranch(t *testing.T) {
	mnt, pool := mountVolume(t, mountOpts{})
	writeFile(t, filepath.Join(mnt, "base"), pattern(300_000, 70))
	check(t, os.Mkdir(filepath.Join(mnt, ".snapshots", "s1"), 0o755))
	umount(t, pool, mnt)
	snapfsOK(t, "-p", pool, "branch", "create", "vol@s1", "br")
	mountAt(t, pool, "vol", mnt)

	branch := filepath.Join(mnt, ".snapshots", "br")
	wantContent(t, filepath.Join(branch, "base"), pattern(300_000, 70))
	writeFile(t, filepath.Join(branch, "base"), []byte("changed in the branch"))
	wantContent(t, filepath.Join(mnt, "base"), pattern(300_000, 70))
	wantContent(t, filepath.Join(mnt, ".snapshots", "s1", "base"), pattern(300_000, 70))

	runSuite(t, branch, posixSuite)

	for _, n := range readNames(t, mnt) {
		if n != "base" {
			t.Errorf("the suite run in the branch left %q in the live volume", n)
		}
	}
	wantErrno(t, "rename from the branch into the live view",
		unix.Rename(filepath.Join(branch, "base"), filepath.Join(mnt, "from-branch")), syscall.EXDEV)
}
