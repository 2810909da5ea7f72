package tests

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// The mount helper: `mount -t fuse.snapfs POOLDIR#DATASET DIR -o OPTS`,
// fstab lines, umount(8), and a mount right after an unmount while the
// old daemon is still closing the pool (see cmd/snapfs/mounthelper.go).

// helperLink is where mount(8) looks for the helper of type fuse.snapfs.
const helperLink = "/sbin/mount.fuse.snapfs"

// installHelper makes mount(8) find this run's snapfs as the helper of
// type fuse.snapfs for the test: /sbin/mount.fuse.snapfs links to it (an
// installed helper is moved aside and put back at cleanup). mount(8)
// searches only /sbin (and /sbin/fs.d, /sbin/fs) for helpers, so there is
// no other way to make it run a binary of the test.
func installHelper(t *testing.T) {
	t.Helper()
	checkFuse(t)
	if os.Geteuid() != 0 {
		if fuseRequired() {
			t.Fatal("the mount(8) helper tests need root to link " + helperLink)
		}
		t.Skip("the mount(8) helper tests need root to link " + helperLink)
	}
	needTool(t, "mount", "mount")
	needTool(t, "umount", "mount")
	aside := ""
	// A link left by a test run that was killed points at a binary that
	// is gone: it is removed, not kept.
	if target, err := os.Readlink(helperLink); err == nil && strings.Contains(target, "snapfs-tests-") {
		if _, err := os.Stat(target); err != nil {
			check(t, os.Remove(helperLink))
		}
	}
	if _, err := os.Lstat(helperLink); err == nil {
		aside = helperLink + ".snapfs-test-aside"
		if err := os.Rename(helperLink, aside); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink(snapfsBin, helperLink); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.Remove(helperLink); err != nil {
			t.Error(err)
		}
		if aside != "" {
			if err := os.Rename(aside, helperLink); err != nil {
				t.Error(err)
			}
		}
	})
}

// newPoolWithVolume creates a pool with one member and volume vol under t.TempDir
// and returns the pool directory and an empty mount point.
func newPoolWithVolume(t *testing.T) (pool, mnt string) {
	t.Helper()
	base := t.TempDir()
	pool, mnt = filepath.Join(base, "pool"), filepath.Join(base, "mnt")
	d1 := filepath.Join(base, "disk1")
	for _, d := range []string{mnt, d1} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	snapfsOK(t, "pool", "create", pool, "--member", d1)
	snapfsOK(t, "-p", pool, "volume", "create", "vol")
	return pool, mnt
}

// sysMount runs mount(8) with args, which must mount mnt, and registers
// the cleanup that unmounts it. It returns mount's stderr.
func sysMount(t *testing.T, pool, mnt string, args ...string) string {
	t.Helper()
	r := run(t, "", nil, "mount", args...)
	if r.err != nil {
		logDaemon(t, pool)
		t.Fatalf("mount %s: %v\nstderr: %s", strings.Join(args, " "), r.err, r.stderr)
	}
	if !isMounted(mnt) {
		t.Fatalf("mount %s exited 0 but %s is not mounted", strings.Join(args, " "), mnt)
	}
	t.Cleanup(func() { unmountClean(t, pool, mnt) })
	return r.stderr
}

// sysUmount runs umount(8) on mnt; the daemon is not waited for.
func sysUmount(t *testing.T, mnt string) {
	t.Helper()
	mustRun(t, "", nil, "umount", mnt)
	if isMounted(mnt) {
		t.Fatalf("umount %s exited 0 but it is still mounted", mnt)
	}
}

