package store

import (
	"bytes"
	"fmt"
	"sort"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/snapfs/snapfs/pool"
)

// RemoveOptions configure RemoveMember.
type RemoveOptions struct {
	// Progress, if set, is called after each batch of records with the
	// running totals.
	Progress func(RemoveReport)
}

// RemoveReport says what RemoveMember moved.
type RemoveReport struct {
	Member string `json:"member"`
	Chunks int64  `json:"chunks"` // chunk records with a copy on the member (more if a pass finds more)
	MoveCounts
	Total   int64         `json:"total"` // payload bytes to copy, as planned
	Elapsed time.Duration `json:"elapsed_ns"`
	Removed bool          `json:"removed"` // the member was forgotten
	// BucketKept, for an asynchronous replica, says that its bucket keeps
	// the pool as of its newest complete checkpoint (pool/objremove.go).
	BucketKept string `json:"bucket_kept,omitempty"`
}

// MoveCounts count the records that an evacuation or a repack moved.
type MoveCounts struct {
	Done       int64    `json:"done"`       // records handled so far
	Moved      int64    `json:"moved"`      // copies written elsewhere
	Dropped    int64    `json:"dropped"`    // copies dropped: the chunk had enough copies elsewhere
	Bytes      int64    `json:"bytes"`      // payload bytes copied
	Unreadable []string `json:"unreadable"` // chunks with no readable copy (left where they are)
}

// evacBatchRecords and evacBatchBytes bound one batch of evacuation:
// records copied, synced and swapped into their chunkrefs with one pool
// sync and one metadata commit. Variables so tests can make batches small.
var (
	evacBatchRecords = 256
	evacBatchBytes   = int64(32 << 20)
)

// RemoveMember evacuates the member whose directory is dir and then
// removes it from the pool. It refuses (changing nothing) when the pool
// would be left without members, with fewer failure domains than copies,
// or without room for the records to move (pool.CheckRemove).
//
// Evacuation stops placement on the member, waits for flushes that may
// have appended there to commit, then moves every record a chunkref names
// on it, in pack order, in batches: each record is read from any good copy
// (the member's own first), appended on a member whose failure domain
// holds none of the chunk's other copies (or just dropped when the chunk
// has enough copies elsewhere), the new copies are made durable, and the
// chunkrefs are rewritten under their hash locks in one synced batch;
// only then, after a read grace period, are the old records punched. A
// crash at any point leaves every chunkref naming durable copies, and the
// member in the pool until a later RemoveMember completes.
//
// Once no chunkref and no in-flight claim names the member (checked with
// flushes held off), the member is forgotten (pool.ForgetMember). Chunk
// versions keep their location hints: a hint naming the removed member
// fails at once and reads fall back to the chunkref.
//
// A chunk with no readable copy cannot be moved: it is reported in
// Unreadable and the member stays in the pool (draining no more).
func (s *Store) RemoveMember(dir string, o RemoveOptions) (RemoveReport, error) {
	start := time.Now()
	r := RemoveReport{Member: dir}
	if s.closed.Load() {
		return r, ErrClosed
	}
	s.removeMu.Lock()
	defer s.removeMu.Unlock()
	idx, err := s.pool.MemberIndex(dir)
	if err != nil {
		return r, err
	}
	r.Member = s.pool.Config().Members[idx].Path
	replica := s.pool.IsReplica(idx)
	todo, need, err := s.evacPlan(idx, &r)
	if err != nil {
		return r, err
	}
	if err := s.pool.CheckRemove(idx, need); err != nil {
		return r, err
	}
	s.pool.SetDraining(idx, true)
	defer func() {
		if !r.Removed {
			s.pool.SetDraining(idx, false)
		}
	}()
	// A flush that placed a record on the member before it was draining
	// holds flushGate until its commit: after this, its chunkref names the
	// record, and no later append goes there.
	s.flushGate.Lock()
	s.flushGate.Unlock()
	for pass := 0; ; pass++ {
		if pass > 0 { // records placed there before draining began
			if todo, _, err = s.evacPlan(idx, &r); err != nil {
				return r, err
			}
		}
		progress := func() {
			if o.Progress != nil {
				r.Elapsed = time.Since(start)
				o.Progress(r)
			}
		}
		if err := s.moveAll(todo, &r.MoveCounts, progress); err != nil {
			return r, fmt.Errorf("remove member %s: %w", r.Member, err)
		}
		if len(r.Unreadable) > 0 {
			r.Elapsed = time.Since(start)
			return r, fmt.Errorf("remove member %s: %d chunk(s) have no readable copy, so the member stays (see pool scrub): %w",
				r.Member, len(r.Unreadable), ErrIO)
		}
		if err := s.shipBeforeDropping("remove member"); err != nil {
			return r, err
		}
		done, err := s.forgetIfEmpty(idx)
		if err != nil {
			return r, err
		}
		if done {
			r.Removed = true
			if replica {
				r.BucketKept = fmt.Sprintf("the bucket %s keeps the pool as of its newest complete checkpoint (snapfs pool import NEWPOOL --member %s restores it; delete it with the store's tools if it is not wanted)", r.Member, r.Member)
			}
			r.Elapsed = time.Since(start)
			return r, nil
		}
		if pass > 100 {
			return r, fmt.Errorf("remove member %s: records keep appearing on it: %w", r.Member, ErrBusy)
		}
		if len(todo) == 0 {
			time.Sleep(10 * time.Millisecond) // an in-flight claim still names it
		}
	}
}

