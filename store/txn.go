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
	b     *pebble.Batch // a plain batch: reads go through the txn (seek)
	it    *pebble.Iterator
	w     map[string]version // newest version of each prefix this txn wrote (found false: deleted)
	// reads caches what seek found in the database, by prefix and epoch,
	// since the txn took its locks: a create reads the name it then
	// writes, an unlink the entry and record it then deletes, and each
	// write first looks for the key's own version (put, del). Cleared by
	// locked() with the iterator whose view it mirrors.
	reads map[readKey]version
	// owned are the records this txn wrote through putInode, whose states
	// learn where their own version sits once the txn commits.
	owned []ownedRec
	cur   uint64 // current epoch of l
	pin   uint64 // newest pin of l, 0 if none
	refs  map[pool.Hash]int64
	newRc map[pool.Hash]chunkRefRec // chunk records this txn appended
	// raised holds copies this txn added to under-replicated chunks it
	// dedup'ed against (flush.go), for applyRefs to adopt.
	raised map[pool.Hash][]pool.Location
	used   int64 // change of l's committed logical bytes (persisted counter)
	// usedMem is the change of l's in-memory logical bytes, which writes
	// update as they are accepted.
	usedMem int64
	files   int64 // change of l's inode count
	// freeSeqs are the free-queue entries this txn queued itself; they
	// settle when it commits or aborts.
	freeSeqs []uint64
	// space is the change of l's space counters (space.go), merged at commit.
	space map[spaceCell]int64
	done  bool
}

// readKey names one seek: a versioned prefix read at an epoch.
type readKey struct {
	p string
	e uint64
}

// ownedRec is where a committed txn left an inode's own record.
type ownedRec struct {
	st     *inodeState
	epoch  uint64
	inline int64 // versionBytes of the value
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
	return &txn{s: s, l: l, chain: chain, b: s.db.NewBatch(), cur: l.rec.Epoch, pin: l.lastPin}, nil
}

// abort drops the txn's changes.
func (t *txn) abort() {
	if t.done {
		return
	}
	t.done = true
	t.s.releaseFreeSeqs(t.freeSeqs)
	t.b.Close()
	if t.it != nil {
		t.it.Close()
	}
	t.l.epochMu.RUnlock()
}

// commit applies reference changes under their hash locks and commits the
// batch (without sync: durability comes from fsync or the sync timer).
func (t *txn) commit() error {
	if t.done {
		return fmt.Errorf("txn already finished: %w", ErrInvalid)
	}
	defer t.abort()
	if err := t.s.meta.room(t.files > 0); err != nil {
		return err
	}
	unlock, err := t.s.applyRefs(t.b, t.refs, t.newRc, t.raised)
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
	t.mergeSpace()
	if err := t.b.Commit(pebble.NoSync); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	t.l.used.Add(t.usedMem)
	t.l.files.Add(t.files)
	for _, o := range t.owned {
		o.st.own = ownVersion{epoch: o.epoch, inline: o.inline, valid: true}
	}
	return nil
}

// ref records a change in the number of references to hash h.
func (t *txn) ref(h pool.Hash, d int64) {
	if t.refs == nil {
		t.refs = map[pool.Hash]int64{}
	}
	t.refs[h] += d
}

// seek implements versionReader: the txn's own writes first, then the
// database through one iterator reused for the whole txn. The keys a txn
// reads are guarded by the inode locks it holds, so the iterator's fixed
// view of the database stays current for them.
//
// What it reads from the database is cached for the txn (reads): a
// repeated seek of the same prefix and epoch, as the write after a read
// does, costs a map lookup instead of a walk of every level of the LSM.
// The cache holds database versions only; the txn's own writes (w) are
// consulted first, so a write never hides behind a cached read.
func (t *txn) seek(p []byte, e uint64) (version, error) {
	if v, ok := t.w[string(p)]; ok && v.epoch <= e {
		return v, nil
	}
	k := readKey{string(p), e}
	if v, ok := t.reads[k]; ok {
		v.value = append([]byte(nil), v.value...) // callers may keep and change it
		return v, nil
	}
	it, err := t.iter()
	if err != nil {
		return version{}, err
	}
	v, err := seekVersion(it, p, e)
	if err != nil {
		return v, err
	}
	if t.reads == nil {
		t.reads = map[readKey]version{}
	}
	t.reads[k] = version{value: append([]byte(nil), v.value...), epoch: v.epoch, found: v.found}
	return v, nil
}

// iter returns the txn's database iterator, opening it on first use.
func (t *txn) iter() (*pebble.Iterator, error) {
	if t.it == nil {
		it, err := t.s.db.NewIter(nil)
		if err != nil {
			return nil, err
		}
		t.it = it
	}
	return t.it, nil
}

// locked is called once a txn holds the locks of what it changes: reads made
// before (to learn which inodes to lock) may be stale, so the database
// iterator is reopened and the reads cached through it are forgotten.
func (t *txn) locked() {
	if t.it != nil {
		t.it.Close()
		t.it = nil
	}
	t.reads = nil
}

