package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/snapfs/snapfs/internal/killpoint"
	"github.com/snapfs/snapfs/pool"
	"github.com/zeebo/blake3"
)

// ScrubOptions configure Scrub.
type ScrubOptions struct {
	// NoRepair only verifies.
	NoRepair bool
	// Restart ignores the saved progress of an interrupted scrub and
	// starts over (scrubstate.go).
	Restart bool
	// Context, when done, stops the scrub between two chunks: its
	// progress is saved and the next Scrub resumes from there. nil never
	// stops.
	Context context.Context
	// Rate caps the bytes of copies read per second (0: no cap).
	Rate int64
	// Yield slows the scrub down while the volumes do I/O (the daemon
	// sets it; see scrubPacer): to YieldRate, or scrubYieldRate if 0.
	Yield     bool
	YieldRate int64
	// Progress, if set, is called after each chunk with the running totals.
	Progress func(ScrubReport)
}

// ScrubReport counts what Scrub verified and fixed. A resumed scrub's
// counts include those of the scrub it continued.
type ScrubReport struct {
	Chunks       int64    `json:"chunks"`       // chunkref records verified
	Total        int64    `json:"total"`        // chunkref records when the scrub started
	Copies       int64    `json:"copies"`       // copies read
	Bytes        int64    `json:"bytes"`        // payload bytes read
	Bad          int64    `json:"bad"`          // copies that failed (CRC, hash, read error)
	Repaired     int64    `json:"repaired"`     // bad copies rewritten from a good one
	Unrepairable int64    `json:"unrepairable"` // chunks with no good copy
	Damaged      []string `json:"damaged"`      // one line per bad copy not repaired
	// Raised counts copies added to chunks that had fewer than the pool's
	// copies (copies raised with pool set copies, or degraded writes).
	Raised int64 `json:"raised"`
	// UnderReplicated counts chunks still below the pool's copies after
	// the scrub (too few failure domains writable, or NoRepair).
	UnderReplicated int64 `json:"under_replicated"`
	// Unavailable counts copies on gone members: not read, not replaced
	// (bring the member back, or remove-member it).
	Unavailable int64         `json:"unavailable"`
	Elapsed     time.Duration `json:"elapsed_ns"`
	// Yielded is the time the scrub slept to leave the disks to the
	// volumes (Yield) or to keep to Rate.
	Yielded time.Duration `json:"yielded_ns"`
	// Resumed is set when this scrub continued an interrupted one.
	Resumed *ScrubResume `json:"resumed,omitempty"`
}

// ErrScrubStopped is returned (wrapped) by a scrub stopped through its
// Context; the next Scrub resumes where it stopped.
var ErrScrubStopped = errors.New("scrub stopped")

