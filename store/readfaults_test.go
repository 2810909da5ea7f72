package store

import (
	"strings"
	"syscall"
	"testing"

	"github.com/snapfs/snapfs/pool"
	"github.com/snapfs/snapfs/pool/pooltest"
)

// memberHealth returns the health of member i.
func memberHealth(t *testing.T, p *pool.Pool, i uint16) pool.MemberHealth {
	t.Helper()
	for _, m := range p.Health().Members {
		if m.Index == i {
			return m
		}
	}
	t.Fatalf("no member %d in %+v", i, p.Health())
	return pool.MemberHealth{}
}

// TestMemberFailingReadsDegraded: one member of a copies=2 pool of three
// answers every pack read with EIO (sticky). Readers get every byte
// (read around); after several distinct records failed the member is
// degraded for failing reads, its copies are read last (its error count
// stops growing), and new data goes to the others. A scrub rewrites each
// of its copies on another member, after which no chunk has a copy
// there, and the store checks clean.
func TestMemberFailingReadsDegraded(t *testing.T) {
	ff := pool.NewFaultFS(pool.NewMemFS())
	p := pooltest.NewOptions(t, 3, pool.CreateOptions{Copies: 2}, pool.OpenOptions{FS: ff})
	s, v := openTestStoreOn(t, p)
	files := testFiles(t, s, v, "f", 10)
	const bad = 1
	onBad := locsOn(t, s, bad, 2)
	if onBad < 8 {
		t.Fatalf("only %d copies on member %d", onBad, bad)
	}
	ff.Inject(pool.Fault{Op: pool.OpRead, Path: p.Config().Members[bad].Path + "/packs/", Err: syscall.EIO, Sticky: true})

	dropCache(s)
	checkFiles(t, s, v, files)
	// Reads before it was degraded may have rewritten a few of its
	// copies elsewhere (readrepair.go).
	s.waitReadRepairs()
	onBad = locsOn(t, s, bad, 2)
	mh := memberHealth(t, p, bad)
	if mh.State != pool.StateDegraded || !mh.FailsReads || mh.ReadErrors < 4 || !strings.Contains(mh.Problem, "I/O errors") {
		t.Fatalf("member failing reads: %+v", mh)
	}
	if st := p.Health().State; st != pool.StateDegraded {
		t.Fatalf("pool state %s with a member failing reads", st)
	}
	// Read last: reading everything again costs it no failed read.
	dropCache(s)
	checkFiles(t, s, v, files)
	if again := memberHealth(t, p, bad); again.ReadErrors != mh.ReadErrors {
		t.Fatalf("read errors grew from %d to %d: its copies were not read last", mh.ReadErrors, again.ReadErrors)
	}
	// New data goes to the other members.
	writeTestFile(t, s, v, "new", randBytes(600<<10))
	if n := locsOn(t, s, bad, 1); n != onBad {
		t.Fatalf("copies on the failing member: %d, were %d", n, onBad)
	}

	r, err := s.Scrub(ScrubOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Bad != int64(onBad) || r.Repaired != r.Bad || r.Unrepairable != 0 || len(r.Damaged) != 0 {
		t.Fatalf("scrub with a member failing reads (%d copies there): %+v", onBad, r)
	}
	if n := locsOn(t, s, bad, 2); n != 0 {
		t.Fatalf("%d copies left on the failing member after the scrub", n)
	}
	if mh := memberHealth(t, p, bad); !mh.FailsReads {
		t.Fatalf("after the scrub the member is %+v, want degraded for failing reads", mh)
	}
	dropCache(s)
	checkFiles(t, s, v, files)
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestOneBadRecordDoesNotDegrade: reads of a single record failing again
// and again are counted but leave the member ok (one bad sector).
func TestOneBadRecordDoesNotDegrade(t *testing.T) {
	ff := pool.NewFaultFS(pool.NewMemFS())
	p := pooltest.NewOptions(t, 2, pool.CreateOptions{Copies: 2}, pool.OpenOptions{FS: ff})
	s, v := openTestStoreOn(t, p)
	data := randBytes(100 << 10) // one chunk
	ino := writeTestFile(t, s, v, "a", data)
	_, rec := someChunkRef(t, s)
	first := rec.Locs[0].Member // read first
	ff.Inject(pool.Fault{Op: pool.OpRead, Path: p.Config().Members[first].Path + "/packs/", Err: syscall.EIO, Sticky: true})
	for i := 0; i < 6; i++ {
		dropCache(s)
		if _, err := readTestFile(s, v, ino, len(data)); err != nil {
			t.Fatal(err)
		}
	}
	mh := memberHealth(t, p, first)
	if mh.ReadErrors == 0 || mh.FailsReads || mh.State != pool.StateOK {
		t.Fatalf("one bad record: %+v", mh)
	}
	ff.Clear()
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}
