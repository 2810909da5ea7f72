package fs

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"

	"github.com/snapfs/snapfs/snap"
	"github.com/snapfs/snapfs/store"
	"github.com/snapfs/snapfs/store/storetest"
)

// mountForTest mounts the test store's volume through FUSE in this
// process. Without FUSE the test is skipped, or fails when
// SNAPFS_REQUIRE_FUSE=1 or CI=true.
func mountForTest(t *testing.T) (string, *rootNode) {
	t.Helper()
	st, v := storetest.New(t, 1, store.Options{})
	t.Cleanup(func() { snap.Release(st) })
	root, opts, err := NewRoot(st, v, MountOptions{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	srv, err := gofs.Mount(dir, root, opts)
	if err != nil {
		if os.Getenv("SNAPFS_REQUIRE_FUSE") == "1" || os.Getenv("CI") == "true" {
			t.Fatalf("FUSE is required (SNAPFS_REQUIRE_FUSE=1 or CI=true) but cannot mount: %v", err)
		}
		t.Skipf("skipping, FUSE cannot mount here: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Unmount(); err != nil {
			t.Errorf("unmount: %v", err)
		}
	})
	return dir, root.(*rootNode)
}

// TestKernelInodeBudget creates 3,000 files in a mount whose budget is
// 500 file inodes and checks that the kernel forgets the older ones (the
// directory's go-fuse children shrink to about the budget), and that
// every file is still there, found by a fresh lookup.
func TestKernelInodeBudget(t *testing.T) {
	defer func(n int) { kernelInodeBudget = n }(kernelInodeBudget)
	kernelInodeBudget = 500
	dir, root := mountForTest(t)
	sub := filepath.Join(dir, "d")
	if err := os.Mkdir(sub, 0o755); err != nil {
		t.Fatal(err)
	}
	const n = 3000
	for i := range n {
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%04d", i)), []byte{byte(i)}, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	d := root.EmbeddedInode().GetChild("d")
	if d == nil {
		t.Fatal("directory d unknown to go-fuse")
	}
	// The kernel's FORGETs come asynchronously after the invalidations.
	var kept int
	for deadline := time.Now().Add(10 * time.Second); ; {
		kept = len(d.Children())
		if kept <= kernelInodeBudget+50 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Logf("go-fuse holds %d of the %d files", kept, n)
	if kept > kernelInodeBudget+50 {
		t.Fatalf("go-fuse still holds %d of %d files with a budget of %d", kept, n, kernelInodeBudget)
	}
	for i := range n {
		b, err := os.ReadFile(filepath.Join(sub, fmt.Sprintf("f%04d", i)))
		if err != nil || len(b) != 1 || b[0] != byte(i) {
			t.Fatalf("f%04d after its name was dropped: %q, %v", i, b, err)
		}
	}
	ents, err := os.ReadDir(sub)
	if err != nil || len(ents) != n {
		t.Fatalf("readdir: %d entries, %v; want %d", len(ents), err, n)
	}
}
