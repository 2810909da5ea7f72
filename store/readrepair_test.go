package store

import (
	"bytes"
	"syscall"
	"testing"

	"github.com/snapfs/snapfs/pool"
	"github.com/snapfs/snapfs/pool/pooltest"
)

// chunkOf returns the hash and chunkref of chunk idx of file ino in v.
func chunkOf(t *testing.T, s *Store, v View, ino, idx uint64) (pool.Hash, chunkRefRec) {
	t.Helper()
	ver, err := resolve(s.dbr(), []viewPoint{{v.Lineage, LiveEpoch}}, func(lin uint32) []byte { return chunkPrefix(lin, ino, 0, idx) })
	if err != nil || !ver.found {
		t.Fatalf("chunk %d of inode %d: %v", idx, ino, err)
	}
	c, err := decodeChunk(ver.value)
	if err != nil {
		t.Fatal(err)
	}
	rec, found, err := getChunkRefFrom(s.db, c.Hash)
	if err != nil || !found {
		t.Fatalf("chunkref of chunk %d: %v", idx, err)
	}
	return c.Hash, rec
}

// readBack reads file ino with a cold cache and checks its bytes.
func readBack(t *testing.T, s *Store, v View, ino uint64, want []byte) {
	t.Helper()
	dropCache(s)
	got, err := readTestFile(s, v, ino, len(want))
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("read: %d of %d bytes, %v", len(got), len(want), err)
	}
}

