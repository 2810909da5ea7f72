package store

import (
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/snapfs/snapfs/pool"
	"github.com/snapfs/snapfs/pool/pooltest"
)

// recordObserver records what the store hands an Observer.
type recordObserver struct {
	mu        sync.Mutex
	flushes   []time.Duration
	failed    int
	snapshots [][2]time.Duration
}

func (o *recordObserver) FlushDone(d time.Duration, failed bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.flushes = append(o.flushes, d)
	if failed {
		o.failed++
	}
}

func (o *recordObserver) SnapshotTaken(d, pause time.Duration) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.snapshots = append(o.snapshots, [2]time.Duration{d, pause})
}

// TestStats runs a sequence of operations and checks after each what
// Stats and the Observer say about it.
func TestStats(t *testing.T) {
	p := pooltest.NewOptions(t, 2, pool.CreateOptions{Copies: 2}, pool.OpenOptions{})
	s, v := openTestStoreOn(t, p)
	obs := &recordObserver{}
	s.SetObserver(obs)
	var before Stats
	steps := []struct {
		name  string
		do    func(t *testing.T)
		check func(t *testing.T, st Stats)
	}{
		{"nothing yet", func(t *testing.T) {}, func(t *testing.T, st Stats) {
			if st.DirtyBytes != 0 || st.SealedBytes != 0 || st.Scrub != nil || st.Pebble == nil {
				t.Errorf("fresh store: %+v", st)
			}
			if len(st.Health.Members) != 2 || st.Health.State != pool.StateOK || st.Space.Total <= 0 {
				t.Errorf("members %+v space %+v", st.Health, st.Space)
			}
		}},
		{"buffered write", func(t *testing.T) {
			_, h, err := s.Create(v, RootIno, "buffered", 0o644, 0, 0, syscall.O_RDWR)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := h.Write(randBytes(200<<10), 0); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { h.Release() })
		}, func(t *testing.T, st Stats) {
			if st.DirtyBytes < 200<<10 {
				t.Errorf("dirty bytes %d after a 200 KiB write not flushed", st.DirtyBytes)
			}
		}},
		{"fsync'd file", func(t *testing.T) { writeTestFile(t, s, v, "a", randBytes(300<<10)) }, func(t *testing.T, st Stats) {
			if st.FlushBatches <= before.FlushBatches || st.FlushBytes < before.FlushBytes+300<<10 {
				t.Errorf("flushes %d -> %d, bytes %d -> %d", before.FlushBatches, st.FlushBatches, before.FlushBytes, st.FlushBytes)
			}
			if st.SealedBytes != 0 {
				t.Errorf("sealed bytes %d with no flush in flight", st.SealedBytes)
			}
		}},
		{"snapshot", func(t *testing.T) {
			if _, _, err := s.PinEpoch(v.Lineage, "test", nil); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, st Stats) {
			if st.Snapshots != before.Snapshots+1 {
				t.Errorf("snapshots %d -> %d", before.Snapshots, st.Snapshots)
			}
		}},
		{"checkpoint", func(t *testing.T) {
			if _, err := s.Checkpoint("test"); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, st Stats) {
			if st.Checkpoints != before.Checkpoints+1 || st.LastCheckpoint.Reason != "test" {
				t.Errorf("checkpoints %d -> %d, last %+v", before.Checkpoints, st.Checkpoints, st.LastCheckpoint)
			}
		}},
		{"scrub repairing a bad copy", func(t *testing.T) {
			_, rec := someChunkRef(t, s)
			flipByte(t, p, rec.Locs[0])
			if _, err := s.Scrub(ScrubOptions{}); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, st Stats) {
			sc := st.Scrub
			if sc == nil || sc.Running || sc.Report.Bad != 1 || sc.Report.Repaired != 1 || sc.Report.Chunks != sc.Report.Total {
				t.Errorf("scrub progress %+v", sc)
			}
		}},
		{"unpin: reclaim", func(t *testing.T) {
			// "a" rewritten: its old chunks are kept by the pin alone.
			writeTestFile(t, s, v, "a2", randBytes(100<<10))
			ino, err := s.Lookup(v, RootIno, "a")
			if err != nil {
				t.Fatal(err)
			}
			h, err := s.Open(v, ino.Ino, syscall.O_RDWR)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := h.Write(randBytes(300<<10), 0); err != nil {
				t.Fatal(err)
			}
			if err := h.Fsync(false); err != nil {
				t.Fatal(err)
			}
			h.Release()
			pins, err := s.Pins(v.Lineage)
			if err != nil || len(pins) != 1 {
				t.Fatalf("pins %v %v", pins, err)
			}
			if err := s.UnpinEpoch(v.Lineage, pins[0], "test"); err != nil {
				t.Fatal(err)
			}
		}, func(t *testing.T, st Stats) {
			// The old chunks wait in the free queue (or the walk that
			// frees them has not run yet) until a checkpoint holds it.
			if st.ReclaimIntents+st.FreeQueue == 0 || st.Parked != 0 {
				t.Errorf("backlog after unpin: intents %d free queue %d parked %d", st.ReclaimIntents, st.FreeQueue, st.Parked)
			}
			deadline := time.Now().Add(10 * time.Second)
			for st.ReclaimIntents+st.FreeQueue > 0 && time.Now().Before(deadline) {
				s.RequestCheckpoint("test")
				time.Sleep(20 * time.Millisecond)
				var err error
				if st, err = s.Stats(); err != nil {
					t.Fatal(err)
				}
			}
			if st.ReclaimIntents+st.FreeQueue != 0 {
				t.Errorf("backlog not drained after 10s: intents %d free queue %d", st.ReclaimIntents, st.FreeQueue)
			}
		}},
	}
	for _, step := range steps {
		step.do(t)
		st, err := s.Stats()
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		t.Run(step.name, func(t *testing.T) { step.check(t, st) })
		before = st
	}
	obs.mu.Lock()
	defer obs.mu.Unlock()
	if len(obs.flushes) == 0 || obs.failed != 0 || len(obs.snapshots) != 1 {
		t.Errorf("observer: %d flushes (%d failed), %d snapshots", len(obs.flushes), obs.failed, len(obs.snapshots))
	}
	for _, d := range obs.snapshots {
		if d[0] <= 0 || d[1] < 0 || d[1] > d[0] {
			t.Errorf("snapshot durations: took %v, pause %v", d[0], d[1])
		}
	}
}
