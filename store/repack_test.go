package store

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/snapfs/snapfs/pool"
	"github.com/snapfs/snapfs/pool/pooltest"
)

// packBytes sums what the file system allocates for every pack under the
// member directories (what du counts for them).
func packBytes(t *testing.T, p *pool.Pool) int64 {
	t.Helper()
	var n int64
	for _, mc := range p.Config().Members {
		if mc.Removed {
			continue
		}
		names, _ := filepath.Glob(filepath.Join(mc.Path, "packs", "*.pack"))
		for _, name := range names {
			var st syscall.Stat_t
			if err := syscall.Stat(name, &st); err != nil {
				t.Fatal(err)
			}
			n += st.Blocks * 512
		}
	}
	return n
}

// fillAndThin writes n files of 200 KiB, then unlinks all but every
// keep-th one and reclaims what they freed. It returns the files kept.
func fillAndThin(t *testing.T, s *Store, v View, n, keep int) map[uint64][]byte {
	t.Helper()
	kept := map[uint64][]byte{}
	for i := 0; i < n; i++ {
		d := randBytes(200 << 10)
		ino := writeTestFile(t, s, v, fmt.Sprint(i), d)
		if i%keep == 0 {
			kept[ino] = d
		}
	}
	for i := 0; i < n; i++ {
		if i%keep != 0 {
			if err := s.Unlink(v, RootIno, fmt.Sprint(i)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	s.reclaim(true)
	return kept
}

func TestRepackReturnsSpace(t *testing.T) {
	p := pooltest.NewOptions(t, 2, pool.CreateOptions{}, pool.OpenOptions{MaxPackSize: 1 << 20})
	s, v := openTestStoreOn(t, p)
	kept := fillAndThin(t, s, v, 60, 5)
	before := packBytes(t, p)
	if st, _ := p.Stats(); st.Used-checkpointBytes(st) != before {
		t.Fatalf("pool stats say %d bytes used, the packs hold %d", st.Used, before)
	}
	var calls int
	r, err := s.Repack(RepackOptions{Progress: func(RepackReport) { calls++ }})
	if err != nil {
		t.Fatal(err)
	}
	after := packBytes(t, p)
	t.Logf("repack: %+v; packs held %d bytes, now %d", r, before, after)
	if r.Packs == 0 || r.Deleted != r.Packs || r.Moved != r.Chunks || r.Bytes != r.Total || calls == 0 {
		t.Fatalf("report %+v", r)
	}
	// With punching, freed records gave their space back already: repack
	// can only drop the partial blocks around live records (often nothing).
	// TestRepackWithoutPunch shows the space repack returns.
	if r.Before != before || r.After != after || after > before {
		t.Fatalf("space: report %d -> %d, packs %d -> %d", r.Before, r.After, before, after)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if fr, err := s.Fsck(FsckOptions{}); err != nil || len(fr.Problems) != 0 {
		t.Fatalf("fsck: %v %v", fr.Problems, err)
	}
	// A second repack may only pick up the pack that was active during
	// the first (the moved records sealed it); it never grows the packs.
	if r2, err := s.Repack(RepackOptions{}); err != nil || r2.Packs > 1 || r2.After > r2.Before {
		t.Fatalf("second repack: %+v %v", r2, err)
	}
	s, q, v := reopenStore(t, s, p)
	checkFiles(t, s, v, kept)
	// Used also counts the metadata checkpoint shipped at close.
	if st, _ := q.Stats(); st.Used-checkpointBytes(st) != packBytes(t, q) {
		t.Fatalf("pool stats say %d bytes used (%d of checkpoints), the packs hold %d", st.Used, checkpointBytes(st), packBytes(t, q))
	}
}

// checkpointBytes sums the bytes of metadata checkpoints on the members.
func checkpointBytes(st pool.Stats) int64 {
	var n int64
	for _, m := range st.Members {
		n += m.Checkpoints
	}
	return n
}

func TestRepackWithoutPunch(t *testing.T) {
	// On a member that cannot punch (btrfs), freed records keep their
	// space until repack; packs holding nothing live are deleted outright.
	mem := pool.NewMemFS()
	mem.SetType(pool.BtrfsMagic)
	mem.SetCapacity(1 << 30)
	p := pooltest.NewOptions(t, 2, pool.CreateOptions{FS: mem}, pool.OpenOptions{MaxPackSize: 1 << 20})
	s, v := openTestStoreOpts(t, p, Options{PebbleFS: vfs.NewMem()})
	kept := fillAndThin(t, s, v, 40, 8)
	st0, _ := p.Stats()
	free0, _ := mem.Statfs(p.Config().Members[0].Path)
	r, err := s.Repack(RepackOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st1, _ := p.Stats()
	free1, _ := mem.Statfs(p.Config().Members[0].Path)
	if r.Deleted == 0 || r.Deleted != r.Packs || st1.Used >= st0.Used/2 || free1.Free-free0.Free != st0.Used-st1.Used {
		t.Fatalf("repack %+v: used %d -> %d, free %d -> %d", r, st0.Used, st1.Used, free0.Free, free1.Free)
	}
	checkFiles(t, s, v, kept)
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if fr, err := s.Fsck(FsckOptions{}); err != nil || len(fr.Problems) != 0 {
		t.Fatalf("fsck: %v %v", fr.Problems, err)
	}
}

// TestRepackPowerCut cuts the power after a repack batch's commit and
// after every record has moved but before the packs are deleted: the
// clone opens, reads every file, and passes Check and fsck.
func TestRepackPowerCut(t *testing.T) {
	smallEvacBatches(t, 4)
	meta, mem := vfs.NewCrashableMem(), pool.NewMemFS()
	for _, m := range []string{"/m0", "/m1"} {
		mem.MkdirAll(m, 0o755)
	}
	if err := pool.Create("/pool", pool.CreateOptions{Members: []string{"/m0", "/m1"}, FS: mem, Domains: []string{"a", "b"}}); err != nil {
		t.Fatal(err)
	}
	open := func(meta *vfs.MemFS, mem *pool.MemFS) (*pool.Pool, *Store) {
		p, err := pool.Open("/pool", pool.OpenOptions{FS: mem, MaxPackSize: 1 << 20})
		if err != nil {
			t.Fatal(err)
		}
		s, err := Open(p, Options{PebbleFS: meta})
		if err != nil {
			t.Fatal(err)
		}
		return p, s
	}
	p, s := open(meta, mem)
	if _, err := s.CreateVolume("vol", VolumeOptions{}); err != nil {
		t.Fatal(err)
	}
	v, _ := s.LiveView("vol")
	kept := fillAndThin(t, s, v, 40, 4)
	cut := func(where string) {
		cp, cs := open(meta.CrashClone(vfs.CrashCloneCfg{}), mem.CrashClone())
		defer cp.Close()
		defer cs.Close()
		cv, _ := cs.LiveView("vol")
		checkFiles(t, cs, cv, kept)
		if err := cs.Check(); err != nil {
			t.Fatalf("after a cut %s: %v", where, err)
		}
		if fr, err := cs.Fsck(FsckOptions{}); err != nil || len(fr.Problems) != 0 {
			t.Fatalf("fsck after a cut %s: %v %v", where, fr.Problems, err)
		}
		if r, err := cs.Repack(RepackOptions{}); err != nil || (where == "before delete" && r.Deleted == 0) {
			t.Fatalf("repack after a cut %s: %+v %v", where, r, err)
		}
		checkFiles(t, cs, cv, kept)
		if err := cs.Check(); err != nil {
			t.Fatal(err)
		}
	}
	evacAfterCommit = func() { evacAfterCommit = nil; cut("after a commit") }
	repackBeforeDelete = func() { repackBeforeDelete = nil; cut("before delete") }
	t.Cleanup(func() { evacAfterCommit, repackBeforeDelete = nil, nil })
	r, err := s.Repack(RepackOptions{})
	if err != nil || r.Deleted == 0 {
		t.Fatalf("repack: %+v %v", r, err)
	}
	checkFiles(t, s, v, kept)
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	s.Close()
	p.Close()
}

var _ = os.Remove
