package store

import (
	"errors"
	"fmt"
	"sort"

	"github.com/cockroachdb/pebble/v2"
)

// refusal wraps an error that truncate returned before it changed
// anything (the size is past the limit or the quota): the caller's record
// and the inode state are as they were.
type refusal struct{ error }

func (r refusal) Unwrap() error { return r.error }

// distrustUnlessRefused makes the next use of a locked inode read its
// record back from the database after a failed change, unless the change
// was refused before it touched anything. The state's record may hold what
// the database does not have yet (the size of buffered writes): dropping
// it for a mere refusal lost that size, and the quota the unlink of the
// file gives back with it.
func distrustUnlessRefused(st *inodeState, err error) {
	var r refusal
	if !errors.As(err, &r) {
		st.loaded = false
	}
}

// truncate changes a locked regular file's size inside t (DESIGN-NOTES 2):
// to 0 it bumps the chunk generation, hiding every older chunk in O(1);
// otherwise it rewrites the chunk holding the new end with its tail zeroed
// and hides every higher chunk with a hole version. Growing writes nothing:
// bytes past the old end were already hidden or never existed.
func (t *txn) truncate(st *inodeState, rec inodeRec, size uint64) (inodeRec, error) {
	s := t.s
	if size > maxFileSize {
		return rec, refusal{fmt.Errorf("truncate to %d: %w", size, ErrFileTooBig)}
	}
	l := t.l
	// Bytes a KEEP_SIZE fallocate reserved past the old size are counted
	// already; truncate ends that reservation either way (as ext4 frees
	// preallocated blocks past the new size).
	past := int64(0)
	if st.preallocEnd > rec.Size {
		past = int64(st.preallocEnd - rec.Size)
	}
	if grow := int64(size) - int64(rec.Size) - past; grow > 0 && l.vol.quota() > 0 && l.used.Load()+grow > l.vol.quota() {
		return rec, refusal{fmt.Errorf("truncate to %d: %w", size, ErrQuota)}
	}
	t.usedMem += int64(size) - int64(rec.Size) - past
	st.preallocEnd = 0
	if size < rec.Size {
		cs := uint64(1) << rec.ChunkShift
		s.dropPrealloc(st, (size+cs-1)/cs)
	}
	defer func() { st.rec = rec }()
	switch {
	case rec.Flags&inodeInline != 0 && size <= uint64(s.opts.InlineMax):
		d := rec.Data
		if uint64(len(d)) > size {
			d = d[:size]
		}
		rec.Data = append([]byte(nil), d...)
		rec.Size = size
		return rec, nil
	case rec.Flags&inodeInline != 0:
		// Growing an inline file past the inline limit: its bytes move to chunk 0.
		st.rec = rec
		h := &Handle{s: s, chain: t.chain}
		if err := s.unInline(h, st); err != nil {
			return rec, err
		}
		rec = st.rec
		rec.Size = size
		return rec, nil
	case size == 0:
		if _, err := t.dropChunks(st.key.ino, rec.Cgen, 0); err != nil {
			return rec, err
		}
		s.discardLocked(st)
		rec.Cgen++
		rec.Size, rec.Blocks = 0, 0
		rec.Flags |= inodeInline
		rec.Data = nil
		return rec, nil
	case size >= rec.Size:
		rec.Size = size
		return rec, nil
	}
	cs := uint64(1) << rec.ChunkShift
	keep := (size + cs - 1) / cs // chunks [0, keep) survive
	for idx := range st.dirty {
		if idx >= keep {
			s.dropDirty(st, idx)
		}
	}
	for idx := range st.sealed {
		if idx >= keep {
			delete(st.sealed, idx)
		}
	}
	removed, err := t.dropChunks(st.key.ino, rec.Cgen, keep)
	if err != nil {
		return rec, err
	}
	rec.Blocks = uint64(max(int64(rec.Blocks)-removed, 0))
	if size%cs != 0 {
		// Rewrite the last chunk with its tail zeroed, through its buffer.
		st.rec = rec
		b, err := s.dirtyBuf(&Handle{s: s, chain: t.chain}, st, keep-1, needBytes)
		if err != nil {
			return rec, err
		}
		b.zero(int64(size%cs), int64(cs))
		if st.since.IsZero() {
			st.since = timeNow()
		}
	}
	rec.Size = size
	return rec, nil
}

