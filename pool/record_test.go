package pool

import (
	"errors"
	"fmt"
	"math/rand"
	"os"
	"sync/atomic"
	"testing"
	"time"
)

// readCounter is an FS whose files count the bytes and calls of ReadAt,
// so a test can see how much of a record a read touched.
type readCounter struct {
	FS
	bytes, calls *atomic.Int64
}

type countedFile struct {
	File
	c readCounter
}

func (c readCounter) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := c.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return countedFile{f, c}, nil
}

func (f countedFile) ReadAt(b []byte, off int64) (int, error) {
	f.c.calls.Add(1)
	f.c.bytes.Add(int64(len(b)))
	return f.File.ReadAt(b, off)
}

// recordSizes are payload lengths that put the page trailer in every
// place: in version 1's padding, spilling into one more block, right
// after a whole page, after a short last page.
var recordSizes = []int{1, 100, PageSize - HeaderSize - 8, PageSize - HeaderSize, PageSize, PageSize + 1, 5000, 3*PageSize - 10, 8 * PageSize, 32 * PageSize, 32*PageSize - 100, 256 * PageSize}

// versionPool opens a test pool (one member, counted reads) that writes
// records of format version v.
func versionPool(t *testing.T, v uint16) (*Pool, readCounter) {
	c := readCounter{OSFS{}, new(atomic.Int64), new(atomic.Int64)}
	return NewTestPoolOptions(t, 1, CreateOptions{FS: c}, OpenOptions{FS: c, RecordVersion: v}), c
}

// TestRecordVersionsRead: records of both versions, of lengths placing
// the trailer everywhere it can go, read back whole and by ranges (every
// page, ranges across pages, the last short page, empty and whole
// ranges) with the right bytes. A small range of a version 2 record reads
// the header, its pages and the trailer only; of a version 1 record the
// whole record. Extents are as the format says, and both versions are
// found again by a scan of the pack (Records).
func TestRecordVersionsRead(t *testing.T) {
	for _, v := range []uint16{recordV1, recordV2} {
		for _, size := range recordSizes {
			t.Run(fmt.Sprintf("v%d/%d", v, size), func(t *testing.T) {
				p, c := versionPool(t, v)
				data := payload(size, size)
				loc := appendT(t, p, data)[0]
				got, err := p.Read(loc, hashOf(data), nil)
				if err != nil || string(got) != string(data) {
					t.Fatalf("whole read: %d bytes, %v", len(got), err)
				}
				np := pages(uint32(size))
				type rng struct{ off, n int }
				ranges := []rng{{0, 0}, {0, size}, {size - 1, 1}, {size, 0}, {0, 1 << 30}}
				for i := 0; i < np; i++ {
					ranges = append(ranges, rng{i * PageSize, PageSize}, rng{i*PageSize + 7, 100}, rng{i*PageSize + PageSize - 3, 6})
				}
				for _, r := range ranges {
					if r.off > size || r.off < 0 {
						continue
					}
					c.bytes.Store(0)
					c.calls.Store(0)
					b, from, err := p.ReadRange(loc, hashOf(data), r.off, r.n)
					if err != nil {
						t.Fatalf("range %+v: %v", r, err)
					}
					end := min(r.off+r.n, size)
					if end == r.off {
						if len(b) != 0 || c.calls.Load() != 0 {
							t.Fatalf("empty range %+v: %d bytes, %d preads", r, len(b), c.calls.Load())
						}
						continue
					}
					if from > r.off || from+len(b) < end || string(b[r.off-from:end-from]) != string(data[r.off:end]) {
						t.Fatalf("range %+v: got %d bytes from %d, not the record's", r, len(b), from)
					}
					k := (end+PageSize-1)/PageSize - r.off/PageSize
					small := 2*k <= np
					switch {
					case v == recordV1 || !small:
						if from != 0 || len(b) != size {
							t.Fatalf("range %+v of a version %d record of %d pages: %d bytes from %d, want the whole record", r, v, np, len(b), from)
						}
					case c.calls.Load() > 3 || c.bytes.Load() > int64(HeaderSize+k*PageSize)+trailerSize(uint32(size)):
						t.Fatalf("range %+v (%d pages of %d): %d preads of %d bytes", r, k, np, c.calls.Load(), c.bytes.Load())
					}
				}
				if v == recordV2 && np >= 2 {
					// The page table is kept from the reads above: a range
					// read now reads its pages alone, in one pread.
					c.calls.Store(0)
					c.bytes.Store(0)
					if _, _, err := p.ReadRange(loc, hashOf(data), np/2*PageSize-20, 10); err != nil || c.calls.Load() != 1 || c.bytes.Load() > PageSize {
						t.Fatalf("range read with the table kept: %d preads of %d bytes, %v", c.calls.Load(), c.bytes.Load(), err)
					}
				}
				n := 0
				if err := p.Records(0, func(r TailRecord) bool {
					if r.Loc != loc || r.Hash != hashOf(data) {
						t.Errorf("scan found %+v, want %v", r, loc)
					}
					n++
					return true
				}); err != nil || n != 1 {
					t.Fatalf("scan: %d records, %v", n, err)
				}
				if want := recordExtent(v, uint32(size)); RecordExtent(uint32(size)) != extent(uint32(size)) || want%Align != 0 || want < int64(HeaderSize+size) {
					t.Fatalf("extent %d", want)
				}
			})
		}
	}
}

