package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// cleanups is a stack of undo actions (unmount, losetup -d, kill, rm),
// run in reverse order at exit, on error and on SIGINT/SIGTERM.
type cleanupStack struct {
	mu    sync.Mutex
	funcs []cleanupFunc
}

type cleanupFunc struct {
	what string
	fn   func() error
	done bool
}

var cleanups cleanupStack

// push registers fn and returns a function that runs it now (once) and
// removes it from the stack.
func (c *cleanupStack) push(what string, fn func() error) func() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.funcs = append(c.funcs, cleanupFunc{what: what, fn: fn})
	idx := len(c.funcs) - 1
	return func() error {
		c.mu.Lock()
		if c.funcs[idx].done {
			c.mu.Unlock()
			return nil
		}
		c.funcs[idx].done = true
		c.mu.Unlock()
		return fn()
	}
}

func (c *cleanupStack) runAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for i := len(c.funcs) - 1; i >= 0; i-- {
		f := &c.funcs[i]
		if f.done {
			continue
		}
		f.done = true
		if err := f.fn(); err != nil {
			logf("cleanup %s: %v", f.what, err)
		}
	}
}

var verbose bool

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench: "+format+"\n", args...)
}

func debugf(format string, args ...any) {
	if verbose {
		logf(format, args...)
	}
}

// run runs a command and returns its combined output; the error carries
// the last line of output.
func run(ctx context.Context, env []string, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	debugf("run %s %s", name, strings.Join(args, " "))
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, lastLine(out.String()))
	}
	return out.String(), nil
}

func lastLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.LastIndexByte(s, '\n'); i >= 0 {
		s = s[i+1:]
	}
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

func have(prog string) bool {
	_, err := exec.LookPath(prog)
	return err == nil
}

var isRoot = os.Geteuid() == 0

// dropCaches writes back and drops the page, dentry and inode caches (root
// only). It reports whether the caches were really dropped.
func dropCaches() bool {
	unix.Sync()
	if !isRoot {
		return false
	}
	return os.WriteFile("/proc/sys/vm/drop_caches", []byte("3\n"), 0) == nil
}

func isMounted(path string) bool {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && unescapeMount(f[4]) == path {
			return true
		}
	}
	return false
}

func unescapeMount(s string) string {
	r := strings.NewReplacer(`\040`, " ", `\011`, "\t", `\012`, "\n", `\134`, `\`)
	return r.Replace(s)
}

// unmount unmounts path: fusermount3 -u for FUSE, umount otherwise, lazy
// umount as the last resort.
func unmount(path string) error {
	if !isMounted(path) {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var err error
	if have("fusermount3") {
		if _, err = run(ctx, nil, "fusermount3", "-u", path); err == nil {
			return nil
		}
	}
	if _, err = run(ctx, nil, "umount", path); err == nil {
		return nil
	}
	if _, err2 := run(ctx, nil, "umount", "-l", path); err2 != nil {
		return fmt.Errorf("%v; lazy: %v", err, err2)
	}
	return nil
}

// waitMounted polls until path is a mount point.
func waitMounted(path string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !isMounted(path) {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not mounted after %v", path, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// freeBytes is the space available to unprivileged users of the
// filesystem holding path.
func freeBytes(path string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return 0, err
	}
	return st.Bavail * uint64(st.Bsize), nil
}

// syncFS calls syncfs(2) on the filesystem holding path.
func syncFS(path string) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return
	}
	_ = unix.Syncfs(fd)
	unix.Close(fd)
}

func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	_, err := os.Stat(fmt.Sprintf("/proc/%d", pid))
	if err != nil {
		return false
	}
	// A zombie is dead for our purposes.
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err == nil {
		if i := bytes.LastIndexByte(data, ')'); i > 0 && i+2 < len(data) && data[i+2] == 'Z' {
			return false
		}
	}
	return true
}

// vmHWM returns the peak resident set size of pid, in bytes.
func vmHWM(pid int) (uint64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmHWM:") {
			var kb uint64
			if _, err := fmt.Sscanf(strings.TrimPrefix(line, "VmHWM:"), "%d", &kb); err != nil {
				return 0, err
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("no VmHWM in /proc/%d/status", pid)
}

// resetHWM resets the peak RSS of pid (clear_refs 5; needs ownership/root).
func resetHWM(pid int) error {
	return os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5\n"), 0)
}
