package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snapfs/snapfs/objstore"
	"github.com/snapfs/snapfs/pool"
	"github.com/snapfs/snapfs/pool/pooltest"
)

// objectPool is a pool over dirs directory members and one object-store
// member held in memory, with small objects so that a test makes many.
type objectPool struct {
	mem  *objstore.Mem
	dir  string
	oo   pool.OpenOptions
	p    *pool.Pool
	s    *Store
	v    View
	objs int // the object-store member's index
}

func newObjectPool(t *testing.T, dirs, copies int) *objectPool {
	t.Helper()
	root := t.TempDir()
	op := &objectPool{mem: objstore.NewMem("store-test"), dir: filepath.Join(root, "pool"), objs: dirs}
	open := func(objstore.Config) (objstore.Store, error) { return op.mem, nil }
	co := pool.CreateOptions{Copies: copies, ObjectStores: open}
	for i := 0; i < dirs; i++ {
		d := filepath.Join(root, fmt.Sprintf("m%d", i))
		if err := (pool.OSFS{}).MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		co.Members = append(co.Members, d)
		co.Domains = append(co.Domains, fmt.Sprintf("d%d", i))
	}
	co.Members = append(co.Members, "s3://store-test/pool")
	co.Domains = append(co.Domains, "")
	if err := pool.Create(op.dir, co); err != nil {
		t.Fatal(err)
	}
	op.oo = pool.OpenOptions{ObjectStores: open, ObjectSize: 1 << 20, SealInterval: time.Hour}
	op.open(t)
	return op
}

func (op *objectPool) open(t *testing.T) {
	t.Helper()
	p, err := pool.Open(op.dir, op.oo)
	if err != nil {
		t.Fatal(err)
	}
	op.p = p
	op.s, op.v = openTestStoreOn(t, p)
	t.Cleanup(func() {
		op.s.Close()
		op.p.Close()
	})
}

func (op *objectPool) reopen(t *testing.T, between func()) {
	t.Helper()
	if err := op.s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := op.p.Close(); err != nil {
		t.Fatal(err)
	}
	if between != nil {
		between()
	}
	op.open(t)
}

func (op *objectPool) objects(t *testing.T) int {
	t.Helper()
	infos, err := op.mem.List(context.Background(), "packs/")
	if err != nil {
		t.Fatal(err)
	}
	return len(infos)
}

