package pool

import (
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"sync"
	"testing"
	"time"
)

// aheadEnv is a pool whose only member is an object store, holding
// records of the given size sealed into objects, with the read-ahead's
// tunables set.
func aheadEnv(t *testing.T, records, size int, objectSize, spanBytes, budget int64) (*objEnv, *Pool, []Location, [][]byte) {
	t.Helper()
	e, p := newObjEnv(t, 0, 1, OpenOptions{SealInterval: time.Hour, ObjectSize: objectSize})
	p.ahead.spanBytes, p.ahead.budget = spanBytes, budget
	var locs []Location
	var datas [][]byte
	for i := 0; i < records; i++ {
		d := payload(1000+i, size)
		locs, datas = append(locs, appendT(t, p, d)...), append(datas, d)
	}
	if err := p.Sync(locs); err != nil {
		t.Fatal(err)
	}
	return e, p, locs, datas
}

// wantSpans is how many spans the read-ahead makes of locs (ascending,
// adjacent within a pack) with spans of at most spanBytes: the rule
// written out independently of the code.
func wantSpans(locs []Location, spanBytes int64) int {
	n := 0
	var pack uint32
	var start, end int64 = 0, -1
	for _, l := range locs {
		hi := l.Offset + int64(ReadBufSize(l.Length))
		if end >= 0 && l.Pack == pack && hi-start <= spanBytes {
			end = hi
			continue
		}
		n++
		pack, start, end = l.Pack, l.Offset, hi
	}
	return n
}

// TestObjectReadAhead: records hinted by Prefetch are fetched in spans of
// adjacent records, one Get each, and every read of them is served from
// the spans (verified); within the memory budget, hints that do not fit
// are dropped and read with a Get of their own.
func TestObjectReadAhead(t *testing.T) {
	tests := []struct {
		name                 string
		records, size        int
		objectSize           int64
		spanBytes, budget    int64
		fits                 int // records whose spans fit the budget; -1: all
		concurrent, twoHints bool
	}{
		{"one span", 5, 30000, 0, 0, 0, -1, false, false},
		{"spans of the limit", 20, 100000, 0, 256 << 10, 0, -1, false, false},
		{"records of several objects", 12, 40000, 128 << 10, 0, 0, -1, false, false},
		{"budget drops the rest", 20, 100000, 0, 256 << 10, 610000, 6, false, false},
		{"record larger than a span", 4, 300000, 0, 256 << 10, 0, -1, false, false},
		{"readers in parallel", 40, 60000, 0, 200 << 10, 0, -1, true, false},
		{"hinted twice", 10, 60000, 0, 200 << 10, 0, -1, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, p, locs, datas := aheadEnv(t, tc.records, tc.size, tc.objectSize, tc.spanBytes, tc.budget)
			span := tc.spanBytes
			if span == 0 {
				span = objSpanBytes
			}
			fits := tc.fits
			if fits < 0 {
				fits = len(locs)
			}
			want := wantSpans(locs[:fits], span) + len(locs) - fits
			g := e.mem.Ops("get")
			p.Prefetch(locs)
			if tc.twoHints {
				p.Prefetch(locs[2:7]) // covered already: no new span
			}
			if tc.concurrent {
				var wg sync.WaitGroup
				errs := make(chan error, len(locs))
				for i := range locs {
					wg.Add(1)
					go func(i int) {
						defer wg.Done()
						got, err := p.Read(locs[i], hashOf(datas[i]), nil)
						if err == nil && string(got) != string(datas[i]) {
							err = fmt.Errorf("record %d: wrong bytes", i)
						}
						errs <- err
					}(i)
				}
				wg.Wait()
				close(errs)
				for err := range errs {
					if err != nil {
						t.Fatal(err)
					}
				}
			} else {
				for i := range locs {
					readT(t, p, locs[i], datas[i])
				}
			}
			if n := e.mem.Ops("get") - g; n != want {
				t.Fatalf("%d records read after a hint made %d Gets, want %d", len(locs), n, want)
			}
			st := p.AheadStats()
			if st.Hits != int64(fits) || st.Dropped != int64(len(locs)-fits) || st.Resident != 0 || st.Failed != 0 {
				t.Fatalf("stats %+v, want %d hits, %d dropped, nothing resident", st, fits, len(locs)-fits)
			}
		})
	}
}

