package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/snapfs/snapfs/client"
)

// target is one filesystem under test. Every target lives under the same
// work directory, so all of them sit on the same disk.
type target interface {
	name() string
	// setup creates and mounts the target; dir() is valid afterwards.
	setup(ctx context.Context) error
	// dir is the directory in which workloads run.
	dir() string
	// coldCache empties every cache between the workload and the disk. It
	// reports false when it could not (not root).
	coldCache(ctx context.Context) (bool, error)
	teardown() error
}

// snapshotter is a target that can take snapshots of the volume that
// holds dir().
type snapshotter interface {
	target
	snapCreate(ctx context.Context, name string) error
	// snapPath is where the snapshot's view of dir() appears.
	snapPath(name string) string
	snapDestroy(ctx context.Context, name string) error
	branchCreate(ctx context.Context, snap, name string) error
	branchDestroy(ctx context.Context, name string) error
	// spaceRoot is a path whose statfs reports the pool's free space.
	spaceRoot() string
	// snapListDir is the directory whose entries are the snapshots.
	snapListDir() string
}

// daemonTarget is a target served by a separate daemon process.
type daemonTarget interface {
	target
	daemonPID() (int, error)
	// resetPeak restarts peak-RSS tracking; peakRSS is the daemon's peak
	// resident memory since then, across remounts.
	resetPeak()
	peakRSS() (uint64, error)
	// setProfile remounts the target with the daemon writing CPU and heap
	// profiles to the given paths (empty: none) when it exits.
	setProfile(ctx context.Context, cpu, mem string) error
}

// ---- plain ----------------------------------------------------------------

type plainTarget struct{ root string }

func (t *plainTarget) name() string { return "plain" }
func (t *plainTarget) dir() string  { return t.root }
func (t *plainTarget) setup(ctx context.Context) error {
	return os.MkdirAll(t.root, 0o755)
}
func (t *plainTarget) coldCache(ctx context.Context) (bool, error) { return dropCaches(), nil }
func (t *plainTarget) teardown() error                             { return nil }

// ---- loopback ---------------------------------------------------------------

type loopbackTarget struct {
	tname       string
	base        string
	passthrough bool
	cmd         *exec.Cmd
	undo        func() error
}

func (t *loopbackTarget) name() string    { return t.tname }
func (t *loopbackTarget) backing() string { return filepath.Join(t.base, "backing") }
func (t *loopbackTarget) mnt() string     { return filepath.Join(t.base, "mnt") }
func (t *loopbackTarget) dir() string     { return t.mnt() }

func (t *loopbackTarget) setup(ctx context.Context) error {
	for _, d := range []string{t.backing(), t.mnt()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return err
		}
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	args := []string{"--internal-serve-loopback", t.backing(), t.mnt()}
	if t.passthrough {
		args = append(args, "--internal-passthrough")
	}
	cmd := exec.Command(exe, args...)
	cmd.Stderr = os.Stderr
	// Own process group: a Ctrl-C reaches the bench, which unmounts in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return err
	}
	t.cmd = cmd
	t.undo = cleanups.push("unmount "+t.mnt(), t.stop)
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(out).ReadString('\n')
		if err == nil && strings.TrimSpace(line) != "ready" {
			err = fmt.Errorf("unexpected %q", line)
		}
		ready <- err
		_, _ = io.Copy(io.Discard, out)
	}()
	select {
	case err := <-ready:
		if err != nil {
			return fmt.Errorf("loopback server: %v", err)
		}
	case <-time.After(20 * time.Second):
		return fmt.Errorf("loopback server did not mount within 20s")
	}
	return waitMounted(t.mnt(), 5*time.Second)
}

func (t *loopbackTarget) stop() error {
	err := unmount(t.mnt())
	if t.cmd != nil && t.cmd.Process != nil {
		done := make(chan struct{})
		go func() { _ = t.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = t.cmd.Process.Kill()
			<-done
		}
		t.cmd = nil
	}
	return err
}

func (t *loopbackTarget) coldCache(ctx context.Context) (bool, error) { return dropCaches(), nil }

func (t *loopbackTarget) teardown() error {
	if t.undo != nil {
		return t.undo()
	}
	return nil
}

// ---- snapfs -------------------------------------------------------------------

