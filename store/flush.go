package store

import (
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/snapfs/snapfs/internal/killpoint"
	"github.com/snapfs/snapfs/pool"
	"github.com/zeebo/blake3"
)

var syncOpt = pebble.Sync

// flusher runs the background flush workers: inodes with full chunks are
// queued and flushed in batches.
type flusher struct {
	s *Store

	mu      sync.Mutex // guards q and closed
	cond    *sync.Cond
	q       []*inodeState
	closed  bool
	wg      sync.WaitGroup
	drained chan struct{} // closed and replaced whenever a flush completes (waitDirty)
	dmu     sync.Mutex    // guards drained
}

func newFlusher(s *Store) *flusher {
	f := &flusher{s: s, drained: make(chan struct{})}
	f.cond = sync.NewCond(&f.mu)
	for i := 0; i < s.opts.FlushWorkers; i++ {
		f.wg.Add(1)
		go f.run()
	}
	return f
}

// sealMode says which of an inode's dirty chunks a flush takes.
type sealMode uint8

const (
	// sealFull takes the chunks written to their end (the flusher's
	// usual work while a file is written sequentially).
	sealFull sealMode = iota
	// sealRelieve (the timer, dirty pressure) takes the full chunks, the
	// chunks dirty for longer than their flush interval (FlushInterval
	// for buffers, OverlayFlushInterval for overlays) and, under dirty
	// pressure (dirtyPressure), every buffer and the densest overlays
	// (densest). Sparse overlays stay buffered and gather more writes,
	// since flushing one rewrites its whole chunk.
	sealRelieve
	// sealAll takes every dirty chunk: fsync, close(2), a snapshot.
	sealAll
)

// queue asks a worker to flush st with the given mode; a flush already
// queued takes the most any queuer asked for.
func (f *flusher) queue(st *inodeState, mode sealMode) {
	st.mu.Lock()
	already := st.queued
	st.queued = true
	st.queueMode = max(st.queueMode, mode)
	st.mu.Unlock()
	if already {
		return
	}
	f.s.inodes.acquire(st.key) // the queue holds a reference
	f.mu.Lock()
	f.q = append(f.q, st)
	f.cond.Signal()
	f.mu.Unlock()
}

// run takes every queued inode at once and flushes them as one group: one
// pack sync per member for the whole group (group commit).
func (f *flusher) run() {
	defer f.wg.Done()
	for {
		f.mu.Lock()
		for len(f.q) == 0 && !f.closed {
			f.cond.Wait()
		}
		if len(f.q) == 0 {
			f.mu.Unlock()
			return
		}
		n := min(len(f.q), maxFlushGroup)
		group := append([]*inodeState(nil), f.q[:n]...)
		f.q = f.q[n:]
		f.mu.Unlock()
		f.s.flushGroup(group)
		for _, st := range group {
			f.s.inodes.release(st)
		}
	}
}

// maxFlushGroup bounds the inodes of one group commit.
const maxFlushGroup = 256

// wake tells writers waiting for dirty space that some was freed.
func (f *flusher) wake() {
	f.dmu.Lock()
	close(f.drained)
	f.drained = make(chan struct{})
	f.dmu.Unlock()
}

func (f *flusher) waitCh() <-chan struct{} {
	f.dmu.Lock()
	defer f.dmu.Unlock()
	return f.drained
}

func (f *flusher) close() {
	f.mu.Lock()
	f.closed = true
	f.cond.Broadcast()
	f.mu.Unlock()
	f.wg.Wait()
}

// waitDirty makes a writer wait while the pool-wide dirty limit is exceeded,
// flushing its own file first.
func (s *Store) waitDirty(st *inodeState) {
	if s.dirtyBytes.Load() <= s.opts.DirtyLimit {
		return
	}
	if err := s.flushInodeMode(st, sealRelieve); err != nil {
		st.mu.Lock()
		if st.err == nil {
			st.err = err
		}
		st.mu.Unlock()
	}
	for s.dirtyBytes.Load() > s.opts.DirtyLimit {
		select {
		case <-s.flusher.waitCh():
		case <-time.After(50 * time.Millisecond):
			s.flushOld(time.Now())
		}
	}
}

// flushAll flushes every dirty inode.
func (s *Store) flushAll() error {
	var first error
	for _, st := range s.inodes.all() {
		if err := s.flushInode(st, true); err != nil && first == nil {
			first = err
		}
		s.inodes.release(st)
	}
	return first
}

