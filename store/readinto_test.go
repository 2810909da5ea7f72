package store

import (
	"bytes"
	"errors"
	"math/rand"
	"syscall"
	"testing"
	"time"

	"github.com/snapfs/snapfs/pool"
	"github.com/snapfs/snapfs/pool/pooltest"
)

// readInRequests reads file ino through one read-only handle in requests
// of n bytes from off to its end (as the kernel's read-ahead sends them)
// and returns what they read.
func readInRequests(t *testing.T, s *Store, v View, ino uint64, off int64, n int) []byte {
	t.Helper()
	h, err := s.Open(v, ino, syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	var got []byte
	buf := make([]byte, n)
	for {
		clear(buf)
		m, err := h.Read(buf, off)
		if err != nil {
			t.Fatalf("read %d at %d: %v", n, off, err)
		}
		got = append(got, buf[:m]...)
		if m < n {
			return got
		}
		off += int64(m)
	}
}

// TestReadIntoRequestBuffer: a cold read whose requests hold whole
// chunks from their start reads each record straight into the request's
// buffer: the bytes are the file's (a hole and a short last chunk
// included) and the chunk cache stays empty (a read through it would
// fill it). Requests that start inside a chunk read that one through the
// cache and are right too.
func TestReadIntoRequestBuffer(t *testing.T) {
	p := pooltest.New(t, 2)
	s, v := openTestStoreOn(t, p)
	const cs = 128 << 10
	data := randBytes(20*cs + 5000)
	clear(data[5*cs : 6*cs]) // a hole
	ino := writeTestFile(t, s, v, "f", data)
	for _, tc := range []struct {
		name   string
		off    int64
		n      int
		cached bool // whether chunks may go through the cache
	}{
		{"1 MiB requests", 0, 1 << 20, false},
		{"128 KiB requests", 0, cs, false},
		{"one request for it all", 0, len(data) + 4096, false},
		{"from the third chunk", 2 * cs, 1 << 20, false},
		{"1 MiB requests from inside a chunk", 64 << 10, 1 << 20, true},
		{"requests of a chunk and a half", 0, 3 * cs / 2, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dropCache(s)
			got := readInRequests(t, s, v, ino, tc.off, tc.n)
			if !bytes.Equal(got, data[tc.off:]) {
				t.Fatalf("read %d bytes from %d, want the file's %d", len(got), tc.off, len(data)-int(tc.off))
			}
			s.cache.mu.Lock()
			n := len(s.cache.m)
			s.cache.mu.Unlock()
			if !tc.cached && n != 0 {
				t.Fatalf("%d chunks cached: the read went through the chunk cache", n)
			}
		})
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestReadIntoOverlay: bytes written into stored chunks and not yet
// flushed (overlays), and whole chunks written and not flushed, are read
// over the committed bytes a request read straight into its buffer.
func TestReadIntoOverlay(t *testing.T) {
	p := pooltest.New(t, 1)
	s, v := openTestStoreOn(t, p)
	const cs = 128 << 10
	data := randBytes(16 * cs)
	ino := writeTestFile(t, s, v, "f", data)
	dropCache(s)
	h, err := s.Open(v, ino, syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	for _, w := range []struct{ off, n int }{{3*cs + 5000, 100}, {4*cs - 10, 20}, {9 * cs, cs}, {12*cs + 4096, 8192}} {
		b := randBytes(w.n)
		if _, err := h.Write(b, int64(w.off)); err != nil {
			t.Fatal(err)
		}
		copy(data[w.off:], b)
	}
	buf := make([]byte, 1<<20)
	for off := 0; off < len(data); off += len(buf) {
		n, err := h.Read(buf, int64(off))
		if err != nil || n != len(buf) || !bytes.Equal(buf, data[off:off+n]) {
			t.Fatalf("read at %d: %d bytes, %v, right: %v", off, n, err, bytes.Equal(buf[:n], data[off:off+n]))
		}
	}
	if err := h.Fsync(false); err != nil {
		t.Fatal(err)
	}
	readBack(t, s, v, ino, data)
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestReadIntoFlipped: a byte flipped in the copy a request reads
// straight into its buffer. With a second copy the read returns the
// right bytes from it and the bad copy is rewritten (read repair, as for
// any read); with one copy the read fails with ErrChecksum and counts
// only the chunks before the bad one, which are right: no byte of the
// bad record is returned.
func TestReadIntoFlipped(t *testing.T) {
	const cs = 128 << 10
	for _, flip := range []struct {
		name string
		pos  int64
	}{
		{"header", 10}, {"page 7", pool.HeaderSize + 7*4096 + 1}, {"last byte", pool.HeaderSize + cs - 1}, {"page table", pool.HeaderSize + cs + 3},
	} {
		pos := flip.pos
		t.Run(flip.name+"/copies=2", func(t *testing.T) {
			p := pooltest.NewOptions(t, 2, pool.CreateOptions{Copies: 2}, pool.OpenOptions{})
			s, v := openTestStoreOn(t, p)
			data := randBytes(8 * cs)
			ino := writeTestFile(t, s, v, "f", data)
			_, rec := chunkOf(t, s, v, ino, 2)
			flipAt(t, p, rec.Locs[0], pos)
			dropCache(s)
			if got := readInRequests(t, s, v, ino, 0, 1<<20); !bytes.Equal(got, data) {
				t.Fatalf("read %d bytes, not the file's", len(got))
			}
			s.waitReadRepairs()
			if got := s.readRepairCounts(); got != (ReadRepairs{Found: 1, Rewritten: 1}) {
				t.Fatalf("read repair counts %+v", got)
			}
			if err := s.Check(); err != nil {
				t.Fatal(err)
			}
		})
		t.Run(flip.name+"/copies=1", func(t *testing.T) {
			p := pooltest.New(t, 1)
			s, v := openTestStoreOn(t, p)
			data := randBytes(8 * cs)
			ino := writeTestFile(t, s, v, "f", data)
			_, rec := chunkOf(t, s, v, ino, 2)
			flipAt(t, p, rec.Locs[0], pos)
			dropCache(s)
			h, err := s.Open(v, ino, syscall.O_RDONLY)
			if err != nil {
				t.Fatal(err)
			}
			defer h.Release()
			buf := make([]byte, 1<<20)
			n, err := h.Read(buf, 0)
			if !errors.Is(err, pool.ErrChecksum) || n != 2*cs || !bytes.Equal(buf[:n], data[:n]) {
				t.Fatalf("read: %d bytes, %v; want %d good bytes and ErrChecksum", n, err, 2*cs)
			}
		})
	}
}

// TestReadIntoModel: random writes (flushed or not), cache drops and
// reads of random sizes at chunk starts and anywhere, through a
// read-write handle and fresh read-only ones, against a model of the
// file's bytes. The seed is printed on failure.
func TestReadIntoModel(t *testing.T) {
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	p := pooltest.New(t, 2)
	s, v := openTestStoreOn(t, p)
	const cs = 128 << 10
	model := randBytes(rng.Intn(24*cs) + 1)
	ino := writeTestFile(t, s, v, "f", model)
	h, err := s.Open(v, ino, syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	sizes := []int{4096, cs, cs + 4096, 1 << 20, 3 * cs / 2}
	for op := 0; op < 400; op++ {
		switch r := rng.Intn(10); {
		case r < 3:
			off := rng.Intn(len(model) + cs)
			b := make([]byte, 1+rng.Intn(2*cs))
			rng.Read(b)
			if rng.Intn(4) == 0 {
				clear(b) // zeros: a hole when a whole chunk
			}
			if _, err := h.Write(b, int64(off)); err != nil {
				t.Fatalf("seed %d op %d: write: %v", seed, op, err)
			}
			if end := off + len(b); end > len(model) {
				model = append(model, make([]byte, end-len(model))...)
			}
			copy(model[off:], b)
		case r < 4:
			if err := h.Fsync(false); err != nil {
				t.Fatalf("seed %d op %d: fsync: %v", seed, op, err)
			}
		case r < 5:
			dropCache(s)
		default:
			off := int64(rng.Intn(len(model) + 4096))
			if rng.Intn(2) == 0 {
				off -= off % cs
			}
			rh := h
			if rng.Intn(3) == 0 {
				if rh, err = s.Open(v, ino, syscall.O_RDONLY); err != nil {
					t.Fatal(err)
				}
			}
			buf := bytes.Repeat([]byte{0xee}, sizes[rng.Intn(len(sizes))])
			n, err := rh.Read(buf, off)
			want := model[min(off, int64(len(model))):min(off+int64(len(buf)), int64(len(model)))]
			if err != nil || !bytes.Equal(buf[:n], want) {
				t.Fatalf("seed %d op %d: read %d at %d: %d bytes, %v; want %d bytes, right: %v", seed, op, len(buf), off, n, err, len(want), bytes.Equal(buf[:n], want))
			}
			if rh != h {
				rh.Release()
			}
		}
	}
	if err := h.Fsync(false); err != nil {
		t.Fatal(err)
	}
	readBack(t, s, v, ino, model)
	if err := s.Check(); err != nil {
		t.Fatalf("seed %d: %v", seed, err)
	}
}
