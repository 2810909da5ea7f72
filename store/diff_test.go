package store

import (
	"fmt"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestDiff runs the sequences in testdata/diff: the operations of
// TestVersions, plus "diff from=VIEW to=VIEW", which prints the lines of
// Store.Diff, and "changes from=VIEW to=VIEW", which prints what the
// change iterator (Store.Changes) reports. Each file ends with a Check.
func TestDiff(t *testing.T) {
	datadriven.Walk(t, "testdata/diff", func(t *testing.T, path string) {
		s, live := NewTestStore(t, 2, Options{})
		views := map[string]View{"live": live}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			out, err := runDiffCmd(s, views, d)
			if err != nil {
				return "error: " + errorName(err) + "\n"
			}
			return out
		})
	})
}

func runDiffCmd(s *Store, views map[string]View, d *datadriven.TestData) (string, error) {
	v := views[arg(d, "view", "live")]
	path := arg(d, "path", "/")
	parentOf := func() (uint64, string, error) {
		dir, name := splitPath(path)
		p, err := walkPath(s, v, dir)
		return p, name, err
	}
	switch d.Cmd {
	case "diff":
		from, ok1 := views[arg(d, "from", "")]
		to, ok2 := views[arg(d, "to", "live")]
		if !ok1 || !ok2 {
			return "", fmt.Errorf("unknown view")
		}
		lines, err := s.Diff(from, to)
		if err != nil {
			return "", err
		}
		if len(lines) == 0 {
			return "(no changes)\n", nil
		}
		var b strings.Builder
		for _, l := range lines {
			b.WriteString(strings.ReplaceAll(l.String(), "\t", " ") + "\n")
		}
		return b.String(), nil
	case "changes":
		from, to := views[arg(d, "from", "")], views[arg(d, "to", "live")]
		var b strings.Builder
		err := s.Changes(from, to, func(e EntryChange) error {
			fmt.Fprintf(&b, "entry %d/%s: %d -> %d\n", e.Parent, e.Name, e.FromIno, e.ToIno)
			return nil
		}, func(c InodeChange) error {
			fmt.Fprintf(&b, "inode %d: from=%v to=%v meta=%v data=%v all=%v chunks=%v xattrs=%v\n",
				c.Ino, c.From != nil, c.To != nil, c.Meta, c.Data, c.AllChunks, c.Chunks, c.Xattrs)
			return nil
		})
		return b.String(), err
	case "chmod":
		ino, err := walkPath(s, v, path)
		if err != nil {
			return "", err
		}
		mode, _ := strconv.ParseUint(arg(d, "mode", "644"), 8, 32)
		_, err = s.SetAttr(v, ino, SetAttrIn{Valid: SetMode, Mode: uint32(mode)})
		return "ok\n", err
	case "touch-mtime":
		ino, err := walkPath(s, v, path)
		if err != nil {
			return "", err
		}
		_, err = s.SetAttr(v, ino, SetAttrIn{Valid: SetMtime, Mtime: 12345})
		return "ok\n", err
	case "symlink":
		p, name, err := parentOf()
		if err != nil {
			return "", err
		}
		_, err = s.Symlink(v, p, name, arg(d, "target", "x"), 0, 0)
		return "ok\n", err
	case "mkfifo":
		p, name, err := parentOf()
		if err != nil {
			return "", err
		}
		_, err = s.Mknod(v, p, name, sIFIFO|0o644, 0, 0, 0)
		return "ok\n", err
	case "rmxattr":
		ino, err := walkPath(s, v, path)
		if err != nil {
			return "", err
		}
		return "ok\n", s.RemoveXattr(v, ino, arg(d, "name", ""))
	case "path":
		ino, err := walkPath(s, v, path)
		if err != nil {
			return "", err
		}
		p, err := s.PathOf(v, ino)
		return p + "\n", err
	}
	return runVersionCmd(s, views, d)
}

// TestEscapePath checks that every byte survives EscapePath and
// UnescapePath, and that escaped paths hold no white space.
func TestEscapePath(t *testing.T) {
	var all []byte
	for c := 1; c < 256; c++ {
		all = append(all, byte(c))
	}
	for _, p := range []string{"/plain", "/a b", "/tab\there", "/new\nline", "/back\\slash", "/x -> y", "/\xff\xfe", string(all)} {
		e := EscapePath(p)
		if strings.ContainsAny(e, " \t\n") {
			t.Errorf("EscapePath(%q) = %q holds white space", p, e)
		}
		u, err := UnescapePath(e)
		if err != nil || u != p {
			t.Errorf("UnescapePath(EscapePath(%q)) = %q, %v", p, u, err)
		}
	}
	if got := EscapePath("/a b"); got != `/a\0040b` {
		t.Errorf("EscapePath(/a b) = %q, want /a\\0040b", got)
	}
	for _, bad := range []string{`\`, `\00`, `\0089`, `\0777x`} {
		if _, err := UnescapePath(bad); err == nil {
			t.Errorf("UnescapePath(%q) accepted", bad)
		}
	}
}

// TestDiffOrphan: a file unlinked while open keeps its inode (an orphan)
// but has no name; diff shows it removed, and a diff from a view where it
// was already an orphan does not fail looking for its name.
func TestDiffOrphan(t *testing.T) {
	s, v := NewTestStore(t, 2, Options{})
	_, h, err := s.Create(v, RootIno, "f", 0o644, 0, 0, syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Write([]byte("data"), 0); err != nil {
		t.Fatal(err)
	}
	s1, _, err := s.PinEpoch(v.Lineage, "s1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Unlink(v, RootIno, "f"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.Write([]byte("more"), 4); err != nil {
		t.Fatal(err)
	}
	s2, _, err := s.PinEpoch(v.Lineage, "s2", nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		from, to View
		want     string
	}{
		{s1, v, "M\t/\t/\n-\tF\t/f\n"},
		{s1, s2, "M\t/\t/\n-\tF\t/f\n"},
		{s2, v, ""},
		{s2, s1, "M\t/\t/\n+\tF\t/f\n"},
	} {
		lines, err := s.Diff(tc.from, tc.to)
		if err != nil {
			t.Fatalf("diff %+v %+v: %v", tc.from, tc.to, err)
		}
		var b strings.Builder
		for _, l := range lines {
			b.WriteString(l.String() + "\n")
		}
		if b.String() != tc.want {
			t.Errorf("diff %d -> %d:\n%s\nwant:\n%s", tc.from.Epoch, tc.to.Epoch, b.String(), tc.want)
		}
	}
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
}
