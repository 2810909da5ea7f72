package store

import (
	"syscall"
	"testing"
	"time"

	"github.com/snapfs/snapfs/pool"
	"github.com/snapfs/snapfs/pool/pooltest"
)

// hintedChunks returns, per member, how many of the given first copies
// lie inside a hint fs recorded.
func hintedChunks(fs *hintFS, p *pool.Pool, locs []pool.Location) map[uint16]int {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	n := map[uint16]int{}
	for _, l := range locs {
		if fs.covered(packPath(p, l), l.Offset, l.Offset+pool.HeaderSize+int64(l.Length)) {
			n[l.Member]++
		}
	}
	return n
}

// fileFirstCopies returns the first location of each chunk of file ino.
func fileFirstCopies(t *testing.T, s *Store, v View, ino uint64, chunks int) []pool.Location {
	t.Helper()
	var locs []pool.Location
	for i := 0; i < chunks; i++ {
		_, rec := chunkOf(t, s, v, ino, uint64(i))
		locs = append(locs, rec.Locs[0])
	}
	return locs
}

// TestHintChunks: hintChunks hints the first copy of every chunk of a
// range that is not cached, on every member the chunks stripe over.
func TestHintChunks(t *testing.T) {
	fs := &hintFS{hinted: map[string][][2]int64{}}
	p := pooltest.NewOptions(t, 2, pool.CreateOptions{FS: fs}, pool.OpenOptions{FS: fs})
	s, v := openTestStoreOn(t, p)
	const chunks = 24
	ino := writeTestFile(t, s, v, "a", randBytes(chunks<<17))
	locs := fileFirstCopies(t, s, v, ino, chunks)
	dropCache(s)
	cached, _ := chunkOf(t, s, v, ino, 5)
	s.cache.put(cached, make([]byte, 1))
	s.hintChunks([]viewPoint{{v.Lineage, LiveEpoch}}, ino, 0, 2, chunks)
	got := hintedChunks(fs, p, locs)
	want := map[uint16]int{}
	for i, l := range locs[2:] {
		if i+2 != 5 {
			want[l.Member]++
		}
	}
	if len(want) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("hinted chunks per member %v, want %v", got, want)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestSequentialReadHints: a sequential read in 128 KiB requests (as the
// kernel sends them) has the readahead hint the chunks ahead of it on both
// members; the bytes read are the file's.
func TestSequentialReadHints(t *testing.T) {
	fs := &hintFS{hinted: map[string][][2]int64{}}
	p := pooltest.NewOptions(t, 2, pool.CreateOptions{FS: fs}, pool.OpenOptions{FS: fs})
	s, v := openTestStoreOn(t, p)
	const chunks = 96 // 12 MiB: more than one readahead window
	data := randBytes(chunks << 17)
	ino := writeTestFile(t, s, v, "a", data)
	locs := fileFirstCopies(t, s, v, ino, chunks)
	dropCache(s)
	h, err := s.Open(v, ino, syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 128<<10)
	for off := 0; off < len(data); off += len(buf) {
		n, err := h.Read(buf, int64(off))
		if err != nil || n != len(buf) || string(buf) != string(data[off:off+n]) {
			t.Fatalf("read at %d: %d bytes, %v", off, n, err)
		}
		// A reader slower than the disks: the refill a read started
		// (its hints) ends before the next read, even with one CPU
		// (make test-procs1), where the reader would otherwise read
		// every chunk before a background goroutine ran.
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
			h.ra.mu.Lock()
			running := h.ra.running
			h.ra.mu.Unlock()
			if running == 0 {
				break
			}
		}
	}
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
	// The hints are sent in the background: wait for them.
	var got map[uint16]int
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if got = hintedChunks(fs, p, locs); got[0]+got[1] >= chunks/2 && got[0] > 0 && got[1] > 0 {
			break
		}
	}
	if got[0] == 0 || got[1] == 0 || got[0]+got[1] < chunks/2 {
		t.Fatalf("chunks hinted per member %v of %d chunks", got, chunks)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}
