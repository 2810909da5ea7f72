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

// TestObjectMemberRemoveSeaweed removes a member in a real S3 service
// (SeaweedFS on 127.0.0.1, through objstore.Open) from a pool of copies 2
// over two directories and the bucket: every record moves to the
// directories, the bucket's prefix is left empty (packs, checkpoints and
// member.json deleted), and the files read back with Check and fsck
// clean. It fails, never skips, under SNAPFS_REQUIRE_FUSE=1 or CI=true
// when the weed binary is missing.
func TestObjectMemberRemoveSeaweed(t *testing.T) {
	endpoint := objstoretest.StartSeaweed(t)
	objstoretest.IsolateCredentials(t, "snapfs", "snapfs-secret")
	url := fmt.Sprintf("s3://snapfs-members/remove-%d", time.Now().UnixNano())
	cfg := objstore.Config{URL: url, Endpoint: endpoint, Addressing: "path"}
	objects := map[string]objstore.Config{url: cfg}

	root := t.TempDir()
	var members []string
	for _, d := range []string{"disk1", "disk2"} {
		members = append(members, filepath.Join(root, d))
		if err := os.Mkdir(members[len(members)-1], 0o755); err != nil {
			t.Fatal(err)
		}
	}
	dir := filepath.Join(root, "pool")
	if err := pool.Create(dir, pool.CreateOptions{Members: append(members, url), Domains: []string{"d1", "d2", ""}, Copies: 2, Objects: objects}); err != nil {
		t.Fatal(err)
	}
	p, err := pool.Open(dir, pool.OpenOptions{ObjectSize: 1 << 20, SealInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	s, v := openTestStoreOn(t, p)
	defer s.Close()
	files := fillAndThin(t, s, v, 16, 2)
	if _, err := s.Checkpoint("before the removal"); err != nil {
		t.Fatal(err)
	}
	st, err := objstore.Open(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if keys := bucketKeys(t, st); len(keys) == 0 {
		t.Fatal("nothing in the bucket before the removal")
	}
	r, err := s.RemoveMember(url, RemoveOptions{})
	if err != nil || !r.Removed || r.Moved+r.Dropped == 0 {
		t.Fatalf("remove: %+v, %v", r, err)
	}
	t.Logf("remove-member %s: %+v", url, r)
	if keys := bucketKeys(t, st); len(keys) != 0 {
		t.Fatalf("the bucket still holds %v", keys)
	}
	checkFiles(t, s, v, files)
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if fr, err := s.Fsck(FsckOptions{}); err != nil || len(fr.Problems) != 0 {
		t.Fatalf("fsck: %v %v", fr.Problems, err)
	}
}