// evacItem is one record to move off the member.
type evacItem struct {
	h   pool.Hash
	loc pool.Location // on the member being removed
}

// evacPlan lists the records chunkrefs name on member idx, in pack order,
// and the pack space their new copies need. With r it also adds them to
// the report's totals.
func (s *Store) evacPlan(idx uint16, r *RemoveReport) ([]evacItem, int64, error) {
	copies := s.pool.Config().Copies
	lo, hi := tagBounds(tagChunkRef)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, 0, err
	}
	var todo []evacItem
	var need int64
	for ok := it.First(); ok; ok = it.Next() {
		rec, err := decodeChunkRef(it.Value())
		if err != nil {
			continue // fsck reports it
		}
		var h pool.Hash
		copy(h[:], it.Key()[1:33])
		for _, l := range rec.Locs {
			if l.Member != idx {
				continue
			}
			todo = append(todo, evacItem{h: h, loc: l})
			if !s.pool.IsReplica(idx) && s.pool.Counted(rec.Locs)-1 < copies { // replicas never count
				need += pool.RecordExtent(l.Length)
				if r != nil {
					r.Total += int64(l.Length)
				}
			}
		}
	}
	if err := it.Close(); err != nil {
		return nil, 0, err
	}
	sort.Slice(todo, func(i, j int) bool {
		a, b := todo[i].loc, todo[j].loc
		return a.Pack < b.Pack || (a.Pack == b.Pack && a.Offset < b.Offset)
	})
	if r != nil {
		r.Chunks += int64(len(todo))
	}
	return todo, need, nil
}

// moveAll moves the records of todo in batches, calling progress after
// each.
func (s *Store) moveAll(todo []evacItem, c *MoveCounts, progress func()) error {
	for len(todo) > 0 {
		n, bytes := 0, int64(0)
		for n < len(todo) && n < evacBatchRecords && bytes < evacBatchBytes {
			bytes += int64(todo[n].loc.Length)
			n++
		}
		if err := s.moveBatch(todo[:n], c); err != nil {
			return err
		}
		todo = todo[n:]
		progress()
	}
	return nil
}

// moved is one record of a batch: its old location, and the new copy if
// one was written.
type moved struct {
	evacItem
	nl    pool.Location
	wrote bool
}

