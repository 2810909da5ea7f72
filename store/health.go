package store

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/snapfs/snapfs/pool"
)

// Degraded operation (see pool/health.go for member states).
//
// The store watches the members: every MemberCheckInterval, and at once
// when the pool signals a failed member operation, it runs
// pool.CheckMembers and acts on what changed:
//
//   - a member that vanished is logged; reads go around it (every copy
//     elsewhere is read instead), flushes commit without copies they could
//     not make durable there (a degraded write: at least one copy), and
//     frees of its records are parked (tagParked) rather than lost, since
//     punching them is impossible now and forgetting them would leak them
//     when it comes back;
//   - a member that came back (its member.json is readable again, or its
//     file system writable again) is used at once: the records past its
//     accounted offset that no chunkref names are freed (as at Open; with
//     flushes held off, so none is between its append and its commit), and
//     its parked frees go back to freeq (as they do at open for every
//     member healthy then: recover.go).
//
// Chunks that got fewer copies than the pool asks (degraded writes) are
// counted in the underrep counter, which a complete scrub resets after
// raising them; a dedup hit on such a chunk raises it too (flush.go).
//
// A bad copy a read went around (on a present member) is rewritten in the
// background (readrepair.go). Chunks with no good copy (every copy failed
// its check or could not be read, by scrub or by a read) are recorded under tagDamaged until a scrub
// finds a good copy or the chunk is freed; pool status -v names the files
// that reference them (damaged.go).

// underRepKey counts chunks written with fewer copies than asked since the
// last complete scrub.
func underRepKey() []byte { return counterKey("underrep") }

// memberWatch runs the member checks until the store closes.
func (s *Store) memberWatch() {
	defer s.bg.Done()
	tick := time.NewTicker(s.opts.MemberCheckInterval)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-tick.C:
		case <-s.pool.CheckWanted():
		}
		if err := s.CheckMembers(false); err != nil {
			fmt.Printf("snapfs: member check: %v\n", err)
		}
	}
}

// CheckMembers checks the members now (pool.CheckMembers) and handles what
// changed; retryFailed also reopens members degraded by I/O errors. Scrub
// and pool status call it first.
func (s *Store) CheckMembers(retryFailed bool) error {
	if s.closed.Load() {
		return ErrClosed
	}
	s.memberMu.Lock()
	defer s.memberMu.Unlock()
	var errs []error
	for _, ev := range s.pool.CheckMembers(pool.CheckOptions{RetryFailed: retryFailed}) {
		switch {
		case ev.Lost:
			fmt.Printf("snapfs: member %s is gone (%v): the pool is degraded; reads go to other copies, writes to the other members\n", ev.Path, ev.Err)
		case ev.Back:
			fmt.Printf("snapfs: member %s is back and in use again; run pool scrub to raise chunks written without it\n", ev.Path)
			if err := s.memberBack(ev); err != nil {
				errs = append(errs, fmt.Errorf("member %s back: %w", ev.Path, err))
			}
			if ev.Err != nil {
				errs = append(errs, fmt.Errorf("member %s: %w", ev.Path, ev.Err))
			}
		case ev.Degraded:
			fmt.Printf("snapfs: member %s is degraded: %v; it takes no new data (pool status says how to fix it)\n", ev.Path, ev.Err)
		case ev.Err != nil:
			errs = append(errs, fmt.Errorf("member %s: reopen: %w", ev.Path, ev.Err))
		}
	}
	return errors.Join(errs...)
}

// memberBack frees the returning member's unreferenced tail records and
// requeues its parked frees.
func (s *Store) memberBack(ev pool.MemberEvent) error {
	s.flushGate.Lock()
	var orphans []pool.Location
	for _, tr := range ev.Tails {
		rec, found, err := getChunkRefFrom(s.db, tr.Hash)
		if err != nil {
			s.flushGate.Unlock()
			return err
		}
		if !found || !containsLoc(rec.Locs, tr.Loc) {
			orphans = append(orphans, tr.Loc)
		}
	}
	var err error
	if len(orphans) > 0 {
		err = s.pool.Free(orphans)
	}
	if err == nil {
		err = s.pool.MarkAccounted()
	}
	s.flushGate.Unlock()
	if err != nil {
		return err
	}
	return s.unpark(ev.Index)
}

