package store

import (
	"errors"
	"fmt"
	"syscall"
	"time"

	"github.com/snapfs/snapfs/pool"
)

// flushBatchBytes is how many bytes of full chunks an inode gathers before
// the background flusher takes them: one pack sync (fdatasync) per batch.
const flushBatchBytes = 8 << 20

// maxFileSize is the largest file size: 2^44 bytes (16 TiB), as on ext4 with 4 KiB blocks.
const maxFileSize = 1 << 44

// chunkBuf is one chunk's bytes buffered in memory. data grows on demand up
// to the chunk size (a small file does not hold a whole chunk of memory);
// bytes past len(data) are zeros. The file size says how much is the file's.
// A buffer made by a small write into a stored chunk starts as an overlay
// (ov set, data nil): only the written bytes, laid over the bytes below it
// (a sealed buffer's, or the committed chunk's) when read or flushed.
type chunkBuf struct {
	data     []byte
	ov       *overlay
	full     bool      // written up to the chunk's end: the background flusher may take it
	reserved int64     // pool space reserved for the chunk when it was buffered
	since    time.Time // when the buffer was made: the timer flushes it after FlushInterval (an overlay after OverlayFlushInterval)
}

// mem is the buffer's memory, as counted in the store's dirty bytes.
func (b *chunkBuf) mem() int64 {
	if b.ov != nil {
		return b.ov.mem
	}
	return int64(len(b.data))
}

// grow makes data at least n bytes long (n at most the chunk size cs),
// counting the growth in the store's dirty bytes.
func (b *chunkBuf) grow(s *Store, n, cs int64) {
	if n <= int64(len(b.data)) {
		return
	}
	size := min(cs, max((n+4095)&^4095, 2*int64(len(b.data))))
	nd := make([]byte, size)
	copy(nd, b.data)
	s.dirtyBytes.Add(size - int64(len(b.data)))
	b.data = nd
}

// copyOut copies the buffered bytes [from, from+len(dst)) of a complete
// buffer into dst, zeros past the buffer's length.
func (b *chunkBuf) copyOut(dst []byte, from int64) {
	n := 0
	if from < int64(len(b.data)) {
		n = copy(dst, b.data[from:])
	}
	clear(dst[n:])
}

// zero clears [lo, hi) of a complete buffer (bytes past its length are
// zeros already).
func (b *chunkBuf) zero(lo, hi int64) {
	hi = min(hi, int64(len(b.data)))
	if lo < hi {
		clear(b.data[lo:hi])
	}
}

// chunkLayers is what a reader copied, under the inode's lock, of one
// chunk's buffers for the range [lo, hi) it reads: the bytes of the
// topmost complete buffer (base, when hasBase; else the committed chunk is
// the bottom layer) and the overlays above it, top first.
type chunkLayers struct {
	base    []byte
	hasBase bool
	ovs     []*overlay
}

// captureLayers copies the buffered layers of a chunk for [lo, hi),
// from the top buffer down; nil when nothing of the chunk is buffered.
func captureLayers(lo, hi int64, bufs ...*chunkBuf) *chunkLayers {
	var l *chunkLayers
	for _, b := range bufs {
		if b == nil {
			continue
		}
		if l == nil {
			l = &chunkLayers{}
		}
		if b.ov != nil {
			l.ovs = append(l.ovs, b.ov.clip(lo, hi))
			continue
		}
		l.base = make([]byte, hi-lo)
		b.copyOut(l.base, lo)
		l.hasBase = true
		break
	}
	return l
}

// applyOverlays lays the captured overlays over out, the chunk's bytes
// [from, from+len(out)), bottom first.
func (l *chunkLayers) applyOverlays(out []byte, from int64) {
	for i := len(l.ovs) - 1; i >= 0; i-- {
		l.ovs[i].apply(out, from)
	}
}

// Handle is an open file. Handles of live views share their inode's state
// (buffers, cached record); handles of read-only views read the view.
type Handle struct {
	s      *Store
	v      View
	ino    uint64
	st     *inodeState // live views only; a table reference is held until Release
	chain  []viewPoint
	append bool
	write  bool
	ra     readahead
	// viewOpen is set on handles of read-only views, counted in s.cat.openViews.
	viewOpen bool
}

