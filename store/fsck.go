package store

import (
	"errors"
	"fmt"
	"sort"

	"github.com/cockroachdb/pebble/v2"
	"github.com/snapfs/snapfs/pool"
)

// FsckOptions configure Fsck.
type FsckOptions struct {
	// Repair rewrites wrong chunkref counts, recreates the chunkref of a
	// dangling hash whose record is still in a pack, and frees leaked
	// pack records.
	Repair bool
	// Progress, if set, is called while the pack records are scanned
	// (every few hundred records, and at the end of each scan).
	Progress func(ScanProgress)
}

// FsckReport is what Fsck found and changed.
type FsckReport struct {
	Problems []string `json:"problems"` // one line each, sorted
	Repaired []string `json:"repaired"` // one line per change
	Chunks   int64    `json:"chunks"`   // chunkref records
	Records  int64    `json:"records"`  // pack records scanned
	Leaked   int64    `json:"leaked"`   // records no chunkref references
	// Unpunched counts unreferenced records on members that cannot punch
	// holes (btrfs, or the probe failed): freed records stay there until
	// pool repack deletes their pack, so they are not problems.
	Unpunched int64 `json:"unpunched"`
	// Remaining are the problems a repair run did not fix (a second
	// check after the repair); without Repair it equals Problems.
	Remaining []string `json:"remaining"`
}

// Fsck runs Check and the full pack-versus-chunkref scan (DESIGN-NOTES
// 15): every valid record in every pack of every live member must be a
// location of its hash's chunkref, or queued in freeq. With Repair it
// fixes what it can (see FsckOptions) and checks again.
//
// It may run on an open, busy store: counts are compared on one Pebble
// snapshot, and a repair applies the discrepancy it saw to the current
// count under the hash's chunkref lock (every reference change moves the
// count with it in one batch, so the discrepancy is stable); a leak is
// freed only if, under that lock, the hash is not in flight and its
// chunkref still does not name the record.
func (s *Store) Fsck(o FsckOptions) (FsckReport, error) {
	var r FsckReport
	probs, err := s.fsckFind(&r, o.Repair, o.Progress)
	if err != nil {
		return r, err
	}
	r.Problems = probs
	r.Remaining = probs
	if !o.Repair || len(r.Repaired) == 0 {
		return r, nil
	}
	var again FsckReport
	if r.Remaining, err = s.fsckFind(&again, false, o.Progress); err != nil {
		return r, err
	}
	return r, nil
}

