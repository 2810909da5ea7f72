package store

import (
	"bytes"
	"errors"
	"math/rand"
	"os"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/snapfs/snapfs/pool"
	"github.com/snapfs/snapfs/pool/pooltest"
)

// countingFS is the OS file system with the bytes its files' ReadAt
// asked for counted: what a read of the store took from the members.
type countingFS struct {
	pool.OSFS
	read *atomic.Int64
}

type countingFile struct {
	pool.File
	read *atomic.Int64
}

func (c countingFS) OpenFile(name string, flag int, perm os.FileMode) (pool.File, error) {
	f, err := c.OSFS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return countingFile{f, c.read}, nil
}

func (f countingFile) ReadAt(b []byte, off int64) (int, error) {
	f.read.Add(int64(len(b)))
	return f.File.ReadAt(b, off)
}

// readAt reads n bytes at off of file ino through a fresh read-only handle.
func readAt(s *Store, v View, ino uint64, off int64, n int) ([]byte, error) {
	h, err := s.Open(v, ino, syscall.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer h.Release()
	buf := make([]byte, n)
	m, err := h.Read(buf, off)
	return buf[:m], err
}

// flipAt flips the byte at offset pos of the record at l.
func flipAt(t *testing.T, p *pool.Pool, l pool.Location, pos int64) {
	t.Helper()
	f, err := os.OpenFile(packPath(p, l), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	if _, err := f.ReadAt(b, l.Offset+pos); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, l.Offset+pos); err != nil {
		t.Fatal(err)
	}
}

// TestColdRandomReadReadsPages: a 4 KiB read in the middle of a chunk
// not in memory takes the header, one page and the page trailer from the
// member, not the 128 KiB record, and keeps nothing in the chunk cache;
// a read across two pages takes two; a sequential read from the start
// of the file still loads whole chunks (and caches them); the bytes are
// right every time.
func TestColdRandomReadReadsPages(t *testing.T) {
	var read atomic.Int64
	fsys := countingFS{read: &read}
	p := pooltest.NewOptions(t, 1, pool.CreateOptions{FS: fsys}, pool.OpenOptions{FS: fsys})
	s, v := openTestStoreOn(t, p)
	data := randBytes(1 << 20)
	ino := writeTestFile(t, s, v, "f", data)
	cs := int64(128 << 10)
	for _, tc := range []struct {
		name    string
		off     int64
		n       int
		maxRead int64
	}{
		{"one page", 3*cs + 5*4096, 4096, pool.HeaderSize + 4096 + 4*32 + 4},
		{"unaligned in one page", 3*cs + 5*4096 + 100, 1000, pool.HeaderSize + 4096 + 4*32 + 4},
		{"across two pages", 5*cs + 7*4096 + 2048, 4096, pool.HeaderSize + 2*4096 + 4*32 + 4},
		{"first page of a chunk", 6 * cs, 4096, pool.HeaderSize + 4096 + 4*32 + 4},
		{"last page of the file", 1<<20 - 4096, 4096, pool.HeaderSize + 4096 + 4*32 + 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dropCache(s)
			read.Store(0)
			got, err := readAt(s, v, ino, tc.off, tc.n)
			if err != nil || !bytes.Equal(got, data[tc.off:tc.off+int64(tc.n)]) {
				t.Fatalf("read %d at %d: %d bytes, %v", tc.n, tc.off, len(got), err)
			}
			if r := read.Load(); r == 0 || r > tc.maxRead {
				t.Fatalf("read %d bytes from the member for %d at %d, want at most %d", r, tc.n, tc.off, tc.maxRead)
			}
			if n := len(s.cache.m); n != 0 {
				t.Fatalf("a random read cached %d chunks", n)
			}
		})
	}
	dropCache(s)
	read.Store(0)
	got, err := readTestFile(s, v, ino, len(data))
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("sequential read: %d bytes, %v", len(got), err)
	}
	if r := read.Load(); r < int64(len(data)) {
		t.Fatalf("sequential read took %d bytes from the member for %d", r, len(data))
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestColdRandomReadFlippedPage: one copy of a chunk (copies=2) has a
// byte flipped in one page. A random read of that page gets the right
// bytes from the other copy and has the bad one rewritten (read repair
// through the whole-chunk read); a read of another page of the same
// chunk never needed the bad page. With one copy, the read of the bad
// page fails with ErrChecksum (EIO at the mount; never wrong bytes) while the other pages of the
// chunk still read.
func TestColdRandomReadFlippedPage(t *testing.T) {
	const page = 9
	t.Run("copies=2", func(t *testing.T) {
		p := pooltest.NewOptions(t, 2, pool.CreateOptions{Copies: 2}, pool.OpenOptions{})
		s, v := openTestStoreOn(t, p)
		data := randBytes(512 << 10)
		ino := writeTestFile(t, s, v, "f", data)
		h, rec := chunkOf(t, s, v, ino, 2)
		bad := rec.Locs[0] // the read tries Locs[0] first
		flipAt(t, p, bad, pool.HeaderSize+page*4096+100)
		dropCache(s)
		off := int64(2<<17 + page*4096)
		got, err := readAt(s, v, ino, off, 4096)
		if err != nil || !bytes.Equal(got, data[off:off+4096]) {
			t.Fatalf("read of the flipped page: %v", err)
		}
		s.waitReadRepairs()
		if got := s.readRepairCounts(); got != (ReadRepairs{Found: 1, Rewritten: 1}) {
			t.Fatalf("read repair counts %+v", got)
		}
		now, _, _ := getChunkRefFrom(s.db, h)
		if containsLoc(now.Locs, bad) || len(now.Locs) != 2 {
			t.Fatalf("copies after the repair: %v (bad %v)", now.Locs, bad)
		}
		r, err := s.Scrub(ScrubOptions{NoRepair: true})
		if err != nil || r.Bad != 0 {
			t.Fatalf("verify-only scrub: %+v %v", r, err)
		}
		if err := s.Check(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("copies=1", func(t *testing.T) {
		p := pooltest.New(t, 1)
		s, v := openTestStoreOn(t, p)
		data := randBytes(512 << 10)
		ino := writeTestFile(t, s, v, "f", data)
		_, rec := chunkOf(t, s, v, ino, 2)
		flipAt(t, p, rec.Locs[0], pool.HeaderSize+page*4096+100)
		for pg := int64(0); pg < 32; pg++ {
			dropCache(s)
			off := 2<<17 + pg*4096
			got, err := readAt(s, v, ino, off, 4096)
			switch {
			case pg == page && !errors.Is(err, pool.ErrChecksum):
				t.Fatalf("read of the flipped page: %d bytes, %v; want pool.ErrChecksum", len(got), err)
			case pg != page && (err != nil || !bytes.Equal(got, data[off:off+4096])):
				t.Fatalf("read of page %d beside the flipped one: %v", pg, err)
			}
		}
	})
}

// TestColdReadOldRecords: a pool whose chunks were written as version 1
// records (before the page trailer), then written to with version 2, as
// after an upgrade: every file reads right by random pages and
// sequentially, scrub finds every copy good, and Check is clean. A
// flipped byte in an old record is still found by a random read (which
// reads that record whole).
func TestColdReadOldRecords(t *testing.T) {
	p := pooltest.NewOptions(t, 1, pool.CreateOptions{}, pool.OpenOptions{RecordVersion: 1})
	s, v := openTestStoreOn(t, p)
	old := randBytes(600 << 10)
	oldIno := writeTestFile(t, s, v, "old", old)
	s, p, v = reopenStore(t, s, p) // writes version 2 from here
	cur := randBytes(600 << 10)
	curIno := writeTestFile(t, s, v, "new", cur)
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	for i := 0; i < 200; i++ {
		ino, data := oldIno, old
		if i%2 == 1 {
			ino, data = curIno, cur
		}
		if i%20 == 0 {
			dropCache(s)
		}
		off := rng.Int63n(int64(len(data)))
		n := 1 + rng.Intn(3*4096)
		got, err := readAt(s, v, ino, off, n)
		end := min(off+int64(n), int64(len(data)))
		if err != nil || !bytes.Equal(got, data[off:end]) {
			t.Fatalf("seed %d: read %d at %d of %s: %d bytes, %v", seed, n, off, map[bool]string{true: "old", false: "new"}[ino == oldIno], len(got), err)
		}
	}
	readBack(t, s, v, oldIno, old)
	readBack(t, s, v, curIno, cur)
	r, err := s.Scrub(ScrubOptions{NoRepair: true})
	if err != nil || r.Bad != 0 || r.Chunks == 0 {
		t.Fatalf("scrub: %+v %v", r, err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	_, rec := chunkOf(t, s, v, oldIno, 1)
	flipAt(t, p, rec.Locs[0], pool.HeaderSize+20*4096)
	dropCache(s)
	if _, err := readAt(s, v, oldIno, 1<<17+3*4096, 4096); !errors.Is(err, pool.ErrChecksum) {
		t.Fatalf("random read of a version 1 record with a flipped byte elsewhere: %v, want pool.ErrChecksum", err)
	}
}