// Open opens a file. flags are open(2) flags: O_TRUNC truncates, O_APPEND
// makes every Write append.
func (s *Store) Open(v View, ino uint64, flags int) (*Handle, error) {
	acc := flags & syscall.O_ACCMODE
	write := acc == syscall.O_WRONLY || acc == syscall.O_RDWR
	if write && (v.ReadOnly || !v.Live()) {
		return nil, fmt.Errorf("open for writing: %w", ErrReadOnly)
	}
	chain, err := s.chain(v)
	if err != nil {
		return nil, err
	}
	h := &Handle{s: s, v: v, ino: ino, chain: chain, append: flags&syscall.O_APPEND != 0, write: write}
	if !v.Live() {
		rec, err := s.getInode(s.dbr(), chain, ino)
		if err != nil {
			return nil, err
		}
		if rec.Mode&sIFMT == sIFDIR && write {
			return nil, fmt.Errorf("open a directory for writing: %w", ErrIsDir)
		}
		if err := s.openView(chain[0]); err != nil {
			return nil, err
		}
		h.viewOpen = true
		return h, nil
	}
	st := s.inodes.acquire(inodeKey{v.Lineage, ino})
	rec, err := func() (inodeRec, error) {
		st.mu.Lock()
		defer st.mu.Unlock()
		rec, err := s.loadLocked(st, chain)
		if err == nil && rec.Mode&sIFMT == sIFDIR && write {
			err = fmt.Errorf("open a directory for writing: %w", ErrIsDir)
		}
		if err == nil {
			st.opens++
		}
		return rec, err
	}()
	if err != nil {
		s.inodes.release(st)
		return nil, err
	}
	h.st = st
	if flags&syscall.O_TRUNC != 0 && write && rec.Mode&sIFMT == sIFREG {
		if _, err := s.SetAttr(v, ino, SetAttrIn{Valid: SetSize}); err != nil {
			h.Release()
			return nil, err
		}
	}
	return h, nil
}

// loadLocked returns the live record of a locked state, reading it if needed.
func (s *Store) loadLocked(st *inodeState, chain []viewPoint) (inodeRec, error) {
	if st.stale {
		return inodeRec{}, fmt.Errorf("inode %d was rolled back: %w", st.key.ino, ErrStale)
	}
	if st.loaded {
		return st.rec, nil
	}
	rec, err := s.getInode(s.dbr(), chain, st.key.ino)
	if err != nil {
		return rec, err
	}
	st.rec, st.loaded, st.committedSize, st.own = rec, true, rec.Size, ownVersion{}
	return rec, nil
}

// Create creates and opens a regular file. With O_EXCL an existing name is
// ErrExists; without it an existing file is opened (and truncated with O_TRUNC).
func (s *Store) Create(v View, parent uint64, name string, mode, uid, gid uint32, flags int) (Attr, *Handle, error) {
	a, st, err := s.newNodeOpen(v, parent, name, inodeRec{Mode: sIFREG | mode&createModeBits, Uid: uid, Gid: gid}, true)
	if err == nil {
		// The new file's state is already loaded and open: no second read.
		chain, err := s.chain(v)
		if err != nil {
			st.mu.Lock()
			st.opens--
			st.mu.Unlock()
			s.inodes.release(st)
			return Attr{}, nil, err
		}
		acc := flags & syscall.O_ACCMODE
		h := &Handle{s: s, v: v, ino: a.Ino, chain: chain, st: st, append: flags&syscall.O_APPEND != 0,
			write: acc == syscall.O_WRONLY || acc == syscall.O_RDWR}
		return a, h, nil
	}
	if isExists(err) && flags&syscall.O_EXCL == 0 {
		a, err = s.Lookup(v, parent, name)
		if err == nil && a.IsDir() {
			err = fmt.Errorf("create %q: %w", name, ErrIsDir)
		}
	} else {
		flags &^= syscall.O_TRUNC
	}
	if err != nil {
		return Attr{}, nil, err
	}
	h, err := s.Open(v, a.Ino, flags)
	if err != nil {
		return Attr{}, nil, err
	}
	a, err = h.Attr()
	return a, h, err
}

