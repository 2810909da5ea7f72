package pool

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// Fuzz targets for what the pool reads back from disk: record headers and
// payloads (pack files), locations (stored in the metadata), and pool.json
// and member.json. Damage must give an error, never a panic, and a record
// whose CRCs do not match must never be accepted.
//
// Run one with: go test -run '^$' -fuzz '^FuzzDecodeHeader$' -fuzztime 10s ./pool

var fuzzPoolID = [16]byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16}

func fuzzHash(b []byte) Hash {
	var h Hash
	copy(h[:], b)
	return h
}

// FuzzDecodeHeader feeds arbitrary bytes to decodeHeader and verify (the
// checks of every read). Whatever they accept must really carry matching
// header and payload CRCs.
func FuzzDecodeHeader(f *testing.F) {
	for _, data := range [][]byte{nil, []byte("hello"), make([]byte, 5000)} {
		for _, v := range []uint16{recordV1, recordV2} {
			rec := encodeRecordVersion(nil, v, fuzzPoolID, fuzzHash([]byte("h")), data)
			f.Add(rec[:readSize(v, uint32(len(data)))])
			f.Add(rec[:HeaderSize+len(data)])
			f.Add(rec[:HeaderSize-1])
			f.Add(rec)
		}
	}
	f.Add([]byte("SNPK"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, id := range [][16]byte{fuzzPoolID, {}} {
			h, err := decodeHeader(b, id)
			if err != nil {
				if !errors.Is(err, ErrChecksum) {
					t.Fatalf("decodeHeader error does not wrap ErrChecksum: %v", err)
				}
				continue
			}
			switch {
			case len(b) < HeaderSize, string(b[:4]) != "SNPK":
				t.Fatalf("accepted a header without magic: %x", b)
			case crc32c(b[:68]) != binary.LittleEndian.Uint32(b[68:]):
				t.Fatalf("accepted a header whose CRC does not match: %x", b[:HeaderSize])
			case h.poolID != id, h.version != recordV1 && h.version != recordV2, h.stored > MaxRecord, h.stored != h.logical:
				t.Fatalf("accepted an impossible header %+v", h)
			}
			// The whole record as Read sees it: header, payload, trailer.
			loc := Location{Length: h.logical}
			if _, err := verify(b, loc, h.hash, id); err == nil {
				end := HeaderSize + int(h.stored)
				if int64(len(b)) < readSize(h.version, h.stored) || crc32c(b[HeaderSize:end]) != h.storedCRC {
					t.Fatalf("verify accepted a record whose payload CRC does not match")
				}
				if h.version == recordV2 {
					if _, err := checkTrailer(b[end:], h.stored); err != nil {
						t.Fatalf("verify accepted a record whose trailer does not match: %v", err)
					}
				}
			} else if !errors.Is(err, ErrChecksum) {
				t.Fatalf("verify error does not wrap ErrChecksum: %v", err)
			}
		}
	})
}

// FuzzRecordBitFlip encodes a record, flips one bit of its header or
// payload, and checks that verify rejects it (CRC32C catches every
// single-bit error) while the intact record verifies.
func FuzzRecordBitFlip(f *testing.F) {
	f.Add([]byte("hello, world"), []byte("hash"), uint32(0), uint8(0))
	f.Add([]byte{}, []byte{}, uint32(70), uint8(7))
	f.Add(make([]byte, 300), []byte("x"), uint32(200), uint8(3))
	f.Fuzz(func(t *testing.T, data, hash []byte, pos uint32, bit uint8) {
		if len(data) > MaxRecord {
			return
		}
		h := fuzzHash(hash)
		for _, v := range []uint16{recordV1, recordV2} {
			rec := encodeRecordVersion(nil, v, fuzzPoolID, h, data)
			n := int(readSize(v, uint32(len(data))))
			if int64(len(rec)) != recordExtent(v, uint32(len(data))) || len(rec)%Align != 0 {
				t.Fatalf("version %d record of %d bytes is %d bytes on disk", v, len(data), len(rec))
			}
			loc := Location{Length: uint32(len(data))}
			if _, err := verify(rec[:n], loc, h, fuzzPoolID); err != nil {
				t.Fatalf("intact version %d record rejected: %v", v, err)
			}
			bad := append([]byte(nil), rec[:n]...)
			bad[int(pos)%n] ^= 1 << (bit % 8)
			if _, err := verify(bad, loc, h, fuzzPoolID); err == nil {
				t.Fatalf("version %d record with bit %d of byte %d flipped accepted", v, bit%8, int(pos)%n)
			} else if !errors.Is(err, ErrChecksum) {
				t.Fatalf("corruption error does not wrap ErrChecksum: %v", err)
			}
		}
	})
}

