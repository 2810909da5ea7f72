package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/snapfs/snapfs/objstore"
	"github.com/snapfs/snapfs/pool"
)

// pictureStore is a replica's bucket (an objstore.Mem) that keeps a
// picture of itself just before every object of packs/ it deletes: what
// a kill -9 of the daemon at that moment would leave in the bucket.
type pictureStore struct {
	*objstore.Mem
	mu       sync.Mutex
	pictures []*objstore.Mem // guarded by mu
	deleted  []string        // guarded by mu: the packs/ keys deleted, in order
	// slow delays the Put of every checkpoint manifest, so that a reclaim
	// deleting objects before its checkpoint is in the bucket would be
	// seen in the pictures.
	slow atomic.Bool
}

func (s *pictureStore) Put(ctx context.Context, key string, data []byte) error {
	if s.slow.Load() && strings.HasSuffix(key, "/checkpoint.json") {
		time.Sleep(300 * time.Millisecond)
	}
	return s.Mem.Put(ctx, key, data)
}

func (s *pictureStore) Delete(ctx context.Context, key string) error {
	if strings.HasPrefix(key, "packs/") {
		s.mu.Lock()
		s.pictures = append(s.pictures, s.Mem.Clone(fmt.Sprintf("before-delete-%d", len(s.pictures))))
		s.deleted = append(s.deleted, key)
		s.mu.Unlock()
	}
	return s.Mem.Delete(ctx, key)
}

func (s *pictureStore) packKeys(t *testing.T) map[string]bool {
	t.Helper()
	infos, err := s.Mem.List(context.Background(), "packs/")
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, in := range infos {
		out[in.Key] = true
	}
	return out
}

func (s *pictureStore) packObjects(t *testing.T) int {
	t.Helper()
	infos, err := s.Mem.List(context.Background(), "packs/")
	if err != nil {
		t.Fatal(err)
	}
	return len(infos)
}