// TestObjectMemberStore runs the store over object-store members: files
// written, thinned, repacked (objects mostly dead are rewritten and
// deleted), read back after a reopen, with Check and fsck clean.
func TestObjectMemberStore(t *testing.T) {
	tests := []struct {
		name         string
		dirs, copies int
		fsyncEach    bool // every file fsynced (an object each) or one Sync at the end
	}{
		{"directory and object, copies 2", 1, 2, true},
		{"object only", 0, 1, true},
		{"two directories and object, copies 1", 2, 1, true},
		{"object only, objects partly live", 0, 1, false},
		{"directory and object, objects partly live", 1, 2, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			op := newObjectPool(t, tc.dirs, tc.copies)
			var kept map[uint64][]byte
			if tc.fsyncEach {
				kept = fillAndThin(t, op.s, op.v, 40, 6)
			} else {
				kept = fillAndThinOneSync(t, op.s, op.v, 40, 3)
			}
			before := op.objects(t)
			r, err := op.s.Repack(RepackOptions{})
			if err != nil {
				t.Fatal(err)
			}
			after := op.objects(t)
			t.Logf("repack %+v: objects %d -> %d", r, before, after)
			if tc.copies == 2 || tc.dirs == 0 {
				if r.Deleted == 0 || after >= before {
					t.Fatalf("repack deleted %d packs; objects %d -> %d", r.Deleted, before, after)
				}
			}
			if !tc.fsyncEach && (r.Moved == 0 || r.Moved != r.Chunks) {
				t.Fatalf("repack of partly live objects moved %d of %d live records", r.Moved, r.Chunks)
			}
			checkFiles(t, op.s, op.v, kept)
			if err := op.s.Check(); err != nil {
				t.Fatal(err)
			}
			if fr, err := op.s.Fsck(FsckOptions{}); err != nil || len(fr.Problems) != 0 {
				t.Fatalf("fsck: %v %v", fr.Problems, err)
			}
			op.reopen(t, nil)
			checkFiles(t, op.s, op.v, kept)
			if err := op.s.Check(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

// TestObjectMemberDisasterRecovery: the host is lost (pool directory,
// stage and directory members deleted); Import from the object-store
// member alone rebuilds the pool as of the newest checkpoint in the
// store; reconciling finds every chunk the checkpoint names, the files
// read back, and Check and fsck are clean. An import from a store with no
// complete checkpoint is refused saying what it found.
func TestObjectMemberDisasterRecovery(t *testing.T) {
	tests := []struct {
		name         string
		dirs, copies int
	}{
		{"directory and object, copies 2", 1, 2},
		{"object only", 0, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			op := newObjectPool(t, tc.dirs, tc.copies)
			// Files written, most removed and their objects repacked (the
			// repack ships a checkpoint before it deletes an object: the
			// punch rule), then a checkpoint.
			files := fillAndThinOneSync(t, op.s, op.v, 24, 3)
			if _, err := op.s.Repack(RepackOptions{}); err != nil {
				t.Fatal(err)
			}
			if _, err := op.s.Checkpoint("before the disaster"); err != nil {
				t.Fatal(err)
			}
			url := op.p.Config().Members[op.objs].Path
			op.s.Close()
			op.p.Close()
			// Lose the host: every directory of the test but the store.
			root := filepath.Dir(op.dir)
			if err := os.RemoveAll(root); err != nil {
				t.Fatal(err)
			}
			dir := filepath.Join(t.TempDir(), "rebuilt")
			open := func(objstore.Config) (objstore.Store, error) { return op.mem, nil }
			res, err := pool.Import(dir, pool.ImportOptions{Members: []string{url}, ObjectStores: open})
			if err != nil {
				t.Fatal(err)
			}
			if res.Restored == nil || res.Restored.Info.Seq == 0 {
				t.Fatalf("restored %+v", res.Restored)
			}
			p2, err := pool.Open(dir, pool.OpenOptions{ObjectStores: open})
			if err != nil {
				t.Fatal(err)
			}
			defer p2.Close()
			rep, err := ReconcileImport(p2, Options{}, res.Restored.Info)
			if err != nil {
				t.Fatal(err)
			}
			if rep.Missing != 0 || rep.Records == 0 {
				t.Fatalf("reconcile: %+v", rep)
			}
			s2, v2 := openNoAutoCheckpoint(t, p2)
			defer s2.Close()
			for ino, want := range files {
				got, err := readTestFile(s2, v2, ino, len(want))
				if err != nil || !bytes.Equal(got, want) {
					t.Fatalf("inode %d after import: %d bytes, %v", ino, len(got), err)
				}
			}
			// The lost host's directory members are gone: remove them
			// (their copies are dropped; the bucket holds every chunk).
			// A new local disk on the new host takes the copies the lost
			// ones held (removing them re-replicates from the bucket).
			if tc.dirs > 0 {
				fresh := filepath.Join(t.TempDir(), "fresh")
				os.Mkdir(fresh, 0o755)
				if _, err := p2.AddMember(fresh, "new-host"); err != nil {
					t.Fatal(err)
				}
			}
			for _, mc := range p2.Config().Members[:tc.dirs] {
				if mc.Kind == "" {
					if r, err := s2.RemoveMember(mc.Path, RemoveOptions{}); err != nil {
						t.Fatalf("remove the lost member %s: %+v %v", mc.Path, r, err)
					}
				}
			}
			if err := s2.Check(); err != nil {
				t.Fatal(err)
			}
			if r, err := s2.Fsck(FsckOptions{}); err != nil || len(r.Problems) != 0 {
				t.Fatalf("fsck after import: %+v, %v", r, err)
			}
		})
	}
	t.Run("no complete checkpoint", func(t *testing.T) {
		op := newObjectPool(t, 0, 1)
		writeTestFile(t, op.s, op.v, "f", randBytes(10000))
		if _, err := op.s.Checkpoint("only"); err != nil {
			t.Fatal(err)
		}
		url := op.p.Config().Members[0].Path
		op.s.Close()
		op.p.Close()
		// Lose one file of every checkpoint in the store.
		infos, _ := op.mem.List(context.Background(), "meta-checkpoints/")
		for _, in := range infos {
			if strings.Contains(in.Key, "MANIFEST") {
				op.mem.Delete(context.Background(), in.Key)
			}
		}
		open := func(objstore.Config) (objstore.Store, error) { return op.mem, nil }
		_, err := pool.Import(filepath.Join(t.TempDir(), "p"), pool.ImportOptions{Members: []string{url}, ObjectStores: open})
		if !errors.Is(err, pool.ErrNoCheckpoint) || !strings.Contains(err.Error(), "lacks MANIFEST") {
			t.Fatalf("import without a complete checkpoint: %v", err)
		}
	})
}

// TestObjectMemberScrub: copies 2 over a directory and an object store.
// Damaged objects are read around and scrub rewrites their copies; with
// every pack of the directory deleted, every file still reads from the
// objects, and scrub restores the directory's copies.
func TestObjectMemberScrub(t *testing.T) {
	op := newObjectPool(t, 1, 2)
	files := map[uint64][]byte{}
	for i := 0; i < 6; i++ {
		d := randBytes(200 << 10)
		files[writeTestFile(t, op.s, op.v, fmt.Sprint(i), d)] = d
	}
	infos, _ := op.mem.List(context.Background(), "packs/")
	for _, in := range infos {
		op.mem.Corrupt(in.Key, 4096+100) // the payload of the first record
	}
	dropCache(op.s)
	checkFiles(t, op.s, op.v, files)
	r, err := op.s.Scrub(ScrubOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Bad != int64(len(infos)) || r.Repaired != r.Bad || r.Unrepairable != 0 {
		t.Fatalf("scrub of %d damaged objects: %+v", len(infos), r)
	}
	// Lose every pack of the directory member (while the pool is closed:
	// an open pack outlives its name).
	m0 := op.p.Config().Members[0].Path
	op.reopen(t, func() {
		packs, _ := filepath.Glob(filepath.Join(m0, "packs", "*.pack"))
		for _, name := range packs {
			if err := os.Remove(name); err != nil {
				t.Fatal(err)
			}
		}
	})
	checkFiles(t, op.s, op.v, files)
	r, err = op.s.Scrub(ScrubOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Bad == 0 || r.Repaired != r.Bad || r.Unrepairable != 0 {
		t.Fatalf("scrub after the directory's packs were lost: %+v", r)
	}
	if err := op.s.Check(); err != nil {
		t.Fatal(err)
	}
	if fr, err := op.s.Fsck(FsckOptions{}); err != nil || len(fr.Problems) != 0 {
		t.Fatalf("fsck: %v %v", fr.Problems, err)
	}
}

// fillAndThinOneSync is fillAndThin without an fsync per file: one Sync
// at the end, so the records of several files share an object.
func fillAndThinOneSync(t *testing.T, s *Store, v View, n, keep int) map[uint64][]byte {
	t.Helper()
	kept := map[uint64][]byte{}
	for i := 0; i < n; i++ {
		d := randBytes(200 << 10)
		if err := writeFileSync(s, v, fmt.Sprint(i), d, false); err != nil {
			t.Fatal(err)
		}
		if i%keep == 0 {
			a, err := s.Lookup(v, RootIno, fmt.Sprint(i))
			if err != nil {
				t.Fatal(err)
			}
			kept[a.Ino] = d
		}
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
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

// TestObjectMemberAddedOnline: an object-store member added to a pool
// holding data, copies raised to 2, and a scrub: every chunk gets its
// copy in the store, and the files read back from the store alone.
func TestObjectMemberAddedOnline(t *testing.T) {
	mem := objstore.NewMem("added")
	stores := func(objstore.Config) (objstore.Store, error) { return mem, nil }
	p := pooltest.NewOptions(t, 1, pool.CreateOptions{}, pool.OpenOptions{ObjectStores: stores, SealInterval: time.Hour})
	s, v := openTestStoreOn(t, p)
	files := map[uint64][]byte{}
	for i := 0; i < 5; i++ {
		d := randBytes(200 << 10)
		files[writeTestFile(t, s, v, fmt.Sprint(i), d)] = d
	}
	if _, err := p.AddObjectMember("s3://added/p", "", nil); err != nil {
		t.Fatal(err)
	}
	if err := p.SetCopies(2); err != nil {
		t.Fatal(err)
	}
	r, err := s.Scrub(ScrubOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Raised != r.Chunks || r.UnderReplicated != 0 {
		t.Fatalf("scrub after adding the store and raising copies: %+v", r)
	}
	// Lose the directory member's packs (with the pool closed): every
	// file reads from the store.
	m0 := p.Config().Members[0].Path
	dir := p.Dir()
	s.Close()
	p.Close()
	packs, _ := filepath.Glob(filepath.Join(m0, "packs", "*.pack"))
	for _, name := range packs {
		os.Remove(name)
	}
	q, err := pool.Open(dir, pool.OpenOptions{ObjectStores: stores})
	if err != nil {
		t.Fatal(err)
	}
	defer q.Close()
	s2, v2 := openTestStoreOn(t, q)
	defer s2.Close()
	checkFiles(t, s2, v2, files)
}

// TestObjectMemberOnlyMemberDown: a pool whose only member is an object
// store. While the store does not answer, an fsync fails (too few copies:
// the FUSE layer answers EIO) and nothing acknowledged before is lost;
// once it answers, the member comes back at a member check and new
// writes are durable again.
func TestObjectMemberOnlyMemberDown(t *testing.T) {
	op := newObjectPool(t, 0, 1)
	before := randBytes(300 << 10)
	ino := writeTestFile(t, op.s, op.v, "before", before)
	var down atomic.Bool
	op.mem.SetFault(func(op, key string) error {
		if down.Load() {
			return errors.New("connection refused")
		}
		return nil
	})
	down.Store(true)
	err := writeFileSync(op.s, op.v, "during", randBytes(200<<10), true)
	if err == nil {
		t.Fatal("fsync succeeded with the only member's store down")
	}
	t.Logf("fsync with the store down: %v", err)
	down.Store(false)
	if err := op.s.CheckMembers(false); err != nil {
		t.Fatal(err)
	}
	if h := op.p.Health(); h.State != pool.StateOK {
		t.Fatalf("health after the store came back: %+v", h)
	}
	after := randBytes(200 << 10)
	ino2 := writeTestFile(t, op.s, op.v, "after", after)
	op.reopen(t, nil)
	checkFiles(t, op.s, op.v, map[uint64][]byte{ino: before, ino2: after})
	if err := op.s.Check(); err != nil {
		t.Fatal(err)
	}
}
