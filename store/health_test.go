package store

import (
	"bytes"
	"container/list"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/snapfs/snapfs/pool"
	"github.com/snapfs/snapfs/pool/pooltest"
)

// copiesOf returns the number of locations of every chunkref.
func copiesOf(t *testing.T, s *Store) map[pool.Hash]int {
	t.Helper()
	refs, err := chunkRefsIn(s.db)
	if err != nil {
		t.Fatal(err)
	}
	out := map[pool.Hash]int{}
	for h, r := range refs {
		out[h] = len(r.Locs)
	}
	return out
}

// dropCache empties the chunk cache so reads go to the pool. It empties
// the cache in place, under its lock: a flush still running (after a
// Release) puts into the same cache meanwhile.
func dropCache(s *Store) {
	c := s.cache
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lru.Init()
	c.m = map[pool.Hash]*list.Element{}
	c.bytes = 0
}

func TestDedupHitRaisesCopies(t *testing.T) {
	p := pooltest.NewOptions(t, 3, pool.CreateOptions{Copies: 1}, pool.OpenOptions{})
	s, v := openTestStoreOn(t, p)
	data := randBytes(3*128<<10 + 5000)
	writeTestFile(t, s, v, "a", data)
	for h, n := range copiesOf(t, s) {
		if n != 1 {
			t.Fatalf("chunk %x: %d copies with copies=1", h[:8], n)
		}
	}
	if err := p.SetCopies(2); err != nil {
		t.Fatal(err)
	}
	ino := writeTestFile(t, s, v, "b", data) // every chunk a dedup hit
	locsOn(t, s, 0, 2)                       // two copies each, in distinct domains
	if r, err := s.Scrub(ScrubOptions{}); err != nil || r.Raised != 0 || r.Bad != 0 {
		t.Fatalf("scrub after dedup raised every chunk: %+v %v", r, err)
	}
	dropCache(s)
	if got, err := readTestFile(s, v, ino, len(data)); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read: %v", err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if fr, err := s.Fsck(FsckOptions{}); err != nil || len(fr.Problems) != 0 {
		t.Fatalf("fsck: %+v %v", fr, err)
	}
}

func TestScrubRaisesCopies(t *testing.T) {
	smallEvacBatches(t, 5) // raised in batches of 5 chunks: several, and a partial last one
	p := pooltest.NewOptions(t, 3, pool.CreateOptions{Copies: 1}, pool.OpenOptions{})
	s, v := openTestStoreOn(t, p)
	files := testFiles(t, s, v, "f", 12)
	chunks := len(copiesOf(t, s))
	if err := p.SetCopies(3); err != nil {
		t.Fatal(err)
	}
	r, err := s.Scrub(ScrubOptions{NoRepair: true})
	if err != nil || r.Raised != 0 || r.UnderReplicated != int64(chunks) {
		t.Fatalf("verify-only scrub: %+v %v", r, err)
	}
	r, err = s.Scrub(ScrubOptions{})
	if err != nil || r.Raised != int64(2*chunks) || r.UnderReplicated != 0 || r.Bad != 0 {
		t.Fatalf("scrub: %+v (want %d copies added) %v", r, 2*chunks, err)
	}
	t.Logf("scrub raising %d chunks to 3 copies: %s read, %v", chunks, humanBytes(r.Bytes), r.Elapsed)
	locsOn(t, s, 0, 3)
	if r, err := s.Scrub(ScrubOptions{}); err != nil || r.Raised != 0 || r.Copies != int64(3*chunks) {
		t.Fatalf("second scrub: %+v %v", r, err)
	}
	// Lowering copies leaves the extra copies alone.
	if err := p.SetCopies(2); err != nil {
		t.Fatal(err)
	}
	if r, err := s.Scrub(ScrubOptions{}); err != nil || r.Raised != 0 {
		t.Fatalf("scrub after lowering copies: %+v %v", r, err)
	}
	dropCache(s)
	checkFiles(t, s, v, files)
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if fr, err := s.Fsck(FsckOptions{}); err != nil || len(fr.Problems) != 0 {
		t.Fatalf("fsck: %+v %v", fr, err)
	}
}

func humanBytes(n int64) string { return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20)) }