type snapfsTarget struct {
	tname   string
	base    string
	members int
	// memberDirs, when set, are the member directories (else
	// base/member0, base/member1, ...).
	memberDirs []string
	bin        string
	binErr     error
	chunkSize  string // the volume's --chunk-size ("" = the pool's default)
	vol        string
	mounted    bool
	// Profiles for the daemon (set by setProfile), and how many daemons
	// have been started with them.
	profCPU    string
	profMem    string
	profMounts int
	undo       func() error
	peak       uint64
	// mountArgs are extra arguments of snapfs mount (snapfs-wb:
	// --writeback-cache).
	mountArgs []string
	// memberArgs, when set, replace the member directories in pool
	// create (snapfs-s3: --member s3://... --s3-endpoint URL).
	memberArgs []string
}

func (t *snapfsTarget) name() string { return t.tname }
func (t *snapfsTarget) pool() string { return filepath.Join(t.base, "pool") }
func (t *snapfsTarget) mnt() string  { return filepath.Join(t.base, "mnt") }
func (t *snapfsTarget) dir() string  { return filepath.Join(t.mnt(), "bench") }
func (t *snapfsTarget) member(i int) string {
	if t.memberDirs != nil {
		return t.memberDirs[i]
	}
	return filepath.Join(t.base, fmt.Sprintf("member%d", i))
}

func (t *snapfsTarget) cli(ctx context.Context, args ...string) (string, error) {
	return run(ctx, nil, t.bin, args...)
}

func (t *snapfsTarget) setup(ctx context.Context) error {
	if t.binErr != nil {
		return t.binErr
	}
	if err := os.MkdirAll(t.mnt(), 0o755); err != nil {
		return err
	}
	args := append([]string{"pool", "create", t.pool()}, t.memberArgs...)
	for i := 0; i < t.members; i++ {
		if err := os.MkdirAll(t.member(i), 0o755); err != nil {
			return err
		}
		args = append(args, "--member", t.member(i))
	}
	if _, err := t.cli(ctx, args...); err != nil {
		return err
	}
	t.vol = "bench"
	vargs := []string{"-p", t.pool(), "volume", "create", t.vol}
	if t.chunkSize != "" {
		vargs = append(vargs, "--chunk-size", t.chunkSize)
	}
	if _, err := t.cli(ctx, vargs...); err != nil {
		return err
	}
	t.undo = cleanups.push("unmount "+t.mnt(), t.umount)
	if err := t.mount(ctx); err != nil {
		return err
	}
	return os.MkdirAll(t.dir(), 0o755)
}

func (t *snapfsTarget) mount(ctx context.Context) error {
	env := t.profileEnv()
	args := append([]string{"-p", t.pool(), "mount", t.vol, t.mnt(), "-d"}, t.mountArgs...)
	if _, err := run(ctx, env, t.bin, args...); err != nil {
		return err
	}
	t.mounted = true
	if err := waitMounted(t.mnt(), 10*time.Second); err != nil {
		return err
	}
	return nil
}

func (t *snapfsTarget) resetPeak() {
	t.peak = 0
	if pid, err := t.daemonPID(); err == nil {
		if err := resetHWM(pid); err != nil {
			debugf("%s: resetting VmHWM: %v", t.tname, err)
		}
	}
}

func (t *snapfsTarget) peakRSS() (uint64, error) {
	pid, err := t.daemonPID()
	if err != nil {
		return t.peak, err
	}
	v, err := vmHWM(pid)
	if err != nil {
		return t.peak, err
	}
	return max(v, t.peak), nil
}