// fsckFind collects problems and, with repair, fixes them.
func (s *Store) fsckFind(r *FsckReport, repair bool, progress func(ScanProgress)) ([]string, error) {
	var probs []string
	add := func(f string, a ...any) { probs = append(probs, fmt.Sprintf(f, a...)) }
	if err := s.Check(); err != nil {
		var ce *CheckError
		if !errors.As(err, &ce) {
			return nil, err
		}
		probs = append(probs, ce.Problems...)
	}
	snap := s.db.NewSnapshot()
	defer snap.Close()
	refs, err := countRefsIn(snap)
	if err != nil {
		return nil, err
	}
	crefs, err := chunkRefsIn(snap)
	if err != nil {
		return nil, err
	}
	queued, err := freeQLocsIn(snap)
	if err != nil {
		return nil, err
	}
	r.Chunks = int64(len(crefs))

	// Every location some chunkref or freeq entry names.
	named := map[pool.Location]bool{}
	for _, rec := range crefs {
		for _, l := range rec.Locs {
			named[l] = true
		}
	}
	for l := range queued {
		named[l] = true
	}
	// Leaks: valid records nobody names.
	meter := newScanMeter(progress, named)
	leaks := map[pool.Hash][]pool.Location{}
	cfg := s.pool.Config()
	for _, mc := range cfg.Members {
		if mc.Removed {
			continue
		}
		err := s.pool.Records(mc.Index, func(tr pool.TailRecord) bool {
			r.Records++
			meter.record(tr.Loc)
			switch {
			case named[tr.Loc]:
			case !s.pool.CanPunch(mc.Index):
				r.Unpunched++
			default:
				leaks[tr.Hash] = append(leaks[tr.Hash], tr.Loc)
			}
			return true
		})
		if errors.Is(err, pool.ErrMemberGone) {
			add("member %d (%s) is gone: its records were not scanned", mc.Index, mc.Path)
			continue
		}
		if err != nil {
			return nil, err
		}
	}
	meter.finish()

	// A record appended since the snapshot (by a flush in flight or one
	// that committed meanwhile) is no leak: check the live state.
	for h, locs := range leaks {
		if s.refs.busy(h) {
			delete(leaks, h)
			continue
		}
		rec, _, err := getChunkRefFrom(s.db, h)
		if err != nil {
			return nil, err
		}
		var still []pool.Location
		for _, l := range locs {
			if !sameLocs(rec.Locs, []pool.Location{l}) {
				still = append(still, l)
			}
		}
		if len(still) == 0 {
			delete(leaks, h)
		} else {
			leaks[h] = still
		}
	}

	// Dangling hashes whose bytes are still in a pack can be re-pointed.
	hs := make([]pool.Hash, 0, len(refs))
	for h := range refs {
		hs = append(hs, h)
	}
	sortHashes(hs)
	for _, h := range hs {
		if _, ok := crefs[h]; ok || !repair || len(leaks[h]) == 0 {
			continue
		}
		locs := leaks[h]
		if done, err := s.fsckRelink(h, uint64(refs[h]), locs); err != nil {
			return nil, err
		} else if done {
			r.Repaired = append(r.Repaired, fmt.Sprintf("chunk %x: recreated chunkref (count %d) at %d location(s) found in packs", h[:8], refs[h], len(locs)))
			delete(leaks, h)
		}
	}
	// Wrong counts.
	hs = hs[:0]
	for h := range crefs {
		hs = append(hs, h)
	}
	sortHashes(hs)
	for _, h := range hs {
		d := int64(crefs[h].Count) - refs[h]
		if d == 0 || !repair {
			continue
		}
		msg, err := s.fsckRecount(h, d)
		if err != nil {
			return nil, err
		}
		if msg != "" {
			r.Repaired = append(r.Repaired, msg)
		}
	}
	// Leaked records.
	hs = hs[:0]
	for h := range leaks {
		hs = append(hs, h)
	}
	sortHashes(hs)
	for _, h := range hs {
		for _, l := range leaks[h] {
			r.Leaked++
			add("record %v of chunk %x is leaked: no chunkref references it", l, h[:8])
		}
		if !repair {
			continue
		}
		n, err := s.fsckFreeLeaks(h, leaks[h])
		if err != nil {
			return nil, err
		}
		if n > 0 {
			r.Repaired = append(r.Repaired, fmt.Sprintf("chunk %x: freed %d leaked record(s)", h[:8], n))
		}
	}
	sort.Strings(probs)
	return probs, nil
}

func sortHashes(hs []pool.Hash) {
	sort.Slice(hs, func(i, j int) bool { return string(hs[i][:]) < string(hs[j][:]) })
}

// lockHash takes the chunkref lock of h and returns its unlock.
func (s *Store) lockHash(h pool.Hash) func() {
	mu := &s.refs.stripes[s.refs.stripe(h)]
	mu.Lock()
	return mu.Unlock
}

// fsckRecount moves h's count by -d (the discrepancy seen on the snapshot).
func (s *Store) fsckRecount(h pool.Hash, d int64) (string, error) {
	unlock := s.lockHash(h)
	defer unlock()
	rec, found, err := getChunkRefFrom(s.db, h)
	if err != nil || !found {
		return "", err
	}
	want := int64(rec.Count) - d
	b := s.db.NewBatch()
	defer b.Close()
	var msg string
	if want <= 0 {
		if err := b.Delete(chunkRefKey(h), nil); err != nil {
			return "", err
		}
		n := s.allocFreeSeq()
		defer s.releaseFreeSeqs([]uint64{n})
		if err := b.Set(freeQKey(n), freeQRec{Hash: h, Locs: rec.Locs}.encode(), nil); err != nil {
			return "", err
		}
		msg = fmt.Sprintf("chunk %x: count %d but no references: chunkref removed, %d record(s) queued to free", h[:8], rec.Count, len(rec.Locs))
	} else {
		old := rec.Count
		rec.Count = uint64(want)
		if err := b.Set(chunkRefKey(h), rec.encode(), nil); err != nil {
			return "", err
		}
		msg = fmt.Sprintf("chunk %x: count %d set to %d", h[:8], old, want)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return "", fmt.Errorf("fsck: commit: %w", err)
	}
	return msg, nil
}

