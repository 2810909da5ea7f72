package tests

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// TestSingleFileSoak is the reproduction of issue 11 (an inode lock leaked
// by a panic in a read past a just-lowered end of file), and a soak of the
// file paths it ran through: one process keeps one file of at most
// 256 KiB open and runs random writes, reads (past the end too), reads
// and writes through mmap and truncates up and down, with an fstat after
// each, against a model of the file's bytes. Beside it a second descriptor
// reads at random offsets without pause (its reads race the truncates,
// as the kernel's read-around does) and, in the "snapshots" variants,
// snapshots of the dataset are taken and destroyed every 200 ms. It runs
// on the live volume and in a branch.
//
// A hang becomes a failure: when no operation completes for
// singleFileStall, the test asks the daemon for every goroutine's stack
// (snapfs debug stacks), copies the daemon log into the test log and
// aborts the FUSE connection, which makes the stuck system call return.
//
// SNAPFS_SOAK_OPS sets the operations per variant (make soak: 1,000,000),
// SNAPFS_TEST_SEED replays a run (the seed is logged on failure).
func TestSingleFileSoak(t *testing.T) {
	ops := 6000
	if testing.Short() {
		ops = 2000
	}
	if v := os.Getenv("SNAPFS_SOAK_OPS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 {
			t.Fatalf("SNAPFS_SOAK_OPS=%q: want a positive count", v)
		}
		ops = n
	}
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("SNAPFS_TEST_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	for _, where := range []string{"live", "branch"} {
		for _, snaps := range []bool{false, true} {
			name := where + "/quiet"
			if snaps {
				name = where + "/snapshots"
			}
			t.Run(name, func(t *testing.T) {
				mnt, pool := mountVolume(t, mountOpts{})
				dir := mnt
				if where == "branch" {
					check(t, os.Mkdir(filepath.Join(mnt, ".snapshots", "base"), 0o755))
					snapfsOK(t, "-p", pool, "branch", "create", "vol@base", "br")
					dir = filepath.Join(mnt, ".snapshots", "br")
				}
				s := seed + uint64(len(name))*1000003
				start := time.Now()
				runSingleFile(t, mnt, pool, dir, ops, s, snaps)
				t.Logf("%d operations in %v (%.0f/s), seed %d", ops, time.Since(start).Round(time.Millisecond),
					float64(ops)/time.Since(start).Seconds(), s)
				if t.Failed() {
					t.Logf("replay with SNAPFS_TEST_SEED=%d", seed)
				}
			})
		}
	}
}

// singleFileStall is how long no operation may complete before the soak
// reports a hang.
const singleFileStall = 60 * time.Second

// singleFileMax is the file's largest size: two 128 KiB chunks.
const singleFileMax = 0x40000

func runSingleFile(t *testing.T, mnt, pool, dir string, ops int, seed uint64, snaps bool) {
	path := filepath.Join(dir, "f")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	racer, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer racer.Close()

	var progress atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	var hung atomic.Bool
	var bgErr error
	var bgMu sync.Mutex
	fail := func(err error) {
		bgMu.Lock()
		defer bgMu.Unlock()
		if bgErr == nil {
			bgErr = err
		}
	}
	wg.Add(1)
	go func() { // the hang watchdog
		defer wg.Done()
		last, since := progress.Load(), time.Now()
		for tick := 1; ; tick++ {
			select {
			case <-stop:
				return
			case <-time.After(time.Second):
			}
			if tick%300 == 0 { // a long soak says how far it is
				t.Logf("%d of %d operations done", progress.Load(), ops)
			}
			if n := progress.Load(); n != last {
				last, since = n, time.Now()
				continue
			}
			if time.Since(since) > singleFileStall {
				hung.Store(true)
				reportHang(t, mnt, pool)
				return
			}
		}
	}()
	wg.Add(1)
	go func() { // reads racing the truncates
		defer wg.Done()
		r := rand.New(rand.NewPCG(seed, 2))
		buf := make([]byte, 0x10000)
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := racer.ReadAt(buf, int64(r.IntN(singleFileMax+0x10000))); err != nil && !errors.Is(err, io.EOF) {
				fail(fmt.Errorf("racing read: %w", err))
				return
			}
		}
	}()
	if snaps {
		wg.Add(1)
		go func() { // snapshots taken and destroyed while the file changes
			defer wg.Done()
			sd := filepath.Join(dir, ".snapshots")
			for i := 1; ; i++ {
				select {
				case <-stop:
					return
				case <-time.After(200 * time.Millisecond):
				}
				if err := os.Mkdir(filepath.Join(sd, fmt.Sprintf("soak%d", i)), 0o755); err != nil {
					fail(fmt.Errorf("snapshot soak%d: %w", i, err))
					return
				}
				if i > 3 {
					if err := os.Remove(filepath.Join(sd, fmt.Sprintf("soak%d", i-3))); err != nil {
						fail(fmt.Errorf("destroy snapshot soak%d: %w", i-3, err))
						return
					}
				}
			}
		}()
	}
	err = singleFileOps(f, ops, seed, &progress)
	close(stop)
	wg.Wait()
	if hung.Load() {
		t.Fatalf("the workload hung (no operation completed for %v); last error: %v", singleFileStall, err)
	}
	if err != nil {
		t.Fatal(err)
	}
	bgMu.Lock()
	defer bgMu.Unlock()
	if bgErr != nil {
		t.Fatal(bgErr)
	}
}