// dropChunks removes chunks [from, ∞) of generation cgen from the live view:
// own versions are deleted (or deadlisted when pinned), and chunks an
// ancestor would show through are hidden by hole versions.
// It returns the 512-byte blocks the dropped chunks held.
func (t *txn) dropChunks(ino uint64, cgen uint32, from uint64) (int64, error) {
	idxs := map[uint64]bool{}
	for _, pt := range t.chain {
		it, err := t.s.db.NewIter(&pebble.IterOptions{LowerBound: chunkGenStart(pt.lin, ino, cgen, from), UpperBound: chunkGenEnd(pt.lin, ino, cgen)})
		if err != nil {
			return 0, err
		}
		for ok := it.First(); ok; ok = nextPrefix(it) {
			idxs[parseChunkIndex(it.Key())] = true
		}
		if err := it.Close(); err != nil {
			return 0, err
		}
	}
	sorted := make([]uint64, 0, len(idxs))
	for i := range idxs {
		sorted = append(sorted, i)
	}
	sort.Slice(sorted, func(i, j int) bool { return sorted[i] < sorted[j] })
	hole := chunkRec{Kind: chunkHole}.encode()
	var removed int64
	for _, idx := range sorted {
		mk := func(lin uint32) []byte { return chunkPrefix(lin, ino, cgen, idx) }
		ver, err := resolve(t, t.chain, mk)
		if err != nil {
			return 0, err
		}
		if c, err := decodeChunk(ver.value); ver.found && err == nil && c.Kind == chunkData {
			removed += (int64(c.Length) + 511) / 512
		}
		inh, err := t.inherited(mk)
		if err != nil {
			return 0, err
		}
		if err := t.del(mk(t.l.rec.ID), hole, inh); err != nil {
			return 0, err
		}
	}
	return removed, nil
}

// Allocate implements fallocate(2): FallocPunchHole|FallocKeepSize
// deallocates a range (it reads as zeros), FallocZeroRange zeroes it (and
// may extend the file), and mode 0 or FallocKeepSize preallocates
// (prealloc.go): space for the first write of every chunk of the range.
func (h *Handle) Allocate(off, n int64, mode uint32) error {
	if mode&^FallocKeepSize == 0 && h.st != nil && h.write && off >= 0 && n > 0 && off+n <= maxFileSize {
		return h.preallocate(off, n, mode&FallocKeepSize != 0)
	}
	switch {
	case h.st == nil || !h.write:
		return fmt.Errorf("fallocate: %w", ErrReadOnly)
	case off < 0 || n <= 0:
		return fmt.Errorf("fallocate %d+%d: %w", off, n, ErrInvalid)
	case mode&FallocPunchHole != 0 && mode&FallocKeepSize == 0:
		return fmt.Errorf("punch hole without keep-size: %w", ErrNotSupported)
	case mode&^(FallocPunchHole|FallocKeepSize|FallocZeroRange) != 0:
		return fmt.Errorf("fallocate mode %#x: %w", mode, ErrNotSupported)
	case off+n > maxFileSize:
		return fmt.Errorf("fallocate to %d: %w", off+n, ErrFileTooBig)
	}
	s := h.s
	t, err := s.begin(h.v)
	if err != nil {
		return err
	}
	defer t.abort()
	li := s.inodes.lockInodes(h.v.Lineage, h.ino)
	defer li.unlock()
	st := li.get(h.ino)
	rec, err := t.inode(st)
	if err != nil {
		return err
	}
	if rec.Mode&sIFMT != sIFREG {
		return fmt.Errorf("fallocate: %w", ErrInvalid)
	}
	end := off + n
	if mode&FallocKeepSize == 0 && end > int64(rec.Size) {
		if rec, err = t.truncate(st, rec, uint64(end)); err != nil {
			distrustUnlessRefused(st, err)
			return err
		}
	}
	if err := t.zeroRange(st, rec, off, min(end, int64(rec.Size))); err != nil {
		st.loaded = false
		return err
	}
	rec = st.rec
	ts := now()
	rec.Mtime, rec.Ctime = ts, ts
	return t.commitInode(st, rec)
}

