package store

import (
	"fmt"
	"sync"

	"github.com/snapfs/snapfs/pool"
	"github.com/zeebo/blake3"
)

// Read repair
//
// A read that found a bad copy of a chunk (its checksum failed, or its
// disk answered EIO) and then read a good one hands the bad copies and
// the good bytes to the read repairer (loadHash: queueReadRepair); the
// reader does not wait. A background goroutine rewrites each bad copy
// through scrub's repair (scrubRepair: a fresh copy appended away from
// the chunk's other copies, made durable, swapped into the chunkref under
// the hash's lock in a synced batch, then the bad record freed, or its
// free parked when its disk failed the read), so chunk references and
// locations stay as a scrub leaves them.
//
// The queue is bounded (readRepairQueue chunks) and holds each chunk
// once; a chunk that finds it full is left to the next scrub. Before
// rewriting, the repairer checks that the copy is still one of the
// chunk's (a location hint may be stale: scrub or repack moved the
// record), that it still reads bad, that its member is present and not
// degraded for failing reads (scrub moves those copies), and that the
// good bytes match the chunk's hash. Each chunk with a bad copy is
// logged once per run (the first readRepairLogMax of them), with what
// the rewrite did; the counts are in Health (pool status).

const (
	// readRepairQueue is how many chunks may wait for a rewrite.
	readRepairQueue = 64
	// readRepairLogMax is how many chunks a run logs a bad copy of; past
	// it they are only counted.
	readRepairLogMax = 1024
)

// ReadRepairs counts what the read repairer did since the store opened.
type ReadRepairs struct {
	// Found counts bad copies reads came across (confirmed by the
	// repairer, unless the queue was full); Rewritten those replaced by a good copy; Failed those
	// whose rewrite failed; Skipped those not rewritten because their
	// member is gone or failing reads, or the queue was full (scrub
	// handles them).
	Found     int64 `json:"found"`
	Rewritten int64 `json:"rewritten"`
	Failed    int64 `json:"failed"`
	Skipped   int64 `json:"skipped"`
	// Pending counts the chunks queued or being rewritten now.
	Pending int64 `json:"pending"`
}

// readRepairer is the read repair queue and its counts.
type readRepairer struct {
	jobs chan readRepairJob // immutable after Open

	mu sync.Mutex // guards the fields below
	// queued holds the chunks queued or being rewritten.
	queued map[pool.Hash]bool
	// logged holds the chunks whose bad copy was logged this run.
	logged map[pool.Hash]bool
	// pending counts jobs queued or running; idle is broadcast (on mu)
	// when it reaches zero.
	pending int
	idle    *sync.Cond
	counts  ReadRepairs
}

// readRepairJob is one chunk to repair: its bad copies and good bytes
// (the chunk cache's, never changed).
type readRepairJob struct {
	h    pool.Hash
	data []byte
	bad  []pool.BadCopy
}

func (r *readRepairer) init() {
	r.jobs = make(chan readRepairJob, readRepairQueue)
	r.queued = map[pool.Hash]bool{}
	r.logged = map[pool.Hash]bool{}
	r.idle = sync.NewCond(&r.mu)
}

// queueReadRepair queues the bad copies of h found by a read that got
// data from a good one. It never blocks: with the queue full the copies
// are left to scrub.
func (s *Store) queueReadRepair(h pool.Hash, data []byte, bad []pool.BadCopy) {
	if len(bad) == 0 || s.closing.Load() {
		return
	}
	r := &s.rrep
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.queued[h] {
		return
	}
	select {
	case r.jobs <- readRepairJob{h: h, data: data, bad: bad}:
		r.queued[h] = true
		r.pending++
	default:
		r.counts.Found += int64(len(bad))
		r.counts.Skipped += int64(len(bad))
	}
}

// readRepairLoop runs the read repairs until the store closes; jobs still
// queued then are dropped (scrub finds those copies).
func (s *Store) readRepairLoop() {
	defer s.bg.Done()
	for {
		select {
		case <-s.stop:
			s.dropReadRepairs()
			return
		case j := <-s.rrep.jobs:
			s.readRepair(j)
			s.rrep.finished(j.h)
		}
	}
}

func (r *readRepairer) finished(h pool.Hash) {
	r.mu.Lock()
	delete(r.queued, h)
	r.pending--
	if r.pending == 0 {
		r.idle.Broadcast()
	}
	r.mu.Unlock()
}

func (s *Store) dropReadRepairs() {
	for {
		select {
		case j := <-s.rrep.jobs:
			s.rrep.finished(j.h)
		default:
			return
		}
	}
}

// waitReadRepairs returns once no read repair is queued or running.
func (s *Store) waitReadRepairs() {
	r := &s.rrep
	r.mu.Lock()
	for r.pending > 0 {
		r.idle.Wait()
	}
	r.mu.Unlock()
}

// readRepairCounts returns the counts so far.
func (s *Store) readRepairCounts() ReadRepairs {
	s.rrep.mu.Lock()
	defer s.rrep.mu.Unlock()
	c := s.rrep.counts
	c.Pending = int64(s.rrep.pending)
	return c
}

// readRepair rewrites the bad copies of one chunk that still need it.
func (s *Store) readRepair(j readRepairJob) {
	if blake3.Sum256(j.data) != j.h {
		return // never copy bytes that are not the chunk's
	}
	rec, found, err := getChunkRefFrom(s.db, j.h)
	if err != nil || !found {
		return
	}
	for _, b := range j.bad {
		l := b.Loc
		if !containsLoc(rec.Locs, l) {
			continue // a stale location hint, or moved meanwhile
		}
		if s.pool.Gone(l.Member) || s.pool.FailsReads(l.Member) {
			s.countReadRepair(func(c *ReadRepairs) { c.Found++; c.Skipped++ })
			continue
		}
		if _, err := s.pool.Read(l, j.h, nil); err == nil {
			continue // it reads well now (a passing I/O error)
		}
		err := s.scrubRepair(j.h, j.data, l, pool.IsReadFault(b.Err))
		outcome := "rewritten from a good copy"
		if err != nil {
			outcome = fmt.Sprintf("rewrite failed: %v (pool scrub retries)", err)
			s.countReadRepair(func(c *ReadRepairs) { c.Found++; c.Failed++ })
		} else {
			s.countReadRepair(func(c *ReadRepairs) { c.Found++; c.Rewritten++ })
		}
		s.logReadRepair(j.h, fmt.Sprintf("snapfs: chunk %x: copy %v is bad (%v); read from another copy; %s", j.h[:8], l, b.Err, outcome))
	}
}

func (s *Store) countReadRepair(f func(*ReadRepairs)) {
	s.rrep.mu.Lock()
	f(&s.rrep.counts)
	s.rrep.mu.Unlock()
}

// logReadRepair prints line the first time chunk h has a bad copy this
// run (for the first readRepairLogMax chunks).
func (s *Store) logReadRepair(h pool.Hash, line string) {
	r := &s.rrep
	r.mu.Lock()
	first := !r.logged[h] && len(r.logged) < readRepairLogMax
	if first {
		r.logged[h] = true
	}
	last := len(r.logged) == readRepairLogMax && first
	r.mu.Unlock()
	if !first {
		return
	}
	fmt.Println(line)
	if last {
		fmt.Printf("snapfs: %d chunks with bad copies logged; further ones are only counted (pool status)\n", readRepairLogMax)
	}
}