// flushOld queues for flushing the inodes dirty since before cutoff (the
// flush timer). An inode whose lock is held is skipped: the next tick
// comes back to it, so one busy inode (or one whose lock leaked) never
// stops the timer for every other file.
func (s *Store) flushOld(cutoff time.Time) {
	for _, st := range s.inodes.all() {
		if !st.mu.TryLock() {
			s.inodes.release(st)
			continue
		}
		old := !st.since.IsZero() && st.since.Before(cutoff)
		if old && cutoff.After(st.relieveCut) {
			st.relieveCut = cutoff
		}
		st.mu.Unlock()
		if old {
			s.flusher.queue(st, sealRelieve)
		}
		s.inodes.release(st)
	}
}

// sealedChunk is one chunk a flush writes.
type sealedChunk struct {
	st     *inodeState
	idx    uint64
	cgen   uint32 // the file's chunk generation at sealing
	buf    *chunkBuf
	length int // logical bytes (by file size at sealing)
	hole   bool
	hash   pool.Hash
	locs   []pool.Location
	claim  bool // holds a claim on hash
	append bool // appended by this flush
	// raised are copies this flush added to the stored, under-replicated
	// chunk it dedup'ed against (also in locs).
	raised []pool.Location
	err    error
}

// flushJob is one inode's part of a flush.
type flushJob struct {
	st     *inodeState
	chunks []*sealedChunk
	more   bool // chunks to flush were left for another job (maxSealBytes)
	// prev is closed when the inode's previous job has committed (nil:
	// none in flight); this job commits after it. done is closed when
	// this one has.
	prev, done chan struct{}
}

// flushInode writes st's dirty chunks (all of them, or only the full ones)
// and its record, and returns the latched error, if any, when all is set
// (fsync, close, release). A file with more buffered than one job seals
// (maxSealBytes) is flushed in several jobs; a job lets go of flushMu once
// its chunks are appended, so the next one hashes and appends while it
// syncs and commits (commits stay in order: flushJob.prev). With all set,
// it returns once every job of the file, its own and others', has
// committed.
func (s *Store) flushInode(st *inodeState, all bool) error {
	mode := sealFull
	if all {
		mode = sealAll
	}
	return s.flushInodeMode(st, mode)
}

// flushInodeMode is flushInode taking the chunks mode says; it waits for
// the inode's jobs in flight and returns the latched error only for
// sealAll.
func (s *Store) flushInodeMode(st *inodeState, mode sealMode) error {
	all := mode == sealAll
	var err error
	retried := false
	for {
		st.flushMu.Lock()
		j, ok, held := s.sealJob(st, mode)
		if ok {
			err = s.flushJobs([]*flushJob{j}, func() { s.unlockFlush(st) })
			if err != nil {
				break
			}
			if j.more {
				continue
			}
		} else {
			s.unlockFlush(st)
		}
		// Chunks held back behind a job in flight are sealed once it has
		// committed. One more round takes every byte written before this
		// call: what the round holds back again is in a job in flight
		// (waited for below) or was written after the call began.
		if !all || held == nil || retried {
			break
		}
		retried = true
		<-held
	}
	if all {
		st.mu.Lock()
		last := st.lastDone
		st.mu.Unlock()
		if last != nil {
			<-last
		}
	}
	if err != nil {
		return err
	}
	if all {
		st.mu.Lock()
		err = takeErr(st)
		st.mu.Unlock()
	}
	return err
}

// flushGroup flushes queued inodes together; an inode whose flush is
// already running elsewhere is queued again. Errors are latched on the
// inodes for their next write, fsync or close.
func (s *Store) flushGroup(sts []*inodeState) {
	var jobs []*flushJob
	var locked []*inodeState
	for _, st := range sts {
		st.mu.Lock()
		mode := st.queueMode
		st.queued, st.queueMode = false, sealFull
		st.mu.Unlock()
		if !st.flushMu.TryLock() && !s.deferFlush(st, mode) {
			continue
		}
		locked = append(locked, st)
		if j, ok, _ := s.sealJob(st, mode); ok {
			jobs = append(jobs, j)
			if j.more { // the rest goes in a later group
				st.mu.Lock()
				st.requeue = true
				st.requeueMode = max(st.requeueMode, mode)
				st.mu.Unlock()
			}
		}
	}
	// The inodes are let go once their chunks are appended: a later
	// group may seal and append their next chunks while this one syncs.
	unlock := func() {
		for _, st := range locked {
			s.unlockFlush(st)
		}
	}
	if len(jobs) > 0 {
		_ = s.flushJobs(jobs, unlock)
	} else {
		unlock()
	}
}

