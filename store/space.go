package store

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sort"

	"github.com/cockroachdb/pebble/v2"
)

// Space accounting (DESIGN.md "Space accounting", DESIGN-NOTES 13) is kept
// in commutative counters, merged (counterMerger) in the same batch as the
// versions they count, so no figure ever needs a rescan:
//
//	born(L, e)          logical bytes of L's stored versions born at epoch e
//	dlspace(L, k, b)    logical bytes of L's deadlist entries killed at k, born at b
//	shadow(L, e)        logical bytes of inherited versions (reached through
//	                    L's parent point) that L's own versions hide from e on
//
// The logical bytes of a version (versionBytes) are what it holds of file
// data: a data chunk's stored length (trailing zeros are never stored), 0 for
// a hole; an inline file's data length in its inode record; 0 for every other
// record (directories, names, xattrs, symlinks, tombstones). Metadata is not
// counted.
//
// With P < E < N neighbouring pins of L (N the current epoch when E is the
// newest), the figures of snapshot (L, E) are:
//
//	referenced(E) = base(L) + Σ born(e ≤ E) − Σ dlspace(k ≤ E) − Σ shadow(e ≤ E)
//	written(E)    = Σ born(e) over e ∈ (P, E]
//	unique(E)     = Σ dlspace(k, b) over k ∈ (E, N], b ∈ (P, E]
//
// referenced counts every version the view resolves: a version born at b
// and killed at k is visible in (L, E) exactly when b ≤ E < k. base(L) is 0
// for a volume and, for a branch, the referenced bytes of its parent point:
// a branch view shows what it inherited minus what its own versions shadow.
// written counts versions born since the previous pin; all of them are
// visible at E (one born after the newest pin and superseded before the next
// was overwritten in place). unique is exactly what reclaim frees when E's
// last holder goes (reclaim.go walks the same bounds), in logical bytes:
// where chunks are deduplicated the pool frees less. A version reclaim frees
// leaves both born and dlspace; a destroyed branch drops all of its
// counters (dropLineageKeys); a rollback to R drops those after R
// (dropSpaceAfter), in the batch that discards what they count.
//
// A branch's shadow counter is taken at the epoch of its first own version
// of a key that its parent point resolves (a write, or a tombstone or hole
// hiding it). If reclaim later frees that first version, its successor
// hides the key from a later epoch, but no pin lies between the two (that
// is why it was freed), so every existing view still sees the same thing.
// Referenced bytes are stored bytes, not file sizes: holes and trailing
// zeros of a chunk count nothing, a hard-linked file counts once, and a
// file unlinked while open counts until its last close.
//
// Counters are only ever added to, never tested for zero (DESIGN-NOTES 4);
// the dlspace counters a finished reclaim has emptied are deleted with its
// intent. Buffered writes are counted when they are flushed.
//
// Reading: Space passes once over a lineage's counters (O(epochs), one
// born counter per epoch plus a dlspace counter per killed/born pair) and
// gives every pin's figures; SnapshotSpace reads only the counters between
// one pin's neighbours, because referenced(E) never changes while E is
// pinned (nothing it resolves is overwritten in place or freed) and is
// cached in memory (Store.cat.spaceRef) by the first pass.

// Space counter kinds (the key's kind byte). Part of the on-disk format.
const (
	spaceBorn   byte = 'B'
	spaceDead   byte = 'D'
	spaceShadow byte = 'S'
)

// spaceCell names one counter of the txn's lineage.
type spaceCell struct {
	epoch uint64
	kind  byte
	born  uint64
}

// addSpace records a change of d logical bytes in one counter of the txn's
// lineage; commit merges the sums.
func (t *txn) addSpace(epoch uint64, kind byte, born uint64, d int64) {
	if d == 0 {
		return
	}
	if t.space == nil {
		t.space = map[spaceCell]int64{}
	}
	t.space[spaceCell{epoch, kind, born}] += d
}

// mergeSpace writes the txn's counter changes into its batch.
func (t *txn) mergeSpace() {
	for c, d := range t.space {
		if d != 0 {
			_ = t.b.Merge(spaceKey(t.l.rec.ID, c.epoch, c.kind, c.born), counterDelta(d), nil)
		}
	}
}

