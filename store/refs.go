package store

import (
	"bytes"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/cockroachdb/pebble/v2"
	"github.com/snapfs/snapfs/pool"
)

// refTable holds the per-hash locks that serialize read-modify-writes of
// chunkref records, and the in-flight table that stops two writers from
// appending the same new hash and the reclaimer from freeing a hash a flush
// is about to reference (DESIGN-NOTES 4).
type refTable struct {
	stripes [256]sync.Mutex // stripe(h) guards chunkref(h) between read and commit

	mu       sync.Mutex // guards inflight
	inflight map[pool.Hash]*inflight
}

// inflight is a hash some flush is about to reference. Its first user
// appends the bytes (or finds them stored); later users wait only for that
// append, never for another flush's commit, so flushes cannot wait on each
// other in a cycle. Every user's commit creates or increments the chunkref.
type inflight struct {
	appending bool          // the first user is appending the bytes; others wait on done
	done      chan struct{} // closed when the append finished or failed
	users     int
	locs      []pool.Location
}

func (r *refTable) init() { r.inflight = map[pool.Hash]*inflight{} }

func (r *refTable) stripe(h pool.Hash) int { return int(h[0]) }

// busy reports whether h is in flight (the reclaimer leaves it for later).
func (r *refTable) busy(h pool.Hash) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.inflight[h] != nil
}

// claimRole says what a claimer of a hash must do.
type claimRole int

const (
	claimDedup  claimRole = iota // stored with enough copies: reference the locations
	claimAppend                  // not stored: append the bytes, then settle
	// claimRaise: stored with fewer copies than the pool asks (copies
	// raised since, or a degraded write): add copies, then settle with
	// all the locations. Other users wait, as for an append.
	claimRaise
)

// claim registers the caller as a user of h. It returns the record's
// locations and claimDedup if the hash is already stored (a dedup hit),
// the locations and claimRaise if it is stored with fewer copies than the
// pool asks (the first user to find it so adds copies and passes all the
// locations to settle), or nil and claimAppend if the caller must append
// the bytes and pass the locations to settle.
func (s *Store) claim(h pool.Hash) (locs []pool.Location, role claimRole, err error) {
	r := &s.refs
	for {
		r.mu.Lock()
		f := r.inflight[h]
		if f != nil && f.appending {
			ch := f.done
			r.mu.Unlock()
			<-ch
			continue
		}
		if f != nil && f.locs == nil { // the append failed: this caller appends
			f.users++
			f.appending, f.done = true, make(chan struct{})
			r.mu.Unlock()
			return nil, claimAppend, nil
		}
		if f != nil {
			f.users++
			locs = f.locs
			r.mu.Unlock()
			return locs, claimDedup, nil
		}
		f = &inflight{appending: true, done: make(chan struct{}), users: 1}
		r.inflight[h] = f
		r.mu.Unlock()
		rec, found, err := getChunkRefFrom(s.db, h)
		if err != nil {
			s.unclaim(h)
			return nil, claimDedup, err
		}
		if !found {
			return nil, claimAppend, nil
		}
		if s.pool.Counted(rec.Locs) < s.pool.Copies() || s.liveCopies(rec.Locs) == 0 {
			return rec.Locs, claimRaise, nil
		}
		r.mu.Lock()
		f.appending, f.locs = false, rec.Locs
		close(f.done)
		r.mu.Unlock()
		return rec.Locs, claimDedup, nil
	}
}

// settle records where the appender of h put its bytes (nil if the append
// failed) and lets waiting users of h go on.
func (s *Store) settle(h pool.Hash, locs []pool.Location) {
	s.refs.mu.Lock()
	f := s.refs.inflight[h]
	f.locs = locs
	if f.appending {
		f.appending = false
		close(f.done)
	}
	s.refs.mu.Unlock()
}

// unclaim drops the caller's claim on h (after its batch committed or failed).
func (s *Store) unclaim(h pool.Hash) {
	r := &s.refs
	r.mu.Lock()
	defer r.mu.Unlock()
	f := r.inflight[h]
	if f == nil {
		return
	}
	if f.appending {
		f.appending = false
		close(f.done)
	}
	f.users--
	if f.users == 0 {
		delete(r.inflight, h)
	}
}

