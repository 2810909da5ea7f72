package main

import "testing"

// TestSnapfsVariant: the snapfs target names with a chunk size and the
// second binary split into their parts; other names are left alone.
func TestSnapfsVariant(t *testing.T) {
	for _, tc := range []struct {
		in, name, chunk string
		alt             bool
	}{
		{"snapfs-1", "snapfs-1", "", false},
		{"snapfs-1@64KiB", "snapfs-1", "64KiB", false},
		{"snapfs-2.alt", "snapfs-2", "", true},
		{"snapfs-1.alt@32KiB", "snapfs-1", "32KiB", true},
		{"loopback", "loopback", "", false},
		{"loopback@64KiB", "loopback@64KiB", "", false},
	} {
		name, alt, chunk := snapfsVariant(tc.in)
		if name != tc.name || alt != tc.alt || chunk != tc.chunk {
			t.Errorf("snapfsVariant(%q) = %q, %v, %q; want %q, %v, %q", tc.in, name, alt, chunk, tc.name, tc.alt, tc.chunk)
		}
	}
	c := &config{targets: []string{"snapfs-1.alt"}}
	if err := c.validate(); err == nil {
		t.Errorf("snapfs-1.alt without --alt-bin accepted")
	}
	c = &config{targets: []string{"loopback.alt"}}
	if err := c.validate(); err == nil {
		t.Errorf("loopback.alt accepted")
	}
	for _, tc := range []struct {
		target string
		ok     bool
	}{
		{"snapfs-s3", true}, {"snapfs-s3@1MiB", true}, {"snapfs-s3.alt", false}, {"plain@1MiB", false},
	} {
		c = &config{targets: []string{tc.target}}
		if err := c.validate(); (err == nil) != tc.ok {
			t.Errorf("validate(%q) = %v, want ok %v", tc.target, err, tc.ok)
		}
	}
}