// Attr returns the open file's attributes, including unflushed size.
func (h *Handle) Attr() (Attr, error) { return h.s.GetAttr(h.v, h.ino) }

// Release closes the handle; the last close of an unlinked file deletes it.
func (h *Handle) Release() error {
	if h.viewOpen {
		h.viewOpen = false
		return h.s.closeView(h.chain[0])
	}
	st := h.st
	if st == nil {
		return nil
	}
	h.st = nil
	st.mu.Lock()
	st.opens--
	last := st.opens == 0 && st.loaded && st.rec.Nlink == 0
	dirty := len(st.dirty) > 0 || st.recDirty
	st.mu.Unlock()
	var err error
	if dirty && !last {
		h.s.flusher.queue(st, sealAll)
	}
	if last {
		if derr := h.s.deleteOrphan(h.v, st); err == nil {
			err = derr
		}
	}
	h.s.inodes.release(st)
	return err
}

// deleteOrphan deletes an unlinked inode whose last handle closed.
func (s *Store) deleteOrphan(v View, st *inodeState) error {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.opens > 0 || !st.loaded || st.rec.Nlink > 0 {
		return nil
	}
	s.discardLocked(st)
	return s.deleteOrphanLocked(v, st)
}

// takeErr returns and clears the latched flush error of a locked state.
func takeErr(st *inodeState) error {
	err := st.err
	st.err = nil
	return err
}

// Flush serves close(2) of one descriptor: it returns a latched error and
// hands the buffered data to the flusher, which commits it in its next
// group (one pack sync for many files). It does not wait: close(2) never
// promised durability, and until the commit reads are served from the
// buffers.
func (h *Handle) Flush() error {
	st := h.st
	if st == nil {
		return nil
	}
	st.mu.Lock()
	err := takeErr(st)
	dirty := len(st.dirty) > 0 || st.recDirty
	st.mu.Unlock()
	if dirty {
		h.s.flusher.queue(st, sealAll)
	}
	return err
}

// Fsync makes the file's data and metadata durable.
func (h *Handle) Fsync(datasync bool) error {
	if h.st == nil {
		return nil
	}
	if err := h.s.flushInode(h.st, true); err != nil {
		return err
	}
	return h.s.syncWAL()
}

// syncWAL makes every committed batch durable; concurrent callers share
// Pebble's group commit.
func (s *Store) syncWAL() error {
	return s.logSync(syncOpt)
}

// Read reads into dst from off, returning a short count at end of file.
func (h *Handle) Read(dst []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read at %d: %w", off, ErrInvalid)
	}
	if h.st == nil {
		return h.readView(dst, off)
	}
	return h.readLive(dst, off)
}

// readView reads from a read-only view: nothing is buffered there.
func (h *Handle) readView(dst []byte, off int64) (int, error) {
	rec, err := h.s.getInode(h.s.dbr(), h.chain, h.ino)
	if err != nil {
		return 0, err
	}
	return h.s.readRange(h, rec, nil, dst, off)
}

func (h *Handle) readLive(dst []byte, off int64) (int, error) {
	rec, bufs, err := h.captureLive(dst, off)
	if err != nil {
		return 0, err
	}
	return h.s.readRange(h, rec, bufs, dst, off)
}

// captureLive copies, under the inode's lock, the record and what is
// buffered of the chunks [off, off+len(dst)) overlaps; chunks not buffered
// (and the committed bytes under overlays) are read after unlocking. A
// range at or past the end of file captures nothing: the kernel may read
// past a size a truncate just lowered (page cache or mmap read-around),
// and readRange answers it with EOF.
func (h *Handle) captureLive(dst []byte, off int64) (inodeRec, map[uint64]*chunkLayers, error) {
	st := h.st
	st.mu.Lock()
	defer st.mu.Unlock()
	rec, err := h.s.loadLocked(st, h.chain)
	if err != nil {
		return inodeRec{}, nil, err
	}
	end := min(off+int64(len(dst)), int64(rec.Size))
	if off >= end {
		return rec, nil, nil
	}
	var bufs map[uint64]*chunkLayers
	cs := int64(1) << rec.ChunkShift
	for idx := off / cs; idx*cs < end; idx++ {
		lo, hi := max(off, idx*cs), min(end, (idx+1)*cs)
		if l := captureLayers(lo-idx*cs, hi-idx*cs, st.dirty[uint64(idx)], st.sealed[uint64(idx)]); l != nil {
			if bufs == nil {
				bufs = map[uint64]*chunkLayers{}
			}
			bufs[uint64(idx)] = l
		}
	}
	if rec.Flags&inodeInline != 0 {
		rec.Data = append([]byte(nil), rec.Data...)
	}
	return rec, bufs, nil
}