// deferFlush is called when a queued flush finds st's flush running
// elsewhere: rather than queueing it again at once (the workers would spin
// on it for as long as that flush runs), it asks the holder to queue it
// when done. It returns true if flushMu was free after all and is now
// held by the caller, which flushes st itself.
func (s *Store) deferFlush(st *inodeState, mode sealMode) bool {
	st.mu.Lock()
	st.requeue = true
	st.requeueMode = max(st.requeueMode, mode)
	st.mu.Unlock()
	// The holder checks requeue after it unlocks: if it let go before we
	// asked, the lock is free now (or a third flush holds it and will see
	// the request).
	if !st.flushMu.TryLock() {
		return false
	}
	st.mu.Lock()
	st.requeue, st.requeueMode = false, sealFull
	st.mu.Unlock()
	return true
}

// unlockFlush releases st.flushMu and queues the flush another worker
// asked for meanwhile (deferFlush).
func (s *Store) unlockFlush(st *inodeState) {
	st.flushMu.Unlock()
	st.mu.Lock()
	again, mode := st.requeue, st.requeueMode
	st.requeue, st.requeueMode = false, sealFull
	st.mu.Unlock()
	if again {
		s.flusher.queue(st, mode)
	}
}

// sealJob seals what st has to flush, at most maxSealBytes of chunks;
// the job's more says whether chunks to flush were left. Chunks still
// sealed by a job in flight are held back until it commits: held is then
// the channel closed when the inode's jobs in flight have committed (and
// st.afterCommit asks the last of them to queue a flush). Caller holds
// st.flushMu.
func (s *Store) sealJob(st *inodeState, mode sealMode) (j *flushJob, ok bool, held chan struct{}) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.loaded || (len(st.dirty) == 0 && !st.recDirty) {
		st.since = time.Time{}
		return nil, false, nil
	}
	chunks, more, anyHeld := s.sealLocked(st, mode)
	if anyHeld {
		held = st.lastDone
		st.afterCommit = true
		st.afterCommitMode = max(st.afterCommitMode, mode)
	}
	if len(st.dirty) == 0 {
		st.since = time.Time{}
	}
	if len(chunks) == 0 && !st.recDirty {
		return nil, false, held
	}
	j = &flushJob{st: st, chunks: chunks, more: more, prev: st.lastDone, done: make(chan struct{})}
	st.lastDone = j.done
	return j, true, held
}

// flushJobs appends every job's chunks (in parallel), calls appended (the
// callers let go of the inodes' flushMu there), syncs the packs once for
// all of them, and commits one batch per inode, each after the inode's
// previous job. A failed job latches its error on its inode; the first
// error is returned.
func (s *Store) flushJobs(jobs []*flushJob, appended func()) error {
	var all []*sealedChunk
	for _, j := range jobs {
		all = append(all, j.chunks...)
	}
	done := s.flushStarted(all)
	s.flushGate.RLock()
	werr := s.appendChunks(all)
	appended()
	if werr == nil {
		werr = s.syncChunks(all)
	}
	killpoint.Hit(killpoint.FlushSynced)
	if werr != nil {
		s.queueAppended(all)
	}
	var first error
	for _, j := range jobs {
		if j.prev != nil {
			<-j.prev
		}
		err := werr
		if err == nil {
			err = s.commitFlush(j.st, j.chunks)
		}
		if err != nil {
			err = fmt.Errorf("flush inode %d: %w", j.st.key.ino, err)
			j.st.mu.Lock()
			if j.st.loaded {
				// The record goes back to the committed one: so does the
				// volume's in-memory used count.
				s.addUsed(j.st.key.lin, int64(j.st.committedSize)-int64(j.st.rec.Size))
			}
			j.st.loaded, j.st.recDirty = false, false // re-read the committed record
			if j.st.err == nil {
				j.st.err = err
			}
			j.st.mu.Unlock()
			if first == nil {
				first = err
			}
		}
	}
	s.flushGate.RUnlock()
	for _, j := range jobs {
		s.finishFlush(j.st, j.chunks)
		close(j.done)
		// The last job in flight queues the chunks held back behind it.
		st := j.st
		st.mu.Lock()
		again, againMode := st.afterCommit && st.lastDone == j.done, st.afterCommitMode
		if again {
			st.afterCommit, st.afterCommitMode = false, sealFull
		}
		st.mu.Unlock()
		if again {
			s.flusher.queue(st, againMode)
		}
	}
	done(first != nil)
	return first
}

