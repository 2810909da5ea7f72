package store

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/snapfs/snapfs/pool"
)

// errCorrupt marks a value that does not decode; it is a bug or damage.
var errCorrupt = errors.New("store: corrupt record")

// Inode record flags.
const (
	inodeTombstone = 1 << iota // the inode is gone in this lineage from this epoch on
	inodeInline                // the file's bytes live in the record (Data)
	inodeOpaque                // a branch emptied this directory: no fall-through below it
	inodeXattrs                // the inode has (or had) extended attributes
)

// inodeRec is the value of an inode key: everything stat reports plus what the
// store needs to find the file's data.
type inodeRec struct {
	Flags      uint32
	Mode       uint32
	Uid, Gid   uint32
	Nlink      uint32
	Rdev       uint32
	Size       uint64
	Atime      int64
	Mtime      int64
	Ctime      int64
	ChunkShift uint8  // log2 of the chunk size, fixed at create
	Cgen       uint32 // chunk generation: bumped by truncate to 0
	Parent     uint64 // directories: the parent's ino
	Entries    uint64 // directories: live entries
	Blocks     uint64 // 512-byte blocks of stored (non-hole) data
	Target     string // symlinks
	Data       []byte // inline files
	// LinkParent and LinkName are the inode's newest name: the directory
	// and name it was created, linked or renamed to. They are a hint for
	// turning an inode number back into a path (diff.go: pathOf), checked
	// against the directory before use, since unlinking that name leaves
	// them stale. Records written before they existed have neither
	// (LinkParent 0), and end after Data.
	LinkParent uint64
	LinkName   string
}

const inodeRecVersion = 1

func (r *inodeRec) encode() []byte {
	b := make([]byte, 0, 96+len(r.Target)+len(r.Data))
	b = append(b, inodeRecVersion)
	for _, v := range []uint64{uint64(r.Flags), uint64(r.Mode), uint64(r.Uid), uint64(r.Gid),
		uint64(r.Nlink), uint64(r.Rdev), r.Size, uint64(r.Atime), uint64(r.Mtime), uint64(r.Ctime),
		uint64(r.ChunkShift), uint64(r.Cgen), r.Parent, r.Entries, r.Blocks} {
		b = binary.AppendUvarint(b, v)
	}
	b = binary.AppendUvarint(b, uint64(len(r.Target)))
	b = append(b, r.Target...)
	b = binary.AppendUvarint(b, uint64(len(r.Data)))
	b = append(b, r.Data...)
	if r.LinkParent == 0 {
		return b
	}
	b = binary.AppendUvarint(b, r.LinkParent)
	b = binary.AppendUvarint(b, uint64(len(r.LinkName)))
	return append(b, r.LinkName...)
}

func decodeInode(b []byte) (inodeRec, error) {
	var r inodeRec
	if len(b) == 0 || b[0] != inodeRecVersion {
		return r, fmt.Errorf("inode record version: %w", errCorrupt)
	}
	d := decoder{b: b[1:]}
	r.Flags = uint32(d.uvarint())
	r.Mode = uint32(d.uvarint())
	r.Uid = uint32(d.uvarint())
	r.Gid = uint32(d.uvarint())
	r.Nlink = uint32(d.uvarint())
	r.Rdev = uint32(d.uvarint())
	r.Size = d.uvarint()
	r.Atime = int64(d.uvarint())
	r.Mtime = int64(d.uvarint())
	r.Ctime = int64(d.uvarint())
	r.ChunkShift = uint8(d.uvarint())
	r.Cgen = uint32(d.uvarint())
	r.Parent = d.uvarint()
	r.Entries = d.uvarint()
	r.Blocks = d.uvarint()
	r.Target = string(d.bytes())
	if data := d.bytes(); len(data) > 0 {
		r.Data = append([]byte(nil), data...)
	}
	if d.err == nil && len(d.b) > 0 { // the name hint, in records that carry one
		r.LinkParent = d.uvarint()
		r.LinkName = string(d.bytes())
		if r.LinkParent == 0 {
			// encode never writes a hint naming directory 0; a damaged one
			// is no hint (the name is found by the slower search instead).
			r.LinkName = ""
		}
	}
	if d.err != nil {
		return r, fmt.Errorf("inode record: %w", d.err)
	}
	return r, nil
}

// direntRec is the value of a dirent key.
type direntRec struct {
	Tombstone bool
	Ino       uint64
	Type      uint32 // file type bits
}

func (r direntRec) encode() []byte {
	if r.Tombstone {
		return []byte{1}
	}
	b := []byte{0}
	b = binary.AppendUvarint(b, r.Ino)
	return binary.AppendUvarint(b, uint64(r.Type>>12))
}

func decodeDirent(b []byte) (direntRec, error) {
	if len(b) == 0 {
		return direntRec{}, fmt.Errorf("dirent record: %w", errCorrupt)
	}
	if b[0] == 1 {
		return direntRec{Tombstone: true}, nil
	}
	d := decoder{b: b[1:]}
	r := direntRec{Ino: d.uvarint(), Type: uint32(d.uvarint()) << 12}
	if d.err != nil {
		return r, fmt.Errorf("dirent record: %w", d.err)
	}
	return r, nil
}

// Chunk record kinds.
const (
	chunkData byte = 0 // (hash, length)
	chunkHole byte = 1 // reads as zeros
)

