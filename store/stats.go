package store

import (
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/snapfs/snapfs/pool"
)

// Running figures for monitoring (the daemon's /metrics, see
// internal/metrics). The store counts events with atomics where they
// happen (flushJobs, PinEpochs, Checkpoint, Scrub: one line each) and
// hands their durations to an Observer, if one is set, for histograms;
// Stats gathers the counters with what is read at the time of asking
// (buffers, the reclaim backlog, the members, Pebble's own metrics).

// Observer receives the durations of the store's operations. Its methods
// are called on the paths they time, so they must be quick and must not
// call back into the store.
type Observer interface {
	// FlushDone is called after a flush batch committed (or failed):
	// elapsed from its first append to its last commit.
	FlushDone(elapsed time.Duration, failed bool)
	// SnapshotTaken is called after PinEpochs pinned its lineages:
	// elapsed is the whole call (flushing the lineages first, the pin,
	// the WAL sync), pause the time their writers were held off.
	SnapshotTaken(elapsed, pause time.Duration)
}

// observerBox holds an Observer in an atomic.Pointer.
type observerBox struct{ o Observer }

// storeStats are the store's counters since Open. Atomics: no lock.
type storeStats struct {
	observer      atomic.Pointer[observerBox]
	flushBatches  atomic.Uint64 // flushJobs calls
	flushFailed   atomic.Uint64 // of which failed
	flushBytes    atomic.Uint64 // chunk bytes they wrote
	sealedBytes   atomic.Int64  // chunk bytes of flush batches in flight
	snapshots     atomic.Uint64 // PinEpochs calls that pinned
	checkpoints   atomic.Uint64 // checkpoints shipped to every target
	checkpointBad atomic.Uint64 // checkpoints that missed a target or failed
	catalogReads  atomic.Uint64 // catalog records visited by listings and pin walks
	scrub         atomic.Pointer[ScrubProgress]
}

// SetObserver makes o receive the durations of flushes and snapshots
// from now on; nil stops it.
func (s *Store) SetObserver(o Observer) {
	if o == nil {
		s.stats.observer.Store(nil)
		return
	}
	s.stats.observer.Store(&observerBox{o})
}

func (s *Store) observer() Observer {
	if b := s.stats.observer.Load(); b != nil {
		return b.o
	}
	return nil
}

// flushStarted counts a flush batch of chunks going out; the returned
// function, called when it is done, counts its outcome and times it.
func (s *Store) flushStarted(chunks []*sealedChunk) func(failed bool) {
	start := time.Now()
	var n int64
	for _, c := range chunks {
		n += int64(c.length)
	}
	s.stats.sealedBytes.Add(n)
	return func(failed bool) {
		s.stats.sealedBytes.Add(-n)
		s.stats.flushBatches.Add(1)
		if failed {
			s.stats.flushFailed.Add(1)
		} else {
			s.stats.flushBytes.Add(uint64(n))
		}
		if o := s.observer(); o != nil {
			o.FlushDone(time.Since(start), failed)
		}
	}
}

// pinned counts a snapshot (a PinEpochs call that pinned) and times it.
func (s *Store) pinned(start time.Time, pause time.Duration) {
	s.stats.snapshots.Add(1)
	if o := s.observer(); o != nil {
		o.SnapshotTaken(time.Since(start), pause)
	}
}

// checkpointed counts a checkpoint taken: complete (shipped to every
// target) or not.
func (s *Store) checkpointed(complete bool) {
	if complete {
		s.stats.checkpoints.Add(1)
	} else {
		s.stats.checkpointBad.Add(1)
	}
}

// ScrubProgress is the running or last scrub of this store: the counts of
// its report so far (Damaged left out).
type ScrubProgress struct {
	Running bool
	Report  ScrubReport
}

// scrubProgress records the report of the running scrub.
func (s *Store) scrubProgress(r ScrubReport, running bool) {
	r.Damaged = nil
	s.stats.scrub.Store(&ScrubProgress{Running: running, Report: r})
}

// scrubEnded marks the recorded scrub as no longer running, however it
// ended.
func (s *Store) scrubEnded() {
	if p := s.stats.scrub.Load(); p != nil && p.Running {
		q := *p
		q.Running = false
		s.stats.scrub.Store(&q)
	}
}

