package store

import (
	"sort"

	"github.com/snapfs/snapfs/pool"
)

// scrubOrder returns the hashes of crefs in the order Scrub verifies them:
// by the location of their first copy, each member's records in pack and
// offset order (its disk is read front to back), the members interleaved
// in proportion to the bytes each holds (all disks are read at once and
// finish together). Chunks without a location come last, by hash.
func scrubOrder(crefs map[pool.Hash]chunkRefRec) []pool.Hash {
	byMember := map[uint16][]pool.Hash{}
	total := map[uint16]int64{}
	var none []pool.Hash
	for h, rec := range crefs {
		if len(rec.Locs) == 0 {
			none = append(none, h)
			continue
		}
		m := rec.Locs[0].Member
		byMember[m] = append(byMember[m], h)
		total[m] += int64(rec.Locs[0].Length)
	}
	var members []uint16
	for m, hs := range byMember {
		members = append(members, m)
		sort.Slice(hs, func(i, j int) bool {
			a, b := crefs[hs[i]].Locs[0], crefs[hs[j]].Locs[0]
			if a.Pack != b.Pack {
				return a.Pack < b.Pack
			}
			if a.Offset != b.Offset {
				return a.Offset < b.Offset
			}
			return string(hs[i][:]) < string(hs[j][:])
		})
	}
	sort.Slice(members, func(i, j int) bool { return members[i] < members[j] })
	out := make([]pool.Hash, 0, len(crefs))
	next := make([]int, len(members))   // by position in members
	done := make([]int64, len(members)) // bytes taken so far
	for len(out) < len(crefs)-len(none) {
		// Take from the member that is least far through its bytes after
		// its next record (ties: the lower member).
		best, bestFrac := -1, 0.0
		for i, m := range members {
			hs := byMember[m]
			if next[i] == len(hs) {
				continue
			}
			n := int64(crefs[hs[next[i]]].Locs[0].Length)
			frac := float64(done[i]+n) / float64(max(total[m], 1))
			if best < 0 || frac < bestFrac {
				best, bestFrac = i, frac
			}
		}
		h := byMember[members[best]][next[best]]
		next[best]++
		done[best] += int64(crefs[h].Locs[0].Length)
		out = append(out, h)
	}
	sortHashes(none)
	return append(out, none...)
}

// scrubAhead has the pool read the records of the chunks Scrub will verify
// next in the background (pool.Prefetch hints), up to window bytes of
// copies ahead of the chunk it is at, so that every member disk has reads
// queued while Scrub checksums what has arrived. The hints are sent from
// reached, in batches, as Scrub moves on.
type scrubAhead struct {
	p      *pool.Pool
	order  []pool.Hash
	crefs  map[pool.Hash]chunkRefRec
	sum    []int64 // sum[i] is the bytes of the copies of order[:i]
	issued int     // order[:issued] have been hinted
	window int64
	batch  int64
	locs   []pool.Location // the batch being hinted
}

const (
	scrubAheadWindow = 32 << 20
	scrubAheadBatch  = 4 << 20
)

func newScrubAhead(p *pool.Pool, order []pool.Hash, crefs map[pool.Hash]chunkRefRec) *scrubAhead {
	a := &scrubAhead{p: p, order: order, crefs: crefs, sum: make([]int64, len(order)+1),
		window: scrubAheadWindow, batch: scrubAheadBatch}
	for i, h := range order {
		a.sum[i+1] = a.sum[i]
		for _, l := range crefs[h].Locs {
			a.sum[i+1] += int64(l.Length)
		}
	}
	return a
}

// reached is called as Scrub turns to order[i]: it hints whole batches
// until window bytes past order[i] are hinted.
func (a *scrubAhead) reached(i int) {
	a.issued = max(a.issued, i)
	for a.issued < len(a.order) && a.sum[a.issued]-a.sum[i] < a.window {
		a.locs = a.locs[:0]
		for start := a.issued; a.issued < len(a.order) && a.sum[a.issued]-a.sum[start] < a.batch; a.issued++ {
			a.locs = append(a.locs, a.crefs[a.order[a.issued]].Locs...)
		}
		a.p.Prefetch(a.locs)
	}
}
