package store

import (
	"errors"
	"fmt"
	"io"

	"github.com/snapfs/snapfs/pool"
)

// File copies by reference (copy_file_range(2), which coreutils cp uses).
//
// Chunks are content-addressed and reference-counted pool-wide, so a copy
// of a whole chunk is a new chunk version naming the same hash and one more
// reference in its chunkref: no byte is read or written. CopyRange shares
// every chunk of the destination range that the source covers whole, when
// the two files use one chunk size and the offsets are equally aligned
// (srcOff ≡ dstOff modulo the chunk size); bytes at the edges, and every
// range that cannot be shared, are copied through the handles as a read and
// a write. The last chunk of the source is shared too when the copy runs to
// the source's end of file and to or past the destination's: bytes past a
// file's end are zeros in its last chunk (truncate zeroes them, DESIGN-NOTES
// 2), so the destination reads the same.
//
// The reference rules:
//   - a shared chunk is a version of the destination like one a flush
//     writes: put applies the in-place rule and the deadlist to the
//     version it supersedes, and the txn adds +1 to the hash's chunkref
//     (applyRefs), in the batch that writes the version;
//   - the +1 must not race a free: each shared hash is claimed as a
//     flush's dedup hit claims it (refs.go: claim), so reclaim leaves it
//     alone until the batch has committed, and a hash whose chunkref went
//     meanwhile (its last reference released by a rollback or an
//     overwrite) is not shared but copied as bytes. The source inode is
//     locked as well, so its own writers and flushes wait;
//   - a source chunk still in a write buffer (written after the flush that
//     starts the copy) is not shared: its range is copied as bytes;
//   - from then on the chunk is one more reference like any other:
//     overwrites, truncates, snapshots, destroys and rollback release it
//     through the same paths, and Check counts it.
//
// Views may differ (a snapshot into the live volume, one dataset into
// another) as long as they are in this store: one pool.

// maxCopyRange bounds the bytes one CopyRange call copies: FUSE replies
// with a 32-bit count. Callers loop, as they do for a short write.
const maxCopyRange = 1 << 30

// CopyRange copies n bytes at srcOff of src's file to dstOff of dst's,
// sharing whole chunks by reference (see above), and returns the bytes
// copied: fewer than n at the source's end of file, or when n exceeds
// maxCopyRange. Ranges that overlap within one file are ErrInvalid (as
// ext4); a destination in a read-only view is ErrReadOnly; handles of two
// stores are ErrCrossView.
func (s *Store) CopyRange(src *Handle, srcOff int64, dst *Handle, dstOff int64, n int64) (int64, error) {
	switch {
	case src.s != s || dst.s != s:
		return 0, fmt.Errorf("copy between pools: %w", ErrCrossView)
	case dst.st == nil || !dst.write:
		return 0, fmt.Errorf("copy into a read-only file: %w", ErrReadOnly)
	case srcOff < 0 || dstOff < 0 || n < 0:
		return 0, fmt.Errorf("copy %d bytes from %d to %d: %w", n, srcOff, dstOff, ErrInvalid)
	case src.v.Lineage == dst.v.Lineage && src.v.Live() && src.ino == dst.ino &&
		srcOff < dstOff+n && dstOff < srcOff+n:
		return 0, fmt.Errorf("copy within a file onto its own range: %w", ErrInvalid)
	case dstOff+n > maxFileSize:
		return 0, fmt.Errorf("copy to %d: %w", dstOff+n, ErrFileTooBig)
	}
	n = min(n, maxCopyRange)
	if src.st != nil {
		// Stored chunks must be the truth for what is shared.
		if err := s.flushInode(src.st, true); err != nil {
			return 0, err
		}
	}
	sa, err := src.Attr()
	if err != nil {
		return 0, err
	}
	if srcOff >= int64(sa.Size) || n == 0 {
		return 0, nil
	}
	n = min(n, int64(sa.Size)-srcOff)
	shared, err := s.shareChunks(src, srcOff, dst, dstOff, n)
	if err != nil {
		return 0, err
	}
	// Copy what was not shared, in order.
	pos := int64(0)
	for _, r := range shared {
		if err := copyBytes(src, srcOff+pos, dst, dstOff+pos, r.from-pos); err != nil {
			return 0, err
		}
		pos = r.to
	}
	if err := copyBytes(src, srcOff+pos, dst, dstOff+pos, n-pos); err != nil {
		return 0, err
	}
	return n, nil
}

