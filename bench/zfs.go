package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// zfsFuseTarget is a zfs-fuse pool (Debian's zfs-fuse 0.7, the other FUSE
// filesystem with snapshots) on one file vdev in the work directory,
// mounted through FUSE by the zfs-fuse daemon. The daemon reads
// /etc/zfs/zfsrc as installed: default_permissions, and entries and
// attributes cached in the kernel for 3,600 s.
//
// zfs-fuse serves every pool of the machine from one daemon listening on a
// fixed socket (/var/run/zfs/zfs_socket): the target uses a running daemon
// if there is one, else starts its own and stops it (by its pid) at
// teardown. The pool has a name of its own (snapbench-PID), so a pool of
// someone else's is never touched.
type zfsFuseTarget struct {
	base  string
	size  int64
	pool  string
	pid   int // the daemon this target started (0: it found one running)
	undos []func() error
}

func newZFSFuseTarget(base string, size int64) *zfsFuseTarget {
	return &zfsFuseTarget{base: base, size: size, pool: fmt.Sprintf("snapbench-%d", os.Getpid())}
}

func (t *zfsFuseTarget) name() string { return "zfs-fuse" }
func (t *zfsFuseTarget) vdev() string { return filepath.Join(t.base, "vdev0") }
func (t *zfsFuseTarget) mnt() string  { return filepath.Join(t.base, "mnt") }
func (t *zfsFuseTarget) dir() string  { return filepath.Join(t.mnt(), "bench") }

// zfsFusePackage is the Debian package the target installs when zpool is
// missing (root only).
const zfsFusePackage = "zfs-fuse"

func (t *zfsFuseTarget) setup(ctx context.Context) error {
	if !isRoot {
		return errors.New("zfs-fuse needs root (its daemon mounts with allow_other)")
	}
	if err := installZFSFuse(ctx); err != nil {
		return err
	}
	if err := t.startDaemon(ctx); err != nil {
		return err
	}
	if err := os.MkdirAll(t.mnt(), 0o755); err != nil {
		return err
	}
	undo, err := sparseImage(t.vdev(), t.size)
	if err != nil {
		return err
	}
	t.undos = append(t.undos, undo)
	if _, err := run(ctx, nil, "zpool", "create", "-f", "-m", t.mnt(), t.pool, t.vdev()); err != nil {
		return err
	}
	t.undos = append(t.undos, cleanups.push("zpool destroy "+t.pool, t.destroyPool))
	if err := waitMounted(t.mnt(), 10*time.Second); err != nil {
		return err
	}
	return os.MkdirAll(t.dir(), 0o755)
}

// installZFSFuse installs Debian's zfs-fuse with apt-get when zpool is
// not on the PATH.
func installZFSFuse(ctx context.Context) error {
	if have("zfs-fuse") && have("zpool") {
		return nil
	}
	if !have("apt-get") {
		return errors.New("zfs-fuse is not installed and there is no apt-get to install it")
	}
	logf("installing %s with apt-get", zfsFusePackage)
	env := []string{"DEBIAN_FRONTEND=noninteractive"}
	if _, err := run(ctx, env, "apt-get", "install", "-y", "-q", zfsFusePackage); err != nil {
		if _, uerr := run(ctx, env, "apt-get", "update", "-q"); uerr != nil {
			return fmt.Errorf("installing zfs-fuse: %v; apt-get update: %v", err, uerr)
		}
		if _, err := run(ctx, env, "apt-get", "install", "-y", "-q", zfsFusePackage); err != nil {
			return fmt.Errorf("installing zfs-fuse: %v", err)
		}
	}
	if !have("zpool") {
		// Debian puts it in /sbin, which a user's PATH may lack.
		os.Setenv("PATH", os.Getenv("PATH")+":/sbin:/usr/sbin")
	}
	return nil
}

// daemonUp reports whether a zfs-fuse daemon answers on its socket.
func daemonUp(ctx context.Context) bool {
	_, err := run(ctx, nil, "zpool", "list", "-H")
	return err == nil
}

// startDaemon starts zfs-fuse (it daemonizes and writes its pid file) unless
// one is running, and waits until it answers.
func (t *zfsFuseTarget) startDaemon(ctx context.Context) error {
	if daemonUp(ctx) {
		logf("zfs-fuse: using the daemon already running")
		return nil
	}
	pidFile := filepath.Join(t.base, "zfs-fuse.pid")
	if err := os.MkdirAll(t.base, 0o755); err != nil {
		return err
	}
	if _, err := run(ctx, nil, "zfs-fuse", "--pidfile", pidFile, "--no-kstat-mount"); err != nil {
		return err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		if data, err := os.ReadFile(pidFile); err == nil && t.pid == 0 {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(data))); err == nil {
				t.pid = pid
				t.undos = append(t.undos, cleanups.push("stop zfs-fuse", t.stopDaemon))
			}
		}
		if daemonUp(ctx) {
			return nil
		}
		if time.Now().After(deadline) {
			return errors.New("zfs-fuse daemon did not answer within 20s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// stopDaemon stops the daemon this target started (SIGTERM: it unmounts
// its filesystems and exits).
func (t *zfsFuseTarget) stopDaemon() error {
	if t.pid == 0 {
		return nil
	}
	_ = syscall.Kill(t.pid, syscall.SIGTERM)
	deadline := time.Now().Add(30 * time.Second)
	for processAlive(t.pid) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if processAlive(t.pid) {
		_ = syscall.Kill(t.pid, syscall.SIGKILL)
	}
	t.pid = 0
	return nil
}

// destroyPool destroys the target's pool; zfs-fuse answers "pool is busy"
// for a moment after the last file closes, so it retries.
func (t *zfsFuseTarget) destroyPool() error {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var err error
	for i := 0; i < 20; i++ {
		if _, err = run(ctx, nil, "zpool", "destroy", "-f", t.pool); err == nil {
			return nil
		}
		time.Sleep(500 * time.Millisecond)
	}
	return err
}

// coldCache exports and imports the pool (the daemon's ARC and the kernel's
// caches of the mount go with the export), then drops the page cache.
func (t *zfsFuseTarget) coldCache(ctx context.Context) (bool, error) {
	syncFS(t.mnt())
	var err error
	for i := 0; i < 20; i++ {
		if _, err = run(ctx, nil, "zpool", "export", t.pool); err == nil {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err != nil {
		return false, err
	}
	ok := dropCaches()
	if _, err := run(ctx, nil, "zpool", "import", "-d", t.base, t.pool); err != nil {
		return false, err
	}
	return ok, waitMounted(t.mnt(), 10*time.Second)
}

func (t *zfsFuseTarget) teardown() error {
	var first error
	for i := len(t.undos) - 1; i >= 0; i-- {
		if err := t.undos[i](); err != nil && first == nil {
			first = err
		}
	}
	t.undos = nil
	return first
}
