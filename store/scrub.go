package store

import (
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/snapfs/snapfs/pool"
	"github.com/zeebo/blake3"
)

// ScrubOptions configure Scrub.
type ScrubOptions struct {
	// NoRepair only verifies.
	NoRepair bool
	// Progress, if set, is called after each chunk with the running totals.
	Progress func(ScrubReport)
}

// ScrubReport counts what Scrub verified and fixed.
type ScrubReport struct {
	Chunks       int64         `json:"chunks"`       // chunkref records verified
	Total        int64         `json:"total"`        // chunkref records when the scrub started
	Copies       int64         `json:"copies"`       // copies read
	Bytes        int64         `json:"bytes"`        // payload bytes read
	Bad          int64         `json:"bad"`          // copies that failed (CRC, hash, read error, gone member)
	Repaired     int64         `json:"repaired"`     // bad copies rewritten from a good one
	Unrepairable int64         `json:"unrepairable"` // chunks with no good copy
	Damaged      []string      `json:"damaged"`      // one line per bad copy not repaired
	Elapsed      time.Duration `json:"elapsed_ns"`
}

// Scrub reads every copy of every referenced record, checks its CRC (in
// pool.Read) and its BLAKE3 content hash, and, unless NoRepair, replaces
// each bad copy of a chunk that has a good one: a fresh copy is appended
// on a healthy member in a failure domain none of the good copies uses,
// made durable, swapped into the chunkref under the hash's lock in one
// synced batch, and only then is the bad location freed. A chunk with no
// good copy is counted unrepairable. It runs on an open store.
//
// It goes through the chunks in disk order (scrubOrder), every member at
// once, with the reads of the next ones queued ahead (scrubAhead): in hash
// order one copy was read at a time from a random place, and a scrub ran
// at a fraction of the disks' rate.
func (s *Store) Scrub(o ScrubOptions) (ScrubReport, error) {
	start := time.Now()
	var r ScrubReport
	snap := s.db.NewSnapshot()
	crefs, err := chunkRefsIn(snap)
	snap.Close()
	if err != nil {
		return r, err
	}
	// In disk order, the members read at once, with reads queued ahead.
	hs := scrubOrder(crefs)
	ahead := newScrubAhead(s.pool, hs, crefs)
	r.Total = int64(len(hs))
	var buf, goodBuf []byte
	for i, h := range hs {
		ahead.reached(i)
		// Re-read the record: it may have changed or gone since the snapshot.
		rec, found, err := getChunkRefFrom(s.db, h)
		if err != nil {
			return r, err
		}
		if !found {
			continue
		}
		r.Chunks++
		var good []byte
		var goodLocs, bad []pool.Location
		var why []error
		for _, l := range rec.Locs {
			r.Copies++
			// One buffer for every read (Read returns the payload inside it).
			if n := pool.HeaderSize + int(l.Length); cap(buf) < n {
				buf = make([]byte, 0, n)
			}
			data, err := s.pool.Read(l, h, buf)
			if err == nil && blake3.Sum256(data) != h {
				err = fmt.Errorf("pool: read %v: content hash mismatch: %w", l, pool.ErrChecksum)
			}
			if err != nil {
				bad = append(bad, l)
				why = append(why, err)
				continue
			}
			r.Bytes += int64(len(data))
			goodLocs = append(goodLocs, l)
			if good == nil {
				// A copy kept for repairs, in a buffer reused across chunks
				// (repairs do not keep it).
				good = append(goodBuf[:0], data...)
				goodBuf = good[:0]
			}
		}
		r.Bad += int64(len(bad))
		switch {
		case len(bad) == 0:
		case len(goodLocs) == 0:
			r.Unrepairable++
			for i, l := range bad {
				r.Damaged = append(r.Damaged, fmt.Sprintf("chunk %x copy %v: %v (no good copy)", h[:8], l, why[i]))
			}
		case o.NoRepair:
			for i, l := range bad {
				r.Damaged = append(r.Damaged, fmt.Sprintf("chunk %x copy %v: %v", h[:8], l, why[i]))
			}
		default:
			for i, l := range bad {
				if err := s.scrubRepair(h, good, l); err != nil {
					r.Damaged = append(r.Damaged, fmt.Sprintf("chunk %x copy %v: %v; repair failed: %v", h[:8], l, why[i], err))
					continue
				}
				r.Repaired++
			}
		}
		if o.Progress != nil {
			r.Elapsed = time.Since(start)
			o.Progress(r)
		}
	}
	r.Elapsed = time.Since(start)
	return r, nil
}

// scrubRepair replaces bad copy l of h by a new copy of data placed away
// from the failure domains of the chunk's other copies.
func (s *Store) scrubRepair(h pool.Hash, data []byte, l pool.Location) error {
	freed, err := s.scrubSwap(h, data, l)
	if err != nil || !freed {
		return err
	}
	// Readers that resolved the old location fail over to another copy;
	// wait for them before punching.
	s.grace.wait()
	if err := s.pool.Free([]pool.Location{l}); err != nil {
		return fmt.Errorf("scrub: free bad copy: %w", err)
	}
	return nil
}

// scrubSwap appends the new copy and swaps it into the chunkref. Like a
// flush it holds flushGate shared from the append to the commit, so no
// accounted offset passes an uncommitted record.
func (s *Store) scrubSwap(h pool.Hash, data []byte, l pool.Location) (bool, error) {
	s.flushGate.RLock()
	defer s.flushGate.RUnlock()
	unlock := s.lockHash(h)
	defer unlock()
	rec, found, err := getChunkRefFrom(s.db, h)
	if err != nil {
		return false, err
	}
	idx := -1
	for i, x := range rec.Locs {
		if x == l {
			idx = i
		}
	}
	if !found || idx < 0 {
		return false, nil // freed or repaired meanwhile
	}
	var avoid []pool.Location
	for i, x := range rec.Locs {
		if i != idx {
			avoid = append(avoid, x)
		}
	}
	nl, err := s.pool.AppendCopy(h, data, avoid)
	if err != nil {
		return false, err
	}
	if err := s.pool.Sync([]pool.Location{nl}); err != nil {
		s.pool.Free([]pool.Location{nl})
		return false, err
	}
	rec.Locs = append([]pool.Location(nil), rec.Locs...)
	rec.Locs[idx] = nl
	b := s.db.NewBatch()
	defer b.Close()
	if err := b.Set(chunkRefKey(h), rec.encode(), nil); err != nil {
		return false, err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		s.pool.Free([]pool.Location{nl})
		return false, fmt.Errorf("scrub: commit: %w", err)
	}
	return true, nil
}
