package store

import (
	"bytes"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"syscall"
	"testing"
	"time"
)

// TestRelieveTakesDensestOverlays: a flush with sealRelieve (the timer and
// dirty pressure) takes full and old chunks and, under pressure, the
// densest quarter of the overlays, and leaves sparse overlays buffered to
// gather more writes; whatever it takes or leaves, the file reads the
// same before and after it, after fsync, and Check passes (at cleanup).
func TestRelieveTakesDensestOverlays(t *testing.T) {
	const cs = 128 << 10 // the default chunk size
	for _, tc := range []struct {
		name     string
		pages    map[uint64]int // overlay chunk index -> 4 KiB pages written into it
		newChunk bool           // also a 4 KiB write past the end: a buffer, not an overlay
		pressure bool           // the store is past half its dirty limit
		old      bool           // OverlayFlushInterval has passed for every overlay
		want     []uint64       // chunk indexes the flush takes
	}{
		{name: "no pressure, overlays young: nothing", pages: map[uint64]int{0: 3, 1: 5, 2: 1, 3: 8}},
		{name: "pressure: the densest quarter", pages: map[uint64]int{0: 3, 1: 9, 2: 1, 3: 7, 4: 2, 5: 2, 6: 4, 7: 1}, pressure: true, want: []uint64{1, 3}},
		{name: "pressure, equal overlays: lowest index first", pages: map[uint64]int{0: 2, 1: 2, 2: 2, 3: 2}, pressure: true, want: []uint64{0}},
		{name: "pressure, one overlay: taken", pages: map[uint64]int{5: 1}, pressure: true, want: []uint64{5}},
		{name: "pressure takes every buffer", pages: map[uint64]int{0: 1, 1: 6, 2: 1, 3: 1}, newChunk: true, pressure: true, want: []uint64{1, 10}},
		{name: "no pressure: a young buffer stays", pages: map[uint64]int{0: 1}, newChunk: true},
		{name: "old overlays: all taken", pages: map[uint64]int{0: 1, 2: 3, 4: 1}, old: true, want: []uint64{0, 2, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			opts := Options{DirtyLimit: 64 << 20, FlushInterval: time.Hour, OverlayFlushInterval: time.Hour}
			if tc.old {
				opts.OverlayFlushInterval = time.Nanosecond
			}
			s, v := NewTestStore(t, 1, opts)
			model := randomChunks(8*cs, 3)
			h := storedFile(t, s, v, model)
			defer h.Release()
			st := h.st
			// Keep the background flusher off the inode while the
			// overlays are made (the test seals them itself).
			st.flushMu.Lock()
			write := func(off int64, fill byte) {
				data := bytes.Repeat([]byte{fill}, 4096)
				if _, err := h.Write(data, off); err != nil {
					st.flushMu.Unlock()
					t.Fatal(err)
				}
				if end := off + 4096; end > int64(len(model)) {
					model = append(model, make([]byte, end-int64(len(model)))...)
				}
				copy(model[off:], data)
			}
			for idx, n := range tc.pages {
				for p := range n {
					write(int64(idx)*cs+int64(p)*2*4096, byte(idx+1)) // every other page: no chunk gets full
				}
			}
			if tc.newChunk {
				write(10*cs+4096, 0x77)
			}
			var extra int64
			if tc.pressure {
				extra = s.opts.DirtyLimit/4*3 + 1 - s.dirtyBytes.Load()
				s.dirtyBytes.Add(extra)
			}
			j, ok, _ := s.sealJob(st, sealRelieve)
			s.dirtyBytes.Add(-extra)
			var got []uint64
			if ok {
				for _, c := range j.chunks {
					got = append(got, c.idx)
				}
			}
			if !slices.Equal(got, tc.want) {
				st.flushMu.Unlock()
				t.Fatalf("relieve took chunks %v, want %v (dirty before: %v)", got, tc.want, slices.Sorted(maps.Keys(tc.pages)))
			}
			checkRead(t, h, model, "with the chunks sealed")
			if ok {
				if err := s.flushJobs([]*flushJob{j}, func() { s.unlockFlush(st) }); err != nil {
					t.Fatal(err)
				}
			} else {
				s.unlockFlush(st)
			}
			st.mu.Lock()
			left := len(st.dirty)
			st.mu.Unlock()
			if want := len(tc.pages) + btoi(tc.newChunk) - len(tc.want); left != want {
				t.Fatalf("%d chunks still dirty after the flush, want %d", left, want)
			}
			checkRead(t, h, model, "after the relieving flush")
			if err := h.Fsync(false); err != nil {
				t.Fatal(err)
			}
			checkRead(t, h, model, "after fsync")
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// TestRelieveModelWithSnapshots: random small writes into a stored file
// under a small dirty limit (so relieving flushes take some overlays and
// leave others), explicit relieving flushes and snapshots; every snapshot
// must hold every write made before it (whatever a relieving flush left
// buffered), and the live file and each snapshot read as their models.
// The seed is printed on failure.
func TestRelieveModelWithSnapshots(t *testing.T) {
	for _, seed := range []uint64{1, 2, uint64(time.Now().UnixNano())} {
		t.Run("", func(t *testing.T) {
			defer func() {
				if t.Failed() {
					t.Logf("seed %d", seed)
				}
			}()
			const cs = 128 << 10
			s, v := NewTestStore(t, 1, Options{DirtyLimit: 1 << 20, FlushInterval: time.Hour})
			r := rand.New(rand.NewPCG(seed, 11))
			model := randomChunks(16*cs, seed)
			h := storedFile(t, s, v, model)
			defer h.Release()
			type snap struct {
				v     View
				model []byte
			}
			var snaps []snap
			leftBehind := 0 // relieving flushes that left overlays buffered
			for step := 0; step < 600; step++ {
				switch k := r.IntN(100); {
				case k < 80:
					off := r.Int64N(int64(len(model))) &^ 4095
					n := 4096
					if k < 10 { // unaligned, may span pages
						off, n = r.Int64N(int64(len(model))), 1+r.IntN(6000)
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
				case k < 90:
					if err := s.flushInodeMode(h.st, sealRelieve); err != nil {
						t.Fatalf("step %d: relieving flush: %v", step, err)
					}
					h.st.withLock(func() {
						if len(h.st.dirty) > 0 {
							leftBehind++
						}
					})
				case k < 93:
					sv, _, err := s.PinEpoch(v.Lineage, fmt.Sprintf("s%d", step), nil)
					if err != nil {
						t.Fatalf("step %d: snapshot: %v", step, err)
					}
					snaps = append(snaps, snap{sv, append([]byte(nil), model...)})
				default:
					off := r.Int64N(int64(len(model)))
					n := 1 + r.IntN(200<<10)
					got := make([]byte, n)
					m, err := h.Read(got, off)
					if want := model[off:min(off+int64(n), int64(len(model)))]; err != nil || !bytes.Equal(got[:m], want) {
						t.Fatalf("step %d: read %d at %d: %d bytes, %v; differs from the model", step, n, off, m, err)
					}
				}
			}
			if leftBehind == 0 {
				t.Fatal("no relieving flush left an overlay buffered: the test did not test what it says")
			}
			checkRead(t, h, model, "live")
			for i, sn := range snaps {
				hs, err := s.Open(sn.v, h.ino, syscall.O_RDONLY)
				if err != nil {
					t.Fatal(err)
				}
				checkRead(t, hs, sn.model, fmt.Sprintf("snapshot %d", i))
				hs.Release()
			}
		})
	}
}
