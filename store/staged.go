package store

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/snapfs/snapfs/pool"
)

// Staged chunks: bytes stored before any file names them.
//
// A receive (package stream) verifies a stream's chunk records before the
// layout records that place them, and the snapshot it builds may appear
// only once the whole stream is verified. Rather than spool the bytes to a
// file and write them into the pool a second time, it stages them:
//
//   - StageChunks appends each chunk to the pool as a flush would (a hash
//     already stored is a dedup hit and writes nothing), makes the records
//     durable, and commits per chunk a staged key (stage, hash) that holds
//     one reference in the chunk's chunkref. The batch is synced, so a
//     receive may record the chunks as received once StageChunks returns.
//   - SetChunks makes chunks of a file name stored hashes: one more
//     reference each, no byte read or written (as CopyRange shares whole
//     chunks, reflink.go).
//   - ReleaseStage deletes a stage's keys and drops their references, once
//     the received snapshot holds its own or the receive is aborted.
//
// A staged key is a reference like a chunk version: Check and fsck count
// it, so a crash between staging and release leaves nothing that Check
// calls a leak, and a resumed receive finds its chunks staged (staging a
// hash twice in one stage adds no second reference). A stage is a number
// the caller chooses and must keep to itself: a receive derives its
// stage from the dataset's name (one receive at a time per dataset), so
// the next receive or abort finds what a killed one staged.

// StagedChunk is one chunk to stage: its BLAKE3 hash and its bytes. The
// caller vouches that Hash is the hash of Data (a receive has verified it).
type StagedChunk struct {
	Hash pool.Hash
	Data []byte
}

func stagedKey(stage uint64, h pool.Hash) []byte {
	return keyBuf(make([]byte, 0, 42)).u8(tagStaged).u64(stage).str(string(h[:])).end()
}

// stagedBounds bounds the keys of one stage.
func stagedBounds(stage uint64) (lo, hi []byte) {
	return keyBuf(nil).u8(tagStaged).u64(stage).end(), keyBuf(nil).u8(tagStaged).u64(stage + 1).end()
}

// stagedChunk is what StageChunks keeps of one chunk between claim and commit.
type stagedChunk struct {
	h        pool.Hash
	n        uint32
	locs     []pool.Location
	raised   []pool.Location
	appended bool
}

// StageChunks stores chunks under stage: appended to the pool unless
// stored already, durable, and each held by one reference of the stage
// until ReleaseStage. A hash the stage holds already is skipped. When it
// returns nil, the chunks and their keys are durable.
func (s *Store) StageChunks(stage uint64, chunks []StagedChunk) error {
	if s.closed.Load() {
		return ErrClosed
	}
	// Space is held as a write holds it for its buffers (the pool keeps
	// its slop free), so a full pool is ErrNoSpace before any append.
	var need int64
	for _, in := range chunks {
		need += int64(len(in.Data))
	}
	if err := s.pool.Reserve(need); errors.Is(err, pool.ErrNoSpace) {
		return fmt.Errorf("stage %d bytes: %v: %w", need, err, ErrNoSpace)
	} else if err != nil {
		return fmt.Errorf("stage %d bytes: %w", need, err)
	}
	defer s.pool.Unreserve(need)
	s.flushGate.RLock()
	defer s.flushGate.RUnlock()
	var cs []*stagedChunk
	seen := map[pool.Hash]bool{}
	defer func() {
		for _, c := range cs {
			s.unclaim(c.h)
		}
	}()
	for _, in := range chunks {
		if len(in.Data) == 0 || len(in.Data) > pool.MaxChunkSize {
			return fmt.Errorf("stage a chunk of %d bytes: %w", len(in.Data), ErrInvalid)
		}
		if seen[in.Hash] {
			continue
		}
		seen[in.Hash] = true
		if _, c, err := s.db.Get(stagedKey(stage, in.Hash)); err == nil {
			c.Close()
			continue
		} else if !errors.Is(err, pebble.ErrNotFound) {
			return fmt.Errorf("stage chunk: %w", err)
		}
		locs, role, err := s.claim(in.Hash)
		if err != nil {
			return err
		}
		c := &stagedChunk{h: in.Hash, n: uint32(len(in.Data))}
		cs = append(cs, c)
		switch role {
		case claimAppend:
			locs, err = s.pool.Append(in.Hash, in.Data)
			s.settle(in.Hash, locs)
			if err != nil {
				s.queueStagedAppends(cs)
				return fmt.Errorf("stage chunk: %w", err)
			}
			c.appended = true
		case claimRaise:
			c.raised = s.addCopies(in.Hash, in.Data, locs)
			locs = append(append([]pool.Location(nil), locs...), c.raised...)
			s.settle(in.Hash, locs)
		}
		c.locs = locs
	}
	if len(cs) == 0 {
		return nil
	}
	var fresh []pool.Location
	for _, c := range cs {
		if c.appended {
			fresh = append(fresh, c.locs...)
		} else {
			fresh = append(fresh, c.raised...)
		}
	}
	if len(fresh) > 0 {
		if failed := s.pool.SyncEach(fresh); len(failed) > 0 {
			s.queueStagedAppends(cs)
			for _, err := range failed {
				return fmt.Errorf("stage chunks: sync packs: %w", err)
			}
		}
	}
	b := s.db.NewBatch()
	defer b.Close()
	deltas := map[pool.Hash]int64{}
	known := map[pool.Hash]chunkRefRec{}
	var raised map[pool.Hash][]pool.Location
	for _, c := range cs {
		deltas[c.h] = 1
		known[c.h] = chunkRefRec{Length: c.n, Locs: c.locs}
		if len(c.raised) > 0 {
			if raised == nil {
				raised = map[pool.Hash][]pool.Location{}
			}
			raised[c.h] = c.raised
		}
		if err := b.Set(stagedKey(stage, c.h), nil, nil); err != nil {
			return err
		}
	}
	if err := s.meta.room(false); err != nil {
		s.queueStagedAppends(cs)
		return err
	}
	unlock, err := s.applyRefs(b, deltas, known, raised)
	if err != nil {
		s.queueStagedAppends(cs)
		return err
	}
	defer unlock()
	if err := b.Commit(pebble.Sync); err != nil {
		s.queueStagedAppends(cs)
		return fmt.Errorf("stage chunks: %w", err)
	}
	return nil
}

