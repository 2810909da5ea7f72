package store

import (
	"bytes"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"
)

func TestOverlayPages(t *testing.T) {
	const cs = 16 << 10
	type wr struct {
		off  int64
		n    int
		fits bool
	}
	for _, tc := range []struct {
		name   string
		writes []wr
		whole  int   // pages valid over all their bytes
		mem    int64 // bytes of pages
		extent int64
	}{
		{"one aligned page", []wr{{4096, 4096, true}}, 1, 4096, 8192},
		{"unaligned across two pages", []wr{{4000, 200, true}}, 0, 8192, 4200},
		{"abutting spans join", []wr{{100, 100, true}, {200, 100, true}, {0, 100, true}}, 0, 4096, 300},
		{"overlapping spans join", []wr{{100, 100, true}, {150, 4000, true}}, 0, 8192, 4150},
		{"a gap in one page does not fit", []wr{{100, 100, true}, {300, 10, false}}, 0, 4096, 200},
		{"whole chunk", []wr{{0, cs, true}}, 4, cs, cs},
		{"two spans grow to a whole page", []wr{{0, 2048, true}, {2048, 2048, true}}, 1, 4096, 4096},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o := newOverlay(cs)
			model := make([]byte, cs)
			for i, w := range tc.writes {
				if got := o.fits(w.off, int64(w.n)); got != w.fits {
					t.Fatalf("write %d: fits %v, want %v", i, got, w.fits)
				}
				if !w.fits {
					continue
				}
				data := bytes.Repeat([]byte{byte(i + 1)}, w.n)
				o.write(w.off, data)
				copy(model[w.off:], data)
			}
			if o.whole != tc.whole || o.mem != tc.mem || o.extent() != tc.extent {
				t.Fatalf("whole %d mem %d extent %d, want %d %d %d", o.whole, o.mem, o.extent(), tc.whole, tc.mem, tc.extent)
			}
			if o.covers(cs) != (tc.whole == cs/overlayPage) {
				t.Fatalf("covers %v with %d whole pages", o.covers(cs), o.whole)
			}
			// Laid over a base of 0xEE bytes, written bytes win and the rest
			// shows the base.
			got := bytes.Repeat([]byte{0xEE}, cs)
			o.apply(got, 0)
			for i := range got {
				if model[i] != 0 && got[i] != model[i] || model[i] == 0 && got[i] != 0xEE {
					t.Fatalf("byte %d: %#x (model %#x)", i, got[i], model[i])
				}
			}
			// A clipped copy applied to a window gives the same bytes there.
			win := bytes.Repeat([]byte{0xEE}, 3000)
			o.clip(3500, 6500).apply(win, 3500)
			if !bytes.Equal(win, got[3500:6500]) {
				t.Fatal("clipped overlay differs in its window")
			}
		})
	}
}

// TestSmallWriteIntoStoredChunkReadsNothing: a 4 KiB write into the
// middle of a stored chunk buffers 4 KiB, not the chunk; the old bytes
// are read when the chunk is flushed.
func TestSmallWriteIntoStoredChunkReadsNothing(t *testing.T) {
	s, v := NewTestStore(t, 1, Options{})
	old := randomChunks(1<<20, 1)
	h := storedFile(t, s, v, old)
	defer h.Release()
	if d := s.dirtyBytes.Load(); d != 0 {
		t.Fatalf("dirty bytes after fsync: %d", d)
	}
	patch := bytes.Repeat([]byte{0x5A}, 4096)
	if _, err := h.Write(patch, 300<<10); err != nil {
		t.Fatal(err)
	}
	if d := s.dirtyBytes.Load(); d != 4096 {
		t.Fatalf("dirty bytes after a 4 KiB write into a stored chunk: %d, want 4096", d)
	}
	want := append([]byte(nil), old...)
	copy(want[300<<10:], patch)
	checkRead(t, h, want, "before the flush")
	if err := h.Fsync(false); err != nil {
		t.Fatal(err)
	}
	checkRead(t, h, want, "after the flush")
	if d := s.dirtyBytes.Load(); d != 0 {
		t.Fatalf("dirty bytes after the second fsync: %d", d)
	}
}

