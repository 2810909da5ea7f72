package store

import (
	"fmt"
	"sort"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/snapfs/snapfs/internal/killpoint"
	"github.com/snapfs/snapfs/pool"
)

// RepackOptions configure Repack.
type RepackOptions struct {
	// MaxLive selects the packs to rewrite: a sealed pack whose live
	// records take at most this fraction of its size. The default value
	// is 0.5.
	MaxLive float64
	// Progress, if set, is called after each batch with the running totals.
	Progress func(RepackReport)
}

// RepackReport says what Repack did.
type RepackReport struct {
	Packs   int64 `json:"packs"`   // sealed packs chosen (mostly holes, or holding no live record)
	Deleted int64 `json:"deleted"` // of those, deleted
	Chunks  int64 `json:"chunks"`  // live records in them
	MoveCounts
	Total int64 `json:"total"` // live payload bytes to move
	// Kept says, for each asynchronous replica whose chosen objects were
	// not deleted, why: its bucket did not yet hold a checkpoint that no
	// longer names them (the records moved; the next repack deletes them).
	Kept    []string      `json:"kept,omitempty"`
	Before  int64         `json:"before"` // allocated bytes of every pack before
	After   int64         `json:"after"`  // and after
	Elapsed time.Duration `json:"elapsed_ns"`
}

// packID names one pack of one member.
type packID struct {
	member uint16
	pack   uint32
}

// Repack rewrites the sealed packs that are mostly holes and deletes
// them, giving their space back to the members' file systems. Packs with
// no live record are deleted without moving anything (on members that
// cannot punch holes, freed records stay in their packs until then).
//
// Live records of a chosen pack are moved as RemoveMember moves them
// (read, append a new copy where the pool places it, away from the
// chunk's other failure domains, sync, swap the chunkrefs in one synced
// batch that also queues the old locations in freeq, punch after a read
// grace period). Then, with flushes held off, one scan of the chunkrefs
// and the in-flight claims confirms that nothing names a record in the
// chosen packs, and they are deleted. A crash at any point leaves every
// chunkref naming durable copies; a pack not yet deleted is merely
// repacked again later. The active pack of each member is never touched.
func (s *Store) Repack(o RepackOptions) (RepackReport, error) {
	start := time.Now()
	var r RepackReport
	if s.closed.Load() {
		return r, ErrClosed
	}
	if o.MaxLive <= 0 {
		o.MaxLive = 0.5
	}
	s.removeMu.Lock()
	defer s.removeMu.Unlock()
	st, err := s.pool.Stats()
	if err != nil {
		return r, err
	}
	r.Before = st.Used
	chosen, todo, err := s.repackPlan(o.MaxLive, &r)
	if err != nil {
		return r, err
	}
	progress := func() {
		if o.Progress != nil {
			r.Elapsed = time.Since(start)
			o.Progress(r)
		}
	}
	if err := s.moveAll(todo, &r.MoveCounts, progress); err != nil {
		return r, fmt.Errorf("repack: %w", err)
	}
	if repackBeforeDelete != nil {
		repackBeforeDelete()
	}
	if len(chosen) > 0 {
		killpoint.Hit(killpoint.RepackMoved)
	}
	if err := s.shipBeforeDropping("repack"); err != nil {
		return r, err
	}
	s.replicasCheckpointed(chosen, &r)
	if err := s.deleteUnnamedPacks(chosen, &r); err != nil {
		return r, err
	}
	if st, err = s.pool.Stats(); err != nil {
		return r, err
	}
	r.After = st.Used
	r.Elapsed = time.Since(start)
	progress()
	return r, nil
}

// repackBeforeDelete, when set by a test, runs after every live record
// of the chosen packs has moved and before the packs are deleted: the
// kill point "mid repack".
var repackBeforeDelete func()

// repackPlan chooses the sealed packs whose live records take at most
// maxLive of their size, and lists those records in pack order.
func (s *Store) repackPlan(maxLive float64, r *RepackReport) (map[packID]bool, []evacItem, error) {
	byPack, err := s.liveRecordsByPack()
	if err != nil {
		return nil, nil, err
	}
	chosen := map[packID]bool{}
	var todo []evacItem
	for _, mc := range s.pool.Config().Members {
		if mc.Removed {
			continue
		}
		packs, err := s.pool.Packs(mc.Index)
		if err != nil {
			continue // a gone member: nothing to repack there
		}
		for _, pk := range packs {
			id := packID{mc.Index, pk.Pack}
			items := byPack[id]
			var live int64
			for _, it := range items {
				live += pool.RecordExtent(it.loc.Length)
			}
			if pk.Active || pk.Size == 0 || float64(live) > maxLive*float64(pk.Size) {
				continue
			}
			if mc.Async && !s.replicaRepackable(mc.Index) {
				continue
			}
			chosen[id] = true
			r.Packs++
			r.Chunks += int64(len(items))
			for _, it := range items {
				r.Total += int64(it.loc.Length)
			}
			todo = append(todo, items...)
		}
	}
	sort.Slice(todo, func(i, j int) bool {
		a, b := todo[i].loc, todo[j].loc
		if a.Member != b.Member {
			return a.Member < b.Member
		}
		return a.Pack < b.Pack || (a.Pack == b.Pack && a.Offset < b.Offset)
	})
	return chosen, todo, nil
}

