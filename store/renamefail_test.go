package store

import (
	"bytes"
	"syscall"
	"testing"
)

// TestFailedRenameKeepsUnflushedWrites: a rename that fails (over a
// directory, a directory over a file, over a non-empty directory, into
// itself) must leave the file it named as it was, including writes not
// yet flushed. The failed rename used to drop the cached record, so a file
// just written past its first chunk read back as empty (found by
// TestDiffModel, seed 6).
func TestFailedRenameKeepsUnflushedWrites(t *testing.T) {
	for _, size := range []int{1000, 100000, 134473, 600000} {
		s, v := NewTestStore(t, 2, Options{})
		data := bytes.Repeat([]byte{'q'}, size)
		_, h, err := s.Create(v, RootIno, "a", 0o644, 0, 0, syscall.O_RDWR)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.Write(data, 808); err != nil {
			t.Fatal(err)
		}
		if err := h.Release(); err != nil {
			t.Fatal(err)
		}
		d, err := s.Mkdir(v, RootIno, "d", 0o755, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.Mkdir(v, d.Ino, "sub", 0o755, 0, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Mkdir(v, RootIno, "e", 0o755, 0, 0); err != nil {
			t.Fatal(err)
		}
		fails := []struct {
			from, to string
			fromDir  uint64
			toDir    uint64
			want     error
		}{
			{"a", "d", RootIno, RootIno, ErrIsDir},
			{"d", "a", RootIno, RootIno, ErrNotDir},
			{"e", "d", RootIno, RootIno, ErrNotEmpty},
			{"d", "x", RootIno, d.Ino, ErrInvalid},
		}
		for _, f := range fails {
			if err := s.Rename(v, f.fromDir, f.from, f.toDir, f.to, 0); !isErr(err, f.want) {
				t.Fatalf("size %d: rename %s -> %s: %v, want %v", size, f.from, f.to, err, f.want)
			}
			a, err := s.Lookup(v, RootIno, "a")
			if err != nil {
				t.Fatal(err)
			}
			if a.Size != uint64(size+808) {
				t.Fatalf("size %d: after a failed rename %s -> %s, a has size %d, want %d", size, f.from, f.to, a.Size, size+808)
			}
		}
		h, err = s.Open(v, mustLookup(t, s, v, "a"), syscall.O_RDONLY)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, size+808)
		n, err := h.Read(buf, 0)
		h.Release()
		if err != nil || n != size+808 || !bytes.Equal(buf[808:n], data) {
			t.Fatalf("size %d: read back %d bytes, %v", size, n, err)
		}
	}
}

func mustLookup(t *testing.T, s *Store, v View, name string) uint64 {
	t.Helper()
	a, err := s.Lookup(v, RootIno, name)
	if err != nil {
		t.Fatal(err)
	}
	return a.Ino
}
