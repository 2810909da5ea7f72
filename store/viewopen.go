package store

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/cockroachdb/pebble/v2"
)

// Open views (DESIGN-NOTES 9): destroying a snapshot that an rsync is still
// reading must not pull its data away. A pin whose view has open handles
// keeps it, under a holder "open:<holder>", until the last handle closes;
// meanwhile the view is gone for everything else (ErrStale). A daemon that
// stops drops its handles: recovery releases every "open:" holder.

const openHolderPrefix = "open:"

// viewUsableLocked reports whether the read-only view (lin, epoch) may be used:
// its epoch is pinned and it was not destroyed. Callers hold s.cat.
func (s *Store) viewUsableLocked(pt viewPoint) bool {
	return s.cat.pins[pt] && !s.cat.gone[pt]
}

// openView counts a handle of a read-only view.
func (s *Store) openView(pt viewPoint) error {
	s.cat.Lock()
	defer s.cat.Unlock()
	if !s.viewUsableLocked(pt) {
		return fmt.Errorf("view %d@%d: %w", pt.lin, pt.epoch, ErrStale)
	}
	s.cat.openViews[pt]++
	return nil
}

// closeView drops a handle of a read-only view; the last handle of a
// destroyed view releases the holds kept for it.
func (s *Store) closeView(pt viewPoint) error {
	s.cat.Lock()
	s.cat.openViews[pt]--
	var holders []string
	if s.cat.openViews[pt] <= 0 {
		delete(s.cat.openViews, pt)
		holders = s.cat.deferred[pt]
		delete(s.cat.deferred, pt)
		delete(s.cat.gone, pt)
	}
	s.cat.Unlock()
	for _, h := range holders {
		if err := s.UnpinEpoch(pt.lin, pt.epoch, h); err != nil {
			return fmt.Errorf("release destroyed view %d@%d: %w", pt.lin, pt.epoch, err)
		}
	}
	return nil
}

// deferUnpin replaces holder by an open: holder when the view has open
// handles, committing ops now (the name goes at once). It reports whether it
// did so. Caller holds l.epochMu.
func (s *Store) deferUnpinLocked(lin uint32, e uint64, holder string, ops []MetaOp) (bool, error) {
	pt := viewPoint{lin, e}
	s.cat.Lock()
	open := s.cat.openViews[pt] > 0
	s.cat.Unlock()
	if !open {
		return false, nil
	}
	holders, err := s.pinHolders(lin, e)
	if err != nil {
		return false, err
	}
	for i, h := range holders {
		if h == holder {
			holders[i] = openHolderPrefix + holder
			b := s.db.NewBatch()
			defer b.Close()
			hj, _ := json.Marshal(holders)
			_ = b.Set(pinKey(lin, e), hj, nil)
			if err := applyMeta(b, ops); err != nil {
				return false, err
			}
			if err := b.Commit(pebble.Sync); err != nil {
				return false, fmt.Errorf("defer unpin %d@%d: %w", lin, e, err)
			}
			s.cat.Lock()
			s.cat.deferred[pt] = append(s.cat.deferred[pt], openHolderPrefix+holder)
			s.cat.gone[pt] = true
			s.cat.Unlock()
			return true, nil
		}
	}
	return false, fmt.Errorf("pin %d@%d has no holder %q: %w", lin, e, holder, ErrNotFound)
}

// releaseOpenHolders drops the holds of views destroyed while open by a
// daemon that has since stopped.
func (s *Store) releaseOpenHolders() error {
	lo := keyBuf(nil).u8(tagCatalog).u8(catPin).end()
	hi := keyBuf(nil).u8(tagCatalog).u8(catPin + 1).end()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	type hold struct {
		pt viewPoint
		h  string
	}
	var todo []hold
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		var hs []string
		if json.Unmarshal(it.Value(), &hs) != nil {
			continue
		}
		for _, h := range hs {
			if strings.HasPrefix(h, openHolderPrefix) {
				todo = append(todo, hold{viewPoint{be32(k[2:]), be64(k[6:])}, h})
			}
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	for _, t := range todo {
		if err := s.UnpinEpoch(t.pt.lin, t.pt.epoch, t.h); err != nil {
			return err
		}
	}
	return nil
}
