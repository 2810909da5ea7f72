package fs

import (
	"fmt"
	"testing"
)

// TestReaddirLargeDirectory lists a directory bigger than one store batch:
// every name exactly once.
func TestReaddirLargeDirectory(t *testing.T) {
	r, st, v := testRoot(t, MountOptions{})
	const n = 3*readdirBatch + 17
	for i := 0; i < n; i++ {
		if _, err := st.Mknod(v, r.ino, fmt.Sprintf("zerrors_linux_%d.go", i), 0o644, 0, 0, 0); err != nil {
			t.Fatal(err)
		}
	}
	seen := map[string]int{}
	for _, name := range listRoot(t, r) {
		seen[name]++
	}
	if len(seen) != n {
		t.Fatalf("%d distinct names, want %d", len(seen), n)
	}
	for name, c := range seen {
		if c != 1 {
			t.Fatalf("%q listed %d times", name, c)
		}
	}
}