// singleFileOps runs the random operations on f against a model of its
// bytes; it returns the first difference or error.
func singleFileOps(f *os.File, ops int, seed uint64, progress *atomic.Int64) error {
	r := rand.New(rand.NewPCG(seed, 1))
	fd := int(f.Fd())
	if err := f.Truncate(0); err != nil {
		return err
	}
	var model []byte
	buf := make([]byte, 0x10000)
	for i := 0; i < ops; i++ {
		size := len(model)
		var op string
		switch x := r.IntN(100); {
		case x < 35:
			off := r.IntN(singleFileMax)
			n := min(1+r.IntN(0x10000), singleFileMax-off)
			if r.IntN(10) < 3 {
				off = singleFileMax - n // end exactly at two whole chunks
			}
			data := make([]byte, n)
			for j := range data {
				data[j] = byte(r.UintN(256))
			}
			op = fmt.Sprintf("write %d at %d", n, off)
			if _, err := f.WriteAt(data, int64(off)); err != nil {
				return fmt.Errorf("op %d: %s: %w", i, op, err)
			}
			if len(model) < off+n {
				model = append(model, make([]byte, off+n-len(model))...)
			}
			copy(model[off:], data)
		case x < 50 && size > 0:
			at := r.IntN(size)
			op = fmt.Sprintf("mmap read at %d of %d", at, size)
			m, err := syscall.Mmap(fd, 0, size, syscall.PROT_READ, syscall.MAP_SHARED)
			if err != nil {
				return fmt.Errorf("op %d: %s: %w", i, op, err)
			}
			got := m[at]
			syscall.Munmap(m)
			if got != model[at] {
				return fmt.Errorf("op %d: %s: byte %#x, want %#x", i, op, got, model[at])
			}
		case x < 60 && size > 0:
			at := r.IntN(size)
			op = fmt.Sprintf("mmap write at %d of %d", at, size)
			m, err := syscall.Mmap(fd, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_SHARED)
			if err != nil {
				return fmt.Errorf("op %d: %s: %w", i, op, err)
			}
			m[at] = 'x'
			err = msync(m)
			syscall.Munmap(m)
			if err != nil {
				return fmt.Errorf("op %d: %s: msync: %w", i, op, err)
			}
			model[at] = 'x'
		case x < 80:
			to := r.IntN(singleFileMax)
			if size == singleFileMax {
				to = 0x20001 + r.IntN(singleFileMax-0x20001)
			}
			op = fmt.Sprintf("truncate %d to %d", size, to)
			if err := f.Truncate(int64(to)); err != nil {
				return fmt.Errorf("op %d: %s: %w", i, op, err)
			}
			if to < len(model) {
				model = model[:to]
			} else {
				model = append(model, make([]byte, to-len(model))...)
			}
		default:
			off := r.IntN(singleFileMax + 0x10000)
			op = fmt.Sprintf("read %d at %d of %d", len(buf), off, size)
			n, err := f.ReadAt(buf, int64(off))
			if err != nil && !errors.Is(err, io.EOF) {
				return fmt.Errorf("op %d: %s: %w", i, op, err)
			}
			var want []byte
			if off < size {
				want = model[off:min(size, off+len(buf))]
			}
			if !bytes.Equal(buf[:n], want) {
				return fmt.Errorf("op %d: %s: %d bytes differ from the model's %d", i, op, n, len(want))
			}
		}
		fi, err := f.Stat()
		if err != nil {
			return fmt.Errorf("op %d: fstat after %s: %w", i, op, err)
		}
		if fi.Size() != int64(len(model)) {
			return fmt.Errorf("op %d: size %d after %s, want %d", i, fi.Size(), op, len(model))
		}
		progress.Add(1)
	}
	got, err := io.ReadAll(io.NewSectionReader(f, 0, singleFileMax+1))
	if err != nil {
		return fmt.Errorf("read back: %w", err)
	}
	if !bytes.Equal(got, model) {
		return fmt.Errorf("read back %d bytes: differ from the model's %d", len(got), len(model))
	}
	return nil
}

