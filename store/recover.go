package store

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/snapfs/snapfs/pool"
)

// recover runs at open, before anything else uses the store:
//   - pack records past the pool's accounted offsets that no chunkref
//     points at (appended by a flush whose batch never committed) are freed;
//   - frees parked for members that were gone or degraded, and are
//     healthy now, go back to freeq; those of removed members are dropped;
//   - unlinked files that were open when the daemon stopped are deleted.
func (s *Store) recover() error {
	var orphans []pool.Location
	for _, tr := range s.pool.Tails() {
		rec, found, err := getChunkRefFrom(s.db, tr.Hash)
		if err != nil {
			return fmt.Errorf("recover pack tail: %w", err)
		}
		if !found || !sameLocs(rec.Locs, []pool.Location{tr.Loc}) {
			orphans = append(orphans, tr.Loc)
		}
	}
	if len(orphans) > 0 {
		if err := s.pool.Free(orphans); err != nil {
			return fmt.Errorf("free %d orphan records: %w", len(orphans), err)
		}
	}
	if err := s.pool.MarkAccounted(); err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	if err := s.unparkHealthy(); err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	if err := s.resumeReclaims(); err != nil {
		return err
	}
	if err := s.resumeDrops(); err != nil {
		return fmt.Errorf("recover: %w", err)
	}
	if err := s.releaseOpenHolders(); err != nil {
		return fmt.Errorf("recover: release views destroyed while open: %w", err)
	}
	return s.deleteOrphans()
}

// unparkHealthy requeues the parked frees of every member that can free
// now (a member that failed, or was gone, when they were parked, and is
// healthy at this open: no Back event will ever come for it) and drops
// those of removed members.
func (s *Store) unparkHealthy() error {
	for _, mc := range s.pool.Config().Members {
		var err error
		switch {
		case mc.Removed && s.hasParked(mc.Index):
			err = s.dropParked(mc.Index)
		case s.pool.Freeable(mc.Index):
			err = s.unpark(mc.Index)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// hasParked reports whether member i has parked frees.
func (s *Store) hasParked(i uint16) bool {
	lo, hi := parkedBounds(i)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return true // let dropParked report it
	}
	defer it.Close()
	return it.First()
}

// deleteOrphans removes inodes recorded as unlinked-but-open.
func (s *Store) deleteOrphans() error {
	lo, hi := tagBounds(tagOrphan)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	var keys []inodeKey
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		keys = append(keys, inodeKey{be32(k[1:]), be64(k[5:])})
	}
	if err := it.Close(); err != nil {
		return err
	}
	for _, k := range keys {
		s.cat.Lock()
		l := s.cat.lineages[k.lin]
		s.cat.Unlock()
		if l == nil {
			_ = s.db.Delete(orphanKey(k.lin, k.ino), pebble.NoSync)
			continue
		}
		st := s.inodes.acquire(k)
		var err error
		st.withLock(func() {
			st.loaded = false
			err = s.deleteOrphanLocked(View{ID: l.rec.ViewID, Lineage: k.lin, Epoch: LiveEpoch}, st)
		})
		s.inodes.release(st)
		if err != nil {
			return fmt.Errorf("delete orphan inode %d: %w", k.ino, err)
		}
	}
	return nil
}

func (s *Store) deleteOrphanLocked(v View, st *inodeState) error {
	t, err := s.begin(v)
	if err != nil {
		return err
	}
	defer t.abort()
	rec, err := t.inode(st)
	if isNotFound(err) {
		_ = t.b.Delete(orphanKey(v.Lineage, st.key.ino), nil)
		return t.commit()
	}
	if err != nil {
		return err
	}
	if rec.Nlink > 0 {
		_ = t.b.Delete(orphanKey(v.Lineage, st.key.ino), nil)
		return t.commit()
	}
	if err := t.deleteInode(st, rec); err != nil {
		return err
	}
	return t.commit()
}
