// Package tests holds the end-to-end tests of snapfs: they build the snapfs
// binary once, mount real volumes through /dev/fuse and drive them with
// ordinary tools (cp, diff, tar, git, go, rsync, setfattr...) and with
// system calls.
//
// A test that cannot mount (no /dev/fuse, no fusermount3, the mount fails)
// is skipped with the reason, unless SNAPFS_REQUIRE_FUSE=1 or CI=true, in
// which case it fails. Every mount is unmounted by t.Cleanup; a mount left
// behind, or a descriptor of the test process still open on a mount when
// it is unmounted, fails the test.
package tests

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

var (
	// snapfsBin is the snapfs binary built by TestMain.
	snapfsBin string
	// repoRoot is the module root (the directory of go.mod).
	repoRoot string
	// testRoot holds every temporary directory of this run (TMPDIR points
	// there), so leftover mounts under it can be found at the end.
	testRoot string
)

func TestMain(m *testing.M) {
	os.Exit(testMain(m))
}

func testMain(m *testing.M) int {
	var err error
	testRoot, err = os.MkdirTemp("", "snapfs-tests-")
	if err != nil {
		fmt.Fprintf(os.Stderr, "tests: %v\n", err)
		return 1
	}
	// Tools and t.TempDir put their files under testRoot.
	os.Setenv("TMPDIR", testRoot)
	defer os.RemoveAll(testRoot)

	if repoRoot, err = findRepoRoot(); err != nil {
		fmt.Fprintf(os.Stderr, "tests: %v\n", err)
		return 1
	}
	snapfsBin = filepath.Join(testRoot, "snapfs")
	build := exec.Command("go", "build", "-o", snapfsBin, "./cmd/snapfs")
	build.Dir = repoRoot
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "tests: go build ./cmd/snapfs: %v\n%s", err, out)
		return 1
	}

	fdsBefore := openFds()
	code := m.Run()

	if left := mountsUnder(testRoot); len(left) > 0 {
		fmt.Fprintf(os.Stderr, "tests: mounts left behind: %s\n", strings.Join(left, ", "))
		for _, p := range left {
			exec.Command("fusermount3", "-u", "-z", p).Run()
		}
		code = 1
	}
	if leaked := newFds(fdsBefore); len(leaked) > 0 {
		fmt.Fprintf(os.Stderr, "tests: file descriptors leaked by the tests: %s\n", strings.Join(leaked, ", "))
		code = 1
	}
	return code
}

// findRepoRoot returns the directory of the module's go.mod.
func findRepoRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("go env GOMOD: not inside the snapfs module")
	}
	return filepath.Dir(gomod), nil
}

// fuseRequired reports whether a test that cannot mount must fail rather
// than skip.
func fuseRequired() bool {
	return os.Getenv("SNAPFS_REQUIRE_FUSE") == "1" || os.Getenv("CI") == "true"
}

// noFuse fails or skips the test, saying why FUSE cannot work here.
func noFuse(t testing.TB, format string, args ...any) {
	t.Helper()
	reason := fmt.Sprintf(format, args...)
	if fuseRequired() {
		t.Fatalf("FUSE is required (SNAPFS_REQUIRE_FUSE=1 or CI=true) but cannot work: %s", reason)
	}
	t.Skipf("skipping, FUSE cannot work here: %s (set SNAPFS_REQUIRE_FUSE=1 to fail instead)", reason)
}

// needTool fails the test when a tool it runs is missing and FUSE tests are
// required (CI installs every tool they use), and skips it otherwise.
func needTool(t testing.TB, tool, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(tool); err == nil {
		return
	}
	if fuseRequired() {
		t.Fatalf("%s is required here but not installed (apt-get install %s)", tool, pkg)
	}
	t.Skipf("%s not installed (apt-get install %s)", tool, pkg)
}

// needRootUser fails (when required) or skips a test that must switch users.
func needRootUser(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		if fuseRequired() {
			t.Fatal("this test switches to uid 65534 and needs root")
		}
		t.Skip("needs root to switch to uid 65534")
	}
	needTool(t, "setpriv", "util-linux")
}

// checkFuse skips or fails the test when this machine cannot mount FUSE.
func checkFuse(t testing.TB) {
	t.Helper()
	if _, err := os.Stat("/dev/fuse"); err != nil {
		noFuse(t, "%v", err)
	}
	if _, err := exec.LookPath("fusermount3"); err != nil && os.Geteuid() != 0 {
		noFuse(t, "fusermount3 not found and not root (apt-get install fuse3)")
	}
}