// moveBatch moves a batch of records to new copies (placed by the pool,
// away from the failure domains of each chunk's other copies; a draining
// member gets none) and swaps the new locations in; a chunk with enough
// copies without the record just drops it. Like a flush it holds
// flushGate shared from the first append to the commit, so no accounted
// offset passes an uncommitted copy.
func (s *Store) moveBatch(items []evacItem, r *MoveCounts) error {
	copies := s.pool.Config().Copies
	s.flushGate.RLock()
	var ms []moved
	var fresh []pool.Location
	var buf []byte
	fail := func(err error) error {
		s.flushGate.RUnlock()
		s.pool.Free(fresh)
		return err
	}
	for _, it := range items {
		rec, found, err := getChunkRefFrom(s.db, it.h)
		if err != nil {
			return fail(err)
		}
		others, ok := without(rec.Locs, it.loc)
		if !found || !ok {
			r.Done++ // freed or moved meanwhile
			continue
		}
		m := moved{evacItem: it}
		// A replica's record moves to the same replica (repack of its
		// objects), unless the replica is the member being removed.
		toReplica := s.pool.IsReplica(it.loc.Member) && !s.pool.Draining(it.loc.Member) && !s.pool.Removed(it.loc.Member)
		if toReplica || s.pool.Counted(others) < copies {
			order := append([]pool.Location{it.loc}, others...)
			if toReplica { // the counted copies are local: read them first
				order = append(append([]pool.Location(nil), others...), it.loc)
			}
			data, err := s.pool.ReadAny(order, it.h, buf)
			if err != nil {
				r.Unreadable = append(r.Unreadable, fmt.Sprintf("chunk %x at %v: %v", it.h[:8], it.loc, err))
				continue
			}
			if toReplica {
				m.nl, err = s.pool.AppendReplica(it.loc.Member, it.h, data)
			} else {
				m.nl, err = s.pool.AppendCopy(it.h, data, others)
			}
			if err != nil {
				return fail(err)
			}
			m.wrote = true
			fresh = append(fresh, m.nl)
			buf = data[:0]
		}
		ms = append(ms, m)
	}
	if err := s.pool.Sync(fresh); err != nil {
		return fail(err)
	}
	old, queued, unused, err := s.evacSwap(ms, r)
	if err != nil {
		return fail(err)
	}
	// Copies no chunkref took are freed before the gate opens, so no
	// accounted offset passes them while they are unreferenced.
	ferr := s.pool.Free(unused)
	s.flushGate.RUnlock()
	if ferr != nil {
		return ferr
	}
	if evacAfterCommit != nil {
		evacAfterCommit()
	}
	return s.freeQueued(old, queued)
}

// evacAfterCommit, when set by a test, runs after a batch's chunkrefs
// are committed and before its old records are punched: the kill point
// "mid evacuation".
var evacAfterCommit func()

// freeQueued punches the old locations of a committed batch after a read
// grace period (readers that resolved one fail over to the new copy), then
// drops their freeq entries. A crash before the drop punches them again
// at the next reclaim, which is harmless.
func (s *Store) freeQueued(old []pool.Location, queued [][]byte) error {
	if len(old) == 0 {
		return nil
	}
	s.grace.wait()
	if err := s.shipBeforeDropping("evacuation"); err != nil {
		return err // the freeq entries stay: reclaim punches them later
	}
	if err := s.pool.Free(old); err != nil {
		return err
	}
	b := s.db.NewBatch()
	defer b.Close()
	for _, k := range queued {
		if err := b.Delete(k, nil); err != nil {
			return err
		}
	}
	if err := b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("drop freed locations from the queue: %w", err)
	}
	return nil
}