// readRange reads [off, off+len(dst)) of a file whose record is rec. bufs
// holds, by chunk index, the layers copied from buffers.
func (s *Store) readRange(h *Handle, rec inodeRec, bufs map[uint64]*chunkLayers, dst []byte, off int64) (int, error) {
	size := int64(rec.Size)
	if off >= size {
		return 0, nil
	}
	end := min(off+int64(len(dst)), size)
	dst = dst[:end-off]
	if rec.Flags&inodeInline != 0 {
		n := copy(dst, rec.Data[min(off, int64(len(rec.Data))):])
		clear(dst[n:])
		return len(dst), nil
	}
	cs := int64(1) << rec.ChunkShift
	// A read that does not continue a sequential stream, of less than
	// half a chunk, reads only the pages it needs of a chunk not in
	// memory (readChunkPart); a sequential one, or a big one (the
	// kernel's read-ahead, maybe arriving out of order), reads whole
	// chunks: straight into dst when it holds the chunk from its start
	// (readChunkInto), else through the chunk cache (readChunk).
	random := !h.ra.sequential(off)
	for idx := off / cs; idx*cs < end; idx++ {
		lo, hi := max(off, idx*cs), min(end, (idx+1)*cs)
		out := dst[lo-off : hi-off]
		l := bufs[uint64(idx)]
		if l != nil && l.hasBase {
			copy(out, l.base)
			l.applyOverlays(out, lo-idx*cs)
			continue
		}
		var n int
		var err error
		switch {
		case random && 2*(hi-lo) < cs:
			var data []byte
			data, err = s.readChunkPart(h.chain, h.ino, rec.Cgen, uint64(idx), lo-idx*cs, hi-idx*cs)
			n = copy(out, data)
		case lo == idx*cs:
			n, err = s.readChunkInto(h.chain, h.ino, rec.Cgen, uint64(idx), out)
		default:
			var data []byte // the chunk's bytes from lo on
			data, err = s.readChunk(h.chain, h.ino, rec.Cgen, uint64(idx))
			if c := lo - idx*cs; c < int64(len(data)) {
				n = copy(out, data[c:])
			}
		}
		if err != nil {
			return int(lo - off), err
		}
		clear(out[n:])
		if l != nil {
			l.applyOverlays(out, lo-idx*cs)
		}
	}
	h.ra.observe(s, h, rec, off, end)
	return len(dst), nil
}

// readChunk returns the committed bytes of a chunk (shorter than the chunk
// size, or nil for a hole; the rest reads as zeros).
func (s *Store) readChunk(chain []viewPoint, ino uint64, cgen uint32, idx uint64) ([]byte, error) {
	c, ok, err := s.committedChunk(chain, ino, cgen, idx)
	if !ok || err != nil {
		return nil, err
	}
	return s.readHash(c.Hash, c.Length, c.Hint)
}

// readChunkInto reads a chunk's committed bytes from its start into out
// and returns how many it wrote (the chunk's length, at most len(out);
// none for a hole: the caller zeroes the rest). When out holds the whole
// chunk and the chunk is neither cached nor being loaded, its record is
// read into out itself (loadInto): no buffer of our own, no copy, nothing
// cached (the kernel's page cache keeps what a reader read, and the
// read-ahead has the kernel read the records ahead: readahead.observe).
// Otherwise, or when that read met a bad copy or failed, it takes the
// bytes as readChunk does, which reads around bad copies and has them
// rewritten.
func (s *Store) readChunkInto(chain []viewPoint, ino uint64, cgen uint32, idx uint64, out []byte) (int, error) {
	c, ok, err := s.committedChunk(chain, ino, cgen, idx)
	if !ok || err != nil {
		return 0, err
	}
	if int64(c.Length) <= int64(len(out)) && !s.cache.busy(c.Hash) {
		if s.loadInto(c.Hash, c.Hint, out[:c.Length]) {
			return int(c.Length), nil
		}
	}
	d, err := s.readHash(c.Hash, c.Length, c.Hint)
	if err != nil {
		return 0, err
	}
	return copy(out, d), nil
}