// TestMountHelperSystemMount mounts with mount -t fuse.snapfs and every
// option mount(8), fstab and systemd pass, checks what the mount does
// with them, unmounts with umount(8) and mounts again at once, from an
// fstab file too, read-only.
func TestMountHelperSystemMount(t *testing.T) {
	installHelper(t)
	pool, mnt := newPoolWithVolume(t)
	src := pool + "#vol"

	stderr := sysMount(t, pool, mnt, "-t", "fuse.snapfs", src, mnt, "-o",
		"allow_other,snapdir=visible,_netdev,nofail,x-systemd.automount,x-systemd.requires=network.target,defaults,rw,dev,suid,exec,bogus,also-bogus")
	if n := strings.Count(stderr, "ignoring unknown mount option"); n != 1 || !strings.Contains(stderr, "bogus,also-bogus") {
		t.Errorf("want one warning naming bogus,also-bogus; mount's stderr: %q", stderr)
	}
	for _, opt := range []string{"allow_other", "nosuid", "nodev"} {
		if !mountHasOption(mnt, opt) {
			t.Errorf("mount -t fuse.snapfs: %s missing from the mount's options", opt)
		}
	}
	names, err := os.ReadDir(mnt)
	if err != nil || len(names) != 1 || names[0].Name() != ".snapshots" {
		t.Errorf("snapdir=visible: root lists %v (%v), want .snapshots", names, err)
	}
	if err := os.WriteFile(filepath.Join(mnt, "f"), pattern(4<<20, 1), 0o644); err != nil {
		t.Fatal(err)
	}
	snapfsOK(t, "-p", pool, "snapshot", "create", "vol", "s1")

	// umount(8), then an fstab line mounted at once, read-only: the old
	// daemon may still be flushing and writing its checkpoint.
	sysUmount(t, mnt)
	fstab := filepath.Join(t.TempDir(), "fstab")
	line := src + " " + mnt + " fuse.snapfs defaults,ro,allow_other,_netdev,nofail,x-systemd.mount-timeout=30 0 0\n"
	if err := os.WriteFile(fstab, []byte("# a comment\n"+line), 0o644); err != nil {
		t.Fatal(err)
	}
	if stderr := sysMount(t, pool, mnt, "--fstab", fstab, mnt); stderr != "" {
		t.Errorf("mount --fstab: known options only, yet stderr says %q", stderr)
	}
	got, err := os.ReadFile(filepath.Join(mnt, "f"))
	if err != nil || sha256Hex(got) != sha256Hex(pattern(4<<20, 1)) {
		t.Fatalf("after umount and mount --fstab: read f: %v (%d bytes)", err, len(got))
	}
	if _, err := os.Stat(filepath.Join(mnt, ".snapshots", "s1", "f")); err != nil {
		t.Errorf("snapshot s1 through the fstab mount: %v", err)
	}
	err = os.WriteFile(filepath.Join(mnt, "g"), []byte("x"), 0o644)
	if !errors.Is(err, syscall.EROFS) {
		t.Errorf("write on an ro mount: %v, want EROFS", err)
	}
	if !mountHasOption(mnt, "ro") {
		t.Errorf("fstab ro: the mount is not read-only")
	}
	sysUmount(t, mnt)

	// Unmount and mount again at once, with dirty data each time, by
	// umount(8) and by fusermount3 -u; mount -t and snapfs mount alike.
	for i, how := range []string{"umount", "fusermount3", "umount", "fusermount3"} {
		if i%2 == 0 {
			sysMount(t, pool, mnt, "-t", "fuse.snapfs", src, mnt)
		} else {
			mountAt(t, pool, "vol", mnt)
		}
		if err := os.WriteFile(filepath.Join(mnt, "round"), pattern(32<<20, byte(i)), 0o644); err != nil {
			t.Fatal(err)
		}
		if how == "umount" {
			sysUmount(t, mnt)
		} else {
			mustRun(t, "", nil, "fusermount3", "-u", mnt)
		}
	}
	sysMount(t, pool, mnt, "-t", "fuse.snapfs", src, mnt)
	got, err = os.ReadFile(filepath.Join(mnt, "round"))
	if err != nil || sha256Hex(got) != sha256Hex(pattern(32<<20, 3)) {
		t.Fatalf("after four quick remounts: read round: %v (%d bytes)", err, len(got))
	}
	umount(t, pool, mnt)
	checkDaemonExit(t, pool)
}

