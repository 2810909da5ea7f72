// Package objstoretest holds what the tests of object stores share: the
// contract every objstore.Store must keep (RunContract), a real S3 server
// on 127.0.0.1 (SeaweedFS, started by NewSeaweed or StartSeaweed), and an
// HTTP proxy of our own that injects delays, connection resets and 503
// SlowDown answers between a client and that server (Proxy).
//
// It imports package testing and is for tests only: the snapfs binary
// never links it (tests/deps_test.go checks).
//
// A store's tests call RunContract with a function that makes a fresh,
// empty store per subtest:
//
//	func TestMemContract(t *testing.T) {
//		objstoretest.RunContract(t, func(t *testing.T) objstore.Store {
//			return objstore.NewMem(t.Name())
//		})
//	}
package objstoretest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snapfs/snapfs/objstore"
)

// RunContract runs the behaviours every objstore.Store promises (the
// interface's comments) as subtests, each on a fresh store from
// newStore: whole and ranged reads, ErrShort and ErrNotFound, List in
// key order under a prefix, idempotent Delete, replacement, concurrent
// Puts and Gets, and large objects.
func RunContract(t *testing.T, newStore func(t *testing.T) objstore.Store) {
	for _, c := range contractCases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			c.run(ctx, t, newStore(t))
		})
	}
}

var contractCases = []struct {
	name string
	run  func(ctx context.Context, t *testing.T, s objstore.Store)
}{
	{"PutGetWhole", contractPutGetWhole},
	{"Ranges", contractRanges},
	{"RangePastEndIsShort", contractRangePastEnd},
	{"MissingIsNotFound", contractMissing},
	{"EmptyObject", contractEmptyObject},
	{"ReplaceWhole", contractReplace},
	{"ListOrderAndPrefix", contractList},
	{"DeleteIdempotent", contractDelete},
	{"ConcurrentPutsAndGets", contractConcurrent},
	{"LargeObject", contractLarge},
	{"KeysWithOddCharacters", contractOddKeys},
	{"CanceledContext", contractCanceled},
}

// pattern returns n bytes that differ with seed and position, so a range
// read from the wrong offset or the wrong object never matches.
func pattern(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := 0; i < n; i += 8 {
		v := r.Uint64()
		for j := 0; j < 8 && i+j < n; j++ {
			b[i+j] = byte(v >> (8 * j))
		}
	}
	return b
}

func mustPut(ctx context.Context, t *testing.T, s objstore.Store, key string, data []byte) {
	t.Helper()
	if err := s.Put(ctx, key, data); err != nil {
		t.Fatalf("Put %s (%d bytes): %v", key, len(data), err)
	}
}

func mustGet(ctx context.Context, t *testing.T, s objstore.Store, key string, off, n int64) []byte {
	t.Helper()
	b, err := s.Get(ctx, key, off, n)
	if err != nil {
		t.Fatalf("Get %s [%d,+%d): %v", key, off, n, err)
	}
	return b
}

func contractPutGetWhole(ctx context.Context, t *testing.T, s objstore.Store) {
	data := pattern(1, 100_000)
	mustPut(ctx, t, s, "a/whole", data)
	if got := mustGet(ctx, t, s, "a/whole", 0, -1); !bytes.Equal(got, data) {
		t.Fatalf("Get whole: %d bytes, differ from the %d put", len(got), len(data))
	}
	info, err := s.Head(ctx, "a/whole")
	if err != nil {
		t.Fatalf("Head: %v", err)
	}
	if info.Key != "a/whole" || info.Size != int64(len(data)) || info.ETag == "" || info.Modified.IsZero() {
		t.Fatalf("Head = %+v, want key a/whole, size %d, an ETag and a time", info, len(data))
	}
	if !strings.Contains(s.String(), "://") {
		t.Errorf("String() = %q, want a URL-like name", s.String())
	}
}

func contractRanges(ctx context.Context, t *testing.T, s objstore.Store) {
	const size = 300_001
	data := pattern(2, size)
	mustPut(ctx, t, s, "r", data)
	for _, c := range []struct{ off, n int64 }{
		{0, 1}, {0, size}, {1, size - 1}, {size - 1, 1}, {size - 1, -1},
		{12345, 128 << 10}, {size - 4096, 4096}, {7, -1}, {size, 0}, {0, 0}, {100, 0},
	} {
		got := mustGet(ctx, t, s, "r", c.off, c.n)
		want := data[c.off:]
		if c.n >= 0 {
			want = data[c.off : c.off+c.n]
		}
		if !bytes.Equal(got, want) {
			t.Errorf("Get [%d,+%d): %d bytes, want %d equal to the object's", c.off, c.n, len(got), len(want))
		}
	}
}