// TestUnlinkDropsBufferedChunks: a file written, closed and unlinked
// before the flusher took its chunks gives back their dirty bytes and pool
// reservations (they leaked before).
func TestUnlinkDropsBufferedChunks(t *testing.T) {
	s, v := NewTestStore(t, 1, Options{FlushInterval: time.Hour})
	_, h, err := s.Create(v, RootIno, "f", 0o644, 0, 0, syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	st := h.st
	st.flushMu.Lock() // keep the flusher off the inode until it is unlinked
	if _, err := h.Write(randomChunks(3<<20+5, 2), 0); err != nil {
		st.flushMu.Unlock()
		t.Fatal(err)
	}
	h.Release()
	err = s.Unlink(v, RootIno, "f")
	st.flushMu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for s.dirtyBytes.Load() != 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	_, _, reserved, err := s.pool.Space()
	if err != nil {
		t.Fatal(err)
	}
	if d := s.dirtyBytes.Load(); d != 0 || reserved != 0 {
		t.Fatalf("after unlink: %d dirty bytes, %d bytes reserved, want 0 and 0", d, reserved)
	}
}

// TestOverlaysUnderBackgroundFlushes writes, truncates, punches and reads
// one stored file at random while the flusher and the dirty limit flush it
// underneath (overlays over sealed overlays over committed chunks), and
// compares every read with a model.
func TestOverlaysUnderBackgroundFlushes(t *testing.T) {
	for _, seed := range []uint64{1, 2, 3} {
		t.Run("", func(t *testing.T) {
			s, v := NewTestStore(t, 2, Options{DirtyLimit: 1 << 20, FlushInterval: 5 * time.Millisecond})
			r := rand.New(rand.NewPCG(seed, 7))
			model := randomChunks(2<<20+1234, seed)
			h := storedFile(t, s, v, model)
			for step := 0; step < 1500; step++ {
				switch k := r.IntN(100); {
				case k < 55: // small write, page-aligned or not
					off := r.Int64N(int64(len(model)) + 8192)
					n := 1 + r.IntN(9000)
					if k < 30 {
						off, n = off&^4095, 4096
					}
					data := make([]byte, n)
					for i := range data {
						data[i] = byte(r.UintN(255) + 1)
					}
					if _, err := h.Write(data, off); err != nil {
						t.Fatalf("step %d: write: %v", step, err)
					}
					if end := off + int64(n); end > int64(len(model)) {
						model = append(model, make([]byte, end-int64(len(model)))...)
					}
					copy(model[off:], data)
				case k < 60: // truncate, mostly shrinking a little
					size := max(0, int64(len(model))-r.Int64N(300<<10)+r.Int64N(100<<10))
					if _, err := s.SetAttr(v, h.ino, SetAttrIn{Valid: SetSize, Size: uint64(size)}); err != nil {
						t.Fatalf("step %d: truncate: %v", step, err)
					}
					if size < int64(len(model)) {
						model = model[:size]
					} else {
						model = append(model, make([]byte, size-int64(len(model)))...)
					}
				case k < 65 && len(model) > 0: // punch a hole
					off := r.Int64N(int64(len(model)))
					n := 1 + r.Int64N(200<<10)
					if err := h.Allocate(off, n, FallocPunchHole|FallocKeepSize); err != nil {
						t.Fatalf("step %d: punch: %v", step, err)
					}
					clear(model[off:min(off+n, int64(len(model)))])
				case k < 70:
					if err := h.Fsync(false); err != nil {
						t.Fatalf("step %d: fsync: %v", step, err)
					}
				default: // read a random range
					off := r.Int64N(int64(len(model)) + 1)
					n := 1 + r.IntN(300<<10)
					got := make([]byte, n)
					m, err := h.Read(got, off)
					want := model[off:min(off+int64(n), int64(len(model)))]
					if err != nil || !bytes.Equal(got[:m], want) {
						t.Fatalf("step %d: read %d at %d: %d bytes, %v; differs from the model", step, n, off, m, err)
					}
				}
			}
			checkRead(t, h, model, "before release")
			checkSyncedReopen(t, s, v, h, model)
			if d := s.dirtyBytes.Load(); d != 0 {
				t.Fatalf("dirty bytes after sync: %d", d)
			}
		})
	}
}

// randomChunks returns n random non-zero bytes from seed (trailing zeros
// of a chunk are not stored, which would blur the byte counts).
func randomChunks(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 99))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(255) + 1)
	}
	return b
}