// Scrub reads every copy of every referenced record, checks its CRC (in
// pool.Read) and its BLAKE3 content hash, and, unless NoRepair, replaces
// each bad copy of a chunk that has a good one: a fresh copy is appended
// on a healthy member in a failure domain none of the good copies uses,
// made durable, swapped into the chunkref under the hash's lock in one
// synced batch, and only then is the bad location freed. A chunk with
// fewer copies than the pool asks gets new ones (Raised), placed away from
// its other copies' failure domains, durable before a commit names them;
// these are batched (raiseBatch). A chunk with no
// good copy is counted unrepairable and recorded as damaged (pool status
// -v names its files); one found good again is no longer. Copies on gone
// members are left alone (Unavailable): the member may come back, and
// remove-member moves them. It checks the members first (retrying failed
// ones), and runs on an open store.
//
// It goes through the chunks in disk order (scrubOrder), every member at
// once, with the reads of the next ones queued ahead (scrubAhead): in hash
// order one copy was read at a time from a random place, and a scrub ran
// at a fraction of the disks' rate. Its cursor in that order is saved as
// it goes, and a scrub that was stopped, failed or killed is resumed by
// the next one unless o.Restart (scrubstate.go); a scrub in the other
// mode (NoRepair or not) starts over. It is paced by o.Rate and o.Yield
// (scrubPacer).
func (s *Store) Scrub(o ScrubOptions) (ScrubReport, error) {
	if err := s.lockScrub(); err != nil {
		return ScrubReport{}, err
	}
	defer s.scrubMu.Unlock()
	defer s.scrubEnded()
	start := time.Now()
	ctx := o.Context
	if ctx == nil {
		ctx = context.Background()
	}
	if err := s.CheckMembers(true); err != nil {
		fmt.Printf("snapfs: scrub: member check: %v\n", err)
	}
	st, err := s.loadScrubState()
	if err != nil {
		return ScrubReport{}, err
	}
	var r ScrubReport
	if st != nil && !o.Restart && st.NoRepair == o.NoRepair {
		r = st.Report
		r.Resumed = st.resume(s.pool)
	} else {
		st = newScrubState(o.NoRepair, s.readCounter(underRepKey()))
	}
	prior, priorYield := r.Elapsed, r.Yielded
	snap := s.db.NewSnapshot()
	crefs, err := chunkRefsIn(snap)
	snap.Close()
	if err != nil {
		return r, err
	}
	if r.Resumed != nil {
		for h, rec := range crefs {
			if st.done(h, rec) {
				delete(crefs, h)
			}
		}
	}
	// In disk order, the members read at once, with reads queued ahead.
	hs := scrubOrder(crefs)
	ahead := newScrubAhead(s.pool, hs, crefs)
	r.Total = r.Chunks + int64(len(hs))
	pace := newScrubPacer(s.pool, o)
	var bufs scrubBufs
	var rb raiseBatch
	lastSave := time.Now()
	// save commits the raised copies (the cursor never passes a chunk
	// whose new copies are not committed), then the cursor and counts.
	save := func() error {
		s.raiseBatch(&rb, &r)
		r.Elapsed, r.Yielded = prior+time.Since(start), priorYield+pace.slept
		lastSave = time.Now()
		err := s.saveScrubState(st, r)
		killpoint.Hit(killpoint.ScrubSaved)
		return err
	}
	for i, h := range hs {
		if ctx.Err() != nil {
			if err := save(); err != nil {
				return r, err
			}
			return r, fmt.Errorf("%w after %d of %d chunks (%w); the next pool scrub resumes there", ErrScrubStopped, r.Chunks, r.Total, context.Cause(ctx))
		}
		ahead.window = pace.window()
		ahead.reached(i)
		if err := s.scrubChunk(h, o, &r, &bufs, &rb); err != nil {
			if serr := save(); serr != nil {
				err = errors.Join(err, serr)
			}
			return r, err
		}
		st.finished(h, crefs[h])
		r.Elapsed, r.Yielded = prior+time.Since(start), priorYield+pace.slept
		s.scrubProgress(r, true)
		if o.Progress != nil {
			o.Progress(r)
		}
		pace.wait(ctx, ahead.sum[i+1]-ahead.sum[i])
		if time.Since(lastSave) >= scrubSaveInterval {
			if err := save(); err != nil {
				return r, err
			}
		}
	}
	s.raiseBatch(&rb, &r)
	if !o.NoRepair && r.UnderReplicated == 0 && st.UnderAtStart > 0 {
		// Every chunk written degraded before the scrub began is raised.
		if err := s.db.Merge(underRepKey(), counterDelta(-st.UnderAtStart), pebble.Sync); err != nil {
			return r, fmt.Errorf("scrub: reset under-replicated count: %w", err)
		}
	}
	if err := s.dropScrubState(); err != nil {
		return r, err
	}
	r.Elapsed, r.Yielded = prior+time.Since(start), priorYield+pace.slept
	s.scrubProgress(r, false)
	return r, nil
}

// scrubBusyWait is how long a Scrub waits for another one to end (one
// that was just stopped ends within milliseconds).
const scrubBusyWait = 2 * time.Second