// chunkRec is the value of a chunk key.
type chunkRec struct {
	Kind   byte
	Hash   pool.Hash
	Length uint32 // logical bytes stored (the chunk may be shorter than the chunk size)
	// Hint is where the bytes were when the version was written. The
	// chunkref record of Hash is authoritative (scrub may move a copy);
	// reads try the hint first and fall back to it, saving a random
	// metadata lookup per chunk on cold reads.
	Hint []pool.Location
}

// maxHintLocs bounds the locations a chunk record carries.
const maxHintLocs = 8

func (r chunkRec) encode() []byte {
	if r.Kind == chunkHole {
		return []byte{chunkHole}
	}
	b := make([]byte, 0, 38+len(r.Hint)*pool.LocationSize)
	b = append(b, chunkData)
	b = append(b, r.Hash[:]...)
	b = binary.BigEndian.AppendUint32(b, r.Length)
	if len(r.Hint) == 0 {
		return b
	}
	n := min(len(r.Hint), maxHintLocs)
	b = append(b, byte(n))
	for _, l := range r.Hint[:n] {
		b = l.AppendTo(b)
	}
	return b
}

func decodeChunk(b []byte) (chunkRec, error) {
	if len(b) == 1 && b[0] == chunkHole {
		return chunkRec{Kind: chunkHole}, nil
	}
	if len(b) < 37 || b[0] != chunkData {
		return chunkRec{}, fmt.Errorf("chunk record: %w", errCorrupt)
	}
	var r chunkRec
	copy(r.Hash[:], b[1:33])
	r.Length = binary.BigEndian.Uint32(b[33:])
	rest := b[37:]
	if len(rest) == 0 {
		return r, nil
	}
	n := int(rest[0])
	rest = rest[1:]
	if n == 0 || n > maxHintLocs || len(rest) != n*pool.LocationSize {
		return chunkRec{}, fmt.Errorf("chunk record locations: %w", errCorrupt)
	}
	for i := 0; i < n; i++ {
		l, r2, err := pool.DecodeLocation(rest)
		if err != nil {
			return chunkRec{}, fmt.Errorf("chunk record location: %w", err)
		}
		r.Hint = append(r.Hint, l)
		rest = r2
	}
	return r, nil
}

// xattr values: a tombstone byte, then the value.
func encodeXattr(v []byte, tombstone bool) []byte {
	if tombstone {
		return []byte{1}
	}
	return append([]byte{0}, v...)
}

func decodeXattr(b []byte) (value []byte, tombstone bool, err error) {
	if len(b) == 0 {
		return nil, false, fmt.Errorf("xattr record: %w", errCorrupt)
	}
	return b[1:], b[0] == 1, nil
}

// chunkRefRec is the value of a chunkref key: how many chunk versions and
// deadlist entries reference the hash, and where its bytes are.
type chunkRefRec struct {
	Count  uint64
	Length uint32
	Locs   []pool.Location
}

func (r chunkRefRec) encode() []byte {
	b := make([]byte, 0, 16+len(r.Locs)*18)
	b = binary.AppendUvarint(b, r.Count)
	b = binary.AppendUvarint(b, uint64(r.Length))
	b = binary.AppendUvarint(b, uint64(len(r.Locs)))
	for _, l := range r.Locs {
		b = l.AppendTo(b)
	}
	return b
}

func decodeChunkRef(b []byte) (chunkRefRec, error) {
	d := decoder{b: b}
	r := chunkRefRec{Count: d.uvarint(), Length: uint32(d.uvarint())}
	n := d.uvarint()
	if d.err != nil || n > 64 {
		return r, fmt.Errorf("chunkref record: %w", errCorrupt)
	}
	rest := d.b
	for i := uint64(0); i < n; i++ {
		l, r2, err := pool.DecodeLocation(rest)
		if err != nil {
			return r, fmt.Errorf("chunkref location: %w", err)
		}
		r.Locs = append(r.Locs, l)
		rest = r2
	}
	return r, nil
}

// freeQRec is the value of a freeq key: a record no longer referenced, to be
// released once no read can still be using it.
type freeQRec struct {
	Hash pool.Hash
	Locs []pool.Location
}

func (r freeQRec) encode() []byte {
	b := append([]byte(nil), r.Hash[:]...)
	b = binary.AppendUvarint(b, uint64(len(r.Locs)))
	for _, l := range r.Locs {
		b = l.AppendTo(b)
	}
	return b
}

func decodeFreeQ(b []byte) (freeQRec, error) {
	var r freeQRec
	if len(b) < 33 {
		return r, fmt.Errorf("freeq record: %w", errCorrupt)
	}
	copy(r.Hash[:], b)
	d := decoder{b: b[32:]}
	n := d.uvarint()
	if d.err != nil || n > 64 {
		return r, fmt.Errorf("freeq record: %w", errCorrupt)
	}
	rest := d.b
	for i := uint64(0); i < n; i++ {
		l, r2, err := pool.DecodeLocation(rest)
		if err != nil {
			return r, fmt.Errorf("freeq location: %w", err)
		}
		r.Locs = append(r.Locs, l)
		rest = r2
	}
	return r, nil
}

// decoder reads varints and length-prefixed bytes, remembering the first error.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) uvarint() uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.err = errCorrupt
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil {
		return nil
	}
	if uint64(len(d.b)) < n {
		d.err = errCorrupt
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}
