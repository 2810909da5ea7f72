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

// Pin counters: the lineage's files and used counters as committed when
// epoch e was pinned, which are those of the view (lin, e); written with
// the pin, deleted with it. A fork starts its own counters from them.
const catPinCounters byte = 'C'

func pinCountersKey(lin uint32, epoch uint64) []byte {
	return keyBuf(make([]byte, 0, 16)).u8(tagCatalog).u8(catPinCounters).u32(lin).u64(epoch).end()
}

// pinCounters is the value of a pin counters record: used, then files.
func pinCounters(used, files int64) []byte {
	return append(counterDelta(used), counterDelta(files)...)
}

// countersAt returns the files and used counters of the pinned view
// (lin, e), and false for a pin made before they were recorded.
func (s *Store) countersAt(lin uint32, e uint64) (used, files int64, ok bool) {
	v, c, err := s.db.Get(pinCountersKey(lin, e))
	if err != nil {
		return 0, 0, false
	}
	defer c.Close()
	if len(v) != 16 {
		return 0, 0, false
	}
	return decodeCounter(v[:8]), decodeCounter(v[8:]), true
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
	vs, pause, err := s.PinEpochs([]PinRequest{{Lineage: lin, Holder: holder, MkOps: mkOps}})
	if err != nil {
		return View{}, pause, err
	}
	return vs[0], pause, nil
}

// PinRequest asks PinEpochs to pin the current epoch of one lineage.
type PinRequest struct {
	Lineage uint32
	Holder  string
	// MkOps, if not nil, returns meta records for the batch, given the
	// epoch being pinned.
	MkOps func(epoch uint64) []MetaOp
}

// PinEpochs pins the current epoch of several lineages atomically: one
// batch pins them all, taken with every lineage's epoch lock held (locked
// in lineage id order, so concurrent calls cannot deadlock). The views are
// returned in the order of reqs. A lineage may appear once.
//
// The pause holds no I/O wait: the batch is committed without a WAL sync
// inside the locks, and synced after they are released, before the call
// returns. A batch of the next epoch cannot become durable before it, as
// the WAL is written in commit order, so a crash can lose an
// unacknowledged pin but never keep versions of an epoch without its pin.
func (s *Store) PinEpochs(reqs []PinRequest) ([]View, time.Duration, error) {
	began := time.Now()
	ls := make([]*lineage, len(reqs))
	order := make([]int, len(reqs))
	for i, r := range reqs {
		l, err := s.lineageOf(View{Lineage: r.Lineage})
		if err != nil {
			return nil, 0, err
		}
		ls[i], order[i] = l, i
	}
	sort.Slice(order, func(a, b int) bool { return reqs[order[a]].Lineage < reqs[order[b]].Lineage })
	for i := 1; i < len(order); i++ {
		if reqs[order[i]].Lineage == reqs[order[i-1]].Lineage {
			return nil, 0, fmt.Errorf("pin lineage %d twice in one call: %w", reqs[order[i]].Lineage, ErrInvalid)
		}
	}
	if err := s.meta.room(true); err != nil {
		return nil, 0, fmt.Errorf("pin epochs: %w", err)
	}
	for _, r := range reqs {
		if err := s.flushLineage(r.Lineage); err != nil {
			return nil, 0, err
		}
	}
	for _, i := range order {
		ls[i].epochMu.Lock()
	}
	start := time.Now()
	vs, err := s.pinLocked(ls, reqs)
	pause := time.Since(start)
	for _, i := range order {
		ls[i].epochMu.Unlock()
	}
	if err == nil {
		err = s.syncWAL()
	}
	if err != nil {
		return nil, pause, err
	}
	s.pinned(began, pause)
	return vs, pause, nil
}

// pinLocked pins the current epoch of each lineage of ls (epoch locks held)
// in one batch.
func (s *Store) pinLocked(ls []*lineage, reqs []PinRequest) ([]View, error) {
	b := s.db.NewBatch()
	defer b.Close()
	recs := make([]lineageRec, len(ls))
	for i, l := range ls {
		lin := l.rec.ID
		e := l.rec.Epoch
		holders, err := s.pinHolders(lin, e)
		if err != nil {
			return nil, err
		}
		holders = append(holders, reqs[i].Holder)
		recs[i] = l.rec
		recs[i].Epoch = e + 1
		hj, _ := json.Marshal(holders)
		lj, _ := json.Marshal(recs[i])
		_ = b.Set(pinKey(lin, e), hj, nil)
		// No batch of the lineage commits while its epoch lock is held:
		// the committed counters are those of the view being pinned.
		_ = b.Set(pinCountersKey(lin, e), pinCounters(s.readCounter(usedKey(lin)), s.readCounter(filesKey(lin))), nil)
		_ = b.Set(catalogKey(catLineage, fmt.Sprint(lin)), lj, nil)
		if reqs[i].MkOps != nil {
			if err := applyMeta(b, reqs[i].MkOps(e)); err != nil {
				return nil, err
			}
		}
	}
	killpoint.Hit(killpoint.SnapshotPin)
	if err := b.Commit(pebble.NoSync); err != nil {
		return nil, fmt.Errorf("pin epochs: %w", err)
	}
	vs := make([]View, len(ls))
	// Readers of the catalog take s.cat; txns read the epoch under epochMu.
	s.cat.Lock()
	for i, l := range ls {
		e := l.rec.Epoch
		l.rec.Epoch = recs[i].Epoch
		s.cat.pins[viewPoint{l.rec.ID, e}] = true
		l.lastPin = e
		vs[i] = View{Lineage: l.rec.ID, Epoch: e, ReadOnly: true}
	}
	s.cat.Unlock()
	return vs, nil
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
		s.stats.catalogReads.Add(1)
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
	// The branch starts with the counters of its fork point, not the
	// parent's live ones (which moved on if the parent was written since).
	used, files, ok := s.countersAt(from.Lineage, from.Epoch)
	if !ok {
		used, files = pl.used.Load(), pl.files.Load()
	}
	_ = b.Merge(usedKey(rec.ID), counterDelta(used), nil)
	_ = b.Merge(filesKey(rec.ID), counterDelta(files), nil)
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
	l.used.Store(used)
	l.files.Store(files)
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
