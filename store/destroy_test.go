package store

import (
	"crypto/rand"
	"fmt"
	"syscall"
	"testing"
)

// TestDestroyBranchRightAfterItsSnapshot destroys a branch just after one
// of its own snapshots, while the snapshot's reclaim walk may still be
// running in the background over the branch's deadlist: the two must not
// both release the versions the walk frees (a lost reference count, once
// "reference change -1 to unknown chunk"). Each round ends with Check.
func TestDestroyBranchRightAfterItsSnapshot(t *testing.T) {
	s, live := NewTestStore(t, 2, Options{})
	writeRoot(t, s, live, "f", 300_000)
	base, _, err := s.PinEpoch(live.Lineage, "base", nil)
	if err != nil {
		t.Fatal(err)
	}
	for round := range 20 {
		holder := fmt.Sprintf("branch-%d", round)
		bv, err := s.ForkLineage(base, holder, nil)
		if err != nil {
			t.Fatal(err)
		}
		// Versions the branch wrote, pinned by its snapshot, then
		// superseded: the snapshot's deadlist holds them.
		for i := range 8 {
			writeRoot(t, s, bv, fmt.Sprintf("g%d", i), 300_000)
		}
		snap, _, err := s.PinEpoch(bv.Lineage, "snap", nil)
		if err != nil {
			t.Fatal(err)
		}
		for i := range 8 {
			writeRoot(t, s, bv, fmt.Sprintf("g%d", i), 300_000)
		}
		if err := s.flushLineage(bv.Lineage); err != nil {
			t.Fatal(err)
		}
		if err := s.UnpinEpoch(bv.Lineage, snap.Epoch, "snap"); err != nil {
			t.Fatal(err)
		}
		if err := s.DestroyLineage(bv.Lineage, holder); err != nil {
			t.Fatalf("round %d: destroy the branch: %v", round, err)
		}
		if err := s.Sync(); err != nil {
			t.Fatal(err)
		}
		if err := s.Check(); err != nil {
			t.Fatalf("round %d: %v", round, err)
		}
	}
	if err := s.UnpinEpoch(live.Lineage, base.Epoch, "base"); err != nil {
		t.Fatal(err)
	}
}

// writeRoot creates or overwrites root file name of v with n random bytes.
func writeRoot(t *testing.T, s *Store, v View, name string, n int) {
	t.Helper()
	var h *Handle
	a, err := s.Lookup(v, RootIno, name)
	switch {
	case err == nil:
		h, err = s.Open(v, a.Ino, syscall.O_RDWR) // overwrite in place: chunk versions go on the deadlist
	case isNotFound(err):
		_, h, err = s.Create(v, RootIno, name, 0o644, 0, 0, syscall.O_RDWR)
	}
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, n)
	rand.Read(data)
	if _, err := h.Write(data, 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
}

// TestForkStartsFromTheForkPointsCounters forks a branch from a snapshot
// taken before the parent grew, shrank and gained files: the branch's
// files and used counters are those of the snapshot, not of the parent's
// live view (Check recounts them), at two levels of branches.
func TestForkStartsFromTheForkPointsCounters(t *testing.T) {
	s, live := NewTestStore(t, 2, Options{})
	writeRoot(t, s, live, "a", 100_000)
	pin, _, err := s.PinEpoch(live.Lineage, "s1", nil)
	if err != nil {
		t.Fatal(err)
	}
	writeRoot(t, s, live, "b", 300_000)
	writeRoot(t, s, live, "a", 200_000) // overwrite in place: grows a
	b1, err := s.ForkLineage(pin, "b1", nil)
	if err != nil {
		t.Fatal(err)
	}
	writeRoot(t, s, b1, "c", 50_000)
	pin2, _, err := s.PinEpoch(b1.Lineage, "t1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Unlink(b1, RootIno, "a"); err != nil {
		t.Fatal(err)
	}
	b2, err := s.ForkLineage(pin2, "b2", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		v           View
		used, files int64
	}{{live, 500_000, 3}, {b1, 50_000, 2}, {b2, 150_000, 3}} {
		if used, files := s.readCounter(usedKey(c.v.Lineage)), s.readCounter(filesKey(c.v.Lineage)); used != c.used || files != c.files {
			t.Errorf("lineage %d: used %d files %d, want %d and %d", c.v.Lineage, used, files, c.used, c.files)
		}
	}
	if err := s.DestroyLineage(b2.Lineage, "b2"); err != nil {
		t.Fatal(err)
	}
	if err := s.UnpinEpoch(b1.Lineage, pin2.Epoch, "t1"); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := s.countersAt(b1.Lineage, pin2.Epoch); ok {
		t.Errorf("the counters of a pin outlive it")
	}
	if err := s.DestroyLineage(b1.Lineage, "b1"); err != nil {
		t.Fatal(err)
	}
	if err := s.UnpinEpoch(live.Lineage, pin.Epoch, "s1"); err != nil {
		t.Fatal(err)
	}
}

// TestBranchDestroyInterruptedAfterDrop stops a branch destroy where a
// crash would (the branch-destroy kill point): its keys dropped, its
// catalog record and its hold on the fork point still there. The store
// must be consistent then (the branch shows its fork point again, with its
// counters: once, the files and used counters still counted what was
// dropped), and a second destroy must finish the job.
func TestBranchDestroyInterruptedAfterDrop(t *testing.T) {
	s, live := NewTestStore(t, 2, Options{})
	writeRoot(t, s, live, "f", 300_000)
	base, _, err := s.PinEpoch(live.Lineage, "base", nil)
	if err != nil {
		t.Fatal(err)
	}
	bv, err := s.ForkLineage(base, "branch", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		writeRoot(t, s, bv, fmt.Sprintf("g%d", i), 50_000)
	}
	if err := s.flushLineage(bv.Lineage); err != nil {
		t.Fatal(err)
	}
	l, err := s.lineageOf(bv)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.dropLineageKeys(l); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Fatalf("after the keys of a branch were dropped: %v", err)
	}
	if _, err := s.Lookup(bv, RootIno, "g0"); !isNotFound(err) {
		t.Fatalf("lookup of a dropped branch file: %v, want not found", err)
	}
	if _, err := s.Lookup(bv, RootIno, "f"); err != nil {
		t.Fatalf("the branch shows its fork point again: lookup f: %v", err)
	}
	if err := s.DestroyLineage(bv.Lineage, "branch"); err != nil {
		t.Fatalf("destroy again: %v", err)
	}
	if err := s.UnpinEpoch(live.Lineage, base.Epoch, "base"); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}