func getChunkRefFrom(r pebble.Reader, h pool.Hash) (chunkRefRec, bool, error) {
	v, c, err := r.Get(chunkRefKey(h))
	if errors.Is(err, pebble.ErrNotFound) {
		return chunkRefRec{}, false, nil
	}
	if err != nil {
		return chunkRefRec{}, false, fmt.Errorf("read chunkref: %w", err)
	}
	defer c.Close()
	rec, err := decodeChunkRef(v)
	return rec, err == nil, err
}

// applyRefs locks the stripes of every hash in deltas (in order), applies the
// deltas to the chunkref records through batch b, and queues records whose
// count reached zero for freeing. known gives the locations of hashes the
// batch references that may have no record yet (appends and dedup hits).
// raised gives copies the batch's flush added to under-replicated chunks:
// each is adopted into its chunkref while the chunk has fewer copies than
// the pool asks and the copy's failure domain is not yet used, and queued
// for freeing otherwise. The caller commits b and then calls the returned
// unlock.
func (s *Store) applyRefs(b *pebble.Batch, deltas map[pool.Hash]int64, known map[pool.Hash]chunkRefRec, raised map[pool.Hash][]pool.Location) (func(), error) {
	if len(deltas) == 0 && len(raised) == 0 {
		return func() {}, nil
	}
	hs := make([]pool.Hash, 0, len(deltas))
	for h, d := range deltas {
		if d != 0 || len(raised[h]) > 0 {
			hs = append(hs, h)
		}
	}
	for h := range raised {
		if _, ok := deltas[h]; !ok {
			hs = append(hs, h)
		}
	}
	sort.Slice(hs, func(i, j int) bool { return bytes.Compare(hs[i][:], hs[j][:]) < 0 })
	var held []int
	for _, h := range hs {
		i := s.refs.stripe(h)
		if len(held) == 0 || held[len(held)-1] != i {
			s.refs.stripes[i].Lock()
			held = append(held, i)
		}
	}
	var seqs []uint64 // free-queue entries of b: settled once b is done
	unlock := func() {
		s.releaseFreeSeqs(seqs)
		for j := len(held) - 1; j >= 0; j-- {
			s.refs.stripes[held[j]].Unlock()
		}
	}
	for _, h := range hs {
		if err := s.applyRef(b, h, deltas[h], known, raised[h], &seqs); err != nil {
			unlock()
			return nil, err
		}
	}
	return unlock, nil
}

func (s *Store) applyRef(b *pebble.Batch, h pool.Hash, d int64, known map[pool.Hash]chunkRefRec, raised []pool.Location, seqs *[]uint64) error {
	rec, found, err := getChunkRefFrom(s.db, h) // deltas are netted: one read per hash
	if err != nil {
		return err
	}
	if !found {
		k, ok := known[h]
		if d == 0 { // only raised copies, of a chunk freed meanwhile
			return s.queueFree(b, h, raised, seqs)
		}
		if !ok || d < 0 {
			return fmt.Errorf("reference change %+d to unknown chunk %x: %w", d, h[:8], errCorrupt)
		}
		rec = chunkRefRec{Length: k.Length, Locs: k.Locs}
		if s.pool.Counted(rec.Locs) < s.pool.Copies() {
			// A degraded write: count it until a scrub raises it.
			_ = b.Merge(underRepKey(), counterDelta(1), nil)
		}
		if len(raised) > 0 {
			// The known locations include the raised copies; adopt them
			// by the same rule as for a stored record.
			rec.Locs, _ = withoutAll(rec.Locs, raised)
		}
	}
	if len(raised) > 0 {
		var drop []pool.Location
		rec.Locs, drop = s.adoptCopies(rec.Locs, raised)
		if err := s.queueFree(b, h, drop, seqs); err != nil {
			return err
		}
	}
	n := int64(rec.Count) + d
	if n < 0 {
		return fmt.Errorf("chunk %x count %d%+d: %w", h[:8], rec.Count, d, errCorrupt)
	}
	if n == 0 {
		if err := b.Delete(chunkRefKey(h), nil); err != nil {
			return err
		}
		n := s.allocFreeSeq()
		*seqs = append(*seqs, n)
		return b.Set(freeQKey(n), freeQRec{Hash: h, Locs: rec.Locs}.encode(), nil)
	}
	rec.Count = uint64(n)
	return b.Set(chunkRefKey(h), rec.encode(), nil)
}

