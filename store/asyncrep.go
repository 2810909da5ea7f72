package store

import (
	"bytes"
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/snapfs/snapfs/pool"
)

// Backfill of asynchronous replicas (pool/asyncrep.go).
//
// A chunk written while a replica is open gets its replica copy at
// Append, with its counted copies. The chunks that lack one (written
// before the replica was added, or while it was gone or degraded with a
// full backlog) are copied up by the replicator: a background pass over
// every chunkref that reads each chunk lacking a copy on the replica
// from a counted copy, appends it to the replica's stage, syncs, and
// adds the location to the chunkref under its hash lock in one synced
// commit per batch (as scrub raises copies). A pass that found every
// chunk on the replica, with no record skipping it meanwhile, marks the
// replica complete (pool.SetReplicaComplete): only then are metadata
// checkpoints shipped to it, so that the bucket's newest checkpoint
// never names a chunk the bucket does not hold.
//
// The replicator runs a pass at Open for every replica not known
// complete (the mark is persisted by the pool, so a replica complete
// before a restart needs none), and again whenever a skip cleared the
// mark, at most every replicaPassGap after a pass that could not finish.
// A pass also replaces locations in replica packs that no longer exist
// (a lost stage: Pool.ReplicaPacks, floorReplicas).

const (
	// replicaTick is how often the replicator looks for replicas to
	// backfill.
	replicaTick = time.Second
	// replicaPassGap is the wait after a pass that did not finish (a
	// chunk unreadable, the replica not taking records).
	replicaPassGap = 30 * time.Second
)

// replicator runs backfill passes in the background until Close.
func (s *Store) replicator() {
	defer s.bg.Done()
	t := time.NewTicker(replicaTick)
	defer t.Stop()
	retryAt := map[uint16]time.Time{}
	for {
		for _, i := range s.pool.Replicas() {
			if s.pool.ReplicaComplete(i) || time.Now().Before(retryAt[i]) {
				continue
			}
			if err := s.BackfillReplica(i); err != nil {
				if s.closing.Load() {
					return
				}
				retryAt[i] = time.Now().Add(replicaPassGap)
				s.logf("snapfs: backfill of replica %d: %v (next pass in %v)", i, err, replicaPassGap)
			}
		}
		select {
		case <-s.stop:
			return
		case <-t.C:
		}
	}
}

// floorReplicas runs at Open: a replica whose stage is fresh (new, or
// lost with its backlog) must not number new stage packs like packs the
// chunkrefs name on it already (the lost ones), so one scan of the
// chunkrefs finds the highest pack named there and the replica appends
// past it. The backfill then finds the records in lost packs
// (Pool.ReplicaPacks) and copies them up again. A new replica is named
// by no chunkref: the scan is all it costs, once.
func (s *Store) floorReplicas() error {
	for _, i := range s.pool.Replicas() {
		if !s.pool.ReplicaStageFresh(i) {
			continue
		}
		lo, hi := tagBounds(tagChunkRef)
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			return err
		}
		var top uint32
		for ok := it.First(); ok; ok = it.Next() {
			rec, err := decodeChunkRef(it.Value())
			if err != nil {
				continue
			}
			for _, l := range rec.Locs {
				if l.Member == i {
					top = max(top, l.Pack)
				}
			}
		}
		if err := it.Close(); err != nil {
			return err
		}
		if top > 0 {
			if err := s.pool.ReplicaPackFloor(i, top+1); err != nil {
				return fmt.Errorf("replica %d: %w", i, err)
			}
		}
	}
	return nil
}

// replicaItem is one chunk the replica lacks: locs are its copies
// elsewhere; stale, when set, is a location on the replica whose pack no
// longer exists (the stage lost), to be replaced.
type replicaItem struct {
	h     pool.Hash
	locs  []pool.Location
	stale *pool.Location
}

// BackfillReplica runs one backfill pass for replica i now: every chunk
// without a copy on it gets one. It marks the replica complete when the
// pass found every chunk there and no record skipped the replica
// meanwhile.
func (s *Store) BackfillReplica(i uint16) error {
	skips := s.pool.ReplicaSkips(i)
	if backfillPass != nil {
		backfillPass(i)
	}
	has, err := s.pool.ReplicaPacks(i)
	if err != nil {
		return err
	}
	start, hi := tagBounds(tagChunkRef)
	var unreadable int
	for {
		items, next, err := s.replicaBatch(i, start, hi, has)
		if err != nil {
			return err
		}
		if len(items) > 0 {
			n, err := s.copyToReplica(i, items)
			unreadable += n
			if err != nil {
				return err
			}
		}
		if next == nil {
			break
		}
		if s.closing.Load() {
			return fmt.Errorf("backfill of replica %d: %w", i, ErrClosed)
		}
		start = next
	}
	if unreadable > 0 {
		return fmt.Errorf("%d chunk(s) could not be read from any copy (pool scrub names them)", unreadable)
	}
	if err := s.pool.SetReplicaComplete(i, skips); err != nil {
		return err
	}
	if s.pool.ReplicaComplete(i) {
		// Checkpoints taken before now were not sent to it: one that
		// names its copies of every chunk is.
		s.RequestCheckpoint(fmt.Sprintf("replica %d complete", i))
	}
	return nil
}