// copySpan is a range [from, to) of a copy, relative to its start.
type copySpan struct{ from, to int64 }

// copyBytes copies n bytes by reading src and writing dst.
func copyBytes(src *Handle, srcOff int64, dst *Handle, dstOff int64, n int64) error {
	if n <= 0 {
		return nil
	}
	buf := make([]byte, min(n, 1<<20))
	for n > 0 {
		k := int(min(n, int64(len(buf))))
		got, err := src.Read(buf[:k], srcOff)
		if err != nil && !errors.Is(err, io.EOF) {
			return err
		}
		if got < k {
			clear(buf[got:k]) // the source shrank meanwhile: zeros, as a hole reads
		}
		if _, err := dst.Write(buf[:k], dstOff); err != nil {
			return err
		}
		srcOff, dstOff, n = srcOff+int64(k), dstOff+int64(k), n-int64(k)
	}
	return nil
}

// shareChunks writes, in one txn of the destination's lineage, a version
// of every destination chunk that can be shared (see the file comment) and
// the destination's new size, and returns the ranges it shared (relative
// to the copy's start, in order). Nothing is shared when the layouts
// differ; the caller copies everything else.
func (s *Store) shareChunks(src *Handle, srcOff int64, dst *Handle, dstOff int64, n int64) ([]copySpan, error) {
	t, err := s.begin(dst.v)
	if err != nil {
		return nil, err
	}
	defer t.abort()
	unlock := s.lockPair(src, dst)
	defer unlock()
	t.locked()
	dstSt := dst.st
	drec, err := t.inode(dstSt)
	if err != nil {
		return nil, err
	}
	if drec.Mode&sIFMT != sIFREG {
		return nil, fmt.Errorf("copy into inode %d: %w", dst.ino, ErrInvalid)
	}
	srec := drec
	if src.st == nil || src.st != dstSt {
		if srec, err = s.sourceRecord(t, src); err != nil {
			return nil, err
		}
	}
	cs := int64(1) << drec.ChunkShift
	switch {
	case srec.ChunkShift != drec.ChunkShift, srec.Flags&inodeInline != 0,
		drec.Flags&inodeInline != 0 && len(drec.Data) > 0,
		(srcOff-dstOff)%cs != 0:
		return nil, nil
	}
	first := (dstOff + cs - 1) / cs // first destination chunk covered whole
	end := (dstOff + n) / cs        // chunks [first, end) are covered whole
	if (dstOff+n)%cs != 0 && srcOff+n == int64(srec.Size) && dstOff+n >= int64(drec.Size) {
		end++ // the source's last chunk, to its end of file
	}
	if first >= end {
		return nil, nil
	}
	newSize := max(int64(drec.Size), dstOff+n)
	covered := int64(0) // growth a KEEP_SIZE fallocate counted already
	if dstSt.preallocEnd > drec.Size {
		covered = min(newSize, int64(dstSt.preallocEnd)) - int64(drec.Size)
	}
	if grow := newSize - int64(drec.Size) - covered; grow > 0 && t.l.vol.quota() > 0 && t.l.used.Load()+grow > t.l.vol.quota() {
		return nil, fmt.Errorf("copy to %d: %w", newSize, ErrQuota)
	}
	if drec.Flags&inodeInline != 0 { // empty and inline: its chunks start now
		drec.Flags &^= inodeInline
		drec.Data = nil
	}
	shift := (srcOff - dstOff) / cs
	hole := chunkRec{Kind: chunkHole}.encode()
	t.newRc = map[pool.Hash]chunkRefRec{}
	var claimed []pool.Hash
	defer func() { // after the commit, as a flush's claims
		for _, h := range claimed {
			s.unclaim(h)
		}
	}()
	var shared []copySpan
	blocks := int64(drec.Blocks)
	for j := first; j < end; j++ {
		i := uint64(j + shift)
		if src.st != nil && (src.st.dirty[i] != nil || src.st.sealed[i] != nil) {
			continue // written since the flush: copied as bytes
		}
		ver, err := resolve(t, src.chain, func(lin uint32) []byte { return chunkPrefix(lin, src.ino, srec.Cgen, i) })
		if err != nil {
			return nil, err
		}
		c := chunkRec{Kind: chunkHole}
		if ver.found {
			if c, err = decodeChunk(ver.value); err != nil {
				return nil, fmt.Errorf("chunk %d of inode %d: %w", i, src.ino, err)
			}
		}
		if c.Kind == chunkData {
			// Claimed as a flush's dedup hit is: no free can race the +1.
			locs, role, err := s.claim(c.Hash)
			if err != nil {
				return nil, err
			}
			claimed = append(claimed, c.Hash)
			switch role {
			case claimAppend: // freed since the source's version was read
				s.settle(c.Hash, nil)
				continue
			case claimRaise: // under-replicated: scrub raises it, not a copy
				s.settle(c.Hash, locs)
			}
			t.newRc[c.Hash] = chunkRefRec{Length: c.Length, Locs: locs}
		}
		idx := uint64(j)
		s.dropDirty(dstSt, idx)
		delete(dstSt.sealed, idx)
		p := chunkPrefix(t.l.rec.ID, dst.ino, drec.Cgen, idx)
		dver, err := resolve(t, t.chain, func(lin uint32) []byte { return chunkPrefix(lin, dst.ino, drec.Cgen, idx) })
		if err != nil {
			return nil, err
		}
		oldLen := int64(0)
		if dver.found {
			if old, err := decodeChunk(dver.value); err == nil && old.Kind == chunkData {
				oldLen = int64(old.Length)
			}
		}
		switch {
		case c.Kind == chunkData:
			t.ref(c.Hash, 1)
			if err := t.put(p, chunkRec{Kind: chunkData, Hash: c.Hash, Length: c.Length, Hint: c.Hint}.encode()); err != nil {
				return nil, err
			}
		case dver.found:
			if err := t.put(p, hole); err != nil {
				return nil, err
			}
		}
		blocks += (int64(c.Length)+511)/512 - (oldLen+511)/512
		from, to := max(j*cs-dstOff, 0), min((j+1)*cs-dstOff, n)
		if k := len(shared) - 1; k >= 0 && shared[k].to == from {
			shared[k].to = to
		} else {
			shared = append(shared, copySpan{from, to})
		}
	}
	if len(shared) == 0 {
		return nil, nil
	}
	t.usedMem += newSize - int64(drec.Size) - dstSt.growIntoPrealloc(uint64(newSize))
	drec.Size = uint64(newSize)
	drec.Blocks = uint64(max(blocks, 0))
	ts := now()
	drec.Mtime, drec.Ctime = ts, ts
	if err := t.putInode(dstSt, drec); err != nil {
		dstSt.loaded = false
		return nil, err
	}
	if err := t.commit(); err != nil {
		dstSt.loaded = false
		return nil, err
	}
	return shared, nil
}

