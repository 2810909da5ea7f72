package store

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/snapfs/snapfs/pool"
)

// txn is one atomic change to a lineage: an indexed batch (reads see its own
// writes) plus the versioning rules of DESIGN.md. It holds the lineage's
// epoch lock shared from begin until commit or abort, so the epoch and the
// newest pin cannot change under it (DESIGN-NOTES 6).
//
// Writes touch only the writer's own lineage. If the newest own version of a
// key was born after the lineage's newest pin it is overwritten in place;
// otherwise a new version is born at the current epoch and the superseded
// one goes on the deadlist (DESIGN-NOTES 1).
type txn struct {
	s     *Store
	l     *lineage
	chain []viewPoint
	b     *pebble.Batch
	cur   uint64 // current epoch of l
	pin   uint64 // newest pin of l, 0 if none
	refs  map[pool.Hash]int64
	newRc map[pool.Hash]chunkRefRec // chunk records this txn appended
	used  int64                     // change of l's committed logical bytes (persisted counter)
	// usedMem is the change of l's in-memory logical bytes, which writes
	// update as they are accepted.
	usedMem int64
	files   int64 // change of l's inode count
	done    bool
}

// begin starts a mutation of view v, which must be a live view.
func (s *Store) begin(v View) (*txn, error) {
	if v.ReadOnly || !v.Live() {
		return nil, fmt.Errorf("view %d: %w", v.ID, ErrReadOnly)
	}
	if s.closed.Load() {
		return nil, ErrClosed
	}
	l, err := s.lineageOf(v)
	if err != nil {
		return nil, err
	}
	chain, err := s.chain(v)
	if err != nil {
		return nil, err
	}
	l.epochMu.RLock()
	return &txn{s: s, l: l, chain: chain, b: s.db.NewIndexedBatch(), cur: l.rec.Epoch, pin: l.lastPin}, nil
}

// abort drops the txn's changes.
func (t *txn) abort() {
	if t.done {
		return
	}
	t.done = true
	t.b.Close()
	t.l.epochMu.RUnlock()
}

// commit applies reference changes under their hash locks and commits the
// batch (without sync: durability comes from fsync or the sync timer).
func (t *txn) commit() error {
	if t.done {
		return fmt.Errorf("txn already finished: %w", ErrInvalid)
	}
	defer t.abort()
	unlock, err := t.s.applyRefs(t.b, t.refs, t.newRc)
	if err != nil {
		return err
	}
	defer unlock()
	if t.used != 0 {
		_ = t.b.Merge(usedKey(t.l.rec.ID), counterDelta(t.used), nil)
	}
	if t.files != 0 {
		_ = t.b.Merge(filesKey(t.l.rec.ID), counterDelta(t.files), nil)
	}
	if err := t.b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	t.l.used.Add(t.usedMem)
	t.l.files.Add(t.files)
	return nil
}

// ref records a change in the number of references to hash h.
func (t *txn) ref(h pool.Hash, d int64) {
	if t.refs == nil {
		t.refs = map[pool.Hash]int64{}
	}
	t.refs[h] += d
}

// put writes value as the current version of prefix p in the txn's lineage,
// in place when allowed. old is the caller's knowledge of the newest own
// version (found == false when it has none); the caller read it through
// the txn. A superseded pinned version goes on the deadlist.
func (t *txn) put(p []byte, value []byte) error {
	own, _, err := ownVersions(t.b, p, false)
	if err != nil {
		return fmt.Errorf("read %s: %w", describeKey(p), err)
	}
	if own.found && own.epoch > t.pin {
		t.releaseInPlace(p, own)
		return t.b.Set(withEpoch(p, own.epoch), value, nil)
	}
	if own.found {
		t.deadlist(p, own)
	}
	return t.b.Set(withEpoch(p, t.cur), value, nil)
}

// del removes the key at prefix p from the live view. It writes a tombstone
// unless no older own version and no ancestor version exists, in which case
// the key is physically deleted (DESIGN-NOTES 1B).
func (t *txn) del(p []byte, tombstone []byte, inherited bool) error {
	own, older, err := ownVersions(t.b, p, true)
	if err != nil {
		return fmt.Errorf("read %s: %w", describeKey(p), err)
	}
	switch {
	case own.found && own.epoch > t.pin:
		t.releaseInPlace(p, own)
		if older || inherited {
			return t.b.Set(withEpoch(p, own.epoch), tombstone, nil)
		}
		return t.b.Delete(withEpoch(p, own.epoch), nil)
	case own.found:
		t.deadlist(p, own)
		return t.b.Set(withEpoch(p, t.cur), tombstone, nil)
	case inherited:
		return t.b.Set(withEpoch(p, t.cur), tombstone, nil)
	}
	return nil
}

// releaseInPlace drops what an overwritten unpinned version held.
func (t *txn) releaseInPlace(p []byte, old version) {
	if p[0] != tagChunk {
		return
	}
	if c, err := decodeChunk(old.value); err == nil && c.Kind == chunkData {
		t.ref(c.Hash, -1)
	}
}

// deadlist records a superseded version that a pin still sees. The version
// key stays (the pinned view reads it) and keeps its chunk reference; the
// deadlist entry indexes it for reclaim when the pin goes.
func (t *txn) deadlist(p []byte, old version) {
	v := append(append([]byte(nil), byte(len(p)>>8), byte(len(p))), p...)
	v = append(v, old.value...)
	_ = t.b.Set(deadlistKey(t.l.rec.ID, t.cur, old.epoch, t.s.seq.Add(1)), v, nil)
}
