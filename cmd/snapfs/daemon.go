package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
)

// readyFdEnv names the inherited file descriptor on which a daemon child
// reports whether its mount came up: one line, "ok" or "error <message>".
const readyFdEnv = "SNAPFS_READY_FD"

// daemonLog is the daemon's log, in the pool directory.
const daemonLog = "daemon.log"

// startDaemon re-executes this command as a background daemon (a new
// session, stdio on POOLDIR/daemon.log) and returns once the daemon's mount
// answers, or with the daemon's error.
func startDaemon(m mountArgs) error {
	exe, err := os.Executable()
	if err != nil {
		return fmt.Errorf("find own executable: %w", err)
	}
	logPath := filepath.Join(m.dir, daemonLog)
	logf, err := os.OpenFile(logPath, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open daemon log: %w", err)
	}
	defer logf.Close()
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	defer r.Close()
	cmd := exec.Command(exe, os.Args[1:]...)
	cmd.Env = append(os.Environ(), readyFdEnv+"=3")
	cmd.ExtraFiles = []*os.File{w} // fd 3 in the child
	cmd.Stdout, cmd.Stderr = logf, logf
	// The child keeps our working directory: relative pool and mountpoint
	// paths in os.Args resolve the same way there.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	err = cmd.Start()
	w.Close()
	if err != nil {
		return fmt.Errorf("start daemon: %w", err)
	}
	line, rerr := bufio.NewReader(r).ReadString('\n')
	line = strings.TrimSpace(line)
	switch {
	case line == "ok":
		return cmd.Process.Release()
	case strings.HasPrefix(line, "error "):
		cmd.Wait()
		return errors.New(strings.TrimPrefix(line, "error "))
	}
	werr := cmd.Wait()
	if rerr != nil && rerr != io.EOF {
		return fmt.Errorf("daemon: %w", rerr)
	}
	return fmt.Errorf("daemon exited before the mount was ready (%v); see %s", werr, logPath)
}

// runDaemonChild serves m as the daemon started by startDaemon, reporting
// readiness on the inherited descriptor fd.
func runDaemonChild(m mountArgs, fd string) error {
	os.Unsetenv(readyFdEnv)
	n, err := strconv.Atoi(fd)
	if err != nil {
		return fmt.Errorf("%s=%q: %w", readyFdEnv, fd, err)
	}
	ready := os.NewFile(uintptr(n), "ready")
	log.SetPrefix(fmt.Sprintf("snapfs[%d] ", os.Getpid()))
	log.Printf("mounting volume %s of %s at %s", m.vol, m.dir, m.point)
	err = serve(m, func(err error) {
		if err == nil {
			log.Printf("mounted")
			fmt.Fprintln(ready, "ok")
		} else {
			fmt.Fprintf(ready, "error %s\n", oneLine(err))
		}
		ready.Close()
	})
	if err != nil {
		log.Printf("exit: %v", err)
	} else {
		log.Printf("exit: clean")
	}
	return err
}

// daemonMemoryLimit is the Go heap's soft limit for the daemon unless
// $GOMEMLIMIT says otherwise. Buffers (64 MiB dirty at most), the chunk
// cache (64 MiB) and Pebble's block cache fit well under it, so the
// collector seldom runs near it; it keeps garbage from doubling the
// resident size under heavy writing (measured: 4 KiB random writes over a
// 256 MiB file peaked at 318 MiB without it, 279 MiB with it; a 192 MiB
// limit made cp -a of GOROOT/src twice as slow from collector work).
const daemonMemoryLimit = 256 << 20

func limitMemory() {
	if os.Getenv("GOMEMLIMIT") == "" {
		debug.SetMemoryLimit(daemonMemoryLimit)
	}
}

// startProfiles starts the CPU profile named by $SNAPFS_CPUPROFILE; the
// returned function stops it and writes the heap profile named by
// $SNAPFS_MEMPROFILE. The benchmark program uses both.
func startProfiles() func() {
	var cpu *os.File
	if path := os.Getenv("SNAPFS_CPUPROFILE"); path != "" {
		f, err := os.Create(path)
		if err == nil {
			err = pprof.StartCPUProfile(f)
		}
		if err != nil {
			log.Printf("cpu profile: %v", err)
		} else {
			cpu = f
		}
	}
	return func() {
		if cpu != nil {
			pprof.StopCPUProfile()
			cpu.Close()
		}
		if path := os.Getenv("SNAPFS_MEMPROFILE"); path != "" {
			runtime.GC()
			f, err := os.Create(path)
			if err == nil {
				err = pprof.WriteHeapProfile(f)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
			}
			if err != nil {
				log.Printf("memory profile: %v", err)
			}
		}
	}
}
