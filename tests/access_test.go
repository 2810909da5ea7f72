package tests

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// Access control, end to end: snapshot views are read-only even for root,
// default_permissions is honoured, --allow-other decides whether other
// users reach the mount at all, the control socket refuses other users,
// and only the volume's owner and root may create or destroy snapshots.
// The other user is uid/gid 65534 (nobody), reached with setpriv.

const nobody = "65534"

// needRoot skips a test that must switch users.
func needRoot(t *testing.T) {
	t.Helper()
	needRootUser(t)
}

// asNobody runs name args as uid and gid 65534 with no supplementary groups.
func asNobody(t *testing.T, name string, args ...string) result {
	t.Helper()
	full := append([]string{"--reuid=" + nobody, "--regid=" + nobody, "--clear-groups", name}, args...)
	return run(t, "/", nil, "setpriv", full...)
}

// traversable makes every directory from p up to (and including) the
// test root searchable by others (o+x), so uid 65534 can reach p: the
// test root and t.TempDir() directories are created mode 0700.
func traversable(t *testing.T, p string) {
	t.Helper()
	root := filepath.Clean(testRoot)
	for d := filepath.Clean(p); ; d = filepath.Dir(d) {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			check(t, os.Chmod(d, fi.Mode().Perm()|0o001))
		}
		if d == root || d == "/" || d == filepath.Dir(d) {
			return
		}
	}
}

// wantDenied fails unless r failed with a permission error on stderr.
func wantDenied(t *testing.T, what string, r result) {
	t.Helper()
	if r.err == nil {
		t.Errorf("%s as uid %s succeeded; stdout %q", what, nobody, r.stdout)
		return
	}
	t.Logf("%s as uid %s: %s", what, nobody, strings.TrimSpace(r.stderr))
	low := strings.ToLower(r.stderr)
	if !strings.Contains(low, "permission denied") && !strings.Contains(low, "operation not permitted") &&
		!strings.Contains(low, "only root and the owner") {
		t.Errorf("%s as uid %s: %v, stderr %q; want a permission error", what, nobody, r.err, strings.TrimSpace(r.stderr))
	}
}

func wantOK(t *testing.T, what string, r result) {
	t.Helper()
	if r.err != nil {
		t.Errorf("%s as uid %s: %v, stderr %q", what, nobody, r.err, strings.TrimSpace(r.stderr))
	}
}

// TestAccessSnapshotReadOnly: every change in .snapshots/NAME is EROFS,
// for root too.
func TestAccessSnapshotReadOnly(t *testing.T) {
	mnt, _ := mountVolume(t, mountOpts{})
	writeFile(t, filepath.Join(mnt, "f"), []byte("data"))
	check(t, os.Mkdir(filepath.Join(mnt, "d"), 0o755))
	check(t, os.Mkdir(filepath.Join(mnt, ".snapshots", "s1"), 0o755))
	snap := filepath.Join(mnt, ".snapshots", "s1")
	f, d := filepath.Join(snap, "f"), filepath.Join(snap, "d")

	_, err := os.OpenFile(f, os.O_WRONLY, 0)
	wantErrno(t, "open O_WRONLY in a snapshot", err, syscall.EROFS)
	_, err = os.OpenFile(f, os.O_RDWR|os.O_TRUNC, 0)
	wantErrno(t, "open O_TRUNC in a snapshot", err, syscall.EROFS)
	_, err = os.OpenFile(filepath.Join(snap, "new"), os.O_WRONLY|os.O_CREATE, 0o644)
	wantErrno(t, "create in a snapshot", err, syscall.EROFS)
	wantErrno(t, "unlink in a snapshot", os.Remove(f), syscall.EROFS)
	wantErrno(t, "rmdir in a snapshot", syscall.Rmdir(d), syscall.EROFS)
	wantErrno(t, "mkdir in a snapshot", os.Mkdir(filepath.Join(snap, "nd"), 0o755), syscall.EROFS)
	wantErrno(t, "chmod in a snapshot", os.Chmod(f, 0o600), syscall.EROFS)
	wantErrno(t, "chown in a snapshot", os.Chown(f, 1, 1), syscall.EROFS)
	wantErrno(t, "truncate in a snapshot", os.Truncate(f, 0), syscall.EROFS)
	wantErrno(t, "symlink in a snapshot", os.Symlink("f", filepath.Join(snap, "l")), syscall.EROFS)
	wantErrno(t, "rename in a snapshot", os.Rename(f, filepath.Join(snap, "g")), syscall.EROFS)
	wantErrno(t, "setxattr in a snapshot", syscall.Setxattr(f, "user.k", []byte("v"), 0), syscall.EROFS)
	// Nothing changed.
	wantContent(t, f, []byte("data"))
	if fi, err := os.Stat(f); err != nil || fi.Mode().Perm() != 0o644 {
		t.Errorf("snapshot file after refused changes: %v, %v", fi, err)
	}
}

