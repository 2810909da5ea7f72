package pool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// mkdirs creates n member directories under root and returns them.
func mkdirs(t *testing.T, root string, n int) []string {
	t.Helper()
	var out []string
	for i := 0; i < n; i++ {
		d := filepath.Join(root, fmt.Sprintf("m%d", i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		out = append(out, d)
	}
	return out
}

func TestCreateErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, root string) (dir string, opts CreateOptions)
		want  string
		is    error
	}{
		{"no members", func(t *testing.T, root string) (string, CreateOptions) {
			return filepath.Join(root, "p"), CreateOptions{}
		}, "at least one member", nil},
		{"member missing", func(t *testing.T, root string) (string, CreateOptions) {
			return filepath.Join(root, "p"), CreateOptions{Members: []string{filepath.Join(root, "nope")}}
		}, "does not exist", nil},
		{"member is a file", func(t *testing.T, root string) (string, CreateOptions) {
			f := filepath.Join(root, "file")
			os.WriteFile(f, nil, 0o644)
			return filepath.Join(root, "p"), CreateOptions{Members: []string{f}}
		}, "not a directory", nil},
		{"member not writable", func(t *testing.T, root string) (string, CreateOptions) {
			ffs := NewFaultFS(OSFS{})
			ffs.Inject(Fault{Op: OpOpen, Path: ".snapfs-probe", Err: syscall.EACCES, Sticky: true})
			return filepath.Join(root, "p"), CreateOptions{Members: mkdirs(t, root, 1), FS: ffs}
		}, "not writable", nil},
		{"duplicate member", func(t *testing.T, root string) (string, CreateOptions) {
			m := mkdirs(t, root, 1)
			return filepath.Join(root, "p"), CreateOptions{Members: []string{m[0], m[0] + "/"}}
		}, "given twice", nil},
		{"copies beyond domains", func(t *testing.T, root string) (string, CreateOptions) {
			return filepath.Join(root, "p"), CreateOptions{Members: mkdirs(t, root, 2), Copies: 2}
		}, "needs 2 failure domains, but the members span 1", nil},
		{"copies beyond labelled domains", func(t *testing.T, root string) (string, CreateOptions) {
			return filepath.Join(root, "p"), CreateOptions{Members: mkdirs(t, root, 3), Copies: 3, Domains: []string{"a", "b", "a"}}
		}, "span 2", nil},
		{"negative copies", func(t *testing.T, root string) (string, CreateOptions) {
			return filepath.Join(root, "p"), CreateOptions{Members: mkdirs(t, root, 1), Copies: -1}
		}, "copies -1", nil},
		{"chunk size not power of two", func(t *testing.T, root string) (string, CreateOptions) {
			return filepath.Join(root, "p"), CreateOptions{Members: mkdirs(t, root, 1), ChunkSize: 12 << 10}
		}, "power of two", nil},
		{"chunk size too small", func(t *testing.T, root string) (string, CreateOptions) {
			return filepath.Join(root, "p"), CreateOptions{Members: mkdirs(t, root, 1), ChunkSize: 2048}
		}, "power of two", nil},
		{"chunk size too big", func(t *testing.T, root string) (string, CreateOptions) {
			return filepath.Join(root, "p"), CreateOptions{Members: mkdirs(t, root, 1), ChunkSize: 2 << 20}
		}, "power of two", nil},
		{"pool dir already a pool", func(t *testing.T, root string) (string, CreateOptions) {
			ms := mkdirs(t, root, 2)
			dir := filepath.Join(root, "p")
			if err := Create(dir, CreateOptions{Members: ms[:1]}); err != nil {
				t.Fatal(err)
			}
			return dir, CreateOptions{Members: ms[1:]}
		}, "already a pool", ErrExists},
		{"member already in a pool", func(t *testing.T, root string) (string, CreateOptions) {
			ms := mkdirs(t, root, 1)
			if err := Create(filepath.Join(root, "p1"), CreateOptions{Members: ms}); err != nil {
				t.Fatal(err)
			}
			return filepath.Join(root, "p2"), CreateOptions{Members: ms}
		}, "already belongs to pool", ErrExists},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			dir, opts := tc.setup(t, root)
			before := snapshotTree(t, root)
			err := Create(dir, opts)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Create: got %v, want error containing %q", err, tc.want)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Fatalf("Create: %v does not wrap %v", err, tc.is)
			}
			if strings.Contains(err.Error(), "\n") {
				t.Errorf("error is not one line: %q", err)
			}
			if after := snapshotTree(t, root); after != before {
				t.Errorf("Create changed files:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

// snapshotTree lists the files (with sizes and content of .json) under root.
func snapshotTree(t *testing.T, root string) string {
	t.Helper()
	var b strings.Builder
	filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() || fi.Name() == lockFile {
			return nil
		}
		fmt.Fprintf(&b, "%s:%d ", strings.TrimPrefix(p, root), fi.Size())
		if strings.HasSuffix(p, ".json") {
			c, _ := os.ReadFile(p)
			b.Write(c)
		}
		return nil
	})
	return b.String()
}