// lockedMore is called when a txn that already holds locks takes another:
// the iterator is reopened, so that what the new lock guards is read as
// committed now, while the reads cached so far stay (the locks that guard
// them were held throughout).
func (t *txn) lockedMore() {
	if t.it != nil {
		t.it.Close()
		t.it = nil
	}
}

// own returns the newest own version of prefix p and, if wantOlder, whether
// an older own version exists below it (found with a seek: Next would walk
// every overwritten internal entry of the newest key in the memtable).
func (t *txn) own(p []byte, wantOlder bool) (newest version, older bool, err error) {
	newest, err = t.seek(p, LiveEpoch)
	// Lineages start at epoch 1 (CreateVolume, ForkLineage) and every
	// version is born at an epoch of its lineage, so nothing lies below a
	// version born at 1: in a volume that never had a snapshot, no seek.
	if err != nil || !newest.found || !wantOlder || newest.epoch <= 1 {
		return newest, false, err
	}
	it, err := t.iter()
	if err != nil {
		return newest, false, err
	}
	below, err := seekVersion(it, p, newest.epoch-1)
	return newest, below.found, err
}

// set writes value as the version of p born at epoch e.
func (t *txn) set(p []byte, e uint64, value []byte) error {
	if t.w == nil {
		t.w = map[string]version{}
	}
	t.w[string(p)] = version{value: value, epoch: e, own: true, found: true}
	return t.b.Set(withEpoch(p, e), value, nil)
}

// remove deletes the version of p born at e; only done when no other version
// of p exists in the lineage or its ancestors.
func (t *txn) remove(p []byte, e uint64) error {
	if t.w == nil {
		t.w = map[string]version{}
	}
	t.w[string(p)] = version{epoch: 0}
	return t.b.Delete(withEpoch(p, e), nil)
}

// put writes value as the current version of prefix p in the txn's
// lineage, in place when allowed. A superseded pinned version goes on the
// deadlist. The space counters follow: an in-place overwrite changes the
// bytes born at the old version's epoch; a new version adds to those born
// now, and the first own version of an inherited key shadows it.
func (t *txn) put(p []byte, value []byte) error {
	own, _, err := t.own(p, false)
	if err != nil {
		return fmt.Errorf("read %s: %w", describeKey(p), err)
	}
	if own.found && own.epoch > t.pin {
		t.releaseInPlace(p, own)
		t.addSpace(own.epoch, spaceBorn, 0, versionBytes(p, value)-versionBytes(p, own.value))
		return t.set(p, own.epoch, value)
	}
	if own.found {
		t.deadlist(p, own)
	} else if err := t.shadowInherited(p); err != nil {
		return err
	}
	t.addSpace(t.cur, spaceBorn, 0, versionBytes(p, value))
	return t.set(p, t.cur, value)
}

// putNew writes the first version of a key that no lineage can hold yet: a
// key of an inode number just allocated (allocIno hands each number out
// once in a lineage family, so no own, ancestor or pinned version exists).
// It is put without the seek for an own version.
func (t *txn) putNew(p []byte, value []byte) error {
	t.addSpace(t.cur, spaceBorn, 0, versionBytes(p, value))
	return t.set(p, t.cur, value)
}

// putOwnKnown overwrites in place an own version whose epoch (after the
// newest pin) and file bytes the caller knows, without a seek: put's first
// case.
func (t *txn) putOwnKnown(p []byte, epoch uint64, oldBytes int64, value []byte) error {
	t.addSpace(epoch, spaceBorn, 0, versionBytes(p, value)-oldBytes)
	return t.set(p, epoch, value)
}

// del removes the key at prefix p from the live view. It writes a tombstone
// unless no older own version and no ancestor version exists, in which case
// the key is physically deleted (DESIGN-NOTES 1B).
func (t *txn) del(p []byte, tombstone []byte, inherited bool) error {
	own, older, err := t.own(p, true)
	if err != nil {
		return fmt.Errorf("read %s: %w", describeKey(p), err)
	}
	switch {
	case own.found && own.epoch > t.pin:
		t.releaseInPlace(p, own)
		t.addSpace(own.epoch, spaceBorn, 0, -versionBytes(p, own.value))
		if older || inherited {
			t.addSpace(own.epoch, spaceBorn, 0, versionBytes(p, tombstone))
			return t.set(p, own.epoch, tombstone)
		}
		return t.remove(p, own.epoch)
	case own.found:
		t.deadlist(p, own)
	case inherited:
		if err := t.shadowInherited(p); err != nil {
			return err
		}
	default:
		return nil
	}
	t.addSpace(t.cur, spaceBorn, 0, versionBytes(p, tombstone))
	return t.set(p, t.cur, tombstone)
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
// deadlist entry indexes it for reclaim when the pin goes, and its bytes
// join dlspace(killed now, born then).
func (t *txn) deadlist(p []byte, old version) {
	v := append(append([]byte(nil), byte(len(p)>>8), byte(len(p))), p...)
	v = append(v, old.value...)
	_ = t.b.Set(deadlistKey(t.l.rec.ID, t.cur, old.epoch, t.s.seq.Add(1)), v, nil)
	t.addSpace(t.cur, spaceDead, old.epoch, versionBytes(p, old.value))
}
