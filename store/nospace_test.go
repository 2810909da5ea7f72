package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/snapfs/snapfs/pool"
)

// TestMemberFillsUp: when the members fill up, the writer gets ErrNoSpace
// from Write itself (space is reserved when a write is accepted, so nothing
// fails later in a flush), and everything already written stays readable.
func TestMemberFillsUp(t *testing.T) {
	s, v := smallPoolStore(t)
	written := map[string][]byte{}
	var full error
	for i := 0; i < 64 && full == nil; i++ {
		name := fmt.Sprintf("f%d", i)
		data := make([]byte, 1<<20) // 1 MiB of distinct chunks: no dedup
		rand.New(rand.NewSource(int64(i))).Read(data)
		_, h, err := s.Create(v, RootIno, name, 0o644, 0, 0, syscall.O_RDWR)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.Write(data, 0); err != nil {
			full = err
		} else if err := h.Fsync(false); err != nil {
			t.Fatalf("fsync after an accepted write failed: %v", err)
		} else {
			written[name] = data
		}
		if err := h.Release(); err != nil && full == nil {
			t.Fatal(err)
		}
	}
	if !errors.Is(full, ErrNoSpace) {
		t.Fatalf("filling the pool: %v, want ErrNoSpace from write", full)
	}
	if len(written) == 0 {
		t.Fatal("nothing fit before the pool was full")
	}
	for name, want := range written {
		got, err := readFile(s, v, RootIno, name)
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s after the pool filled: %d bytes, %v", name, len(got), err)
		}
	}
	// A snapshot of the full pool succeeds (it writes a few metadata keys,
	// no chunk), and so do a rollback to it and its destroy; the space of
	// a file unlinked after it comes back only once the snapshot is gone.
	sv, _, err := s.PinEpoch(v.Lineage, "full", nil)
	if err != nil {
		t.Fatalf("snapshot of a full pool: %v", err)
	}
	if _, err := s.RollbackLineage(sv.Lineage, sv.Epoch); err != nil {
		t.Fatalf("rollback on a full pool: %v", err)
	}
	for name := range written {
		if err := s.Unlink(v, RootIno, name); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.UnpinEpoch(sv.Lineage, sv.Epoch, "full"); err != nil {
		t.Fatalf("destroy a snapshot on a full pool: %v", err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	s.reclaim(true)
	if err := writeFile(s, v, RootIno, "after", bytes.Repeat([]byte("a"), 1<<20)); err != nil {
		t.Fatalf("write after the snapshot holding everything was destroyed: %v", err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// smallPoolStore opens a store with volume "vol" on a one-member pool of a
// 48 MiB in-memory file system (40 MiB usable past the slop reserve), and
// closes both at cleanup.
func smallPoolStore(t *testing.T) (*Store, View) {
	t.Helper()
	fsys := pool.NewMemFS()
	fsys.SetCapacity(48 << 20) // the slop reserve keeps 8 MiB of it back
	if err := fsys.MkdirAll("/m0", 0o755); err != nil {
		t.Fatal(err)
	}
	if err := pool.Create("/pool", pool.CreateOptions{Members: []string{"/m0"}, FS: fsys}); err != nil {
		t.Fatal(err)
	}
	p, err := pool.Open("/pool", pool.OpenOptions{FS: fsys})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	s, err := Open(p, Options{PebbleFS: vfs.NewMem()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if _, err := s.CreateVolume("vol", VolumeOptions{}); err != nil {
		t.Fatal(err)
	}
	v, _ := s.LiveView("vol")
	return s, v
}
