package store

import (
	"bytes"
	"errors"
	"os"
	"syscall"
	"testing"

	"github.com/zeebo/blake3"
)

// TestFileLayout: the layout of a file in every stored shape (inline,
// chunks with a hole, a short last chunk), in the live view and in a
// snapshot taken before a change; HasChunk and ReadChunk by hash; and
// WrittenSince before and after a change.
func TestFileLayout(t *testing.T) {
	s, v := NewTestStore(t, 1, Options{})
	cs := int64(128 << 10)
	write := func(name string, at map[int64][]byte) uint64 {
		_, h, err := s.Create(v, RootIno, name, syscall.S_IFREG|0o644, 0, 0, os.O_RDWR)
		if err != nil {
			t.Fatal(err)
		}
		for off, b := range at {
			if _, err := h.Write(b, off); err != nil {
				t.Fatal(err)
			}
		}
		if err := h.Fsync(false); err != nil { // FileLayout reads committed bytes
			t.Fatal(err)
		}
		if err := h.Release(); err != nil {
			t.Fatal(err)
		}
		a, _ := s.Lookup(v, RootIno, name)
		return a.Ino
	}
	full := bytes.Repeat([]byte{1}, int(cs))
	tail := []byte("tail")
	small := write("small", map[int64][]byte{0: []byte("hi")})
	sparse := write("sparse", map[int64][]byte{0: full, 2 * cs: tail})
	cases := []struct {
		name   string
		ino    uint64
		inline bool
		size   uint64
		chunks []ChunkEntry
	}{
		{"inline", small, true, 2, nil},
		{"hole in the middle, short last chunk", sparse, false, uint64(2*cs) + 4, []ChunkEntry{
			{Index: 0, Hash: blake3.Sum256(full), Length: uint32(cs)},
			{Index: 2, Hash: blake3.Sum256(tail), Length: 4}}},
	}
	for _, c := range cases {
		fl, err := s.FileLayout(v, c.ino)
		if err != nil {
			t.Fatalf("%s: %v", c.name, err)
		}
		if fl.Inline != c.inline || fl.Size != c.size || fl.ChunkSize != cs || len(fl.Chunks) != len(c.chunks) {
			t.Fatalf("%s: got %+v", c.name, fl)
		}
		for i := range c.chunks {
			if fl.Chunks[i] != c.chunks[i] {
				t.Fatalf("%s: chunk %d: got %+v want %+v", c.name, i, fl.Chunks[i], c.chunks[i])
			}
			if ok, err := s.HasChunk(c.chunks[i].Hash); err != nil || !ok {
				t.Fatalf("%s: HasChunk: %v %v", c.name, ok, err)
			}
			b, err := s.ReadChunk(c.chunks[i].Hash)
			if err != nil || blake3.Sum256(b) != c.chunks[i].Hash {
				t.Fatalf("%s: ReadChunk: %v", c.name, err)
			}
		}
	}
	if _, err := s.FileLayout(v, RootIno); !errors.Is(err, ErrInvalid) {
		t.Fatalf("layout of a directory: %v", err)
	}
	missing := blake3.Sum256([]byte("never stored"))
	if ok, _ := s.HasChunk(missing); ok {
		t.Fatal("HasChunk of a hash never stored")
	}
	if _, err := s.ReadChunk(missing); !errors.Is(err, ErrNotFound) {
		t.Fatalf("ReadChunk of a hash never stored: %v", err)
	}

	snap, _, err := s.PinEpoch(v.Lineage, "test", func(uint64) []MetaOp { return nil })
	if err != nil {
		t.Fatal(err)
	}
	if w, err := s.WrittenSince(v.Lineage, snap.Epoch); err != nil || w {
		t.Fatalf("WrittenSince right after the snapshot: %v %v", w, err)
	}
	h, _ := s.Open(v, sparse, os.O_RDWR)
	h.Write([]byte("x"), 0)
	h.Fsync(false)
	h.Release()
	if w, err := s.WrittenSince(v.Lineage, snap.Epoch); err != nil || !w {
		t.Fatalf("WrittenSince after a write: %v %v", w, err)
	}
	before, err := s.FileLayout(snap, sparse)
	if err != nil || before.Chunks[0].Hash != blake3.Sum256(full) {
		t.Fatalf("the snapshot's layout changed: %+v %v", before, err)
	}
	after, _ := s.FileLayout(v, sparse)
	if after.Chunks[0].Hash == before.Chunks[0].Hash {
		t.Fatal("the live layout did not change")
	}
	if err := s.UnpinEpoch(snap.Lineage, snap.Epoch, "test"); err != nil {
		t.Fatal(err)
	}
}

// TestChunkRefs: the reference count of a hash follows the versions that
// hold it: one per file holding the bytes, a snapshot keeping the version
// a later write replaced, and none for bytes never stored.
func TestChunkRefs(t *testing.T) {
	s, v := NewTestStore(t, 1, Options{})
	x := bytes.Repeat([]byte{7}, 128<<10)
	y := bytes.Repeat([]byte{9}, 128<<10)
	hx, hy := blake3.Sum256(x), blake3.Sum256(y)
	write := func(name string, b []byte) {
		t.Helper()
		a, err := s.Lookup(v, RootIno, name)
		var h *Handle
		if errors.Is(err, ErrNotFound) {
			_, h, err = s.Create(v, RootIno, name, syscall.S_IFREG|0o644, 0, 0, os.O_RDWR)
		} else if err == nil {
			h, err = s.Open(v, a.Ino, os.O_RDWR)
		}
		if err != nil {
			t.Fatal(err)
		}
		defer h.Release()
		if _, err := h.Write(b, 0); err != nil {
			t.Fatal(err)
		}
		if err := h.Fsync(false); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		what   string
		do     func()
		rx, ry uint64
	}{
		{"nothing stored", func() {}, 0, 0},
		{"one file holds x", func() { write("a", x) }, 1, 0},
		{"a second file holds x", func() { write("b", x) }, 2, 0},
		{"a snapshot, then a rewritten with y", func() {
			if _, _, err := s.PinEpoch(v.Lineage, "test", func(uint64) []MetaOp { return nil }); err != nil {
				t.Fatal(err)
			}
			write("a", y)
		}, 2, 1},
		{"b rewritten with y too", func() { write("b", y) }, 2, 2},
	}
	for _, st := range steps {
		st.do()
		gx, err := s.ChunkRefs(hx)
		if err != nil {
			t.Fatal(err)
		}
		gy, err := s.ChunkRefs(hy)
		if err != nil {
			t.Fatal(err)
		}
		if gx != st.rx || gy != st.ry {
			t.Fatalf("%s: refs of x, y = %d, %d, want %d, %d", st.what, gx, gy, st.rx, st.ry)
		}
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}
