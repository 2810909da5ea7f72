package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/snapfs/snapfs/pool"
	"github.com/snapfs/snapfs/pool/pooltest"
)

// smallEvacBatches makes evacuation batches of n records for one test.
func smallEvacBatches(t *testing.T, n int) {
	old := evacBatchRecords
	evacBatchRecords = n
	t.Cleanup(func() { evacBatchRecords = old })
}

// testFiles writes n files of different sizes (a few chunks each) and
// returns their contents by inode.
func testFiles(t *testing.T, s *Store, v View, prefix string, n int) map[uint64][]byte {
	t.Helper()
	files := map[uint64][]byte{}
	for i := 0; i < n; i++ {
		data := randBytes(100<<10 + i*37<<10)
		files[writeTestFile(t, s, v, fmt.Sprintf("%s%d", prefix, i), data)] = data
	}
	return files
}

func checkFiles(t *testing.T, s *Store, v View, files map[uint64][]byte) {
	t.Helper()
	for ino, want := range files {
		got, err := readTestFile(s, v, ino, len(want))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("ino %d: %d of %d bytes, %v", ino, len(got), len(want), err)
		}
	}
}

// locsOn counts chunkref locations on member idx, and checks that no
// chunk has two copies in one failure domain or fewer than want copies.
func locsOn(t *testing.T, s *Store, idx uint16, want int) int {
	t.Helper()
	refs, err := chunkRefsIn(s.db)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for h, rec := range refs {
		doms := map[string]bool{}
		for _, l := range rec.Locs {
			if l.Member == idx {
				n++
			}
			doms[s.pool.Domain(l.Member)] = true
		}
		if len(doms) != len(rec.Locs) || len(rec.Locs) < want {
			t.Fatalf("chunk %x: copies %v", h[:8], rec.Locs)
		}
	}
	return n
}

// reopenStore closes s and its pool and opens both again (a cold cache).
func reopenStore(t *testing.T, s *Store, p *pool.Pool) (*Store, *pool.Pool, View) {
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
	s2, v := openTestStoreOn(t, q)
	return s2, q, v
}

