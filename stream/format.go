package stream

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/zeebo/blake3"
)

// Version is the stream format version this package writes; it reads
// every version up to it (docs/stream.md).
const Version = 1

// magic opens every stream: 8 bytes, then the 2-byte big-endian version
// and 2 bytes of flags (0 in version 1).
var magic = [8]byte{'S', 'N', 'A', 'P', 'F', 'S', 'S', 'T'}

// preambleLen is the length of magic, version and flags.
const preambleLen = 12

// maxPayload bounds one record's payload: a chunk of the largest chunk
// size (pool.MaxChunkSize is far below) or a large directory listing.
const maxPayload = 64 << 20

// Record types.
const (
	recHeader = 'H' // JSON Header, first record of a stream
	recResume = 'R' // JSON resumeInfo, first record of a resumed stream
	recInode  = 'I' // one inode's attributes
	recXattrs = 'X' // one inode's complete set of xattrs
	recDir    = 'D' // one directory's complete listing
	recChunk  = 'C' // hash (32 bytes) + data, once per hash per stream
	recLayout = 'L' // one regular file's complete layout
	recEnd    = 'E' // record count, byte count, BLAKE3 of every byte before it
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// SnapInfo names one snapshot of the source in a header.
type SnapInfo struct {
	Name    string `json:"name"`
	Epoch   uint64 `json:"epoch"`
	Created int64  `json:"created_ns"`
}

// Header is the first record of a stream: what it carries and where from.
type Header struct {
	Format     int       `json:"format"`
	StreamID   string    `json:"stream_id"`
	SourcePool string    `json:"source_pool"`
	Dataset    string    `json:"dataset"`
	Snapshot   SnapInfo  `json:"snapshot"`
	Base       *SnapInfo `json:"base,omitempty"`
	ChunkSize  int64     `json:"chunk_size"`
}

// Incremental reports whether the stream needs a base on the target.
func (h *Header) Incremental() bool { return h.Base != nil }

// streamID names a stream by what it carries: the same source snapshots
// give the same id, so a resume token names its stream; a snapshot
// destroyed and taken again under the same name gets another epoch and
// so another id.
func streamID(h *Header) string {
	b, _ := json.Marshal([]any{h.SourcePool, h.Dataset, h.Snapshot, h.Base})
	sum := blake3.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

// resumeInfo is the first record of a resumed stream: the stream it
// continues and the offset (record-aligned) its bytes start at.
type resumeInfo struct {
	StreamID string `json:"stream_id"`
	Offset   int64  `json:"offset"`
}

// inodeRecord is an 'I' record: every attribute of an inode a snapshot
// view shows (nlink follows from the listings).
type inodeRecord struct {
	Ino                 uint64
	New                 bool // the base has no such inode (or one of another type)
	Mode, Uid, Gid      uint32
	Rdev                uint32
	Size                uint64
	Atime, Mtime, Ctime int64
	Target              string // symlinks
}

type xattr struct {
	Name  string
	Value []byte
}

type dirEntry struct {
	Name string
	Ino  uint64
}

type layoutEntry struct {
	Index  uint64
	Hash   [32]byte
	Length uint32
}

// layoutRecord is an 'L' record: a regular file's bytes, inline or as chunks.
type layoutRecord struct {
	Ino       uint64
	Size      uint64
	ChunkSize int64
	Inline    bool
	Data      []byte
	Chunks    []layoutEntry
}

// enc builds a record payload.
type enc struct{ b []byte }

func (e *enc) u(v uint64)     { e.b = binary.AppendUvarint(e.b, v) }
func (e *enc) i(v int64)      { e.b = binary.AppendVarint(e.b, v) }
func (e *enc) bytes(v []byte) { e.u(uint64(len(v))); e.b = append(e.b, v...) }
func (e *enc) str(v string)   { e.u(uint64(len(v))); e.b = append(e.b, v...) }

// dec reads a record payload; the first failure sticks in err.
type dec struct {
	b   []byte
	err error
}

func (d *dec) fail() {
	if d.err == nil {
		d.err = fmt.Errorf("malformed record payload")
	}
}

func (d *dec) u() uint64 {
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail()
		d.b = nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) i() int64 {
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail()
		d.b = nil
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *dec) bytes() []byte {
	n := d.u()
	if n > uint64(len(d.b)) {
		d.fail()
		d.b = nil
		return nil
	}
	v := d.b[:n:n]
	d.b = d.b[n:]
	return v
}

func (d *dec) u32() uint32 {
	v := d.u()
	if v > 1<<32-1 {
		d.fail()
	}
	return uint32(v)
}

func (d *dec) fixed(n int) []byte {
	if len(d.b) < n {
		d.fail()
		d.b = nil
		return make([]byte, n)
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

// done fails unless the payload was read to its end.
func (d *dec) done() error {
	if d.err == nil && len(d.b) != 0 {
		d.err = fmt.Errorf("malformed record payload: %d trailing bytes", len(d.b))
	}
	return d.err
}

func (r *inodeRecord) encode() []byte {
	var e enc
	e.u(r.Ino)
	nw := uint64(0)
	if r.New {
		nw = 1
	}
	e.u(nw)
	for _, v := range []uint32{r.Mode, r.Uid, r.Gid, r.Rdev} {
		e.u(uint64(v))
	}
	e.u(r.Size)
	e.i(r.Atime)
	e.i(r.Mtime)
	e.i(r.Ctime)
	e.str(r.Target)
	return e.b
}

func decodeInodeRecord(p []byte) (inodeRecord, error) {
	d := dec{b: p}
	r := inodeRecord{Ino: d.u()}
	switch d.u() {
	case 0:
	case 1:
		r.New = true
	default:
		d.fail()
	}
	r.Mode, r.Uid, r.Gid, r.Rdev = d.u32(), d.u32(), d.u32(), d.u32()
	r.Size = d.u()
	r.Atime, r.Mtime, r.Ctime = d.i(), d.i(), d.i()
	r.Target = string(d.bytes())
	return r, d.done()
}

func encodeXattrs(ino uint64, xs []xattr) []byte {
	var e enc
	e.u(ino)
	e.u(uint64(len(xs)))
	for _, x := range xs {
		e.str(x.Name)
		e.bytes(x.Value)
	}
	return e.b
}

func decodeXattrs(p []byte) (uint64, []xattr, error) {
	d := dec{b: p}
	ino, n := d.u(), d.u()
	if n > uint64(len(p)) {
		return 0, nil, fmt.Errorf("malformed xattr record")
	}
	xs := make([]xattr, 0, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		xs = append(xs, xattr{Name: string(d.bytes()), Value: append([]byte{}, d.bytes()...)})
	}
	return ino, xs, d.done()
}

func encodeDir(ino uint64, es []dirEntry) []byte {
	var e enc
	e.u(ino)
	e.u(uint64(len(es)))
	for _, x := range es {
		e.str(x.Name)
		e.u(x.Ino)
	}
	return e.b
}

func decodeDir(p []byte) (uint64, []dirEntry, error) {
	d := dec{b: p}
	ino, n := d.u(), d.u()
	if n > uint64(len(p)) {
		return 0, nil, fmt.Errorf("malformed directory record")
	}
	es := make([]dirEntry, 0, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		es = append(es, dirEntry{Name: string(d.bytes()), Ino: d.u()})
	}
	return ino, es, d.done()
}

func (r *layoutRecord) encode() []byte {
	var e enc
	e.u(r.Ino)
	e.u(r.Size)
	e.u(uint64(r.ChunkSize))
	if r.Inline {
		e.u(1)
		e.bytes(r.Data)
		return e.b
	}
	e.u(0)
	e.u(uint64(len(r.Chunks)))
	for _, c := range r.Chunks {
		e.u(c.Index)
		e.b = append(e.b, c.Hash[:]...)
		e.u(uint64(c.Length))
	}
	return e.b
}

func decodeLayout(p []byte) (layoutRecord, error) {
	d := dec{b: p}
	r := layoutRecord{Ino: d.u(), Size: d.u(), ChunkSize: int64(d.u())}
	switch d.u() {
	case 1:
		r.Inline = true
		r.Data = append([]byte{}, d.bytes()...)
	case 0:
		n := d.u()
		if n > uint64(len(p)) {
			return r, fmt.Errorf("malformed layout record")
		}
		r.Chunks = make([]layoutEntry, 0, n)
		for i := uint64(0); i < n && d.err == nil; i++ {
			var c layoutEntry
			c.Index = d.u()
			copy(c.Hash[:], d.fixed(32))
			c.Length = d.u32()
			r.Chunks = append(r.Chunks, c)
		}
	default:
		d.fail()
	}
	if err := d.done(); err != nil {
		return r, err
	}
	return r, r.check()
}

// check enforces what the applier relies on: a power-of-two chunk size,
// chunks in increasing index order within the size, inline data no
// longer than the size.
func (r *layoutRecord) check() error {
	if r.ChunkSize < 4096 || r.ChunkSize > 64<<20 || r.ChunkSize&(r.ChunkSize-1) != 0 {
		return fmt.Errorf("layout of inode %d: bad chunk size %d", r.Ino, r.ChunkSize)
	}
	if r.Inline {
		if uint64(len(r.Data)) > r.Size {
			return fmt.Errorf("layout of inode %d: inline data past its size", r.Ino)
		}
		return nil
	}
	for i, c := range r.Chunks {
		if i > 0 && c.Index <= r.Chunks[i-1].Index {
			return fmt.Errorf("layout of inode %d: chunks out of order", r.Ino)
		}
		if c.Length == 0 || int64(c.Length) > r.ChunkSize || c.Index*uint64(r.ChunkSize)+uint64(c.Length) > r.Size {
			return fmt.Errorf("layout of inode %d: chunk %d out of bounds", r.Ino, c.Index)
		}
	}
	return nil
}

// endRecord is the 'E' record.
type endRecord struct {
	Records uint64
	Bytes   uint64
	Sum     [32]byte
}

func (r *endRecord) encode() []byte {
	var e enc
	e.u(r.Records)
	e.u(r.Bytes)
	e.b = append(e.b, r.Sum[:]...)
	return e.b
}

func decodeEnd(p []byte) (endRecord, error) {
	d := dec{b: p}
	r := endRecord{Records: d.u(), Bytes: d.u()}
	copy(r.Sum[:], d.fixed(32))
	return r, d.done()
}

// recordWriter frames records: type, length, payload and a CRC-32C over
// the record's sequence number, type, length and payload, so a record
// moved to another place in the stream fails its own check. It keeps the
// running BLAKE3 of every byte for the end record.
type recordWriter struct {
	w     io.Writer
	sum   *blake3.Hasher
	seq   uint64
	bytes int64
	err   error
	buf   []byte
}

func newRecordWriter(w io.Writer) *recordWriter {
	rw := &recordWriter{w: w, sum: blake3.New()}
	var p [preambleLen]byte
	copy(p[:], magic[:])
	binary.BigEndian.PutUint16(p[8:], Version)
	rw.raw(p[:])
	return rw
}

func (rw *recordWriter) raw(b []byte) {
	if rw.err != nil {
		return
	}
	_, rw.err = rw.w.Write(b)
	rw.sum.Write(b)
	rw.bytes += int64(len(b))
}

// frame returns the framed bytes of one record with sequence number seq.
func frame(buf []byte, seq uint64, typ byte, payload []byte) []byte {
	buf = append(buf[:0], typ)
	buf = binary.BigEndian.AppendUint32(buf, uint32(len(payload)))
	buf = append(buf, payload...)
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], seq)
	c := crc32.Update(crc32.Checksum(s[:], crcTable), crcTable, buf)
	return binary.BigEndian.AppendUint32(buf, c)
}

func (rw *recordWriter) record(typ byte, payload []byte) {
	rw.buf = frame(rw.buf, rw.seq, typ, payload)
	rw.seq++
	rw.raw(rw.buf)
}

// end writes the end record and returns the first write error.
func (rw *recordWriter) end() error {
	var er endRecord
	er.Records, er.Bytes = rw.seq, uint64(rw.bytes)
	copy(er.Sum[:], rw.sum.Sum(nil))
	rw.record(recEnd, er.encode())
	return rw.err
}
