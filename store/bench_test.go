package store

import (
	"fmt"
	"testing"
)

// BenchmarkCreateUnlink measures the engine's cost of a create and an
// unlink, without FUSE (profiling aid; performance claims come from bench/).
func BenchmarkCreateUnlink(b *testing.B) {
	s, v := NewTestStore(b, 1, Options{})
	d, err := s.Mkdir(v, RootIno, "d", 0o755, 0, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		name := fmt.Sprintf("f%d", i)
		if _, err := s.Mknod(v, d.Ino, name, 0o644, 0, 0, 0); err != nil {
			b.Fatal(err)
		}
	}
	for i := 0; i < b.N; i++ {
		if err := s.Unlink(v, d.Ino, fmt.Sprintf("f%d", i)); err != nil {
			b.Fatal(err)
		}
	}
}
