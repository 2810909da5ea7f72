package pool

import (
	"bytes"
	"errors"
	"os"
	"syscall"
	"testing"
)

func TestMemFS(t *testing.T) {
	type step func(t *testing.T, m *MemFS, f File) File
	write := func(off int64, s string) step {
		return func(t *testing.T, m *MemFS, f File) File {
			if _, err := f.WriteAt([]byte(s), off); err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	syncF := func(t *testing.T, m *MemFS, f File) File {
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		return f
	}
	crash := func(t *testing.T, m *MemFS, f File) File { m.Crash(); return f }
	punch := func(off, n int64) step {
		return func(t *testing.T, m *MemFS, f File) File {
			if err := f.Punch(off, n); err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	trunc := func(n int64) step {
		return func(t *testing.T, m *MemFS, f File) File {
			if err := f.Truncate(n); err != nil {
				t.Fatal(err)
			}
			return f
		}
	}
	big := string(bytes.Repeat([]byte("x"), 3*Align))
	tests := []struct {
		name  string
		steps []step
		want  string
		alloc int64
	}{
		{"write", []step{write(0, "hello")}, "hello", Align},
		{"unsynced write lost", []step{write(0, "hello"), crash}, "", 0},
		{"synced write kept", []step{write(0, "hello"), syncF, write(0, "HE"), write(5, "!"), crash}, "hello", Align},
		{"punch middle block", []step{write(0, big), punch(Align, Align)}, big[:Align] + string(make([]byte, Align)) + big[:Align], 2 * Align},
		{"punch partial zeroes", []step{write(0, "abcdef"), punch(1, 2)}, "a\x00\x00def", Align},
		{"unsynced punch lost", []step{write(0, "abcdef"), syncF, punch(0, Align), crash}, "abcdef", Align},
		{"truncate", []step{write(0, big), trunc(5)}, "xxxxx", Align},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := NewMemFS()
			f, err := m.OpenFile("/f", os.O_RDWR|os.O_CREATE, 0o644)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range tc.steps {
				f = s(t, m, f)
			}
			n, _ := f.Size()
			b := make([]byte, n)
			f.ReadAt(b, 0)
			if string(b) != tc.want {
				t.Errorf("content %q, want %q", b, tc.want)
			}
			if a, _ := f.Allocated(); a != tc.alloc {
				t.Errorf("allocated %d, want %d", a, tc.alloc)
			}
		})
	}
}

func TestMemFSCrashCloneAndSpace(t *testing.T) {
	m := NewMemFS()
	m.SetCapacity(2 * Align)
	m.MkdirAll("/d", 0o755)
	f, _ := m.OpenFile("/d/f", os.O_RDWR|os.O_CREATE, 0o644)
	f.WriteAt([]byte("one"), 0)
	f.Sync()
	f.WriteAt([]byte("two"), 0)
	c := m.CrashClone()
	g, err := c.OpenFile("/d/f", os.O_RDONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 3)
	g.ReadAt(b, 0)
	if string(b) != "one" {
		t.Errorf("clone holds %q", b)
	}
	f.ReadAt(b, 0)
	if string(b) != "two" {
		t.Errorf("original holds %q", b)
	}
	if _, err := f.WriteAt(make([]byte, 2*Align), Align); !errors.Is(err, syscall.ENOSPC) {
		t.Errorf("write past capacity: %v", err)
	}
	if _, err := m.Lock("/d/lock"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Lock("/d/lock"); !errors.Is(err, ErrInUse) {
		t.Errorf("second lock: %v", err)
	}
	ents, _ := m.ReadDir("/d")
	if len(ents) != 2 || ents[0].Name() != "f" {
		t.Errorf("readdir %v", ents)
	}
}