// TestObjectReadAheadDamage: a damaged record fetched in a span fails
// verification (never wrong bytes) and the others of the span read.
func TestObjectReadAheadDamage(t *testing.T) {
	e, p, locs, datas := aheadEnv(t, 6, 30000, 0, 0, 0)
	if !e.mem.Corrupt(objKey(locs[3].Pack), locs[3].Offset+HeaderSize+100) {
		t.Fatal("no object to damage")
	}
	p.Prefetch(locs)
	for i := range locs {
		got, err := p.Read(locs[i], hashOf(datas[i]), nil)
		switch {
		case i == 3 && !errors.Is(err, ErrChecksum):
			t.Fatalf("damaged record read: %v", err)
		case i != 3 && err != nil:
			t.Fatalf("record %d: %v", i, err)
		case i != 3 && string(got) != string(datas[i]):
			t.Fatalf("record %d: wrong bytes", i)
		}
	}
}

// TestObjectReadAheadFaults: a span whose Get fails costs its readers
// their own Gets, which succeed once the store answers; a truncated
// object (the last record's range past its end) is fetched to its end.
func TestObjectReadAheadFaults(t *testing.T) {
	t.Run("get fails", func(t *testing.T) {
		// The span's failure is its readers' (the client retried it
		// already); the reads after it make their own Gets.
		e, p, locs, datas := aheadEnv(t, 5, 30000, 0, 0, 0)
		var once sync.Once
		release := make(chan struct{})
		e.mem.SetFault(func(op, key string) error {
			var err error
			once.Do(func() { <-release; err = errors.New("503 SlowDown") })
			return err
		})
		g := e.mem.Ops("get")
		p.Prefetch(locs)
		errs := make(chan error, len(locs))
		for i := range locs {
			go func(i int) {
				_, err := p.Read(locs[i], hashOf(datas[i]), nil)
				errs <- err
			}(i)
		}
		for p.AheadStats().Waits < int64(len(locs)) { // every reader waits for the span
			time.Sleep(time.Millisecond)
		}
		close(release)
		for range locs {
			if err := <-errs; err == nil || !strings.Contains(err.Error(), "503 SlowDown") {
				t.Fatalf("a record of a failed span: %v", err)
			}
		}
		for i := range locs {
			readT(t, p, locs[i], datas[i])
		}
		if n, st := e.mem.Ops("get")-g, p.AheadStats(); n != 1+len(locs) || st.Failed != 1 || st.Resident != 0 {
			t.Fatalf("%d Gets, stats %+v; want the failed span and one Get per record", n, st)
		}
	})
	t.Run("a waiting reader jumps the queue", func(t *testing.T) {
		// One worker, held in the first span's Get: a reader of the
		// last span's record moves that span to the front.
		e, p, locs, datas := aheadEnv(t, 8, 100000, 0, 256<<10, 0)
		p.ahead.gets = 1
		var once sync.Once
		release, held := make(chan struct{}), make(chan struct{})
		e.mem.SetFault(func(op, key string) error {
			once.Do(func() { close(held); <-release })
			return nil
		})
		p.Prefetch(locs)
		// The worker holds the first span before the reader comes: a
		// reader first would have its span taken first, by design.
		<-held
		last := len(locs) - 1
		done := make(chan error, 1)
		go func() {
			got, err := p.Read(locs[last], hashOf(datas[last]), nil)
			if err == nil && string(got) != string(datas[last]) {
				err = errors.New("wrong bytes")
			}
			done <- err
		}()
		for p.AheadStats().Waits < 1 {
			time.Sleep(time.Millisecond)
		}
		p.ahead.mu.Lock()
		front := p.ahead.queue[0]
		queued := len(p.ahead.queue)
		p.ahead.mu.Unlock()
		if lo := locs[last].Offset; front.off > lo || lo >= front.end || queued != wantSpans(locs, 256<<10)-1 {
			t.Fatalf("queue front [%d, %d) of %d queued; the reader waits for offset %d", front.off, front.end, queued, lo)
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		for i := range locs[:last] {
			readT(t, p, locs[i], datas[i])
		}
	})
	t.Run("object cut short", func(t *testing.T) {
		e, p, locs, datas := aheadEnv(t, 4, 30000, 0, 0, 0)
		last := locs[len(locs)-1]
		// Cut the object inside the last record's trailer: the span's
		// range is past the end, the rest of the object is fetched, and
		// the last record fails verification.
		if !e.mem.Truncate(objKey(last.Pack), last.Offset+int64(ReadBufSize(last.Length))-2) {
			t.Fatal("no object to cut")
		}
		p.Prefetch(locs)
		for i := range locs[:len(locs)-1] {
			readT(t, p, locs[i], datas[i])
		}
		if _, err := p.Read(last, hashOf(datas[len(datas)-1]), nil); !errors.Is(err, ErrChecksum) {
			t.Fatalf("record cut short read: %v", err)
		}
	})
	t.Run("deleted object", func(t *testing.T) {
		_, p, locs, datas := aheadEnv(t, 4, 30000, 0, 0, 0)
		p.Prefetch(locs)
		readT(t, p, locs[0], datas[0])
		if err := p.DeletePack(0, locs[1].Pack); err != nil {
			t.Fatal(err)
		}
		if st := p.AheadStats(); st.Resident != 0 {
			t.Fatalf("spans of a deleted object kept: %+v", st)
		}
		if _, err := p.Read(locs[1], hashOf(datas[1]), nil); err == nil {
			t.Fatal("a record of a deleted object read from a span")
		}
	})
}

// TestObjectReadAheadModel drives the read-ahead with random hints
// (overlapping, partial, repeated), reads in random order from several
// goroutines, random damage and phases in which the store fails Gets at
// random; a read never returns wrong bytes, one of an undamaged record
// succeeds whenever the store answers, and the spans stay within the
// budget and are all freed once read.
func TestObjectReadAheadModel(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	defer func() {
		if t.Failed() {
			t.Logf("failed with seed %d", seed)
		}
	}()
	rng := rand.New(rand.NewSource(seed))
	for round := 0; round < 4; round++ {
		records := 10 + rng.Intn(40)
		size := 1000 + rng.Intn(150000)
		objectSize := int64(256<<10) << rng.Intn(4)
		spanBytes := int64(64<<10) << rng.Intn(5)
		budget := spanBytes * int64(2+rng.Intn(8))
		e, p, locs, datas := aheadEnv(t, records, size, objectSize, spanBytes, budget)
		damaged := map[int]bool{}
		for i := range locs {
			if rng.Intn(10) == 0 && e.mem.Corrupt(objKey(locs[i].Pack), locs[i].Offset+HeaderSize+int64(rng.Intn(size))) {
				damaged[i] = true
			}
		}
		var mu sync.Mutex // guards r
		r := rand.New(rand.NewSource(rng.Int63()))
		for phase := 0; phase < 6; phase++ {
			faulty := phase%2 == 1
			if faulty {
				e.mem.SetFault(func(op, key string) error {
					mu.Lock()
					defer mu.Unlock()
					if op == "get" && r.Intn(3) == 0 {
						return errors.New("connection reset")
					}
					return nil
				})
			} else {
				e.mem.SetFault(nil)
			}
			for h := 0; h < 3; h++ {
				a := rng.Intn(len(locs))
				b := a + 1 + rng.Intn(len(locs)-a)
				p.Prefetch(locs[a:b])
				if st := p.AheadStats(); st.Resident > budget {
					t.Fatalf("round %d: %d bytes of spans, budget %d", round, st.Resident, budget)
				}
			}
			order := rng.Perm(len(locs))
			var wg sync.WaitGroup
			errs := make(chan error, len(order))
			for w := 0; w < 3; w++ {
				wg.Add(1)
				go func(w int) {
					defer wg.Done()
					for k := w; k < len(order); k += 3 {
						i := order[k]
						got, err := p.Read(locs[i], hashOf(datas[i]), nil)
						switch {
						case err == nil && (damaged[i] || string(got) != string(datas[i])):
							errs <- fmt.Errorf("round %d: record %d (damaged %v): wrong bytes", round, i, damaged[i])
						case err != nil && !damaged[i] && !faulty:
							errs <- fmt.Errorf("round %d: record %d: %v", round, i, err)
						}
					}
				}(w)
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Fatal(err)
			}
			// Spans hinted in this phase and read by nobody may still
			// be fetching: let them end under this phase's faults.
			p.ahead.inflight.Wait()
		}
		e.mem.SetFault(nil)
		// Hints no reader followed stay until evicted; a full read of
		// what is left empties them, and Close drops the rest.
		if err := p.Close(); err != nil {
			t.Fatal(err)
		}
		if st := p.AheadStats(); st.Resident != 0 {
			t.Fatalf("round %d: %d bytes of spans after Close", round, st.Resident)
		}
	}
}
