package store

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestVersions runs the operation sequences in testdata/versions: writes in
// the live view, snapshots (pinned epochs), branches (forked lineages) and
// reads through every view. Each file ends with a Check.
func TestVersions(t *testing.T) {
	datadriven.Walk(t, "testdata/versions", func(t *testing.T, path string) {
		s, live := NewTestStore(t, 2, Options{})
		views := map[string]View{"live": live}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			out, err := runVersionCmd(s, views, d)
			if err != nil {
				return "error: " + errorName(err) + "\n"
			}
			return out
		})
	})
}

// errorName names a store sentinel for golden output.
func errorName(err error) string {
	for _, e := range []error{ErrNotFound, ErrExists, ErrNotEmpty, ErrNotDir, ErrIsDir, ErrReadOnly, ErrInvalid, ErrNoData, ErrNameTooLong, ErrBusy, ErrStale} {
		if isErr(err, e) {
			return strings.TrimPrefix(e.Error(), "store: ")
		}
	}
	return err.Error()
}

func arg(d *datadriven.TestData, key, def string) string {
	for _, a := range d.CmdArgs {
		if a.Key == key && len(a.Vals) > 0 {
			return a.Vals[0]
		}
	}
	return def
}

// walkPath resolves an absolute path in a view.
func walkPath(s *Store, v View, path string) (uint64, error) {
	ino := RootIno
	for _, c := range strings.Split(strings.Trim(path, "/"), "/") {
		if c == "" {
			continue
		}
		a, err := s.Lookup(v, ino, c)
		if err != nil {
			return 0, err
		}
		ino = a.Ino
	}
	return ino, nil
}

func splitPath(path string) (dir, name string) {
	i := strings.LastIndex(path, "/")
	return path[:i], path[i+1:]
}

func runVersionCmd(s *Store, views map[string]View, d *datadriven.TestData) (string, error) {
	v := views[arg(d, "view", "live")]
	path := arg(d, "path", "/")
	switch d.Cmd {
	case "mkdir":
		dir, name := splitPath(path)
		p, err := walkPath(s, v, dir)
		if err != nil {
			return "", err
		}
		_, err = s.Mkdir(v, p, name, 0o755, 0, 0)
		return "ok\n", err
	case "write":
		return writeCmd(s, v, d, path)
	case "truncate":
		ino, err := walkPath(s, v, path)
		if err != nil {
			return "", err
		}
		size, _ := strconv.ParseUint(arg(d, "size", "0"), 10, 64)
		_, err = s.SetAttr(v, ino, SetAttrIn{Valid: SetSize, Size: size})
		return "ok\n", err
	case "rm", "rmdir":
		dir, name := splitPath(path)
		p, err := walkPath(s, v, dir)
		if err != nil {
			return "", err
		}
		if d.Cmd == "rm" {
			return "ok\n", s.Unlink(v, p, name)
		}
		return "ok\n", s.Rmdir(v, p, name)
	case "mv":
		fd, fn := splitPath(arg(d, "from", ""))
		td, tn := splitPath(arg(d, "to", ""))
		fp, err := walkPath(s, v, fd)
		if err != nil {
			return "", err
		}
		tp, err := walkPath(s, v, td)
		if err != nil {
			return "", err
		}
		return "ok\n", s.Rename(v, fp, fn, tp, tn, 0)
	case "link":
		ino, err := walkPath(s, v, arg(d, "from", ""))
		if err != nil {
			return "", err
		}
		td, tn := splitPath(arg(d, "to", ""))
		tp, err := walkPath(s, v, td)
		if err != nil {
			return "", err
		}
		_, err = s.Link(v, ino, tp, tn)
		return "ok\n", err
	case "snapshot":
		sv, _, err := s.PinEpoch(v.Lineage, arg(d, "name", ""), nil)
		if err != nil {
			return "", err
		}
		views[arg(d, "name", "")] = sv
		return fmt.Sprintf("epoch %d\n", sv.Epoch), nil
	case "destroy":
		name := arg(d, "name", "")
		sv := views[name]
		delete(views, name)
		return "ok\n", s.UnpinEpoch(sv.Lineage, sv.Epoch, name)
	case "destroy-branch":
		name := arg(d, "name", "")
		bv := views[name]
		if err := s.DestroyLineage(bv.Lineage, name); err != nil {
			return "error: " + err.Error() + "\n", nil
		}
		delete(views, name)
		return "ok\n", nil
	case "rollback":
		sv := views[arg(d, "name", "")]
		st, err := s.RollbackLineage(sv.Lineage, sv.Epoch)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("versions=%d deadlist=%d chunks=%d\n", st.Versions, st.Deadlist, st.Chunks), nil
	case "counters":
		l, err := s.lineageOf(v)
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("files=%d used=%d\n", l.files.Load(), l.used.Load()), nil
	case "usage":
		if err := s.Sync(); err != nil {
			return "", err
		}
		_, stored, chunks, err := s.PoolUsage()
		return fmt.Sprintf("chunks=%d stored=%d\n", chunks, stored), err
	case "branch":
		bv, err := s.ForkLineage(views[arg(d, "from", "")], arg(d, "name", ""), nil)
		if err != nil {
			return "", err
		}
		views[arg(d, "name", "")] = bv
		return "ok\n", nil
	case "cat":
		return catCmd(s, v, path)
	case "ls":
		return lsCmd(s, v, path)
	case "stat":
		if err := s.Sync(); err != nil { // blocks are counted when data is flushed
			return "", err
		}
		ino, err := walkPath(s, v, path)
		if err != nil {
			return "", err
		}
		a, err := s.GetAttr(v, ino)
		return fmt.Sprintf("size=%d nlink=%d blocks=%d\n", a.Size, a.Nlink, a.Blocks), err
	case "setxattr":
		ino, err := walkPath(s, v, path)
		if err != nil {
			return "", err
		}
		return "ok\n", s.SetXattr(v, ino, arg(d, "name", ""), []byte(arg(d, "value", "")), 0)
	case "getxattr":
		ino, err := walkPath(s, v, path)
		if err != nil {
			return "", err
		}
		val, err := s.GetXattr(v, ino, arg(d, "name", ""))
		return string(val) + "\n", err
	case "space":
		return spaceCmd(s, views, v)
	case "destroy-space":
		return destroySpaceCmd(s, views, arg(d, "name", ""))
	case "check":
		if err := s.Check(); err != nil {
			return err.Error() + "\n", nil
		}
		return "ok\n", nil
	}
	return "", fmt.Errorf("unknown command %q", d.Cmd)
}

