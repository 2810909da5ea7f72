package store

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestReadPastEndAfterTruncate: a read at or past an end of file that a
// truncate just lowered returns EOF, whatever is buffered of the chunks
// (the kernel sends such reads from page cache or mmap read-around of the
// old size). It once panicked in captureLayers with the inode locked, and
// every later user of the inode hung (issue 11).
func TestReadPastEndAfterTruncate(t *testing.T) {
	const oldSize, newSize = 0x40000, 0x3bf14 // two 128 KiB chunks -> 245,524 bytes
	for _, tc := range []struct {
		name  string
		setup func(t *testing.T, s *Store, v View) *Handle
	}{
		{"dirty", func(t *testing.T, s *Store, v View) *Handle {
			_, h, err := s.Create(v, RootIno, "f", 0o644, 0, 0, syscall.O_RDWR)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := h.Write(randomChunks(oldSize, 1), 0); err != nil {
				t.Fatal(err)
			}
			return h
		}},
		{"committed", func(t *testing.T, s *Store, v View) *Handle {
			return storedFile(t, s, v, randomChunks(oldSize, 2))
		}},
		{"overlay", func(t *testing.T, s *Store, v View) *Handle {
			h := storedFile(t, s, v, randomChunks(oldSize, 3))
			if _, err := h.Write([]byte("patch"), 0x3e000); err != nil {
				t.Fatal(err)
			}
			return h
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, v := NewTestStore(t, 1, Options{})
			h := tc.setup(t, s, v)
			defer h.Release()
			if _, err := s.SetAttr(v, h.ino, SetAttrIn{Valid: SetSize, Size: newSize}); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 0x10000)
			for _, off := range []int64{0x3d000, newSize, newSize + 1, oldSize, oldSize + 0x10000} {
				n, err := h.Read(buf, off)
				if n != 0 || err != nil {
					t.Errorf("read at %#x past the end %#x: %d bytes, %v; want 0 bytes (EOF)", off, newSize, n, err)
				}
				if !h.st.mu.TryLock() {
					t.Fatalf("the inode is still locked after a read at %#x", off)
				}
				h.st.mu.Unlock()
			}
			// A read across the new end returns the bytes up to it.
			n, err := h.Read(buf, newSize-100)
			if n != 100 || err != nil {
				t.Errorf("read across the end: %d bytes, %v; want 100", n, err)
			}
			if a, err := h.Attr(); err != nil || a.Size != newSize {
				t.Errorf("attr after the reads: size %d, %v", a.Size, err)
			}
		})
	}
}