// maxSealBytes bounds the chunk bytes one flush job seals: a flush holds
// its chunks complete in memory until they commit, and overlays (small
// writes into stored chunks) grow to whole chunks when flushed.
const maxSealBytes = 32 << 20

// sealLocked moves the chunks to flush from dirty to sealed, lowest index
// first and at most maxSealBytes of them, and says whether any were left
// (more) and whether chunks were held back because a job in flight still
// has them sealed (held): two jobs in flight never share a chunk, so a
// job's overlays lie over committed bytes only. mode says which chunks
// are taken (sealMode).
func (s *Store) sealLocked(st *inodeState, mode sealMode) ([]*sealedChunk, bool, bool) {
	cs := int64(1) << st.rec.ChunkShift
	// A buffer is old when made before bufCut: FlushInterval ago, or the
	// later cutoff flushOld was asked for; an overlay gets the difference
	// of the two intervals more.
	bufCut := time.Now().Add(-s.opts.FlushInterval)
	if mode == sealRelieve {
		if st.relieveCut.After(bufCut) {
			bufCut = st.relieveCut
		}
		st.relieveCut = time.Time{}
	}
	ovCut := bufCut.Add(s.opts.FlushInterval - s.opts.OverlayFlushInterval)
	pressure := mode == sealRelieve && s.dirtyPressure()
	var idxs, dense []uint64
	held := false
	for idx, b := range st.dirty {
		switch {
		case st.sealed[idx] != nil:
			held = true // a job in flight has this chunk: the next one takes it
		case mode == sealAll || b.full:
			idxs = append(idxs, idx)
		case mode != sealRelieve:
		case b.ov == nil && (pressure || b.since.Before(bufCut)), b.ov != nil && b.since.Before(ovCut):
			idxs = append(idxs, idx)
		case b.ov != nil && pressure:
			dense = append(dense, idx)
		}
	}
	idxs = append(idxs, s.densest(st, dense, cs)...)
	sort.Slice(idxs, func(i, j int) bool { return idxs[i] < idxs[j] })
	more := false
	if n := int(max(1, maxSealBytes/cs)); len(idxs) > n {
		idxs, more = idxs[:n], true
	}
	out := make([]*sealedChunk, 0, len(idxs))
	for _, idx := range idxs {
		b := st.dirty[idx]
		delete(st.dirty, idx)
		if st.sealed == nil {
			st.sealed = map[uint64]*chunkBuf{}
		}
		st.sealed[idx] = b
		n := min(cs, int64(st.rec.Size)-int64(idx)*cs)
		out = append(out, &sealedChunk{st: st, idx: idx, cgen: st.rec.Cgen, buf: b, length: int(max(n, 0))})
	}
	// What stays dirty sets the inode's age again (a relieving flush
	// leaves young and sparse chunks behind).
	st.fullBytes, st.since = 0, time.Time{}
	for _, b := range st.dirty {
		if b.full {
			st.fullBytes += cs
		}
		if st.since.IsZero() || b.since.Before(st.since) {
			st.since = b.since
		}
	}
	return out, more, held
}

// densest returns the overlays of dense that a flush under dirty pressure
// takes: the quarter holding the most pages, and no more than
// DirtyLimit/8 of whole chunks (a sealed overlay grows to its whole chunk
// while it is flushed). Flushing an overlay reads and rewrites its whole
// chunk whatever its pages, so the densest relieve the most dirty memory
// per byte written; sparse ones stay and gather more writes (4 KiB random
// writes over a large file otherwise flush chunks of one or two pages).
// Caller holds st.mu.
func (s *Store) densest(st *inodeState, dense []uint64, cs int64) []uint64 {
	if len(dense) == 0 {
		return nil
	}
	sort.Slice(dense, func(i, j int) bool {
		a, b := st.dirty[dense[i]].ov.mem, st.dirty[dense[j]].ov.mem
		return a > b || a == b && dense[i] < dense[j]
	})
	n := max(1, min(len(dense)/relieveShare, int(s.opts.DirtyLimit/8/cs)))
	return dense[:n]
}