// adoptCopies adds the copies of add to have while have holds fewer than
// the pool's copies (or none on a present member) and the copy's failure
// domain is not used yet (a copy already in have is kept once); it
// returns the new list and the copies it did not take.
func (s *Store) adoptCopies(have, add []pool.Location) (out, drop []pool.Location) {
	out = append([]pool.Location(nil), have...)
	copies := s.pool.Copies()
	for _, l := range add {
		if containsLoc(out, l) {
			continue
		}
		if s.pool.IsReplica(l.Member) && !s.onMember(out, l.Member) {
			out = append(out, l) // a replica's copy is always kept (asyncrep.go)
			continue
		}
		if (s.pool.Counted(out) < copies || s.liveCopies(out) == 0) && !s.domainUsed(out, l.Member) {
			out = append(out, l)
			continue
		}
		drop = append(drop, l)
	}
	return out, drop
}

// liveCopies counts the locations on members that are not gone.
func (s *Store) liveCopies(locs []pool.Location) int {
	n := 0
	for _, l := range locs {
		if !s.pool.Gone(l.Member) {
			n++
		}
	}
	return n
}

// domainUsed reports whether a copy in locs lies in member m's failure domain.
func (s *Store) domainUsed(locs []pool.Location, m uint16) bool {
	d := s.pool.Domain(m)
	for _, l := range locs {
		if s.pool.Domain(l.Member) == d {
			return true
		}
	}
	return false
}

// queueFree queues locs of h for reclaim in batch b; the entry's
// sequence goes to seqs, released once b is done (the punch rule,
// checkpoint.go).
func (s *Store) queueFree(b *pebble.Batch, h pool.Hash, locs []pool.Location, seqs *[]uint64) error {
	if len(locs) == 0 {
		return nil
	}
	n := s.allocFreeSeq()
	*seqs = append(*seqs, n)
	return b.Set(freeQKey(n), freeQRec{Hash: h, Locs: locs}.encode(), nil)
}

func containsLoc(locs []pool.Location, l pool.Location) bool {
	for _, x := range locs {
		if x == l {
			return true
		}
	}
	return false
}

// withoutAll returns locs less every location in drop, and whether any was
// there.
func withoutAll(locs, drop []pool.Location) ([]pool.Location, bool) {
	out := make([]pool.Location, 0, len(locs))
	found := false
	for _, x := range locs {
		if containsLoc(drop, x) {
			found = true
			continue
		}
		out = append(out, x)
	}
	return out, found
}

// grace tracks reads in flight so that a freed record is punched only after
// every read that could have resolved its location has finished.
type grace struct {
	mu     sync.Mutex
	cond   *sync.Cond
	epoch  uint64
	active [2]int64
}

func (g *grace) enter() uint64 {
	g.mu.Lock()
	e := g.epoch
	g.active[e&1]++
	g.mu.Unlock()
	return e
}

func (g *grace) exit(e uint64) {
	g.mu.Lock()
	g.active[e&1]--
	if g.active[e&1] == 0 && g.cond != nil {
		g.cond.Broadcast()
	}
	g.mu.Unlock()
}

// wait returns once every read that entered before the call has exited.
func (g *grace) wait() {
	g.mu.Lock()
	if g.cond == nil {
		g.cond = sync.NewCond(&g.mu)
	}
	old := g.epoch
	g.epoch++
	for g.active[old&1] > 0 {
		g.cond.Wait()
	}
	g.mu.Unlock()
}