// backfillPass, when set by a test, is called at the start of every
// backfill pass.
var backfillPass func(i uint16)

// replicaBatch collects, from key start on, up to one evacuation batch
// of chunks without a copy on replica i, or whose copy there lies in a
// pack has says is gone; next is where the following batch starts (nil:
// the scan is done).
func (s *Store) replicaBatch(i uint16, start, hi []byte, has func(uint32) bool) (items []replicaItem, next []byte, err error) {
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: start, UpperBound: hi})
	if err != nil {
		return nil, nil, err
	}
	defer it.Close()
	var size int64
	for ok := it.First(); ok; ok = it.Next() {
		if len(items) >= evacBatchRecords || size >= evacBatchBytes {
			return items, bytes.Clone(it.Key()), nil
		}
		rec, err := decodeChunkRef(it.Value())
		if err != nil || len(rec.Locs) == 0 {
			continue // a damaged one is fsck's
		}
		item := replicaItem{locs: rec.Locs}
		for j, l := range rec.Locs {
			if l.Member == i {
				item.stale = &rec.Locs[j]
			}
		}
		if item.stale != nil {
			if has(item.stale.Pack) {
				continue
			}
			item.locs, _ = without(rec.Locs, *item.stale)
			if len(item.locs) == 0 {
				continue // its only copy is lost: scrub and fsck say so
			}
		}
		copy(item.h[:], it.Key()[1:33])
		items = append(items, item)
		size += int64(item.locs[0].Length)
	}
	return items, nil, it.Error()
}

// copyToReplica copies the chunks of items to replica i and adopts the
// copies into their chunkrefs. It returns how many chunks no copy could
// be read of (left for the next pass). Like a flush it holds flushGate
// shared from the first append to the commit, so no accounted offset
// passes an uncommitted copy.
func (s *Store) copyToReplica(i uint16, items []replicaItem) (int, error) {
	s.flushGate.RLock()
	defer s.flushGate.RUnlock()
	var fresh []pool.Location
	added := make([]pool.Location, len(items))
	have := make([]bool, len(items))
	unreadable := 0
	var buf []byte
	for j, it := range items {
		data, err := s.pool.ReadAny(it.locs, it.h, buf)
		if err != nil {
			unreadable++
			continue
		}
		l, err := s.pool.AppendReplica(i, it.h, data)
		if err != nil {
			s.pool.Free(fresh)
			return unreadable, fmt.Errorf("copy chunk %x to replica %d: %w", it.h[:8], i, err)
		}
		buf = data[:0]
		added[j], have[j] = l, true
		fresh = append(fresh, l)
	}
	if err := s.pool.Sync(fresh); err != nil {
		s.pool.Free(fresh)
		return unreadable, fmt.Errorf("sync replica %d: %w", i, err)
	}
	hs := map[pool.Hash]int64{}
	for j, it := range items {
		if have[j] {
			hs[it.h] = 1
		}
	}
	unlock := s.lockHashes(hs)
	b := s.db.NewBatch()
	var unused []pool.Location
	for j, it := range items {
		if !have[j] {
			continue
		}
		rec, found, err := getChunkRefFrom(s.db, it.h)
		if err != nil || !found {
			unused = append(unused, added[j]) // freed meanwhile
			continue
		}
		if it.stale != nil {
			var ok bool
			if rec.Locs, ok = without(rec.Locs, *it.stale); !ok {
				unused = append(unused, added[j]) // replaced meanwhile
				continue
			}
		}
		if onMember(rec.Locs, i) {
			unused = append(unused, added[j]) // copied meanwhile
			continue
		}
		rec.Locs = append(rec.Locs, added[j])
		_ = b.Set(chunkRefKey(it.h), rec.encode(), nil)
	}
	err := b.Commit(pebble.Sync)
	b.Close()
	unlock()
	if err != nil {
		s.pool.Free(fresh)
		return unreadable, fmt.Errorf("commit replica copies: %w", err)
	}
	s.pool.Free(unused) // never named by any metadata
	return unreadable, nil
}

// onMember reports whether a location of locs is on member i.
func onMember(locs []pool.Location, i uint16) bool {
	for _, l := range locs {
		if l.Member == i {
			return true
		}
	}
	return false
}

// onMember is the method form adoptCopies uses.
func (s *Store) onMember(locs []pool.Location, i uint16) bool { return onMember(locs, i) }