// shadowInherited counts, at the current epoch, the bytes of the version an
// ancestor view resolves for prefix p, which a first own version of p is
// about to hide. Only chunk and inode records hold bytes, so other keys cost
// no lookup; neither does a volume's own lineage.
func (t *txn) shadowInherited(p []byte) error {
	if len(t.chain) < 2 || (p[0] != tagChunk && p[0] != tagInode) {
		return nil
	}
	ver, err := resolve(t, t.chain[1:], func(lin uint32) []byte { return relineage(p, lin) })
	if err != nil {
		return fmt.Errorf("read inherited %s: %w", describeKey(p), err)
	}
	if ver.found {
		t.addSpace(t.cur, spaceShadow, 0, versionBytes(p, ver.value))
	}
	return nil
}

// relineage returns versioned prefix p with its lineage field set to lin
// (every versioned key holds its lineage in bytes 1..4).
func relineage(p []byte, lin uint32) []byte {
	q := append([]byte(nil), p...)
	binary.BigEndian.PutUint32(q[1:], lin)
	return q
}

// versionBytes returns the logical bytes of file data a version holds (see
// the top of this file). A value that does not decode holds none.
func versionBytes(p, value []byte) int64 {
	switch p[0] {
	case tagChunk:
		// A data record: kind, 32-byte hash, 4-byte length, then hints.
		if len(value) >= 37 && value[0] == chunkData {
			return int64(binary.BigEndian.Uint32(value[33:]))
		}
	case tagInode:
		return inlineBytes(value)
	}
	return 0
}

// inlineBytes returns the length of an inode record's inline data (0 for a
// tombstone or a file whose data lives in chunks) without decoding it.
func inlineBytes(b []byte) int64 {
	if len(b) == 0 || b[0] != inodeRecVersion {
		return 0
	}
	d := decoder{b: b[1:]}
	flags := d.uvarint()
	if flags&(inodeTombstone|inodeInline) != inodeInline {
		return 0
	}
	for i := 0; i < 14; i++ { // Mode .. Blocks
		d.uvarint()
	}
	d.bytes() // Target
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		return 0
	}
	return int64(n)
}

// SpaceFigures are the logical bytes of one view (see the top of space.go).
type SpaceFigures struct {
	// Referenced is the logical bytes of file data the view resolves.
	Referenced int64
	// Written is the bytes of versions born since the previous pin of the
	// lineage (for the live view: since the newest pin).
	Written int64
	// Unique is what destroying the view frees: for a snapshot, what
	// removing its pin frees (the pin's other holders, such as branch
	// points, keep it all); for the live view of a branch, everything the
	// branch stores (its live versions and what its snapshots keep).
	Unique int64
}

// PinSpace is the figures of one pinned epoch.
type PinSpace struct {
	Epoch   uint64
	Holders []string // the pin's holders: snapshot names, branch points
	SpaceFigures
}

// LineageSpace is the space accounting of one lineage.
type LineageSpace struct {
	Lineage uint32
	Epoch   uint64     // the current epoch
	Pins    []PinSpace // oldest first
	Live    SpaceFigures
	// Snapshots is the logical bytes held only by the lineage's snapshots:
	// every superseded version a pin keeps, what destroying all of them
	// would free.
	Snapshots int64
}

// Pin returns the figures of pinned epoch e.
func (ls LineageSpace) Pin(e uint64) (PinSpace, bool) {
	i := sort.Search(len(ls.Pins), func(i int) bool { return ls.Pins[i].Epoch >= e })
	if i < len(ls.Pins) && ls.Pins[i].Epoch == e {
		return ls.Pins[i], true
	}
	return PinSpace{}, false
}

// Space returns the space figures of lineage lin: every pinned epoch and
// the live view. It reads the lineage's counters once (and, for a branch,
// its ancestors' up to their parent points): O(epochs), never a scan of
// versions.
func (s *Store) Space(lin uint32) (LineageSpace, error) {
	s.cat.Lock()
	l := s.cat.lineages[lin]
	s.cat.Unlock()
	if l == nil {
		return LineageSpace{}, fmt.Errorf("lineage %d: %w", lin, ErrNotFound)
	}
	snap := s.db.NewSnapshot()
	defer snap.Close()
	return s.lineageSpace(snap, l, true)
}