// loadInto reads a stored chunk into dst (its length) from its location
// hint, or else from where its chunkref says it is, verified as a whole
// read is (pool.ReadInto). It reports false when that came across a bad
// copy or failed, with dst holding bytes that must not be used: the
// caller then loads the chunk whole (readHash), which handles bad copies
// (read repair, damage records) in one place.
func (s *Store) loadInto(h pool.Hash, hint []pool.Location, dst []byte) bool {
	e := s.grace.enter()
	defer s.grace.exit(e)
	s.pool.NoteForeground() // a scrub yields to this read (scrubpace.go)
	locs := hint
	if len(locs) == 0 {
		rec, found, err := getChunkRefFrom(s.db, h)
		if err != nil || !found {
			return false
		}
		locs = rec.Locs
	}
	bad, err := s.pool.ReadAnyIntoReport(locs, h, dst)
	return err == nil && len(bad) == 0
}

// committedChunk returns the committed record of a chunk as the view
// chain sees it; ok is false for a chunk never written or a hole.
func (s *Store) committedChunk(chain []viewPoint, ino uint64, cgen uint32, idx uint64) (c chunkRec, ok bool, err error) {
	ver, err := resolve(s.dbr(), chain, func(lin uint32) []byte { return chunkPrefix(lin, ino, cgen, idx) })
	if err != nil {
		return c, false, fmt.Errorf("read chunk %d of inode %d: %w", idx, ino, err)
	}
	if !ver.found {
		return c, false, nil
	}
	c, err = decodeChunk(ver.value)
	if err != nil || c.Kind == chunkHole {
		return c, false, err
	}
	return c, true, nil
}

// readChunkPart returns the committed bytes [lo, hi) of a chunk (fewer
// when the chunk is shorter, none for a hole; the rest reads as zeros).
// From a chunk in memory, or being loaded whole, it takes them there;
// else it reads only the pages holding them (pool.ReadRange), verified
// page by page, and keeps nothing: the kernel's page cache holds what a
// random reader read. The store's chunk cache keeps whole chunks only.
// A read that came across a bad copy, or found no good one this way,
// loads the chunk whole instead (readHash), which reads around the bad
// copies and has them rewritten (readrepair.go).
func (s *Store) readChunkPart(chain []viewPoint, ino uint64, cgen uint32, idx uint64, lo, hi int64) ([]byte, error) {
	c, ok, err := s.committedChunk(chain, ino, cgen, idx)
	if !ok || err != nil {
		return nil, err
	}
	hi = min(hi, int64(c.Length))
	if lo >= hi {
		return nil, nil
	}
	if d, ok := s.cache.get(c.Hash); ok {
		return d[lo:hi], nil
	}
	cc := s.cache
	cc.mu.Lock()
	l := cc.loading[c.Hash]
	cc.mu.Unlock()
	if l == nil {
		if d, ok := s.loadPart(c.Hash, c.Length, c.Hint, lo, hi); ok {
			return d, nil
		}
	}
	d, err := s.readHash(c.Hash, c.Length, c.Hint)
	if err != nil {
		return nil, err
	}
	if int64(len(d)) < hi {
		return nil, fmt.Errorf("chunk %x: %d bytes, want %d: %w", c.Hash[:8], len(d), c.Length, ErrIO)
	}
	return d[lo:hi], nil
}