func TestDegradedWritesThenScrub(t *testing.T) {
	// copies=2 over two members: one vanishes while the store is open.
	p := pooltest.NewOptions(t, 2, pool.CreateOptions{Copies: 2}, pool.OpenOptions{})
	s, v := openTestStoreOn(t, p)
	old := testFiles(t, s, v, "old", 4)
	remount := pooltest.UnmountMember(t, p, 1)
	if err := s.CheckMembers(false); err != nil {
		t.Fatal(err)
	}
	h, err := s.Health(nil)
	if err != nil || h.State != pool.StateDegraded || h.Members[1].State != pool.StateFailed {
		t.Fatalf("health: %+v %v", h, err)
	}
	// Reads go around the gone member, writes go on with one copy each.
	dropCache(s)
	checkFiles(t, s, v, old)
	fresh := testFiles(t, s, v, "new", 4)
	h, _ = s.Health(nil)
	if h.UnderReplicated == 0 {
		t.Fatalf("degraded writes not counted: %+v", h)
	}
	// Deleting a file whose chunks have a copy on the gone member parks
	// the frees of those copies.
	if err := s.Unlink(v, RootIno, "old0"); err != nil {
		t.Fatal(err)
	}
	s.reclaim(false)
	if n := countTag(t, s, tagParked); n == 0 {
		t.Fatal("no free parked for the gone member")
	}
	remount()
	if err := s.CheckMembers(false); err != nil {
		t.Fatal(err)
	}
	if n := countTag(t, s, tagParked); n != 0 {
		t.Fatalf("%d parked frees left after the member came back", n)
	}
	s.reclaim(false)
	r, err := s.Scrub(ScrubOptions{})
	if err != nil || r.Raised != h.UnderReplicated || r.UnderReplicated != 0 || r.Bad != 0 {
		t.Fatalf("scrub: %+v (%d under-replicated) %v", r, h.UnderReplicated, err)
	}
	h, err = s.Health(nil)
	if err != nil || h.State != pool.StateOK || h.UnderReplicated != 0 {
		t.Fatalf("health after scrub: %+v %v", h, err)
	}
	locsOn(t, s, 0, 2)
	delete(old, 0)
	dropCache(s)
	checkFiles(t, s, v, fresh)
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if fr, err := s.Fsck(FsckOptions{}); err != nil || len(fr.Problems) != 0 || fr.Leaked != 0 {
		t.Fatalf("fsck: %+v %v", fr, err)
	}
}

