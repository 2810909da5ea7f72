package tests

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// TestBranchTree builds a tree of depth 3 through the mount and the CLI
// (volume -> snapshot -> branch -> snapshot -> branch -> snapshot -> branch
// -> snapshot), each branch snapshotted by mkdir in its own .snapshots, and
// checks with cp, diff and stat that every view keeps what it saw, that
// writes never leak between levels, that a branch's snapshots are
// read-only, the rmdir rules at every depth, and that everything reads
// the same after a remount.
func TestBranchTree(t *testing.T) {
	mnt, pool := mountVolume(t, mountOpts{})
	live := filepath.Join(mnt, "tree")
	mustRun(t, "", nil, "cp", "-a", filepath.Join(goSrc(t), "bufio"), live)
	writeFile(t, filepath.Join(live, "big"), pattern(1<<20, 1))
	check(t, os.Mkdir(filepath.Join(mnt, ".snapshots", "s1"), 0o755))
	liveBefore := manifest(t, mnt)

	// Depth 1: branch b1 of vol@s1, changed, then snapshotted with mkdir
	// in its own .snapshots.
	snapfsOK(t, "-p", pool, "branch", "create", "vol@s1", "b1")
	b1 := filepath.Join(mnt, ".snapshots", "b1")
	writeFile(t, filepath.Join(b1, "tree", "big"), pattern(1<<20, 2))
	check(t, os.Remove(filepath.Join(b1, "tree", "scan.go")))
	writeFile(t, filepath.Join(b1, "level"), []byte("b1"))
	for _, n := range readNames(t, b1) {
		if n == ".snapshots" {
			t.Errorf("the branch root lists .snapshots without -o snapdir=visible")
		}
	}
	check(t, os.Mkdir(filepath.Join(b1, ".snapshots", "t1"), 0o755))
	t1 := filepath.Join(b1, ".snapshots", "t1")
	b1AtT1 := manifest(t, b1)
	compareManifests(t, "b1@t1 right after mkdir", b1AtT1, manifest(t, t1))

	// Depth 2: branch b2 of vol/b1@t1, through the CLI while mounted.
	snapfsOK(t, "-p", pool, "branch", "create", "vol/b1@t1", "b2")
	b2 := filepath.Join(b1, ".snapshots", "b2")
	compareManifests(t, "b2 as forked", b1AtT1, manifest(t, b2))
	writeFile(t, filepath.Join(b2, "level"), []byte("b2"))
	check(t, os.Rename(filepath.Join(b2, "tree", "bufio.go"), filepath.Join(b2, "moved.go")))
	snapfsOK(t, "-p", pool, "snapshot", "create", "vol/b1/b2", "u1")
	u1 := filepath.Join(b2, ".snapshots", "u1")
	b2AtU1 := manifest(t, b2)
	compareManifests(t, "b2@u1 (taken with the CLI)", b2AtU1, manifest(t, u1))

	// Depth 3: branch b3 of vol/b1/b2@u1, snapshot w1 of it by mkdir.
	snapfsOK(t, "-p", pool, "branch", "create", "vol/b1/b2@u1", "b3")
	b3 := filepath.Join(b2, ".snapshots", "b3")
	writeFile(t, filepath.Join(b3, "level"), []byte("b3"))
	writeFile(t, filepath.Join(b3, "tree", "big"), pattern(1<<20, 3))
	check(t, os.Mkdir(filepath.Join(b3, ".snapshots", "w1"), 0o755))
	w1 := filepath.Join(b3, ".snapshots", "w1")
	if r := run(t, "", nil, "diff", "-r", b3, w1); r.err != nil {
		t.Errorf("diff -r of b3 and its new snapshot w1: %v\n%s", r.err, truncate(r.stdout, 2000))
	}
	b3AtW1 := manifest(t, w1)

	// cp -a out of the depth-3 views reproduces them.
	out := t.TempDir()
	mustRun(t, "", nil, "cp", "-a", w1, filepath.Join(out, "w1"))
	mustRun(t, "", nil, "cp", "-a", u1, filepath.Join(out, "u1"))
	mustRun(t, "", nil, "diff", "-r", w1, filepath.Join(out, "w1"))
	mustRun(t, "", nil, "diff", "-r", u1, filepath.Join(out, "u1"))

	// Changes at one level never show at another.
	writeFile(t, filepath.Join(b3, "level"), []byte("b3 again"))
	writeFile(t, filepath.Join(b2, "tree", "big"), pattern(1<<20, 4))
	writeFile(t, filepath.Join(mnt, "tree", "big"), pattern(1<<20, 5))
	if r := run(t, "", nil, "diff", "-r", b3, w1); r.err == nil {
		t.Errorf("diff -r finds no difference between b3 and w1 after a write in b3")
	}
	compareManifests(t, "w1 after writes in b3, b2 and the volume", b3AtW1, manifest(t, w1))
	mustRun(t, "", nil, "diff", "-r", w1, filepath.Join(out, "w1"))
	compareManifests(t, "u1 after writes in b2 and b3", b2AtU1, manifest(t, u1))
	compareManifests(t, "t1 after writes below it", b1AtT1, manifest(t, t1))
	wantContent(t, filepath.Join(b1, "level"), []byte("b1"))
	wantContent(t, filepath.Join(b1, "tree", "big"), pattern(1<<20, 2))
	wantContent(t, filepath.Join(b2, "level"), []byte("b2"))
	wantContent(t, filepath.Join(b3, "tree", "big"), pattern(1<<20, 3))
	wantContent(t, filepath.Join(mnt, ".snapshots", "s1", "tree", "big"), pattern(1<<20, 1))
	if _, err := os.Stat(filepath.Join(mnt, "level")); !os.IsNotExist(err) {
		t.Errorf("a branch's file leaked into the volume: %v", err)
	}
	liveBefore["tree/big"] = manifest(t, mnt)["tree/big"]
	compareManifests(t, "the volume after writes in its branches", liveBefore, manifest(t, mnt))

	// A branch's snapshot is read-only and has no .snapshots.
	wantErrno(t, "write in a branch's snapshot", os.WriteFile(filepath.Join(w1, "level"), []byte("x"), 0o644), syscall.EROFS)
	wantErrno(t, "create in a branch's snapshot", openErr(os.Create(filepath.Join(w1, "new"))), syscall.EROFS)
	wantErrno(t, "mkdir in a branch's snapshot", os.Mkdir(filepath.Join(w1, "d"), 0o755), syscall.EROFS)
	wantErrno(t, "unlink in a branch's snapshot", os.Remove(filepath.Join(w1, "level")), syscall.EROFS)
	wantErrno(t, "chmod in a branch's snapshot", os.Chmod(filepath.Join(w1, "level"), 0o600), syscall.EROFS)
	wantErrno(t, "setxattr in a branch's snapshot", unix.Setxattr(filepath.Join(w1, "level"), "user.x", []byte("1"), 0), syscall.EROFS)
	_, err := os.Stat(filepath.Join(w1, ".snapshots"))
	wantErrno(t, "a branch's snapshot has .snapshots", err, syscall.ENOENT)

	// .snapshots is reserved in a branch root, and its rules are those of
	// the volume's: rmdir of a snapshot with branches is EBUSY, of a
	// branch ENOTEMPTY; mv renames.
	wantErrno(t, "mkdir .snapshots in a branch root", os.Mkdir(filepath.Join(b2, ".snapshots"), 0o755), syscall.EEXIST)
	wantErrno(t, "create .snapshots in a branch root", openErr(os.Create(filepath.Join(b2, ".snapshots"))), syscall.EISDIR)
	wantErrno(t, "symlink .snapshots in a branch root", os.Symlink("x", filepath.Join(b2, ".snapshots")), syscall.EEXIST)
	wantErrno(t, "mv onto .snapshots in a branch root", unix.Rename(filepath.Join(b2, "tree"), filepath.Join(b2, ".snapshots")), syscall.EBUSY)
	wantErrno(t, "rmdir of u1, which b3 was forked from", unix.Rmdir(u1), syscall.EBUSY)
	wantErrno(t, "rmdir of t1, which b2 was forked from", unix.Rmdir(t1), syscall.EBUSY)
	wantErrno(t, "rmdir of the branch b3", unix.Rmdir(b3), syscall.ENOTEMPTY)
	wantErrno(t, "mkdir of an existing name in b3's .snapshots", os.Mkdir(w1, 0o755), syscall.EEXIST)
	wantErrno(t, "mv of a snapshot out of a branch's .snapshots", unix.Rename(w1, filepath.Join(b3, "w1")), syscall.EXDEV)
	check(t, os.Mkdir(filepath.Join(b3, ".snapshots", "w2"), 0o755))
	check(t, unix.Rename(filepath.Join(b3, ".snapshots", "w2"), filepath.Join(b3, ".snapshots", "w3")))
	if got := strings.Join(readNames(t, filepath.Join(b3, ".snapshots")), ","); got != "w1,w3" {
		t.Errorf("b3's .snapshots lists %s, want w1,w3", got)
	}
	check(t, unix.Rmdir(filepath.Join(b3, ".snapshots", "w3")))
	if out := snapfsOK(t, "-p", pool, "snapshot", "list", "vol/b1/b2/b3"); !strings.Contains(out, "w1") || strings.Contains(out, "w3") {
		t.Errorf("snapshot list vol/b1/b2/b3 after mkdir, mv, rmdir:\n%s", out)
	}

	// Remount: every level reads the same, with the same inode numbers.
	views := map[string]string{"s1": filepath.Join(mnt, ".snapshots", "s1"), "b1": b1, "t1": t1, "b2": b2, "u1": u1, "b3": b3, "w1": w1}
	before := map[string]map[string]entry{}
	inos := map[string]map[string]uint64{}
	for name, p := range views {
		before[name] = manifest(t, p)
		inos[name] = inodes(t, p)
	}
	remount(t, pool, "vol", mnt)
	for name, p := range views {
		compareManifests(t, name+" after remount", before[name], manifest(t, p))
		for rel, ino := range inodes(t, p) {
			if inos[name][rel] != ino {
				t.Errorf("%s/%s: st_ino %x before the remount, %x after", name, rel, inos[name][rel], ino)
			}
		}
	}
	remount(t, pool, "vol", mnt, "-o", "snapdir=visible")
	if names := readNames(t, b2); !contains(names, ".snapshots") {
		t.Errorf("with snapdir=visible the branch root lists %v, without .snapshots", names)
	}

	// Destroying the tree: refused while it has children, then recursive.
	r := snapfs(t, "-p", pool, "branch", "destroy", "vol/b1")
	if r.err == nil || !strings.Contains(r.stderr, "t1") || !strings.Contains(r.stderr, "b2") {
		t.Errorf("branch destroy of b1 with children: %v: %s", r.err, r.stderr)
	}
	snapfsOK(t, "-p", pool, "branch", "destroy", "vol/b1", "--recursive")
	if got := strings.Join(readNames(t, filepath.Join(mnt, ".snapshots")), ","); got != "s1" {
		t.Errorf(".snapshots after destroying the b1 tree lists %s, want s1", got)
	}
	check(t, unix.Rmdir(filepath.Join(mnt, ".snapshots", "s1")))
	snapfsOK(t, "-p", pool, "sync")
	if out := snapfsOK(t, "-p", pool, "fsck"); !strings.Contains(out, "0 problem") {
		t.Errorf("fsck after destroying the tree:\n%s", out)
	}
}