// loadPart reads bytes [lo, hi) of a stored chunk from its location hint,
// or else from where its chunkref says it is, verified by the pages'
// checksums. It reports false, and the caller loads the chunk whole, when
// that read came across a bad copy or failed: the whole read handles them
// (read repair, damage records) in one place.
func (s *Store) loadPart(h pool.Hash, length uint32, hint []pool.Location, lo, hi int64) ([]byte, bool) {
	e := s.grace.enter()
	defer s.grace.exit(e)
	s.pool.NoteForeground() // a scrub yields to this read (scrubpace.go)
	locs := hint
	if len(locs) == 0 {
		rec, found, err := getChunkRefFrom(s.db, h)
		if err != nil || !found {
			return nil, false
		}
		locs = rec.Locs
	}
	data, from, bad, err := s.pool.ReadRangeAnyReport(locs, h, int(lo), int(hi-lo))
	if err != nil || len(bad) > 0 {
		return nil, false
	}
	if from == 0 && len(data) == int(length) {
		// A version 1 record: read whole, as good to keep as any.
		s.cache.putOwned(h, data)
	}
	if int64(from) > lo || int64(from)+int64(len(data)) < hi {
		return nil, false
	}
	return data[lo-int64(from) : hi-int64(from)], true
}

// orphanReleaseWait bounds how long a write refused for the quota waits
// for unlinked files of its lineage whose last handle is about to be
// released (awaitOrphanRelease).
const orphanReleaseWait = time.Second

// awaitOrphanRelease reports whether lineage lin held unlinked files still
// open (other than self) and, if so, waits until none is left or
// orphanReleaseWait has passed. A file open for real stays counted, so the
// wait then ends by time: a write past the quota costs at most that once.
func (s *Store) awaitOrphanRelease(lin uint32, self *inodeState) bool {
	pending := func() bool {
		found := false
		for _, st := range s.inodes.all() {
			if !found && st != self && st.key.lin == lin && st.mu.TryLock() {
				found = st.loaded && st.opens > 0 && st.rec.Nlink == 0
				st.mu.Unlock()
			}
			s.inodes.release(st)
		}
		return found
	}
	if !pending() {
		return false
	}
	for deadline := time.Now().Add(orphanReleaseWait); time.Now().Before(deadline); {
		time.Sleep(5 * time.Millisecond)
		if !pending() {
			break
		}
	}
	return true
}

// Write writes data at off (at the end of file for O_APPEND handles).
func (h *Handle) Write(data []byte, off int64) (int, error) {
	if h.st == nil || !h.write {
		return 0, fmt.Errorf("write: %w", ErrReadOnly)
	}
	s, st := h.s, h.st
	l, err := s.lineageOf(h.v)
	if err != nil {
		return 0, err
	}
	if err := s.meta.room(true); err != nil {
		return 0, fmt.Errorf("write: %w", err)
	}
	write := func() (int, bool, error) {
		st.mu.Lock()
		defer st.mu.Unlock()
		return s.writeLocked(h, l, st, data, off)
	}
	n, full, err := write()
	if errors.Is(err, ErrQuota) && s.awaitOrphanRelease(l.rec.ID, st) {
		// The space of a file unlinked after its last close(2) was
		// still counted: the kernel sends that close's RELEASE in the
		// background, and it can reach us after the UNLINK and this
		// WRITE. It is back now; ask again (ext4 likewise retries an
		// allocation once the blocks being freed are free).
		n, full, err = write()
	}
	switch {
	case s.dirtyPressure():
		// Past three quarters of the dirty limit the flusher relieves
		// the file in the background (its full and old chunks, buffers
		// and densest overlays: sealRelieve), so that writers seldom
		// wait for the limit.
		s.flusher.queue(st, sealRelieve)
	case full:
		s.flusher.queue(st, sealFull)
	}
	s.waitDirty(st)
	return n, err
}