// Stats are the store's figures at one moment.
type Stats struct {
	// DirtyBytes and SealedBytes are chunk data in memory not yet
	// committed: dirty (written, not flushed) and sealed (in a flush
	// batch in flight, counted by chunk length).
	DirtyBytes, SealedBytes int64
	// FlushBatches counts flush batches since Open, FlushFailed those
	// that failed, FlushBytes the chunk bytes the others wrote.
	FlushBatches, FlushFailed, FlushBytes uint64
	// Snapshots counts epoch pins (snapshots; one call may pin several
	// volumes at once).
	Snapshots uint64
	// CatalogReads counts the catalog records visited by listings
	// (ListMeta), walks of a lineage's pins (Pins) and the seeks that
	// find a pin's neighbours. It lets tests check that a namespace
	// operation reads what it touches, not every snapshot.
	CatalogReads uint64
	// Checkpoints counts metadata checkpoints shipped to every target;
	// CheckpointsIncomplete those that missed one.
	Checkpoints, CheckpointsIncomplete uint64
	// LastCheckpoint is the newest checkpoint's figures.
	LastCheckpoint CheckpointStats
	// ReclaimIntents counts snapshot destroys whose space is still being
	// reclaimed in the background; FreeQueue the freed records waiting
	// for a checkpoint before their space is punched; Parked the frees
	// waiting for a gone or degraded member.
	ReclaimIntents, FreeQueue, Parked int64
	// Scrub is the running or last scrub (nil: none since Open).
	Scrub *ScrubProgress
	// ReadRepairs counts bad copies found by reads and what became of
	// them; InternalErrors the bugs caught at run time
	// (NoteInternalError).
	ReadRepairs    ReadRepairs
	InternalErrors int64
	// Health is the pool's state and each member's as last checked (no
	// new check is made); Space its space (pool.Stats).
	Health pool.Health
	Space  pool.Stats
	// Pebble is the metadata database's own metrics.
	Pebble *pebble.Metrics
}

// Stats returns the store's figures now. It reads three key ranges to
// count the reclaim backlog and asks the pool for its space (a statfs per
// member): cheap enough for a scrape every few seconds.
func (s *Store) Stats() (Stats, error) {
	if s.closed.Load() {
		return Stats{}, ErrClosed
	}
	st := Stats{
		SealedBytes:           s.stats.sealedBytes.Load(),
		FlushBatches:          s.stats.flushBatches.Load(),
		FlushFailed:           s.stats.flushFailed.Load(),
		FlushBytes:            s.stats.flushBytes.Load(),
		Snapshots:             s.stats.snapshots.Load(),
		CatalogReads:          s.stats.catalogReads.Load(),
		Checkpoints:           s.stats.checkpoints.Load(),
		CheckpointsIncomplete: s.stats.checkpointBad.Load(),
		LastCheckpoint:        s.LastCheckpoint(),
		Scrub:                 s.stats.scrub.Load(),
		ReadRepairs:           s.readRepairCounts(),
		InternalErrors:        s.internalErrors.Load(),
		Health:                s.pool.Health(),
		Pebble:                s.db.Metrics(),
	}
	st.DirtyBytes = max(0, s.dirtyBytes.Load()-st.SealedBytes)
	var err error
	if st.Space, err = s.pool.Stats(); err != nil {
		return st, err
	}
	lo, hi := reclaimKey(0, 0)[:2], []byte{tagCatalog, catReclaim + 1}
	if st.ReclaimIntents, err = s.countKeys(lo, hi); err != nil {
		return st, err
	}
	lo, hi = tagBounds(tagFreeQ)
	if st.FreeQueue, err = s.countKeys(lo, hi); err != nil {
		return st, err
	}
	lo, hi = tagBounds(tagParked)
	st.Parked, err = s.countKeys(lo, hi)
	return st, err
}

// countKeys counts the keys in [lo, hi).
func (s *Store) countKeys(lo, hi []byte) (int64, error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0, err
	}
	var n int64
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	return n, it.Close()
}