// TestMountBranch mounts a branch of a branch on its own, next to its
// volume, and checks it with ls, cp and diff against the same branch seen
// through the volume's .snapshots, with its own .snapshots working, and
// that it reads the same after a remount.
func TestMountBranch(t *testing.T) {
	mnt, pool := mountVolume(t, mountOpts{})
	writeFile(t, filepath.Join(mnt, "base"), pattern(300_000, 10))
	mustRun(t, "", nil, "cp", "-a", filepath.Join(goSrc(t), "bufio"), filepath.Join(mnt, "tree"))
	snapfsOK(t, "-p", pool, "snapshot", "create", "vol", "s1")
	snapfsOK(t, "-p", pool, "branch", "create", "vol@s1", "b")
	writeFile(t, filepath.Join(mnt, ".snapshots", "b", "in-b"), []byte("b"))
	snapfsOK(t, "-p", pool, "snapshot", "create", "vol/b", "t1")
	snapfsOK(t, "-p", pool, "branch", "create", "vol/b@t1", "c")
	viaVol := filepath.Join(mnt, ".snapshots", "b", ".snapshots", "c")

	own := filepath.Join(t.TempDir(), "c")
	check(t, os.Mkdir(own, 0o755))
	mountAt(t, pool, "vol/b/c", own)
	if got := strings.Join(readNames(t, own), ","); got != "base,in-b,tree" {
		t.Errorf("ls of vol/b/c mounted on its own: %s", got)
	}
	wantContent(t, filepath.Join(own, "base"), pattern(300_000, 10))
	writeFile(t, filepath.Join(own, "in-c"), pattern(200_000, 11))
	mustRun(t, "", nil, "diff", "-r", own, viaVol)
	copied := filepath.Join(t.TempDir(), "copy")
	mustRun(t, "", nil, "cp", "-a", own, copied)
	mustRun(t, "", nil, "diff", "-r", own, copied)
	if _, err := os.Stat(filepath.Join(mnt, ".snapshots", "b", "in-c")); !os.IsNotExist(err) {
		t.Errorf("a write in vol/b/c shows in vol/b: %v", err)
	}

	// Its own .snapshots: mkdir here, seen through the volume's mount too.
	for _, n := range readNames(t, own) {
		if n == ".snapshots" {
			t.Errorf("the branch's mount root lists .snapshots without -o snapdir=visible")
		}
	}
	check(t, os.Mkdir(filepath.Join(own, ".snapshots", "u1"), 0o755))
	if _, err := os.Stat(filepath.Join(viaVol, ".snapshots", "u1", "in-c")); err != nil {
		t.Errorf("snapshot u1 made in the branch's own mount, seen through the volume: %v", err)
	}
	wantErrno(t, "write in u1", os.WriteFile(filepath.Join(own, ".snapshots", "u1", "in-c"), nil, 0o644), syscall.EROFS)
	r := snapfs(t, "-p", pool, "mount", "vol/b/c", t.TempDir(), "-d")
	if r.err == nil || !strings.Contains(r.stderr, "already mounted") {
		t.Errorf("second mount of vol/b/c: %v: %s", r.err, r.stderr)
	}

	// A branch mounted on its own is not destroyed under the mount.
	for _, args := range [][]string{{"vol/b/c", "--recursive"}, {"vol/b", "--recursive"}} {
		r := snapfs(t, append([]string{"-p", pool, "branch", "destroy"}, args...)...)
		if r.err == nil || !strings.Contains(r.stderr, "is mounted at "+own) {
			t.Errorf("branch destroy %v while vol/b/c is mounted: %v: %s", args, r.err, r.stderr)
		}
	}
	wantContent(t, filepath.Join(own, "in-c"), pattern(200_000, 11))

	// Remount the branch alone (the volume's mount keeps the daemon), then
	// both, and compare content and inode numbers.
	before, inos := manifest(t, own), inodes(t, own)
	remount(t, pool, "vol/b/c", own)
	compareManifests(t, "vol/b/c after remounting it", before, manifest(t, own))
	umount(t, pool, own)
	umount(t, pool, mnt)
	mountAt(t, pool, "vol/b/c", own)
	compareManifests(t, "vol/b/c mounted alone, as the daemon's first mount", before, manifest(t, own))
	for rel, ino := range inodes(t, own) {
		if inos[rel] != ino {
			t.Errorf("%s: st_ino %x before the remount, %x after", rel, inos[rel], ino)
		}
	}
	if out := snapfsOK(t, "-p", pool, "snapshot", "list", "vol/b/c"); !strings.Contains(out, "u1") {
		t.Errorf("snapshot list vol/b/c through the branch's daemon:\n%s", out)
	}
	mustRun(t, "", nil, "diff", "-r", own, copied)
}

// inodes returns the st_ino of every path below root.
func inodes(t testing.TB, root string) map[string]uint64 {
	t.Helper()
	m := map[string]uint64{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		m[rel] = fi.Sys().(*syscall.Stat_t).Ino
		return nil
	})
	if err != nil {
		t.Fatalf("inodes of %s: %v", root, err)
	}
	return m
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}
