package store

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"hash/fnv"

	"github.com/cockroachdb/pebble/v2"
)

// Key tags: the first byte of every key. Part of the on-disk format.
const (
	tagCatalog  byte = 0x01 // catalog records (unversioned)
	tagCounter  byte = 0x02 // id counters (unversioned)
	tagInode    byte = 0x10 // (lineage, ino, ^epoch)
	tagDirent   byte = 0x11 // (lineage, parent, h63, name, ^epoch)
	tagXattr    byte = 0x12 // (lineage, ino, name, ^epoch)
	tagChunk    byte = 0x13 // (lineage, ino, cgen, index, ^epoch)
	tagChunkRef byte = 0x20 // (hash)
	tagFreeQ    byte = 0x21 // (seq)
	tagParked   byte = 0x26 // (member, seq): frees waiting for a gone or degraded member
	tagDamaged  byte = 0x27 // (hash): chunks with no good copy known
	tagStaged   byte = 0x28 // (stage, hash): a chunk a receive stored before any file names it (staged.go)
	tagDeadlist byte = 0x30 // (lineage, killed-at, born-at, seq)
	tagSpace    byte = 0x31 // (lineage, epoch, kind, born-at): space counters (space.go)
	tagOrphan   byte = 0x40 // (lineage, ino)
)

// Every key handed to Pebble, including iterator bounds and seek keys, is a
// valid key of this encoding (it ends in 0x00 or in a version suffix):
// Pebble splits seek keys with Split, and a bound ending in a byte 9 would
// be split as if it carried a version.

// versionSuffixLen is the length of a version suffix: 8 bytes of ^epoch and
// the suffix-length byte itself.
const versionSuffixLen = 9

// Comparer orders snapfs keys. Every key is
//
//	tag | fixed-width big-endian fields | at most one variable field | 0x00 | suffix
//
// where the suffix is empty for unversioned keys and ^epoch (8 bytes,
// big-endian) plus a length byte (9) for versioned ones. The last byte of a
// key is therefore 0x00 (no suffix) or 9, and Split cuts the suffix off so
// that bloom filters and SeekPrefixGE work on the unversioned prefix. Variable
// fields never contain 0x00, so plain byte order sorts by prefix first, then
// by ^epoch: the newest version of a key comes first. The name is part of the
// on-disk format.
var Comparer = func() *pebble.Comparer {
	c := *pebble.DefaultComparer
	c.Name = "snapfs.keys.v1"
	c.Split = splitKey
	c.Separator = func(dst, a, b []byte) []byte { return append(dst, a...) }
	c.Successor = func(dst, a []byte) []byte { return append(dst, a...) }
	c.ImmediateSuccessor = func(dst, a []byte) []byte { return append(append(dst, a...), 0x00) }
	c.FormatKey = func(k []byte) fmt.Formatter { return keyFormatter(k) }
	return &c
}()

func splitKey(k []byte) int {
	if len(k) == 0 {
		return 0
	}
	n := int(k[len(k)-1])
	if n == versionSuffixLen && len(k) > versionSuffixLen {
		return len(k) - versionSuffixLen
	}
	return len(k)
}

// keyFormatter prints keys readably in Pebble's logs and tools.
type keyFormatter []byte

func (k keyFormatter) Format(s fmt.State, _ rune) { fmt.Fprint(s, describeKey(k)) }

// describeKey renders a key for logs, tests and fsck output.
func describeKey(k []byte) string {
	if len(k) == 0 {
		return "<empty>"
	}
	p := k[:splitKey(k)]
	ver := ""
	if len(p) < len(k) {
		ver = fmt.Sprintf("@%d", ^binary.BigEndian.Uint64(k[len(p):]))
	}
	switch p[0] {
	case tagInode:
		if len(p) >= 14 {
			return fmt.Sprintf("inode/%d/%d%s", be32(p[1:]), be64(p[5:]), ver)
		}
	case tagDirent:
		if len(p) >= 22 {
			return fmt.Sprintf("dirent/%d/%d/%q%s", be32(p[1:]), be64(p[5:]), p[21:len(p)-1], ver)
		}
	case tagXattr:
		if len(p) >= 14 {
			return fmt.Sprintf("xattr/%d/%d/%q%s", be32(p[1:]), be64(p[5:]), p[13:len(p)-1], ver)
		}
	case tagChunk:
		if len(p) >= 26 {
			return fmt.Sprintf("chunk/%d/%d/g%d/%d%s", be32(p[1:]), be64(p[5:]), be32(p[13:]), be64(p[17:]), ver)
		}
	case tagStaged:
		if len(p) >= 42 {
			return fmt.Sprintf("staged/%d/%x", be64(p[1:]), p[9:17])
		}
	case tagChunkRef:
		if len(p) >= 33 {
			return fmt.Sprintf("chunkref/%x", p[1:9])
		}
	case tagDeadlist:
		if len(p) >= 30 {
			return fmt.Sprintf("deadlist/%d/killed%d/born%d/%d", be32(p[1:]), be64(p[5:]), be64(p[13:]), be64(p[21:]))
		}
	case tagSpace:
		if len(p) >= spaceKeyLen {
			lin, e, kind, born := be32(p[1:]), be64(p[5:]), p[13], be64(p[14:])
			switch kind {
			case spaceBorn:
				return fmt.Sprintf("space/%d/born%d", lin, e)
			case spaceDead:
				return fmt.Sprintf("space/%d/killed%d/born%d", lin, e, born)
			case spaceShadow:
				return fmt.Sprintf("space/%d/shadow%d", lin, e)
			}
		}
	}
	return fmt.Sprintf("%x%s", p, ver)
}

