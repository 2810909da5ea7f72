package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/snapfs/snapfs/client"
)

func TestParseHelperOptions(t *testing.T) {
	for _, c := range []struct {
		raw     []string
		kernel  []string
		unknown []string
		allow   bool
		visible bool
		metrics string
		wb      bool
		err     string
	}{
		{raw: []string{"defaults,rw,dev,suid,exec,_netdev,nofail,noauto,x-systemd.automount,x-systemd.requires=a.service,comment=x"}},
		{raw: []string{"allow_other,snapdir=visible", "ro"}, kernel: []string{"ro"}, allow: true, visible: true},
		{raw: []string{"snapdir=visible,snapdir=hidden,nosuid,nodev,noexec"}, kernel: []string{"nosuid", "nodev", "noexec"}},
		{raw: []string{"bogus,allow_other,max_read=4096"}, unknown: []string{"bogus", "max_read=4096"}, allow: true},
		{raw: []string{"metrics=127.0.0.1:9567"}, metrics: "127.0.0.1:9567"},
		{raw: []string{"snapdir=maybe"}, err: "snapdir is visible or hidden"},
		{raw: []string{"writeback_cache,nosuid"}, kernel: []string{"nosuid"}, wb: true},
		{raw: []string{"writeback_cache", "no_writeback_cache"}},
	} {
		var m mountArgs
		unknown, err := parseHelperOptions(&m, c.raw)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%v: error %v, want %q", c.raw, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", c.raw, err)
			continue
		}
		if !reflect.DeepEqual(m.opts.Options, c.kernel) || !reflect.DeepEqual(unknown, c.unknown) ||
			m.opts.AllowOther != c.allow || m.opts.SnapdirVisible != c.visible || m.metrics != c.metrics ||
			m.opts.WritebackCache != c.wb {
			t.Errorf("%v: kernel %q unknown %q allow_other %v snapdir %v metrics %q writeback_cache %v", c.raw,
				m.opts.Options, unknown, m.opts.AllowOther, m.opts.SnapdirVisible, m.metrics, m.opts.WritebackCache)
		}
	}
}

func TestSplitSource(t *testing.T) {
	dir := t.TempDir()
	hashPool := filepath.Join(dir, "po#ol")
	if err := os.Mkdir(hashPool, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hashPool, "pool.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ src, dir, ds string }{
		{"/srv/pool#home", "/srv/pool", "home"},
		{"/srv/pool#home/b/c", "/srv/pool", "home/b/c"},
		{"/srv/pool#ho#me", "/srv/pool", "ho#me"},
		{hashPool + "#vol", hashPool, "vol"},
		{"/srv/pool", "", ""},
		{"/srv/pool#", "", ""},
		{"#home", "", ""},
	} {
		d, ds, err := splitSource(c.src)
		if c.dir == "" {
			if err == nil || !strings.Contains(err.Error(), "want POOLDIR#DATASET") {
				t.Errorf("%q: got %q %q %v, want an error", c.src, d, ds, err)
			}
			continue
		}
		if err != nil || d != c.dir || ds != c.ds {
			t.Errorf("%q: got %q %q %v, want %q %q", c.src, d, ds, err, c.dir, c.ds)
		}
	}
}

func TestLooksLikeSource(t *testing.T) {
	for _, c := range commands {
		if looksLikeSource(strings.Fields(c.name)[0]) {
			t.Errorf("command %q looks like a mount source", c.name)
		}
	}
	for _, s := range []string{"/srv/pool#home", "pool#home", "./pool"} {
		if !looksLikeSource(s) {
			t.Errorf("%q does not look like a mount source", s)
		}
	}
}

// holdLockEnv makes the test binary, run as a child, hold the pool lock
// in the directory it names (see TestHelperHoldLock).
const holdLockEnv = "SNAPFS_TEST_HOLD_LOCK"

// TestHelperHoldLock is not a test: run as a child process with
// holdLockEnv set, it takes the pool lock as a daemon does (flock, its pid
// on the first line) and holds it until stdin closes or it is released
// after the duration in SNAPFS_TEST_HOLD_FOR.
func TestHelperHoldLock(t *testing.T) {
	dir := os.Getenv(holdLockEnv)
	if dir == "" {
		t.Skip("helper process for TestAwaitPoolDaemon")
	}
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	f.Truncate(0)
	fmt.Fprintf(f, "%d\n", os.Getpid())
	os.Stdout.WriteString("locked\n")
	d, _ := time.ParseDuration(os.Getenv("SNAPFS_TEST_HOLD_FOR"))
	time.Sleep(d)
	os.Exit(0)
}