// TestRandomSingleFileOps runs random writes, reads (many past the end),
// truncates up and down, fsyncs and snapshots on one open file against a
// model of its bytes: the engine half of the single-file soak
// (tests/singlefile_test.go runs it through a mount).
// SNAPFS_TEST_SEED replays a run; SNAPFS_TEST_OPS sets its length.
func TestRandomSingleFileOps(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	if v := os.Getenv("SNAPFS_TEST_SEED"); v != "" {
		seed, _ = strconv.ParseUint(v, 10, 64)
	}
	ops := 4000
	if testing.Short() {
		ops = 1000
	}
	if v := os.Getenv("SNAPFS_TEST_OPS"); v != "" {
		ops, _ = strconv.Atoi(v)
	}
	defer func() {
		if t.Failed() {
			t.Logf("replay with SNAPFS_TEST_SEED=%d", seed)
		}
	}()
	r := rand.New(rand.NewPCG(seed, 11))
	s, v := NewTestStore(t, 1, Options{})
	_, h, err := s.Create(v, RootIno, "f", 0o644, 0, 0, syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	const maxSize = 0x40000
	var model []byte
	snaps := 0
	for i := 0; i < ops; i++ {
		switch x := r.IntN(100); {
		case x < 35:
			off := r.IntN(maxSize)
			n := min(1+r.IntN(0x10000), maxSize-off)
			data := randomChunks(n, r.Uint64())
			if _, err := h.Write(data, int64(off)); err != nil {
				t.Fatalf("op %d: write %d at %d: %v", i, n, off, err)
			}
			if len(model) < off+n {
				model = append(model, make([]byte, off+n-len(model))...)
			}
			copy(model[off:], data)
		case x < 55:
			to := r.IntN(maxSize)
			if _, err := s.SetAttr(v, h.ino, SetAttrIn{Valid: SetSize, Size: uint64(to)}); err != nil {
				t.Fatalf("op %d: truncate to %d: %v", i, to, err)
			}
			if to < len(model) {
				model = model[:to]
			} else {
				model = append(model, make([]byte, to-len(model))...)
			}
		case x < 90:
			off := r.IntN(maxSize + 0x10000)
			buf := make([]byte, 1+r.IntN(0x10000))
			n, err := h.Read(buf, int64(off))
			want := []byte{}
			if off < len(model) {
				want = model[off:min(len(model), off+len(buf))]
			}
			if err != nil || !bytes.Equal(buf[:n], want) {
				t.Fatalf("op %d: read %d at %d of a %d-byte file: %d bytes, %v; want %d bytes (equal %v)",
					i, len(buf), off, len(model), n, err, len(want), bytes.Equal(buf[:min(n, len(want))], want[:min(n, len(want))]))
			}
		case x < 96:
			if err := h.Fsync(false); err != nil {
				t.Fatalf("op %d: fsync: %v", i, err)
			}
		default:
			snaps++
			if _, _, err := s.PinEpoch(v.Lineage, fmt.Sprintf("s%d", snaps), nil); err != nil {
				t.Fatalf("op %d: snapshot: %v", i, err)
			}
		}
		if a, err := h.Attr(); err != nil || a.Size != uint64(len(model)) {
			t.Fatalf("op %d: size %d, %v; model %d", i, a.Size, err, len(model))
		}
	}
}

// TestLockWatchdogLogsStuckWait: a wait for an inode lock longer than
// LockWaitWarn is logged once, with every goroutine's stack.
func TestLockWatchdogLogsStuckWait(t *testing.T) {
	var mu sync.Mutex
	var lines []string
	logf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		lines = append(lines, fmt.Sprintf(format, args...))
	}
	s, _ := NewTestStore(t, 1, Options{LockWaitWarn: 50 * time.Millisecond, Logf: logf})
	st := s.inodes.acquire(inodeKey{1, 12345})
	defer s.inodes.release(st)
	st.mu.Lock()
	got := make(chan struct{})
	go func() {
		st.mu.Lock()
		st.mu.Unlock()
		close(got)
	}()
	deadline := time.Now().Add(10 * time.Second)
	var log string
	for time.Now().Before(deadline) {
		mu.Lock()
		log = strings.Join(lines, "\n")
		mu.Unlock()
		if strings.Contains(log, "goroutine ") {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	st.mu.Unlock()
	<-got
	if !strings.Contains(log, "for the lock of inode 12345") || !strings.Contains(log, "goroutine ") {
		t.Fatalf("the watchdog did not log the stuck wait with stacks; log:\n%.2000s", log)
	}
	time.Sleep(100 * time.Millisecond)
	mu.Lock()
	defer mu.Unlock()
	if n := strings.Count(strings.Join(lines, "\n"), "for the lock of inode 12345"); n != 1 {
		t.Errorf("the stuck wait was logged %d times, want once", n)
	}
}

// TestFlushTimerSkipsLockedInode: the flush timer skips an inode whose lock
// is held (it comes back to it on its next tick) and flushes the others.
func TestFlushTimerSkipsLockedInode(t *testing.T) {
	s, v := NewTestStore(t, 1, Options{FlushInterval: time.Hour})
	_, stuck, err := s.Create(v, RootIno, "stuck", 0o644, 0, 0, syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	defer stuck.Release()
	_, other, err := s.Create(v, RootIno, "other", 0o644, 0, 0, syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Release()
	for _, h := range []*Handle{stuck, other} {
		if _, err := h.Write([]byte("dirty bytes"), 5000); err != nil {
			t.Fatal(err)
		}
	}
	stuck.st.mu.Lock()
	done := make(chan struct{})
	go func() {
		s.flushOld(time.Now().Add(time.Hour))
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		stuck.st.mu.Unlock()
		t.Fatal("flushOld waited for a locked inode")
	}
	stuck.st.mu.Unlock()
	deadline := time.Now().Add(10 * time.Second)
	for {
		var dirty bool
		other.st.withLock(func() { dirty = len(other.st.dirty) > 0 || other.st.recDirty })
		if !dirty {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the other inode was not flushed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}
