package store

import (
	"bytes"
	"encoding/binary"
	"reflect"
	"strings"
	"testing"

	"github.com/snapfs/snapfs/pool"
)

// Fuzz targets for the key and value encodings. The decoders read what is
// on disk, so arbitrary bytes must give an error, never a panic; and every
// record must survive encode -> decode unchanged.
//
// Run one with: go test -run '^$' -fuzz '^FuzzDescribeKey$' -fuzztime 10s ./store

// seedKeys adds one valid key of every kind, plus a few truncated ones.
func seedKeys(f *testing.F) {
	var h [32]byte
	for i := range h {
		h[i] = byte(i)
	}
	keys := [][]byte{
		inodePrefix(1, 2),
		withEpoch(inodePrefix(1, 2), 3),
		withEpoch(direntPrefix(1, 1, "hello.txt"), 7),
		direntPrefix(2, 9, "x"),
		direntDirStart(1, 1, 5),
		direntDirEnd(1, 1),
		withEpoch(xattrPrefix(1, 4, "user.a"), 1),
		withEpoch(chunkPrefix(1, 5, 2, 9), 4),
		chunkGenEnd(1, 5, 2),
		chunkRefKey(h),
		freeQKey(11),
		deadlistKey(1, 3, 2, 7),
		orphanKey(1, 8),
		catalogKey('v', "home"),
		counterKey("ino"),
		{}, {0x00}, {0x09}, {tagDirent, 9}, {tagInode, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 9},
	}
	for _, k := range keys {
		f.Add(k)
		if len(k) > 4 {
			f.Add(k[:len(k)/2])
		}
	}
}

// FuzzDescribeKey: splitKey, describeKey, hasPrefix and the Comparer's
// Split never panic, and Split returns a length within the key.
func FuzzDescribeKey(f *testing.F) {
	seedKeys(f)
	f.Fuzz(func(t *testing.T, k []byte) {
		n := splitKey(k)
		if n < 0 || n > len(k) {
			t.Fatalf("splitKey(%x) = %d, outside [0,%d]", k, n, len(k))
		}
		if n != Comparer.Split(k) {
			t.Fatalf("Comparer.Split disagrees with splitKey")
		}
		if s := describeKey(k); s == "" {
			t.Fatalf("describeKey(%x) is empty", k)
		}
		_ = hasPrefix(k, k[:n])
		_ = Comparer.Compare(k, k)
	})
}

// FuzzParseDirentKey: parseDirentKey (and the other key parsers,
// parseXattrKey and parseChunkIndex) on arbitrary bytes must not panic:
// fsck and debugging tools walk keys that may be damaged.
func FuzzParseDirentKey(f *testing.F) {
	seedKeys(f)
	f.Fuzz(func(t *testing.T, k []byte) {
		parseDirentKey(k)
		parseXattrKey(k)
		parseChunkIndex(k)
	})
}

// FuzzDecodeValues: every value decoder on arbitrary bytes returns an error
// or a record that re-encodes to the same record.
func FuzzDecodeValues(f *testing.F) {
	var h pool.Hash
	h[0] = 0xab
	loc := pool.Location{Member: 1, Pack: 2, Offset: 3 * pool.Align, Length: 4096}
	for _, v := range [][]byte{
		(&inodeRec{Mode: 0o100644, Nlink: 1, Size: 5, Data: []byte("hello"), Target: "t"}).encode(),
		direntRec{Ino: 7, Type: 0o040000}.encode(),
		direntRec{Tombstone: true}.encode(),
		chunkRec{Kind: chunkData, Hash: h, Length: 100}.encode(),
		chunkRec{Kind: chunkHole}.encode(),
		encodeXattr([]byte("v"), false),
		chunkRefRec{Count: 2, Length: 4096, Locs: []pool.Location{loc, loc}}.encode(),
		freeQRec{Hash: h, Locs: []pool.Location{loc}}.encode(),
		{}, {1}, {0}, {inodeRecVersion, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01},
	} {
		f.Add(v)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := decodeInode(b); err == nil {
			r2, err := decodeInode(r.encode())
			if err != nil || !reflect.DeepEqual(r, r2) {
				t.Fatalf("inode re-encode: %+v -> %+v, %v", r, r2, err)
			}
		}
		if r, err := decodeDirent(b); err == nil {
			r2, err := decodeDirent(r.encode())
			if err != nil || r != r2 {
				t.Fatalf("dirent re-encode: %+v -> %+v, %v", r, r2, err)
			}
		}
		if r, err := decodeChunk(b); err == nil {
			if got := r.encode(); !bytes.Equal(got, b) {
				t.Fatalf("chunk re-encode: %x -> %x", b, got)
			}
		}
		if v, tomb, err := decodeXattr(b); err == nil {
			// The tag byte is 1 (tombstone) or 0; other values read as 0.
			if got := encodeXattr(v, tomb); b[0] == 0 && !bytes.Equal(got, b) {
				t.Fatalf("xattr re-encode: %x -> %x", b, got)
			}
		}
		if r, err := decodeChunkRef(b); err == nil {
			r2, err := decodeChunkRef(r.encode())
			if err != nil || !reflect.DeepEqual(r, r2) {
				t.Fatalf("chunkref re-encode: %+v -> %+v, %v", r, r2, err)
			}
		}
		if r, err := decodeFreeQ(b); err == nil {
			r2, err := decodeFreeQ(r.encode())
			if err != nil || !reflect.DeepEqual(r, r2) {
				t.Fatalf("freeq re-encode: %+v -> %+v, %v", r, r2, err)
			}
		}
	})
}

