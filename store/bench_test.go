package store

import (
	"encoding/binary"
	"fmt"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/snapfs/snapfs/pool"
)

// The engine's cost of namespace operations without FUSE (profiling aids;
// performance claims come from bench/).

func benchDir(b *testing.B) (*Store, View, uint64) {
	s, v := NewTestStore(b, 1, Options{})
	d, err := s.Mkdir(v, RootIno, "d", 0o755, 0, 0)
	if err != nil {
		b.Fatal(err)
	}
	return s, v, d.Ino
}

func BenchmarkCreate(b *testing.B) {
	s, v, d := benchDir(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Mknod(v, d, fmt.Sprintf("f%d", i), 0o644, 0, 0, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnlink(b *testing.B) {
	s, v, d := benchDir(b)
	for i := 0; i < b.N; i++ {
		if _, err := s.Mknod(v, d, fmt.Sprintf("f%d", i), 0o644, 0, 0, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.Unlink(v, d, fmt.Sprintf("f%d", i)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	s, v, d := benchDir(b)
	for i := 0; i < 1000; i++ {
		if _, err := s.Mknod(v, d, fmt.Sprintf("f%d", i), 0o644, 0, 0, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Lookup(v, d, fmt.Sprintf("f%d", i%1000)); err != nil {
			b.Fatal(err)
		}
	}
}

// benchMemStore opens a store whose members and metadata live in memory, so
// that a benchmark of the write path measures the engine, not fdatasync.
func benchMemStore(b *testing.B) (*Store, View) {
	fsys := pool.NewMemFS()
	if err := fsys.MkdirAll("/m0", 0o755); err != nil {
		b.Fatal(err)
	}
	if err := pool.Create("/pool", pool.CreateOptions{Members: []string{"/m0"}, FS: fsys}); err != nil {
		b.Fatal(err)
	}
	p, err := pool.Open("/pool", pool.OpenOptions{FS: fsys})
	if err != nil {
		b.Fatal(err)
	}
	s, err := Open(p, Options{PebbleFS: vfs.NewMem()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := s.Close(); err != nil {
			b.Error(err)
		}
		p.Close()
	})
	if _, err := s.CreateVolume("vol", VolumeOptions{}); err != nil {
		b.Fatal(err)
	}
	v, err := s.LiveView("vol")
	if err != nil {
		b.Fatal(err)
	}
	return s, v
}

// benchOverwrite rewrites the chunks of one 16-chunk file round-robin with
// distinct content, committing each chunk as a flush does; with pinEvery > 0
// a snapshot is taken every pinEvery writes, so the overwrites after it
// write new versions and deadlist the old ones.
func benchOverwrite(b *testing.B, pinEvery int) {
	s, v := benchMemStore(b)
	_, h, err := s.Create(v, RootIno, "f", 0o644, 0, 0, syscall.O_RDWR)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Release()
	const cs = 128 << 10
	buf := make([]byte, cs)
	b.SetBytes(cs)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if pinEvery > 0 && i%pinEvery == 0 {
			if _, _, err := s.PinEpoch(v.Lineage, fmt.Sprintf("s%d", i), nil); err != nil {
				b.Fatal(err)
			}
		}
		binary.LittleEndian.PutUint64(buf, uint64(i+1)) // distinct chunks: no dedup
		if _, err := h.Write(buf, int64(i%16)*cs); err != nil {
			b.Fatal(err)
		}
		if err := s.flushInode(h.st, true); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOverwrite(b *testing.B)       { benchOverwrite(b, 0) }
func BenchmarkOverwritePinned(b *testing.B) { benchOverwrite(b, 16) }

// BenchmarkOverwriteInline rewrites a small file kept in its inode record.
func BenchmarkOverwriteInline(b *testing.B) {
	s, v := benchMemStore(b)
	_, h, err := s.Create(v, RootIno, "f", 0o644, 0, 0, syscall.O_RDWR)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Release()
	buf := make([]byte, 1000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		binary.LittleEndian.PutUint64(buf, uint64(i+1))
		if _, err := h.Write(buf, 0); err != nil {
			b.Fatal(err)
		}
		if err := s.flushInode(h.st, true); err != nil {
			b.Fatal(err)
		}
	}
}