func (s *Store) writeLocked(h *Handle, l *lineage, st *inodeState, data []byte, off int64) (int, bool, error) {
	if err := takeErr(st); err != nil {
		return 0, false, err
	}
	rec, err := s.loadLocked(st, h.chain)
	if err != nil {
		return 0, false, err
	}
	if rec.Nlink == 0 && st.opens == 0 {
		return 0, false, fmt.Errorf("write: %w", ErrStale)
	}
	if h.append {
		off = int64(rec.Size)
	}
	end := off + int64(len(data))
	if off < 0 || end > maxFileSize {
		return 0, false, fmt.Errorf("write to %d: %w", end, ErrFileTooBig)
	}
	grow := end - int64(rec.Size)
	if st.preallocEnd > rec.Size { // counted already by a KEEP_SIZE fallocate
		grow -= int64(min(uint64(end), st.preallocEnd) - rec.Size)
	}
	if grow > 0 && l.vol.quota() > 0 && l.used.Load()+grow > l.vol.quota() {
		return 0, false, fmt.Errorf("write to %d: %w", end, ErrQuota)
	}
	if rec.Flags&inodeInline != 0 && end <= int64(s.opts.InlineMax) {
		return s.writeInline(l, st, data, off)
	}
	if rec.Flags&inodeInline != 0 {
		if err := s.unInline(h, st); err != nil {
			return 0, false, err
		}
	}
	cs := int64(1) << st.rec.ChunkShift
	anyFull := false
	done := 0
	for done < len(data) {
		pos := off + int64(done)
		idx := uint64(pos / cs)
		c := pos % cs
		n := min(int64(len(data)-done), cs-c)
		need := needWrite
		if c == 0 && n == cs {
			need = needWhole
		}
		b, err := s.dirtyBuf(h, st, idx, need)
		if err == nil && b.ov != nil && !b.ov.fits(c, n) {
			err = s.materialize(h.chain, st, idx, b)
		}
		if err != nil {
			s.growLocked(l, st, off+int64(done))
			return done, anyFull, err
		}
		toEnd := c+n == cs
		if b.ov != nil {
			s.dirtyBytes.Add(b.ov.write(c, data[done:done+int(n)]))
			if b.ov.covers(cs) {
				s.fillOverlay(b, nil) // nothing below shows through
			}
			toEnd = b.ov == nil // only a whole overlay counts as written to the end
		} else {
			b.grow(s, c+n, cs)
			copy(b.data[c:c+n], data[done:done+int(n)])
		}
		if toEnd && !b.full {
			b.full = true
			st.fullBytes += cs
			// Background flushes go in batches: one pack sync per batch.
			anyFull = anyFull || st.fullBytes >= flushBatchBytes
		}
		done += int(n)
	}
	s.growLocked(l, st, end)
	return done, anyFull, nil
}

// growLocked records a write ending at end: size and times.
func (s *Store) growLocked(l *lineage, st *inodeState, end int64) {
	if end > int64(st.rec.Size) {
		l.used.Add(end - int64(st.rec.Size) - st.growIntoPrealloc(uint64(end)))
		st.rec.Size = uint64(end)
	}
	ts := now()
	st.rec.Mtime, st.rec.Ctime = ts, ts
	st.recDirty = true
	if st.since.IsZero() {
		st.since = time.Now()
	}
}

func (s *Store) writeInline(l *lineage, st *inodeState, data []byte, off int64) (int, bool, error) {
	end := off + int64(len(data))
	d := st.rec.Data
	if int64(len(d)) < end {
		d = append(d, make([]byte, end-int64(len(d)))...)
	}
	if int64(len(d)) < int64(st.rec.Size) {
		d = append(d, make([]byte, int64(st.rec.Size)-int64(len(d)))...)
	}
	copy(d[off:], data)
	st.rec.Data = d
	s.growLocked(l, st, end)
	return len(data), false, nil
}

// unInline moves an inline file's bytes into chunk 0's buffer.
func (s *Store) unInline(h *Handle, st *inodeState) error {
	data := st.rec.Data
	st.rec.Flags &^= inodeInline
	st.rec.Data = nil
	st.recDirty = true
	if st.rec.Size == 0 {
		return nil
	}
	b, err := s.dirtyBuf(h, st, 0, needWhole)
	if err != nil {
		st.rec.Flags |= inodeInline
		st.rec.Data = data
		return err
	}
	b.grow(s, int64(len(data)), int64(1)<<st.rec.ChunkShift)
	copy(b.data, data)
	return nil
}

// bufNeed says what a caller of dirtyBuf does with the buffer.
type bufNeed int

const (
	// needWhole: the caller overwrites the whole chunk; its old bytes are not read.
	needWhole bufNeed = iota
	// needWrite: a partial write; an overlay will do for a stored chunk.
	needWrite
	// needBytes: the caller changes the chunk's bytes in place (truncate,
	// zero range): the buffer must hold them all.
	needBytes
)

