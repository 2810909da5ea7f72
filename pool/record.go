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
	// PageSize is the unit of partial verification in a version 2 record:
	// its trailer holds one CRC32C per PageSize bytes of the stored bytes,
	// so ReadRange can check the pages it reads without the rest.
	PageSize = 4096

	// recordV1 records carry one CRC32C of all stored bytes: only a read
	// of the whole record can be verified. Pools written before
	// 2026-12-06 hold only these; they still read.
	recordV1 = 1
	// recordV2 records (written since) add the page trailer after the
	// stored bytes: a CRC32C of each 4 KiB page, then a CRC32C of that
	// table. The header and the stored bytes are laid out as in version 1.
	recordV2 = 2
	// recordVersion is the version Append writes.
	recordVersion = recordV2
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

// pages is the number of PageSize pages of n stored bytes (the last one
// may be short).
func pages(n uint32) int { return int((int64(n) + PageSize - 1) / PageSize) }

// trailerSize is the size of a version 2 record's page trailer for stored
// bytes: a CRC32C per page and one of the table.
func trailerSize(stored uint32) int64 { return 4*int64(pages(stored)) + 4 }

// readSize is how many bytes from a record's start a whole read of it
// covers: header, stored bytes and, from version 2, the page trailer.
func readSize(version uint16, stored uint32) int64 {
	n := HeaderSize + int64(stored)
	if version >= recordV2 {
		n += trailerSize(stored)
	}
	return n
}

// recordExtent is the on-disk size of a record of the given version with
// stored payload bytes: readSize padded to Align.
func recordExtent(version uint16, stored uint32) int64 {
	return alignUp(readSize(version, stored))
}

// extent is the on-disk size of a record Append writes now (version 2).
// For whole pages of stored bytes it equals version 1's: the trailer
// (132 bytes for 128 KiB) fits in the padding version 1 left.
func extent(stored uint32) int64 { return recordExtent(recordVersion, stored) }

// extent is the on-disk size of the record h describes.
func (h *header) extent() int64 { return recordExtent(h.version, h.stored) }

// ReadBufSize is the buffer a whole read of a record of length logical
// bytes needs (Read's dst): header, payload and trailer.
func ReadBufSize(length uint32) int { return int(readSize(recordVersion, length)) }

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
	case h.version != recordV1 && h.version != recordV2:
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

// encodeRecord builds the on-disk bytes of one version 2 record (header,
// payload, page trailer, zero padding to Align) in buf, reusing its
// capacity.
func encodeRecord(buf []byte, poolID [16]byte, hash Hash, data []byte) []byte {
	return encodeRecordVersion(buf, recordVersion, poolID, hash, data)
}

// encodeRecordVersion is encodeRecord for a given format version; tests
// write version 1 records with it, as pools made before version 2 hold.
func encodeRecordVersion(buf []byte, version uint16, poolID [16]byte, hash Hash, data []byte) []byte {
	stored := uint32(len(data))
	n := int(recordExtent(version, stored))
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	h := header{
		version: version,
		codec:   codecNone,
		poolID:  poolID,
		hash:    hash,
		logical: stored,
		stored:  stored,
	}
	end := HeaderSize + len(data)
	if version >= recordV2 {
		var n int
		n, h.storedCRC = encodeTrailer(buf[end:], data)
		end += n
	} else {
		h.storedCRC = crc32c(data)
	}
	h.encode(buf)
	copy(buf[HeaderSize:], data)
	clear(buf[end:])
	return buf
}

// encodeTrailer writes the page trailer of stored bytes data into b: the
// CRC32C of each PageSize page, then the CRC32C of those table bytes. It
// returns the trailer's length and the CRC32C of all of data, which it
// derives from the pages' CRCs (crcAppendPage) instead of a second pass
// over the bytes: that halved the cost of encoding a 128 KiB record.
func encodeTrailer(b []byte, data []byte) (int, uint32) {
	np := pages(uint32(len(data)))
	whole := crc32c(nil)
	for i := 0; i < np; i++ {
		page := data[i*PageSize : min((i+1)*PageSize, len(data))]
		c := crc32c(page)
		binary.LittleEndian.PutUint32(b[4*i:], c)
		if len(page) == PageSize {
			whole = crcAppendPage(whole, c)
		} else {
			whole = crc32.Update(whole, castagnoli, page) // a short last page
		}
	}
	binary.LittleEndian.PutUint32(b[4*np:], crc32c(b[:4*np]))
	return 4*np + 4, whole
}

// crcAppendPage returns the CRC32C of A followed by a PageSize page B,
// given crcA of A and crcB of B: crcB xor crcA shifted by PageSize zero
// bytes, the shift being multiplication by a fixed 32x32 matrix over
// GF(2) (the operator of zlib's crc32_combine, for one length).
func crcAppendPage(crcA, crcB uint32) uint32 {
	return gf2Times(&pageShift, crcA) ^ crcB
}

// pageShift is the operator that appends PageSize zero bytes to a CRC32C.
var pageShift = func() [32]uint32 {
	// One zero bit: the reflected polynomial, then the identity shifted.
	var odd, even [32]uint32
	odd[0] = 0x82f63b78
	for n, row := 1, uint32(1); n < 32; n, row = n+1, row<<1 {
		odd[n] = row
	}
	gf2Square(&even, &odd) // two zero bits
	gf2Square(&odd, &even) // four
	// Square up to 8*PageSize bits, a power of two: 4 -> 8 -> ... ->
	// 2^15 bits.
	cur := odd
	for bits := 4; bits < 8*PageSize; bits *= 2 {
		var next [32]uint32
		gf2Square(&next, &cur)
		cur = next
	}
	return cur
}()

func gf2Times(mat *[32]uint32, vec uint32) uint32 {
	var sum uint32
	for i := 0; vec != 0; i, vec = i+1, vec>>1 {
		if vec&1 != 0 {
			sum ^= mat[i]
		}
	}
	return sum
}

func gf2Square(square, mat *[32]uint32) {
	for n := 0; n < 32; n++ {
		square[n] = gf2Times(mat, mat[n])
	}
}

// checkTrailer checks a page trailer's own CRC and returns its table.
func checkTrailer(t []byte, stored uint32) ([]byte, error) {
	np := pages(stored)
	if len(t) < 4*np+4 {
		return nil, fmt.Errorf("short page trailer (%d bytes): %w", len(t), ErrChecksum)
	}
	table := t[:4*np]
	if got, want := crc32c(table), binary.LittleEndian.Uint32(t[4*np:]); got != want {
		return nil, fmt.Errorf("page trailer crc %08x, want %08x: %w", got, want, ErrChecksum)
	}
	return table, nil
}

// checkPages checks pages [first, first+k) of a record's stored bytes,
// held in b (which starts at page first and may end short at the last
// page of the record), against the page table.
func checkPages(table []byte, first int, b []byte) error {
	for i := 0; len(b) > 0; i++ {
		n := min(PageSize, len(b))
		if got, want := crc32c(b[:n]), binary.LittleEndian.Uint32(table[4*(first+i):]); got != want {
			return fmt.Errorf("page %d crc %08x, want %08x: %w", first+i, got, want, ErrChecksum)
		}
		b = b[n:]
	}
	return nil
}

// RecordExtent is the pack space a record of length stored bytes written
// now takes: header, payload, page trailer and padding to the next Align
// boundary.
func RecordExtent(length uint32) int64 { return extent(length) }
