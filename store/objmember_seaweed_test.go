package store

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/snapfs/snapfs/objstore"
	"github.com/snapfs/snapfs/objstore/objstoretest"
	"github.com/snapfs/snapfs/pool"
)

// TestObjectMemberSeaweed runs a pool over a directory and a member in a
// real S3 service (SeaweedFS on 127.0.0.1, through objstore.Open, the
// default opener): files fsynced (each a Put), mostly deleted and
// repacked, a checkpoint; then the host is lost and the pool imported
// from the bucket alone reads every file back, with Check and fsck
// clean. It fails, never skips, under SNAPFS_REQUIRE_FUSE=1 or CI=true
// when the weed binary is missing.
func TestObjectMemberSeaweed(t *testing.T) {
	endpoint := objstoretest.StartSeaweed(t)
	objstoretest.IsolateCredentials(t, "snapfs", "snapfs-secret")
	url := fmt.Sprintf("s3://snapfs-members/pool-%d", time.Now().UnixNano())
	objects := map[string]objstore.Config{url: {URL: url, Endpoint: endpoint, Addressing: "path"}}

	root := t.TempDir()
	disk := filepath.Join(root, "disk")
	if err := os.Mkdir(disk, 0o755); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(root, "pool")
	if err := pool.Create(dir, pool.CreateOptions{Members: []string{disk, url}, Domains: []string{"local", ""}, Copies: 2, Objects: objects}); err != nil {
		t.Fatal(err)
	}
	p, err := pool.Open(dir, pool.OpenOptions{ObjectSize: 1 << 20, SealInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	s, v := openTestStoreOn(t, p)
	files := fillAndThinOneSync(t, s, v, 24, 3)
	r, err := s.Repack(RepackOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("repack on the bucket: %+v", r)
	if r.Deleted == 0 {
		t.Fatalf("repack deleted no object: %+v", r)
	}
	checkFiles(t, s, v, files)
	if _, err := s.Checkpoint("before the disaster"); err != nil {
		t.Fatal(err)
	}
	st, err := p.Stats()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("object member: %d objects, %d bytes used, backlog %d", st.Members[1].Objects, st.Members[1].Used, st.Members[1].Backlog)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(root); err != nil { // the host is lost
		t.Fatal(err)
	}

	dir2 := filepath.Join(t.TempDir(), "rebuilt")
	res, err := pool.Import(dir2, pool.ImportOptions{Members: []string{url}, Objects: objects})
	if err != nil {
		t.Fatal(err)
	}
	p2, err := pool.Open(dir2, pool.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	rep, err := ReconcileImport(p2, Options{}, res.Restored.Info)
	if err != nil || rep.Missing != 0 {
		t.Fatalf("reconcile: %+v %v", rep, err)
	}
	s2, v2 := openNoAutoCheckpoint(t, p2)
	defer s2.Close()
	checkFiles(t, s2, v2, files)
	fresh := filepath.Join(t.TempDir(), "fresh")
	os.Mkdir(fresh, 0o755)
	if _, err := p2.AddMember(fresh, "new-host"); err != nil {
		t.Fatal(err)
	}
	if _, err := s2.RemoveMember(disk, RemoveOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s2.Check(); err != nil {
		t.Fatal(err)
	}
	if fr, err := s2.Fsck(FsckOptions{}); err != nil || len(fr.Problems) != 0 {
		t.Fatalf("fsck: %v %v", fr.Problems, err)
	}
}