// lockScrub takes scrubMu, waiting up to scrubBusyWait; a scrub running
// longer is refused with ErrBusy.
func (s *Store) lockScrub() error {
	deadline := time.Now().Add(scrubBusyWait)
	for !s.scrubMu.TryLock() {
		if time.Now().After(deadline) {
			return fmt.Errorf("scrub: another scrub of this pool is running: %w", ErrBusy)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// scrubBufs are the buffers a scrub reuses from chunk to chunk: one for
// every read (Read returns the payload inside it, past the header) and one
// for the good copy kept for repairs.
type scrubBufs struct{ read, good []byte }

// scrubChunk verifies, repairs and raises one chunk.
func (s *Store) scrubChunk(h pool.Hash, o ScrubOptions, r *ScrubReport, bufs *scrubBufs, rb *raiseBatch) error {
	// Re-read the record: it may have changed or gone since the snapshot.
	rec, found, err := getChunkRefFrom(s.db, h)
	if err != nil || !found {
		return err
	}
	r.Chunks++
	var good []byte
	var goodLocs, bad []pool.Location
	var why []error
	for _, l := range rec.Locs {
		if s.pool.Gone(l.Member) {
			r.Unavailable++
			continue
		}
		r.Copies++
		if n := pool.ReadBufSize(l.Length); cap(bufs.read) < n {
			bufs.read = make([]byte, 0, n)
		}
		data, err := s.pool.Read(l, h, bufs.read)
		if err == nil && blake3.Sum256(data) != h {
			err = fmt.Errorf("pool: read %v: content hash mismatch: %w", l, pool.ErrChecksum)
		}
		if err != nil {
			bad = append(bad, l)
			why = append(why, err)
			continue
		}
		r.Bytes += int64(len(data))
		goodLocs = append(goodLocs, l)
		if good == nil {
			good = append(bufs.good[:0], data...)
			bufs.good = good[:0]
		}
	}
	r.Bad += int64(len(bad))
	switch {
	case len(goodLocs) == 0 && len(bad) > 0:
		r.Unrepairable++
		for i, l := range bad {
			r.Damaged = append(r.Damaged, fmt.Sprintf("chunk %x copy %v: %v (no good copy)", h[:8], l, why[i]))
		}
		if err := s.setDamaged(h, fmt.Sprintf("no good copy: %v", errors.Join(why...))); err != nil {
			return err
		}
		return nil
	case len(goodLocs) == 0:
		return nil // every copy on gone members
	case o.NoRepair:
		for i, l := range bad {
			r.Damaged = append(r.Damaged, fmt.Sprintf("chunk %x copy %v: %v", h[:8], l, why[i]))
		}
	default:
		for i, l := range bad {
			// A copy its disk could not read is rewritten on another.
			if err := s.scrubRepair(h, good, l, pool.IsReadFault(why[i])); err != nil {
				r.Damaged = append(r.Damaged, fmt.Sprintf("chunk %x copy %v: %v; repair failed: %v", h[:8], l, why[i], err))
				continue
			}
			r.Repaired++
		}
	}
	if err := s.clearDamaged(h); err != nil {
		return err
	}
	if s.pool.Counted(rec.Locs) >= s.pool.Copies() {
		return nil
	}
	if o.NoRepair {
		r.UnderReplicated++
		return nil
	}
	rb.add(h, append([]byte(nil), good...)) // the batch outlives bufs.good
	if rb.full() {
		s.raiseBatch(rb, r)
	}
	return nil
}

// raiseBatch collects chunks to raise to the pool's copies, so that one
// pack sync per member and one metadata commit serve many of them.
type raiseBatch struct {
	hs    []pool.Hash
	data  [][]byte
	bytes int64
}

func (rb *raiseBatch) add(h pool.Hash, data []byte) {
	rb.hs = append(rb.hs, h)
	rb.data = append(rb.data, data)
	rb.bytes += int64(len(data))
}

// full uses the bounds of an evacuation batch.
func (rb *raiseBatch) full() bool {
	return len(rb.hs) >= evacBatchRecords || rb.bytes >= evacBatchBytes
}

// raiseBatch adds copies to the chunks of rb until each has the pool's
// copies (away from its copies' failure domains), makes them durable,
// and adopts them into the chunkrefs under their hash locks in one synced
// commit; copies a chunk no longer needs (raised meanwhile, or freed) are
// freed before the flush gate opens. It counts the copies added and the
// chunks still short of copies, and empties rb.
func (s *Store) raiseBatch(rb *raiseBatch, r *ScrubReport) {
	if len(rb.hs) == 0 {
		return
	}
	defer func() { *rb = raiseBatch{} }()
	s.flushGate.RLock()
	defer s.flushGate.RUnlock()
	added := make([][]pool.Location, len(rb.hs))
	var fresh []pool.Location
	for i, h := range rb.hs {
		rec, found, err := getChunkRefFrom(s.db, h)
		if err != nil || !found || s.pool.Counted(rec.Locs) >= s.pool.Copies() {
			continue
		}
		added[i] = s.addCopies(h, rb.data[i], rec.Locs)
		fresh = append(fresh, added[i]...)
	}
	failed := s.pool.SyncEach(fresh)
	var unused []pool.Location
	hs := map[pool.Hash]int64{}
	for i := range added {
		var ok []pool.Location
		for _, l := range added[i] {
			if failed[l.Member] != nil {
				unused = append(unused, l)
			} else {
				ok = append(ok, l)
			}
		}
		added[i] = ok
		hs[rb.hs[i]] = 1
	}
	unlock := s.lockHashes(hs)
	b := s.db.NewBatch()
	var raised int64
	var short []pool.Hash
	for i, h := range rb.hs {
		rec, found, err := getChunkRefFrom(s.db, h)
		if err != nil || !found {
			unused = append(unused, added[i]...)
			continue
		}
		var drop []pool.Location
		if len(added[i]) > 0 {
			rec.Locs, drop = s.adoptCopies(rec.Locs, added[i])
			unused = append(unused, drop...)
			raised += int64(len(added[i]) - len(drop))
			_ = b.Set(chunkRefKey(h), rec.encode(), nil)
		}
		if s.pool.Counted(rec.Locs) < s.pool.Copies() {
			short = append(short, h)
		}
	}
	err := b.Commit(pebble.Sync)
	b.Close()
	unlock()
	if err != nil {
		fmt.Printf("snapfs: scrub: commit raised copies: %v\n", err)
		s.pool.Free(fresh)
		r.UnderReplicated += int64(len(rb.hs))
		return
	}
	// Never named by any metadata: freed at once.
	s.pool.Free(unused)
	r.Raised += raised
	r.UnderReplicated += int64(len(short))
}

// scrubRepair replaces bad copy l of h by a new copy of data placed away
// from the failure domains of the chunk's other copies, and of l's too
// when its disk failed to read it (elsewhere).
func (s *Store) scrubRepair(h pool.Hash, data []byte, l pool.Location, elsewhere bool) error {
	freed, err := s.scrubSwap(h, data, l, elsewhere)
	if err != nil || !freed {
		return err
	}
	if elsewhere || !s.pool.Freeable(l.Member) {
		// A read-only or failed member cannot punch now, nor a disk
		// that cannot read the record's header: park the free (done
		// when the member comes back, dropped if it is removed).
		b := s.db.NewBatch()
		defer b.Close()
		if s.pool.Removed(l.Member) {
			return nil
		}
		s.park(b, h, l)
		return b.Commit(pebble.Sync)
	}
	// Readers that resolved the old location fail over to another copy;
	// wait for them before punching.
	s.grace.wait()
	if err := s.pool.Free([]pool.Location{l}); err != nil {
		return fmt.Errorf("scrub: free bad copy: %w", err)
	}
	return nil
}

// scrubSwap appends the new copy and swaps it into the chunkref. Like a
// flush it holds flushGate shared from the append to the commit, so no
// accounted offset passes an uncommitted record.
func (s *Store) scrubSwap(h pool.Hash, data []byte, l pool.Location, elsewhere bool) (bool, error) {
	s.flushGate.RLock()
	defer s.flushGate.RUnlock()
	unlock := s.lockHash(h)
	defer unlock()
	rec, found, err := getChunkRefFrom(s.db, h)
	if err != nil {
		return false, err
	}
	idx := -1
	for i, x := range rec.Locs {
		if x == l {
			idx = i
		}
	}
	if !found || idx < 0 {
		return false, nil // freed or repaired meanwhile
	}
	var avoid []pool.Location
	for i, x := range rec.Locs {
		if i != idx || elsewhere {
			avoid = append(avoid, x)
		}
	}
	var nl pool.Location
	if s.pool.IsReplica(l.Member) {
		// A replica's copy is rewritten on the replica: a counted copy
		// elsewhere would leave the chunk without one there while the
		// replica's complete mark says otherwise (asyncrep.go).
		nl, err = s.pool.AppendReplica(l.Member, h, data)
	} else {
		nl, err = s.pool.AppendCopy(h, data, avoid)
	}
	if err != nil {
		return false, err
	}
	if err := s.pool.Sync([]pool.Location{nl}); err != nil {
		s.pool.Free([]pool.Location{nl})
		return false, err
	}
	rec.Locs = append([]pool.Location(nil), rec.Locs...)
	rec.Locs[idx] = nl
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.Set(chunkRefKey(h), rec.encode(), nil); err != nil {
		return false, err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		s.pool.Free([]pool.Location{nl})
		return false, fmt.Errorf("scrub: commit: %w", err)
	}
	return true, nil
}