// mountOpts configure mountVolume. The zero value gives a volume "vol"
// without quota, mounted with default options.
type mountOpts struct {
	Vol       string   // volume name; default "vol"
	Quota     string   // --quota of volume create, e.g. "4MiB"
	MountArgs []string // extra arguments of snapfs mount, e.g. --allow-other
}

// mountVolume creates a pool with two member directories under
// t.TempDir(), a volume in it, and mounts the volume with -d. A cleanup
// unmounts it (with retry) and fails the test if the mount or the daemon
// is left behind. It returns the mount point and the pool directory.
func mountVolume(t testing.TB, o mountOpts) (mnt, pool string) {
	t.Helper()
	checkFuse(t)
	if o.Vol == "" {
		o.Vol = "vol"
	}
	base := t.TempDir()
	pool = filepath.Join(base, "pool")
	mnt = filepath.Join(base, "mnt")
	d1, d2 := filepath.Join(base, "disk1"), filepath.Join(base, "disk2")
	for _, d := range []string{mnt, d1, d2} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	snapfsOK(t, "pool", "create", pool, "--member", d1, "--member", d2)
	create := []string{"-p", pool, "volume", "create", o.Vol}
	if o.Quota != "" {
		create = append(create, "--quota", o.Quota)
	}
	snapfsOK(t, create...)
	mountAt(t, pool, o.Vol, mnt, o.MountArgs...)
	return mnt, pool
}

// mountAt mounts volume vol of pool at mnt with -d and registers the
// cleanup that unmounts it. A mount that fails makes the test fail or
// skip (see noFuse): the first mount of a test is where a machine without
// working FUSE shows.
func mountAt(t testing.TB, pool, vol, mnt string, extra ...string) {
	t.Helper()
	mountAtEnv(t, nil, pool, vol, mnt, extra...)
}

// mountAtEnv is mountAt with env (NAME=value) added to the environment of
// snapfs mount, which the daemon it starts inherits.
func mountAtEnv(t testing.TB, env []string, pool, vol, mnt string, extra ...string) {
	t.Helper()
	args := append([]string{"-p", pool, "mount", vol, mnt, "-d"}, extra...)
	r := run(t, "", env, snapfsBin, args...)
	if r.err != nil {
		logDaemon(t, pool)
		if fuseRequired() {
			t.Fatalf("snapfs %s: %v\nstderr: %s", strings.Join(args, " "), r.err, r.stderr)
		}
		noFuse(t, "snapfs mount failed: %v: %s", r.err, strings.TrimSpace(r.stderr))
	}
	if !isMounted(mnt) {
		t.Fatalf("snapfs mount -d returned 0 but %s is not in /proc/self/mountinfo", mnt)
	}
	t.Cleanup(func() { unmountClean(t, pool, mnt) })
}

// remount unmounts mnt and mounts volume vol of pool there again.
func remount(t testing.TB, pool, vol, mnt string, extra ...string) {
	t.Helper()
	umount(t, pool, mnt)
	mountAt(t, pool, vol, mnt, extra...)
}

// umount unmounts mnt with snapfs umount, retrying while it is busy, and
// checks that it is gone and the pool's daemon has exited cleanly.
func umount(t testing.TB, pool, mnt string) {
	t.Helper()
	var last result
	for i := 0; i < 20; i++ {
		if !isMounted(mnt) {
			return
		}
		last = snapfs(t, "umount", mnt)
		if last.err == nil {
			if isMounted(mnt) {
				t.Fatalf("snapfs umount %s exited 0 but it is still mounted", mnt)
			}
			checkDaemonExit(t, pool)
			return
		}
		time.Sleep(time.Duration(i+1) * 50 * time.Millisecond)
	}
	t.Fatalf("snapfs umount %s: %v: %s", mnt, last.err, last.stderr)
}