func be32(b []byte) uint32 { return binary.BigEndian.Uint32(b) }
func be64(b []byte) uint64 { return binary.BigEndian.Uint64(b) }

// nameHash is the 63-bit hash of a directory entry name. It orders a
// directory's entries and is their readdir cookie, so it is part of the
// format. Values below 3 are moved up: FUSE offsets 0, 1 and 2 mean the
// start, "." and "..".
func nameHash(name string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(name))
	v := h.Sum64() >> 1
	if v < 3 {
		v += 3
	}
	return v
}

// keyBuf builds keys by appending; every constructor returns a fresh slice.
type keyBuf []byte

func (b keyBuf) u8(v byte) keyBuf    { return append(b, v) }
func (b keyBuf) u32(v uint32) keyBuf { return binary.BigEndian.AppendUint32(b, v) }
func (b keyBuf) u64(v uint64) keyBuf { return binary.BigEndian.AppendUint64(b, v) }
func (b keyBuf) str(s string) keyBuf { return append(b, s...) }
func (b keyBuf) end() []byte         { return append(b, 0x00) }

// withEpoch appends the version suffix for epoch e to a prefix.
func withEpoch(prefix []byte, e uint64) []byte {
	k := make([]byte, 0, len(prefix)+versionSuffixLen)
	k = append(k, prefix...)
	k = binary.BigEndian.AppendUint64(k, ^e)
	return append(k, versionSuffixLen)
}

// keyEpoch returns the epoch of a versioned key.
func keyEpoch(k []byte) uint64 {
	if len(k) < versionSuffixLen {
		return 0
	}
	return ^binary.BigEndian.Uint64(k[len(k)-versionSuffixLen:])
}

func inodePrefix(lin uint32, ino uint64) []byte {
	return keyBuf(make([]byte, 0, 24)).u8(tagInode).u32(lin).u64(ino).end()
}

func direntPrefix(lin uint32, parent uint64, name string) []byte {
	return keyBuf(make([]byte, 0, 32+len(name))).u8(tagDirent).u32(lin).u64(parent).u64(nameHash(name)).str(name).end()
}

// direntDirStart is the smallest dirent key of directory parent in lineage lin
// whose name hash is at least h.
func direntDirStart(lin uint32, parent uint64, h uint64) []byte {
	return keyBuf(make([]byte, 0, 24)).u8(tagDirent).u32(lin).u64(parent).u64(h).end()
}

// direntDirEnd bounds a directory's dirent keys from above.
func direntDirEnd(lin uint32, parent uint64) []byte {
	return keyBuf(make([]byte, 0, 24)).u8(tagDirent).u32(lin).u64(parent + 1).end()
}

// parseDirentKey returns the name hash and name of a dirent key (prefix or
// full key); a key too short to be one gives zero values.
func parseDirentKey(k []byte) (h uint64, name string) {
	p := k[:splitKey(k)]
	if len(p) < 22 {
		return 0, ""
	}
	return be64(p[13:]), string(p[21 : len(p)-1])
}

func xattrPrefix(lin uint32, ino uint64, name string) []byte {
	return keyBuf(make([]byte, 0, 24+len(name))).u8(tagXattr).u32(lin).u64(ino).str(name).end()
}

// xattrInoStart and xattrInoEnd bound the xattr keys of one inode.
func xattrInoStart(lin uint32, ino uint64) []byte {
	return keyBuf(make([]byte, 0, 16)).u8(tagXattr).u32(lin).u64(ino).end()
}

