package store

import (
	"sort"
	"sync"
	"time"
)

// ownVersion locates an inode record's newest own version: the epoch it
// was born at and the file bytes it holds (inline data, versionBytes).
type ownVersion struct {
	epoch  uint64
	inline int64
	valid  bool
}

// inodeKey names an inode of a lineage.
type inodeKey struct {
	lin uint32
	ino uint64
}

// inodeState is the in-memory state of an inode that is open, dirty or being
// changed. Its mu is the per-inode lock: every mutation of the inode (its
// record, its entries if a directory, its data) holds it; when several are
// needed they are taken in ascending ino order (lockInodes).
type inodeState struct {
	key inodeKey

	// refs counts table users; kept says the state is on its shard's
	// list of idle directories kept. Both guarded by the table shard's lock.
	refs int
	kept bool

	mu       inodeMutex
	loaded   bool     // rec is the current live record
	rec      inodeRec // cached record, including unflushed size and times
	recDirty bool     // rec has changes not yet committed
	// committedSize is the size in the newest committed record (quota accounting).
	committedSize uint64
	// own is where the newest own version of the record sits, learned
	// from a committed write of it, so that rewriting a directory's record
	// on every create and unlink in it needs no seek (putInode). It is
	// trusted only while loaded: every read of the record from the
	// database (after anything dropped the cached one) clears it.
	own       ownVersion
	opens     int                  // open handles
	dirty     map[uint64]*chunkBuf // chunks written since their last flush
	sealed    map[uint64]*chunkBuf // chunks being flushed: immutable, read until committed
	since     time.Time            // when the oldest dirty chunk became dirty
	err       error                // latched flush error, returned by the next write, fsync or close
	queued    bool                 // on the flusher's queue
	queueMode sealMode             // what the queued flush takes (the most any queuer asked for)
	// relieveCut is the latest cutoff flushOld asked a relieving flush
	// for (zero: none); sealLocked takes the buffers made before it.
	relieveCut time.Time
	deleted    bool // the inode was deleted: a flush in flight commits nothing
	// stale marks an inode a rollback removed: its handles answer ErrStale.
	stale bool
	// fullBytes counts the bytes of dirty chunks written to their end since
	// the last seal.
	fullBytes int64
	// prealloc holds the pool space fallocate reserved for the first write
	// of each chunk index (prealloc.go); preallocEnd is the end of a
	// FALLOC_FL_KEEP_SIZE range past the size, whose bytes are counted in
	// the lineage's used bytes (the quota). A state holding either stays
	// in the table.
	prealloc    map[uint64]int64
	preallocEnd uint64

	// flushMu serializes the sealing and appending of this inode's flush
	// jobs; their commits follow in the same order (lastDone).
	flushMu sync.Mutex
	// lastDone is closed when the inode's latest flush job has committed
	// (nil: no job yet). afterCommit says chunks were held back because a
	// job in flight had them sealed; that job queues a flush of them when
	// it commits (afterCommitMode as queueMode). Guarded by mu.
	lastDone        chan struct{}
	afterCommit     bool
	afterCommitMode sealMode
	// requeue asks whoever holds flushMu to queue the inode again when it
	// lets go (a queued flush found it busy); requeueMode as queueMode.
	// Guarded by mu.
	requeue     bool
	requeueMode sealMode
}

// withLock runs f with st.mu held and releases it however f exits: a
// panic that go-fuse recovers must never leave an inode locked.
func (st *inodeState) withLock(f func()) {
	st.mu.Lock()
	defer st.mu.Unlock()
	f()
}

// inodeTable maps inode keys to their in-memory state. States live while
// referenced, open or dirty; besides, each shard keeps the states of the
// last keptDirs directories it let go with their records loaded, so that
// a directory in which files are created, looked up and removed is read
// from the database once, not on every operation in it, and its GETATTRs
// are answered from memory. Whatever changes a record goes through its
// state or resets every state of the lineage (rollback, destroy), so a
// kept record stays current.
type inodeTable struct {
	shards [64]struct {
		sync.Mutex
		m map[inodeKey]*inodeState
		// kept lists the idle directory states kept beyond their last
		// reference, oldest first (at most keptDirs).
		kept []inodeKey
	}
	// watch records the waits for the states' locks (lockwatch.go).
	watch lockWatch
}

func (t *inodeTable) init() {
	for i := range t.shards {
		t.shards[i].m = map[inodeKey]*inodeState{}
	}
}

func (t *inodeTable) shard(k inodeKey) int { return int((k.ino ^ uint64(k.lin)*0x9e37) % 64) }