// unmountClean is the cleanup of a mount: it reports descriptors of this
// process still open under mnt, unmounts with retry, falls back to a lazy
// unmount and fails the test when anything is left behind.
func unmountClean(t testing.TB, pool, mnt string) {
	t.Helper()
	for _, l := range fdsUnder(mnt) {
		t.Errorf("fd leak: %s still open when unmounting", l)
	}
	if !isMounted(mnt) {
		return
	}
	var last result
	for i := 0; i < 20; i++ {
		last = snapfs(t, "umount", mnt)
		if last.err == nil && !isMounted(mnt) {
			break
		}
		time.Sleep(time.Duration(i+1) * 50 * time.Millisecond)
	}
	if isMounted(mnt) {
		t.Errorf("mount left behind at %s (snapfs umount: %v: %s); detaching it lazily", mnt, last.err, last.stderr)
		if out, err := exec.Command("fusermount3", "-u", "-z", mnt).CombinedOutput(); err != nil {
			t.Errorf("fusermount3 -u -z %s: %v: %s", mnt, err, out)
		}
		logDaemon(t, pool)
		return
	}
	if last.err != nil {
		t.Errorf("snapfs umount %s: %v: %s", mnt, last.err, last.stderr)
	}
	checkDaemonExit(t, pool)
	if t.Failed() {
		logDaemon(t, pool)
	}
}

// checkDaemonExit fails the test unless the last daemon of pool logged a
// clean exit: an unmount that loses data while closing the pool still
// unmounts, and only the daemon's log tells.
func checkDaemonExit(t testing.TB, pool string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(pool, "daemon.log"))
	if err != nil {
		return
	}
	checkDaemonLog(t, pool, b)
	lines := strings.Split(strings.TrimSpace(string(b)), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		if _, msg, ok := strings.Cut(lines[i], "exit: "); ok {
			if msg != "clean" {
				t.Errorf("the daemon of %s did not exit cleanly after unmount: %s", pool, lines[i])
			}
			return
		}
	}
}

// checkDaemonLog fails the test when the daemon's log shows a bug: a
// panic (recovered in a FUSE handler, or one that ended the daemon) or a
// request that waited for an inode lock past the watchdog's limit.
func checkDaemonLog(t testing.TB, pool string, log []byte) {
	t.Helper()
	for _, line := range strings.Split(string(log), "\n") {
		if strings.Contains(line, "panic in FS handler") || strings.HasPrefix(line, "panic: ") ||
			strings.Contains(line, "for the lock of inode") {
			t.Errorf("the daemon of %s logged a bug: %s", pool, line)
			logDaemon(t, pool)
			return
		}
	}
}

// logDaemon copies the tail of the pool's daemon log into the test log.
func logDaemon(t testing.TB, pool string) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(pool, "daemon.log"))
	if err != nil {
		return
	}
	if len(b) > 8000 {
		b = b[len(b)-8000:]
	}
	t.Logf("daemon.log of %s (tail):\n%s", pool, b)
}

// daemonPid returns the pid on the first line of POOLDIR/lock.
func daemonPid(t testing.TB, pool string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(pool, "lock"))
	if err != nil {
		t.Fatalf("read pool lock: %v", err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid <= 0 {
		t.Fatalf("pool lock %q: first line is not a pid", b)
	}
	return pid
}

// mountInfo returns the mount points in /proc/self/mountinfo, unescaped.
func mountInfo() []string {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 {
			out = append(out, unescapeOctal(fields[4]))
		}
	}
	return out
}

func unescapeOctal(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountHasOption reports whether the mount holding path (the longest mount
// point that is a prefix of it) has opt among its mount or super options.
func mountHasOption(path, opt string) bool {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	best, has := "", false
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		if len(fields) < 10 {
			continue
		}
		point := unescapeOctal(fields[4])
		if (path == point || strings.HasPrefix(path, point+"/") || point == "/") && len(point) >= len(best) {
			best = point
			opts := fields[5] + "," + fields[len(fields)-1]
			has = false
			for _, o := range strings.Split(opts, ",") {
				has = has || o == opt
			}
		}
	}
	return has
}

func isMounted(mnt string) bool {
	for _, p := range mountInfo() {
		if p == mnt {
			return true
		}
	}
	return false
}

// mountsUnder returns the mount points at or below dir.
func mountsUnder(dir string) []string {
	var out []string
	for _, p := range mountInfo() {
		if p == dir || strings.HasPrefix(p, dir+"/") {
			out = append(out, p)
		}
	}
	return out
}

// openFds returns this process's open descriptors and their targets.
func openFds() map[string]string {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return nil
	}
	m := make(map[string]string)
	for _, e := range ents {
		target, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name()))
		if err == nil {
			m[e.Name()] = target
		}
	}
	return m
}

// newFds lists descriptors open now that were not in before, ignoring
// the runtime's own (epoll, pipes, /dev/null opened by exec).
func newFds(before map[string]string) []string {
	var out []string
	for fd, target := range openFds() {
		if before[fd] == target || strings.HasPrefix(target, "anon_inode:") ||
			strings.HasPrefix(target, "pipe:") || target == os.DevNull ||
			strings.HasPrefix(target, "/proc/") {
			continue
		}
		out = append(out, fd+" -> "+target)
	}
	sort.Strings(out)
	return out
}

