package store

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2"
	"github.com/snapfs/snapfs/pool"
	"github.com/snapfs/snapfs/pool/pooltest"
	"github.com/zeebo/blake3"
)

// openTestStoreOn opens a store with a volume "vol" on p; at cleanup it
// closes it (without Check: the tests check what they expect).
func openTestStoreOn(t *testing.T, p *pool.Pool) (*Store, View) {
	t.Helper()
	return openTestStoreOpts(t, p, Options{})
}

// openTestStoreOpts is openTestStoreOn with store options.
func openTestStoreOpts(t *testing.T, p *pool.Pool, opts Options) (*Store, View) {
	t.Helper()
	s, err := Open(p, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Volume("vol"); err != nil {
		if _, err := s.CreateVolume("vol", VolumeOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	v, err := s.LiveView("vol")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, v
}

func writeTestFile(t *testing.T, s *Store, v View, name string, data []byte) uint64 {
	t.Helper()
	a, h, err := s.Create(v, RootIno, name, 0o644, 0, 0, syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Write(data, 0); err != nil {
		t.Fatal(err)
	}
	if err := h.Fsync(false); err != nil {
		t.Fatal(err)
	}
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
	return a.Ino
}

func readTestFile(s *Store, v View, ino uint64, n int) ([]byte, error) {
	h, err := s.Open(v, ino, syscall.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer h.Release()
	buf := make([]byte, n+10)
	m, err := h.Read(buf, 0)
	return buf[:m], err
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	rand.Read(b)
	return b
}

// someChunkRef returns one chunkref record of s.
func someChunkRef(t *testing.T, s *Store) (pool.Hash, chunkRefRec) {
	t.Helper()
	refs, err := chunkRefsIn(s.db)
	if err != nil {
		t.Fatal(err)
	}
	for h, r := range refs {
		return h, r
	}
	t.Fatal("no chunkref")
	return pool.Hash{}, chunkRefRec{}
}

func packPath(p *pool.Pool, l pool.Location) string {
	return filepath.Join(p.Config().Members[l.Member].Path, "packs", fmt.Sprintf("%d.pack", l.Pack))
}

// flipByte flips one payload byte of the record at l with the OS.
func flipByte(t *testing.T, p *pool.Pool, l pool.Location) {
	t.Helper()
	f, err := os.OpenFile(packPath(p, l), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	off := l.Offset + pool.HeaderSize + 17
	if _, err := f.ReadAt(b, off); err != nil {
		t.Fatal(err)
	}
	b[0] ^= 0x5a
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// needPunch skips a test that needs members which punch holes, but fails
// it in CI, whose temp directories (ext4) must punch.
func needPunch(t *testing.T, p *pool.Pool) {
	t.Helper()
	if canPunch(t, p) {
		return
	}
	if os.Getenv("CI") == "true" || os.Getenv("SNAPFS_REQUIRE_FUSE") == "1" {
		t.Fatal("the temp dir's file system cannot punch holes, but CI's must")
	}
	t.Skip("the temp dir's file system cannot punch holes")
}

func canPunch(t *testing.T, p *pool.Pool) bool {
	st, err := p.Stats()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range st.Members {
		if !m.CanPunch {
			return false
		}
	}
	return true
}

func TestFsckClean(t *testing.T) {
	p := pooltest.New(t, 2)
	s, v := openTestStoreOn(t, p)
	writeTestFile(t, s, v, "a", randBytes(600<<10))
	writeTestFile(t, s, v, "b", randBytes(10))
	r, err := s.Fsck(FsckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) != 0 || r.Records == 0 || r.Chunks == 0 || r.Leaked != 0 {
		t.Fatalf("clean store: %+v", r)
	}
}

func TestFsckRepairCount(t *testing.T) {
	p := pooltest.New(t, 2)
	s, v := openTestStoreOn(t, p)
	writeTestFile(t, s, v, "a", randBytes(300<<10))
	h, rec := someChunkRef(t, s)
	rec.Count += 5
	if err := s.db.Set(chunkRefKey(h), rec.encode(), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	r, err := s.Fsck(FsckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) != 1 || len(r.Repaired) != 0 {
		t.Fatalf("want one problem: %+v", r)
	}
	r, err = s.Fsck(FsckOptions{Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Repaired) != 1 || len(r.Remaining) != 0 {
		t.Fatalf("repair: %+v", r)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

func TestFsckRepairZeroCount(t *testing.T) {
	p := pooltest.New(t, 1)
	s, v := openTestStoreOn(t, p)
	writeTestFile(t, s, v, "a", randBytes(5000))
	// A chunkref nobody references: count 1, references 0.
	data := randBytes(5000)
	h := pool.Hash(blake3.Sum256(data))
	locs, err := p.Append(h, data)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Sync(locs); err != nil {
		t.Fatal(err)
	}
	rec := chunkRefRec{Count: 1, Length: uint32(len(data)), Locs: locs}
	if err := s.db.Set(chunkRefKey(h), rec.encode(), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	r, err := s.Fsck(FsckOptions{Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) != 1 || len(r.Repaired) != 1 || len(r.Remaining) != 0 {
		t.Fatalf("repair: %+v", r)
	}
	s.reclaim(true)
	if canPunch(t, p) {
		if r, _ := s.Fsck(FsckOptions{}); r.Records != 1 || len(r.Problems) != 0 {
			t.Fatalf("after reclaim: %+v", r)
		}
	}
}

func TestFsckLeakAndDangling(t *testing.T) {
	p := pooltest.New(t, 2)
	s, v := openTestStoreOn(t, p)
	ino := writeTestFile(t, s, v, "a", randBytes(5000))
	// A leaked record: in a pack, no chunkref.
	data := randBytes(7000)
	h := pool.Hash(blake3.Sum256(data))
	locs, err := p.Append(h, data)
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Sync(locs); err != nil {
		t.Fatal(err)
	}
	r, err := s.Fsck(FsckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Leaked != 1 || len(r.Problems) != 1 {
		t.Fatalf("leak: %+v", r)
	}
	// A dangling reference: the file's chunkref is lost, its record stays.
	fh, frec := someChunkRef(t, s)
	for fh == h {
		t.Fatal("leak has a chunkref")
	}
	if err := s.db.Delete(chunkRefKey(fh), pebble.Sync); err != nil {
		t.Fatal(err)
	}
	r, err = s.Fsck(FsckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Leaked != 2 || len(r.Problems) != 3 { // dangling + 2 leaks
		t.Fatalf("leak+dangling: %+v", r)
	}
	r, err = s.Fsck(FsckOptions{Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Repaired) != 2 {
		t.Fatalf("repair: %+v", r)
	}
	if canPunch(t, p) && len(r.Remaining) != 0 {
		t.Fatalf("remaining after repair: %+v", r)
	}
	got, err := s.Fsck(FsckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	rec, _, _ := getChunkRefFrom(s.db, fh)
	if rec.Count != frec.Count || !sameLocs(rec.Locs, frec.Locs) {
		t.Fatalf("relinked %+v, was %+v (%+v)", rec, frec, got)
	}
	if b, err := readTestFile(s, v, ino, 5000); err != nil || len(b) != 5000 {
		t.Fatalf("read after relink: %d %v", len(b), err)
	}
}

func TestFsckFlippedByteAndDeletedPack(t *testing.T) {
	p := pooltest.New(t, 1)
	dir := p.Dir()
	s, v := openTestStoreOn(t, p)
	ino := writeTestFile(t, s, v, "a", randBytes(5000))
	_, rec := someChunkRef(t, s)
	flipByte(t, p, rec.Locs[0])
	_ = ino // the store's chunk cache may still serve it
	r, err := s.Fsck(FsckOptions{Repair: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) != 1 || len(r.Remaining) != 1 {
		t.Fatalf("flipped byte: %+v", r)
	}
	// Delete the pack with the pool closed.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(packPath(p, rec.Locs[0])); err != nil {
		t.Fatal(err)
	}
	p2, err := pool.Open(dir, pool.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p2.Close() })
	s2, _ := openTestStoreOn(t, p2)
	r, err = s2.Fsck(FsckOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Problems) != 1 || !bytes.Contains([]byte(r.Problems[0]), []byte("missing")) {
		t.Fatalf("deleted pack: %+v", r)
	}
}

func TestScrubRepairsCopy(t *testing.T) {
	p := pooltest.NewOptions(t, 2, pool.CreateOptions{Copies: 2}, pool.OpenOptions{})
	s, v := openTestStoreOn(t, p)
	data := randBytes(300 << 10)
	writeTestFile(t, s, v, "a", data)
	h, rec := someChunkRef(t, s)
	if len(rec.Locs) != 2 {
		t.Fatalf("copies: %+v", rec)
	}
	flipByte(t, p, rec.Locs[0])
	// (No read here: a read around the bad copy rewrites it, which
	// TestReadRepairsBadCopy tests.)
	if err := s.Check(); err == nil {
		t.Fatal("check passed with a bad copy")
	}
	r, err := s.Scrub(ScrubOptions{NoRepair: true})
	if err != nil {
		t.Fatal(err)
	}
	if r.Bad != 1 || r.Repaired != 0 || len(r.Damaged) != 1 {
		t.Fatalf("verify only: %+v", r)
	}
	r, err = s.Scrub(ScrubOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Bad != 1 || r.Repaired != 1 || r.Unrepairable != 0 || r.Chunks != r.Total || r.Bytes == 0 {
		t.Fatalf("scrub: %+v", r)
	}
	now, _, _ := getChunkRefFrom(s.db, h)
	if len(now.Locs) != 2 || now.Locs[1] != rec.Locs[1] || now.Locs[0] == rec.Locs[0] ||
		p.Domain(now.Locs[0].Member) == p.Domain(now.Locs[1].Member) {
		t.Fatalf("repaired locations %v, were %v", now.Locs, rec.Locs)
	}
	r, err = s.Scrub(ScrubOptions{})
	if err != nil || r.Bad != 0 {
		t.Fatalf("second scrub: %+v %v", r, err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if fr, err := s.Fsck(FsckOptions{}); err != nil || len(fr.Problems) != 0 {
		t.Fatalf("fsck after scrub: %+v %v", fr, err)
	}
}

func TestScrubUnrepairable(t *testing.T) {
	p := pooltest.New(t, 1)
	s, v := openTestStoreOn(t, p)
	writeTestFile(t, s, v, "a", randBytes(5000))
	writeTestFile(t, s, v, "b", randBytes(5000))
	_, rec := someChunkRef(t, s)
	flipByte(t, p, rec.Locs[0])
	r, err := s.Scrub(ScrubOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Chunks != 2 || r.Bad != 1 || r.Repaired != 0 || r.Unrepairable != 1 || len(r.Damaged) != 1 {
		t.Fatalf("scrub: %+v", r)
	}
}