func countTag(t *testing.T, s *Store, tag byte) int {
	t.Helper()
	lo, hi := tagBounds(tag)
	it, err := s.db.NewIter(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	n := 0
	for ok := it.SeekGE(lo); ok && bytes.Compare(it.Key(), hi) < 0; ok = it.Next() {
		n++
	}
	return n
}

func TestDamagedFilesInEveryView(t *testing.T) {
	p := pooltest.New(t, 1)
	s, v := openTestStoreOn(t, p)
	dir, err := s.Mkdir(v, RootIno, "docs", 0o755, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	data := randBytes(200 << 10)
	a, hd, err := s.Create(v, dir.Ino, "report", 0o644, 0, 0, syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := hd.Write(data, 0); err != nil {
		t.Fatal(err)
	}
	if err := hd.Release(); err != nil {
		t.Fatal(err)
	}
	writeTestFile(t, s, v, "other", randBytes(5000))
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	snapView, _, err := s.PinEpoch(v.Lineage, "monday", nil)
	if err != nil {
		t.Fatal(err)
	}
	// Find the first chunk of report and damage its only copy.
	ver, err := resolve(s.dbr(), []viewPoint{{v.Lineage, LiveEpoch}}, func(lin uint32) []byte { return chunkPrefix(lin, a.Ino, 0, 0) })
	if err != nil || !ver.found {
		t.Fatalf("chunk 0 of report: %v", err)
	}
	cr, _ := decodeChunk(ver.value)
	rec, _, _ := getChunkRefFrom(s.db, cr.Hash)
	flipByte(t, p, rec.Locs[0])
	dropCache(s)
	if _, err := readTestFile(s, v, a.Ino, len(data)); err == nil {
		t.Fatal("read of a damaged chunk succeeded")
	}
	views := []NamedView{{Name: "vol", View: v}, {Name: "vol@monday", View: snapView}}
	h, err := s.Health(views)
	if err != nil {
		t.Fatal(err)
	}
	if h.State != pool.StateDegraded || len(h.Damaged) != 1 || h.Damaged[0].Hash != cr.Hash.String() {
		t.Fatalf("health: %+v", h)
	}
	want := []string{"vol:/docs/report", "vol@monday:/docs/report"}
	if got := h.Damaged[0].Files; strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("damaged files %v, want %v", got, want)
	}
	// The record survives a restart; scrub confirms it.
	s, p, v = reopenStore(t, s, p)
	r, err := s.Scrub(ScrubOptions{})
	if err != nil || r.Unrepairable != 1 {
		t.Fatalf("scrub: %+v %v", r, err)
	}
	if h, err := s.Health(nil); err != nil || len(h.Damaged) != 1 {
		t.Fatalf("health after restart: %+v %v", h, err)
	}
	// Unlinking the file in the live view leaves the snapshot's file the
	// only one that references the chunk.
	if err := s.Unlink(v, dir.Ino, "report"); err != nil {
		t.Fatal(err)
	}
	h, err = s.Health([]NamedView{{Name: "vol", View: v}, {Name: "vol@monday", View: snapView}})
	if err != nil || len(h.Damaged) != 1 || strings.Join(h.Damaged[0].Files, ",") != "vol@monday:/docs/report" {
		t.Fatalf("after unlink in the live view: %+v %v", h, err)
	}
}

func TestDedupHitOnMissingCopyWritesOne(t *testing.T) {
	// copies=1: a chunk whose only copy is on a gone member gets a new
	// copy when written again, so the new file (and the old one) read.
	p := pooltest.NewOptions(t, 2, pool.CreateOptions{Copies: 1}, pool.OpenOptions{})
	s, v := openTestStoreOn(t, p)
	data := randBytes(6 * 128 << 10)
	a := writeTestFile(t, s, v, "a", data)
	if locsOn(t, s, 1, 1) == 0 {
		t.Fatal("no chunk on member 1")
	}
	remount := pooltest.UnmountMember(t, p, 1)
	if err := s.CheckMembers(false); err != nil {
		t.Fatal(err)
	}
	b := writeTestFile(t, s, v, "b", data)
	dropCache(s)
	for _, ino := range []uint64{a, b} {
		if got, err := readTestFile(s, v, ino, len(data)); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("ino %d with member 1 gone: %v", ino, err)
		}
	}
	remount()
	if err := s.CheckMembers(false); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if fr, err := s.Fsck(FsckOptions{}); err != nil || len(fr.Problems) != 0 {
		t.Fatalf("fsck: %+v %v", fr, err)
	}
}

func TestEveryMemberReadOnly(t *testing.T) {
	mfs := pool.NewMemFS()
	p := pooltest.NewOptions(t, 2, pool.CreateOptions{Copies: 1}, pool.OpenOptions{FS: mfs})
	s, v := openTestStoreOn(t, p)
	old := randBytes(300 << 10)
	ino := writeTestFile(t, s, v, "a", old)
	for _, m := range p.Config().Members {
		mfs.SetReadOnly(m.Path, true)
	}
	_, h, err := s.Create(v, RootIno, "b", 0o644, 0, 0, syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Write(randBytes(200<<10), 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Fsync(false); !errors.Is(err, syscall.EROFS) {
		t.Fatalf("fsync with every member read-only: %v, want EROFS", err)
	}
	h.Release()
	dropCache(s)
	if got, err := readTestFile(s, v, ino, len(old)); err != nil || !bytes.Equal(got, old) {
		t.Fatalf("read with every member read-only: %v", err)
	}
	if hl, err := s.Health(nil); err != nil || hl.State != pool.StateFailed {
		t.Fatalf("health: %+v %v", hl, err)
	}
	for _, m := range p.Config().Members {
		mfs.SetReadOnly(m.Path, false)
	}
	if err := s.CheckMembers(false); err != nil {
		t.Fatal(err)
	}
	if hl, err := s.Health(nil); err != nil || hl.State != pool.StateOK {
		t.Fatalf("health once writable: %+v %v", hl, err)
	}
	writeTestFile(t, s, v, "c", randBytes(100<<10))
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

func TestFailedReadTriggersMemberCheck(t *testing.T) {
	// The periodic check is off (an hour): a read that fails on a member
	// whose member.json is gone makes the watcher check at once.
	mfs := pool.NewMemFS()
	ff := pool.NewFaultFS(mfs)
	p := pooltest.NewOptions(t, 2, pool.CreateOptions{Copies: 2}, pool.OpenOptions{FS: ff})
	s, v := openTestStoreOpts(t, p, Options{MemberCheckInterval: time.Hour})
	data := randBytes(400 << 10)
	ino := writeTestFile(t, s, v, "a", data)
	gone := p.Config().Members[0].Path
	if err := mfs.Remove(gone + "/member.json"); err != nil {
		t.Fatal(err)
	}
	ff.Inject(pool.Fault{Op: pool.OpRead, Path: gone, Err: syscall.EIO, Sticky: true})
	dropCache(s)
	if got, err := readTestFile(s, v, ino, len(data)); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("read around the failing member: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for p.Health().Members[0].State != pool.StateFailed {
		if time.Now().After(deadline) {
			t.Fatalf("the watcher did not check after the failed read: %+v", p.Health())
		}
		time.Sleep(10 * time.Millisecond)
	}
}
