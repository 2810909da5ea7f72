package store

import (
	"bytes"
	"errors"
	"math/rand"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/snapfs/snapfs/pool"
)

// TestFailedSyncLeaksNothing: a flush whose records went to two members,
// one of which fails its fdatasync, fails (fsync returns the error); the
// records it appended on the healthy member are referenced by nothing and
// must be freed, though that member's accounted position moves past them
// (so recovery would not look at them). Reopened without the fault, fsck
// finds no leaked record, and what was fsync'd before reads back.
func TestFailedSyncLeaksNothing(t *testing.T) {
	mem := pool.NewMemFS()
	ffs := pool.NewFaultFS(mem)
	for _, m := range []string{"/m0", "/m1"} {
		if err := mem.MkdirAll(m, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := pool.Create("/pool", pool.CreateOptions{Members: []string{"/m0", "/m1"}, FS: mem, Domains: []string{"a", "b"}}); err != nil {
		t.Fatal(err)
	}
	meta := vfs.NewMem()
	open := func(fs pool.FS) (*pool.Pool, *Store) {
		p, err := pool.Open("/pool", pool.OpenOptions{FS: fs})
		if err != nil {
			t.Fatal(err)
		}
		s, err := Open(p, Options{PebbleFS: meta})
		if err != nil {
			t.Fatal(err)
		}
		return p, s
	}
	p, s := open(ffs)
	if _, err := s.CreateVolume("vol", VolumeOptions{}); err != nil {
		t.Fatal(err)
	}
	v, _ := s.LiveView("vol")
	keep := make([]byte, 1<<20)
	rand.New(rand.NewSource(1)).Read(keep)
	if err := writeFileSync(s, v, "keep", keep, true); err != nil {
		t.Fatal(err)
	}
	ffs.Inject(pool.Fault{Op: pool.OpSync, Path: "/m0/packs/", Err: syscall.EIO})
	x := make([]byte, 1<<20) // 8 chunks: 4 on each member
	rand.New(rand.NewSource(2)).Read(x)
	if err := writeFileSync(s, v, "x", x, true); !errors.Is(err, syscall.EIO) {
		t.Fatalf("fsync with a failing member sync: %v, want EIO", err)
	}
	if err := s.Unlink(v, RootIno, "x"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Logf("close after a member failed: %v", err)
	}
	p.Close()

	p, s = open(mem)
	defer p.Close()
	defer s.Close()
	r, err := s.Fsck(FsckOptions{})
	if err != nil || len(r.Problems) > 0 || r.Leaked > 0 {
		t.Fatalf("fsck after a failed sync: %v, %d leaked: %v", err, r.Leaked, r.Problems)
	}
	v, _ = s.LiveView("vol")
	if got, err := readFile(s, v, RootIno, "keep"); err != nil || !bytes.Equal(got, keep) {
		t.Fatalf("keep after a failed sync: %d bytes, %v", len(got), err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}