// fdsUnder lists this process's descriptors open on files below mnt.
func fdsUnder(mnt string) []string {
	var out []string
	for fd, target := range openFds() {
		if target == mnt || strings.HasPrefix(target, mnt+"/") {
			out = append(out, "fd "+fd+" -> "+target)
		}
	}
	sort.Strings(out)
	return out
}

// result is the outcome of a command.
type result struct {
	stdout, stderr string
	err            error
}

// run runs name with args (in dir when not empty) and returns its output.
func run(t testing.TB, dir string, env []string, name string, args ...string) result {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := runTimeout(cmd, 15*time.Minute)
	return result{stdout.String(), stderr.String(), err}
}

// runTimeout runs cmd and kills it after d, so that a hung mount fails the
// test with a message instead of stalling until the go test timeout.
func runTimeout(cmd *exec.Cmd, d time.Duration) error {
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("%s: killed after %v", cmd.Path, d)
	}
}

// mustRun runs a command and fails the test if it exits non-zero.
func mustRun(t testing.TB, dir string, env []string, name string, args ...string) string {
	t.Helper()
	r := run(t, dir, env, name, args...)
	if r.err != nil {
		t.Fatalf("%s %s: %v\nstdout: %s\nstderr: %s", name, strings.Join(args, " "), r.err,
			truncate(r.stdout, 4000), truncate(r.stderr, 4000))
	}
	return r.stdout
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + fmt.Sprintf("... (%d bytes more)", len(s)-n)
}

// snapfs runs the built binary.
func snapfs(t testing.TB, args ...string) result {
	t.Helper()
	return run(t, "", nil, snapfsBin, args...)
}

// snapfsOK runs the built binary and fails the test if it fails.
func snapfsOK(t testing.TB, args ...string) string {
	t.Helper()
	return mustRun(t, "", nil, snapfsBin, args...)
}

// entry is one file of a tree manifest.
type entry struct {
	Mode     fs.FileMode
	Size     int64 // regular files
	Sum      string
	Target   string // symlinks
	Uid, Gid uint32
	Mtime    int64 // regular files, nanoseconds
}

func (e entry) String() string {
	return fmt.Sprintf("mode %v size %d sha256 %.12s target %q owner %d:%d mtime %d",
		e.Mode, e.Size, e.Sum, e.Target, e.Uid, e.Gid, e.Mtime)
}

// manifest walks root without following symlinks and returns, for every
// path below it, its mode, owner, size, mtime and sha256 (regular files)
// or target (symlinks).
func manifest(t testing.TB, root string) map[string]entry {
	t.Helper()
	m := make(map[string]entry)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		e := entry{Mode: fi.Mode(), Uid: st.Uid, Gid: st.Gid}
		switch {
		case fi.Mode().IsRegular():
			e.Size = fi.Size()
			e.Mtime = fi.ModTime().UnixNano()
			if e.Sum, err = fileSum(p); err != nil {
				return err
			}
		case fi.Mode()&fs.ModeSymlink != 0:
			if e.Target, err = os.Readlink(p); err != nil {
				return err
			}
		}
		if rel != "." {
			m[rel] = e
		}
		return nil
	})
	if err != nil {
		t.Fatalf("manifest of %s: %v", root, err)
	}
	return m
}

func fileSum(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// compareManifests fails the test listing (up to 20) differences.
func compareManifests(t testing.TB, what string, want, got map[string]entry) {
	t.Helper()
	var diffs []string
	for p, w := range want {
		g, ok := got[p]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("missing %q", p))
		case g != w:
			diffs = append(diffs, fmt.Sprintf("%q: want %v, got %v", p, w, g))
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			diffs = append(diffs, fmt.Sprintf("extra %q", p))
		}
	}
	if len(diffs) == 0 {
		return
	}
	sort.Strings(diffs)
	n := len(diffs)
	if n > 20 {
		diffs = diffs[:20]
	}
	t.Errorf("%s: %d differences (of %d entries):\n  %s", what, n, len(want), strings.Join(diffs, "\n  "))
}

// sha256Hex returns the hex sha256 of b.
func sha256Hex(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// pattern returns n bytes that differ at every offset modulo a large prime,
// seeded so different files differ.
func pattern(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed)*2654435761 + 1
	for i := range b {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		b[i] = byte(x)
	}
	return b
}
