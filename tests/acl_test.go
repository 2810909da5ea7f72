package tests

import (
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// POSIX ACLs through the mount with the real tools: setfacl and getfacl,
// access checks as uid 65534 (setpriv), default ACLs and the umask, the
// mode and the mask in step, snapshots, branches and copies by cp -a,
// rsync -aA and tar --acls.

// getfacl returns getfacl's listing of p without the comment header,
// numeric ids.
func getfacl(t *testing.T, p string) string {
	t.Helper()
	return mustRun(t, "", nil, "getfacl", "-n", "--omit-header", p)
}

// aclMount mounts a volume with allow_other (so uid 65534 may enter) and
// returns the mount point, the pool and a directory others may traverse.
func aclMount(t *testing.T) (mnt, pool, dir string) {
	t.Helper()
	needRoot(t)
	needTool(t, "setfacl", "acl")
	needTool(t, "getfacl", "acl")
	mnt, pool = mountVolume(t, mountOpts{MountArgs: []string{"--allow-other"}})
	traversable(t, mnt)
	check(t, os.Chmod(mnt, 0o755))
	dir = filepath.Join(mnt, "acl")
	check(t, os.Mkdir(dir, 0o755))
	return mnt, pool, dir
}

// TestACLNamedUserAndGroup: a named user or group entry grants or denies
// exactly as the mode bits would not, the mode's group bits show the mask,
// and chmod rewrites the mask.
func TestACLNamedUserAndGroup(t *testing.T) {
	_, _, dir := aclMount(t)
	f := filepath.Join(dir, "secret")
	check(t, os.WriteFile(f, []byte("secret\n"), 0o600))

	wantDenied(t, "read of a 0600 file", asNobody(t, "cat", f))
	mustRun(t, "", nil, "setfacl", "-m", "u:65534:r", f)
	wantOK(t, "read granted by user:65534:r", asNobody(t, "cat", f))
	wantDenied(t, "write with only user:65534:r", asNobody(t, "sh", "-c", "echo x >> "+f))
	if got, want := getfacl(t, f), "user::rw-\nuser:65534:r--\ngroup::---\nmask::r--\nother::---\n\n"; got != want {
		t.Errorf("getfacl after setfacl -m u:65534:r:\n%s\nwant:\n%s", got, want)
	}
	if m := stat(t, f).Mode & 0o777; m != 0o640 {
		t.Errorf("mode with mask r--: %o, want 640 (group bits show the mask)", m)
	}

	// chmod sets the mask, not the group entry: g-r takes the grant away.
	check(t, os.Chmod(f, 0o600))
	if got := getfacl(t, f); !strings.Contains(got, "mask::---") || !strings.Contains(got, "user:65534:r--\t#effective:---") {
		t.Errorf("getfacl after chmod 600:\n%s\nwant mask::--- and user:65534 effective ---", got)
	}
	wantDenied(t, "read after chmod 600 masks the grant", asNobody(t, "cat", f))
	check(t, os.Chmod(f, 0o640))
	wantOK(t, "read after chmod 640 restores the mask", asNobody(t, "cat", f))

	// A named user entry with no permissions denies what other allows,
	// once the mask is not empty (with an empty mask, the group bits of
	// the mode, the kernel checks the other bits alone, on ext4 too).
	check(t, os.Chmod(f, 0o644))
	mustRun(t, "", nil, "setfacl", "-m", "u:65534:-", f)
	wantOK(t, "read with user:65534:--- and an empty mask (other r--)", asNobody(t, "cat", f))
	mustRun(t, "", nil, "setfacl", "-m", "g::r", f)
	wantDenied(t, "read denied by user:65534:---", asNobody(t, "cat", f))

	// A named group: 65534 in the group gets the group entry's rights.
	g := filepath.Join(dir, "shared")
	check(t, os.WriteFile(g, []byte("shared\n"), 0o600))
	mustRun(t, "", nil, "setfacl", "-m", "g:65534:rw", g)
	wantOK(t, "write granted by group:65534:rw", asNobody(t, "sh", "-c", "echo more >> "+g))
	wantContent(t, g, []byte("shared\nmore\n"))

	// Removing every extended entry leaves the mode, and no ACL stored.
	mustRun(t, "", nil, "setfacl", "-b", g)
	if _, err := unix.Getxattr(g, "system.posix_acl_access", make([]byte, 256)); err != unix.ENODATA {
		t.Errorf("getxattr after setfacl -b: %v, want ENODATA", err)
	}
	wantDenied(t, "write after setfacl -b", asNobody(t, "sh", "-c", "echo x >> "+g))

	// A directory: search granted by a named user entry.
	d := filepath.Join(dir, "private")
	check(t, os.Mkdir(d, 0o700))
	check(t, os.WriteFile(filepath.Join(d, "in"), []byte("in\n"), 0o644))
	wantDenied(t, "cat through a 0700 directory", asNobody(t, "cat", filepath.Join(d, "in")))
	mustRun(t, "", nil, "setfacl", "-m", "u:65534:x", d)
	wantOK(t, "cat through user:65534:x", asNobody(t, "cat", filepath.Join(d, "in")))
	wantDenied(t, "ls without r", asNobody(t, "ls", d))

	// Everything survives the kernel forgetting the inodes.
	check(t, os.WriteFile("/proc/sys/vm/drop_caches", []byte("2"), 0))
	wantOK(t, "cat through user:65534:x after a cache drop", asNobody(t, "cat", filepath.Join(d, "in")))
	wantDenied(t, "read denied by user:65534:--- after a cache drop", asNobody(t, "cat", f))
}

// TestACLDefaultInheritance: a directory's default ACL becomes the access
// ACL of new files and directories, masked by the mode asked for and not
// by the umask; new directories inherit the default ACL; without a
// default ACL the umask applies.
func TestACLDefaultInheritance(t *testing.T) {
	_, _, dir := aclMount(t)
	d := filepath.Join(dir, "inherit")
	check(t, os.Mkdir(d, 0o755))
	mustRun(t, "", nil, "setfacl", "-d", "-m", "u:65534:rwx,g::r-x,o::---", d)

	old := syscall.Umask(0o077)
	defer syscall.Umask(old)
	check(t, os.WriteFile(filepath.Join(d, "f"), []byte("f\n"), 0o666))
	check(t, os.Mkdir(filepath.Join(d, "sub"), 0o777))
	check(t, os.WriteFile(filepath.Join(dir, "plain"), []byte("p\n"), 0o666))
	check(t, os.Mkdir(filepath.Join(dir, "plaindir"), 0o777))
	syscall.Umask(old)

	if got, want := getfacl(t, filepath.Join(d, "f")), "user::rw-\nuser:65534:rwx\t#effective:rw-\ngroup::r-x\t#effective:r--\nmask::rw-\nother::---\n\n"; got != want {
		t.Errorf("getfacl of a file created 0666 under umask 077 in a directory with a default ACL:\n%s\nwant:\n%s", got, want)
	}
	if m := stat(t, filepath.Join(d, "f")).Mode & 0o777; m != 0o660 {
		t.Errorf("mode of the new file: %o, want 660 (umask ignored, the ACL masks)", m)
	}
	sub := getfacl(t, filepath.Join(d, "sub"))
	for _, want := range []string{"user:65534:rwx\n", "mask::rwx\n", "default:user:65534:rwx\n", "default:other::---\n"} {
		if !strings.Contains(sub, want) {
			t.Errorf("getfacl of a new subdirectory lacks %q:\n%s", want, sub)
		}
	}
	if m := stat(t, filepath.Join(d, "sub")).Mode & 0o777; m != 0o770 {
		t.Errorf("mode of the new subdirectory: %o, want 770", m)
	}
	// One more level down: the inherited default ACL is inherited again.
	check(t, os.WriteFile(filepath.Join(d, "sub", "g"), []byte("g\n"), 0o640))
	if got := getfacl(t, filepath.Join(d, "sub", "g")); !strings.Contains(got, "user:65534:rwx\t#effective:r--") {
		t.Errorf("getfacl two levels down:\n%s", got)
	}
	wantOK(t, "read of an inherited grant", asNobody(t, "cat", filepath.Join(d, "sub", "g")))

	// No default ACL: the umask applies, and no ACL is stored.
	if m := stat(t, filepath.Join(dir, "plain")).Mode & 0o777; m != 0o600 {
		t.Errorf("mode of a file created 0666 under umask 077 without a default ACL: %o, want 600", m)
	}
	if m := stat(t, filepath.Join(dir, "plaindir")).Mode & 0o777; m != 0o700 {
		t.Errorf("mode of a directory created 0777 under umask 077 without a default ACL: %o, want 700", m)
	}
	if _, err := unix.Getxattr(filepath.Join(dir, "plain"), "system.posix_acl_access", make([]byte, 256)); err != unix.ENODATA {
		t.Errorf("access ACL of a plain file: %v, want ENODATA", err)
	}
	// setfacl -k removes the default ACL: new files get the umask again.
	mustRun(t, "", nil, "setfacl", "-k", d)
	syscall.Umask(0o077)
	check(t, os.WriteFile(filepath.Join(d, "after"), []byte("a\n"), 0o666))
	syscall.Umask(old)
	if m := stat(t, filepath.Join(d, "after")).Mode & 0o777; m != 0o600 {
		t.Errorf("mode after setfacl -k: %o, want 600", m)
	}
}

// TestACLSnapshotsBranchesCopies: a snapshot freezes ACLs and refuses to
// change them (EROFS); a branch keeps them and changes its own; cp -a,
// rsync -aA and tar --acls copy them.
func TestACLSnapshotsBranchesCopies(t *testing.T) {
	needTool(t, "rsync", "rsync")
	mnt, pool, dir := aclMount(t)
	f := filepath.Join(dir, "f")
	check(t, os.WriteFile(f, []byte("f\n"), 0o640))
	mustRun(t, "", nil, "setfacl", "-m", "u:65534:rw,g:65534:r", f)
	mustRun(t, "", nil, "setfacl", "-d", "-m", "u:65534:rx", dir)
	want, wantDir := getfacl(t, f), getfacl(t, dir)

	check(t, os.Mkdir(filepath.Join(mnt, ".snapshots", "s1"), 0o755))
	mustRun(t, "", nil, "setfacl", "-m", "u:65534:---", f)
	sf := filepath.Join(mnt, ".snapshots", "s1", "acl", "f")
	if got := getfacl(t, sf); got != want {
		t.Errorf("snapshot's ACL after a later setfacl on the live file:\n%s\nwant:\n%s", got, want)
	}
	if got := getfacl(t, filepath.Dir(sf)); got != wantDir {
		t.Errorf("snapshot's directory ACL:\n%s\nwant:\n%s", got, wantDir)
	}
	r := run(t, "", nil, "setfacl", "-m", "u:65534:rwx", sf)
	if r.err == nil || !strings.Contains(r.stderr, "Read-only file system") {
		t.Errorf("setfacl in a snapshot: %v %q, want Read-only file system", r.err, r.stderr)
	}
	wantErrno(t, "removexattr of an ACL in a snapshot", unix.Removexattr(sf, "system.posix_acl_access"), syscall.EROFS)
	wantOK(t, "read granted in the snapshot by its frozen ACL", asNobody(t, "cat", sf))
	wantDenied(t, "read denied on the live file by its new ACL", asNobody(t, "cat", f))

	snapfsOK(t, "-p", pool, "branch", "create", "vol@s1", "b1")
	bf := filepath.Join(mnt, ".snapshots", "b1", "acl", "f")
	if got := getfacl(t, bf); got != want {
		t.Errorf("branch's ACL:\n%s\nwant:\n%s", got, want)
	}
	mustRun(t, "", nil, "setfacl", "-x", "g:65534", bf)
	if got := getfacl(t, sf); got != want {
		t.Errorf("snapshot's ACL after the branch changed its own:\n%s\nwant:\n%s", got, want)
	}
	check(t, os.WriteFile(filepath.Join(filepath.Dir(bf), "new"), []byte("n\n"), 0o644))
	if got := getfacl(t, filepath.Join(filepath.Dir(bf), "new")); !strings.Contains(got, "user:65534:r-x") {
		t.Errorf("a new file in the branch did not inherit the default ACL:\n%s", got)
	}

	// Copies: cp -a and rsync -aA inside the volume, tar --acls out and back.
	mustRun(t, "", nil, "cp", "-a", dir, filepath.Join(mnt, "cp"))
	want = getfacl(t, f)
	if got := getfacl(t, filepath.Join(mnt, "cp", "f")); got != want {
		t.Errorf("cp -a copy's ACL:\n%s\nwant:\n%s", got, want)
	}
	if got := getfacl(t, filepath.Join(mnt, "cp")); got != getfacl(t, dir) {
		t.Errorf("cp -a copy of the directory: ACL\n%s\nwant:\n%s", got, getfacl(t, dir))
	}
	mustRun(t, "", nil, "rsync", "-aA", dir+"/", filepath.Join(mnt, "rsync")+"/")
	if got := getfacl(t, filepath.Join(mnt, "rsync", "f")); got != want {
		t.Errorf("rsync -aA copy's ACL:\n%s\nwant:\n%s", got, want)
	}
	archive := filepath.Join(t.TempDir(), "acl.tar")
	mustRun(t, dir, nil, "tar", "--acls", "-cf", archive, ".")
	out := filepath.Join(mnt, "untar")
	check(t, os.Mkdir(out, 0o755))
	mustRun(t, out, nil, "tar", "--acls", "-xpf", archive)
	if got := getfacl(t, filepath.Join(out, "f")); got != want {
		t.Errorf("tar --acls copy's ACL:\n%s\nwant:\n%s", got, want)
	}
}

// TestACLBadInput: an ACL naming an unknown uid is stored as given; a
// malformed ACL is EINVAL; a default ACL on a file is EACCES; nothing
// changes after a refusal.
func TestACLBadInput(t *testing.T) {
	_, _, dir := aclMount(t)
	f := filepath.Join(dir, "f")
	check(t, os.WriteFile(f, []byte("f\n"), 0o640))

	mustRun(t, "", nil, "setfacl", "-m", "u:4000000:r", f)
	if got := getfacl(t, f); !strings.Contains(got, "user:4000000:r--\n") {
		t.Errorf("ACL for an unknown uid not stored as given:\n%s", got)
	}
	before := getfacl(t, f)
	beforeMode := stat(t, f).Mode

	const none = 0xffffffff
	for _, tc := range []struct {
		what  string
		name  string
		value []byte
		want  syscall.Errno
		path  string
	}{
		{"truncated entry", "system.posix_acl_access", aclValue([3]uint32{1, 6, none})[:9], syscall.EINVAL, f},
		{"wrong version (the kernel answers, as on ext4)", "system.posix_acl_access", append([]byte{3, 0, 0, 0}, aclValue([3]uint32{1, 6, none}, [3]uint32{4, 4, none}, [3]uint32{0x20, 4, none})[4:]...), syscall.EOPNOTSUPP, f},
		{"named user without a mask", "system.posix_acl_access", aclValue([3]uint32{1, 6, none}, [3]uint32{2, 4, 1000}, [3]uint32{4, 4, none}, [3]uint32{0x20, 4, none}), syscall.EINVAL, f},
		{"entries out of order", "system.posix_acl_access", aclValue([3]uint32{4, 4, none}, [3]uint32{1, 6, none}, [3]uint32{0x20, 4, none}), syscall.EINVAL, f},
		{"permission out of range", "system.posix_acl_access", aclValue([3]uint32{1, 8, none}, [3]uint32{4, 4, none}, [3]uint32{0x20, 4, none}), syscall.EINVAL, f},
		{"default ACL on a file", "system.posix_acl_default", aclValue([3]uint32{1, 6, none}, [3]uint32{4, 4, none}, [3]uint32{0x20, 4, none}), syscall.EACCES, f},
	} {
		err := unix.Setxattr(tc.path, tc.name, tc.value, 0)
		wantErrno(t, tc.what, err, tc.want)
	}
	// setfattr, as a user would send a raw value.
	r := run(t, "", nil, "setfattr", "-n", "system.posix_acl_access", "-v", "0x"+hex.EncodeToString([]byte{2, 0, 0, 0, 1}), f)
	if r.err == nil || !strings.Contains(r.stderr, "Invalid argument") {
		t.Errorf("setfattr of a malformed ACL: %v %q, want Invalid argument", r.err, r.stderr)
	}
	if got := getfacl(t, f); got != before {
		t.Errorf("ACL changed by refused calls:\n%s\nwant:\n%s", got, before)
	}
	if m := stat(t, f).Mode; m != beforeMode {
		t.Errorf("mode changed by refused calls: %o, want %o", m, beforeMode)
	}
	wantContent(t, f, []byte("f\n"))
}

// TestACLRollback: an ACL set after a snapshot goes with a rollback to it,
// at once: the kernel's cached ACL does not keep granting what the
// snapshot's state does not.
func TestACLRollback(t *testing.T) {
	mnt, pool, dir := aclMount(t)
	f := filepath.Join(dir, "f")
	check(t, os.WriteFile(f, []byte("f\n"), 0o600))
	check(t, os.Mkdir(filepath.Join(mnt, ".snapshots", "s1"), 0o755))
	mustRun(t, "", nil, "setfacl", "-m", "u:65534:r", f)
	wantOK(t, "read granted by an ACL set after the snapshot", asNobody(t, "cat", f))
	out := snapfsOK(t, "-p", pool, "snapshot", "rollback", "vol@s1")
	if !strings.Contains(out, "rolled vol back to s1") {
		t.Fatalf("rollback output: %q", out)
	}
	wantDenied(t, "read after the rollback took the ACL back", asNobody(t, "cat", f))
	if _, err := unix.Getxattr(f, "system.posix_acl_access", make([]byte, 256)); err != unix.ENODATA {
		t.Errorf("access ACL after the rollback: %v, want ENODATA", err)
	}
}

// TestACLClearsSetgid: as on ext4, an owner who is not in the file's group
// loses the setgid bit by setting an access ACL; one who is (by its
// primary or a supplementary group) keeps it.
func TestACLClearsSetgid(t *testing.T) {
	_, _, dir := aclMount(t)
	check(t, os.Chmod(dir, 0o777))
	for _, tc := range []struct {
		name   string
		gid    int
		groups string // setpriv's supplementary groups
		want   uint32
	}{
		{"other-group", 0, "--clear-groups", 0o775},
		{"own-group", 65534, "--clear-groups", 0o2775},
		{"supplementary-group", 4242, "--groups=4242", 0o2775},
	} {
		p := filepath.Join(dir, tc.name)
		check(t, os.WriteFile(p, nil, 0o644))
		check(t, os.Chown(p, 65534, tc.gid))
		check(t, unix.Chmod(p, 0o2775))
		wantOK(t, "setfacl by the owner", run(t, "/", nil, "setpriv", "--reuid=65534", "--regid=65534", tc.groups, "setfacl", "-m", "u:1:r", p))
		if m := stat(t, p).Mode & 0o7777; m != tc.want {
			t.Errorf("%s: mode after setfacl by the owner: %o, want %o", tc.name, m, tc.want)
		}
	}
}