// FuzzInodeRoundTrip: encode -> decode gives back the inode record.
func FuzzInodeRoundTrip(f *testing.F) {
	f.Add(uint32(0), uint32(0o100644), uint32(1000), uint32(1000), uint32(1), uint32(0), uint64(5),
		int64(1), int64(-2), int64(1<<62), uint8(17), uint32(0), uint64(1), uint64(0), uint64(8), "", []byte("hello"))
	f.Add(uint32(inodeTombstone|inodeOpaque), uint32(0o040755), uint32(0), uint32(0), uint32(2), uint32(0), uint64(0),
		int64(-1<<63), int64(0), int64(0), uint8(0), uint32(1<<32-1), uint64(1<<40-1), uint64(1<<63), uint64(0), "../target", []byte(nil))
	f.Fuzz(func(t *testing.T, flags, mode, uid, gid, nlink, rdev uint32, size uint64, at, mt, ct int64,
		shift uint8, cgen uint32, parent, entries, blocks uint64, target string, data []byte) {
		r := inodeRec{Flags: flags, Mode: mode, Uid: uid, Gid: gid, Nlink: nlink, Rdev: rdev, Size: size,
			Atime: at, Mtime: mt, Ctime: ct, ChunkShift: shift, Cgen: cgen, Parent: parent, Entries: entries,
			Blocks: blocks, Target: target}
		if len(data) > 0 {
			r.Data = data
		}
		got, err := decodeInode(r.encode())
		if err != nil || !reflect.DeepEqual(r, got) {
			t.Fatalf("inode round trip:\n in %+v\nout %+v, %v", r, got, err)
		}
	})
}

// FuzzDirentRoundTrip: dirent keys and values round trip: the key splits
// at its version, parses back to the name and its hash, and carries the
// epoch; the value decodes to what was encoded.
func FuzzDirentRoundTrip(f *testing.F) {
	f.Add(uint32(1), uint64(1), "file.txt", uint64(1), false, uint64(2), uint32(0o100000))
	f.Add(uint32(1<<32-1), uint64(1<<40-1), "\t\x09", uint64(1<<64-1), true, uint64(0), uint32(0))
	f.Add(uint32(0), uint64(0), strings.Repeat("n", 255), uint64(0), false, uint64(1<<63), uint32(0o120000))
	f.Fuzz(func(t *testing.T, lin uint32, parent uint64, name string, epoch uint64, tomb bool, ino uint64, typ uint32) {
		if name == "" || strings.IndexByte(name, 0) >= 0 {
			return // names never contain NUL and are never empty
		}
		p := direntPrefix(lin, parent, name)
		k := withEpoch(p, epoch)
		if n := splitKey(k); n != len(p) || !bytes.Equal(k[:n], p) {
			t.Fatalf("splitKey(%x) = %d, want %d", k, n, len(p))
		}
		if splitKey(p) != len(p) {
			t.Fatalf("splitKey(prefix %x) = %d, want %d", p, splitKey(p), len(p))
		}
		if !hasPrefix(k, p) {
			t.Fatalf("hasPrefix(%x, %x) false", k, p)
		}
		for _, key := range [][]byte{p, k} {
			h, got := parseDirentKey(key)
			if got != name || h != nameHash(name) {
				t.Fatalf("parseDirentKey(%x) = %d %q, want %d %q", key, h, got, nameHash(name), name)
			}
		}
		if e := keyEpoch(k); e != epoch {
			t.Fatalf("keyEpoch = %d, want %d", e, epoch)
		}
		if h := nameHash(name); h < 3 || h >= 1<<63 {
			t.Fatalf("nameHash(%q) = %d outside [3, 2^63)", name, h)
		}
		// The newest version sorts first, and the prefix before all versions.
		if epoch > 0 && Comparer.Compare(withEpoch(p, epoch), withEpoch(p, epoch-1)) >= 0 {
			t.Fatalf("epoch %d does not sort before %d", epoch, epoch-1)
		}
		_ = describeKey(k)
		v := direntRec{Tombstone: tomb}
		if !tomb {
			v.Ino, v.Type = ino, typ&^0xfff
		}
		got, err := decodeDirent(v.encode())
		if err != nil || got != v {
			t.Fatalf("dirent value round trip: %+v -> %+v, %v", v, got, err)
		}
	})
}

