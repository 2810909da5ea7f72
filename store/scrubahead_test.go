package store

import (
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"
	"testing"

	"github.com/snapfs/snapfs/pool"
	"github.com/snapfs/snapfs/pool/pooltest"
)

func TestScrubOrder(t *testing.T) {
	const L = 128 << 10
	loc := func(m uint16, pack uint32, off int64) pool.Location {
		return pool.Location{Member: m, Pack: pack, Offset: off, Length: L}
	}
	type rec struct {
		name string
		locs []pool.Location
	}
	tests := []struct {
		name string
		recs []rec
		want []string
	}{
		{"one member: pack, then offset order", []rec{
			{"c", []pool.Location{loc(0, 2, 0)}},
			{"b", []pool.Location{loc(0, 1, 8<<20)}},
			{"a", []pool.Location{loc(0, 1, 4096)}},
		}, []string{"a", "b", "c"}},
		{"two members of equal bytes alternate", []rec{
			{"m1b", []pool.Location{loc(1, 1, 200<<10)}},
			{"m0b", []pool.Location{loc(0, 1, 200<<10)}},
			{"m1a", []pool.Location{loc(1, 1, 0)}},
			{"m0a", []pool.Location{loc(0, 1, 0)}},
		}, []string{"m0a", "m1a", "m0b", "m1b"}},
		{"members in proportion to their bytes", []rec{
			{"m0a", []pool.Location{loc(0, 1, 0)}},
			{"m0b", []pool.Location{loc(0, 1, 1<<20)}},
			{"m1a", []pool.Location{loc(1, 1, 0)}},
			{"m1b", []pool.Location{loc(1, 1, 1<<20)}},
			{"m1c", []pool.Location{loc(1, 1, 2<<20)}},
			{"m1d", []pool.Location{loc(1, 1, 3<<20)}},
		}, []string{"m1a", "m0a", "m1b", "m1c", "m0b", "m1d"}},
		{"by the first copy; no location last", []rec{
			{"none", nil},
			{"x", []pool.Location{loc(1, 1, 0), loc(0, 1, 1<<20)}},
			{"y", []pool.Location{loc(0, 1, 0), loc(1, 1, 1<<20)}},
		}, []string{"y", "x", "none"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			crefs := map[pool.Hash]chunkRefRec{}
			names := map[pool.Hash]string{}
			for _, r := range tc.recs {
				h := pool.Hash{byte(len(names) + 1)}
				crefs[h] = chunkRefRec{Length: L, Locs: r.locs}
				names[h] = r.name
			}
			var got []string
			for _, h := range scrubOrder(crefs) {
				got = append(got, names[h])
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("order %v, want %v", got, tc.want)
			}
		})
	}
}

// hintFS passes every file access to the OS and records the prefetch
// hints the pool sends; while checking is set, a read of a pack range not
// hinted before is recorded as unhinted.
type hintFS struct {
	pool.OSFS
	mu       sync.Mutex
	hinted   map[string][][2]int64 // pack path -> [off, end) ranges
	checking bool
	unhinted []string
}

type hintFile struct {
	pool.File
	name string
	fs   *hintFS
}

func (fs *hintFS) OpenFile(name string, flag int, perm os.FileMode) (pool.File, error) {
	f, err := fs.OSFS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return hintFile{f, name, fs}, nil
}

func (f hintFile) Prefetch(off, n int64) error {
	f.fs.mu.Lock()
	f.fs.hinted[f.name] = append(f.fs.hinted[f.name], [2]int64{off, off + n})
	f.fs.mu.Unlock()
	return f.File.(pool.Prefetcher).Prefetch(off, n)
}

func (f hintFile) ReadAt(b []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	// Only pack reads are scrub's to hint (member checks read member.json).
	if f.fs.checking && strings.HasSuffix(f.name, ".pack") && !f.fs.covered(f.name, off, off+int64(len(b))) {
		f.fs.unhinted = append(f.fs.unhinted, fmt.Sprintf("%s@%d+%d", f.name, off, len(b)))
	}
	f.fs.mu.Unlock()
	return f.File.ReadAt(b, off)
}

// covered reports whether [off, end) of name lies in one hint. Caller
// holds mu.
func (fs *hintFS) covered(name string, off, end int64) bool {
	for _, h := range fs.hinted[name] {
		if h[0] <= off && end <= h[1] {
			return true
		}
	}
	return false
}