// dirtyPressure reports whether the dirty bytes are past three quarters
// of the limit, where writes queue relieving flushes and those take the
// densest overlays. Half the limit, as the whole-file flushes had it, was
// measured too: relieving from three quarters gave 0.90x the loopback's
// sustained random writes against 0.70x, and 0.80x against 0.59x on a
// 64 MiB burst (one bench run, 5 repetitions, docs/benchmarks.md), since
// overlays flushed later carry more pages, and a burst that fits under
// the limit is rewritten once, at its fsync.
func (s *Store) dirtyPressure() bool {
	return s.dirtyBytes.Load() > s.opts.DirtyLimit/4*3
}

// relieveShare: a flush under dirty pressure takes 1/relieveShare of a
// file's overlays, the densest.
const relieveShare = 4

// appendChunks hashes the chunks and appends the new ones, in parallel.
func (s *Store) appendChunks(chunks []*sealedChunk) error {
	var wg sync.WaitGroup
	sem := make(chan struct{}, 4)
	for _, c := range chunks {
		wg.Add(1)
		sem <- struct{}{}
		go func(c *sealedChunk) {
			defer wg.Done()
			defer func() { <-sem }()
			c.err = s.writeChunk(c)
		}(c)
	}
	wg.Wait()
	for _, c := range chunks {
		if c.err != nil {
			return c.err
		}
	}
	return nil
}

// syncChunks waits until every record the chunks reference is durable.
func (s *Store) syncChunks(chunks []*sealedChunk) error {
	var locs []pool.Location
	for _, c := range chunks {
		locs = append(locs, c.locs...)
	}
	if len(locs) == 0 {
		return nil
	}
	return dropUnsynced(chunks, s.pool.SyncEach(locs))
}

// addUsed changes the in-memory used bytes of lineage lin by d.
func (s *Store) addUsed(lin uint32, d int64) {
	if d == 0 {
		return
	}
	s.cat.Lock()
	l := s.cat.lineages[lin]
	s.cat.Unlock()
	if l != nil {
		l.used.Add(d)
	}
}

// dropUnsynced removes from each chunk the copies on members whose sync
// failed: a chunk keeping at least one durable copy commits with it (a
// degraded write: scrub raises it later); a chunk left with none fails
// the flush.
func dropUnsynced(chunks []*sealedChunk, failed map[uint16]error) error {
	if len(failed) == 0 {
		return nil
	}
	for _, c := range chunks {
		kept := make([]pool.Location, 0, len(c.locs))
		var why error
		for _, l := range c.locs {
			if err := failed[l.Member]; err != nil {
				why = err
				continue
			}
			kept = append(kept, l)
		}
		if len(kept) == 0 && why != nil {
			return fmt.Errorf("sync packs: %w", why)
		}
		c.locs = kept
		c.raised, _ = keepSynced(c.raised, failed)
	}
	return nil
}

// keepSynced returns the locations of locs not on a failed member.
func keepSynced(locs []pool.Location, failed map[uint16]error) ([]pool.Location, bool) {
	var out []pool.Location
	for _, l := range locs {
		if failed[l.Member] == nil {
			out = append(out, l)
		}
	}
	return out, len(out) == len(locs)
}

// addCopies writes copies of a stored chunk's bytes until it has as many
// as the pool asks, and at least one on a present member (a dedup hit on
// a chunk whose every copy is on gone members must still be readable),
// each on a member whose failure domain holds none of its other copies,
// and returns the new locations (not durable until Sync). It stops early,
// without error, when no such member can take one: the chunk keeps the
// copies it has and scrub tries again.
func (s *Store) addCopies(h pool.Hash, data []byte, have []pool.Location) []pool.Location {
	var added []pool.Location
	avoid := append([]pool.Location(nil), have...)
	live := s.liveCopies(have)
	for s.pool.Counted(have)+len(added) < s.pool.Copies() || live+len(added) == 0 { // replicas never count
		l, err := s.pool.AppendCopy(h, data, avoid)
		if err != nil {
			break
		}
		added = append(added, l)
		avoid = append(avoid, l)
	}
	return added
}