// FuzzChunkRoundTrip: chunk keys and values round trip.
func FuzzChunkRoundTrip(f *testing.F) {
	f.Add(uint32(1), uint64(2), uint32(0), uint64(0), uint64(1), false, []byte("0123456789abcdef0123456789abcdef"), uint32(131072))
	f.Add(uint32(1<<32-1), uint64(1<<40-1), uint32(1<<32-1), uint64(1<<64-1), uint64(0), true, []byte(nil), uint32(0))
	f.Fuzz(func(t *testing.T, lin uint32, ino uint64, cgen uint32, idx, epoch uint64, hole bool, hash []byte, length uint32) {
		p := chunkPrefix(lin, ino, cgen, idx)
		k := withEpoch(p, epoch)
		if splitKey(k) != len(p) || keyEpoch(k) != epoch || parseChunkIndex(k) != idx {
			t.Fatalf("chunk key %x: split %d (want %d), epoch %d, index %d", k, splitKey(k), len(p), keyEpoch(k), parseChunkIndex(k))
		}
		if Comparer.Compare(k, chunkGenEnd(lin, ino, cgen)) >= 0 && cgen != 1<<32-1 {
			t.Fatalf("chunk key %x not below its generation end", k)
		}
		_ = describeKey(k)
		r := chunkRec{Kind: chunkHole}
		if !hole {
			r = chunkRec{Kind: chunkData, Length: length}
			copy(r.Hash[:], hash)
		}
		got, err := decodeChunk(r.encode())
		if err != nil || !reflect.DeepEqual(got, r) {
			t.Fatalf("chunk value round trip: %+v -> %+v, %v", r, got, err)
		}
	})
}

// FuzzChunkRefRoundTrip: chunkref and freeq values round trip; locations
// are built from the fuzzer's bytes, 18 at a time.
func FuzzChunkRefRoundTrip(f *testing.F) {
	f.Add(uint64(1), uint32(4096), []byte("0123456789abcdef0123456789abcdef"), make([]byte, 2*pool.LocationSize))
	f.Add(uint64(1<<64-1), uint32(1<<32-1), []byte(nil), []byte(nil))
	f.Fuzz(func(t *testing.T, count uint64, length uint32, hash []byte, raw []byte) {
		var locs []pool.Location
		for len(raw) >= pool.LocationSize && len(locs) < 64 {
			off := int64(binary.BigEndian.Uint64(raw[6:]) &^ (1 << 63))
			locs = append(locs, pool.Location{
				Member: binary.BigEndian.Uint16(raw),
				Pack:   binary.BigEndian.Uint32(raw[2:]),
				Offset: off &^ (pool.Align - 1),
				Length: binary.BigEndian.Uint32(raw[14:]),
			})
			raw = raw[pool.LocationSize:]
		}
		r := chunkRefRec{Count: count, Length: length, Locs: locs}
		got, err := decodeChunkRef(r.encode())
		if err != nil || !reflect.DeepEqual(r, got) {
			t.Fatalf("chunkref round trip: %+v -> %+v, %v", r, got, err)
		}
		q := freeQRec{Locs: locs}
		copy(q.Hash[:], hash)
		gotq, err := decodeFreeQ(q.encode())
		if err != nil || !reflect.DeepEqual(q, gotq) {
			t.Fatalf("freeq round trip: %+v -> %+v, %v", q, gotq, err)
		}
		var ck [32]byte
		copy(ck[:], hash)
		if k := chunkRefKey(ck); splitKey(k) != len(k) || describeKey(k) == "" {
			t.Fatalf("chunkref key %x", k)
		}
	})
}