// zeroRange makes [off, end) of a locked file read as zeros: whole chunks
// become holes, partial ones are zeroed in their buffers.
func (t *txn) zeroRange(st *inodeState, rec inodeRec, off, end int64) error {
	s := t.s
	st.rec = rec
	if off >= end {
		return nil
	}
	if rec.Flags&inodeInline != 0 {
		d := append([]byte(nil), rec.Data...)
		for i := off; i < end && i < int64(len(d)); i++ {
			d[i] = 0
		}
		st.rec.Data = d
		return nil
	}
	cs := int64(1) << rec.ChunkShift
	hole := chunkRec{Kind: chunkHole}.encode()
	for idx := off / cs; idx*cs < end; idx++ {
		lo, hi := max(off, idx*cs), min(end, (idx+1)*cs)
		if lo == idx*cs && hi == (idx+1)*cs {
			s.dropDirty(st, uint64(idx))
			delete(st.sealed, uint64(idx))
			p := chunkPrefix(t.l.rec.ID, st.key.ino, rec.Cgen, uint64(idx))
			oldLen, err := t.chunkLen(p)
			if err != nil {
				return err
			}
			if err := t.put(p, hole); err != nil {
				return err
			}
			st.rec.Blocks = uint64(max(int64(st.rec.Blocks)-(oldLen+511)/512, 0))
			continue
		}
		b, err := s.dirtyBuf(&Handle{s: s, chain: t.chain}, st, uint64(idx), needBytes)
		if err != nil {
			return err
		}
		b.zero(lo-idx*cs, hi-idx*cs)
		if st.since.IsZero() {
			st.since = timeNow()
		}
	}
	return nil
}

// Lseek finds data or holes: whence is SEEK_DATA (3) or SEEK_HOLE (4).
func (h *Handle) Lseek(off int64, whence int) (int64, error) {
	const seekData, seekHole = 3, 4
	if whence != seekData && whence != seekHole {
		return 0, fmt.Errorf("lseek whence %d: %w", whence, ErrInvalid)
	}
	a, err := h.Attr()
	if err != nil {
		return 0, err
	}
	size := int64(a.Size)
	if off < 0 || off >= size {
		return 0, fmt.Errorf("lseek %d in a file of %d bytes: %w", off, size, ErrNXIO)
	}
	if h.st != nil {
		// Data still in buffers counts as data: flush so one source of truth answers.
		if err := h.s.flushInode(h.st, true); err != nil {
			return 0, err
		}
	}
	rec, err := h.s.getInode(h.s.dbr(), h.chain, h.ino)
	if err != nil {
		return 0, err
	}
	if rec.Flags&inodeInline != 0 {
		if whence == seekData {
			return off, nil
		}
		return size, nil
	}
	cs := int64(1) << rec.ChunkShift
	for idx := off / cs; idx*cs < size; idx++ {
		data, err := h.s.chunkHasData(h.chain, h.ino, rec.Cgen, uint64(idx))
		if err != nil {
			return 0, err
		}
		if data == (whence == seekData) {
			return max(off, idx*cs), nil
		}
	}
	if whence == seekHole {
		return size, nil
	}
	return 0, fmt.Errorf("lseek: no data after %d: %w", off, ErrNXIO)
}

// chunkHasData reports whether a chunk resolves to stored bytes.
func (s *Store) chunkHasData(chain []viewPoint, ino uint64, cgen uint32, idx uint64) (bool, error) {
	ver, err := resolve(s.dbr(), chain, func(lin uint32) []byte { return chunkPrefix(lin, ino, cgen, idx) })
	if err != nil || !ver.found {
		return false, err
	}
	c, err := decodeChunk(ver.value)
	return err == nil && c.Kind == chunkData, err
}