// lineageSpace computes the figures of lineage l from the counters and pins
// r holds; with cache, it remembers the referenced bytes of the pins.
func (s *Store) lineageSpace(r reader, l *lineage, cache bool) (LineageSpace, error) {
	s.cat.Lock()
	lin, cur := l.rec.ID, l.rec.Epoch
	s.cat.Unlock()
	pins, err := pinsFrom(r, lin)
	if err != nil {
		return LineageSpace{}, err
	}
	base, err := s.spaceBase(r, l)
	if err != nil {
		return LineageSpace{}, err
	}
	ls := LineageSpace{Lineage: lin, Epoch: cur}
	for _, p := range pins {
		ls.Pins = append(ls.Pins, PinSpace{Epoch: p.epoch, Holders: p.holders})
	}
	epochs := make([]uint64, len(pins))
	for i, p := range pins {
		epochs[i] = p.epoch
	}
	// interval(k) is the index of the newest pin below epoch k, or -1.
	interval := func(k uint64) int {
		return sort.Search(len(epochs), func(i int) bool { return epochs[i] >= k }) - 1
	}
	ref, next := base, 0
	var own int64
	err = scanSpace(r, lin, LiveEpoch, func(e uint64, kind byte, born uint64, v int64) {
		for next < len(epochs) && epochs[next] < e {
			ls.Pins[next].Referenced = ref
			next++
		}
		switch kind {
		case spaceBorn:
			ref += v
			own += v
			// born at e ∈ (P, E]: written in the interval the pin E closes
			if j := sort.Search(len(epochs), func(i int) bool { return epochs[i] >= e }); j < len(epochs) {
				ls.Pins[j].Written += v
			} else {
				ls.Live.Written += v
			}
		case spaceDead:
			ref -= v
			ls.Snapshots += v
			// killed at e in (E, N]: E is the newest pin below e.
			if i := interval(e); i >= 0 {
				p := uint64(0)
				if i > 0 {
					p = epochs[i-1]
				}
				if born > p && born <= epochs[i] {
					ls.Pins[i].Unique += v
				}
			}
		case spaceShadow:
			ref -= v
		}
	})
	if err != nil {
		return LineageSpace{}, err
	}
	for ; next < len(epochs); next++ {
		ls.Pins[next].Referenced = ref
	}
	s.cat.Lock()
	for _, p := range ls.Pins {
		if cache && s.cat.pins[viewPoint{lin, p.Epoch}] {
			s.cat.spaceRef[viewPoint{lin, p.Epoch}] = p.Referenced
		}
	}
	s.cat.Unlock()
	ls.Live.Referenced = ref
	if l.parent != nil {
		ls.Live.Unique = own
	}
	return ls, nil
}

// SnapshotSpace returns the figures of pinned epoch e of lineage lin. It
// reads only the counters between e's neighbouring pins: the referenced
// bytes of a pinned epoch never change while it is pinned (the versions
// it resolves are neither overwritten in place nor freed), so they are
// computed once per lineage pass (Space) and cached.
func (s *Store) SnapshotSpace(lin uint32, e uint64) (PinSpace, error) {
	s.cat.Lock()
	l := s.cat.lineages[lin]
	pinned := s.cat.pins[viewPoint{lin, e}]
	ref, cached := s.cat.spaceRef[viewPoint{lin, e}]
	var prev, next uint64
	if l != nil {
		next = l.rec.Epoch
		for pt := range s.cat.pins {
			switch {
			case pt.lin != lin:
			case pt.epoch < e:
				prev = max(prev, pt.epoch)
			case pt.epoch > e:
				next = min(next, pt.epoch)
			}
		}
	}
	s.cat.Unlock()
	if l == nil || !pinned {
		return PinSpace{}, fmt.Errorf("pin %d@%d: %w", lin, e, ErrNotFound)
	}
	if !cached {
		ls, err := s.Space(lin)
		if err != nil {
			return PinSpace{}, err
		}
		if p, ok := ls.Pin(e); ok {
			return p, nil
		}
		return PinSpace{}, fmt.Errorf("pin %d@%d: %w", lin, e, ErrNotFound)
	}
	snap := s.db.NewSnapshot()
	defer snap.Close()
	ps := PinSpace{Epoch: e, SpaceFigures: SpaceFigures{Referenced: ref}}
	var err error
	if ps.Holders, err = holdersFrom(snap, lin, e); err != nil {
		return PinSpace{}, err
	}
	// written: born in (P, E]; unique: killed in (E, N], born in (P, E].
	err = scanSpaceRange(snap, lin, prev+1, next, func(ep uint64, kind byte, born uint64, v int64) {
		switch {
		case kind == spaceBorn && ep <= e:
			ps.Written += v
		case kind == spaceDead && ep > e && born > prev && born <= e:
			ps.Unique += v
		}
	})
	if err != nil {
		return PinSpace{}, err
	}
	return ps, nil
}

// holdersFrom reads the holders of pin (lin, e).
func holdersFrom(r reader, lin uint32, e uint64) ([]string, error) {
	pins, err := pinsFromRange(r, lin, e, e)
	if err != nil || len(pins) == 0 {
		return nil, err
	}
	return pins[0].holders, nil
}

