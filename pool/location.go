package pool

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
)

// Hash is the BLAKE3-256 of a chunk's logical (uncompressed) bytes. The pool
// never computes it: the caller does, and the pool stores it in the record
// header and checks it on every read.
type Hash [32]byte

// String returns the hash in hex.
func (h Hash) String() string { return hex.EncodeToString(h[:]) }

// Location of one stored copy of a record.
type Location struct {
	Member uint16 // index into Config.Members
	Pack   uint32 // pack file number: packs/<Pack>.pack
	Offset int64  // byte offset of the record header in the pack, 4 KiB aligned
	Length uint32 // logical bytes of the chunk payload
}

// LocationSize is the length of the encoding written by AppendTo.
const LocationSize = 2 + 4 + 8 + 4

// String formats the location as member/pack@offset+length.
func (l Location) String() string {
	return fmt.Sprintf("m%d/%d.pack@%d+%d", l.Member, l.Pack, l.Offset, l.Length)
}

// AppendTo appends the fixed-width big-endian encoding of l (LocationSize
// bytes: member u16, pack u32, offset i64, length u32) to dst.
func (l Location) AppendTo(dst []byte) []byte {
	dst = binary.BigEndian.AppendUint16(dst, l.Member)
	dst = binary.BigEndian.AppendUint32(dst, l.Pack)
	dst = binary.BigEndian.AppendUint64(dst, uint64(l.Offset))
	return binary.BigEndian.AppendUint32(dst, l.Length)
}

// DecodeLocation decodes one location encoded by AppendTo and returns the
// remaining bytes.
func DecodeLocation(b []byte) (Location, []byte, error) {
	if len(b) < LocationSize {
		return Location{}, b, fmt.Errorf("pool: decode location: %d bytes, need %d", len(b), LocationSize)
	}
	l := Location{
		Member: binary.BigEndian.Uint16(b[0:]),
		Pack:   binary.BigEndian.Uint32(b[2:]),
		Offset: int64(binary.BigEndian.Uint64(b[6:])),
		Length: binary.BigEndian.Uint32(b[14:]),
	}
	if l.Offset < 0 || l.Offset%Align != 0 {
		return Location{}, b, fmt.Errorf("pool: decode location: offset %d not %d-aligned", l.Offset, Align)
	}
	return l, b[LocationSize:], nil
}

// TailRecord is a valid record found past a member's accounted offset at Open.
type TailRecord struct {
	Loc  Location
	Hash Hash
}
