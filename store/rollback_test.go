package store

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// readHandle reads the whole of an open file.
func readHandle(t *testing.T, h *Handle) []byte {
	t.Helper()
	a, err := h.Attr()
	if err != nil {
		t.Fatalf("attr: %v", err)
	}
	buf := make([]byte, a.Size)
	n, err := h.Read(buf, 0)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return buf[:n]
}

func lookupIno(t *testing.T, s *Store, v View, name string) uint64 {
	t.Helper()
	a, err := s.Lookup(v, RootIno, name)
	if err != nil {
		t.Fatalf("lookup %s: %v", name, err)
	}
	return a.Ino
}

// TestRollbackOpenHandles: handles open across a rollback. A file that
// exists in the snapshot reads the snapshot's bytes (its unflushed writes
// are discarded) and takes new writes; a file created after the snapshot
// answers ErrStale; a file unlinked after the snapshot is linked again and
// survives its last close (DESIGN-NOTES 5c).
func TestRollbackOpenHandles(t *testing.T) {
	s, v := NewTestStore(t, 1, Options{})
	old := bytes.Repeat([]byte("old!"), 50000)
	for _, n := range []string{"kept", "unlinked"} {
		if err := writeFile(s, v, RootIno, n, old); err != nil {
			t.Fatal(err)
		}
	}
	snap, _, err := s.PinEpoch(v.Lineage, "s1", nil)
	if err != nil {
		t.Fatal(err)
	}
	kept, err := s.Open(v, lookupIno(t, s, v, "kept"), syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	defer kept.Release()
	if _, err := kept.Write([]byte("dirty, never flushed"), 10); err != nil {
		t.Fatal(err)
	}
	unl, err := s.Open(v, lookupIno(t, s, v, "unlinked"), syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Unlink(v, RootIno, "unlinked"); err != nil {
		t.Fatal(err)
	}
	_, fresh, err := s.Create(v, RootIno, "fresh", 0o644, 0, 0, syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Release()
	if _, err := fresh.Write([]byte("new"), 0); err != nil {
		t.Fatal(err)
	}

	if _, err := s.RollbackLineage(snap.Lineage, snap.Epoch); err != nil {
		t.Fatal(err)
	}

	if got := readHandle(t, kept); !bytes.Equal(got, old) {
		t.Fatalf("kept after rollback: %d bytes, want the snapshot's %d", len(got), len(old))
	}
	if _, err := kept.Write([]byte("after"), 0); err != nil {
		t.Fatalf("write after rollback: %v", err)
	}
	if _, err := fresh.Write([]byte("x"), 0); !errors.Is(err, ErrStale) {
		t.Fatalf("write to a file the rollback removed: %v, want ErrStale", err)
	}
	if _, err := fresh.Read(make([]byte, 3), 0); !errors.Is(err, ErrStale) {
		t.Fatalf("read of a file the rollback removed: %v, want ErrStale", err)
	}
	if _, err := s.Lookup(v, RootIno, "fresh"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("lookup fresh: %v, want ErrNotFound", err)
	}
	if err := unl.Release(); err != nil {
		t.Fatal(err)
	}
	h, err := s.Open(v, lookupIno(t, s, v, "unlinked"), syscall.O_RDONLY)
	if err != nil {
		t.Fatalf("the file unlinked after the snapshot is back: %v", err)
	}
	if got := readHandle(t, h); !bytes.Equal(got, old) {
		t.Fatalf("unlinked file after rollback and close: %d bytes", len(got))
	}
	h.Release()
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestRollbackToOrphan: a file that was open and unlinked when the snapshot
// was taken has no link at the snapshot; the rollback brings its record
// back as an orphan, which goes at once since nothing holds it open.
func TestRollbackToOrphan(t *testing.T) {
	s, v := NewTestStore(t, 1, Options{})
	if err := writeFile(s, v, RootIno, "o", bytes.Repeat([]byte("o"), 300000)); err != nil {
		t.Fatal(err)
	}
	h, err := s.Open(v, lookupIno(t, s, v, "o"), syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Unlink(v, RootIno, "o"); err != nil {
		t.Fatal(err)
	}
	snap, _, err := s.PinEpoch(v.Lineage, "s1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Release(); err != nil { // deletes it in the live view
		t.Fatal(err)
	}
	if _, err := s.RollbackLineage(snap.Lineage, snap.Epoch); err != nil {
		t.Fatal(err)
	}
	if err := s.UnpinEpoch(snap.Lineage, snap.Epoch, "s1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, _, chunks, _ := s.PoolUsage(); chunks != 0 {
		t.Fatalf("%d chunks left: the orphan brought back by the rollback leaked", chunks)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestRollbackBranch: a branch rolls back to its own snapshot; what it
// inherited and its origin are untouched.
func TestRollbackBranch(t *testing.T) {
	s, v := NewTestStore(t, 1, Options{})
	base := bytes.Repeat([]byte("base"), 40000)
	if err := writeFile(s, v, RootIno, "f", base); err != nil {
		t.Fatal(err)
	}
	origin, _, err := s.PinEpoch(v.Lineage, "origin", nil)
	if err != nil {
		t.Fatal(err)
	}
	br, err := s.ForkLineage(origin, "br", nil)
	if err != nil {
		t.Fatal(err)
	}
	mid := bytes.Repeat([]byte("mid!"), 40000)
	if err := writeFile(s, br, RootIno, "f", mid); err != nil {
		t.Fatal(err)
	}
	bs, _, err := s.PinEpoch(br.Lineage, "bs", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFile(s, br, RootIno, "f", bytes.Repeat([]byte("late"), 40000)); err != nil {
		t.Fatal(err)
	}
	if err := s.Unlink(v, RootIno, "f"); err != nil { // the origin's own change
		t.Fatal(err)
	}
	if _, err := s.RollbackLineage(bs.Lineage, bs.Epoch); err != nil {
		t.Fatal(err)
	}
	h, err := s.Open(br, lookupIno(t, s, br, "f"), syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	if got := readHandle(t, h); !bytes.Equal(got, mid) {
		t.Fatalf("branch after rollback: %q...", got[:8])
	}
	h.Release()
	if _, err := s.Lookup(v, RootIno, "f"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("the origin's unlink was undone: %v", err)
	}
	h, err = s.Open(origin, lookupIno(t, s, origin, "f"), syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	if got := readHandle(t, h); !bytes.Equal(got, base) {
		t.Fatalf("origin snapshot changed: %q...", got[:8])
	}
	h.Release()
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestRollbackRefusals: a rollback to an unpinned epoch, or past a newer
// pin, changes nothing.
func TestRollbackRefusals(t *testing.T) {
	s, v := NewTestStore(t, 1, Options{})
	if err := writeFile(s, v, RootIno, "f", []byte("one")); err != nil {
		t.Fatal(err)
	}
	s1, _, err := s.PinEpoch(v.Lineage, "s1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := writeFile(s, v, RootIno, "g", []byte("two")); err != nil {
		t.Fatal(err)
	}
	s2, _, err := s.PinEpoch(v.Lineage, "s2", nil)
	if err != nil {
		t.Fatal(err)
	}
	br, err := s.ForkLineage(s2, "br", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name string
		lin  uint32
		e    uint64
		want error
	}{
		{"newer pin", v.Lineage, s1.Epoch, ErrBusy},
		{"not pinned", v.Lineage, s2.Epoch + 1, ErrNotFound},
		{"no such lineage", 999, 1, ErrStale},
	} {
		if _, err := s.RollbackLineage(c.lin, c.e); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := s.Lookup(v, RootIno, "g"); err != nil {
		t.Fatalf("a refused rollback changed the volume: %v", err)
	}
	if err := s.DestroyLineage(br.Lineage, "br"); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestRollbackUnderWriters: writers of other files and a flusher keep
// running while the volume is rolled back again and again; afterwards the
// store is consistent (refcounts, counters, links) and the snapshot's file
// reads as it was.
func TestRollbackUnderWriters(t *testing.T) {
	s, v := NewTestStore(t, 2, Options{DirtyLimit: 1 << 20})
	want := bytes.Repeat([]byte("snap"), 100000)
	if err := writeFile(s, v, RootIno, "base", want); err != nil {
		t.Fatal(err)
	}
	snap, _, err := s.PinEpoch(v.Lineage, "s1", nil)
	if err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 3; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name := fmt.Sprintf("w%d-%d", w, i%5)
				// Errors are expected: a rollback may remove the file
				// under the writer (ErrStale, ErrNotFound).
				_ = writeFile(s, v, RootIno, name, bytes.Repeat([]byte{byte('a' + w)}, 150000+i))
				_ = writeFile(s, v, RootIno, "base", []byte("overwritten"))
			}
		}(w)
	}
	for i := 0; i < 20; i++ {
		if _, err := s.RollbackLineage(snap.Lineage, snap.Epoch); err != nil {
			t.Fatalf("rollback %d: %v", i, err)
		}
	}
	close(stop)
	wg.Wait()
	if _, err := s.RollbackLineage(snap.Lineage, snap.Epoch); err != nil {
		t.Fatal(err)
	}
	h, err := s.Open(v, lookupIno(t, s, v, "base"), syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	if got := readHandle(t, h); !bytes.Equal(got, want) {
		t.Fatalf("base after the last rollback: %d bytes", len(got))
	}
	h.Release()
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if err := s.UnpinEpoch(snap.Lineage, snap.Epoch, "s1"); err != nil {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestRollbackFromTables: with the versions in compacted sstables, whose
// blocks carry the epoch interval property, the scan for versions born
// after the target skips the old blocks and still finds every new one.
func TestRollbackFromTables(t *testing.T) {
	s, v := NewTestStore(t, 1, Options{})
	d, err := s.Mkdir(v, RootIno, "d", 0o755, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5000; i++ {
		if _, err := s.Mknod(v, d.Ino, fmt.Sprintf("old%d", i), 0o644, 0, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	snap, _, err := s.PinEpoch(v.Lineage, "s1", nil)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 50; i++ {
		if _, err := s.Mknod(v, d.Ino, fmt.Sprintf("new%d", i), 0o644, 0, 0, 0); err != nil {
			t.Fatal(err)
		}
		if err := s.Unlink(v, d.Ino, fmt.Sprintf("old%d", i*97)); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.db.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := s.db.Compact(context.Background(), []byte{0}, []byte{0xff}, true); err != nil {
		t.Fatal(err)
	}
	tables, err := s.db.SSTables(pebble.WithProperties())
	if err != nil {
		t.Fatal(err)
	}
	withProp := 0
	for _, level := range tables {
		for _, tb := range level {
			if _, ok := tb.Properties.UserProperties[epochPropName]; ok {
				withProp++
			}
		}
	}
	if withProp == 0 {
		t.Fatalf("no sstable carries the %s property", epochPropName)
	}
	st, err := s.RollbackLineage(snap.Lineage, snap.Epoch)
	if err != nil {
		t.Fatal(err)
	}
	// 50 new names and inodes, 50 tombstoned names and their inodes' new
	// versions, and the directory's record.
	if st.Versions != 201 {
		t.Fatalf("rollback found %d versions born after the snapshot, want 201", st.Versions)
	}
	var n int
	if err := s.ReadDir(v, d.Ino, 0, func(e DirEntry) bool { n++; return true }); err != nil {
		t.Fatal(err)
	}
	if n != 5000 {
		t.Fatalf("%d entries after rollback, want 5000", n)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}