// spaceBase returns what lineage l inherits: the referenced bytes of its
// parent point (0 for a volume's lineage), cached once known.
func (s *Store) spaceBase(r reader, l *lineage) (int64, error) {
	if l.parent == nil {
		return 0, nil
	}
	pt := viewPoint{l.parent.rec.ID, l.rec.ParentEpoch}
	s.cat.Lock()
	ref, ok := s.cat.spaceRef[pt]
	s.cat.Unlock()
	if ok {
		return ref, nil
	}
	base, err := s.spaceBase(r, l.parent)
	if err != nil {
		return 0, err
	}
	err = scanSpace(r, pt.lin, pt.epoch, func(_ uint64, kind byte, _ uint64, v int64) {
		if kind == spaceBorn {
			base += v
		} else {
			base -= v
		}
	})
	if err != nil {
		return 0, err
	}
	return base, nil
}

// scanSpace calls fn for every counter of lineage lin at epochs up to
// last, in key order (by epoch).
func scanSpace(r reader, lin uint32, last uint64, fn func(epoch uint64, kind byte, born uint64, v int64)) error {
	return scanSpaceRange(r, lin, 0, last, fn)
}

// scanSpaceRange calls fn for every counter of lineage lin at epochs in
// [first, last], in key order.
func scanSpaceRange(r reader, lin uint32, first, last uint64, fn func(epoch uint64, kind byte, born uint64, v int64)) error {
	hi := spaceFrom(lin+1, 0)
	if last < LiveEpoch {
		hi = spaceFrom(lin, last+1)
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: spaceFrom(lin, first), UpperBound: hi})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != spaceKeyLen+1 {
			it.Close()
			return fmt.Errorf("space counter %x: %w", k, errCorrupt)
		}
		fn(be64(k[5:]), k[13], be64(k[14:]), decodeCounter(it.Value()))
	}
	return it.Close()
}

// dropSpaceAfter removes, in batch b, every space counter of lineage lin
// at epochs after r: born and shadow counters of versions born after r and
// dlspace counters of entries killed after r. Rollback to (lin, r) calls it
// in the batch that masks (r, cur]: the versions born after r go without
// being counted again, and the deadlist entries killed after r but born at
// or before r are live again. Whatever later frees those masked versions
// must therefore not decrement their counters a second time.
func dropSpaceAfter(b *pebble.Batch, lin uint32, r uint64) error {
	return b.DeleteRange(spaceFrom(lin, r+1), spaceFrom(lin+1, 0), nil)
}

// dropReclaimedSpace deletes, in batch b, the dlspace counters a finished
// reclaim walk emptied: killed-at in (E, N], born-at after P. Nothing adds
// to them once the pin is gone (a new deadlist entry is born at or before
// the newest remaining pin, and killed at the current epoch).
func dropReclaimedSpace(r reader, b *pebble.Batch, in reclaimIntent) error {
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: spaceFrom(in.Lin, in.E+1), UpperBound: spaceFrom(in.Lin, in.N+1)})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) == spaceKeyLen+1 && k[13] == spaceDead && be64(k[14:]) > in.P {
			_ = b.Delete(append([]byte(nil), k...), nil)
		}
	}
	return it.Close()
}

// pinEntry is one pin read from the catalog.
type pinEntry struct {
	epoch   uint64
	holders []string
}

// pinsFrom reads the pins of a lineage with their holders, oldest first.
func pinsFrom(r reader, lin uint32) ([]pinEntry, error) {
	return pinsFromRange(r, lin, 0, LiveEpoch)
}

// pinsFromRange reads the pins of a lineage at epochs in [first, last].
func pinsFromRange(r reader, lin uint32, first, last uint64) ([]pinEntry, error) {
	lo := keyBuf(nil).u8(tagCatalog).u8(catPin).u32(lin).u64(first).end()
	hi := keyBuf(nil).u8(tagCatalog).u8(catPin).u32(lin + 1).end()
	if last < LiveEpoch {
		hi = keyBuf(nil).u8(tagCatalog).u8(catPin).u32(lin).u64(last + 1).end()
	}
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	var out []pinEntry
	for ok := it.First(); ok; ok = it.Next() {
		p := pinEntry{epoch: be64(it.Key()[6:])}
		if err := json.Unmarshal(it.Value(), &p.holders); err != nil {
			it.Close()
			return nil, fmt.Errorf("pin %d@%d: %w", lin, p.epoch, errCorrupt)
		}
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].epoch < out[j].epoch })
	return out, it.Close()
}
