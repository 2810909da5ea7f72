package store

import "fmt"

// Preallocation: fallocate(2) with mode 0 or FALLOC_FL_KEEP_SIZE.
//
// A copy-on-write store writes every change to new pack space, so it
// cannot set blocks aside in place as ext4 does. What it promises instead,
// as btrfs does for a preallocated extent: the first write into each chunk
// of the range after the fallocate does not fail for lack of space. The
// rules:
//
//   - Pool: fallocate reserves one chunk of pool space (times the copies)
//     for every chunk the range touches that holds no reservation yet, in
//     one pool.Reserve, and keeps it on the inode's state (prealloc). The
//     chunk's first write takes that reservation for its buffer instead
//     of reserving anew (dirtyBuf); the flush spends it as any write's.
//     Later writes into the chunk reserve as usual: like btrfs after the
//     first write into a preallocated extent, an overwrite is a new copy.
//   - Quota: mode 0 grows the size, which counts in the volume's used
//     bytes at once, as a truncate does. KEEP_SIZE counts the bytes past
//     the size in the used bytes too (preallocEnd), so that writes of
//     other files cannot take the quota the range needs; a write or
//     truncate that grows the file into the range is not counted again.
//   - Refusals leave nothing behind: past the quota is ErrQuota and past
//     the pool's space ErrNoSpace, both checked before anything changes.
//   - Reservations end with the first write of each chunk, a truncate
//     below them (and every truncate, for the KEEP_SIZE range past the
//     size), the file's deletion and a rollback of its lineage. An inode
//     holding one stays in the inode table until then.
//   - Snapshots: a snapshot shares the file's chunks but not the
//     reservation, which stays with the live file: the first write into
//     each chunk still has its space after a snapshot (stronger than
//     btrfs, where a snapshot makes the preallocated extent shared and its
//     first write a copy that can fail). A snapshot's own view is
//     read-only, and a branch forked from it starts without reservations.
//   - Reservations live in the daemon's memory: they are not written to
//     the metadata, so after the pool is closed (unmount, crash) the size
//     set by mode 0 stays, and the space promise ends.
//   - st_blocks does not count a reservation (no pack bytes exist yet).
func (h *Handle) preallocate(off, n int64, keepSize bool) error {
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
	l := t.l
	counted := max(int64(rec.Size), int64(st.preallocEnd))
	if grow := end - counted; grow > 0 && l.vol.quota() > 0 && l.used.Load()+grow > l.vol.quota() {
		return fmt.Errorf("fallocate to %d: %w", end, ErrQuota)
	}
	cs := int64(1) << rec.ChunkShift
	if rec.ChunkShift == 0 {
		cs = int64(l.vol.chunkSize())
	}
	var idxs []uint64
	for idx := off / cs; idx*cs < end; idx++ {
		if st.prealloc[uint64(idx)] == 0 {
			idxs = append(idxs, uint64(idx))
		}
	}
	need := int64(len(idxs)) * cs
	if err := s.pool.Reserve(need); err != nil {
		return fmt.Errorf("fallocate %d bytes: %w", need, ErrNoSpace)
	}
	if !keepSize && end > int64(rec.Size) {
		if rec, err = t.truncate(st, rec, uint64(end)); err != nil {
			distrustUnlessRefused(st, err)
			s.pool.Unreserve(need)
			return err
		}
		ts := now()
		rec.Mtime, rec.Ctime = ts, ts
		if err := t.commitInode(st, rec); err != nil {
			s.pool.Unreserve(need)
			return err
		}
	}
	if st.prealloc == nil && len(idxs) > 0 {
		st.prealloc = map[uint64]int64{}
	}
	for _, idx := range idxs {
		st.prealloc[idx] = cs
	}
	if keepSize && uint64(end) > rec.Size && uint64(end) > st.preallocEnd {
		l.used.Add(end - max(int64(rec.Size), int64(st.preallocEnd)))
		st.preallocEnd = uint64(end)
	}
	return nil
}

// growIntoPrealloc is called as a locked file grows to end: it returns the
// bytes of the growth a KEEP_SIZE reservation had counted already, and
// shrinks the reservation past the size accordingly.
func (st *inodeState) growIntoPrealloc(end uint64) int64 {
	if st.preallocEnd <= st.rec.Size {
		return 0
	}
	covered := int64(min(end, st.preallocEnd) - st.rec.Size)
	if end >= st.preallocEnd {
		st.preallocEnd = 0
	}
	return covered
}

// dropPrealloc returns the pool reservations of a locked file's chunks at
// index from and above.
func (s *Store) dropPrealloc(st *inodeState, from uint64) {
	for idx, r := range st.prealloc {
		if idx >= from {
			s.pool.Unreserve(r)
			delete(st.prealloc, idx)
		}
	}
}

// preallocPast sums the KEEP_SIZE reservations past the sizes of lineage
// lin's files: what its in-memory used bytes hold beyond the sizes.
func (s *Store) preallocPast(lin uint32) int64 {
	var n int64
	for _, st := range s.inodes.all() {
		if st.key.lin == lin {
			st.withLock(func() {
				if st.preallocEnd > st.rec.Size {
					n += int64(st.preallocEnd - st.rec.Size)
				}
			})
		}
		s.inodes.release(st)
	}
	return n
}