// storedFile writes data to a new file "f", fsyncs it (its chunks are
// stored) and returns the file opened for reading and writing.
func storedFile(t *testing.T, s *Store, v View, data []byte) *Handle {
	t.Helper()
	h, err := s.Open(v, writeTestFile(t, s, v, "f", data), syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// checkSyncedReopen releases h, syncs the store and reads the file back
// through a new handle.
func checkSyncedReopen(t *testing.T, s *Store, v View, h *Handle, want []byte) {
	t.Helper()
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	h2, err := s.Open(v, h.ino, syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer h2.Release()
	checkRead(t, h2, want, "after sync and reopen")
}

// checkRead reads the whole file through h and compares it with want.
func checkRead(t *testing.T, h *Handle, want []byte, when string) {
	t.Helper()
	got := make([]byte, len(want)+4096)
	n, err := h.Read(got, 0)
	if err != nil || n != len(want) || !bytes.Equal(got[:n], want) {
		t.Fatalf("%s: read %d bytes (want %d), %v; equal %v", when, n, len(want), err, bytes.Equal(got[:min(n, len(want))], want[:min(n, len(want))]))
	}
}

// TestSnapshotTakesOverlays: small writes into stored chunks that are
// still overlays when a snapshot is taken are in the snapshot; writes to
// the same chunks after it are only in the live view, and the snapshot's
// chunk versions stay as they were (DESIGN-NOTES 1: the live view writes
// new versions over pinned ones).
func TestSnapshotTakesOverlays(t *testing.T) {
	s, v := NewTestStore(t, 1, Options{FlushInterval: time.Hour})
	base := randomChunks(512<<10, 4)
	h := storedFile(t, s, v, base)
	defer h.Release()
	before := append([]byte(nil), base...)
	for _, off := range []int64{4096, 130 << 10, 300<<10 + 17} {
		p := bytes.Repeat([]byte{0xA1}, 3000)
		if _, err := h.Write(p, off); err != nil {
			t.Fatal(err)
		}
		copy(before[off:], p)
	}
	if d := s.dirtyBytes.Load(); d == 0 || d >= 3*128<<10 {
		t.Fatalf("dirty bytes %d: want overlays, not whole chunks", d)
	}
	sv, _, err := s.PinEpoch(v.Lineage, "s1", nil)
	if err != nil {
		t.Fatal(err)
	}
	after := append([]byte(nil), before...)
	for _, off := range []int64{5000, 131 << 10} {
		p := bytes.Repeat([]byte{0xB2}, 2000)
		if _, err := h.Write(p, off); err != nil {
			t.Fatal(err)
		}
		copy(after[off:], p)
	}
	checkRead(t, h, after, "live, before the flush")
	if err := h.Fsync(false); err != nil {
		t.Fatal(err)
	}
	checkRead(t, h, after, "live, after the flush")
	hs, err := s.Open(sv, h.ino, syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer hs.Release()
	checkRead(t, hs, before, "snapshot")
}

// TestPipelinedFlushesOfOneFile: one file is written at its end while
// another goroutine patches its beginning in place and a third fsyncs,
// under a small dirty limit, so that several flush jobs of the file are in
// flight at once (each lets go of the file once appended) and patched
// chunks are held back behind a job that has them sealed. Every fsync
// must leave nothing sealed or buffered, and the file must read back as
// written, before and after a Sync.
func TestPipelinedFlushesOfOneFile(t *testing.T) {
	s, v := NewTestStore(t, 2, Options{DirtyLimit: 2 << 20, FlushInterval: 5 * time.Millisecond})
	head := randomChunks(1<<20, 11)
	h := storedFile(t, s, v, head)
	tail := randomChunks(24<<20, 12)
	errs := make(chan error, 3)
	stop := make(chan struct{})
	go func() { // appender
		for off := 0; off < len(tail); off += 256 << 10 {
			if _, err := h.Write(tail[off:off+256<<10], int64(len(head)+off)); err != nil {
				errs <- err
				return
			}
		}
		errs <- nil
	}()
	go func() { // patcher of the first MiB
		r := rand.New(rand.NewPCG(13, 14))
		for i := 0; i < 400; i++ {
			off := r.IntN(len(head) - 5000)
			p := make([]byte, 1+r.IntN(5000))
			for j := range p {
				p[j] = byte(r.UintN(255) + 1)
			}
			if _, err := h.Write(p, int64(off)); err != nil {
				errs <- err
				return
			}
			copy(head[off:], p)
		}
		errs <- nil
	}()
	go func() { // fsyncer
		for {
			select {
			case <-stop:
				errs <- nil
				return
			default:
			}
			if err := h.Fsync(false); err != nil {
				errs <- err
				return
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	for i := 0; i < 2; i++ {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	close(stop)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
	if err := h.Fsync(false); err != nil {
		t.Fatal(err)
	}
	st := h.st
	st.mu.Lock()
	sealed, dirty := len(st.sealed), len(st.dirty)
	st.mu.Unlock()
	if sealed != 0 || dirty != 0 {
		t.Fatalf("after fsync: %d chunks sealed, %d buffered, want none", sealed, dirty)
	}
	want := append(append([]byte(nil), head...), tail...)
	checkRead(t, h, want, "after fsync")
	checkSyncedReopen(t, s, v, h, want)
}

// TestFsyncReturnsUnderContinuousWrites: fsync takes what was written
// before it, and returns while another writer keeps rewriting the chunks
// it flushes (each rewrite is held back behind the job in flight).
func TestFsyncReturnsUnderContinuousWrites(t *testing.T) {
	s, v := NewTestStore(t, 1, Options{})
	h := storedFile(t, s, v, randomChunks(1<<20, 21))
	defer h.Release()
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		p := bytes.Repeat([]byte{0x77}, 512)
		for i := 0; ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if _, err := h.Write(p, int64(i%2048)*512); err != nil {
				done <- err
				return
			}
		}
	}()
	for i := 0; i < 20; i++ {
		res := make(chan error, 1)
		go func() { res <- h.Fsync(false) }()
		select {
		case err := <-res:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(20 * time.Second):
			close(stop)
			t.Fatalf("fsync %d did not return within 20s while a writer kept writing", i)
		}
	}
	close(stop)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