func contractRangePastEnd(ctx context.Context, t *testing.T, s objstore.Store) {
	const size = 10_000
	mustPut(ctx, t, s, "short", pattern(3, size))
	for _, c := range []struct{ off, n int64 }{
		{0, size + 1}, {size - 10, 11}, {size, 1}, {size + 5, 1}, {size + 1, 0}, {size + 1, -1}, {1 << 40, 4096},
	} {
		b, err := s.Get(ctx, "short", c.off, c.n)
		if !errors.Is(err, objstore.ErrShort) {
			t.Errorf("Get [%d,+%d) of %d bytes = %d bytes, %v; want ErrShort", c.off, c.n, size, len(b), err)
		}
	}
}

func contractMissing(ctx context.Context, t *testing.T, s objstore.Store) {
	if _, err := s.Get(ctx, "nope", 0, -1); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("Get of a missing object: %v, want ErrNotFound", err)
	}
	if _, err := s.Get(ctx, "nope", 10, 100); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("ranged Get of a missing object: %v, want ErrNotFound", err)
	}
	if _, err := s.Head(ctx, "nope"); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("Head of a missing object: %v, want ErrNotFound", err)
	}
	if l, err := s.List(ctx, "nope"); err != nil || len(l) != 0 {
		t.Errorf("List of a missing prefix = %v, %v; want nothing", l, err)
	}
}

func contractEmptyObject(ctx context.Context, t *testing.T, s objstore.Store) {
	mustPut(ctx, t, s, "empty", nil)
	if b := mustGet(ctx, t, s, "empty", 0, -1); len(b) != 0 {
		t.Errorf("Get of an empty object: %d bytes", len(b))
	}
	if b := mustGet(ctx, t, s, "empty", 0, 0); len(b) != 0 {
		t.Errorf("Get [0,+0) of an empty object: %d bytes", len(b))
	}
	if _, err := s.Get(ctx, "empty", 0, 1); !errors.Is(err, objstore.ErrShort) {
		t.Errorf("Get [0,+1) of an empty object: %v, want ErrShort", err)
	}
	info, err := s.Head(ctx, "empty")
	if err != nil || info.Size != 0 {
		t.Errorf("Head of an empty object = %+v, %v", info, err)
	}
}

func contractReplace(ctx context.Context, t *testing.T, s objstore.Store) {
	mustPut(ctx, t, s, "k", pattern(4, 5000))
	second := pattern(5, 1234)
	mustPut(ctx, t, s, "k", second)
	if got := mustGet(ctx, t, s, "k", 0, -1); !bytes.Equal(got, second) {
		t.Fatalf("after a second Put, Get gave %d bytes, want the second object's %d", len(got), len(second))
	}
	if _, err := s.Get(ctx, "k", 1000, 1000); !errors.Is(err, objstore.ErrShort) {
		t.Errorf("range of the first, longer object: %v, want ErrShort", err)
	}
}

func contractList(ctx context.Context, t *testing.T, s objstore.Store) {
	keys := []string{"p/b", "p/a", "p/a/x", "p/c/d/e", "q/a", "pz", "p/a0", "p/A"}
	for i, k := range keys {
		mustPut(ctx, t, s, k, pattern(uint64(10+i), 10+i))
	}
	for _, c := range []struct {
		prefix string
		want   []string
	}{
		{"p/", []string{"p/A", "p/a", "p/a/x", "p/a0", "p/b", "p/c/d/e"}},
		{"p", []string{"p/A", "p/a", "p/a/x", "p/a0", "p/b", "p/c/d/e", "pz"}},
		{"p/a", []string{"p/a", "p/a/x", "p/a0"}},
		{"", []string{"p/A", "p/a", "p/a/x", "p/a0", "p/b", "p/c/d/e", "pz", "q/a"}},
		{"r", nil},
	} {
		l, err := s.List(ctx, c.prefix)
		if err != nil {
			t.Fatalf("List %q: %v", c.prefix, err)
		}
		var got []string
		for _, in := range l {
			got = append(got, in.Key)
			i := indexOf(keys, in.Key)
			if in.Size != int64(10+i) {
				t.Errorf("List %q: %s has size %d, want %d", c.prefix, in.Key, in.Size, 10+i)
			}
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("List %q = %v, want %v", c.prefix, got, c.want)
		}
	}
}

func indexOf(keys []string, k string) int {
	for i, x := range keys {
		if x == k {
			return i
		}
	}
	return -1
}