func xattrInoEnd(lin uint32, ino uint64) []byte {
	return keyBuf(make([]byte, 0, 16)).u8(tagXattr).u32(lin).u64(ino + 1).end()
}

func parseXattrKey(k []byte) string {
	p := k[:splitKey(k)]
	if len(p) < 14 {
		return ""
	}
	return string(p[13 : len(p)-1])
}

func chunkPrefix(lin uint32, ino uint64, cgen uint32, idx uint64) []byte {
	return keyBuf(make([]byte, 0, 40)).u8(tagChunk).u32(lin).u64(ino).u32(cgen).u64(idx).end()
}

// chunkGenStart and chunkGenEnd bound the chunk keys of one generation of an inode.
func chunkGenStart(lin uint32, ino uint64, cgen uint32, idx uint64) []byte {
	return keyBuf(make([]byte, 0, 32)).u8(tagChunk).u32(lin).u64(ino).u32(cgen).u64(idx).end()
}

func chunkGenEnd(lin uint32, ino uint64, cgen uint32) []byte {
	return keyBuf(make([]byte, 0, 32)).u8(tagChunk).u32(lin).u64(ino).u32(cgen + 1).end()
}

func parseChunkIndex(k []byte) uint64 {
	if len(k) < 25 {
		return 0
	}
	return be64(k[17:])
}

func chunkRefKey(h [32]byte) []byte {
	return keyBuf(make([]byte, 0, 40)).u8(tagChunkRef).str(string(h[:])).end()
}

func freeQKey(seq uint64) []byte {
	return keyBuf(make([]byte, 0, 16)).u8(tagFreeQ).u64(seq).end()
}

func parkedKey(member uint16, seq uint64) []byte {
	return keyBuf(make([]byte, 0, 16)).u8(tagParked).u32(uint32(member)).u64(seq).end()
}

// parkedBounds covers the parked frees of one member.
func parkedBounds(member uint16) (lo, hi []byte) {
	return keyBuf(make([]byte, 0, 8)).u8(tagParked).u32(uint32(member)).end(),
		keyBuf(make([]byte, 0, 8)).u8(tagParked).u32(uint32(member) + 1).end()
}

func damagedKey(h [32]byte) []byte {
	return keyBuf(make([]byte, 0, 40)).u8(tagDamaged).str(string(h[:])).end()
}

func deadlistKey(lin uint32, killed, born, seq uint64) []byte {
	return keyBuf(make([]byte, 0, 32)).u8(tagDeadlist).u32(lin).u64(killed).u64(born).u64(seq).end()
}

// spaceKey is the key of one space counter of lineage lin (space.go):
//
//	tagSpace | lineage | epoch | kind | born-at | 0x00
//
// epoch leads, so every counter of a lineage from some epoch on is one key
// range (spaceFrom), and one pass in key order meets the epochs in order.
// born-at is 0 except in dlspace counters.
func spaceKey(lin uint32, epoch uint64, kind byte, born uint64) []byte {
	return keyBuf(make([]byte, 0, spaceKeyLen+1)).u8(tagSpace).u32(lin).u64(epoch).u8(kind).u64(born).end()
}

// spaceKeyLen is the length of a space key without its final 0x00.
const spaceKeyLen = 22

// spaceFrom is the smallest space key of lineage lin at epoch e or later;
// spaceFrom(lin+1, 0) bounds the lineage's counters from above.
func spaceFrom(lin uint32, e uint64) []byte {
	return keyBuf(make([]byte, 0, 16)).u8(tagSpace).u32(lin).u64(e).end()
}

func orphanKey(lin uint32, ino uint64) []byte {
	return keyBuf(make([]byte, 0, 16)).u8(tagOrphan).u32(lin).u64(ino).end()
}

func catalogKey(kind byte, name string) []byte {
	return keyBuf(make([]byte, 0, 8+len(name))).u8(tagCatalog).u8(kind).str(name).end()
}

func counterKey(name string) []byte {
	return keyBuf(make([]byte, 0, 8+len(name))).u8(tagCounter).str(name).end()
}

// tagBounds returns [lo, hi) covering every key with the given tag.
func tagBounds(tag byte) (lo, hi []byte) { return []byte{tag, 0}, []byte{tag + 1, 0} }

// hasPrefix reports whether full key k belongs to prefix p.
func hasPrefix(k, p []byte) bool {
	return splitKey(k) == len(p) && bytes.Equal(k[:len(p)], p)
}