// writeCmd writes data (repeated rep times) at off, creating the file.
func writeCmd(s *Store, v View, d *datadriven.TestData, path string) (string, error) {
	dir, name := splitPath(path)
	p, err := walkPath(s, v, dir)
	if err != nil {
		return "", err
	}
	ino, err := walkPath(s, v, path)
	var h *Handle
	if isNotFound(err) {
		_, h, err = s.Create(v, p, name, 0o644, 0, 0, syscall.O_RDWR)
	} else if err == nil {
		h, err = s.Open(v, ino, syscall.O_RDWR)
	}
	if err != nil {
		return "", err
	}
	rep, _ := strconv.Atoi(arg(d, "rep", "1"))
	data := []byte(strings.Repeat(arg(d, "data", ""), rep))
	off, _ := strconv.ParseInt(arg(d, "off", "0"), 10, 64)
	if _, err := h.Write(data, off); err != nil {
		h.Release()
		return "", err
	}
	return "ok\n", h.Release()
}

// catCmd prints a file's content, runs of zero bytes as "<N zeros>" and
// runs of one repeated byte longer than 16 as "<N x c>".
func catCmd(s *Store, v View, path string) (string, error) {
	ino, err := walkPath(s, v, path)
	if err != nil {
		return "", err
	}
	h, err := s.Open(v, ino, syscall.O_RDONLY)
	if err != nil {
		return "", err
	}
	defer h.Release()
	a, err := h.Attr()
	if err != nil {
		return "", err
	}
	buf := make([]byte, a.Size)
	n, err := h.Read(buf, 0)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	buf = buf[:n]
	for i := 0; i < len(buf); {
		j := i
		for j < len(buf) && buf[j] == buf[i] {
			j++
		}
		switch {
		case buf[i] == 0:
			fmt.Fprintf(&b, "<%d zeros>", j-i)
		case j-i > 16:
			fmt.Fprintf(&b, "<%d x %c>", j-i, buf[i])
		default:
			b.Write(buf[i:j])
		}
		i = j
	}
	return b.String() + "\n", nil
}

func lsCmd(s *Store, v View, path string) (string, error) {
	ino, err := walkPath(s, v, path)
	if err != nil {
		return "", err
	}
	var names []string
	err = s.ReadDir(v, ino, 0, func(e DirEntry) bool {
		kind := "f"
		if e.Mode == sIFDIR {
			kind = "d"
		}
		names = append(names, kind+" "+e.Name)
		return true
	})
	sort.Strings(names)
	if len(names) == 0 {
		return "(empty)\n", err
	}
	return strings.Join(names, "\n") + "\n", err
}