func contractDelete(ctx context.Context, t *testing.T, s objstore.Store) {
	mustPut(ctx, t, s, "d", pattern(6, 100))
	for i := 0; i < 2; i++ {
		if err := s.Delete(ctx, "d"); err != nil {
			t.Fatalf("Delete #%d: %v", i+1, err)
		}
	}
	if err := s.Delete(ctx, "never-there"); err != nil {
		t.Errorf("Delete of a missing object: %v", err)
	}
	if _, err := s.Get(ctx, "d", 0, -1); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("Get after Delete: %v, want ErrNotFound", err)
	}
	if l, err := s.List(ctx, "d"); err != nil || len(l) != 0 {
		t.Errorf("List after Delete = %v, %v", l, err)
	}
}

// contractConcurrent runs writers and readers of distinct and shared keys
// at once: every Get of a key sees one whole version of it, never a mix.
func contractConcurrent(ctx context.Context, t *testing.T, s objstore.Store) {
	const workers, rounds, size = 8, 6, 64 << 10
	version := func(w, r int) []byte { return pattern(uint64(1000+w*100+r), size) }
	var wg sync.WaitGroup
	errs := make(chan error, workers*rounds*3)
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			own := fmt.Sprintf("c/own-%d", w)
			for r := 0; r < rounds; r++ {
				v := version(w, r)
				if err := s.Put(ctx, own, v); err != nil {
					errs <- err
					return
				}
				if err := s.Put(ctx, "c/shared", v); err != nil {
					errs <- err
					return
				}
				got, err := s.Get(ctx, own, 0, -1)
				if err != nil || !bytes.Equal(got, v) {
					errs <- fmt.Errorf("worker %d round %d: own object read back wrong (%d bytes, %v)", w, r, len(got), err)
					return
				}
				got, err = s.Get(ctx, "c/shared", 0, -1)
				if err != nil {
					errs <- err
					return
				}
				if len(got) != size || !bytes.Equal(got, version(w2r(got, version, workers, rounds))) {
					errs <- fmt.Errorf("worker %d round %d: shared object is no whole version", w, r)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	l, err := s.List(ctx, "c/")
	if err != nil || len(l) != workers+1 {
		t.Errorf("List c/ gave %d objects (%v), want %d", len(l), err, workers+1)
	}
}

// w2r finds which (worker, round) wrote got, by its first bytes.
func w2r(got []byte, version func(w, r int) []byte, workers, rounds int) (int, int) {
	for w := 0; w < workers; w++ {
		for r := 0; r < rounds; r++ {
			if bytes.Equal(version(w, r)[:16], got[:16]) {
				return w, r
			}
		}
	}
	return -1, -1
}

func contractLarge(ctx context.Context, t *testing.T, s objstore.Store) {
	const size = 24<<20 + 12345
	data := pattern(7, size)
	mustPut(ctx, t, s, "big", data)
	if got := mustGet(ctx, t, s, "big", 0, -1); !bytes.Equal(got, data) {
		t.Fatalf("Get of a %d-byte object: %d bytes, differ", size, len(got))
	}
	offs := []int64{0, 8 << 20, size - (128 << 10), 17<<20 + 3}
	for _, off := range offs {
		if got := mustGet(ctx, t, s, "big", off, 128<<10); !bytes.Equal(got, data[off:off+128<<10]) {
			t.Errorf("Get [%d,+128KiB) of the large object differs", off)
		}
	}
	info, err := s.Head(ctx, "big")
	if err != nil || info.Size != size {
		t.Errorf("Head of the large object = %+v, %v", info, err)
	}
}

func contractOddKeys(ctx context.Context, t *testing.T, s objstore.Store) {
	keys := []string{"with space", "plus+sign", "pct%20", "unicode-é", "q?x=1&y", "deep/a/b/c/d/e/f", "dots.and-dashes_"}
	for i, k := range keys {
		mustPut(ctx, t, s, k, pattern(uint64(50+i), 100+i))
	}
	for i, k := range keys {
		if got := mustGet(ctx, t, s, k, 0, -1); !bytes.Equal(got, pattern(uint64(50+i), 100+i)) {
			t.Errorf("key %q read back wrong", k)
		}
	}
	l, err := s.List(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, in := range l {
		got = append(got, in.Key)
	}
	want := append([]string(nil), keys...)
	sort.Strings(want)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("List = %q, want %q", got, want)
	}
}

func contractCanceled(ctx context.Context, t *testing.T, s objstore.Store) {
	mustPut(ctx, t, s, "x", []byte("x"))
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := s.Put(cctx, "y", []byte("y")); !errors.Is(err, context.Canceled) {
		t.Errorf("Put with a canceled context: %v, want context.Canceled", err)
	}
	if _, err := s.Get(cctx, "x", 0, -1); !errors.Is(err, context.Canceled) {
		t.Errorf("Get with a canceled context: %v, want context.Canceled", err)
	}
	if _, err := s.Head(ctx, "y"); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("a Put with a canceled context left an object: %v", err)
	}
}