func (s *Store) writeChunk(c *sealedChunk) error {
	if c.buf.ov != nil {
		if err := s.fillSealed(c); err != nil {
			return err
		}
	}
	// Trailing zeros are not stored: reads past a chunk's length return zeros.
	c.length = trimZeros(c.buf.data[:min(c.length, len(c.buf.data))])
	data := c.buf.data[:c.length]
	if c.length == 0 {
		c.hole = true
		return nil
	}
	c.hash = blake3.Sum256(data)
	locs, role, err := s.claim(c.hash)
	if err != nil {
		return err
	}
	c.claim = true
	switch role {
	case claimAppend:
		locs, err = s.pool.Append(c.hash, data)
		s.settle(c.hash, locs)
		if err != nil {
			return fmt.Errorf("append chunk: %w", err)
		}
		c.append = true
	case claimRaise:
		c.raised = s.addCopies(c.hash, data, locs)
		locs = append(append([]pool.Location(nil), locs...), c.raised...)
		s.settle(c.hash, locs)
	}
	c.locs = locs
	// The sealed buffer is never written again: the cache may keep it.
	s.cache.putOwned(c.hash, data)
	return nil
}

// fillSealed makes a sealed overlay complete with the committed bytes under
// it. No other flush commits the chunk meanwhile: two jobs in flight never
// share a chunk (sealLocked); a truncate or hole punch that replaces the
// chunk drops the sealed buffer, and the commit then skips it. Sealed overlays are
// never written, so reading one needs no lock; the swap to complete takes
// the inode's mu, under which readers copy buffers.
func (s *Store) fillSealed(c *sealedChunk) error {
	st := c.st
	chain, err := s.chain(View{Lineage: st.key.lin, Epoch: LiveEpoch})
	if err != nil {
		return err
	}
	base, err := s.readChunk(chain, st.key.ino, c.cgen, c.idx)
	if err != nil {
		return fmt.Errorf("read the stored bytes under chunk %d's writes: %w", c.idx, err)
	}
	st.withLock(func() { s.fillOverlay(c.buf, base) })
	return nil
}

// trimZeros returns the length of b without its trailing zero bytes.
func trimZeros(b []byte) int {
	n := len(b)
	for n >= 8 && b[n-1]|b[n-2]|b[n-3]|b[n-4]|b[n-5]|b[n-6]|b[n-7]|b[n-8] == 0 {
		n -= 8
	}
	for n > 0 && b[n-1] == 0 {
		n--
	}
	return n
}

// commitFlush commits one batch: a version per chunk still sealed, the
// reference changes, and the inode's record.
func (s *Store) commitFlush(st *inodeState, chunks []*sealedChunk) error {
	v := View{ID: 0, Lineage: st.key.lin, Epoch: LiveEpoch}
	t, err := s.begin(v)
	if err != nil {
		return err
	}
	defer t.abort()
	t.newRc = map[pool.Hash]chunkRefRec{}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.deleted || st.loaded && st.rec.Nlink == 0 && st.opens == 0 {
		// Deleted meanwhile: what this flush appended is referenced by
		// nothing; hand it to reclaim in a batch of its own.
		return s.queueUnused(t, chunks)
	}
	if !st.loaded { // a failed change dropped the cached record: read it again
		if _, err := t.inode(st); err != nil {
			return err
		}
	}
	var unused []*sealedChunk
	for _, c := range chunks {
		if st.sealed[c.idx] != c.buf {
			unused = append(unused, c) // truncated away (or rolled back) meanwhile
			continue
		}
		if err := t.putChunk(st, c); err != nil {
			return err
		}
	}
	s.freeUnusedIn(t, unused)
	if len(unused) == len(chunks) && !st.recDirty {
		// Nothing of this flush is current and the record has nothing new:
		// a rollback or a truncate committed it meanwhile.
		return t.commit()
	}
	rec := st.rec
	p, val := inodePrefix(t.l.rec.ID, st.key.ino), rec.encode()
	o := st.own
	st.own = ownVersion{} // unknown until this commit lands
	if o.valid && o.epoch > t.pin {
		// The record's own version is known (written by the create, or
		// the last flush, since the newest pin): overwrite it without a
		// seek, as putInode does.
		if err := t.putOwnKnown(p, o.epoch, o.inline, val); err != nil {
			return err
		}
	} else if err := t.put(p, val); err != nil {
		return err
	}
	t.used = int64(rec.Size) - int64(st.committedSize)
	if err := t.commit(); err != nil {
		return err
	}
	st.own = ownVersion{epoch: t.w[string(p)].epoch, inline: versionBytes(p, val), valid: true}
	st.committedSize = rec.Size
	st.recDirty = false
	return nil
}