// liveRecordsByPack lists every location a chunkref names, by pack.
func (s *Store) liveRecordsByPack() (map[packID][]evacItem, error) {
	lo, hi := tagBounds(tagChunkRef)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	out := map[packID][]evacItem{}
	for ok := it.First(); ok; ok = it.Next() {
		rec, err := decodeChunkRef(it.Value())
		if err != nil {
			continue // fsck reports it
		}
		var h pool.Hash
		copy(h[:], it.Key()[1:33])
		for _, l := range rec.Locs {
			id := packID{l.Member, l.Pack}
			out[id] = append(out[id], evacItem{h: h, loc: l})
		}
	}
	return out, it.Close()
}

// deleteUnnamedPacks deletes the chosen packs that no chunkref and no
// in-flight claim names, holding flushGate exclusively meanwhile so no
// flush is between its claim and its commit.
func (s *Store) deleteUnnamedPacks(chosen map[packID]bool, r *RepackReport) error {
	if len(chosen) == 0 {
		return nil
	}
	s.flushGate.Lock()
	defer s.flushGate.Unlock()
	named, err := s.liveRecordsByPack()
	if err != nil {
		return err
	}
	s.refs.mu.Lock()
	for _, f := range s.refs.inflight {
		for _, l := range f.locs {
			named[packID{l.Member, l.Pack}] = nil
		}
	}
	s.refs.mu.Unlock()
	ids := make([]packID, 0, len(chosen))
	for id := range chosen {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool {
		return ids[i].member < ids[j].member || (ids[i].member == ids[j].member && ids[i].pack < ids[j].pack)
	})
	for _, id := range ids {
		if _, ok := named[id]; ok {
			continue // still named (an unreadable record, or a new claim): the next repack retries
		}
		if !chosen[id] {
			continue // a replica's, kept (replicasCheckpointed)
		}
		if err := s.pool.DeletePack(id.member, id.pack); err != nil {
			return fmt.Errorf("repack: %w", err)
		}
		r.Deleted++
	}
	return nil
}

// Reclaim on asynchronous replicas.
//
// A replica's objects are chosen like any member's, and their live
// records move to new records on the same replica (moveBatch). The
// bucket must hold a consistent pool at every moment: its newest
// complete checkpoint must name only records it holds. So the objects
// are deleted only after a checkpoint taken once the records moved is in
// the bucket, with no older complete checkpoint left there
// (pool.ReplicaCheckpointed); the uploader Puts the moved records before
// that checkpoint's manifest. A kill -9 at any point leaves either the
// old checkpoint with every object it names, or the new one with the
// moved records.

// replicaRepackable reports whether replica i's objects may be chosen:
// the replica is complete (checkpoints are staged for it) and answering.
func (s *Store) replicaRepackable(i uint16) bool {
	st, err := s.pool.Replica(i)
	return err == nil && st.Complete && st.Err == nil
}

// replicasCheckpointed takes a checkpoint when objects of replicas are
// among chosen and waits until each such replica's bucket holds it; a
// replica whose bucket does not is taken out of chosen (its objects
// stay) and said in r.Kept.
func (s *Store) replicasCheckpointed(chosen map[packID]bool, r *RepackReport) {
	reps := map[uint16]bool{}
	for id := range chosen {
		if s.pool.IsReplica(id.member) {
			reps[id.member] = true
		}
	}
	if len(reps) == 0 {
		return
	}
	keep := func(i uint16, err error) {
		r.Kept = append(r.Kept, fmt.Sprintf("replica %s: %v", s.pool.Config().Members[i].Path, err))
		for id := range chosen {
			if id.member == i {
				chosen[id] = false
			}
		}
	}
	if replicaRepackHook != nil {
		replicaRepackHook()
	}
	st, cerr := s.Checkpoint("repack of a replica")
	for i := range reps {
		err := cerr
		if err == nil {
			err = s.pool.ReplicaCheckpointed(i, st.Seq)
		}
		if err != nil {
			keep(i, err)
		}
	}
}

// replicaRepackHook, when set by a test, runs after a replica's records
// moved and before the checkpoint that lets its objects go: the kill
// point "mid reclaim".
var replicaRepackHook func()