// holdLock starts the test binary as a lock holder named name (argv[0]),
// with extra arguments, holding dir's lock for hold; it returns once the
// lock is held.
func holdLock(t *testing.T, dir, name string, hold time.Duration, extra ...string) *exec.Cmd {
	t.Helper()
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(t.TempDir(), name)
	if err := os.Symlink(exe, link); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(link, append([]string{"-test.run=^TestHelperHoldLock$", "--"}, extra...)...)
	// GORACE: a binary built with -race sleeps a second at exit by default,
	// holding the lock that long.
	cmd.Env = append(os.Environ(), holdLockEnv+"="+dir, "SNAPFS_TEST_HOLD_FOR="+hold.String(), "GORACE=atexit_sleep_ms=0")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "locked\n" {
		t.Fatalf("lock holder: %q %v", line, err)
	}
	return cmd
}

// TestAwaitPoolDaemon checks the wait of a mount for a pool held by a
// daemon that does not answer: a snapfs mount process is waited for until
// it lets go, or until mountWait with one line; another holder is not.
func TestAwaitPoolDaemon(t *testing.T) {
	defer func(w time.Duration) { mountWait = w }(mountWait)
	mountWait = 600 * time.Millisecond
	noDaemon := func(c *client.Client) error { t.Error("no daemon should answer"); return nil }
	for _, c := range []struct {
		name   string // the holder's argv[0]
		args   []string
		hold   time.Duration
		waited bool   // the call waits for the holder to let go
		err    string // the call gives up with this
	}{
		{"snapfs", []string{"-p", "POOL", "mount", "vol", "/mnt"}, 200 * time.Millisecond, true, ""},
		{"mount.fuse.snapfs", []string{"/srv/pool#vol", "/mnt"}, 200 * time.Millisecond, true, ""},
		{"snapfs", []string{"-p", "POOL", "mount", "vol", "/mnt"}, time.Minute, false, "is still exiting after 600ms"},
		{"snapfs", []string{"-p", "POOL", "fsck"}, time.Minute, false, ""},
		{"other", []string{"mount"}, time.Minute, false, ""},
	} {
		t.Run(c.name+" "+strings.Join(c.args, " "), func(t *testing.T) {
			dir := t.TempDir()
			holder := holdLock(t, dir, c.name, c.hold, c.args...)
			start := time.Now()
			served, err := awaitPoolDaemon(dir, noDaemon)
			took := time.Since(start)
			if served {
				t.Fatal("served without a daemon")
			}
			switch {
			case c.err != "":
				if err == nil || !strings.Contains(err.Error(), c.err) || !strings.Contains(err.Error(), fmt.Sprint(holder.Process.Pid)) {
					t.Errorf("error %v, want one naming pid %d with %q", err, holder.Process.Pid, c.err)
				}
			case err != nil:
				t.Errorf("error %v", err)
			case c.waited && took < 150*time.Millisecond:
				t.Errorf("returned after %v while the mount process held the lock", took)
			case !c.waited && took > 100*time.Millisecond:
				t.Errorf("waited %v for a holder that is no mount", took)
			}
		})
	}
}

// TestDaemonHungUp: a mount asks again when the control connection of an
// exiting daemon ends under its request, and not for the daemon's own
// refusals or other failures.
func TestDaemonHungUp(t *testing.T) {
	reset := &net.OpError{Op: "read", Net: "unix", Err: os.NewSyscallError("read", syscall.ECONNRESET)}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"reset in backlog", fmt.Errorf("client: mount: %w", reset), true},
		{"eof", fmt.Errorf("client: mount: %w", io.EOF), true},
		{"short response", fmt.Errorf("client: mount: bad response: %w", io.ErrUnexpectedEOF), true},
		{"broken pipe", fmt.Errorf("client: mount: %w", syscall.EPIPE), true},
		{"daemon refusal", &client.Error{Code: "EBUSY", Message: "vol is already mounted at /m"}, false},
		{"permission", fmt.Errorf("control socket: %w", syscall.EACCES), false},
	} {
		if got := daemonHungUp(tc.err); got != tc.want {
			t.Errorf("%s: daemonHungUp(%v) = %v, want %v", tc.name, tc.err, got, tc.want)
		}
	}
}