func TestCreateLayout(t *testing.T) {
	root := t.TempDir()
	ms := mkdirs(t, root, 2)
	dir := filepath.Join(root, "p")
	if err := Create(dir, CreateOptions{Members: ms, Copies: 2, Domains: []string{"a", "b"}}); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir + "/pool.json", dir + "/meta", ms[0] + "/member.json", ms[1] + "/packs"} {
		if _, err := os.Stat(p); err != nil {
			t.Error(err)
		}
	}
	p, err := Open(dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c := p.Config()
	if c.Copies != 2 || c.ChunkSize != DefaultChunkSize || len(c.Members) != 2 || c.Members[1].Domain != "b" || c.FormatVersion != FormatVersion {
		t.Errorf("config %+v", c)
	}
	if p.MetaDir() != filepath.Join(dir, "meta") || p.Dir() != dir {
		t.Errorf("dirs %s %s", p.Dir(), p.MetaDir())
	}
}

func TestOpenErrors(t *testing.T) {
	tests := []struct {
		name  string
		setup func(t *testing.T, dir string, ms []string)
		is    error
		want  string
	}{
		{"not a pool", func(t *testing.T, dir string, ms []string) {
			os.Remove(filepath.Join(dir, poolFile))
		}, ErrNotPool, "no pool.json"},
		{"truncated pool.json", func(t *testing.T, dir string, ms []string) {
			truncateHalf(t, filepath.Join(dir, poolFile))
		}, ErrCorrupt, "pool.json is unreadable"},
		{"garbled pool.json", func(t *testing.T, dir string, ms []string) {
			os.WriteFile(filepath.Join(dir, poolFile), []byte(`{"id":"zz","format_version":1}`), 0o644)
		}, ErrCorrupt, "pool id"},
		{"future format", func(t *testing.T, dir string, ms []string) {
			rewriteJSON(t, filepath.Join(dir, poolFile), `"format_version": 1`, `"format_version": 9`)
		}, ErrCorrupt, "format version 9"},
		{"truncated member.json", func(t *testing.T, dir string, ms []string) {
			truncateHalf(t, filepath.Join(ms[1], memberFile))
		}, ErrCorrupt, "member.json is unreadable"},
		{"member of another pool", func(t *testing.T, dir string, ms []string) {
			other := t.TempDir()
			if err := Create(filepath.Join(other, "p"), CreateOptions{Members: []string{other}}); err != nil {
				t.Fatal(err)
			}
			b, _ := os.ReadFile(filepath.Join(other, memberFile))
			os.WriteFile(filepath.Join(ms[0], memberFile), b, 0o644)
		}, ErrCorrupt, "belongs to pool"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			ms := mkdirs(t, root, 2)
			dir := filepath.Join(root, "p")
			if err := Create(dir, CreateOptions{Members: ms}); err != nil {
				t.Fatal(err)
			}
			tc.setup(t, dir, ms)
			before := snapshotTree(t, root)
			p, err := Open(dir, OpenOptions{})
			if err == nil {
				p.Close()
				t.Fatal("Open succeeded")
			}
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Open: %v, want %v containing %q", err, tc.is, tc.want)
			}
			if after := snapshotTree(t, root); after != before {
				t.Errorf("Open changed files:\nbefore %s\nafter  %s", before, after)
			}
		})
	}
}

func truncateHalf(t *testing.T, name string) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(name, b[:len(b)/2], 0o644)
}

func rewriteJSON(t *testing.T, name, old, new string) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), old) {
		t.Fatalf("%s lacks %q", name, old)
	}
	os.WriteFile(name, []byte(strings.Replace(string(b), old, new, 1)), 0o644)
}

func TestOpenInUse(t *testing.T) {
	p := NewTestPool(t, 1)
	_, err := Open(p.Dir(), OpenOptions{})
	if !errors.Is(err, ErrInUse) {
		t.Fatalf("second Open: %v, want ErrInUse", err)
	}
	want := fmt.Sprintf("pool %s is in use by pid %d", p.Dir(), os.Getpid())
	if !strings.Contains(err.Error(), want) {
		t.Fatalf("second Open: %q, want %q", err, want)
	}
	b, _ := os.ReadFile(filepath.Join(p.Dir(), lockFile))
	if strings.TrimSpace(string(b)) != fmt.Sprint(os.Getpid()) {
		t.Errorf("lock file holds %q", b)
	}
	p.Close()
	p2, err := Open(p.Dir(), OpenOptions{})
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	p2.Close()
}
