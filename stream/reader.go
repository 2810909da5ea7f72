package stream

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/zeebo/blake3"
)

// reader reads and verifies the records of one stream. Every record is
// checked against its CRC (which covers its sequence number, so a moved
// record fails), and the end record against the count, length and BLAKE3
// of everything before it. Bytes of verified records from offset teeFrom
// on are copied to tee (the receiver's spool).
type reader struct {
	r       *bufio.Reader
	sum     *blake3.Hasher
	seq     uint64
	off     int64
	tee     io.Writer
	teeFrom int64
	ended   bool
	buf     []byte
}

func newReader(r io.Reader) *reader {
	br, ok := r.(*bufio.Reader)
	if !ok {
		br = bufio.NewReaderSize(r, 1<<20)
	}
	return &reader{r: br, sum: blake3.New()}
}

func (rd *reader) consume(b []byte) error {
	rd.sum.Write(b)
	if rd.tee != nil && rd.off+int64(len(b)) > rd.teeFrom {
		from := max(0, rd.teeFrom-rd.off)
		if _, err := rd.tee.Write(b[from:]); err != nil {
			return fmt.Errorf("spool: %w", err)
		}
	}
	rd.off += int64(len(b))
	return nil
}

// preamble reads the magic and version.
func (rd *reader) preamble() error {
	var p [preambleLen]byte
	n, err := io.ReadFull(rd.r, p[:])
	if n < len(magic) || !bytes.Equal(p[:len(magic)], magic[:]) {
		if n == 0 && err != nil {
			return fmt.Errorf("%w: the input is empty", ErrNotStream)
		}
		if n >= len(magic) || !bytes.HasPrefix(magic[:], p[:n]) {
			return fmt.Errorf("%w: it does not start with the stream's magic", ErrNotStream)
		}
	}
	if err != nil {
		return fmt.Errorf("%w: it ends inside the preamble", ErrTruncated)
	}
	if v := binary.BigEndian.Uint16(p[8:]); v > Version {
		return fmt.Errorf("%w: the stream is format %d, this snapfs reads up to %d", ErrNewerVersion, v, Version)
	} else if v == 0 || binary.BigEndian.Uint16(p[10:]) != 0 {
		return corrupt(8, "bad version or flags")
	}
	return rd.consume(p[:])
}

// next returns the next record, verified. The payload is valid until the
// following call.
func (rd *reader) next() (typ byte, payload []byte, err error) {
	if rd.ended {
		return 0, nil, io.EOF
	}
	start := rd.off
	var h [5]byte
	if _, err := io.ReadFull(rd.r, h[:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, fmt.Errorf("%w: it ends at byte %d, before its end record", ErrTruncated, start)
		}
		return 0, nil, fmt.Errorf("read stream: %w", err)
	}
	typ = h[0]
	n := binary.BigEndian.Uint32(h[1:])
	if n > maxPayload {
		return 0, nil, corrupt(start, "record of %d bytes", n)
	}
	if cap(rd.buf) < 5+int(n)+4 {
		rd.buf = make([]byte, 5+int(n)+4)
	}
	b := rd.buf[:5+int(n)+4]
	copy(b, h[:])
	if _, err := io.ReadFull(rd.r, b[5:]); err != nil {
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return 0, nil, fmt.Errorf("%w: it ends inside the record at byte %d", ErrTruncated, start)
		}
		return 0, nil, fmt.Errorf("read stream: %w", err)
	}
	var s [8]byte
	binary.BigEndian.PutUint64(s[:], rd.seq)
	want := crc32.Update(crc32.Checksum(s[:], crcTable), crcTable, b[:5+n])
	if binary.BigEndian.Uint32(b[5+n:]) != want {
		return 0, nil, corrupt(start, "record %d fails its checksum", rd.seq)
	}
	payload = b[5 : 5+n]
	if typ == recEnd {
		er, err := decodeEnd(payload)
		if err != nil {
			return 0, nil, corrupt(start, "end record: %v", err)
		}
		var sum [32]byte
		copy(sum[:], rd.sum.Sum(nil))
		if er.Records != rd.seq || er.Bytes != uint64(start) || er.Sum != sum {
			return 0, nil, corrupt(start, "the stream's checksum does not match its content")
		}
		rd.ended = true
	}
	rd.seq++
	if err := rd.consume(b); err != nil {
		return 0, nil, err
	}
	return typ, payload, nil
}
