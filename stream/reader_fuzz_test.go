package stream

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

// FuzzReader feeds the stream reader damaged streams: it must never
// panic, and it must never accept (read to its end record) a stream that
// differs from a valid one unless the input is that valid stream.
func FuzzReader(f *testing.F) {
	valid := validStream()
	f.Add(valid, 0, byte(0))
	f.Add(valid, len(valid)/2, byte(1))
	f.Add(valid[:len(valid)/3], 5, byte(0x80))
	f.Add([]byte("SNAPFSST\x00\x01\x00\x00"), 0, byte(0))
	f.Fuzz(func(t *testing.T, in []byte, pos int, flip byte) {
		data := append([]byte{}, in...)
		if len(data) > 0 && pos >= 0 {
			data[pos%len(data)] ^= flip
		}
		rd := newReader(bytes.NewReader(data))
		if err := rd.preamble(); err != nil {
			return
		}
		for {
			_, _, err := rd.next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return
			}
		}
		// accepted: it must be the valid stream itself
		if !bytes.Equal(data[:rd.off], valid) {
			t.Fatalf("accepted a stream that is not the valid one (%d bytes of %d, pos %d flip %d, len in %d)", rd.off, len(valid), pos, flip, len(in))
		}
	})
}