// umount unmounts and waits for the daemon to exit (it flushes and writes
// its profiles on the way out).
func (t *snapfsTarget) umount() error {
	if !t.mounted {
		return nil
	}
	pid, _ := t.daemonPID()
	if v, err := vmHWM(pid); err == nil {
		t.peak = max(t.peak, v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := t.cli(ctx, "umount", t.mnt())
	if err != nil {
		logf("%s: %v; falling back to fusermount3/umount", t.tname, err)
		err = unmount(t.mnt())
	}
	t.mounted = false
	deadline := time.Now().Add(60 * time.Second)
	for processAlive(pid) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if processAlive(pid) {
		logf("%s: daemon %d still running 60s after unmount; killing it", t.tname, pid)
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	return err
}

func (t *snapfsTarget) daemonPID() (int, error) {
	data, err := os.ReadFile(filepath.Join(t.pool(), "lock"))
	if err != nil {
		return 0, err
	}
	line, _, _ := strings.Cut(string(data), "\n")
	return strconv.Atoi(strings.TrimSpace(line))
}

func (t *snapfsTarget) remount(ctx context.Context) error {
	if err := t.umount(); err != nil {
		return err
	}
	return t.mount(ctx)
}

func (t *snapfsTarget) coldCache(ctx context.Context) (bool, error) {
	if err := t.remount(ctx); err != nil {
		return false, err
	}
	return dropCaches(), nil
}

func (t *snapfsTarget) setProfile(ctx context.Context, cpu, mem string) error {
	t.profCPU, t.profMem, t.profMounts = cpu, mem, 0
	return t.remount(ctx)
}

// profileEnv is the environment of the next daemon start: a daemon writes
// its profiles when it exits, so every remount within a profiled workload
// (cold reads remount) gets its own files: NAME.pprof, NAME.2.pprof, ...
func (t *snapfsTarget) profileEnv() []string {
	if t.profCPU == "" && t.profMem == "" {
		return nil
	}
	t.profMounts++
	suffix := ""
	if t.profMounts > 1 {
		suffix = fmt.Sprintf(".%d", t.profMounts)
	}
	var env []string
	if t.profCPU != "" {
		env = append(env, "SNAPFS_CPUPROFILE="+addSuffix(t.profCPU, suffix))
	}
	if t.profMem != "" {
		env = append(env, "SNAPFS_MEMPROFILE="+addSuffix(t.profMem, suffix))
	}
	return env
}

func (t *snapfsTarget) teardown() error {
	if t.undo != nil {
		return t.undo()
	}
	return nil
}

func (t *snapfsTarget) snapCreate(ctx context.Context, name string) error {
	return os.Mkdir(filepath.Join(t.mnt(), ".snapshots", name), 0o755)
}

func (t *snapfsTarget) snapPath(name string) string {
	return filepath.Join(t.mnt(), ".snapshots", name, "bench")
}

func (t *snapfsTarget) snapDestroy(ctx context.Context, name string) error {
	return os.Remove(filepath.Join(t.mnt(), ".snapshots", name))
}

func (t *snapfsTarget) branchCreate(ctx context.Context, snap, name string) error {
	_, err := t.cli(ctx, "-p", t.pool(), "branch", "create", t.vol+"@"+snap, name)
	return err
}

// branchCreateAPI forks a branch through the daemon's control socket with
// the Go client: what a program using snapfs pays, without a process start.
func (t *snapfsTarget) branchCreateAPI(snap, name string) error {
	c, err := client.Dial(t.pool())
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.CreateBranch(t.vol, snap, name)
	return err
}

// rollbackAPI rolls the volume back to snap through the Go client.
func (t *snapfsTarget) rollbackAPI(snap string) error {
	c, err := client.Dial(t.pool())
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Rollback(t.vol, snap, false)
	return err
}

func (t *snapfsTarget) branchDestroy(ctx context.Context, name string) error {
	err := os.Remove(filepath.Join(t.mnt(), ".snapshots", name))
	if err == nil {
		return nil
	}
	_, err2 := t.cli(ctx, "-p", t.pool(), "branch", "destroy", t.vol+"@"+name)
	if err2 != nil {
		return fmt.Errorf("rmdir: %v; %v", err, err2)
	}
	return nil
}

func (t *snapfsTarget) spaceRoot() string   { return t.mnt() }
func (t *snapfsTarget) snapListDir() string { return filepath.Join(t.mnt(), ".snapshots") }

// buildSnapfs builds ./cmd/snapfs of the module into dir.
func buildSnapfs(ctx context.Context, dir string) (string, error) {
	root, err := moduleRoot(ctx)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "snapfs")); err != nil {
		return "", fmt.Errorf("no cmd/snapfs in %s yet", root)
	}
	bin := filepath.Join(dir, "snapfs")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/snapfs")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ./cmd/snapfs: %v: %s", err, lastLine(string(out)))
	}
	return bin, nil
}

func moduleRoot(ctx context.Context) (string, error) {
	out, err := exec.CommandContext(ctx, "go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		return "", errors.New("not inside the snapfs module (run from the repository)")
	}
	return filepath.Dir(gomod), nil
}

// ---- btrfs --------------------------------------------------------------------