// queueStagedAppends hands reclaim the records a failed StageChunks
// appended (as queueAppended does for a failed flush).
func (s *Store) queueStagedAppends(cs []*stagedChunk) {
	b := s.db.NewBatch()
	defer b.Close()
	n := 0
	for _, c := range cs {
		if c.appended && len(c.locs) > 0 {
			_ = b.Set(freeQKey(s.seq.Add(1)), freeQRec{Hash: c.h, Locs: c.locs}.encode(), nil)
			n++
		}
		c.appended = false
	}
	if n > 0 {
		if err := b.Commit(pebble.NoSync); err != nil {
			s.logf("queue %d records of a failed stage for reclaim: %v", n, err)
		}
	}
}

// ReleaseStage deletes every staged key of stage and drops its
// reference; a chunk no file names goes to the free queue. Releasing a
// stage that holds nothing is no error. The release is durable when it
// returns (receive --abort: the space comes back).
func (s *Store) ReleaseStage(stage uint64) error {
	return s.releaseStage(stage, pebble.Sync)
}

// ReleaseStageUnsynced is ReleaseStage without waiting for the release to
// be durable: the next synced commit (the store's periodic one, or
// Close's) makes it so. For a receive whose snapshot already holds the
// chunks: a release lost to a power cut leaves the stage's references,
// which Check counts as references (never a leak) and the next receive
// into the dataset, or an abort, releases.
func (s *Store) ReleaseStageUnsynced(stage uint64) error {
	return s.releaseStage(stage, pebble.NoSync)
}

func (s *Store) releaseStage(stage uint64, wo *pebble.WriteOptions) error {
	if s.closed.Load() {
		return ErrClosed
	}
	lo, hi := stagedBounds(stage)
	for {
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			return err
		}
		b := s.db.NewBatch()
		deltas := map[pool.Hash]int64{}
		for ok := it.First(); ok && len(deltas) < 4096; ok = it.Next() {
			var h pool.Hash
			copy(h[:], it.Key()[9:41])
			deltas[h] = -1
			_ = b.Delete(append([]byte(nil), it.Key()...), nil)
		}
		if err := it.Close(); err != nil {
			b.Close()
			return err
		}
		if len(deltas) == 0 {
			b.Close()
			return nil
		}
		unlock, err := s.applyRefs(b, deltas, nil, nil)
		if err != nil {
			b.Close()
			return fmt.Errorf("release staged chunks: %w", err)
		}
		err = b.Commit(wo)
		unlock()
		b.Close()
		if err != nil {
			return fmt.Errorf("release staged chunks: %w", err)
		}
	}
}

// StagedCount returns how many chunks stage holds (for tests and status).
func (s *Store) StagedCount(stage uint64) (int64, error) {
	lo, hi := stagedBounds(stage)
	return s.countKeys(lo, hi)
}

// StagedTotal returns how many chunks all stages together hold.
func (s *Store) StagedTotal() (int64, error) {
	lo, hi := tagBounds(tagStaged)
	return s.countKeys(lo, hi)
}