func TestRemoveMember(t *testing.T) {
	for _, copies := range []int{1, 2} {
		t.Run(fmt.Sprintf("copies=%d", copies), func(t *testing.T) {
			smallEvacBatches(t, 7)
			p := pooltest.NewOptions(t, 3, pool.CreateOptions{Copies: copies}, pool.OpenOptions{})
			s, v := openTestStoreOn(t, p)
			files := testFiles(t, s, v, "f", 12)
			// A pinned version: its chunks are referenced by the deadlist.
			sv, _, err := s.PinEpoch(v.Lineage, "s1", nil)
			if err != nil {
				t.Fatal(err)
			}
			var first uint64
			for ino := range files {
				first = ino
				break
			}
			old := files[first]
			h, err := s.Open(v, first, os.O_RDWR)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := h.Write(randBytes(200<<10), 0); err != nil {
				t.Fatal(err)
			}
			if err := h.Release(); err != nil {
				t.Fatal(err)
			}
			files[first], _ = readTestFile(s, v, first, len(old)+(200<<10))
			m1 := p.Config().Members[1].Path
			before := locsOn(t, s, 1, copies)
			if before == 0 {
				t.Fatal("nothing on member 1")
			}
			var calls int
			r, err := s.RemoveMember(m1, RemoveOptions{Progress: func(RemoveReport) { calls++ }})
			if err != nil {
				t.Fatal(err)
			}
			if !r.Removed || r.Chunks < int64(before) || r.Done != r.Chunks || r.Moved != r.Chunks || r.Bytes != r.Total || calls < 2 {
				t.Fatalf("report %+v after %d progress calls, %d records were on the member", r, calls, before)
			}
			if n := locsOn(t, s, 1, copies); n != 0 {
				t.Fatalf("%d locations still on the removed member", n)
			}
			if ents, _ := os.ReadDir(m1); len(ents) != 0 {
				t.Fatalf("removed member's directory still holds %v", ents)
			}
			if err := s.Check(); err != nil {
				t.Fatal(err)
			}
			if fr, err := s.Fsck(FsckOptions{}); err != nil || len(fr.Problems) != 0 {
				t.Fatalf("fsck: %+v %v", fr.Problems, err)
			}
			s, p, v = reopenStore(t, s, p)
			checkFiles(t, s, v, files)
			if got, err := readTestFile(s, sv, first, len(old)); err != nil || !bytes.Equal(got, old) {
				t.Fatalf("pinned version: %d bytes, %v", len(got), err)
			}
			if !p.Config().Members[1].Removed {
				t.Fatal("member not removed after reopen")
			}
			// New writes land on the remaining members; Check is clean.
			testFiles(t, s, v, "g", 3)
			if err := s.Check(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestRemoveMemberDropsSurplusCopies(t *testing.T) {
	// A chunk stored with more copies than the pool asks (copies was
	// lowered, or a repair) loses its copy on the member without a move.
	p := pooltest.NewOptions(t, 3, pool.CreateOptions{Copies: 2}, pool.OpenOptions{})
	s, v := openTestStoreOn(t, p)
	files := testFiles(t, s, v, "f", 3)
	if err := p.SetCopies(1); err != nil {
		t.Fatal(err)
	}
	n := locsOn(t, s, 0, 1)
	r, err := s.RemoveMember(p.Config().Members[0].Path, RemoveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Dropped != int64(n) || r.Moved != 0 || r.Bytes != 0 {
		t.Fatalf("report %+v, %d records were on the member", r, n)
	}
	checkFiles(t, s, v, files)
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

func TestRemoveGoneMember(t *testing.T) {
	// A dead disk: with copies=2 every chunk is copied back up from its
	// other copy.
	p := pooltest.NewOptions(t, 3, pool.CreateOptions{Copies: 2}, pool.OpenOptions{})
	s, v := openTestStoreOn(t, p)
	files := testFiles(t, s, v, "f", 8)
	m2 := p.Config().Members[2].Path
	s, p, v = reopenStoreAfter(t, s, p, func() {
		if err := os.RemoveAll(m2); err != nil {
			t.Fatal(err)
		}
	})
	n := locsOn(t, s, 2, 2)
	r, err := s.RemoveMember(m2, RemoveOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !r.Removed || r.Moved != int64(n) {
		t.Fatalf("report %+v, %d records were on the member", r, n)
	}
	if locsOn(t, s, 2, 2) != 0 {
		t.Fatal("locations left on the gone member")
	}
	checkFiles(t, s, v, files)
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// reopenStoreAfter closes s and p, runs between, and opens both again.
func reopenStoreAfter(t *testing.T, s *Store, p *pool.Pool, between func()) (*Store, *pool.Pool, View) {
	t.Helper()
	s.Close()
	p.Close()
	between()
	q, err := pool.Open(p.Dir(), pool.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	s2, v := openTestStoreOn(t, q)
	return s2, q, v
}

func TestRemoveMemberRefusals(t *testing.T) {
	t.Run("last member", func(t *testing.T) {
		p := pooltest.New(t, 1)
		s, v := openTestStoreOn(t, p)
		testFiles(t, s, v, "f", 2)
		_, err := s.RemoveMember(p.Config().Members[0].Path, RemoveOptions{})
		if !errors.Is(err, pool.ErrLastMember) {
			t.Fatalf("RemoveMember: %v", err)
		}
		if err := s.Check(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("not a member", func(t *testing.T) {
		p := pooltest.New(t, 2)
		s, _ := openTestStoreOn(t, p)
		if _, err := s.RemoveMember(t.TempDir(), RemoveOptions{}); !errors.Is(err, pool.ErrNotMember) {
			t.Fatalf("RemoveMember: %v", err)
		}
	})
	t.Run("space", func(t *testing.T) {
		mem := pool.NewMemFS()
		mem.SetCapacity(48 << 20)
		p := pooltest.NewOptions(t, 2, pool.CreateOptions{FS: mem}, pool.OpenOptions{})
		s, v := openTestStoreOpts(t, p, Options{PebbleFS: vfs.NewMem()})
		files := map[uint64][]byte{}
		for i := 0; i < 6; i++ { // 30 MiB striped over both members
			d := randBytes(5 << 20)
			files[writeTestFile(t, s, v, fmt.Sprint(i), d)] = d
		}
		before := p.Config()
		_, err := s.RemoveMember(before.Members[0].Path, RemoveOptions{})
		if !errors.Is(err, pool.ErrNoSpace) || !strings.Contains(err.Error(), "free on the other members") {
			t.Fatalf("RemoveMember: %v", err)
		}
		if p.Draining(0) || p.Config().Members[0].Removed {
			t.Fatal("a refused removal changed the member")
		}
		checkFiles(t, s, v, files)
		if err := s.Check(); err != nil {
			t.Fatal(err)
		}
	})
}

func TestRemoveMemberUnreadableChunk(t *testing.T) {
	p := pooltest.New(t, 2)
	s, v := openTestStoreOn(t, p)
	testFiles(t, s, v, "f", 6)
	refs, _ := chunkRefsIn(s.db)
	var bad pool.Location
	for _, rec := range refs {
		if rec.Locs[0].Member == 0 {
			bad = rec.Locs[0]
			break
		}
	}
	flipByte(t, p, bad)
	_, err := s.RemoveMember(p.Config().Members[0].Path, RemoveOptions{})
	if !errors.Is(err, ErrIO) || !strings.Contains(err.Error(), "1 chunk(s) have no readable copy") {
		t.Fatalf("RemoveMember: %v", err)
	}
	if p.Draining(0) || p.Config().Members[0].Removed {
		t.Fatal("member removed or left draining")
	}
	if n := locsOn(t, s, 0, 1); n != 1 {
		t.Fatalf("%d locations left on the member, want the bad one only", n)
	}
}

func TestRemoveMemberWhileWriting(t *testing.T) {
	smallEvacBatches(t, 5)
	p := pooltest.NewOptions(t, 3, pool.CreateOptions{Copies: 2}, pool.OpenOptions{})
	s, v := openTestStoreOn(t, p)
	files := testFiles(t, s, v, "f", 10)
	var mu sync.Mutex
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			d := randBytes(64<<10 + i*4096)
			ino := writeTestFile(t, s, v, fmt.Sprintf("w%d", i), d)
			mu.Lock()
			files[ino] = d
			mu.Unlock()
		}
	}()
	r, err := s.RemoveMember(p.Config().Members[0].Path, RemoveOptions{})
	close(stop)
	wg.Wait()
	if err != nil || !r.Removed {
		t.Fatalf("RemoveMember: %+v %v", r, err)
	}
	if locsOn(t, s, 0, 2) != 0 {
		t.Fatal("locations left on the removed member")
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	s, _, v = reopenStore(t, s, p)
	checkFiles(t, s, v, files)
}

// TestRemoveMemberPowerCut cuts the power after each batch of an
// evacuation, and between a batch's commit and the punching of its old
// records: the pool left behind opens, reads every file, passes Check and
// fsck (no leaked record), still has the member, and a second removal
// completes.
func TestRemoveMemberPowerCut(t *testing.T) {
	smallEvacBatches(t, 2)
	pc := newPowerCutMembers(t, 3, 1)
	v, err := pc.s.LiveView("vol")
	if err != nil {
		t.Fatal(err)
	}
	files := testFiles(t, pc.s, v, "f", 16)
	m1 := pc.p.Config().Members[1].Path
	cuts := 0
	check := func(after *powerCut, where string) {
		t.Helper()
		av, _ := after.s.LiveView("vol")
		checkFiles(t, after.s, av, files)
		if err := after.s.Check(); err != nil {
			t.Fatalf("after a cut %s: %v", where, err)
		}
		if fr, err := after.s.Fsck(FsckOptions{}); err != nil || len(fr.Problems) != 0 {
			t.Fatalf("fsck after a cut %s: %v %v", where, fr.Problems, err)
		}
	}
	evacAfterCommit = func() {
		evacAfterCommit = nil // once
		after := pc.cut(t)
		defer after.close(t)
		check(after, "after a commit")
		if after.p.Config().Members[1].Removed {
			t.Fatal("member removed after a cut mid-evacuation")
		}
	}
	t.Cleanup(func() { evacAfterCommit = nil })
	_, err = pc.s.RemoveMember(m1, RemoveOptions{Progress: func(r RemoveReport) {
		if r.Done == r.Chunks {
			return
		}
		cuts++
		after := pc.cut(t)
		defer after.close(t)
		check(after, fmt.Sprintf("at %d/%d", r.Done, r.Chunks))
		av, _ := after.s.LiveView("vol")
		if idx, err := after.p.MemberIndex(m1); err != nil || idx != 1 || after.p.Draining(1) {
			t.Fatalf("member after the cut: %d %v", idx, err)
		}
		if cuts == 2 { // finish the removal on the clone
			if rr, err := after.s.RemoveMember(m1, RemoveOptions{}); err != nil || !rr.Removed {
				t.Fatalf("removal after the cut: %+v %v", rr, err)
			}
			checkFiles(t, after.s, av, files)
			if err := after.s.Check(); err != nil {
				t.Fatal(err)
			}
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	if cuts < 2 {
		t.Fatalf("only %d cuts", cuts)
	}
	checkFiles(t, pc.s, v, files)
	pc.close(t)
}

// newPowerCutMembers is newPowerCut with the given members and copies,
// each member its own failure domain.
func newPowerCutMembers(t *testing.T, members, copies int) *powerCut {
	pc := &powerCut{meta: vfs.NewCrashableMem(), members: pool.NewMemFS(), dir: "/pool"}
	var ms, doms []string
	for i := 0; i < members; i++ {
		m := fmt.Sprintf("/m%d", i)
		if err := pc.members.MkdirAll(m, 0o755); err != nil {
			t.Fatal(err)
		}
		ms, doms = append(ms, m), append(doms, m)
	}
	if err := pool.Create(pc.dir, pool.CreateOptions{Members: ms, FS: pc.members, Domains: doms, Copies: copies}); err != nil {
		t.Fatal(err)
	}
	pc.open(t)
	if _, err := pc.s.CreateVolume("vol", VolumeOptions{}); err != nil {
		t.Fatal(err)
	}
	return pc
}