// TestRecordVersionsMixed: a pool written with version 1 records and
// then with version 2 ones (as after an upgrade) reads both, whole and
// by pages, after a reopen; freeing both punches their whole extents.
func TestRecordVersionsMixed(t *testing.T) {
	p := NewTestPoolOptions(t, 1, CreateOptions{}, OpenOptions{RecordVersion: recordV1})
	old := payload(1, 32*PageSize-100)
	oldLoc := appendT(t, p, old)[0]
	if err := p.Sync([]Location{oldLoc}); err != nil {
		t.Fatal(err)
	}
	dir := p.dir
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p, err := Open(dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	cur := payload(2, 32*PageSize-100)
	curLoc := appendT(t, p, cur)[0]
	for _, r := range []struct {
		loc  Location
		data []byte
	}{{oldLoc, old}, {curLoc, cur}} {
		b, err := p.Read(r.loc, hashOf(r.data), nil)
		if err != nil || string(b) != string(r.data) {
			t.Fatalf("read %v: %v", r.loc, err)
		}
		b, from, err := p.ReadRange(r.loc, hashOf(r.data), 5*PageSize+10, 100)
		if err != nil || string(b[5*PageSize+10-from:][:100]) != string(r.data[5*PageSize+10:][:100]) {
			t.Fatalf("range of %v: %v", r.loc, err)
		}
	}
	if err := p.Free([]Location{oldLoc, curLoc}); err != nil {
		t.Fatal(err)
	}
	for _, l := range []Location{oldLoc, curLoc} {
		if _, err := p.Read(l, hashOf(old), nil); err == nil {
			t.Fatalf("%v still reads after Free", l)
		}
	}
}

// flipClasses are the positions, relative to a record's start, of a
// byte flipped in TestFlippedByteEveryPage: the header, the first, a
// middle and the last byte of every page, the page table and its CRC.
func flipClasses(v uint16, size int) map[string]int {
	c := map[string]int{"header magic": 1, "header hash": 30, "header crc": 70}
	for i := 0; i < pages(uint32(size)); i++ {
		lo, hi := i*PageSize, min((i+1)*PageSize, size)
		c[fmt.Sprintf("page %d first", i)] = HeaderSize + lo
		c[fmt.Sprintf("page %d middle", i)] = HeaderSize + (lo+hi)/2
		c[fmt.Sprintf("page %d last", i)] = HeaderSize + hi - 1
	}
	if v == recordV2 {
		c["page table first"] = HeaderSize + size
		c["page table last entry"] = HeaderSize + size + 4*pages(uint32(size)) - 1
		c["page table crc"] = HeaderSize + size + 4*pages(uint32(size)) + 2
	}
	return c
}

// TestFlippedByteEveryPage: a byte flipped in any place of a record of
// either version (header, the first, middle or last byte of any page, the
// page table, its CRC) fails a whole read, and fails every range read
// whose pages hold it or that needs the header or the table (all of them,
// for those), with ErrChecksum; a range read of other pages of a version
// 2 record still returns the right bytes. No read returns a wrong byte.
func TestFlippedByteEveryPage(t *testing.T) {
	const size = 5*PageSize + 1000 // a short last page
	for _, v := range []uint16{recordV1, recordV2} {
		for name, pos := range flipClasses(v, size) {
			t.Run(fmt.Sprintf("v%d/%s", v, name), func(t *testing.T) {
				p, _ := versionPool(t, v)
				data := payload(3, size)
				h := hashOf(data)
				loc := appendT(t, p, data)[0]
				flipByte(t, packPath(p, loc), loc.Offset+int64(pos))
				checkFlipped(t, p, v, loc, data, h, pos, false)
			})
			t.Run(fmt.Sprintf("v%d/%s/after a range read", v, name), func(t *testing.T) {
				// The page table is kept from a first read of every page:
				// a flipped payload byte is still found by the page read.
				p, _ := versionPool(t, v)
				data := payload(3, size)
				h := hashOf(data)
				loc := appendT(t, p, data)[0]
				for i := 0; i < pages(size); i++ {
					if _, _, err := p.ReadRange(loc, h, i*PageSize, 1); err != nil {
						t.Fatal(err)
					}
				}
				flipByte(t, packPath(p, loc), loc.Offset+int64(pos))
				checkFlipped(t, p, v, loc, data, h, pos, true)
			})
		}
	}
}

// checkFlipped checks the reads of a record of size bytes whose byte at
// pos was flipped: the whole read fails, and so does every range read
// that depends on the byte. With tabled, the record's page table was
// kept from an earlier range read, so a version 2 range read depends on
// its pages only (header and trailer damage is left to whole reads and
// scrub; the bytes returned are still checked).
func checkFlipped(t *testing.T, p *Pool, v uint16, loc Location, data []byte, h Hash, pos int, tabled bool) {
	t.Helper()
	size := len(data)
	if _, err := p.Read(loc, h, nil); !errors.Is(err, ErrChecksum) {
		t.Fatalf("whole read after the flip: %v, want ErrChecksum", err)
	}
	flipped := -1 // the page holding the byte, if it is a payload byte
	if pos >= HeaderSize && pos < HeaderSize+size {
		flipped = (pos - HeaderSize) / PageSize
	}
	for i := 0; i < pages(uint32(size)); i++ {
		b, from, err := p.ReadRange(loc, h, i*PageSize+1, 10)
		mustFail := v == recordV1 || flipped == i || (flipped < 0 && !tabled)
		switch {
		case err != nil && !errors.Is(err, ErrChecksum):
			t.Fatalf("page %d: %v, want ErrChecksum", i, err)
		case err == nil && mustFail:
			t.Fatalf("page %d read despite the flip", i)
		case err == nil && string(b[i*PageSize+1-from:][:10]) != string(data[i*PageSize+1:][:10]):
			t.Fatalf("page %d: wrong bytes", i)
		case err != nil && !mustFail:
			t.Fatalf("page %d, away from the flip in page %d: %v", i, flipped, err)
		}
	}
}

// TestReadRangeModel: random records of both versions and random
// lengths, with bytes flipped at random places, read by random ranges.
// Every read either returns exactly the record's bytes or fails with
// ErrChecksum, and it fails whenever a byte it depends on was flipped
// (for version 1 any byte of the record; for version 2 the header, the
// table, or a page of the range, unless the range is read whole).
func TestReadRangeModel(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewSource(seed))
	for _, v := range []uint16{recordV1, recordV2} {
		p, _ := versionPool(t, v)
		type rec struct {
			loc     Location
			data    []byte
			flipped map[int]bool // record-relative positions
			// tabled: a range read verified the record's header and page
			// table and the pool keeps the table (pagetables.go): later
			// range reads check their pages against it and read neither
			// header nor trailer again.
			tabled bool
		}
		var recs []*rec
		for i := 0; i < 40; i++ {
			data := make([]byte, 1+rng.Intn(40*PageSize))
			rng.Read(data)
			recs = append(recs, &rec{loc: appendT(t, p, data)[0], data: data, flipped: map[int]bool{}})
		}
		for op := 0; op < 2000; op++ {
			r := recs[rng.Intn(len(recs))]
			size := len(r.data)
			if rng.Intn(10) == 0 {
				pos := rng.Intn(int(readSize(v, uint32(size))))
				if !r.flipped[pos] {
					r.flipped[pos] = true
					flipByte(t, packPath(p, r.loc), r.loc.Offset+int64(pos))
				}
				continue
			}
			off := rng.Intn(size + 1)
			n := rng.Intn(3 * PageSize)
			tabled := r.tabled
			b, from, err := p.ReadRange(r.loc, hashOf(r.data), off, n)
			end := min(off+n, size)
			if end > off && v == recordV2 && 2*((end+PageSize-1)/PageSize-off/PageSize) <= pages(uint32(size)) {
				r.tabled = err == nil
			}
			if end == off {
				if err != nil || len(b) != 0 {
					t.Fatalf("seed %d op %d: empty range: %d bytes, %v", seed, op, len(b), err)
				}
				continue
			}
			if err != nil {
				if !errors.Is(err, ErrChecksum) {
					t.Fatalf("seed %d op %d: %v", seed, op, err)
				}
				continue
			}
			if from > off || from+len(b) < end || string(b[off-from:end-from]) != string(r.data[off:end]) {
				t.Fatalf("seed %d op %d: wrong bytes for [%d, %d)", seed, op, off, end)
			}
			// What the read depended on, and so must not have changed.
			for pos := range r.flipped {
				payload := pos >= HeaderSize && pos < HeaderSize+size
				wholeRead := from == 0 && len(b) == size
				inRange := pos-HeaderSize >= from && pos-HeaderSize < from+len(b)
				inRead := wholeRead || inRange || (!payload && !tabled)
				if inRead {
					t.Fatalf("seed %d op %d: read [%d, %d) from %d (%d bytes) succeeded with byte %d of the record flipped", seed, op, off, end, from, len(b), pos)
				}
			}
		}
	}
}
