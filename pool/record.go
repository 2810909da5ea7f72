package pool

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/crc32"
)

// Record format constants; see the package documentation for the diagram.
const (
	// Align is the alignment of every record in a pack (and of pack ends).
	Align = 4096
	// HeaderSize is the size of a record header.
	HeaderSize = 72
	// MaxRecord is the largest payload Append accepts.
	MaxRecord = 16 << 20

	recordVersion = 1
	codecNone     = 0
)

var (
	recordMagic = [4]byte{'S', 'N', 'P', 'K'}
	castagnoli  = crc32.MakeTable(crc32.Castagnoli)
)

// header is the decoded form of a record header.
type header struct {
	version   uint16
	codec     uint8
	flags     uint8
	poolID    [16]byte
	hash      Hash
	logical   uint32
	stored    uint32
	storedCRC uint32
}

func crc32c(b []byte) uint32 { return crc32.Checksum(b, castagnoli) }

// alignUp rounds n up to a multiple of Align.
func alignUp(n int64) int64 { return (n + Align - 1) &^ (Align - 1) }

// extent is the on-disk size of a record with stored payload bytes.
func extent(stored uint32) int64 { return alignUp(HeaderSize + int64(stored)) }

// encode writes h into b[:HeaderSize].
func (h *header) encode(b []byte) {
	_ = b[HeaderSize-1]
	copy(b[0:4], recordMagic[:])
	binary.LittleEndian.PutUint16(b[4:], h.version)
	b[6] = h.codec
	b[7] = h.flags
	copy(b[8:24], h.poolID[:])
	copy(b[24:56], h.hash[:])
	binary.LittleEndian.PutUint32(b[56:], h.logical)
	binary.LittleEndian.PutUint32(b[60:], h.stored)
	binary.LittleEndian.PutUint32(b[64:], h.storedCRC)
	binary.LittleEndian.PutUint32(b[68:], crc32c(b[:68]))
}

// decodeHeader parses and checks a header: magic, header CRC, version, codec,
// pool id and length sanity. Every failure wraps ErrChecksum.
func decodeHeader(b []byte, poolID [16]byte) (header, error) {
	var h header
	if len(b) < HeaderSize {
		return h, fmt.Errorf("short header (%d bytes): %w", len(b), ErrChecksum)
	}
	if !bytes.Equal(b[0:4], recordMagic[:]) {
		return h, fmt.Errorf("bad record magic %q: %w", b[0:4], ErrChecksum)
	}
	if got, want := crc32c(b[:68]), binary.LittleEndian.Uint32(b[68:]); got != want {
		return h, fmt.Errorf("header crc %08x, want %08x: %w", got, want, ErrChecksum)
	}
	h.version = binary.LittleEndian.Uint16(b[4:])
	h.codec = b[6]
	h.flags = b[7]
	copy(h.poolID[:], b[8:24])
	copy(h.hash[:], b[24:56])
	h.logical = binary.LittleEndian.Uint32(b[56:])
	h.stored = binary.LittleEndian.Uint32(b[60:])
	h.storedCRC = binary.LittleEndian.Uint32(b[64:])
	switch {
	case h.version != recordVersion:
		return h, fmt.Errorf("record version %d: %w", h.version, ErrChecksum)
	case h.codec != codecNone:
		return h, fmt.Errorf("unknown codec %d: %w", h.codec, ErrChecksum)
	case h.poolID != poolID:
		return h, fmt.Errorf("record of another pool (%x): %w", h.poolID, ErrChecksum)
	case h.stored > MaxRecord || h.logical > MaxRecord:
		return h, fmt.Errorf("record length %d/%d too large: %w", h.logical, h.stored, ErrChecksum)
	case h.codec == codecNone && h.stored != h.logical:
		return h, fmt.Errorf("stored length %d != logical %d: %w", h.stored, h.logical, ErrChecksum)
	}
	return h, nil
}

// encodeRecord builds the on-disk bytes of one record (header, payload, zero
// padding to Align) in buf, reusing its capacity.
func encodeRecord(buf []byte, poolID [16]byte, hash Hash, data []byte) []byte {
	n := int(extent(uint32(len(data))))
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	h := header{
		version:   recordVersion,
		codec:     codecNone,
		poolID:    poolID,
		hash:      hash,
		logical:   uint32(len(data)),
		stored:    uint32(len(data)),
		storedCRC: crc32c(data),
	}
	h.encode(buf)
	copy(buf[HeaderSize:], data)
	clear(buf[HeaderSize+len(data):])
	return buf
}

// RecordExtent is the pack space a record of length stored bytes takes:
// header, payload and padding to the next Align boundary.
func RecordExtent(length uint32) int64 { return extent(length) }
