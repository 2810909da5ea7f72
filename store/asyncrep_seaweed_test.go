package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/snapfs/snapfs/objstore"
	"github.com/snapfs/snapfs/objstore/objstoretest"
	"github.com/snapfs/snapfs/pool"
)

// TestAsyncReplicaSeaweed runs a pool over a directory and an
// asynchronous replica in a real S3 service (SeaweedFS on 127.0.0.1,
// through objstore.Open): files written and fsynced, the server stopped
// while more are written (fsync goes on, the replica is degraded and
// keeps its backlog), started again (the replica catches up), then the
// host is lost and the pool imported from the bucket alone reads every
// file back, with Check and fsck clean. It fails, never skips, under
// SNAPFS_REQUIRE_FUSE=1 or CI=true when the weed binary is missing.
func TestAsyncReplicaSeaweed(t *testing.T) {
	w := objstoretest.NewSeaweed(t, objstoretest.SeaweedOptions{})
	objstoretest.IsolateCredentials(t, "snapfs", "snapfs-secret")
	url := fmt.Sprintf("s3://snapfs-replicas/pool-%d", time.Now().UnixNano())
	objects := map[string]objstore.Config{url: {URL: url, Endpoint: w.Endpoint, Addressing: "path"}}
	// Short retries, so that a stopped server degrades the replica in
	// seconds rather than the default two minutes.
	open := func(c objstore.Config) (objstore.Store, error) {
		return objstore.Open(context.Background(), c, objstore.WithRetry(objstore.RetryPolicy{
			Attempt: 5 * time.Second, Total: 3 * time.Second, BaseDelay: 50 * time.Millisecond, MaxDelay: 500 * time.Millisecond, OpenTotal: 10 * time.Second}))
	}

	root := t.TempDir()
	disk := filepath.Join(root, "disk")
	if err := os.Mkdir(disk, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "pool")
	if err := pool.Create(dir, pool.CreateOptions{Members: []string{disk, url}, Domains: []string{"local", ""}, Copies: 1,
		Objects: objects, Async: map[string]bool{url: true}, ObjectStores: open}); err != nil {
		t.Fatal(err)
	}
	p, err := pool.Open(dir, pool.OpenOptions{ObjectStores: open, ObjectSize: 1 << 20, SealInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s, v := openNoAutoCheckpoint(t, p)
	files := map[uint64][]byte{}
	write := func(from, to int) {
		for i := from; i < to; i++ {
			d := randBytes(150 << 10)
			files[writeTestFile(t, s, v, fmt.Sprint(i), d)] = d
			if err := s.Sync(); err != nil {
				t.Fatalf("fsync of file %d: %v", i, err)
			}
		}
	}
	write(0, 10)
	w.Stop()
	start := time.Now()
	write(10, 20)
	t.Logf("10 files fsynced with the server stopped in %v", time.Since(start).Round(time.Millisecond))
	deadline := time.Now().Add(30 * time.Second)
	for {
		st, err := p.Replica(1)
		if err != nil {
			t.Fatal(err)
		}
		if st.Err != nil && st.Backlog > 0 {
			t.Logf("degraded with the server stopped: backlog %d bytes, %v", st.Backlog, st.Err)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica not degraded 30 s after the server stopped: %+v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
	w.Start()
	waitComplete(t, p, 1)
	ck, err := s.Checkpoint("before the disaster")
	if err != nil {
		t.Fatal(err)
	}
	st := waitCaughtUp(t, p, 1, ck.Seq)
	t.Logf("caught up after the restart: %+v", st)
	checkFiles(t, s, v, files)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	importFromBucket(t, root, url, open, objects, files)
}

// TestAsyncReplicaRepackSeaweed: repack reclaims an asynchronous
// replica's objects in a real bucket (SeaweedFS on 127.0.0.1): files
// written and most deleted, the replica caught up, repack moves the
// live records of its mostly dead objects to new objects and deletes
// the old ones once the checkpoint naming the moved records is in the
// bucket; the bucket then holds fewer objects and fewer bytes, and the
// pool imported from the bucket alone (host lost) reads every kept file,
// with Check and fsck clean.
func TestAsyncReplicaRepackSeaweed(t *testing.T) {
	endpoint := objstoretest.StartSeaweed(t)
	objstoretest.IsolateCredentials(t, "snapfs", "snapfs-secret")
	url := fmt.Sprintf("s3://snapfs-replicas/repack-%d", time.Now().UnixNano())
	objects := map[string]objstore.Config{url: {URL: url, Endpoint: endpoint, Addressing: "path"}}
	open := func(c objstore.Config) (objstore.Store, error) { return objstore.Open(context.Background(), c) }
	root := t.TempDir()
	disk := filepath.Join(root, "disk")
	if err := os.Mkdir(disk, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "pool")
	if err := pool.Create(dir, pool.CreateOptions{Members: []string{disk, url}, Domains: []string{"local", ""}, Copies: 1,
		Objects: objects, Async: map[string]bool{url: true}, ObjectStores: open}); err != nil {
		t.Fatal(err)
	}
	p, err := pool.Open(dir, pool.OpenOptions{ObjectStores: open, ObjectSize: 1 << 20, SealInterval: 50 * time.Millisecond, MaxPackSize: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	s, v := openNoAutoCheckpoint(t, p)
	kept := fillAndThin(t, s, v, 40, 4)
	waitComplete(t, p, 1)
	ck, err := s.Checkpoint("before the repack")
	if err != nil {
		t.Fatal(err)
	}
	waitCaughtUp(t, p, 1, ck.Seq)
	st, err := objstore.Open(context.Background(), objects[url])
	if err != nil {
		t.Fatal(err)
	}
	bucketPacks := func() (n int, bytes int64) {
		infos, err := st.List(context.Background(), "packs/")
		if err != nil {
			t.Fatal(err)
		}
		for _, in := range infos {
			bytes += in.Size
		}
		return len(infos), bytes
	}
	n0, b0 := bucketPacks()
	r, err := s.Repack(RepackOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n1, b1 := bucketPacks()
	t.Logf("repack %+v: bucket objects %d (%d bytes) -> %d (%d bytes)", r, n0, b0, n1, b1)
	if len(r.Kept) != 0 || n1 >= n0 || b1 >= b0 {
		t.Fatalf("the replica's objects were not reclaimed: %d -> %d objects, %d -> %d bytes, kept %v", n0, n1, b0, b1, r.Kept)
	}
	checkFiles(t, s, v, kept)
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	importFromBucket(t, root, url, open, objects, kept)
}