// unpark moves member i's parked frees back to freeq.
func (s *Store) unpark(i uint16) error {
	lo, hi := parkedBounds(i)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	b := s.db.NewBatch()
	defer b.Close()
	var seqs []uint64
	defer func() { s.releaseFreeSeqs(seqs) }()
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		// A new free-queue entry: punched once a checkpoint taken after
		// it is shipped (checkpoint.go), as any fresh free.
		q := s.allocFreeSeq()
		seqs = append(seqs, q)
		_ = b.Set(freeQKey(q), append([]byte(nil), it.Value()...), nil)
		_ = b.Delete(append([]byte(nil), it.Key()...), nil)
		n++
	}
	if err := it.Close(); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("requeue %d parked frees: %w", n, err)
	}
	return nil
}

// dropParked forgets the parked frees of a removed member.
func (s *Store) dropParked(i uint16) error {
	lo, hi := parkedBounds(i)
	if err := s.db.DeleteRange(lo, hi, pebble.Sync); err != nil {
		return fmt.Errorf("drop parked frees of member %d: %w", i, err)
	}
	return nil
}

// parkOrFree splits locations to free into those the pool can free now
// and those on gone or degraded members, which it parks in b (one entry
// per location, under hash h). Locations on removed members are dropped:
// nothing is left there to free.
func (s *Store) parkOrFree(b *pebble.Batch, h pool.Hash, locs []pool.Location) []pool.Location {
	var now []pool.Location
	for _, l := range locs {
		switch {
		case s.pool.Removed(l.Member):
		case s.pool.Freeable(l.Member):
			now = append(now, l)
		default:
			s.park(b, h, l)
		}
	}
	return now
}

// park parks the free of location l of hash h in b: it waits for l's
// member to come back (unpark), or is dropped if the member is removed.
func (s *Store) park(b *pebble.Batch, h pool.Hash, l pool.Location) {
	_ = b.Set(parkedKey(l.Member, s.seq.Add(1)), freeQRec{Hash: h, Locs: []pool.Location{l}}.encode(), nil)
}

// damage tracks which chunks the read path already recorded as damaged,
// so each is logged and recorded once per run.
type damage struct {
	mu   sync.Mutex // guards seen
	seen map[pool.Hash]bool
}

// noteUnreadable records that every copy of h failed a read: logged once,
// and recorded under tagDamaged (cleared by a scrub that finds a good
// copy, or when the chunk is freed).
func (s *Store) noteUnreadable(h pool.Hash, err error) {
	s.damage.mu.Lock()
	if s.damage.seen == nil {
		s.damage.seen = map[pool.Hash]bool{}
	}
	first := !s.damage.seen[h]
	s.damage.seen[h] = true
	s.damage.mu.Unlock()
	if !first || s.closed.Load() {
		return
	}
	fmt.Printf("snapfs: chunk %x has no readable copy: %v\n", h[:8], err)
	if err := s.setDamaged(h, err.Error()); err != nil {
		fmt.Printf("snapfs: record damaged chunk %x: %v\n", h[:8], err)
	}
}

// setDamaged records h as damaged, with why.
func (s *Store) setDamaged(h pool.Hash, why string) error {
	v := append([]byte(nil), why...)
	if len(v) > 1024 {
		v = v[:1024]
	}
	return s.db.Set(damagedKey(h), v, pebble.Sync)
}