// reclaim frees records queued in freeq: each whose hash is not in flight and
// has not been re-referenced is removed from the queue durably, and after a
// grace period its bytes are released in the pool. final is set at close.
//
// Only entries at or below the punch limit are punched (checkpoint.go):
// a record freed after the newest shipped checkpoint was taken is still
// live in it. When entries wait above the limit, a checkpoint is asked for.
func (s *Store) reclaim(final bool) {
	s.punchMu.Lock()
	defer s.punchMu.Unlock()
	lo, hi := tagBounds(tagFreeQ)
	if limit, limited := s.punchLimit(); limited {
		hi = freeQKey(limit + 1)
		if s.freesAbove(hi) {
			s.noteFreesWaiting()
		}
	}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return
	}
	var todo []reclaimEntry
	for ok := it.First(); ok && len(todo) < 4096; ok = it.Next() {
		rec, err := decodeFreeQ(it.Value())
		if err != nil {
			continue
		}
		todo = append(todo, reclaimEntry{key: append([]byte(nil), it.Key()...), rec: rec})
	}
	it.Close()
	if len(todo) == 0 {
		return
	}
	// Decide under each hash's lock; a hash re-referenced since it was
	// queued keeps its bytes. A later claim of a freed hash appends a new
	// record, never reuses these locations, so punching after the check is
	// safe.
	b := s.db.NewBatch()
	defer b.Close()
	var free []pool.Location
	for i := range todo {
		e := &todo[i]
		if !final && s.refs.busy(e.rec.Hash) {
			continue
		}
		st := s.refs.stripe(e.rec.Hash)
		s.refs.stripes[st].Lock()
		cur, found, err := getChunkRefFrom(s.db, e.rec.Hash)
		if err == nil && !(found && sameLocs(cur.Locs, e.rec.Locs)) {
			e.free = s.parkOrFree(b, e.rec.Hash, e.rec.Locs)
			free = append(free, e.free...)
		}
		e.decided = err == nil
		s.refs.stripes[st].Unlock()
	}
	// Punch first, then forget the queue entries: a crash in between
	// punches again at the next run (Free of a punched record does
	// nothing), where the other order leaked the record for good. But
	// first make the batches that freed them durable: an unlink commits
	// without a WAL sync, and a power cut that lost it after the punch
	// (which Free makes durable) brought the file back over zeros.
	var failed map[pool.Location]error
	if len(free) > 0 {
		if err := s.logSync(pebble.Sync); err != nil {
			s.logf("reclaim: %v", err)
			return
		}
		s.grace.wait()
		if failed, err = s.pool.FreeEach(free); err != nil {
			fmt.Printf("snapfs: free %d records: %v\n", len(free), err)
			return
		}
		if reclaimAfterPunch != nil {
			reclaimAfterPunch()
		}
	}
	// An entry whose free failed stays queued with the records not freed
	// (retried next round, or parked once their member is degraded); the
	// others are forgotten. One bad record never holds up the rest.
	var kept []error
	for _, e := range todo {
		if !e.decided {
			continue
		}
		var keep []pool.Location
		for _, l := range e.free {
			if err := failed[l]; err != nil {
				keep = append(keep, l)
				kept = append(kept, err)
			}
		}
		if len(keep) == 0 {
			_ = b.Delete(e.key, nil)
		} else {
			_ = b.Set(e.key, freeQRec{Hash: e.rec.Hash, Locs: keep}.encode(), nil)
		}
	}
	if len(kept) > 0 {
		fmt.Printf("snapfs: reclaim: %d of %d records not freed, kept queued for the next round: %v\n", len(kept), len(free), kept[0])
	}
	if err := b.Commit(pebble.Sync); err != nil {
		fmt.Printf("snapfs: reclaim: %v\n", err)
	}
}

// reclaimEntry is a free-queue entry a reclaim pass looks at: decided
// once its chunkref was checked, with the locations it frees now.
type reclaimEntry struct {
	key     []byte
	rec     freeQRec
	decided bool
	free    []pool.Location
}

// reclaimAfterPunch, when set by a test, runs after reclaim has punched
// records and before it forgets their queue entries: where a power cut
// once found a chunkref over zeros.
var reclaimAfterPunch func()

// freesAbove reports whether a free-queue entry at or past key from exists.
func (s *Store) freesAbove(from []byte) bool {
	_, hi := tagBounds(tagFreeQ)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: from, UpperBound: hi})
	if err != nil {
		return false
	}
	defer it.Close()
	return it.First()
}

func sameLocs(a, b []pool.Location) bool {
	for _, x := range a {
		for _, y := range b {
			if x == y {
				return true
			}
		}
	}
	return false
}
