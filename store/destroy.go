package store

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/snapfs/snapfs/internal/killpoint"
	"github.com/snapfs/snapfs/pool"
)

// DestroyLineage removes a branch: every version it stored, its catalog
// record and its hold (holder) on its parent point, whose pin goes when no
// other holder is left. The branch must have no pins of its own (its
// snapshots and their branches go first) and must not be a volume's root
// lineage. The cost follows what the branch itself wrote; nothing it
// inherited is touched. ops are committed with the catalog change.
func (s *Store) DestroyLineage(lin uint32, holder string, ops ...MetaOp) error {
	l, err := s.lineageOf(View{Lineage: lin})
	if err != nil {
		return err
	}
	if l.parent == nil {
		return fmt.Errorf("lineage %d is a volume's root: %w", lin, ErrInvalid)
	}
	if pins, err := s.Pins(lin); err != nil {
		return err
	} else if len(pins) > 0 {
		return fmt.Errorf("lineage %d has %d snapshots: %w", lin, len(pins), ErrBusy)
	}
	// Drop buffered state first: the branch's files are going away.
	s.discardLineage(lin)
	// A reclaim walk of one of the branch's own snapshots may still run
	// in the background over the deadlist and chunk keys dropped here:
	// both would release the same references. reclaimMu (taken before
	// epochMu, which the walks never take) keeps them apart; a walk that
	// runs after the drop finds nothing left to free.
	s.reclaimMu.Lock()
	defer s.reclaimMu.Unlock()
	l.epochMu.Lock()
	defer l.epochMu.Unlock()
	if err := s.dropLineageKeys(l); err != nil {
		return fmt.Errorf("destroy lineage %d: %w", lin, err)
	}
	killpoint.Hit(killpoint.BranchDestroy)
	b := s.db.NewBatch()
	defer b.Close()
	_ = b.Delete(catalogKey(catLineage, fmt.Sprint(lin)), nil)
	_ = b.Delete(usedKey(lin), nil)
	_ = b.Delete(filesKey(lin), nil)
	if err := applyMeta(b, ops); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("destroy lineage %d: %w", lin, err)
	}
	s.cat.Lock()
	delete(s.cat.lineages, lin)
	delete(s.cat.views, l.rec.ViewID)
	s.cat.Unlock()
	// Release the branch point last: the parent's reclaim may free what
	// only the branch point kept.
	return s.UnpinEpoch(l.parent.rec.ID, l.rec.ParentEpoch, holder)
}

// dropLineageKeys deletes every versioned key, deadlist entry, space
// counter and orphan record of a lineage, releasing chunk references, in batches.
//
// With its own keys gone the branch shows its fork point again, so the
// last batch also resets its files and used counters to the fork point's:
// a crash before the catalog batch of DestroyLineage leaves a consistent
// branch, as it was made, which a second destroy removes.
func (s *Store) dropLineageKeys(l *lineage) error {
	lin := l.rec.ID
	if err := s.dropChunkKeys(lin); err != nil {
		return err
	}
	// Everything else the lineage owns holds no references: range deletes.
	b := s.db.NewBatch()
	defer b.Close()
	for _, tag := range []byte{tagInode, tagDirent, tagXattr, tagDeadlist, tagOrphan} {
		_ = b.DeleteRange(keyBuf(nil).u8(tag).u32(lin).end(), keyBuf(nil).u8(tag).u32(lin+1).end(), nil)
	}
	_ = b.DeleteRange(spaceFrom(lin, 0), spaceFrom(lin+1, 0), nil)
	used, files, ok := s.countersAt(l.parent.rec.ID, l.rec.ParentEpoch)
	if !ok {
		used, files = l.parent.used.Load(), l.parent.files.Load()
	}
	_ = b.Delete(usedKey(lin), nil)
	_ = b.Merge(usedKey(lin), counterDelta(used), nil)
	_ = b.Delete(filesKey(lin), nil)
	_ = b.Merge(filesKey(lin), counterDelta(files), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return err
	}
	l.used.Store(used)
	l.files.Store(files)
	return nil
}

// dropChunkKeys deletes every chunk version of lineage lin, releasing the
// chunk references they hold, in batches of 4096 keys.
func (s *Store) dropChunkKeys(lin uint32) error {
	lo := keyBuf(nil).u8(tagChunk).u32(lin).end()
	hi := keyBuf(nil).u8(tagChunk).u32(lin + 1).end()
	for {
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			return err
		}
		b := s.db.NewBatch()
		refs := map[pool.Hash]int64{}
		n := 0
		for ok := it.First(); ok && n < 4096; ok = it.Next() {
			if c, err := decodeChunk(it.Value()); err == nil && c.Kind == chunkData {
				refs[c.Hash]--
			}
			_ = b.Delete(append([]byte(nil), it.Key()...), nil)
			n++
		}
		if err := it.Close(); err != nil {
			b.Close()
			return err
		}
		if n == 0 {
			b.Close()
			break
		}
		unlock, err := s.applyRefs(b, refs, nil, nil)
		if err != nil {
			b.Close()
			return err
		}
		err = b.Commit(pebble.NoSync)
		unlock()
		b.Close()
		if err != nil {
			return err
		}
	}
	return nil
}

// discardLineage drops the buffered state of every inode of lineage lin,
// whose keys are about to be dropped (a branch or volume destroy): dirty
// chunks are discarded, and a flush job still syncing or committing
// finishes first.
func (s *Store) discardLineage(lin uint32) {
	for _, st := range s.inodes.all() {
		if st.key.lin == lin {
			st.flushMu.Lock()
			var last chan struct{}
			st.withLock(func() {
				s.discardLocked(st)
				st.loaded, st.recDirty = false, false
				last = st.lastDone
			})
			if last != nil {
				<-last
			}
			s.unlockFlush(st)
		}
		s.inodes.release(st)
	}
}