// TestAsyncReplicaRepack: pool repack reclaims a replica's objects under
// the punch rule of the bucket: records of mostly dead objects move to
// new objects on the replica, and the old objects are deleted only once
// a checkpoint naming the moved records is complete in the bucket. The
// bucket holds a consistent pool at every moment: an import from a
// picture of it taken after the records moved (before the checkpoint),
// before the first delete, before the last, and after the repack gives
// every kept file back with Check and fsck clean. A replica that is
// failing or incomplete keeps its objects (and the repack says why), and
// a later repack reclaims them.
func TestAsyncReplicaRepack(t *testing.T) {
	tests := []struct {
		name string
		// before runs before the repack; it returns a function that
		// undoes it (or nil) and whether the replica's objects must be
		// reclaimed by this repack.
		before func(t *testing.T, p *pool.Pool, bucket *pictureStore) (undo func(), reclaim bool)
	}{
		{"replica caught up", func(*testing.T, *pool.Pool, *pictureStore) (func(), bool) { return nil, true }},
		{"replica failing", func(t *testing.T, p *pool.Pool, bucket *pictureStore) (func(), bool) {
			bucket.SetFault(func(op, key string) error { return errors.New("HTTP 503") })
			waitReplicaErr(t, p, 1)
			return func() { bucket.SetFault(nil) }, false
		}},
		{"replica incomplete", func(t *testing.T, p *pool.Pool, bucket *pictureStore) (func(), bool) {
			if err := p.ClearReplicaComplete(1); err != nil {
				t.Fatal(err)
			}
			return nil, false
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			bucket := &pictureStore{Mem: objstore.NewMem("replica")}
			open := func(objstore.Config) (objstore.Store, error) { return bucket, nil }
			disk := filepath.Join(root, "disk")
			os.Mkdir(disk, 0o755)
			dir := filepath.Join(root, "pool")
			const url = "s3://replica/pool"
			if err := pool.Create(dir, pool.CreateOptions{Members: []string{disk, url}, Domains: []string{"local", ""}, Copies: 1,
				ObjectStores: open, Async: map[string]bool{url: true}}); err != nil {
				t.Fatal(err)
			}
			p, err := pool.Open(dir, pool.OpenOptions{ObjectStores: open, ObjectSize: 1 << 20, SealInterval: 10 * time.Millisecond, MaxPackSize: 1 << 20})
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			s, v := openNoAutoCheckpoint(t, p)
			defer s.Close()
			kept := fillAndThin(t, s, v, 40, 4) // objects of 5 files: a fifth to two fifths live
			waitComplete(t, p, 1)
			ck, err := s.Checkpoint("before the repack")
			if err != nil {
				t.Fatal(err)
			}
			waitCaughtUp(t, p, 1, ck.Seq)
			before := bucket.packObjects(t)
			keysBefore := bucket.packKeys(t)

			var moved *objstore.Mem
			replicaRepackHook = func() { moved = bucket.Clone("records moved") }
			defer func() { replicaRepackHook = nil }()
			undo, reclaim := tc.before(t, p, bucket)
			bucket.slow.Store(true)
			r, err := s.Repack(RepackOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if undo != nil {
				undo()
			}
			after := bucket.packObjects(t)
			t.Logf("repack %+v: replica objects %d -> %d", r, before, after)
			bucket.mu.Lock()
			pictures, deleted := bucket.pictures, bucket.deleted
			bucket.mu.Unlock()
			if !reclaim {
				if len(deleted) != 0 || after < before {
					t.Fatalf("a %s lost objects %v (%d -> %d)", tc.name, deleted, before, after)
				}
				if tc.name == "replica incomplete" {
					waitComplete(t, p, 1) // the backfill marks it again
				}
				if r.Deleted == 0 {
					t.Fatalf("repack deleted no pack at all: %+v", r)
				}
				// Once the replica is fine again, a repack reclaims.
				ck, err := s.Checkpoint("replica back")
				if err != nil {
					t.Fatal(err)
				}
				waitCaughtUp(t, p, 1, ck.Seq)
				if r, err = s.Repack(RepackOptions{}); err != nil {
					t.Fatal(err)
				}
				after = bucket.packObjects(t)
				t.Logf("second repack %+v: replica objects %d -> %d", r, before, after)
				bucket.mu.Lock()
				pictures, deleted = bucket.pictures, bucket.deleted
				bucket.mu.Unlock()
			}
			if len(r.Kept) != 0 || len(deleted) == 0 || after >= before {
				t.Fatalf("replica objects not reclaimed: %d -> %d, deleted %v, kept %v", before, after, deleted, r.Kept)
			}
			fresh := 0
			for k := range bucket.packKeys(t) {
				if !keysBefore[k] {
					fresh++
				}
			}
			if fresh == 0 {
				t.Fatal("no new object on the replica: no live record of its objects moved")
			}
			if moved == nil {
				t.Fatal("the repack never reached the point between moving and the checkpoint")
			}
			checkFiles(t, s, v, kept)
			if err := s.Check(); err != nil {
				t.Fatal(err)
			}
			if fr, err := s.Fsck(FsckOptions{}); err != nil || len(fr.Problems) != 0 {
				t.Fatalf("fsck: %v %v", fr.Problems, err)
			}
			// The bucket at every moment of the reclaim imports alone:
			// after the records moved, before each delete, and after.
			type picture struct {
				what string
				mem  *objstore.Mem
			}
			all := []picture{{"records moved, checkpoint not yet", moved}}
			for i, pic := range pictures {
				all = append(all, picture{fmt.Sprintf("before delete %d of %d (%s)", i+1, len(pictures), deleted[i]), pic})
			}
			all = append(all, picture{"after the repack", bucket.Clone("after")})
			for _, pic := range all {
				t.Run(pic.what, func(t *testing.T) {
					importAndCheck(t, url, func(objstore.Config) (objstore.Store, error) { return pic.mem, nil }, nil, kept)
				})
			}
		})
	}
}

// waitReplicaErr waits until replica i is degraded.
func waitReplicaErr(t *testing.T, p *pool.Pool, i uint16) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := p.Replica(i)
		if err != nil {
			t.Fatal(err)
		}
		if st.Err != nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %d never degraded: %+v", i, st)
		}
		p.CheckMembers(pool.CheckOptions{}) // a Head of member.json fails
		time.Sleep(20 * time.Millisecond)
	}
}