// TestReadRepairsBadCopy: one copy of a chunk (copies=2) has a byte
// flipped. A read gets the right bytes from the other copy and the bad
// one is rewritten in the background through scrub's repair: afterwards
// both copies verify (a verify-only scrub finds nothing bad), the good
// copy did not move, the count says one found and rewritten, a second
// read finds nothing to repair, and the store checks clean.
func TestReadRepairsBadCopy(t *testing.T) {
	p := pooltest.NewOptions(t, 2, pool.CreateOptions{Copies: 2}, pool.OpenOptions{})
	s, v := openTestStoreOn(t, p)
	data := randBytes(300 << 10)
	ino := writeTestFile(t, s, v, "a", data)
	h, rec := chunkOf(t, s, v, ino, 1)
	if len(rec.Locs) != 2 {
		t.Fatalf("copies: %+v", rec)
	}
	bad, good := rec.Locs[0], rec.Locs[1] // the read tries Locs[0] first
	flipByte(t, p, bad)

	readBack(t, s, v, ino, data)
	s.waitReadRepairs()
	now, _, _ := getChunkRefFrom(s.db, h)
	if len(now.Locs) != 2 || containsLoc(now.Locs, bad) || !containsLoc(now.Locs, good) ||
		p.Domain(now.Locs[0].Member) == p.Domain(now.Locs[1].Member) {
		t.Fatalf("after the read repair the copies are %v, were %v (bad %v)", now.Locs, rec.Locs, bad)
	}
	if got := s.readRepairCounts(); got != (ReadRepairs{Found: 1, Rewritten: 1}) {
		t.Fatalf("read repair counts %+v", got)
	}
	hl, err := s.Health(nil)
	if err != nil || hl.ReadRepairs.Rewritten != 1 || hl.State != pool.StateOK {
		t.Fatalf("health: %+v %v", hl, err)
	}
	readBack(t, s, v, ino, data)
	s.waitReadRepairs()
	if got := s.readRepairCounts(); got.Found != 1 {
		t.Fatalf("a second read found bad copies: %+v", got)
	}
	r, err := s.Scrub(ScrubOptions{NoRepair: true})
	if err != nil || r.Bad != 0 || r.Copies != 2*r.Chunks {
		t.Fatalf("verify-only scrub after the read repair: %+v %v", r, err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if fr, err := s.Fsck(FsckOptions{}); err != nil || len(fr.Problems) != 0 || fr.Leaked != 0 {
		t.Fatalf("fsck: %+v %v", fr, err)
	}
}

// TestReadRepairUnreadableCopy: the disk of one copy answers its reads
// with EIO (copies=2 of three members). The read goes around it, and the
// copy is rewritten on the third member (not the failing disk); the bad
// record's free is parked (its disk may not even read its header).
func TestReadRepairUnreadableCopy(t *testing.T) {
	ff := pool.NewFaultFS(pool.NewMemFS())
	p := pooltest.NewOptions(t, 3, pool.CreateOptions{Copies: 2}, pool.OpenOptions{FS: ff})
	s, v := openTestStoreOn(t, p)
	data := randBytes(100 << 10)
	ino := writeTestFile(t, s, v, "a", data)
	h, rec := chunkOf(t, s, v, ino, 0)
	bad, good := rec.Locs[0], rec.Locs[1]
	ff.Inject(pool.Fault{Op: pool.OpRead, Path: packPath(p, bad), Err: syscall.EIO, Sticky: true})

	readBack(t, s, v, ino, data)
	s.waitReadRepairs()
	now, _, _ := getChunkRefFrom(s.db, h)
	if len(now.Locs) != 2 || !containsLoc(now.Locs, good) {
		t.Fatalf("copies after the read repair: %v, were %v", now.Locs, rec.Locs)
	}
	for _, l := range now.Locs {
		if l.Member == bad.Member {
			t.Fatalf("copy rewritten on the disk that failed to read it: %v", now.Locs)
		}
	}
	if got := s.readRepairCounts(); got != (ReadRepairs{Found: 1, Rewritten: 1}) {
		t.Fatalf("read repair counts %+v", got)
	}
	if n := countTag(t, s, tagParked); n != 1 {
		t.Fatalf("%d parked frees, want the unreadable record's", n)
	}
	if mh := memberHealth(t, p, bad.Member); mh.FailsReads || mh.ReadErrors == 0 {
		t.Fatalf("member of the unreadable copy: %+v", mh)
	}
	ff.Clear()
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestReadRepairSkips: bad copies the read path leaves to scrub. A copy
// on a member degraded for failing reads is not rewritten by the
// repairer (a job queued before the member was degraded is skipped;
// reads then try its copies last and never report them); with no good
// copy there is nothing to repair from: the read fails and the chunk is
// recorded damaged.
func TestReadRepairSkips(t *testing.T) {
	t.Run("member failing reads", func(t *testing.T) {
		ff := pool.NewFaultFS(pool.NewMemFS())
		p := pooltest.NewOptions(t, 3, pool.CreateOptions{Copies: 2}, pool.OpenOptions{FS: ff})
		s, v := openTestStoreOn(t, p)
		files := testFiles(t, s, v, "f", 10)
		const failing = 1
		ff.Inject(pool.Fault{Op: pool.OpRead, Path: p.Config().Members[failing].Path + "/packs/", Err: syscall.EIO, Sticky: true})
		dropCache(s)
		checkFiles(t, s, v, files)
		s.waitReadRepairs()
		if !memberHealth(t, p, failing).FailsReads {
			t.Fatal("member not degraded for failing reads")
		}
		// A job for a copy on it, as a read queued before it was degraded.
		refs, err := chunkRefsIn(s.db)
		if err != nil {
			t.Fatal(err)
		}
		var job readRepairJob
		for h, rec := range refs {
			for i, l := range rec.Locs {
				if l.Member == failing {
					data, err := p.Read(rec.Locs[1-i], h, nil)
					if err != nil {
						t.Fatal(err)
					}
					job = readRepairJob{h: h, data: data, bad: []pool.BadCopy{{Loc: l, Err: syscall.EIO}}}
				}
			}
		}
		if job.bad == nil {
			t.Fatal("no copy on the failing member")
		}
		before := s.readRepairCounts()
		s.readRepair(job)
		after := s.readRepairCounts()
		if after.Skipped != before.Skipped+1 || after.Rewritten != before.Rewritten {
			t.Fatalf("repair of a copy on a member failing reads: %+v, were %+v", after, before)
		}
		if now, _, _ := getChunkRefFrom(s.db, job.h); !containsLoc(now.Locs, job.bad[0].Loc) {
			t.Fatalf("copy on the failing member moved: %v", now.Locs)
		}
		ff.Clear()
		if err := s.Check(); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("no good copy", func(t *testing.T) {
		p := pooltest.NewOptions(t, 2, pool.CreateOptions{Copies: 2}, pool.OpenOptions{})
		s, v := openTestStoreOn(t, p)
		data := randBytes(100 << 10)
		ino := writeTestFile(t, s, v, "a", data)
		_, rec := chunkOf(t, s, v, ino, 0)
		for _, l := range rec.Locs {
			flipByte(t, p, l)
		}
		dropCache(s)
		if _, err := readTestFile(s, v, ino, len(data)); err == nil {
			t.Fatal("read of a chunk with no good copy succeeded")
		}
		s.waitReadRepairs()
		if got := s.readRepairCounts(); got != (ReadRepairs{}) {
			t.Fatalf("read repair counts %+v with no good copy", got)
		}
		if n := countTag(t, s, tagDamaged); n != 1 {
			t.Fatalf("%d damaged records, want 1", n)
		}
	})
}