// acquire returns the state of k, creating it, with a reference held.
func (t *inodeTable) acquire(k inodeKey) *inodeState {
	sh := &t.shards[t.shard(k)]
	sh.Lock()
	st := sh.m[k]
	if st == nil {
		st = &inodeState{key: k}
		st.mu.watch, st.mu.key = &t.watch, k
		sh.m[k] = st
	}
	st.refs++
	sh.Unlock()
	return st
}

// peek returns the state of k with a reference held, or nil if it has none.
func (t *inodeTable) peek(k inodeKey) *inodeState {
	sh := &t.shards[t.shard(k)]
	sh.Lock()
	st := sh.m[k]
	if st != nil {
		st.refs++
	}
	sh.Unlock()
	return st
}

// release drops a reference; an unreferenced state with nothing open or
// dirty is forgotten. Callers must not hold st.mu.
func (t *inodeTable) release(st *inodeState) {
	sh := &t.shards[t.shard(st.key)]
	sh.Lock()
	st.refs--
	// Nobody holds st.mu without a reference: a lock that is held here
	// has leaked, and the state is kept rather than waited for under the
	// shard's lock (which would stop every inode of the shard).
	if st.refs == 0 && st.mu.TryLock() {
		idle := st.idleLocked()
		dir := st.loaded && !st.deleted && !st.stale && st.rec.Mode&sIFMT == sIFDIR
		st.mu.Unlock()
		switch {
		case !idle:
		case dir && !st.kept:
			st.kept = true
			sh.kept = append(sh.kept, st.key)
			if len(sh.kept) > keptDirs {
				old := sh.kept[0]
				sh.kept = append(sh.kept[:0], sh.kept[1:]...)
				t.forgetKeptLocked(sh.m, old)
			}
		case dir: // already on the list
		default:
			delete(sh.m, st.key)
		}
	}
	sh.Unlock()
}

// keptDirs is how many idle directory states each of the 64 shards keeps.
const keptDirs = 32

// idleLocked reports whether the state holds nothing but its record:
// nothing open, dirty, being flushed or reserved.
func (st *inodeState) idleLocked() bool {
	return st.opens == 0 && len(st.dirty) == 0 && len(st.sealed) == 0 && !st.recDirty &&
		len(st.prealloc) == 0 && st.preallocEnd == 0
}

// forgetKeptLocked takes the state of k off the kept list, and out of the
// table if it is still idle and unreferenced (else its last release
// decides). The shard's lock is held.
func (t *inodeTable) forgetKeptLocked(m map[inodeKey]*inodeState, k inodeKey) {
	st := m[k]
	if st == nil {
		return
	}
	st.kept = false
	if st.refs == 0 && st.mu.TryLock() {
		idle := st.idleLocked()
		st.mu.Unlock()
		if idle {
			delete(m, k)
		}
	}
}

// all returns every state with a reference held (for flushing everything).
func (t *inodeTable) all() []*inodeState {
	var out []*inodeState
	for i := range t.shards {
		sh := &t.shards[i]
		sh.Lock()
		for _, st := range sh.m {
			st.refs++
			out = append(out, st)
		}
		sh.Unlock()
	}
	return out
}

// lockedInodes is a set of inode states acquired and locked in ino order.
type lockedInodes struct {
	t   *inodeTable
	sts []*inodeState
}

// lockInodes acquires and locks the inodes of lineage lin, in ascending ino
// order, ignoring duplicates and zeros.
func (t *inodeTable) lockInodes(lin uint32, inos ...uint64) *lockedInodes {
	sorted := append([]uint64(nil), inos...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	li := &lockedInodes{t: t}
	var prev uint64
	for _, ino := range sorted {
		if ino == 0 || ino == prev {
			continue
		}
		prev = ino
		st := t.acquire(inodeKey{lin, ino})
		st.mu.Lock()
		li.sts = append(li.sts, st)
	}
	return li
}

// get returns the locked state of ino (which must be in the set).
func (li *lockedInodes) get(ino uint64) *inodeState {
	for _, st := range li.sts {
		if st.key.ino == ino {
			return st
		}
	}
	return nil
}

// unlock unlocks and releases every state, in reverse order.
// lockAbove acquires and locks one more inode of lineage lin, which must be
// above every inode li holds (so the ascending order holds).
func (li *lockedInodes) lockAbove(lin uint32, ino uint64) {
	st := li.t.acquire(inodeKey{lin, ino})
	st.mu.Lock()
	li.sts = append(li.sts, st)
}

func (li *lockedInodes) unlock() {
	for i := len(li.sts) - 1; i >= 0; i-- {
		li.sts[i].mu.Unlock()
	}
	for _, st := range li.sts {
		li.t.release(st)
	}
	li.sts = nil
}