// clearDamaged forgets that h was damaged, if it was recorded.
func (s *Store) clearDamaged(h pool.Hash) error {
	_, c, err := s.db.Get(damagedKey(h))
	if errors.Is(err, pebble.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	c.Close()
	s.damage.mu.Lock()
	delete(s.damage.seen, h)
	s.damage.mu.Unlock()
	return s.db.Delete(damagedKey(h), pebble.Sync)
}

// DamagedChunk is a chunk with no good copy known.
type DamagedChunk struct {
	Hash   string   `json:"hash"`
	Reason string   `json:"reason"`
	Files  []string `json:"files,omitempty"` // view:path of every file referencing it (DamagedFiles)
}

// damagedChunks lists the recorded damaged chunks that are still
// referenced (entries of freed chunks are deleted on the way).
func (s *Store) damagedChunks() ([]pool.Hash, []string, error) {
	lo, hi := tagBounds(tagDamaged)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, nil, err
	}
	var hs []pool.Hash
	var why []string
	var stale [][]byte
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) < 34 {
			continue
		}
		var h pool.Hash
		copy(h[:], k[1:33])
		if _, found, err := getChunkRefFrom(s.db, h); err == nil && !found {
			stale = append(stale, append([]byte(nil), k...))
			continue
		}
		hs = append(hs, h)
		why = append(why, string(it.Value()))
	}
	if err := it.Close(); err != nil {
		return nil, nil, err
	}
	for _, k := range stale {
		_ = s.db.Delete(k, pebble.NoSync)
	}
	return hs, why, nil
}

// Health is the state of the pool as pool status shows it.
type Health struct {
	// InternalErrors counts the bugs caught at run time since the store
	// opened (NoteInternalError); the daemon log has their stacks.
	InternalErrors int64               `json:"internal_errors"`
	State          string              `json:"state"` // ok, degraded, failed (pool.State*)
	Members        []pool.MemberHealth `json:"members"`
	// UnderReplicated counts chunks written with fewer copies than asked
	// (degraded writes) since the last complete scrub.
	UnderReplicated int64 `json:"under_replicated"`
	// Damaged lists chunks with no good copy known; with files, the files
	// that reference them.
	Damaged []DamagedChunk `json:"damaged"`
	// ReadRepairs counts the bad copies reads found since the store
	// opened, and what became of them (readrepair.go).
	ReadRepairs ReadRepairs `json:"read_repairs"`
}

// Health reports the pool's state: each member's, the chunks written
// under-replicated, and the damaged chunks; with views (pool status -v),
// the paths of the files that reference each damaged chunk in those views
// (DamagedFiles: a scan of every chunk key and a walk of each view that
// holds one, so O(metadata)). It checks the members first.
func (s *Store) Health(views []NamedView) (Health, error) {
	if err := s.CheckMembers(false); err != nil && !errors.Is(err, ErrClosed) {
		fmt.Printf("snapfs: member check: %v\n", err)
	}
	ph := s.pool.Health()
	h := Health{State: ph.State, Members: ph.Members, UnderReplicated: max(0, s.readCounter(underRepKey())), ReadRepairs: s.readRepairCounts(),
		InternalErrors: s.internalErrors.Load()}
	hs, why, err := s.damagedChunks()
	if err != nil {
		return h, err
	}
	if len(hs) > 0 && h.State == pool.StateOK {
		h.State = pool.StateDegraded
	}
	var paths map[pool.Hash][]string
	if len(views) > 0 && len(hs) > 0 {
		if paths, err = s.DamagedFiles(hs, views); err != nil {
			return h, err
		}
	}
	for i, x := range hs {
		h.Damaged = append(h.Damaged, DamagedChunk{Hash: x.String(), Reason: why[i], Files: paths[x]})
	}
	return h, nil
}

// NoteInternalError counts a bug caught at run time: a panic recovered in
// a FUSE handler (which answered EIO and logged the stack). pool status
// reports the count.
func (s *Store) NoteInternalError() { s.internalErrors.Add(1) }