// FuzzPoolReadCorrupt appends a record to a real pool, overwrites some of
// its bytes on disk, and reads it back: Read returns the original bytes
// or an ErrChecksum error, never different bytes.
func FuzzPoolReadCorrupt(f *testing.F) {
	f.Add([]byte("some chunk data"), uint16(0), []byte{0xff})
	f.Add(make([]byte, 4096), uint16(100), []byte("garbage"))
	f.Add([]byte("x"), uint16(68), []byte{0, 0, 0, 0})
	p := NewTestPool(f, 1)
	f.Fuzz(func(t *testing.T, data []byte, pos uint16, junk []byte) {
		if len(data) == 0 || len(data) > 1<<16 || len(junk) == 0 {
			return
		}
		h := fuzzHash(data)
		locs, err := p.Append(h, data)
		if err != nil {
			t.Fatal(err)
		}
		loc := locs[0]
		name := filepath.Join(p.Config().Members[loc.Member].Path, packsDir, fmt.Sprintf("%d.pack", loc.Pack))
		fh, err := os.OpenFile(name, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer fh.Close()
		recLen := int(readSize(recordVersion, uint32(len(data))))
		off := loc.Offset + int64(int(pos)%recLen)
		orig := make([]byte, len(junk))
		fh.ReadAt(orig, off)
		if _, err := fh.WriteAt(junk, off); err != nil {
			t.Fatal(err)
		}
		// Did the write change any byte of the record (header, payload
		// or trailer)?
		end := loc.Offset + int64(recLen)
		changed := false
		for i := range junk {
			if off+int64(i) < end && orig[i] != junk[i] {
				changed = true
			}
		}
		got, err := p.Read(loc, h, nil)
		switch {
		case err != nil && !errors.Is(err, ErrChecksum):
			t.Fatalf("Read of a corrupt record: %v, want ErrChecksum", err)
		case err == nil && changed:
			t.Fatalf("Read accepted a record changed at offset %d", off-loc.Offset)
		case err == nil && string(got) != string(data):
			t.Fatalf("Read returned wrong bytes")
		case err != nil && !changed:
			t.Fatalf("Read of an unchanged record: %v", err)
		}
	})
}

// FuzzDecodeLocation: arbitrary bytes decode to an error or a location
// that re-encodes to the same bytes.
func FuzzDecodeLocation(f *testing.F) {
	f.Add(Location{Member: 1, Pack: 2, Offset: 3 * Align, Length: 5}.AppendTo(nil))
	f.Add([]byte{1, 2, 3})
	f.Add(make([]byte, LocationSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, rest, err := DecodeLocation(b)
		if err != nil {
			return
		}
		if l.Offset < 0 || l.Offset%Align != 0 || len(rest) != len(b)-LocationSize {
			t.Fatalf("DecodeLocation(%x) = %+v, %d bytes left", b, l, len(rest))
		}
		if got := l.AppendTo(nil); string(got) != string(b[:LocationSize]) {
			t.Fatalf("location re-encode: %x -> %x", b[:LocationSize], got)
		}
	})
}

// FuzzConfig writes arbitrary bytes as pool.json or as a member's
// member.json of an otherwise good pool (in a MemFS) and opens it: a clean
// error or a pool that validates, never a panic.
func FuzzConfig(f *testing.F) {
	m := NewMemFS()
	dir, member := "/fuzz/pool", "/fuzz/m0"
	if err := m.MkdirAll(member, 0o755); err != nil {
		f.Fatal(err)
	}
	if err := Create(dir, CreateOptions{Members: []string{member}, FS: m}); err != nil {
		f.Fatal(err)
	}
	poolJSON, err := readFile(m, filepath.Join(dir, poolFile))
	if err != nil {
		f.Fatal(err)
	}
	memberJSONb, err := readFile(m, filepath.Join(member, memberFile))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(false, poolJSON)
	f.Add(true, memberJSONb)
	f.Add(false, poolJSON[:len(poolJSON)/2])
	f.Add(true, []byte(`{"pool": {"id": "zz"}, "generation": -1}`))
	f.Add(false, []byte(`{"id":"0102030405060708090a0b0c0d0e0f10","format_version":1,"copies":1,"chunk_size":4096,"members":[{"index":0,"path":"relative","id":"x"}]}`))
	f.Add(false, []byte(`null`))
	f.Add(false, []byte(`{"members": [null, {}], "copies": 99999999999999999999}`))
	write := func(t *testing.T, name string, b []byte) {
		m.Remove(name)
		fh, err := m.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fh.WriteAt(b, 0); err != nil {
			t.Fatal(err)
		}
		fh.Close()
	}
	f.Fuzz(func(t *testing.T, isMember bool, b []byte) {
		pj, mj := poolJSON, memberJSONb
		if isMember {
			mj = b
		} else {
			pj = b
			var cfg Config
			if err := json.Unmarshal(b, &cfg); err == nil {
				_ = cfg.validate()
			}
		}
		write(t, filepath.Join(dir, poolFile), pj)
		write(t, filepath.Join(member, memberFile), mj)
		if cfg, err := readConfig(m, dir); err == nil {
			if err := cfg.validate(); err != nil {
				t.Fatalf("readConfig accepted an invalid config: %v", err)
			}
			for _, mc := range cfg.Members {
				readMemberJSON(m, cfg, mc)
			}
		}
		p, err := Open(dir, OpenOptions{FS: m, ReadOnly: true})
		if err == nil {
			if err := p.Config().validate(); err != nil {
				t.Fatalf("Open accepted an invalid config: %v", err)
			}
			p.Close()
		}
	})
}