// sourceRecord returns the current record of the source file: the live
// state's (with its unflushed size) when it is loaded, else the stored one.
func (s *Store) sourceRecord(t *txn, src *Handle) (inodeRec, error) {
	if src.st != nil && src.st.loaded {
		return src.st.rec, nil
	}
	rec, err := s.getInode(t, src.chain, src.ino)
	if err != nil {
		return rec, err
	}
	if rec.Mode&sIFMT != sIFREG {
		return rec, fmt.Errorf("copy from inode %d: %w", src.ino, ErrInvalid)
	}
	return rec, nil
}

// lockPair locks the destination's inode and, when the source is live, the
// source's, and returns the unlock. Inodes of one lineage are locked
// together in ino order (lockInodes); of two lineages, the lower lineage
// first. Only copies lock inodes of two lineages, so this order cannot
// cross another.
func (s *Store) lockPair(src, dst *Handle) func() {
	if src.st == nil {
		li := s.inodes.lockInodes(dst.v.Lineage, dst.ino)
		return li.unlock
	}
	if src.v.Lineage == dst.v.Lineage {
		li := s.inodes.lockInodes(dst.v.Lineage, src.ino, dst.ino)
		return li.unlock
	}
	lo, hi := src, dst
	if src.v.Lineage > dst.v.Lineage {
		lo, hi = dst, src
	}
	a := s.inodes.lockInodes(lo.v.Lineage, lo.ino)
	b := s.inodes.lockInodes(hi.v.Lineage, hi.ino)
	return func() {
		b.unlock()
		a.unlock()
	}
}