// freeUnusedIn queues, in t's batch, the records this flush appended for
// chunks it does not commit (their file was truncated or deleted while the
// flush ran), so that reclaim frees them instead of leaking them. A
// concurrent flush that dedup'ed against one of them recreates its chunkref
// and reclaim then keeps the bytes.
func (s *Store) freeUnusedIn(t *txn, unused []*sealedChunk) {
	for _, c := range unused {
		switch {
		case c.append && !c.hole:
			n := s.allocFreeSeq()
			t.freeSeqs = append(t.freeSeqs, n)
			_ = t.b.Set(freeQKey(n), freeQRec{Hash: c.hash, Locs: c.locs}.encode(), nil)
		case len(c.raised) > 0:
			n := s.allocFreeSeq()
			t.freeSeqs = append(t.freeSeqs, n)
			_ = t.b.Set(freeQKey(n), freeQRec{Hash: c.hash, Locs: c.raised}.encode(), nil)
		}
	}
}

// queueAppended hands reclaim the records a failed flush appended: no
// batch will reference them, and a member whose sync succeeded moves its
// accounted position past them, so recovery would not find them either
// (a failed sync on another member fails the whole flush). Reclaim keeps
// any that a concurrent dedup hit committed meanwhile. Caller holds
// flushGate (shared), so a durable commit covers the queue before the
// accounted positions move.
func (s *Store) queueAppended(chunks []*sealedChunk) {
	b := s.db.NewBatch()
	defer b.Close()
	n := 0
	for _, c := range chunks {
		if c.append && !c.hole && len(c.locs) > 0 {
			_ = b.Set(freeQKey(s.seq.Add(1)), freeQRec{Hash: c.hash, Locs: c.locs}.encode(), nil)
			n++
		}
	}
	if n > 0 {
		if err := b.Commit(pebble.NoSync); err != nil {
			s.logf("queue %d records of a failed flush for reclaim: %v", n, err)
		}
	}
}

// queueUnused commits a batch queueing every appended record of chunks.
func (s *Store) queueUnused(t *txn, chunks []*sealedChunk) error {
	s.freeUnusedIn(t, chunks)
	return t.commit()
}

// putChunk writes the version of one sealed chunk and keeps Blocks current.
func (t *txn) putChunk(st *inodeState, c *sealedChunk) error {
	p := chunkPrefix(t.l.rec.ID, st.key.ino, st.rec.Cgen, c.idx)
	oldLen, err := t.chunkLen(p)
	if err != nil {
		return err
	}
	rec := chunkRec{Kind: chunkHole}
	if !c.hole {
		rec = chunkRec{Kind: chunkData, Hash: c.hash, Length: uint32(c.length), Hint: c.locs}
		t.ref(c.hash, 1)
		t.newRc[c.hash] = chunkRefRec{Length: uint32(c.length), Locs: c.locs}
		if len(c.raised) > 0 {
			if t.raised == nil {
				t.raised = map[pool.Hash][]pool.Location{}
			}
			t.raised[c.hash] = append(t.raised[c.hash], c.raised...)
		}
	}
	if err := t.put(p, rec.encode()); err != nil {
		return err
	}
	st.rec.Blocks = uint64(max(int64(st.rec.Blocks)+(int64(rec.Length)+511)/512-(oldLen+511)/512, 0))
	return nil
}

// chunkLen returns the logical length of the chunk version the live view
// resolves at prefix p (0 for none or a hole).
func (t *txn) chunkLen(p []byte) (int64, error) {
	own, _, err := t.own(p, false)
	if err != nil || !own.found {
		return 0, err
	}
	c, err := decodeChunk(own.value)
	if err != nil {
		return 0, err
	}
	return int64(c.Length), nil
}

// finishFlush drops the sealed buffers the flush owned, their claims and
// reservations.
func (s *Store) finishFlush(st *inodeState, chunks []*sealedChunk) {
	var mem int64
	st.mu.Lock()
	for _, c := range chunks {
		if st.sealed[c.idx] == c.buf {
			delete(st.sealed, c.idx)
		}
		mem += c.buf.mem()
	}
	st.mu.Unlock()
	for _, c := range chunks {
		if c.claim {
			s.unclaim(c.hash)
		}
		s.pool.Unreserve(c.buf.reserved)
	}
	s.dirtyBytes.Add(-mem)
	if len(chunks) > 0 {
		s.flusher.wake()
	}
}
