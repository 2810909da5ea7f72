package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"syscall"
	"testing"
	"time"
)

// refCounts returns the reference count of every stored chunk.
func refCounts(t *testing.T, s *Store) map[string]uint64 {
	t.Helper()
	lo, hi := tagBounds(tagChunkRef)
	it, err := s.db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	out := map[string]uint64{}
	for ok := it.SeekGE(lo); ok && bytes.Compare(it.Key(), hi) < 0; ok = it.Next() {
		rec, err := decodeChunkRef(it.Value())
		if err != nil {
			t.Fatal(err)
		}
		out[string(it.Key())] = rec.Count
	}
	return out
}

// openRW opens a file of v for reading and writing; the caller releases it.
func openRW(t *testing.T, s *Store, v View, ino uint64) *Handle {
	t.Helper()
	h, err := s.Open(v, ino, syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// newEmpty creates an empty file in the root of v and returns its ino.
func newEmpty(t *testing.T, s *Store, v View, name string) uint64 {
	t.Helper()
	a, h, err := s.Create(v, RootIno, name, 0o644, 0, 0, syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
	return a.Ino
}

// TestCopyRangeCases: what is shared and what is copied, for each layout
// of a copy; the destination reads what the source held, and shared chunks
// add references, not records.
func TestCopyRangeCases(t *testing.T) {
	const cs = 128 << 10
	data := randomChunks(10*cs+5000, 7)
	for _, tc := range []struct {
		name                 string
		srcOff, dstOff, n    int64
		dstPre               int // bytes already in the destination
		wantNewRecords       bool
		wantSharedAtLeast    int // chunks whose count went to 2
		wantCopied, wantSize int64
	}{
		{"whole file to an empty file", 0, 0, int64(len(data)), 0, false, 11, int64(len(data)), int64(len(data))},
		{"more than the source holds", 0, 0, 1 << 30, 0, false, 11, int64(len(data)), int64(len(data))},
		{"unaligned edges, same residue", 1000, 1000, 5 * cs, 0, true, 4, 5 * cs, 5*cs + 1000},
		{"different residues: bytes only", 0, 4096, 3 * cs, 0, true, 0, 3 * cs, 3*cs + 4096},
		{"into the middle of a longer file", 2 * cs, 3 * cs, 2 * cs, 8 * cs, false, 2, 2 * cs, 8 * cs},
		{"past the source's end", int64(len(data)) + 1, 0, 100, 0, false, 0, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, v := NewTestStore(t, 2, Options{})
			srcIno := writeTestFile(t, s, v, "src", data)
			pre := randomChunks(tc.dstPre, 9)
			dstIno := newEmpty(t, s, v, "dst")
			if tc.dstPre > 0 {
				dstIno = writeTestFile(t, s, v, "dst2", pre)
			}
			if err := s.Sync(); err != nil {
				t.Fatal(err)
			}
			before := refCounts(t, s)
			src, dst := openRW(t, s, v, srcIno), openRW(t, s, v, dstIno)
			defer src.Release()
			n, err := s.CopyRange(src, tc.srcOff, dst, tc.dstOff, tc.n)
			if err != nil || n != tc.wantCopied {
				t.Fatalf("CopyRange: %d, %v; want %d", n, err, tc.wantCopied)
			}
			want := append([]byte(nil), pre...)
			if end := int(tc.dstOff + n); end > len(want) {
				want = append(want, make([]byte, end-len(want))...)
			}
			copy(want[tc.dstOff:], data[min(int(tc.srcOff), len(data)):min(int(tc.srcOff+n), len(data))])
			if int64(len(want)) != tc.wantSize {
				t.Fatalf("test table: model size %d, want %d", len(want), tc.wantSize)
			}
			checkRead(t, dst, want, "destination after the copy")
			checkRead(t, src, data, "source after the copy")
			if err := dst.Fsync(false); err != nil {
				t.Fatal(err)
			}
			after := refCounts(t, s)
			newRecords, twice := 0, 0
			for k, c := range after {
				if _, ok := before[k]; !ok {
					newRecords++
				} else if c == before[k]+1 {
					twice++
				}
			}
			if (newRecords > 0) != tc.wantNewRecords || twice < tc.wantSharedAtLeast {
				t.Errorf("%d new records (want any: %v), %d chunks shared (want at least %d)", newRecords, tc.wantNewRecords, twice, tc.wantSharedAtLeast)
			}
			checkSyncedReopen(t, s, v, dst, want)
		})
	}
}

// TestCopyRangeRefusals: overlap within one file (ErrInvalid, as ext4), a
// destination in a snapshot (ErrReadOnly); nothing changes.
func TestCopyRangeRefusals(t *testing.T) {
	const cs = 128 << 10
	s, v := NewTestStore(t, 2, Options{})
	data := randomChunks(4*cs, 3)
	ino := writeTestFile(t, s, v, "f", data)
	h := openRW(t, s, v, ino)
	defer h.Release()
	if _, err := s.CopyRange(h, 0, h, cs, 2*cs); !errors.Is(err, ErrInvalid) {
		t.Errorf("overlapping copy within a file: %v, want ErrInvalid", err)
	}
	if n, err := s.CopyRange(h, 0, h, 2*cs, 2*cs); err != nil || n != 2*cs {
		t.Errorf("copy within a file to a range of its own that does not overlap: %d %v", n, err)
	}
	want := append(append([]byte(nil), data[:2*cs]...), data[:2*cs]...)
	checkRead(t, h, want, "after a copy within the file")
	snap, _, err := s.PinEpoch(v.Lineage, "s", nil)
	if err != nil {
		t.Fatal(err)
	}
	sh, err := s.Open(snap, ino, syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CopyRange(h, 0, sh, 0, cs); !errors.Is(err, ErrReadOnly) {
		t.Errorf("copy into a snapshot: %v, want ErrReadOnly", err)
	}
	checkRead(t, sh, want, "the snapshot after a refused copy")
	if err := sh.Release(); err != nil {
		t.Fatal(err)
	}
	if err := s.UnpinEpoch(v.Lineage, snap.Epoch, "s"); err != nil {
		t.Fatal(err)
	}
}

// TestCopyRangeRestoreFromSnapshot: the common case, a file restored from
// a snapshot over its live self and into another volume and a branch, by
// reference; then the snapshot, the branch and the files go, and the
// reference counts come back to where they started (none), with Check
// clean at every step.
func TestCopyRangeRestoreFromSnapshot(t *testing.T) {
	const cs = 128 << 10
	s, v := NewTestStore(t, 2, Options{})
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	baseline := refCounts(t, s)
	old := randomChunks(16*cs+777, 11)
	ino := writeTestFile(t, s, v, "big", old)
	snap, _, err := s.PinEpoch(v.Lineage, "s1", nil)
	if err != nil {
		t.Fatal(err)
	}
	// The live file is overwritten, then restored from the snapshot.
	h := openRW(t, s, v, ino)
	newer := randomChunks(len(old), 12)
	if _, err := h.Write(newer, 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Fsync(false); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	recordsBefore := refCounts(t, s)
	sh, err := s.Open(snap, ino, syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := s.CopyRange(sh, 0, h, 0, int64(len(old))); err != nil || n != int64(len(old)) {
		t.Fatalf("restore: %d %v", n, err)
	}
	checkRead(t, h, old, "the live file restored from the snapshot")

	// Into another volume of the pool, and into a branch.
	if _, err := s.CreateVolume("vol2", VolumeOptions{}); err != nil {
		t.Fatal(err)
	}
	v2, err := s.LiveView("vol2")
	if err != nil {
		t.Fatal(err)
	}
	h2 := openRW(t, s, v2, newEmpty(t, s, v2, "copy"))
	if n, err := s.CopyRange(sh, 0, h2, 0, int64(len(old))); err != nil || n != int64(len(old)) {
		t.Fatalf("copy into another volume: %d %v", n, err)
	}
	br, err := s.ForkLineage(snap, "b", nil)
	if err != nil {
		t.Fatal(err)
	}
	hb := openRW(t, s, br, newEmpty(t, s, br, "fromlive"))
	if n, err := s.CopyRange(h2, 0, hb, 0, int64(len(old))); err != nil || n != int64(len(old)) {
		t.Fatalf("copy from one volume into a branch of another: %d %v", n, err)
	}
	for _, x := range []*Handle{h, h2, hb} {
		if err := x.Fsync(false); err != nil {
			t.Fatal(err)
		}
	}
	checkRead(t, h2, old, "the copy in vol2")
	checkRead(t, hb, old, "the copy in the branch")
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	// No record was added: the restore released the newer chunks, and
	// every chunk stored now was stored before the copies.
	after := refCounts(t, s)
	for k := range after {
		if _, ok := recordsBefore[k]; !ok {
			t.Errorf("a chunk record appeared during copies by reference")
			break
		}
	}
	if len(after) != len(recordsBefore)/2 {
		t.Errorf("stored chunks after the restore: %d, want %d (the overwrite's released)", len(after), len(recordsBefore)/2)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}

	// Snapshot the copies, overwrite one, then take everything down.
	snap2, _, err := s.PinEpoch(v2.Lineage, "t", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h2.Write(randomChunks(3*cs, 13), cs); err != nil {
		t.Fatal(err)
	}
	if err := h2.Fsync(false); err != nil {
		t.Fatal(err)
	}
	for _, x := range []*Handle{h, h2, hb, sh} {
		if err := x.Release(); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DestroyLineage(br.Lineage, "b"); err != nil {
		t.Fatal(err)
	}
	for _, d := range []struct {
		v    View
		name string
	}{{snap, "s1"}, {snap2, "t"}} {
		if err := s.UnpinEpoch(d.v.Lineage, d.v.Epoch, d.name); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Unlink(v, RootIno, "big"); err != nil {
		t.Fatal(err)
	}
	if err := s.Unlink(v2, RootIno, "copy"); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if got := refCounts(t, s); len(got) != len(baseline) {
		t.Errorf("after every file, snapshot and branch went: %d stored chunks, want %d", len(got), len(baseline))
	}
}

// TestCopyRangeModel: random writes, copies (aligned and not, between two
// volumes and from snapshots), preallocations, truncates, snapshots and
// destroys against
// an in-memory model; every file and snapshot reads as the model says,
// Check is clean, and once everything is gone no chunk is left.
func TestCopyRangeModel(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	defer func() {
		if t.Failed() {
			t.Logf("failed with seed %d", seed)
		}
	}()
	r := rand.New(rand.NewPCG(seed, 1))
	const cs = 128 << 10
	s, v := NewTestStore(t, 2, Options{})
	if _, err := s.CreateVolume("vol2", VolumeOptions{}); err != nil {
		t.Fatal(err)
	}
	v2, err := s.LiveView("vol2")
	if err != nil {
		t.Fatal(err)
	}
	type file struct {
		v    View
		name string
		ino  uint64
		h    *Handle
		data []byte
	}
	var files []*file
	for i, view := range []View{v, v, v2, v2} {
		f := &file{v: view, name: fmt.Sprintf("f%d", i)}
		f.ino = newEmpty(t, s, view, f.name)
		f.h = openRW(t, s, view, f.ino)
		files = append(files, f)
	}
	type snapshot struct {
		v     View
		name  string
		datas map[uint64][]byte // by ino, for files of its lineage
	}
	var snaps []snapshot
	randOff := func(limit int64) int64 {
		if r.IntN(2) == 0 {
			return int64(r.IntN(int(limit/cs)+1)) * cs
		}
		return r.Int64N(limit + 1)
	}
	for step := range 150 {
		f := files[r.IntN(len(files))]
		switch op := r.IntN(10); {
		case op < 3: // write
			off := randOff(int64(len(f.data)) + cs)
			b := randomChunks(1+r.IntN(3*cs), r.Uint64())
			if _, err := f.h.Write(b, off); err != nil {
				t.Fatal(err)
			}
			if need := int(off) + len(b); need > len(f.data) {
				f.data = append(f.data, make([]byte, need-len(f.data))...)
			}
			copy(f.data[off:], b)
		case op < 7: // copy from a live file or a snapshot
			srcH, srcData := (*Handle)(nil), []byte(nil)
			var release func()
			if len(snaps) > 0 && r.IntN(3) == 0 {
				sn := snaps[r.IntN(len(snaps))]
				var inos []uint64
				for ino := range sn.datas {
					inos = append(inos, ino)
				}
				if len(inos) == 0 {
					continue
				}
				ino := inos[r.IntN(len(inos))]
				sh, err := s.Open(sn.v, ino, syscall.O_RDONLY)
				if err != nil {
					t.Fatal(err)
				}
				srcH, srcData, release = sh, sn.datas[ino], func() { _ = sh.Release() }
			} else {
				g := files[r.IntN(len(files))]
				srcH, srcData, release = g.h, g.data, func() {}
			}
			srcOff := randOff(int64(len(srcData)))
			dstOff := randOff(int64(len(f.data)))
			if r.IntN(2) == 0 {
				dstOff = dstOff/cs*cs + srcOff%cs // same residue: chunks can be shared
			}
			n := r.Int64N(6*cs + 1)
			if srcH == f.h && srcOff < dstOff+n && dstOff < srcOff+n {
				release()
				continue // overlap: TestCopyRangeRefusals
			}
			got, err := s.CopyRange(srcH, srcOff, f.h, dstOff, n)
			release()
			if err != nil {
				t.Fatalf("step %d: copy: %v", step, err)
			}
			want := max(min(n, int64(len(srcData))-srcOff), 0)
			if got != want {
				t.Fatalf("step %d: copied %d, want %d", step, got, want)
			}
			if got > 0 {
				part := append([]byte(nil), srcData[srcOff:srcOff+got]...)
				if need := int(dstOff + got); need > len(f.data) {
					f.data = append(f.data, make([]byte, need-len(f.data))...)
				}
				copy(f.data[dstOff:], part)
			}
		case op < 8 && r.IntN(2) == 0: // fallocate, mode 0 or KEEP_SIZE
			off, n := randOff(int64(len(f.data))+cs), 1+r.Int64N(3*cs)
			keep := r.IntN(2) == 0
			mode := uint32(0)
			if keep {
				mode = FallocKeepSize
			}
			if err := f.h.Allocate(off, n, mode); err != nil {
				t.Fatalf("step %d: fallocate %d+%d keep %v: %v", step, off, n, keep, err)
			}
			if need := int(off + n); !keep && need > len(f.data) {
				f.data = append(f.data, make([]byte, need-len(f.data))...)
			}
		case op < 8: // truncate
			size := r.Int64N(int64(len(f.data)) + cs)
			if _, err := s.SetAttr(f.v, f.ino, SetAttrIn{Valid: SetSize, Size: uint64(size)}); err != nil {
				t.Fatal(err)
			}
			if int(size) < len(f.data) {
				f.data = f.data[:size]
			} else {
				f.data = append(f.data, make([]byte, int(size)-len(f.data))...)
			}
		case op < 9: // snapshot f's volume
			name := fmt.Sprintf("s%d", step)
			sv, _, err := s.PinEpoch(f.v.Lineage, name, nil)
			if err != nil {
				t.Fatal(err)
			}
			sn := snapshot{v: sv, name: name, datas: map[uint64][]byte{}}
			for _, g := range files {
				if g.v.Lineage == f.v.Lineage {
					sn.datas[g.ino] = append([]byte(nil), g.data...)
				}
			}
			snaps = append(snaps, sn)
		default: // destroy a snapshot
			if len(snaps) == 0 {
				continue
			}
			i := r.IntN(len(snaps))
			if err := s.UnpinEpoch(snaps[i].v.Lineage, snaps[i].v.Epoch, snaps[i].name); err != nil {
				t.Fatal(err)
			}
			snaps = append(snaps[:i], snaps[i+1:]...)
		}
		if step%25 == 24 {
			for _, g := range files {
				checkRead(t, g.h, g.data, fmt.Sprintf("step %d: %s", step, g.name))
			}
			for _, sn := range snaps {
				for ino, want := range sn.datas {
					sh, err := s.Open(sn.v, ino, syscall.O_RDONLY)
					if err != nil {
						t.Fatal(err)
					}
					checkRead(t, sh, want, fmt.Sprintf("step %d: snapshot %s inode %d", step, sn.name, ino))
					_ = sh.Release()
				}
			}
			if err := s.Sync(); err != nil {
				t.Fatal(err)
			}
			if err := s.Check(); err != nil {
				t.Fatalf("step %d: %v", step, err)
			}
		}
	}
	for _, sn := range snaps {
		if err := s.UnpinEpoch(sn.v.Lineage, sn.v.Epoch, sn.name); err != nil {
			t.Fatal(err)
		}
	}
	for _, f := range files {
		if err := f.h.Release(); err != nil {
			t.Fatal(err)
		}
		if err := s.Unlink(f.v, RootIno, f.name); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if got := reserved(t, s); got != 0 {
		t.Errorf("pool reservations left after every file went: %d", got)
	}
	if got := refCounts(t, s); len(got) != 0 {
		t.Errorf("%d chunks still stored after every file and snapshot went", len(got))
	}
}

// TestCopyRangeRollback: copies by reference made after a snapshot, into
// a new file and over an old one, are taken back by a rollback to it
// (DESIGN-NOTES 5: the rollback releases what the discarded versions
// referenced, the shared chunks included); the counts return to what they
// were at the snapshot, and to none once everything goes.
func TestCopyRangeRollback(t *testing.T) {
	const cs = 128 << 10
	s, v := NewTestStore(t, 2, Options{})
	a := randomChunks(6*cs, 21)
	b := randomChunks(6*cs, 22)
	aIno := writeTestFile(t, s, v, "a", a)
	bIno := writeTestFile(t, s, v, "b", b)
	snap, _, err := s.PinEpoch(v.Lineage, "s", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	atSnap := refCounts(t, s)
	ha, hb := openRW(t, s, v, aIno), openRW(t, s, v, bIno)
	hc := openRW(t, s, v, newEmpty(t, s, v, "c"))
	for _, c := range []struct {
		dst *Handle
		src *Handle
	}{{hc, ha}, {hb, ha}} {
		if n, err := s.CopyRange(c.src, 0, c.dst, 0, int64(len(a))); err != nil || n != int64(len(a)) {
			t.Fatalf("copy: %d %v", n, err)
		}
	}
	for _, h := range []*Handle{ha, hb, hc} {
		if err := h.Release(); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RollbackLineage(v.Lineage, snap.Epoch); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Fatalf("after the rollback: %v", err)
	}
	if got := refCounts(t, s); len(got) != len(atSnap) {
		t.Errorf("after the rollback: %d chunks, want %d as at the snapshot", len(got), len(atSnap))
	} else {
		for k, c := range got {
			if atSnap[k] != c {
				t.Errorf("after the rollback a chunk counts %d, want %d", c, atSnap[k])
			}
		}
	}
	if got, err := readFile(s, v, RootIno, "b"); err != nil || !bytes.Equal(got, b) {
		t.Errorf("b after the rollback: %v, equal %v", err, bytes.Equal(got, b))
	}
	if _, err := s.Lookup(v, RootIno, "c"); !errors.Is(err, ErrNotFound) {
		t.Errorf("c after the rollback: %v, want ErrNotFound", err)
	}
	if err := s.UnpinEpoch(v.Lineage, snap.Epoch, "s"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"a", "b"} {
		if err := s.Unlink(v, RootIno, n); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if got := refCounts(t, s); len(got) != 0 {
		t.Errorf("%d chunks left after everything went", len(got))
	}
}