// msync writes a shared mapping's dirty pages back (MS_SYNC).
func msync(b []byte) error {
	_, _, e := syscall.Syscall(syscall.SYS_MSYNC, uintptr(unsafePointer(b)), uintptr(len(b)), 4 /* MS_SYNC */)
	if e != 0 {
		return e
	}
	return nil
}

// reportHang logs what a hung mount shows: every goroutine's stack of the
// daemon (snapfs debug stacks writes them to its log) and the log's tail;
// then it aborts the mount's FUSE connection so that the stuck system
// calls return and the test can fail and clean up.
func reportHang(t *testing.T, mnt, pool string) {
	out, err := exec.Command(snapfsBin, "-p", pool, "debug", "stacks").CombinedOutput()
	t.Logf("snapfs debug stacks: %s %v", bytes.TrimSpace(out), err)
	if b, err := os.ReadFile(filepath.Join(pool, "daemon.log")); err == nil {
		if len(b) > 200000 {
			b = b[len(b)-200000:]
		}
		t.Logf("daemon.log of %s:\n%s", pool, b)
	}
	if err := abortFuse(mnt); err != nil {
		t.Logf("abort the FUSE connection of %s: %v", mnt, err)
	}
}

// abortFuse aborts the FUSE connection behind the mount at mnt
// (/sys/fs/fuse/connections/N/abort, N the minor of the mount's device in
// /proc/self/mountinfo: a stat of a hung mount could hang too).
func abortFuse(mnt string) error {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(b), "\n") {
		fields := strings.Fields(line)
		if len(fields) > 4 && unescapeOctal(fields[4]) == mnt {
			_, minor, _ := strings.Cut(fields[2], ":")
			return os.WriteFile("/sys/fs/fuse/connections/"+minor+"/abort", []byte("1"), 0o200)
		}
	}
	return fmt.Errorf("%s is not in /proc/self/mountinfo", mnt)
}

func unsafePointer(b []byte) unsafe.Pointer { return unsafe.Pointer(&b[0]) }

// TestDebugStacks: snapfs debug stacks makes the daemon of a mounted pool
// write every goroutine's stack to its log, and says so.
func TestDebugStacks(t *testing.T) {
	_, pool := mountVolume(t, mountOpts{})
	out := snapfsOK(t, "-p", pool, "debug", "stacks")
	if !strings.HasPrefix(out, "wrote the stacks of ") || !strings.Contains(out, "daemon.log") {
		t.Errorf("snapfs debug stacks said %q", out)
	}
	b, err := os.ReadFile(filepath.Join(pool, "daemon.log"))
	if err != nil {
		t.Fatal(err)
	}
	log := string(b)
	if !strings.Contains(log, "debug stacks asked by uid") || !strings.Contains(log, "goroutine ") || !strings.Contains(log, "fuse") {
		t.Errorf("the daemon log has no stacks after debug stacks:\n%.3000s", log)
	}
}