// btrfsTarget is a btrfs filesystem on a loop device over an image file in
// the work directory; the volume is a subvolume, snapshots are read-only
// subvolume snapshots, branches writable ones.
type btrfsTarget struct {
	base  string
	size  int64
	loop  string
	undos []func() error
}

func (t *btrfsTarget) name() string      { return "btrfs" }
func (t *btrfsTarget) img() string       { return filepath.Join(t.base, "btrfs.img") }
func (t *btrfsTarget) mnt() string       { return filepath.Join(t.base, "mnt") }
func (t *btrfsTarget) vol() string       { return filepath.Join(t.mnt(), "vol") }
func (t *btrfsTarget) dir() string       { return filepath.Join(t.vol(), "bench") }
func (t *btrfsTarget) spaceRoot() string { return t.mnt() }

func (t *btrfsTarget) setup(ctx context.Context) error {
	if !isRoot {
		return errors.New("btrfs needs root (losetup, mount)")
	}
	if !have("mkfs.btrfs") || !have("losetup") {
		return errors.New("mkfs.btrfs or losetup not installed")
	}
	if err := os.MkdirAll(t.mnt(), 0o755); err != nil {
		return err
	}
	undo, err := sparseImage(t.img(), t.size)
	if err != nil {
		return err
	}
	t.undos = append(t.undos, undo)
	if _, err := run(ctx, nil, "mkfs.btrfs", "-q", "-f", t.img()); err != nil {
		return err
	}
	out, err := run(ctx, nil, "losetup", "-f", "--show", t.img())
	if err != nil {
		return err
	}
	t.loop = strings.TrimSpace(out)
	loop := t.loop
	t.undos = append(t.undos, cleanups.push("losetup -d "+loop, func() error {
		_, err := run(context.Background(), nil, "losetup", "-d", loop)
		return err
	}))
	if _, err := run(ctx, nil, "mount", "-o", "noatime", t.loop, t.mnt()); err != nil {
		return err
	}
	t.undos = append(t.undos, cleanups.push("umount "+t.mnt(), func() error { return unmount(t.mnt()) }))
	if _, err := run(ctx, nil, "btrfs", "subvolume", "create", t.vol()); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(t.mnt(), "snaps"), 0o755); err != nil {
		return err
	}
	return os.MkdirAll(t.dir(), 0o755)
}

func (t *btrfsTarget) coldCache(ctx context.Context) (bool, error) { return dropCaches(), nil }

func (t *btrfsTarget) teardown() error {
	var first error
	for i := len(t.undos) - 1; i >= 0; i-- {
		if err := t.undos[i](); err != nil && first == nil {
			first = err
		}
	}
	t.undos = nil
	return first
}

func (t *btrfsTarget) snapDir(name string) string { return filepath.Join(t.mnt(), "snaps", name) }
func (t *btrfsTarget) snapListDir() string        { return filepath.Join(t.mnt(), "snaps") }

func (t *btrfsTarget) snapCreate(ctx context.Context, name string) error {
	_, err := run(ctx, nil, "btrfs", "subvolume", "snapshot", "-r", t.vol(), t.snapDir(name))
	return err
}

func (t *btrfsTarget) snapPath(name string) string { return filepath.Join(t.snapDir(name), "bench") }

func (t *btrfsTarget) snapDestroy(ctx context.Context, name string) error {
	_, err := run(ctx, nil, "btrfs", "subvolume", "delete", t.snapDir(name))
	return err
}

func (t *btrfsTarget) branchCreate(ctx context.Context, snap, name string) error {
	_, err := run(ctx, nil, "btrfs", "subvolume", "snapshot", t.snapDir(snap), t.snapDir(name))
	return err
}

func (t *btrfsTarget) branchDestroy(ctx context.Context, name string) error {
	return t.snapDestroy(ctx, name)
}

// sparseImage creates the file path of size bytes, sparse (an image for a
// loop device or a file vdev), and returns the cleanup that removes it,
// already pushed on the cleanup stack.
func sparseImage(path string, size int64) (func() error, error) {
	f, err := os.Create(path)
	if err != nil {
		return nil, err
	}
	err = f.Truncate(size)
	f.Close()
	if err != nil {
		return nil, err
	}
	return cleanups.push("rm "+path, func() error { return os.Remove(path) }), nil
}