// TestAccessDefaultPermissions: with --allow-other, uid 65534 enters the
// mount and the kernel applies ordinary permission checks.
func TestAccessDefaultPermissions(t *testing.T) {
	needRoot(t)
	mnt, _ := mountVolume(t, mountOpts{MountArgs: []string{"--allow-other"}})
	traversable(t, filepath.Dir(mnt))
	check(t, os.WriteFile(filepath.Join(mnt, "secret"), []byte("s"), 0o600))
	check(t, os.Chmod(filepath.Join(mnt, "secret"), 0o600))
	check(t, os.WriteFile(filepath.Join(mnt, "public"), []byte("p"), 0o644))
	check(t, os.Chmod(filepath.Join(mnt, "public"), 0o644))
	check(t, os.Mkdir(filepath.Join(mnt, "dir"), 0o755))
	check(t, os.Chmod(filepath.Join(mnt, "dir"), 0o755))

	wantOK(t, "ls of the mount", asNobody(t, "ls", mnt))
	wantDenied(t, "reading a 0600 root file", asNobody(t, "cat", filepath.Join(mnt, "secret")))
	if r := asNobody(t, "cat", filepath.Join(mnt, "public")); r.err != nil || r.stdout != "p" {
		t.Errorf("reading a 0644 root file as uid %s: %v, %q, stderr %q", nobody, r.err, r.stdout, r.stderr)
	}
	wantDenied(t, "creating in a 0755 root dir", asNobody(t, "touch", filepath.Join(mnt, "dir", "x")))
	wantDenied(t, "writing a 0644 root file", asNobody(t, "sh", "-c", "echo x >> "+filepath.Join(mnt, "public")))
	wantDenied(t, "chmod of a root file", asNobody(t, "chmod", "666", filepath.Join(mnt, "public")))
	wantDenied(t, "unlink in a 0755 root dir", asNobody(t, "rm", "-f", filepath.Join(mnt, "public")))
	if _, err := os.Stat(filepath.Join(mnt, "dir", "x")); err == nil {
		t.Errorf("uid %s created a file in a 0755 root-owned directory", nobody)
	}
	wantContent(t, filepath.Join(mnt, "public"), []byte("p"))
	// A directory opened up to others is writable by them, and the file
	// they create is theirs.
	check(t, os.Mkdir(filepath.Join(mnt, "open"), 0o777))
	check(t, os.Chmod(filepath.Join(mnt, "open"), 0o777))
	wantOK(t, "creating in a 0777 dir", asNobody(t, "touch", filepath.Join(mnt, "open", "mine")))
	if fi, err := os.Stat(filepath.Join(mnt, "open", "mine")); err != nil {
		t.Error(err)
	} else if st := fi.Sys().(*syscall.Stat_t); st.Uid != 65534 || st.Gid != 65534 {
		t.Errorf("file created by uid %s is owned by %d:%d", nobody, st.Uid, st.Gid)
	}
}

