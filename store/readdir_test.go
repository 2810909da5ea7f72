package store

import (
	"fmt"
	"testing"
)

// TestReadDirResume lists a large directory in pages, resuming from each
// page's last cookie, after deletions and re-creations: every name exactly once.
func TestReadDirResume(t *testing.T) {
	s, v := NewTestStore(t, 1, Options{})
	d, err := s.Mkdir(v, RootIno, "d", 0o755, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	const n = 500
	for round := 0; round < 2; round++ {
		for i := 0; i < n; i++ {
			if _, err := s.Mknod(v, d.Ino, fmt.Sprintf("file_%d.go", i), 0o644, 0, 0, 0); err != nil {
				t.Fatal(err)
			}
		}
		seen := map[string]int{}
		cookie := uint64(0)
		for {
			got := 0
			err := s.ReadDir(v, d.Ino, cookie, func(e DirEntry) bool {
				seen[e.Name]++
				cookie = e.Cookie
				got++
				return got < 37
			})
			if err != nil {
				t.Fatal(err)
			}
			if got == 0 {
				break
			}
		}
		if len(seen) != n {
			t.Fatalf("round %d: %d names, want %d", round, len(seen), n)
		}
		for name, c := range seen {
			if c != 1 {
				t.Fatalf("round %d: %q listed %d times", round, name, c)
			}
		}
		for i := 0; i < n; i++ {
			if err := s.Unlink(v, d.Ino, fmt.Sprintf("file_%d.go", i)); err != nil {
				t.Fatal(err)
			}
		}
	}
}