// TestMountHelperFuse3 runs the helper as mount.fuse3 does when no
// mount.fuse.snapfs is installed: `snapfs SOURCE DIR -o OPTS` found on
// PATH (mount(8) itself gives the helper the standard PATH, where make
// install puts snapfs).
func TestMountHelperFuse3(t *testing.T) {
	checkFuse(t)
	const fuse3 = "/sbin/mount.fuse3"
	if _, err := os.Stat(fuse3); err != nil {
		if fuseRequired() {
			t.Fatalf("%s: %v (apt-get install fuse3)", fuse3, err)
		}
		t.Skipf("%s: %v (apt-get install fuse3)", fuse3, err)
	}
	pool, mnt := newPoolWithVolume(t)
	env := []string{"PATH=" + filepath.Dir(snapfsBin) + ":" + os.Getenv("PATH")}
	r := run(t, "", env, fuse3, pool+"#vol", mnt, "-t", "fuse.snapfs", "-o", "snapdir=visible,nofail,bogus")
	if r.err != nil {
		logDaemon(t, pool)
		t.Fatalf("%s: %v: %s", fuse3, r.err, r.stderr)
	}
	t.Cleanup(func() { unmountClean(t, pool, mnt) })
	if !strings.Contains(r.stderr, "ignoring unknown mount option(s) bogus") {
		t.Errorf("stderr %q: want the warning about bogus", r.stderr)
	}
	if err := os.WriteFile(filepath.Join(mnt, "f"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	names, _ := os.ReadDir(mnt)
	if len(names) != 2 || names[0].Name() != ".snapshots" {
		t.Errorf("snapdir=visible: root lists %v", names)
	}
	umount(t, pool, mnt)
}

// TestMountHelperBadSource checks the one-line errors of mount -t
// fuse.snapfs for a source without '#', a pool that does not exist and
// a dataset that does not exist, and that nothing is mounted.
func TestMountHelperBadSource(t *testing.T) {
	installHelper(t)
	pool, mnt := newPoolWithVolume(t)
	for _, c := range []struct{ src, want string }{
		{pool, "want POOLDIR#DATASET"},
		{pool + "#", "want POOLDIR#DATASET"},
		{pool + "nope#vol", "does not exist"},
		{pool + "#nope", `volume "nope" does not exist`},
		{pool + "#vol/nobranch", "branch"},
	} {
		cmd := exec.Command("mount", "-t", "fuse.snapfs", c.src, mnt)
		out, err := cmd.CombinedOutput()
		if err == nil || isMounted(mnt) {
			t.Errorf("mount %s: succeeded", c.src)
			unmountClean(t, pool, mnt)
			continue
		}
		lines := strings.Split(strings.TrimSpace(string(out)), "\n")
		if len(lines) != 1 || !strings.HasPrefix(lines[0], "snapfs: ") || !strings.Contains(lines[0], c.want) {
			t.Errorf("mount %s: output %q, want one line with %q", c.src, out, c.want)
		}
	}
}

// TestSystemdUnitCommands runs the commands of contrib/snapfs@.service as
// systemd would, with the settings of contrib/snapfs.env.example pointed
// at a test pool: ExecStart mounts and returns once the mount answers,
// ExecStop unmounts and returns once the daemon has exited cleanly.
// (systemd itself does not run in the test environment.)
func TestSystemdUnitCommands(t *testing.T) {
	checkFuse(t)
	unit, err := os.ReadFile(filepath.Join(repoRoot, "contrib", "snapfs@.service"))
	if err != nil {
		t.Fatal(err)
	}
	pool, mnt := newPoolWithVolume(t)
	env := map[string]string{
		"SNAPFS_POOL": pool, "SNAPFS_DATASET": "vol", "SNAPFS_MOUNTPOINT": mnt,
		"SNAPFS_MOUNT_ARGS": "-o allow_other,snapdir=visible",
	}
	// systemd's expansion: ${VAR} is one word, $VAR splits at spaces.
	expand := func(line string) []string {
		var out []string
		for _, w := range strings.Fields(line) {
			switch {
			case strings.HasPrefix(w, "${") && strings.HasSuffix(w, "}"):
				out = append(out, env[w[2:len(w)-1]])
			case strings.HasPrefix(w, "$"):
				out = append(out, strings.Fields(env[w[1:]])...)
			case w == "/usr/local/bin/snapfs":
				out = append(out, snapfsBin)
			default:
				out = append(out, w)
			}
		}
		return out
	}
	cmds := map[string][]string{}
	for _, l := range strings.Split(string(unit), "\n") {
		if k, v, ok := strings.Cut(l, "="); ok && strings.HasPrefix(k, "Exec") {
			cmds[k] = expand(v)
		}
	}
	start, stop := cmds["ExecStart"], cmds["ExecStop"]
	if len(start) == 0 || len(stop) == 0 {
		t.Fatalf("unit has no ExecStart or ExecStop: %q", cmds)
	}
	mustRun(t, "", nil, start[0], start[1:]...)
	t.Cleanup(func() { unmountClean(t, pool, mnt) })
	if !isMounted(mnt) || !mountHasOption(mnt, "allow_other") {
		t.Fatalf("ExecStart %q returned but %s is not mounted with allow_other", start, mnt)
	}
	if err := os.WriteFile(filepath.Join(mnt, "f"), []byte("unit"), 0o644); err != nil {
		t.Fatal(err)
	}
	pid := daemonPid(t, pool)
	mustRun(t, "", nil, stop[0], stop[1:]...)
	if isMounted(mnt) {
		t.Fatalf("ExecStop %q returned but %s is still mounted", stop, mnt)
	}
	if st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); err == nil {
		// "pid (comm) S ...": a zombie (Z) has exited, not yet reaped.
		if i := strings.LastIndexByte(string(st), ')'); i > 0 && i+2 < len(st) && st[i+2] != 'Z' {
			t.Errorf("ExecStop returned while daemon pid %d still runs: %s", pid, st)
		}
	}
	checkDaemonExit(t, pool)
}

// TestMakeInstallStaged runs make install and make uninstall into a
// DESTDIR with another PREFIX and checks what lands where.
func TestMakeInstallStaged(t *testing.T) {
	needTool(t, "make", "make")
	dest := t.TempDir()
	vars := []string{"DESTDIR=" + dest, "PREFIX=/opt/snapfs"}
	mustRun(t, repoRoot, nil, "make", append([]string{"-s", "install"}, vars...)...)
	bin := filepath.Join(dest, "opt/snapfs/bin/snapfs")
	if fi, err := os.Stat(bin); err != nil || fi.Mode().Perm() != 0o755 {
		t.Fatalf("installed binary: %v %v", fi, err)
	}
	if target, err := os.Readlink(filepath.Join(dest, "sbin/mount.fuse.snapfs")); err != nil || target != "/opt/snapfs/bin/snapfs" {
		t.Errorf("mount helper link: %q %v, want /opt/snapfs/bin/snapfs", target, err)
	}
	unit, err := os.ReadFile(filepath.Join(dest, "opt/snapfs/lib/systemd/system/snapfs@.service"))
	if err != nil || !strings.Contains(string(unit), "ExecStop=/opt/snapfs/bin/snapfs umount") ||
		strings.Contains(string(unit), "/usr/local/bin") {
		t.Errorf("installed unit: %v\n%s", err, unit)
	}
	out := mustRun(t, "", nil, bin, "version")
	if !strings.Contains(out, "snapfs") {
		t.Errorf("installed snapfs version: %q", out)
	}
	mustRun(t, repoRoot, nil, "make", append([]string{"-s", "uninstall"}, vars...)...)
	filepath.Walk(dest, func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			t.Errorf("left after make uninstall: %s", p)
		}
		return nil
	})
}