// TestAccessNoAllowOther: without --allow-other no other uid gets in.
func TestAccessNoAllowOther(t *testing.T) {
	needRoot(t)
	mnt, _ := mountVolume(t, mountOpts{})
	traversable(t, filepath.Dir(mnt))
	writeFile(t, filepath.Join(mnt, "public"), []byte("p"))
	check(t, os.Chmod(filepath.Join(mnt, "public"), 0o644))
	wantDenied(t, "stat of the mount", asNobody(t, "stat", mnt))
	wantDenied(t, "ls of the mount", asNobody(t, "ls", mnt))
	wantDenied(t, "reading a 0644 file", asNobody(t, "cat", filepath.Join(mnt, "public")))
	wantDenied(t, "ls of .snapshots", asNobody(t, "ls", filepath.Join(mnt, ".snapshots")))
}

// TestAccessControlSocket: the daemon's control socket refuses a uid that
// is neither root nor the pool directory's owner, even when the pool
// directory is open to everyone.
func TestAccessControlSocket(t *testing.T) {
	needRoot(t)
	mnt, pool := mountVolume(t, mountOpts{})
	traversable(t, filepath.Dir(mnt))
	check(t, os.Chmod(pool, 0o755))
	snapfsOK(t, "-p", pool, "volume", "list")
	for _, args := range [][]string{
		{"volume", "list"},
		{"pool", "status"},
		{"snapshot", "create", "vol", "bynobody"},
		{"volume", "create", "nobodys"},
	} {
		r := asNobody(t, snapfsBin, append([]string{"-p", pool}, args...)...)
		wantDenied(t, "snapfs "+strings.Join(args, " "), r)
	}
	// Behind the socket's mode, the daemon checks the peer's credentials:
	// open the socket to everyone and the request is still refused.
	sock := filepath.Join(pool, "control.sock")
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("control socket: %v, %v; want mode 0600", fi, err)
	} else {
		check(t, os.Chmod(sock, 0o666))
		r := asNobody(t, snapfsBin, "-p", pool, "volume", "list")
		wantDenied(t, "volume list through a 0666 socket", r)
		if !strings.Contains(r.stderr, "neither root nor the owner") {
			t.Errorf("through a 0666 socket the daemon did not refuse by credentials: %q", strings.TrimSpace(r.stderr))
		}
		wantDenied(t, "snapshot create through a 0666 socket",
			asNobody(t, snapfsBin, "-p", pool, "snapshot", "create", "vol", "bynobody"))
		check(t, os.Chmod(sock, 0o600))
	}
	if _, err := os.Stat(filepath.Join(mnt, ".snapshots", "bynobody")); err == nil {
		t.Errorf("uid %s created a snapshot through the control socket", nobody)
	}
	// Root still gets through, and nothing was created.
	if out := snapfsOK(t, "-p", pool, "volume", "list"); strings.Contains(out, "nobodys") {
		t.Errorf("uid %s created a volume: %q", nobody, out)
	}
}

// TestAccessSnapshotMkdirByOther: a user who does not own the volume
// cannot take or destroy its snapshots through .snapshots.
func TestAccessSnapshotMkdirByOther(t *testing.T) {
	needRoot(t)
	mnt, _ := mountVolume(t, mountOpts{MountArgs: []string{"--allow-other"}})
	traversable(t, filepath.Dir(mnt))
	snaps := filepath.Join(mnt, ".snapshots")
	check(t, os.Mkdir(filepath.Join(snaps, "rootsnap"), 0o755))

	wantDenied(t, "mkdir .snapshots/NAME", asNobody(t, "mkdir", filepath.Join(snaps, "nobodysnap")))
	wantDenied(t, "rmdir .snapshots/NAME", asNobody(t, "rmdir", filepath.Join(snaps, "rootsnap")))
	wantDenied(t, "mv .snapshots/A .snapshots/B", asNobody(t, "mv", filepath.Join(snaps, "rootsnap"), filepath.Join(snaps, "moved")))
	if _, err := os.Stat(filepath.Join(snaps, "nobodysnap")); err == nil {
		t.Errorf("uid %s took a snapshot of a root-owned volume", nobody)
	}
	if _, err := os.Stat(filepath.Join(snaps, "rootsnap")); err != nil {
		t.Errorf("uid %s destroyed or renamed a snapshot of a root-owned volume: %v", nobody, err)
	}
	// Root may.
	check(t, syscall.Rmdir(filepath.Join(snaps, "rootsnap")))
}