// evacSwap rewrites the chunkrefs of a batch under their hash locks, in
// one synced commit that also queues each old location in freeq (so a
// crash before it is punched leaks nothing: reclaim frees it). It returns
// the old locations, their freeq keys, and the new copies no chunkref
// took (the chunk was freed or changed meanwhile).
func (s *Store) evacSwap(ms []moved, r *MoveCounts) (old []pool.Location, queued [][]byte, unused []pool.Location, err error) {
	deltas := map[pool.Hash]int64{}
	for _, m := range ms {
		deltas[m.h] = 1 // only the set of hashes matters here
	}
	unlock := s.lockHashes(deltas)
	defer unlock()
	b := s.db.NewBatch()
	defer b.Close()
	var moves, drops, copied int64
	recs := map[pool.Hash]chunkRefRec{}
	for _, m := range ms {
		rec, found := recs[m.h]
		if !found {
			if rec, found, err = getChunkRefFrom(s.db, m.h); err != nil {
				return nil, nil, nil, err
			}
		}
		others, ok := without(rec.Locs, m.loc)
		if !found || !ok {
			if m.wrote {
				unused = append(unused, m.nl)
			}
			continue
		}
		if m.wrote {
			others = s.withCopy(others, m.nl)
			moves++
			copied += int64(m.loc.Length)
		} else {
			drops++
		}
		rec.Locs = others
		recs[m.h] = rec
		old = append(old, m.loc)
		k := freeQKey(s.seq.Add(1))
		if err := b.Set(k, freeQRec{Hash: m.h, Locs: []pool.Location{m.loc}}.encode(), nil); err != nil {
			return nil, nil, nil, err
		}
		queued = append(queued, k)
	}
	for h, rec := range recs {
		if err := b.Set(chunkRefKey(h), rec.encode(), nil); err != nil {
			return nil, nil, nil, err
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return nil, nil, nil, fmt.Errorf("commit moved locations: %w", err)
	}
	r.Moved += moves
	r.Dropped += drops
	r.Bytes += copied
	r.Done += int64(len(ms))
	return old, queued, unused, nil
}

// withCopy adds nl to locs: a counted copy before the replicas' (reads
// try locations in order, and a replica's last), a replica's at the end.
func (s *Store) withCopy(locs []pool.Location, nl pool.Location) []pool.Location {
	if !s.pool.IsReplica(nl.Member) {
		for j, l := range locs {
			if s.pool.IsReplica(l.Member) {
				return append(locs[:j:j], append([]pool.Location{nl}, locs[j:]...)...)
			}
		}
	}
	return append(locs, nl)
}

// without returns locs less l, and whether l was among them.
func without(locs []pool.Location, l pool.Location) ([]pool.Location, bool) {
	out := make([]pool.Location, 0, len(locs))
	found := false
	for _, x := range locs {
		if x == l {
			found = true
			continue
		}
		out = append(out, x)
	}
	return out, found
}

// lockHashes takes the chunkref locks of every hash in hs, in stripe
// order, and returns the unlock.
func (s *Store) lockHashes(hs map[pool.Hash]int64) func() {
	keys := make([]pool.Hash, 0, len(hs))
	for h := range hs {
		keys = append(keys, h)
	}
	sort.Slice(keys, func(i, j int) bool { return bytes.Compare(keys[i][:], keys[j][:]) < 0 })
	var held []int
	for _, h := range keys {
		i := s.refs.stripe(h)
		if len(held) == 0 || held[len(held)-1] != i {
			s.refs.stripes[i].Lock()
			held = append(held, i)
		}
	}
	return func() {
		for j := len(held) - 1; j >= 0; j-- {
			s.refs.stripes[held[j]].Unlock()
		}
	}
}

// forgetIfEmpty forgets member idx if nothing names it: no chunkref, and
// no in-flight claim whose locations a flush could still commit. It holds
// flushGate exclusively meanwhile, so no flush is between its claim and
// its commit.
func (s *Store) forgetIfEmpty(idx uint16) (bool, error) {
	s.flushGate.Lock()
	defer s.flushGate.Unlock()
	todo, _, err := s.evacPlan(idx, nil)
	if err != nil || len(todo) > 0 {
		return false, err
	}
	if s.inflightNames(idx) {
		return false, nil
	}
	if err := s.pool.ForgetMember(idx); err != nil {
		return false, err
	}
	return true, s.dropParked(idx)
}

// inflightNames reports whether an in-flight claim holds a location on
// member idx.
func (s *Store) inflightNames(idx uint16) bool {
	s.refs.mu.Lock()
	defer s.refs.mu.Unlock()
	for _, f := range s.refs.inflight {
		for _, l := range f.locs {
			if l.Member == idx {
				return true
			}
		}
	}
	return false
}
