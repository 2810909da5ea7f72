package store

import (
	"fmt"
	"testing"
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