// countStagedIn adds one reference per staged key of r to refs.
func countStagedIn(r pebble.Reader, refs map[pool.Hash]int64) error {
	lo, hi := tagBounds(tagStaged)
	it, err := r.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		if k := it.Key(); len(k) == 42 {
			var h pool.Hash
			copy(h[:], k[9:41])
			refs[h]++
		}
	}
	return it.Close()
}

// SetChunks makes the chunks of the file open in h name stored bytes: for
// each entry, a chunk version naming Hash (Length logical bytes) at Index,
// and one more reference in the hash's chunkref, in one txn. No byte is
// read or written. A hash that is not stored is ErrNotFound (a receive
// stages the chunks it places first, so they cannot go meanwhile). The
// file grows to cover the last byte placed; callers set the exact size
// after. The file must not be inline with data (truncate it to 0 first).
func (s *Store) SetChunks(h *Handle, chunks []ChunkEntry) error {
	if h.st == nil || !h.write {
		return fmt.Errorf("set chunks of a read-only file: %w", ErrReadOnly)
	}
	if len(chunks) == 0 {
		return nil
	}
	if err := s.flushInode(h.st, true); err != nil {
		return err
	}
	t, err := s.begin(h.v)
	if err != nil {
		return err
	}
	defer t.abort()
	li := s.inodes.lockInodes(h.v.Lineage, h.ino)
	defer li.unlock()
	t.locked()
	st := h.st
	rec, err := t.inode(st)
	if err != nil {
		return err
	}
	if rec.Mode&sIFMT != sIFREG || rec.Flags&inodeInline != 0 && len(rec.Data) > 0 {
		return fmt.Errorf("set chunks of inode %d: %w", h.ino, ErrInvalid)
	}
	rec.Flags &^= inodeInline
	rec.Data = nil
	cs := int64(1) << rec.ChunkShift
	t.newRc = map[pool.Hash]chunkRefRec{}
	var claimed []pool.Hash
	defer func() {
		for _, c := range claimed {
			s.unclaim(c)
		}
	}()
	blocks, size := int64(rec.Blocks), int64(rec.Size)
	for _, c := range chunks {
		if c.Hole || c.Length == 0 || int64(c.Length) > cs || int64(c.Index)*cs+int64(c.Length) > maxFileSize {
			return fmt.Errorf("set chunk %d of inode %d (%d bytes): %w", c.Index, h.ino, c.Length, ErrInvalid)
		}
		locs, role, err := s.claim(c.Hash)
		if err != nil {
			return err
		}
		claimed = append(claimed, c.Hash)
		switch role {
		case claimAppend:
			s.settle(c.Hash, nil)
			return fmt.Errorf("chunk %x is not stored: %w", c.Hash[:8], ErrNotFound)
		case claimRaise: // under-replicated: scrub raises it
			s.settle(c.Hash, locs)
		}
		if rec, found, err := getChunkRefFrom(s.db, c.Hash); err != nil {
			return err
		} else if found && rec.Length != c.Length {
			return fmt.Errorf("chunk %x holds %d bytes, not %d: %w", c.Hash[:8], rec.Length, c.Length, ErrInvalid)
		}
		t.newRc[c.Hash] = chunkRefRec{Length: c.Length, Locs: locs}
		s.dropDirty(st, c.Index)
		delete(st.sealed, c.Index)
		idx := c.Index
		dver, err := resolve(t, t.chain, func(lin uint32) []byte { return chunkPrefix(lin, h.ino, rec.Cgen, idx) })
		if err != nil {
			return err
		}
		oldLen := int64(0)
		if dver.found {
			if old, err := decodeChunk(dver.value); err == nil && old.Kind == chunkData {
				oldLen = int64(old.Length)
			}
		}
		t.ref(c.Hash, 1)
		p := chunkPrefix(t.l.rec.ID, h.ino, rec.Cgen, idx)
		if err := t.put(p, chunkRec{Kind: chunkData, Hash: c.Hash, Length: c.Length, Hint: locs}.encode()); err != nil {
			return err
		}
		blocks += (int64(c.Length)+511)/512 - (oldLen+511)/512
		size = max(size, int64(idx)*cs+int64(c.Length))
	}
	covered := int64(0) // growth a KEEP_SIZE fallocate counted already
	if st.preallocEnd > rec.Size {
		covered = min(size, int64(st.preallocEnd)) - int64(rec.Size)
	}
	if grow := size - int64(rec.Size) - covered; grow > 0 && t.l.vol.quota() > 0 && t.l.used.Load()+grow > t.l.vol.quota() {
		return fmt.Errorf("set chunks to %d: %w", size, ErrQuota)
	}
	t.usedMem += size - int64(rec.Size) - st.growIntoPrealloc(uint64(size))
	rec.Size = uint64(size)
	rec.Blocks = uint64(max(blocks, 0))
	ts := now()
	rec.Mtime, rec.Ctime = ts, ts
	return t.commitInode(st, rec)
}
