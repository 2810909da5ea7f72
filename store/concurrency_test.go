package store

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"

	"github.com/snapfs/snapfs/pool/pooltest"
)

// TestConcurrentDedupAndSnapshots runs writers of identical and distinct
// content, deleters, renamers, snapshot creators and destroyers on one
// volume at once (DESIGN-NOTES 4 and 6), then checks every invariant and
// that every surviving file reads back what was last written to it.
func TestConcurrentDedupAndSnapshots(t *testing.T) {
	s, v := NewTestStore(t, 2, Options{})
	const writers, files, rounds = 4, 8, 6
	same := bytes.Repeat([]byte("dedup!"), 40000) // shared by every writer: dedup hits and races
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			dir, err := s.Mkdir(v, RootIno, fmt.Sprintf("w%d", w), 0o755, 0, 0)
			if err != nil {
				errs <- err
				return
			}
			for r := 0; r < rounds; r++ {
				for f := 0; f < files; f++ {
					name := fmt.Sprintf("f%d", f)
					data := same
					if f%2 == 1 {
						data = bytes.Repeat([]byte{byte(w), byte(f), byte(r)}, 50000)
					}
					if err := writeFile(s, v, dir.Ino, name, data); err != nil {
						errs <- fmt.Errorf("writer %d: %w", w, err)
						return
					}
				}
				if err := s.Unlink(v, dir.Ino, "f0"); err != nil {
					errs <- err
					return
				}
				if err := s.Rename(v, dir.Ino, "f1", dir.Ino, "f0", 0); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		var pinned []View
		for i := 0; i < 12; i++ {
			sv, _, err := s.PinEpoch(v.Lineage, fmt.Sprintf("s%d", i), nil)
			if err != nil {
				errs <- err
				return
			}
			pinned = append(pinned, sv)
			if i%3 == 2 { // destroy a middle one, then the newest
				for _, j := range []int{len(pinned) - 2, len(pinned) - 2} {
					d := pinned[j]
					pinned = append(pinned[:j], pinned[j+1:]...)
					if err := s.UnpinEpoch(d.Lineage, d.Epoch, fmt.Sprintf("s%d", indexOfPin(d, i, pinned))); err != nil {
						errs <- err
						return
					}
				}
			}
		}
	}()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	for w := 0; w < writers; w++ {
		d, err := s.Lookup(v, RootIno, fmt.Sprintf("w%d", w))
		if err != nil {
			t.Fatal(err)
		}
		got, err := readFile(s, v, d.Ino, "f0")
		if err != nil {
			t.Fatal(err)
		}
		want := bytes.Repeat([]byte{byte(w), 1, rounds - 1}, 50000)
		if !bytes.Equal(got, want) {
			t.Fatalf("w%d/f0: %d bytes, not the last round's f1", w, len(got))
		}
	}
}

// indexOfPin recovers the holder name of a pinned view: pins are named by
// the order they were taken, which equals their epoch order here.
func indexOfPin(d View, _ int, _ []View) int { return int(d.Epoch) - 1 }

func writeFile(s *Store, v View, dir uint64, name string, data []byte) error {
	_, h, err := s.Create(v, dir, name, 0o644, 0, 0, syscall.O_RDWR|syscall.O_TRUNC)
	if err != nil {
		return err
	}
	if _, err := h.Write(data, 0); err != nil {
		h.Release()
		return err
	}
	if err := h.Flush(); err != nil {
		h.Release()
		return err
	}
	return h.Release()
}

func readFile(s *Store, v View, dir uint64, name string) ([]byte, error) {
	a, err := s.Lookup(v, dir, name)
	if err != nil {
		return nil, err
	}
	h, err := s.Open(v, a.Ino, syscall.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer h.Release()
	buf := make([]byte, a.Size)
	n, err := h.Read(buf, 0)
	return buf[:n], err
}

// TestUnlinkedOpenFileSurvivesUntilClose: an unlinked file stays readable
// through its open handle; a store closed with it still open deletes it at
// the next open (its orphan record), and Check is clean (DESIGN-NOTES 14).
func TestUnlinkedOpenFileSurvivesUntilClose(t *testing.T) {
	s, v := NewTestStore(t, 1, Options{})
	data := bytes.Repeat([]byte("orphan"), 30000)
	if err := writeFile(s, v, RootIno, "f", data); err != nil {
		t.Fatal(err)
	}
	a, _ := s.Lookup(v, RootIno, "f")
	h, err := s.Open(v, a.Ino, syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Unlink(v, RootIno, "f"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(data))
	if n, err := h.Read(buf, 0); err != nil || !bytes.Equal(buf[:n], data) {
		t.Fatalf("read after unlink: %d %v", n, err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, _, chunks, _ := s.PoolUsage(); chunks == 0 {
		t.Fatal("the open unlinked file's chunks are gone")
	}
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, _, chunks, _ := s.PoolUsage(); chunks != 0 {
		t.Fatalf("%d chunks left after the last close", chunks)
	}
}

// TestOrphanDeletedAtNextOpen: a file unlinked while open when the store
// stops (a daemon killed, or closed with the handle open) is deleted when
// the store next opens.
func TestOrphanDeletedAtNextOpen(t *testing.T) {
	p := pooltest.New(t, 1)
	s, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateVolume("vol", VolumeOptions{}); err != nil {
		t.Fatal(err)
	}
	v, _ := s.LiveView("vol")
	if err := writeFile(s, v, RootIno, "f", bytes.Repeat([]byte("x"), 300000)); err != nil {
		t.Fatal(err)
	}
	a, _ := s.Lookup(v, RootIno, "f")
	if _, err := s.Open(v, a.Ino, syscall.O_RDONLY); err != nil { // never released
		t.Fatal(err)
	}
	if err := s.Unlink(v, RootIno, "f"); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, _, chunks, _ := s.PoolUsage(); chunks != 0 {
		t.Fatalf("%d chunks left: the orphan was not deleted", chunks)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestDestroyWhileOpen is DESIGN-NOTES 9: a snapshot destroyed while a file
// of it is open stays readable through that handle, is gone (ErrStale) for
// everything else, and its space comes back at the last close.
func TestDestroyWhileOpen(t *testing.T) {
	s, v := NewTestStore(t, 1, Options{})
	data := bytes.Repeat([]byte("snapshotted "), 30000)
	if err := writeFile(s, v, RootIno, "f", data); err != nil {
		t.Fatal(err)
	}
	sv, _, err := s.PinEpoch(v.Lineage, "s1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Unlink(v, RootIno, "f"); err != nil {
		t.Fatal(err)
	}
	a, err := s.Lookup(sv, RootIno, "f")
	if err != nil {
		t.Fatal(err)
	}
	h, err := s.Open(sv, a.Ino, syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.UnpinEpoch(sv.Lineage, sv.Epoch, "s1"); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, len(data))
	if n, err := h.Read(buf, 0); err != nil || !bytes.Equal(buf[:n], data) {
		t.Fatalf("read through the open handle after destroy: %d %v", n, err)
	}
	if _, err := s.Lookup(sv, RootIno, "f"); !errors.Is(err, ErrStale) {
		t.Fatalf("lookup in the destroyed view: %v, want ErrStale", err)
	}
	if _, _, chunks, _ := s.PoolUsage(); chunks == 0 {
		t.Fatal("data freed while open")
	}
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil { // reclaim runs in the background
		t.Fatal(err)
	}
	if _, _, chunks, _ := s.PoolUsage(); chunks != 0 {
		t.Fatalf("%d chunks left after the last close", chunks)
	}
}