// fsckRelink recreates the chunkref of dangling hash h over locs.
func (s *Store) fsckRelink(h pool.Hash, count uint64, locs []pool.Location) (bool, error) {
	unlock := s.lockHash(h)
	defer unlock()
	if s.refs.busy(h) {
		return false, nil
	}
	if _, found, err := getChunkRefFrom(s.db, h); err != nil || found {
		return false, err
	}
	var good []pool.Location
	for _, l := range locs {
		if _, err := s.pool.Read(l, h, nil); err == nil {
			good = append(good, l)
		}
	}
	if len(good) == 0 {
		return false, nil
	}
	rec := chunkRefRec{Count: count, Length: good[0].Length, Locs: good}
	if err := s.db.Set(chunkRefKey(h), rec.encode(), pebble.Sync); err != nil {
		return false, fmt.Errorf("fsck: %w", err)
	}
	return true, nil
}

// fsckFreeLeaks frees the records of h at locs that, under h's lock, are
// still unnamed and not in flight.
func (s *Store) fsckFreeLeaks(h pool.Hash, locs []pool.Location) (int, error) {
	unlock := s.lockHash(h)
	defer unlock()
	if s.refs.busy(h) {
		return 0, nil
	}
	rec, _, err := getChunkRefFrom(s.db, h)
	if err != nil {
		return 0, err
	}
	queued, err := freeQLocsIn(s.db)
	if err != nil {
		return 0, err
	}
	var free []pool.Location
	for _, l := range locs {
		if !queued[l] && !sameLocs(rec.Locs, []pool.Location{l}) {
			free = append(free, l)
		}
	}
	if len(free) == 0 {
		return 0, nil
	}
	if err := s.pool.Free(free); err != nil {
		return 0, fmt.Errorf("fsck: %w", err)
	}
	return len(free), nil
}

// countRefsIn counts chunk versions per hash in r.
func countRefsIn(r pebble.Reader) (map[pool.Hash]int64, error) {
	refs := map[pool.Hash]int64{}
	lo, hi := tagBounds(tagChunk)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	for ok := it.First(); ok; ok = it.Next() {
		if c, err := decodeChunk(it.Value()); err == nil && c.Kind == chunkData {
			refs[c.Hash]++
		}
	}
	if err := it.Close(); err != nil {
		return nil, err
	}
	return refs, countStagedIn(r, refs)
}

// chunkRefsIn reads every chunkref record of r (undecodable ones are
// left out; Check reports them).
func chunkRefsIn(r pebble.Reader) (map[pool.Hash]chunkRefRec, error) {
	out := map[pool.Hash]chunkRefRec{}
	lo, hi := tagBounds(tagChunkRef)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	for ok := it.First(); ok; ok = it.Next() {
		var h pool.Hash
		copy(h[:], it.Key()[1:33])
		if rec, err := decodeChunkRef(it.Value()); err == nil {
			out[h] = rec
		}
	}
	return out, it.Close()
}

// freeQLocsIn returns every location queued in freeq or parked (waiting
// for its member to come back, health.go).
func freeQLocsIn(r pebble.Reader) (map[pool.Location]bool, error) {
	out := map[pool.Location]bool{}
	for _, tag := range []byte{tagFreeQ, tagParked} {
		lo, hi := tagBounds(tag)
		it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			return nil, err
		}
		for ok := it.First(); ok; ok = it.Next() {
			if rec, err := decodeFreeQ(it.Value()); err == nil {
				for _, l := range rec.Locs {
					out[l] = true
				}
			}
		}
		if err := it.Close(); err != nil {
			return nil, err
		}
	}
	return out, nil
}
