package main

import (
	"os"
	"path/filepath"
	"testing"
)

func TestPoolOfSource(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "pool")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "pool.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, ds := range []string{"vol", "vol/b", "vol/b/c/d"} {
		if got := poolOfSource(mountSource(dir, ds)); got != dir {
			t.Errorf("poolOfSource(%s) = %s, want %s", mountSource(dir, ds), got, dir)
		}
	}
	// A pool that is gone: the source's parent, as before branches.
	gone := filepath.Join(base, "gone")
	if got := poolOfSource(mountSource(gone, "vol")); got != gone {
		t.Errorf("poolOfSource of a missing pool = %s, want %s", got, gone)
	}
}

func TestSplitBranch(t *testing.T) {
	tests := []struct {
		in, parent, name string
		ok               bool
	}{
		{"vol/b", "vol", "b", true},
		{"vol/b/c", "vol/b", "c", true},
		{"vol@b", "vol", "b", true},
		{"vol/b@c", "vol/b", "c", true},
		{"vol", "", "", false},
		{"vol/", "", "", false},
		{"vol//b", "", "", false},
		{"vol@", "", "", false},
		{"@b", "", "", false},
		{"vol/s@x/b", "", "", false},
	}
	for _, tc := range tests {
		parent, name, err := splitBranch(tc.in)
		if tc.ok != (err == nil) || parent != tc.parent || name != tc.name {
			t.Errorf("splitBranch(%q) = %q, %q, %v; want %q, %q, ok=%v", tc.in, parent, name, err, tc.parent, tc.name, tc.ok)
		}
	}
}
