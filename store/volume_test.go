package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/snapfs/snapfs/pool"
	"github.com/snapfs/snapfs/pool/pooltest"
)

// TestDestroyVolume destroys a volume with files next to one that stays:
// the name is free at once (a new volume takes it), the chunks only the
// destroyed volume referenced leave the pool once the background walk
// ends, the other volume reads as before, and Check passes.
func TestDestroyVolume(t *testing.T) {
	s, live := NewTestStore(t, 2, Options{})
	writeRoot(t, s, live, "keep", 200_000)
	if _, err := s.CreateVolume("doomed", VolumeOptions{}); err != nil {
		t.Fatal(err)
	}
	dv, err := s.LiveView("doomed")
	if err != nil {
		t.Fatal(err)
	}
	writeRoot(t, s, dv, "a", 300_000)
	writeRoot(t, s, dv, "b", 300_000)
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	_, _, before, _ := s.PoolUsage()
	if err := s.DestroyVolume("doomed"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Volume("doomed"); !errors.Is(err, ErrNoVolume) {
		t.Fatalf("destroyed volume still listed: %v", err)
	}
	if _, err := s.CreateVolume("doomed", VolumeOptions{}); err != nil {
		t.Fatalf("name not free at once: %v", err)
	}
	s.WaitBackground()
	_, _, after, _ := s.PoolUsage()
	if after >= before {
		t.Fatalf("chunks %d before destroy, %d after: nothing freed", before, after)
	}
	if n, err := s.PendingDrops(); err != nil || n != 0 {
		t.Fatalf("pending drops %d, %v", n, err)
	}
	if err := s.DestroyVolume("doomed"); err != nil {
		t.Fatalf("destroy the new, empty volume: %v", err)
	}
	if err := s.DestroyVolume("nosuch"); !errors.Is(err, ErrNoVolume) {
		t.Fatalf("destroy missing volume: %v", err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestDestroyVolumeRefusals: a volume with a snapshot or a branch is
// refused by the store (the snap package destroys them first).
func TestDestroyVolumeRefusals(t *testing.T) {
	s, live := NewTestStore(t, 1, Options{})
	writeRoot(t, s, live, "f", 10_000)
	snap, _, err := s.PinEpoch(live.Lineage, "s", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DestroyVolume("vol"); !errors.Is(err, ErrBusy) {
		t.Fatalf("destroy with a snapshot: %v, want ErrBusy", err)
	}
	bv, err := s.ForkLineage(snap, "b", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.UnpinEpoch(live.Lineage, snap.Epoch, "s"); err != nil {
		t.Fatal(err)
	}
	if err := s.DestroyVolume("vol"); !errors.Is(err, ErrBusy) {
		t.Fatalf("destroy with a branch: %v, want ErrBusy", err)
	}
	if err := s.DestroyLineage(bv.Lineage, "b"); err != nil {
		t.Fatal(err)
	}
	if err := s.DestroyVolume("vol"); err != nil {
		t.Fatal(err)
	}
	s.WaitBackground()
	if _, _, chunks, _ := s.PoolUsage(); chunks != 0 {
		t.Fatalf("%d chunks left after the last volume went", chunks)
	}
}

// TestDestroyVolumeResumesAfterCrash: a crash right after DestroyVolume's
// catalog batch (the intent written, no key walked) loses nothing: the
// next Open finishes the walk, and the volume's chunks leave the pool.
func TestDestroyVolumeResumesAfterCrash(t *testing.T) {
	p := pooltest.New(t, 1)
	s, live := openTestStoreOn(t, p)
	writeRoot(t, s, live, "f", 400_000)
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	// Commit only the catalog half of a destroy, as DestroyVolume does
	// before it starts the walk.
	s.cat.Lock()
	l := s.cat.lineages[live.Lineage]
	s.cat.Unlock()
	ij, _ := json.Marshal(dropIntent{Lin: live.Lineage, Family: l.rec.Family, Volume: "vol"})
	b := s.db.NewBatch()
	_ = b.Delete(catalogKey(catVolume, "vol"), nil)
	_ = b.Delete(catalogKey(catLineage, fmt.Sprint(live.Lineage)), nil)
	_ = b.Set(dropKey(live.Lineage), ij, nil)
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	b.Close()
	s, _ = reopenKeepVolumes(t, s, p)
	if n, _ := s.PendingDrops(); n != 0 {
		t.Fatalf("pending drops %d after reopen, want 0", n)
	}
	if _, _, chunks, _ := s.PoolUsage(); chunks != 0 {
		t.Fatalf("%d chunks left after the resumed drop", chunks)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// reopenKeepVolumes closes s and its pool and opens both again, without
// creating any volume.
func reopenKeepVolumes(t *testing.T, s *Store, p *pool.Pool) (*Store, *pool.Pool) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	q, err := pool.Open(p.Dir(), pool.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	s2, err := Open(q, Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s2.Close() })
	return s2, q
}

// TestRenameVolume renames a volume with a branch: views, files and the
// branch's lineage follow; the old name is free; renaming onto an
// existing volume is refused; the rename survives a reopen.
func TestRenameVolume(t *testing.T) {
	p := pooltest.New(t, 1)
	s, live := openTestStoreOn(t, p)
	writeRoot(t, s, live, "f", 10_000)
	snap, _, err := s.PinEpoch(live.Lineage, "s", nil)
	if err != nil {
		t.Fatal(err)
	}
	bv, err := s.ForkLineage(snap, "b", nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateVolume("other", VolumeOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.RenameVolume("vol", "other"); !errors.Is(err, ErrVolumeExists) {
		t.Fatalf("rename onto an existing volume: %v", err)
	}
	if err := s.RenameVolume("nosuch", "x"); !errors.Is(err, ErrNoVolume) {
		t.Fatalf("rename a missing volume: %v", err)
	}
	if err := s.RenameVolume("vol", "a/b"); !errors.Is(err, ErrBadName) {
		t.Fatalf("rename to a bad name: %v", err)
	}
	if err := s.RenameVolume("vol", "users"); err != nil {
		t.Fatal(err)
	}
	nv, err := s.LiveView("users")
	if err != nil || nv != live {
		t.Fatalf("renamed live view %+v %v, want %+v", nv, err, live)
	}
	if _, err := s.LiveView("vol"); !errors.Is(err, ErrNoVolume) {
		t.Fatalf("old name still resolves: %v", err)
	}
	if _, err := s.CreateVolume("vol", VolumeOptions{}); err != nil {
		t.Fatalf("old name not free: %v", err)
	}
	s, p = reopenKeepVolumes(t, s, p)
	nv, err = s.LiveView("users")
	if err != nil || nv.Lineage != live.Lineage {
		t.Fatalf("after reopen: %+v %v", nv, err)
	}
	if _, err := s.Lookup(nv, RootIno, "f"); err != nil {
		t.Fatalf("file after rename and reopen: %v", err)
	}
	if _, err := s.Lookup(bv, RootIno, "f"); err != nil {
		t.Fatalf("branch file after rename and reopen: %v", err)
	}
	_ = p
}

// TestSetVolume: quota and chunk size change durably; a quota below what
// the volume uses is refused (as ZFS refuses it) and changes nothing; a
// lowered quota then answers writes with ErrQuota.
func TestSetVolume(t *testing.T) {
	p := pooltest.New(t, 1)
	s, live := openTestStoreOn(t, p)
	writeRoot(t, s, live, "f", 100_000)
	q := int64(50_000)
	if _, err := s.SetVolume("vol", VolumeSettings{Quota: &q}); !errors.Is(err, ErrQuotaBelowUsed) || !errors.Is(err, ErrNoSpace) {
		t.Fatalf("quota below usage: %v", err)
	}
	if vi, _ := s.Volume("vol"); vi.Quota != 0 {
		t.Fatalf("refused quota was stored: %d", vi.Quota)
	}
	neg := int64(-1)
	if _, err := s.SetVolume("vol", VolumeSettings{Quota: &neg}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("negative quota: %v", err)
	}
	for _, cs := range []int{1000, 2048, 2 << 20} {
		if _, err := s.SetVolume("vol", VolumeSettings{ChunkSize: &cs}); !errors.Is(err, ErrInvalid) {
			t.Fatalf("chunk size %d: %v", cs, err)
		}
	}
	if _, err := s.SetVolume("nosuch", VolumeSettings{Quota: &q}); !errors.Is(err, ErrNoVolume) {
		t.Fatalf("missing volume: %v", err)
	}
	q = 150_000
	cs := 16384
	vi, err := s.SetVolume("vol", VolumeSettings{Quota: &q, ChunkSize: &cs})
	if err != nil || vi.Quota != q || vi.ChunkSize != cs {
		t.Fatalf("set: %+v %v", vi, err)
	}
	_, h, err := s.Create(live, RootIno, "g", 0o644, 0, 0, 2)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Write(make([]byte, 100_000), 0); !errors.Is(err, ErrQuota) {
		t.Errorf("write over the new quota: %v, want ErrQuota", err)
	}
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
	a, err := s.Lookup(live, RootIno, "g")
	if err != nil || a.Blksize != uint32(cs) {
		t.Fatalf("new file's chunk size %d (%v), want %d", a.Blksize, err, cs)
	}
	s, p = reopenKeepVolumes(t, s, p)
	vi, err = s.Volume("vol")
	if err != nil || vi.Quota != q || vi.ChunkSize != cs {
		t.Fatalf("after reopen: %+v %v", vi, err)
	}
	zero := int64(0)
	if vi, err = s.SetVolume("vol", VolumeSettings{Quota: &zero}); err != nil || vi.Quota != 0 {
		t.Fatalf("remove quota: %+v %v", vi, err)
	}
	_ = p
}
