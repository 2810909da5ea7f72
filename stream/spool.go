package stream

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/snapfs/snapfs/pool"
	"github.com/snapfs/snapfs/store"
)

// The spool (Dir/recv/<dataset>.spool) keeps the verified records of a
// partial receive, so that a resumed receive can verify the whole stream
// again (its end record checks every byte) and rebuild what apply needs.
// Chunk bytes are not in it: the receive stages them in the target's
// store (store.StageChunks) and the spool keeps, in place of each chunk
// record, a chunk reference of its own type:
//
//	'c' | 32 (u32 BE) | hash (32 bytes) | the chunk record's CRC (4 bytes)
//
// framed as a record whose payload is the hash and whose trailer is the
// original record's CRC (not one over the reference).
// Reading the spool back (spoolReader) turns each reference into the
// chunk record it stands for, the bytes read from the store; the CRC
// travels as it came, so the reader checks the rebuilt record exactly as
// it checked the original. Chunk data is written once, into the pool, and
// the spool holds only metadata. A spool of a receive interrupted before
// this change holds whole chunk records; they read back as they are.

// recChunkRef is a chunk reference in the spool. It is never valid in a
// stream: a reader refuses it as an unknown record type.
const recChunkRef = 'c'

// chunkRefLen is the payload length of a chunk reference: the hash.
const chunkRefLen = 32

// spoolWriter appends verified records to the spool, each chunk record
// as a chunk reference. The reader hands it one whole record (or the
// preamble) per Write. n is the spool's length.
type spoolWriter struct {
	f *os.File
	n int64
}

func (w *spoolWriter) Write(b []byte) (int, error) {
	out := b
	if len(b) >= 5+32+4 && b[0] == recChunk {
		var c [5 + chunkRefLen + 4]byte
		c[0] = recChunkRef
		binary.BigEndian.PutUint32(c[1:], chunkRefLen)
		copy(c[5:37], b[5:37])
		copy(c[37:], b[len(b)-4:])
		out = c[:]
	}
	k, err := w.f.Write(out)
	w.n += int64(k)
	if err != nil {
		return 0, err
	}
	return len(b), nil
}

// spoolReader reads the first n bytes of a spool back as the stream they
// stand for: chunk references become chunk records again.
type spoolReader struct {
	r        *bufio.Reader
	st       *store.Store
	buf      []byte
	preamble bool
}

func newSpoolReader(f *os.File, n int64, st *store.Store) *spoolReader {
	return &spoolReader{r: bufio.NewReaderSize(io.NewSectionReader(f, 0, n), 1<<20), st: st}
}

func (s *spoolReader) Read(p []byte) (int, error) {
	for len(s.buf) == 0 {
		if err := s.fill(); err != nil {
			return 0, err
		}
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}

func (s *spoolReader) fill() error {
	if !s.preamble {
		s.preamble = true
		b := make([]byte, preambleLen)
		n, err := io.ReadFull(s.r, b)
		s.buf = b[:n]
		if n > 0 {
			return nil
		}
		return err
	}
	var h [5]byte
	if n, err := io.ReadFull(s.r, h[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			s.buf = h[:n] // a torn record: the stream reader says where
			return nil
		}
		return err
	}
	n := binary.BigEndian.Uint32(h[1:])
	if n > maxPayload {
		return fmt.Errorf("receive: spool: record of %d bytes: %w", n, ErrCorrupt)
	}
	rest := make([]byte, n+4)
	k, err := io.ReadFull(s.r, rest)
	if h[0] != recChunkRef || err != nil {
		s.buf = append(h[:], rest[:k]...)
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) {
			return err
		}
		return nil
	}
	if n != chunkRefLen {
		return fmt.Errorf("receive: spool: chunk reference of %d bytes: %w", n, ErrCorrupt)
	}
	var hash pool.Hash
	copy(hash[:], rest[:32])
	data, err := s.st.ReadChunk(hash)
	if err != nil {
		return fmt.Errorf("receive: spool: staged chunk %x: %w", hash[:8], err)
	}
	out := make([]byte, 0, 5+32+len(data)+4)
	out = append(out, recChunk)
	out = binary.BigEndian.AppendUint32(out, uint32(32+len(data)))
	out = append(out, hash[:]...)
	out = append(out, data...)
	s.buf = append(out, rest[32:]...)
	return nil
}