// TestScrubPrefetches checks that a scrub of a striped pool with two
// copies hints every copy before it reads it, and still finds and repairs
// a bad copy.
func TestScrubPrefetches(t *testing.T) {
	fs := &hintFS{hinted: map[string][][2]int64{}}
	p := pooltest.NewOptions(t, 3, pool.CreateOptions{FS: fs, Copies: 2}, pool.OpenOptions{FS: fs})
	s, v := openTestStoreOn(t, p)
	writeTestFile(t, s, v, "a", randBytes(3<<20+5000))
	writeTestFile(t, s, v, "b", randBytes(700<<10))
	_, bad := someChunkRef(t, s)
	flipByte(t, p, bad.Locs[1])
	crefs, err := chunkRefsIn(s.db)
	if err != nil {
		t.Fatal(err)
	}
	fs.checking = true
	r, err := s.Scrub(ScrubOptions{})
	fs.mu.Lock()
	fs.checking = false
	fs.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if r.Chunks != int64(len(crefs)) || r.Copies != 2*r.Chunks || r.Bad != 1 || r.Repaired != 1 {
		t.Fatalf("scrub of %d chunks: %+v", len(crefs), r)
	}
	if len(fs.unhinted) > 0 {
		t.Errorf("%d reads of ranges not hinted before, e.g. %s", len(fs.unhinted), fs.unhinted[0])
	}
	members := map[uint16]bool{}
	for _, rec := range crefs {
		for _, l := range rec.Locs {
			members[l.Member] = true
		}
	}
	if len(members) != 3 {
		t.Errorf("copies on members %v, want all 3", members)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestScrubAheadWindow steps a prefetcher with a small window through a
// pool's chunks: each chunk is hinted by the time Scrub turns to it, and
// the hints stay within the window and one batch ahead.
func TestScrubAheadWindow(t *testing.T) {
	fs := &hintFS{hinted: map[string][][2]int64{}}
	p := pooltest.NewOptions(t, 2, pool.CreateOptions{FS: fs}, pool.OpenOptions{FS: fs})
	s, v := openTestStoreOn(t, p)
	writeTestFile(t, s, v, "a", randBytes(4<<20))
	crefs, err := chunkRefsIn(s.db)
	if err != nil {
		t.Fatal(err)
	}
	order := scrubOrder(crefs)
	a := newScrubAhead(p, order, crefs)
	a.window, a.batch = 1<<20, 256<<10
	const rec = 128 << 10 // every chunk of the file is full
	for i := range order {
		a.reached(i)
		ahead := a.sum[a.issued] - a.sum[i]
		if a.issued <= i || ahead < min(a.window, a.sum[len(order)]-a.sum[i]) || ahead >= a.window+a.batch+rec {
			t.Fatalf("at chunk %d of %d: hinted up to %d, %d bytes ahead (window %d, batch %d)", i, len(order), a.issued, ahead, a.window, a.batch)
		}
		fs.mu.Lock()
		for _, l := range crefs[order[i]].Locs {
			path := fmt.Sprintf("%s/packs/%d.pack", p.Config().Members[l.Member].Path, l.Pack)
			if !fs.covered(path, l.Offset, l.Offset+pool.HeaderSize+int64(l.Length)) {
				t.Errorf("chunk %d: copy %v not hinted", i, l)
			}
		}
		fs.mu.Unlock()
	}
	if a.issued != len(order) {
		t.Fatalf("hinted %d of %d chunks", a.issued, len(order))
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestScrubReusesBuffers checks that a scrub reads every copy into one
// buffer and keeps its copy for repairs in another, instead of allocating
// two buffers per chunk.
func TestScrubReusesBuffers(t *testing.T) {
	p := pooltest.NewOptions(t, 2, pool.CreateOptions{Copies: 2}, pool.OpenOptions{})
	s, v := openTestStoreOn(t, p)
	const size = 8 << 20
	data := randBytes(size)
	for i := 128<<10 - 1; i < size; i += 128 << 10 {
		data[i] = 1 // trailing zeros of a chunk are not stored
	}
	writeTestFile(t, s, v, "a", data)
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	r, err := s.Scrub(ScrubOptions{})
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if r.Bytes != 2*size || r.Bad != 0 {
		t.Fatalf("scrub: %+v", r)
	}
	// Two copies of 64 chunks: 32 MiB with two buffers per copy read.
	if got := after.TotalAlloc - before.TotalAlloc; got > size/2 {
		t.Fatalf("scrub of %d MiB allocated %d KiB", 2*size>>20, got>>10)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}
