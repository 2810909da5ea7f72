package store

import (
	"errors"
	"fmt"

	"github.com/snapfs/snapfs/pool"
)

// This file exposes, read-only, how a file's bytes are stored in a view:
// its chunk map. Replication (package stream) uses it to send each chunk
// once per content hash and to skip chunks a target already holds; nothing
// here changes the store.

// ChunkEntry is one chunk of a file's layout: a hole, or the bytes named
// by Hash (Length logical bytes; the rest of the chunk reads as zeros).
type ChunkEntry struct {
	Index  uint64
	Hole   bool
	Hash   pool.Hash
	Length uint32
}

// FileLayout is how a regular file's committed bytes are stored in a view.
type FileLayout struct {
	Size      uint64
	ChunkSize int64
	// Inline is set when the bytes live in the inode record (Data).
	Inline bool
	Data   []byte
	// Chunks lists every chunk below Size that holds data, in index order;
	// an index not listed is a hole.
	Chunks []ChunkEntry
}

// FileLayout returns the committed layout of regular file ino in view v.
// For a live view, bytes still buffered in open handles are not included:
// make them durable first (Handle.Fsync, Store.Sync).
func (s *Store) FileLayout(v View, ino uint64) (FileLayout, error) {
	chain, err := s.chain(v)
	if err != nil {
		return FileLayout{}, err
	}
	r := s.dbr()
	rec, err := s.getInode(r, chain, ino)
	if err != nil {
		return FileLayout{}, err
	}
	if rec.Mode&sIFMT != sIFREG {
		return FileLayout{}, fmt.Errorf("layout of inode %d: not a regular file: %w", ino, ErrInvalid)
	}
	fl := FileLayout{Size: rec.Size, ChunkSize: int64(1) << rec.ChunkShift}
	if rec.Flags&inodeInline != 0 {
		fl.Inline = true
		fl.Data = append([]byte(nil), rec.Data...)
		return fl, nil
	}
	n := (int64(rec.Size) + fl.ChunkSize - 1) / fl.ChunkSize
	for idx := int64(0); idx < n; idx++ {
		ver, err := resolve(r, chain, func(lin uint32) []byte { return chunkPrefix(lin, ino, rec.Cgen, uint64(idx)) })
		if err != nil {
			return FileLayout{}, fmt.Errorf("layout of inode %d chunk %d: %w", ino, idx, err)
		}
		if !ver.found {
			continue
		}
		c, err := decodeChunk(ver.value)
		if err != nil {
			return FileLayout{}, fmt.Errorf("layout of inode %d chunk %d: %w", ino, idx, err)
		}
		if c.Kind == chunkHole {
			continue
		}
		fl.Chunks = append(fl.Chunks, ChunkEntry{Index: uint64(idx), Hash: c.Hash, Length: c.Length})
	}
	return fl, nil
}

// HasChunk reports whether the store holds a chunk with hash h (some
// version or deadlist entry references it).
func (s *Store) HasChunk(h pool.Hash) (bool, error) {
	_, found, err := getChunkRefFrom(s.db, h)
	return found, err
}

// ChunkRefs returns how many stored chunk versions reference hash h (its
// chunkref count: every version of every chunk key in every lineage,
// snapshot-kept ones included; Check asserts the count), 0 if none. A
// caller that knows n distinct versions holding h, and reads a count of
// at most n, knows no other version references it: incremental send uses
// that to decide, without walking the base, that the base cannot hold a
// changed chunk's bytes.
func (s *Store) ChunkRefs(h pool.Hash) (uint64, error) {
	rec, found, err := getChunkRefFrom(s.db, h)
	if err != nil || !found {
		return 0, err
	}
	return rec.Count, nil
}

// ReadChunk returns the bytes of the stored chunk with hash h, verified by
// the pool's checksums; ErrNotFound if the store holds no such chunk.
func (s *Store) ReadChunk(h pool.Hash) ([]byte, error) {
	rec, found, err := getChunkRefFrom(s.db, h)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("chunk %x: %w", h[:8], ErrNotFound)
	}
	return s.readHash(h, rec.Length, nil)
}

// errFound stops a scan at its first hit.
var errFound = errors.New("found")

// WrittenSince reports whether live lineage lin holds any version (inode,
// entry, xattr or chunk) born after epoch e: whether it changed since
// its snapshot at e. Writes still buffered in open handles are not seen.
func (s *Store) WrittenSince(lin uint32, e uint64) (bool, error) {
	for _, tag := range []byte{tagInode, tagDirent, tagXattr, tagChunk} {
		err := s.eachVersionAfter(tag, lin, e, func(k, v []byte, newest bool) error { return errFound })
		if errors.Is(err, errFound) {
			return true, nil
		}
		if err != nil {
			return false, err
		}
	}
	return false, nil
}

// NotifyReplaced tells the mounts of lineage lin (the OnRollback hooks)
// that its live view was changed wholesale outside them, by a received
// stream, so that they drop what the kernel caches of it, as after a
// rollback.
func (s *Store) NotifyReplaced(lin uint32) { s.notifyRollback(lin) }
