package store

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/snapfs/snapfs/objstore"
	"github.com/snapfs/snapfs/pool"
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

func (op *objectPool) reopen(t *testing.T) {
	t.Helper()
	if err := op.s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := op.p.Close(); err != nil {
		t.Fatal(err)
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
	}{
		{"directory and object, copies 2", 1, 2},
		{"object only", 0, 1},
		{"two directories and object, copies 1", 2, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			op := newObjectPool(t, tc.dirs, tc.copies)
			kept := fillAndThin(t, op.s, op.v, 40, 6)
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
			checkFiles(t, op.s, op.v, kept)
			if err := op.s.Check(); err != nil {
				t.Fatal(err)
			}
			if fr, err := op.s.Fsck(FsckOptions{}); err != nil || len(fr.Problems) != 0 {
				t.Fatalf("fsck: %v %v", fr.Problems, err)
			}
			op.reopen(t)
			checkFiles(t, op.s, op.v, kept)
			if err := op.s.Check(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
