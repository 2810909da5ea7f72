package store

import (
	"bytes"
	"syscall"
	"testing"
	"time"
)

// TestQueuedFlushOfBusyInodeWaits: a queued flush that finds the inode's
// flush running elsewhere leaves a request with the holder instead of
// queueing itself again (the workers used to spin on it for as long as the
// other flush ran, taking most of the CPU while a big file was written);
// the holder queues it when done, and the data gets flushed.
func TestQueuedFlushOfBusyInodeWaits(t *testing.T) {
	s, v := NewTestStore(t, 1, Options{})
	_, h, err := s.Create(v, RootIno, "f", 0o644, 0, 0, syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	data := bytes.Repeat([]byte("q"), 1<<20)
	if _, err := h.Write(data, 0); err != nil {
		t.Fatal(err)
	}
	st := h.st
	st.flushMu.Lock() // a flush "running elsewhere"
	s.flusher.queue(st, sealAll)
	deadline := time.Now().Add(5 * time.Second)
	for {
		st.mu.Lock()
		asked := st.requeue
		st.mu.Unlock()
		if asked {
			break
		}
		if time.Now().After(deadline) {
			st.flushMu.Unlock()
			t.Fatal("the queued flush never found the inode busy")
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(20 * time.Millisecond)
	s.flusher.mu.Lock()
	queued := len(s.flusher.q)
	s.flusher.mu.Unlock()
	st.mu.Lock()
	dirty := len(st.dirty)
	st.mu.Unlock()
	if queued != 0 || dirty == 0 {
		st.flushMu.Unlock()
		t.Fatalf("while busy: %d inodes queued (want 0: no spinning), %d dirty chunks (want the data still buffered)", queued, dirty)
	}
	s.unlockFlush(st) // the holder is done: it queues the flush it was asked for
	for {
		st.mu.Lock()
		dirty = len(st.dirty) + len(st.sealed)
		st.mu.Unlock()
		if dirty == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d chunks still buffered: the deferred flush was lost", dirty)
		}
		time.Sleep(time.Millisecond)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}