// dirtyBuf returns the writable buffer of chunk idx, creating it (and
// reserving pool space for it) if needed.
func (s *Store) dirtyBuf(h *Handle, st *inodeState, idx uint64, need bufNeed) (*chunkBuf, error) {
	if b := st.dirty[idx]; b != nil {
		if b.ov != nil && need == needBytes {
			if err := s.materialize(h.chain, st, idx, b); err != nil {
				return nil, err
			}
		}
		return b, nil
	}
	cs := int64(1) << st.rec.ChunkShift
	if r := st.prealloc[idx]; r > 0 {
		// The chunk's first write since fallocate: its space is held.
		delete(st.prealloc, idx)
		if r != cs {
			s.pool.Unreserve(r)
			r = 0
		}
		if r == 0 {
			if err := s.pool.Reserve(cs); err != nil {
				return nil, fmt.Errorf("reserve %d bytes: %w", cs, ErrNoSpace)
			}
		}
	} else if err := s.pool.Reserve(cs); err != nil {
		return nil, fmt.Errorf("reserve %d bytes: %w", cs, ErrNoSpace)
	}
	b := &chunkBuf{reserved: cs, since: time.Now()}
	sb := st.sealed[idx]
	stored := sb != nil || int64(idx)*cs < int64(st.rec.Size)
	switch {
	case need == needWhole || !stored:
	case sb != nil && sb.ov == nil:
		b.grow(s, int64(len(sb.data)), cs)
		copy(b.data, sb.data)
	case need == needWrite:
		b.ov = newOverlay(cs)
	default:
		data, err := s.bytesUnder(h.chain, st, idx, b)
		if err != nil {
			s.pool.Unreserve(cs)
			return nil, err
		}
		b.grow(s, int64(len(data)), cs)
		copy(b.data, data)
	}
	if st.dirty == nil {
		st.dirty = map[uint64]*chunkBuf{}
	}
	st.dirty[idx] = b
	return b, nil
}

// bytesUnder returns the bytes of chunk idx below buffer b of a locked
// state: the sealed buffer's (with the committed chunk under it if it is
// an overlay), or the committed chunk's. The result may be shared: callers
// copy it.
func (s *Store) bytesUnder(chain []viewPoint, st *inodeState, idx uint64, b *chunkBuf) ([]byte, error) {
	sb := st.sealed[idx]
	if sb != nil && sb != b && sb.ov == nil {
		return sb.data, nil
	}
	data, err := s.readChunk(chain, st.key.ino, st.rec.Cgen, idx)
	if err != nil || sb == nil || sb == b {
		return data, err
	}
	out := make([]byte, max(int64(len(data)), sb.ov.extent()))
	copy(out, data)
	sb.ov.apply(out, 0)
	return out, nil
}

// materialize turns the overlay of dirty buffer b of a locked state into a
// complete buffer: the bytes below it with the overlay laid over them.
func (s *Store) materialize(chain []viewPoint, st *inodeState, idx uint64, b *chunkBuf) error {
	base, err := s.bytesUnder(chain, st, idx, b)
	if err != nil {
		return err
	}
	s.fillOverlay(b, base)
	return nil
}

// fillOverlay makes b complete from base, the bytes below its overlay.
// Caller holds the inode's mu (or owns b alone).
func (s *Store) fillOverlay(b *chunkBuf, base []byte) {
	ov := b.ov
	data := make([]byte, max(int64(len(base)), ov.extent()))
	copy(data, base)
	ov.apply(data, 0)
	s.dirtyBytes.Add(int64(len(data)) - ov.mem)
	b.data, b.ov = data, nil
}

// discardLocked drops every buffer of a locked state (the file is gone or
// truncated to zero) and gives back their reservations.
func (s *Store) discardLocked(st *inodeState) {
	for idx := range st.dirty {
		s.dropDirty(st, idx)
	}
	st.sealed = nil
	s.dropPrealloc(st, 0)
	st.preallocEnd = 0 // its bytes leave the used count with the caller's
}

// dropDirty forgets one dirty buffer.
func (s *Store) dropDirty(st *inodeState, idx uint64) {
	b := st.dirty[idx]
	if b == nil {
		return
	}
	delete(st.dirty, idx)
	s.pool.Unreserve(b.reserved)
	s.dirtyBytes.Add(-b.mem())
	s.flusher.wake()
}
