package store

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/snapfs/snapfs/pool"
	"github.com/snapfs/snapfs/pool/pooltest"
)

// openCheckpointCopy opens a copy of a shipped checkpoint's metadata.
func openCheckpointCopy(t *testing.T, c pool.ShippedCheckpoint) *pebble.DB {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "meta")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range c.Info.Files {
		b, err := os.ReadFile(filepath.Join(c.Dir, f.Name))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f.Name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	db, err := openPebble(dir, Options{}.EnsureDefaults())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func openNoAutoCheckpoint(t *testing.T, p *pool.Pool) (*Store, View) {
	t.Helper()
	s, err := Open(p, Options{CheckpointInterval: -1})
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

func newestShipped(t *testing.T, p *pool.Pool) pool.ShippedCheckpoint {
	t.Helper()
	c, err := p.NewestCheckpoint()
	if err != nil || c == nil {
		t.Fatalf("no shipped checkpoint: %v", err)
	}
	return *c
}

// readable reports whether every location of every record in refs reads
// back as a valid record.
func readable(p *pool.Pool, refs map[pool.Hash]chunkRefRec) error {
	for h, rec := range refs {
		for _, l := range rec.Locs {
			if _, err := p.Read(l, h, nil); err != nil {
				return err
			}
		}
	}
	return nil
}

// TestCheckpointPunchRule: a record freed after the newest shipped
// checkpoint was taken is not punched, stays readable through that
// checkpoint's metadata, keeps that across a restart (the mark is
// persisted), and is punched once a later checkpoint is shipped.
func TestCheckpointPunchRule(t *testing.T) {
	p := pooltest.New(t, 2)
	s, v := openNoAutoCheckpoint(t, p)
	writeTestFile(t, s, v, "a", randBytes(200<<10))
	refsA, err := chunkRefsIn(s.db)
	if err != nil || len(refsA) != 2 {
		t.Fatalf("want 2 chunkrefs, got %d (%v)", len(refsA), err)
	}
	st, err := s.Checkpoint("test one")
	if err != nil || !st.Complete || len(st.Members) != 1 {
		t.Fatalf("checkpoint: %+v, %v", st, err)
	}
	c1 := newestShipped(t, p)
	if c1.Info.Reason != "test one" || c1.Info.FreeMark != st.Mark || c1.Info.Seq != st.Seq {
		t.Fatalf("shipped info %+v, stats %+v", c1.Info, st)
	}
	if err := s.Unlink(v, RootIno, "a"); err != nil {
		t.Fatal(err)
	}
	s.reclaim(false)
	if err := readable(p, refsA); err != nil {
		t.Fatalf("record freed after the checkpoint was punched: %v", err)
	}
	// The checkpoint's metadata names those records, and they read back.
	cdb := openCheckpointCopy(t, c1)
	crefs, err := chunkRefsIn(cdb)
	if err != nil {
		t.Fatal(err)
	}
	for h, rec := range refsA {
		if got, ok := crefs[h]; !ok || !sameLocs(got.Locs, rec.Locs) {
			t.Fatalf("checkpoint lacks chunkref %x", h[:8])
		}
	}
	if err := readable(p, crefs); err != nil {
		t.Fatalf("checkpoint's records: %v", err)
	}

	// Across a restart the mark holds.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, _ = openNoAutoCheckpoint(t, p)
	s.reclaim(false)
	if err := readable(p, refsA); err != nil {
		t.Fatalf("after restart: record punched: %v", err)
	}
	// A later checkpoint, taken after the free, releases them.
	if _, err := s.Checkpoint("test two"); err != nil {
		t.Fatal(err)
	}
	if cs, _ := pool.Checkpoints(nil, p.Config().Members[0].Path); len(cs) != 1 || cs[0].Info.Reason != "test two" {
		t.Fatalf("member keeps %d checkpoints (%+v), want the newest only", len(cs), cs)
	}
	s.reclaim(false)
	if canPunch(t, p) {
		if err := readable(p, refsA); !errors.Is(err, pool.ErrChecksum) {
			t.Fatalf("after the second checkpoint the records should be punched: %v", err)
		}
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestCheckpointNoneYetPunchesFreely: a pool that never had a checkpoint
// punches at once (nothing to protect).
func TestCheckpointNoneYetPunchesFreely(t *testing.T) {
	p := pooltest.New(t, 1)
	needPunch(t, p)
	s, v := openNoAutoCheckpoint(t, p)
	writeTestFile(t, s, v, "a", randBytes(10<<10))
	refs, _ := chunkRefsIn(s.db)
	if err := s.Unlink(v, RootIno, "a"); err != nil {
		t.Fatal(err)
	}
	s.reclaim(false)
	if err := readable(p, refs); !errors.Is(err, pool.ErrChecksum) {
		t.Fatalf("without any checkpoint the record should be punched: %v", err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestSettledFreeMark: a free-queue sequence whose batch is still open
// keeps the mark below it.
func TestSettledFreeMark(t *testing.T) {
	s, _ := NewTestStore(t, 1, Options{CheckpointInterval: -1})
	a := s.allocFreeSeq()
	b := s.allocFreeSeq()
	if m := s.settledFreeMark(); m != a-1 {
		t.Fatalf("mark %d with %d and %d open, want %d", m, a, b, a-1)
	}
	s.releaseFreeSeqs([]uint64{a})
	if m := s.settledFreeMark(); m != b-1 {
		t.Fatalf("mark %d with %d open, want %d", m, b, b-1)
	}
	s.releaseFreeSeqs([]uint64{b})
	if m := s.settledFreeMark(); m != s.seq.Load() {
		t.Fatalf("mark %d with nothing open, want %d", m, s.seq.Load())
	}
}

// TestCheckpointAfterSnapshotAndAtClose: the background checkpointer
// ships one after a requested reason, and Close ships one when the
// metadata changed since.
func TestCheckpointAfterSnapshotAndAtClose(t *testing.T) {
	p := pooltest.New(t, 2)
	s, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateVolume("vol", VolumeOptions{}); err != nil {
		t.Fatal(err)
	}
	v, _ := s.LiveView("vol")
	writeTestFile(t, s, v, "a", randBytes(5000))
	s.RequestCheckpoint("after snapshot vol@one")
	waitFor(t, func() bool { return s.LastCheckpoint().Reason == "after snapshot vol@one" })
	writeTestFile(t, s, v, "b", randBytes(5000))
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if c := newestShipped(t, p); c.Info.Reason != "at close" {
		t.Fatalf("newest checkpoint %q, want one at close", c.Info.Reason)
	}
	// Nothing changed: a reopen and close ships nothing new.
	before := newestShipped(t, p).Info.Seq
	s, err = Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if after := newestShipped(t, p).Info.Seq; after != before {
		t.Fatalf("an unchanged store shipped checkpoint %d at close", after)
	}
}

// TestImportRestoresCheckpoint: meta/ deleted; the pool is rebuilt from
// the members' newest checkpoint; what was written after it is reported
// and freed; what it holds reads back; Check is clean.
func TestImportRestoresCheckpoint(t *testing.T) {
	p := pooltest.New(t, 2)
	dir := p.Dir()
	var members []string
	for _, m := range p.Config().Members {
		members = append(members, m.Path)
	}
	s, v := openNoAutoCheckpoint(t, p)
	dataA := randBytes(300 << 10)
	inoA := writeTestFile(t, s, v, "a", dataA)
	st, err := s.Checkpoint("after snapshot vol@s1")
	if err != nil {
		t.Fatal(err)
	}
	dataB := randBytes(200 << 10)
	dataB[128<<10-1], dataB[len(dataB)-1] = 1, 1 // trailing zeros of a chunk are not stored
	writeTestFile(t, s, v, "b", dataB)           // two records, not in the checkpoint
	loseMeta(t, s, p, dir)
	if _, err := pool.Open(dir, pool.OpenOptions{}); !errors.Is(err, pool.ErrNoMeta) {
		t.Fatalf("open without meta/: %v, want ErrNoMeta", err)
	}
	res, err := pool.Import(dir, pool.ImportOptions{Members: members})
	if err != nil {
		t.Fatal(err)
	}
	if res.Restored == nil || res.Restored.Info.Seq != st.Seq || res.PoolJSON != "kept" || res.Config.Incarnation != 2 {
		t.Fatalf("import: %+v", res)
	}
	p2, err := pool.Open(dir, pool.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	rep, err := ReconcileImport(p2, Options{}, res.Restored.Info)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Orphans != 2 || rep.OrphanChunks != 2 || rep.OrphanBytes != 200<<10 || rep.Missing != 0 {
		t.Fatalf("reconcile: %+v, want 2 orphans of 200 KiB", rep)
	}
	s2, v2 := openNoAutoCheckpoint(t, p2)
	got, err := readTestFile(s2, v2, inoA, len(dataA))
	if err != nil || string(got) != string(dataA) {
		t.Fatalf("file a after import: %d bytes, %v", len(got), err)
	}
	if _, err := s2.Lookup(v2, RootIno, "b"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("file b written after the checkpoint: %v, want ErrNotFound", err)
	}
	if mark, limited := s2.punchLimit(); !limited || mark != st.Mark {
		t.Fatalf("punch mark %d (%v), want the checkpoint's %d", mark, limited, st.Mark)
	}
	r, err := s2.Fsck(FsckOptions{})
	if err != nil || len(r.Problems) != 0 || r.Leaked != 0 {
		t.Fatalf("fsck after import: %+v, %v", r, err)
	}
}

// waitFor polls cond for up to 10 seconds.
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for i := 0; i < 1000; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("condition not met within 10s")
}

// TestCheckpointForWaitingFrees: with a checkpoint shipped, a free waits
// for the next one, which the background checkpointer takes on its own
// soon after; then the record is punched.
func TestCheckpointForWaitingFrees(t *testing.T) {
	p := pooltest.New(t, 1)
	needPunch(t, p)
	s, v := openTestStoreOn(t, p)
	writeTestFile(t, s, v, "a", randBytes(10<<10))
	refs, _ := chunkRefsIn(s.db)
	first, err := s.Checkpoint("first")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Unlink(v, RootIno, "a"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return errors.Is(readable(p, refs), pool.ErrChecksum) })
	if last := s.LastCheckpoint(); last.Seq == first.Seq || last.Reason != "freed records waiting" {
		t.Fatalf("the record was punched without a later checkpoint: last %+v", last)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestImportAfterRemoveMemberAndRepack: once checkpoints are in use, a
// member's evacuation and a repack ship a checkpoint before they punch or
// delete the old records, so an import from the members left restores a
// pool whose every chunk is where its metadata says.
func TestImportAfterRemoveMemberAndRepack(t *testing.T) {
	p := pooltest.New(t, 3)
	dir := p.Dir()
	s, v := openNoAutoCheckpoint(t, p)
	files := map[uint64][]byte{}
	for i := 0; i < 6; i++ {
		d := randBytes(300 << 10)
		files[writeTestFile(t, s, v, fmt.Sprint(i), d)] = d
	}
	if _, err := s.Checkpoint("before"); err != nil {
		t.Fatal(err)
	}
	gone := p.Config().Members[2].Path
	if _, err := s.RemoveMember(gone, RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Repack(RepackOptions{}); err != nil {
		t.Fatal(err)
	}
	var members []string
	for _, m := range p.Config().Members {
		if !m.Removed {
			members = append(members, m.Path)
		}
	}
	loseMeta(t, s, p, dir)
	res, err := pool.Import(dir, pool.ImportOptions{Members: members})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := pool.Open(dir, pool.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	rep, err := ReconcileImport(p2, Options{}, res.Restored.Info)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Missing != 0 {
		t.Fatalf("reconcile: %+v: chunks the checkpoint names are gone", rep)
	}
	s2, v2 := openNoAutoCheckpoint(t, p2)
	for ino, want := range files {
		got, err := readTestFile(s2, v2, ino, len(want))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("inode %d after import: %d bytes, %v", ino, len(got), err)
		}
	}
	if r, err := s2.Fsck(FsckOptions{}); err != nil || len(r.Problems) != 0 {
		t.Fatalf("fsck after import: %+v, %v", r, err)
	}
}

// TestSnapshotBurstSharesCheckpoints: ten snapshots' requests in half a
// second are covered by at most two checkpoints (a gap apart), not ten
// back to back, and the last reason is the one shipped.
func TestSnapshotBurstSharesCheckpoints(t *testing.T) {
	p := pooltest.New(t, 2)
	s, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.CreateVolume("vol", VolumeOptions{}); err != nil {
		t.Fatal(err)
	}
	v, _ := s.LiveView("vol")
	seen := map[uint64]bool{} // checkpoints taken, by sequence
	poll := func() {
		if sq := s.LastCheckpoint().Seq; sq != 0 {
			seen[sq] = true
		}
	}
	var last string
	for i := 0; i < 10; i++ {
		writeTestFile(t, s, v, fmt.Sprint(i), randBytes(5000))
		last = fmt.Sprintf("after snapshot vol@s%d", i)
		s.RequestCheckpoint(last)
		for j := 0; j < 10; j++ {
			poll()
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor(t, func() bool { poll(); return s.LastCheckpoint().Reason == last })
	if n := len(seen); n < 1 || n > 2 {
		t.Fatalf("%d checkpoints for a burst of 10 snapshots, want 1 or 2", n)
	}
}

// loseMeta closes s and its pool p and deletes the pool's meta/ in dir.
func loseMeta(t *testing.T, s *Store, p *pool.Pool, dir string) {
	t.Helper()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "meta")); err != nil {
		t.Fatal(err)
	}
}
