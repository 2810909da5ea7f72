package store

import (
	"encoding/json"
	"fmt"
	"sort"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/snapfs/snapfs/internal/killpoint"
)

// Pins: a pin(lineage, epoch) record lists its holders (snapshot names,
// branch points). The in-place rule reads only the newest pin of a lineage.
const catPin byte = 'P'

func pinKey(lin uint32, epoch uint64) []byte {
	return keyBuf(make([]byte, 0, 16)).u8(tagCatalog).u8(catPin).u32(lin).u64(epoch).end()
}

// PinEpoch freezes the current epoch E of a lineage for holder and moves
// the lineage to E+1; the returned view (lin, E) sees the lineage exactly as
// it was. Buffered writes of the lineage are flushed first, so every write
// that returned before the call is in the view. This is the core of taking
// a snapshot; the snap package names and lists snapshots.
// mkOps, if not nil, returns meta records committed in the same batch (the
// snapshot's name), given the epoch being pinned. The returned duration is
// the pause: how long the lineage's writers were held off.
func (s *Store) PinEpoch(lin uint32, holder string, mkOps func(epoch uint64) []MetaOp) (View, time.Duration, error) {
	l, err := s.lineageOf(View{Lineage: lin})
	if err != nil {
		return View{}, 0, err
	}
	if err := s.meta.room(true); err != nil {
		return View{}, 0, fmt.Errorf("pin epoch of lineage %d: %w", lin, err)
	}
	if err := s.flushLineage(lin); err != nil {
		return View{}, 0, err
	}
	l.epochMu.Lock()
	start := time.Now()
	v, err := s.pinLocked(l, holder, mkOps)
	pause := time.Since(start)
	l.epochMu.Unlock()
	return v, pause, err
}

func (s *Store) pinLocked(l *lineage, holder string, mkOps func(epoch uint64) []MetaOp) (View, error) {
	lin := l.rec.ID
	// Anything written since the flush above is still buffered; seal it to
	// this epoch by flushing while the epoch is held (writers of the
	// lineage wait for the lock only in their commit).
	e := l.rec.Epoch
	holders, err := s.pinHolders(lin, e)
	if err != nil {
		return View{}, err
	}
	holders = append(holders, holder)
	rec := l.rec
	rec.Epoch = e + 1
	b := s.db.NewBatch()
	defer b.Close()
	hj, _ := json.Marshal(holders)
	lj, _ := json.Marshal(rec)
	_ = b.Set(pinKey(lin, e), hj, nil)
	_ = b.Set(catalogKey(catLineage, fmt.Sprint(lin)), lj, nil)
	if mkOps != nil {
		if err := applyMeta(b, mkOps(e)); err != nil {
			return View{}, err
		}
	}
	killpoint.Hit(killpoint.SnapshotPin)
	if err := b.Commit(pebble.Sync); err != nil {
		return View{}, fmt.Errorf("pin epoch %d of lineage %d: %w", e, lin, err)
	}
	// Readers of the catalog take s.cat; txns read the epoch under epochMu.
	s.cat.Lock()
	l.rec.Epoch = rec.Epoch
	s.cat.pins[viewPoint{lin, e}] = true
	s.cat.Unlock()
	l.lastPin = e
	return View{Lineage: lin, Epoch: e, ReadOnly: true}, nil
}

// pinHolders reads the holders of pin (lin, e).
func (s *Store) pinHolders(lin uint32, e uint64) ([]string, error) {
	v, c, err := s.db.Get(pinKey(lin, e))
	if err != nil {
		return nil, nil
	}
	defer c.Close()
	var hs []string
	if err := json.Unmarshal(v, &hs); err != nil {
		return nil, fmt.Errorf("pin %d@%d: %w", lin, e, errCorrupt)
	}
	return hs, nil
}

// Pins lists the pinned epochs of a lineage, oldest first.
func (s *Store) Pins(lin uint32) ([]uint64, error) {
	lo := keyBuf(nil).u8(tagCatalog).u8(catPin).u32(lin).end()
	hi := keyBuf(nil).u8(tagCatalog).u8(catPin).u32(lin + 1).end()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	defer it.Close()
	var out []uint64
	for ok := it.First(); ok; ok = it.Next() {
		out = append(out, be64(it.Key()[6:]))
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out, it.Error()
}

// ForkLineage makes a new writable lineage whose parent point is the pinned
// view from (a branch). The new lineage shares its parent's inode numbers
// and sees, for every key it never wrote, what from sees.
// The fork point is pinned for holder; mkOps, if not nil, returns meta
// records committed in the same batch, given the new live view.
func (s *Store) ForkLineage(from View, holder string, mkOps func(v View) []MetaOp) (View, error) {
	pl, err := s.lineageOf(from)
	if err != nil {
		return View{}, err
	}
	if from.Live() {
		return View{}, fmt.Errorf("fork a live view: pin an epoch first: %w", ErrInvalid)
	}
	s.cat.Lock()
	defer s.cat.Unlock()
	b := s.db.NewIndexedBatch()
	defer b.Close()
	linID, err := s.nextIDLocked(b, "lineage")
	if err != nil {
		return View{}, err
	}
	viewID, err := s.nextIDLocked(b, "view")
	if err != nil {
		return View{}, err
	}
	rec := lineageRec{ID: uint32(linID), Family: pl.rec.Family, Volume: pl.rec.Volume, Parent: pl.rec.ID,
		ParentEpoch: from.Epoch, Epoch: 1, ViewID: uint32(viewID)}
	lj, _ := json.Marshal(rec)
	_ = b.Set(catalogKey(catLineage, fmt.Sprint(linID)), lj, nil)
	_ = b.Merge(usedKey(rec.ID), counterDelta(pl.used.Load()), nil)
	_ = b.Merge(filesKey(rec.ID), counterDelta(pl.files.Load()), nil)
	holders, err := s.pinHolders(from.Lineage, from.Epoch)
	if err != nil {
		return View{}, err
	}
	hj, _ := json.Marshal(append(holders, holder))
	_ = b.Set(pinKey(from.Lineage, from.Epoch), hj, nil)
	v := View{ID: rec.ViewID, Lineage: rec.ID, Epoch: LiveEpoch}
	if mkOps != nil {
		if err := applyMeta(b, mkOps(v)); err != nil {
			return View{}, err
		}
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return View{}, fmt.Errorf("fork lineage %d@%d: %w", from.Lineage, from.Epoch, err)
	}
	l := &lineage{rec: rec, vol: pl.vol, parent: pl}
	l.used.Store(pl.used.Load())
	l.files.Store(pl.files.Load())
	s.cat.lineages[rec.ID] = l
	s.cat.views[rec.ViewID] = v
	s.cat.pins[viewPoint{from.Lineage, from.Epoch}] = true
	return v, nil
}

// flushLineage flushes every buffered inode of a lineage.
func (s *Store) flushLineage(lin uint32) error {
	var first error
	for _, st := range s.inodes.all() {
		if st.key.lin == lin {
			if err := s.flushInode(st, true); err != nil && first == nil {
				first = err
			}
		}
		s.inodes.release(st)
	}
	return first
}
