package store

import (
	"context"
	"errors"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/snapfs/snapfs/pool"
	"github.com/snapfs/snapfs/pool/pooltest"
)

// stopScrubAt runs a scrub that is cancelled once it has finished n
// chunks (counting those of the scrub it resumes), and returns its report,
// error and the number of chunks it verified itself.
func stopScrubAt(s *Store, o ScrubOptions, n int64) (ScrubReport, error, int) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	seen := 0
	o.Context = ctx
	o.Progress = func(r ScrubReport) {
		seen++
		if r.Chunks >= n {
			cancel()
		}
	}
	r, err := s.Scrub(o)
	return r, err, seen
}

// countedScrub runs a scrub and returns how many chunks it verified itself.
func countedScrub(s *Store, o ScrubOptions) (ScrubReport, error, int) {
	seen := 0
	o.Progress = func(ScrubReport) { seen++ }
	r, err := s.Scrub(o)
	return r, err, seen
}

// TestScrubResumes stops a scrub part way (a bad copy found and repaired
// before the stop), reopens the store, writes more, and scrubs again: the
// second scrub says it resumes, verifies only the chunks past the cursor
// plus the new ones, repairs a bad copy among them, and its totals are
// those of one whole scrub; the first repair stays; a third scrub starts
// afresh and finds nothing bad.
func TestScrubResumes(t *testing.T) {
	p := pooltest.NewOptions(t, 3, pool.CreateOptions{Copies: 2}, pool.OpenOptions{})
	s, v := openTestStoreOn(t, p)
	files := testFiles(t, s, v, "f", 10)
	crefs, err := chunkRefsIn(s.db)
	if err != nil {
		t.Fatal(err)
	}
	order := scrubOrder(crefs)
	total := int64(len(order))
	const stopAt = 12
	if total < 2*stopAt {
		t.Fatalf("only %d chunks", total)
	}
	early, late := order[3], order[total-4]
	earlyBad, lateBad := crefs[early].Locs[1], crefs[late].Locs[0]
	flipByte(t, p, earlyBad)
	flipByte(t, p, lateBad)

	r, err, seen := stopScrubAt(s, ScrubOptions{}, stopAt)
	if !errors.Is(err, ErrScrubStopped) || !errors.Is(err, context.Canceled) {
		t.Fatalf("stopped scrub: %v", err)
	}
	if seen != stopAt || r.Chunks != stopAt || r.Total != total || r.Bad != 1 || r.Repaired != 1 || r.Resumed != nil {
		t.Fatalf("stopped after %d chunks: %+v", seen, r)
	}
	repaired, _, _ := getChunkRefFrom(s.db, early)
	if containsLoc(repaired.Locs, earlyBad) || len(repaired.Locs) != 2 {
		t.Fatalf("early chunk not repaired: %v", repaired.Locs)
	}

	s, p, v = reopenStore(t, s, p)
	newer := writeTestFile(t, s, v, "newer", randBytes(3*128<<10+100)) // 4 chunks past every cursor
	r, err, seen = countedScrub(s, ScrubOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Resumed == nil || r.Resumed.Done != stopAt || len(r.Resumed.Where) == 0 {
		t.Fatalf("second scrub did not resume: %+v", r)
	}
	if want := int(total-stopAt) + 4; seen != want {
		t.Fatalf("resumed scrub verified %d chunks, want %d (the rest and the new file's)", seen, want)
	}
	if r.Chunks != total+4 || r.Total != total+4 || r.Copies != 2*(total+4) || r.Bad != 2 || r.Repaired != 2 || r.Unrepairable != 0 {
		t.Fatalf("resumed totals: %+v (want %d chunks, 2 bad, 2 repaired)", r, total+4)
	}
	if now, _, _ := getChunkRefFrom(s.db, early); !slices.Equal(now.Locs, repaired.Locs) {
		t.Fatalf("the repair before the stop changed: %v, was %v", now.Locs, repaired.Locs)
	}

	r, err, seen = countedScrub(s, ScrubOptions{})
	if err != nil || r.Resumed != nil || int64(seen) != total+4 || r.Bad != 0 || r.Chunks != total+4 {
		t.Fatalf("third scrub (%d chunks verified): %+v %v", seen, r, err)
	}
	dropCache(s)
	checkFiles(t, s, v, files)
	if _, err := readTestFile(s, v, newer, 10); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestScrubRestartOrOtherMode: a stopped scrub is started over with
// Restart, and by a scrub in the other mode (verify only, or not).
func TestScrubRestartOrOtherMode(t *testing.T) {
	p := pooltest.NewOptions(t, 2, pool.CreateOptions{}, pool.OpenOptions{})
	s, v := openTestStoreOn(t, p)
	testFiles(t, s, v, "f", 6)
	total := int64(len(copiesOf(t, s)))
	for _, tc := range []struct {
		name  string
		again ScrubOptions
	}{
		{"restart", ScrubOptions{Restart: true}},
		{"verify only after a repairing scrub", ScrubOptions{NoRepair: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err, _ := stopScrubAt(s, ScrubOptions{}, 3); !errors.Is(err, ErrScrubStopped) {
				t.Fatalf("stop: %v", err)
			}
			r, err, seen := countedScrub(s, tc.again)
			if err != nil || r.Resumed != nil || int64(seen) != total || r.Chunks != total {
				t.Fatalf("scrub after the stop verified %d of %d: %+v %v", seen, total, r, err)
			}
			if st, err := s.loadScrubState(); err != nil || st != nil {
				t.Fatalf("a finished scrub left its state: %+v %v", st, err)
			}
		})
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestScrubRate: a scrub capped at a rate takes about as long as its
// bytes at that rate, and counts the time it slept.
func TestScrubRate(t *testing.T) {
	p := pooltest.New(t, 1)
	s, v := openTestStoreOn(t, p)
	writeTestFile(t, s, v, "a", randBytes(2<<20))
	const rate = 4 << 20
	r, err := s.Scrub(ScrubOptions{Rate: rate})
	if err != nil {
		t.Fatal(err)
	}
	// The first scrubBurst bytes are free.
	want := time.Duration(float64(r.Bytes-scrubBurst) / rate * float64(time.Second))
	if r.Elapsed < want*9/10 || r.Yielded < want/2 {
		t.Fatalf("scrub of %d bytes at %d B/s took %v (slept %v), want at least %v", r.Bytes, rate, r.Elapsed, r.Yielded, want)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestScrubYields: with Yield set, a scrub slows to YieldRate while the
// pool does foreground I/O, and runs unpaced when it does not.
func TestScrubYields(t *testing.T) {
	p := pooltest.New(t, 1)
	s, v := openTestStoreOn(t, p)
	writeTestFile(t, s, v, "a", randBytes(2<<20))
	// Idle (the write's flush is past the window): no pause at all.
	time.Sleep(scrubYieldWindow + 10*time.Millisecond)
	r, err := s.Scrub(ScrubOptions{Yield: true, YieldRate: 1 << 20})
	if err != nil || r.Yielded != 0 {
		t.Fatalf("idle yielding scrub: %+v %v", r, err)
	}
	// Busy: foreground I/O noted all along meanwhile (in a loop that
	// does not wait on a timer: under load a timer may fire late, and the
	// scrub would rightly see the volumes as idle).
	stop := make(chan struct{})
	done := make(chan struct{})
	noting := make(chan struct{})
	go func() {
		defer close(done)
		p.NoteForeground()
		close(noting)
		for {
			select {
			case <-stop:
				return
			default:
				p.NoteForeground()
				runtime.Gosched()
			}
		}
	}()
	<-noting // the scrub must not start before the noting does
	const rate = 4 << 20
	r, err = s.Scrub(ScrubOptions{Yield: true, YieldRate: rate})
	close(stop)
	<-done
	if err != nil {
		t.Fatal(err)
	}
	want := time.Duration(float64(r.Bytes-scrubBurst) / rate * float64(time.Second))
	if r.Elapsed < want*9/10 || r.Yielded < want/2 {
		t.Fatalf("busy yielding scrub of %d bytes took %v (slept %v), want at least %v", r.Bytes, r.Elapsed, r.Yielded, want)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}
