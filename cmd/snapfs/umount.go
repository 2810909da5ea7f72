package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// umountWait bounds how long umount waits for the daemon to flush and exit.
const umountWait = 30 * time.Second

func cmdUmount(g *globals, args []string) error {
	flags := newFlags(g, "umount", "MOUNTPOINT")
	rest, err := parseArgs(flags, args, 1, 1)
	if err != nil {
		return err
	}
	point, err := cleanPoint(rest[0])
	if err != nil {
		return err
	}
	m, ok, err := findMount(point)
	if err != nil {
		return fmt.Errorf("read mounts: %w", err)
	}
	if !ok {
		return fmt.Errorf("%s is not mounted", point)
	}
	if m.FsType != fsType {
		return fmt.Errorf("%s is not a snapfs mount (it is %s)", point, m.FsType)
	}
	dir := poolOfSource(m.Source)
	pid := lockPid(dir)
	if err := unmount(point); err != nil {
		return err
	}
	return waitDaemon(point, dir, pid)
}

// unmount unmounts point: directly as root, through fusermount3 otherwise.
func unmount(point string) error {
	var err error
	if os.Geteuid() == 0 {
		err = syscall.Unmount(point, 0)
	} else {
		var out bytes.Buffer
		cmd := exec.Command("fusermount3", "-u", point)
		cmd.Stderr = &out
		if err = cmd.Run(); err != nil && out.Len() > 0 {
			err = errors.New(strings.TrimSpace(out.String()))
		}
	}
	switch {
	case errors.Is(err, syscall.EBUSY):
		return fmt.Errorf("%s is busy (a process has a file open or its cwd there)", point)
	case err != nil:
		return fmt.Errorf("unmount %s: %w", point, err)
	}
	return nil
}

// waitDaemon waits until point is gone from the mount table and the daemon
// that held the pool in dir (pid, if known) has exited, so that the next
// command can open the pool.
func waitDaemon(point, dir string, pid int) error {
	deadline := time.Now().Add(umountWait)
	for {
		_, mounted, err := findMount(point)
		if err != nil {
			return err
		}
		if !mounted && poolMountedElsewhere(dir) {
			return nil
		}
		if !mounted && !daemonRunning(dir, pid) {
			return daemonExitError(dir, pid)
		}
		if time.Now().After(deadline) {
			if mounted {
				return fmt.Errorf("%s is still mounted after %v", point, umountWait)
			}
			return fmt.Errorf("daemon pid %d of pool %s still running after %v (see %s)",
				pid, dir, umountWait, filepath.Join(dir, daemonLog))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// poolMountedElsewhere reports whether the daemon still serves another
// mount of the pool in dir, in which case it does not exit.
func poolMountedElsewhere(dir string) bool {
	mounts, err := poolMounts(dir)
	return err == nil && len(mounts) > 0
}

// daemonRunning reports whether the daemon holding the pool in dir runs:
// process pid when known, otherwise whoever holds the pool lock.
func daemonRunning(dir string, pid int) bool {
	if pid > 0 {
		return processAlive(pid)
	}
	f, err := os.Open(filepath.Join(dir, "lock"))
	if err != nil {
		return false
	}
	defer f.Close()
	// A shared lock conflicts with the daemon's exclusive one and is
	// dropped at once, so it cannot keep a starting daemon out for long.
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		return errors.Is(err, syscall.EWOULDBLOCK)
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return false
}

// lockPid returns the pid on the first line of the pool's lock file, or 0.
func lockPid(dir string) int {
	b, err := os.ReadFile(filepath.Join(dir, "lock"))
	if err != nil {
		return 0
	}
	line, _, _ := strings.Cut(string(b), "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(line))
	if err != nil || pid == os.Getpid() {
		return 0
	}
	return pid
}

// processAlive reports whether process pid exists (and is not a zombie).
func processAlive(pid int) bool {
	if err := syscall.Kill(pid, 0); err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return !os.IsNotExist(err)
	}
	// The state follows the parenthesized command name: "pid (comm) S ...".
	if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] != 'Z'
	}
	return true
}

// daemonExitError returns the daemon's own error if its last "exit:" line in
// the pool's daemon log is not "exit: clean" (so a failed final flush is
// reported by umount), and nil otherwise.
func daemonExitError(dir string, pid int) error {
	if pid <= 0 {
		return nil
	}
	data, err := os.ReadFile(filepath.Join(dir, daemonLog))
	if err != nil {
		return nil
	}
	tag := "snapfs[" + strconv.Itoa(pid) + "]"
	lines := strings.Split(string(data), "\n")
	for i := len(lines) - 1; i >= 0; i-- {
		l := lines[i]
		if !strings.HasPrefix(l, tag) {
			continue
		}
		j := strings.Index(l, "exit: ")
		if j < 0 {
			continue
		}
		msg := l[j+len("exit: "):]
		if msg == "clean" {
			return nil
		}
		return fmt.Errorf("daemon pid %d stopped with an error: %s (see %s)", pid, msg, filepath.Join(dir, daemonLog))
	}
	return nil
}
