package store

import (
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/snapfs/snapfs/pool"
	"github.com/snapfs/snapfs/pool/pooltest"
)

// queuedLocs returns the locations in the free-queue or parked entries
// (tag tagFreeQ or tagParked).
func queuedLocs(t *testing.T, s *Store, tag byte) []pool.Location {
	t.Helper()
	lo, hi := tagBounds(tag)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	var locs []pool.Location
	for ok := it.First(); ok; ok = it.Next() {
		rec, err := decodeFreeQ(it.Value())
		if err != nil {
			t.Fatal(err)
		}
		locs = append(locs, rec.Locs...)
	}
	return locs
}

// recordGone reports whether the record at l no longer reads back (its
// extent punched, or its pack deleted).
func recordGone(p *pool.Pool, l pool.Location, h pool.Hash) bool {
	_, err := p.Read(l, h, nil)
	return err != nil
}

// TestReclaimSkipsFailedFree: the punch of one freed record fails (EIO,
// once). The reclaim pass frees every other record and keeps only that
// one queued; the next pass frees it.
func TestReclaimSkipsFailedFree(t *testing.T) {
	ff := pool.NewFaultFS(pool.NewMemFS())
	p := pooltest.NewOptions(t, 1, pool.CreateOptions{}, pool.OpenOptions{FS: ff})
	// No background reclaim pass: the test runs them.
	s, v := openTestStoreOpts(t, p, Options{FlushInterval: time.Hour})
	const n = 5
	for i := 0; i < n; i++ {
		writeTestFile(t, s, v, fmt.Sprintf("f%d", i), randBytes(100<<10)) // one chunk each
	}
	refs, err := chunkRefsIn(s.db)
	if err != nil || len(refs) != n {
		t.Fatalf("%d chunkrefs, want %d: %v", len(refs), n, err)
	}
	if !canPunch(t, p) {
		t.Fatal("a MemFS member must punch")
	}
	ff.Inject(pool.Fault{Op: pool.OpPunch, Path: "/packs/", Err: syscall.EIO})
	for i := 0; i < n; i++ {
		if err := s.Unlink(v, RootIno, fmt.Sprintf("f%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	if q := queuedLocs(t, s, tagFreeQ); len(q) != n {
		t.Fatalf("%d records queued, want %d", len(q), n)
	}
	s.reclaim(false)
	kept := queuedLocs(t, s, tagFreeQ)
	if len(kept) != 1 {
		t.Fatalf("after a pass with one failed punch, %d records queued (%v), want 1", len(kept), kept)
	}
	for h, rec := range refs {
		l := rec.Locs[0]
		if gone := recordGone(p, l, h); gone == (l == kept[0]) {
			t.Fatalf("record %v: gone %v (the failed one is %v)", l, gone, kept[0])
		}
	}
	s.reclaim(false)
	if q := queuedLocs(t, s, tagFreeQ); len(q) != 0 {
		t.Fatalf("%d records still queued after the punch works again", len(q))
	}
	for h, rec := range refs {
		if !recordGone(p, rec.Locs[0], h) {
			t.Fatalf("record %v not freed", rec.Locs[0])
		}
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestParkedFreesRequeuedAtOpen: frees parked while a member was gone
// are requeued when the pool is next opened with the member present, and
// reclaimed, where before they stayed parked for good.
func TestParkedFreesRequeuedAtOpen(t *testing.T) {
	p := pooltest.NewOptions(t, 2, pool.CreateOptions{Copies: 2}, pool.OpenOptions{})
	needPunch(t, p)
	s, v := openTestStoreOn(t, p)
	files := testFiles(t, s, v, "f", 3)
	refs, err := chunkRefsIn(s.db)
	if err != nil {
		t.Fatal(err)
	}
	remount := pooltest.UnmountMember(t, p, 1)
	if err := s.CheckMembers(false); err != nil {
		t.Fatal(err)
	}
	a, err := s.Lookup(v, RootIno, "f0")
	if err != nil {
		t.Fatal(err)
	}
	delete(files, a.Ino)
	if err := s.Unlink(v, RootIno, "f0"); err != nil {
		t.Fatal(err)
	}
	s.reclaim(false)
	parked := queuedLocs(t, s, tagParked)
	if len(parked) == 0 {
		t.Fatal("no free parked for the gone member")
	}
	s, p, v = reopenStoreAfter(t, s, p, remount)
	if n := countTag(t, s, tagParked); n != 0 {
		t.Fatalf("%d parked frees left after an open with the member present", n)
	}
	// The requeued frees are fresh queue entries: punched once a
	// checkpoint taken after them is shipped (checkpoint.go).
	if _, err := s.Checkpoint("test"); err != nil {
		t.Fatal(err)
	}
	s.reclaim(false)
	if q := queuedLocs(t, s, tagFreeQ); len(q) != 0 {
		t.Fatalf("%d frees still queued: %v", len(q), q)
	}
	for _, l := range parked {
		for h, rec := range refs {
			if containsLoc(rec.Locs, l) && !recordGone(p, l, h) {
				t.Fatalf("parked record %v not freed", l)
			}
		}
	}
	checkFiles(t, s, v, files)
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if fr, err := s.Fsck(FsckOptions{}); err != nil || len(fr.Problems) != 0 || fr.Leaked != 0 {
		t.Fatalf("fsck: %+v %v", fr, err)
	}
}
