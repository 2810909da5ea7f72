package main

import "testing"

func TestEstimate(t *testing.T) {
	list := []snapSpace{{"a", 1, 100, 100}, {"b", 2, 150, 60}, {"c", 3, 160, 20}}
	for _, c := range []struct {
		base, name string
		want       int64
	}{
		{"", "a", 100},
		{"", "c", 160},
		{"a", "b", 60},
		{"a", "c", 80},
		{"b", "c", 20},
		{"", "nope", 0},
		{"nope", "c", 0},
	} {
		if got := estimate(list, c.base, c.name); got != c.want {
			t.Errorf("estimate(%q, %q) = %d, want %d", c.base, c.name, got, c.want)
		}
	}
}
