package store

import (
	"fmt"
	"math/rand"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestDiffModel runs random namespace and data operations in a volume and
// a branch, takes snapshots at random, and checks Store.Diff between
// random pairs of views against a model diff computed by walking both
// trees in full through the public API and applying the documented rules.
// The seed is printed on failure (and is the subtest's name), with the
// operations run; rerun one with SNAPFS_DIFF_SEED=N (SNAPFS_DIFF_STEPS=N
// to shorten it, SNAPFS_DIFF_LOG=1 to print the operations anyway).
func TestDiffModel(t *testing.T) {
	seeds := []int64{time.Now().UnixNano(), 1, 2}
	if e := os.Getenv("SNAPFS_DIFF_SEED"); e != "" {
		n, err := strconv.ParseInt(e, 10, 64)
		if err != nil {
			t.Fatalf("SNAPFS_DIFF_SEED=%q: %v", e, err)
		}
		seeds = []int64{n}
	}
	for _, seed := range seeds {
		t.Run(fmt.Sprint(seed), func(t *testing.T) {
			defer func() {
				if t.Failed() {
					t.Logf("seed %d", seed)
				}
			}()
			steps := 250
			if e := os.Getenv("SNAPFS_DIFF_STEPS"); e != "" {
				steps, _ = strconv.Atoi(e)
			}
			runDiffModel(t, seed, steps)
		})
	}
}

// treeState is one view as the model sees it: every inode reachable from
// the root, with its names (parent, name) and what diff compares.
type treeState struct {
	names map[uint64][]entryKey
	files map[uint64]modelFile
	paths map[uint64]string // one path of each directory
}

type modelFile struct {
	attr    Attr
	content string
	target  string
	xattrs  string
}

func walkTree(t *testing.T, s *Store, v View) treeState {
	t.Helper()
	ts := treeState{names: map[uint64][]entryKey{}, files: map[uint64]modelFile{}, paths: map[uint64]string{RootIno: "/"}}
	var visit func(dir uint64)
	visit = func(dir uint64) {
		ts.files[dir] = readModelFile(t, s, v, dir)
		var ents []DirEntry
		if err := s.ReadDir(v, dir, 0, func(e DirEntry) bool { ents = append(ents, e); return true }); err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			ts.names[e.Ino] = append(ts.names[e.Ino], entryKey{parent: dir, name: e.Name})
			if e.Mode == sIFDIR {
				ts.paths[e.Ino] = strings.TrimSuffix(ts.paths[dir], "/") + "/" + e.Name
				visit(e.Ino)
			} else if _, ok := ts.files[e.Ino]; !ok {
				ts.files[e.Ino] = readModelFile(t, s, v, e.Ino)
			}
		}
	}
	visit(RootIno)
	return ts
}

func readModelFile(t *testing.T, s *Store, v View, ino uint64) modelFile {
	t.Helper()
	a, err := s.GetAttr(v, ino)
	if err != nil {
		t.Fatal(err)
	}
	f := modelFile{attr: a}
	switch a.Mode & sIFMT {
	case sIFREG:
		h, err := s.Open(v, ino, syscall.O_RDONLY)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, a.Size)
		n, err := h.Read(buf, 0)
		h.Release()
		if err != nil {
			t.Fatal(err)
		}
		f.content = string(buf[:n])
	case sIFLNK:
		if f.target, err = s.Readlink(v, ino); err != nil {
			t.Fatal(err)
		}
	}
	names, err := s.ListXattr(v, ino)
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(names)
	for _, n := range names {
		val, err := s.GetXattr(v, ino, n)
		if err != nil {
			t.Fatal(err)
		}
		f.xattrs += n + "=" + string(val) + ";"
	}
	return f
}

// modelDiff applies the rules of Store.Diff to two full trees. M lines
// carry every path of the inode in to, joined by '|'.
func modelDiff(a, b treeState) []string {
	render := func(ts treeState, k entryKey) string {
		return strings.TrimSuffix(ts.paths[k.parent], "/") + "/" + k.name
	}
	var out []string
	inos := map[uint64]bool{}
	for ino := range a.files {
		inos[ino] = true
	}
	for ino := range b.files {
		inos[ino] = true
	}
	for ino := range inos {
		fa, inA := a.files[ino]
		fb, inB := b.files[ino]
		mode := fb.attr.Mode
		if !inB {
			mode = fa.attr.Mode
		}
		kind := string(kindChar(mode))
		inSet := func(k entryKey, ks []entryKey) bool {
			for _, x := range ks {
				if x == k {
					return true
				}
			}
			return false
		}
		var gone, added []string
		for _, k := range a.names[ino] {
			if !inB || !inSet(k, b.names[ino]) {
				gone = append(gone, render(a, k))
			}
		}
		for _, k := range b.names[ino] {
			if !inA || !inSet(k, a.names[ino]) {
				added = append(added, render(b, k))
			}
		}
		sort.Strings(gone)
		sort.Strings(added)
		switch {
		case !inA:
			for _, p := range added {
				out = append(out, "+ "+kind+" "+p)
			}
			continue
		case !inB:
			for _, p := range gone {
				out = append(out, "- "+kind+" "+p)
			}
			continue
		}
		n := min(len(gone), len(added))
		for i := 0; i < n; i++ {
			out = append(out, "R "+kind+" "+gone[i]+" -> "+added[i])
		}
		for _, p := range added[n:] {
			out = append(out, "+ "+kind+" "+p)
		}
		for _, p := range gone[n:] {
			out = append(out, "- "+kind+" "+p)
		}
		x, y := fa.attr, fb.attr
		if x.Mode != y.Mode || x.Uid != y.Uid || x.Gid != y.Gid || x.Size != y.Size || x.Mtime != y.Mtime ||
			x.Rdev != y.Rdev || fa.content != fb.content || fa.target != fb.target || fa.xattrs != fb.xattrs {
			var ps []string
			for _, k := range b.names[ino] {
				ps = append(ps, render(b, k))
			}
			if ino == RootIno {
				ps = []string{"/"}
			}
			sort.Strings(ps)
			out = append(out, "M "+kind+" "+strings.Join(ps, "|"))
		}
	}
	sort.Strings(out)
	return out
}

// engineDiff renders Store.Diff like modelDiff, M lines as the full set
// of the inode's paths in to when the engine's path is one of them.
func engineDiff(t *testing.T, s *Store, from, to View, b treeState) []string {
	t.Helper()
	lines, err := s.Diff(from, to)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, l := range lines {
		switch l.Change {
		case 'R':
			out = append(out, fmt.Sprintf("R %c %s -> %s", l.Kind, l.Path, l.NewPath))
		case 'M':
			var ps []string
			for _, k := range b.names[l.Ino] {
				ps = append(ps, strings.TrimSuffix(b.paths[k.parent], "/")+"/"+k.name)
			}
			if l.Ino == RootIno {
				ps = []string{"/"}
			}
			sort.Strings(ps)
			found := false
			for _, p := range ps {
				found = found || p == l.Path
			}
			if !found {
				t.Errorf("M line at %s, which is not a name of inode %d in to (%v)", l.Path, l.Ino, ps)
			}
			out = append(out, fmt.Sprintf("M %c %s", l.Kind, strings.Join(ps, "|")))
		default:
			out = append(out, fmt.Sprintf("%c %c %s", l.Change, l.Kind, l.Path))
		}
	}
	sort.Strings(out)
	return out
}

func runDiffModel(t *testing.T, seed int64, steps int) {
	rng := rand.New(rand.NewSource(seed))
	pairs := rand.New(rand.NewSource(seed + 1)) // which views to compare: apart, so checks do not change the operations
	s, live := NewTestStore(t, 2, Options{})
	views := []View{live}
	names := []string{"a", "b", "c", "d e", "f\n"}
	// pick returns a random existing path of the given kind ("" any) in v.
	pick := func(v View, dirs bool) (uint64, string, Attr, bool) {
		dir, path := RootIno, ""
		for depth := 0; depth < 3; depth++ {
			var ents []DirEntry
			if err := s.ReadDir(v, dir, 0, func(e DirEntry) bool { ents = append(ents, e); return true }); err != nil {
				t.Fatal(err)
			}
			if len(ents) == 0 {
				break
			}
			e := ents[rng.Intn(len(ents))]
			a, err := s.GetAttr(v, e.Ino)
			if err != nil {
				t.Fatal(err)
			}
			if e.Mode != sIFDIR || rng.Intn(3) == 0 {
				if (e.Mode == sIFDIR) == dirs {
					return dir, path + "/" + e.Name, a, true
				}
				return 0, "", Attr{}, false
			}
			dir, path = e.Ino, path+"/"+e.Name
		}
		return 0, "", Attr{}, false
	}
	randDir := func(v View) uint64 {
		if _, p, a, ok := pick(v, true); ok && rng.Intn(2) == 0 {
			_ = p
			return a.Ino
		}
		return RootIno
	}
	var branch *View
	var oplog []string
	compared := 0
	defer func() {
		if t.Failed() || os.Getenv("SNAPFS_DIFF_LOG") != "" {
			if cerr := s.Check(); cerr != nil || os.Getenv("SNAPFS_DIFF_LOG") != "" {
				t.Logf("operations:\n%s\ncheck: %v", strings.Join(oplog, "\n"), cerr)
			}
		}
	}()
	for step := 0; step < steps; step++ {
		v := live
		if branch != nil && rng.Intn(2) == 0 {
			v = *branch
		}
		name := names[rng.Intn(len(names))]
		var err error
		op := rng.Intn(12)
		switch op {
		case 0, 1: // create or rewrite a file
			dir := randDir(v)
			a, lerr := s.Lookup(v, dir, name)
			var h *Handle
			if lerr == nil && a.Mode&sIFMT == sIFREG {
				h, err = s.Open(v, a.Ino, syscall.O_RDWR)
			} else if isNotFound(lerr) {
				_, h, err = s.Create(v, dir, name, 0o644, 0, 0, syscall.O_RDWR)
			}
			if h != nil {
				data := strings.Repeat(string(rune('a'+rng.Intn(26))), 1+rng.Intn(200000))
				off := int64(rng.Intn(1000))
				_, err = h.Write([]byte(data), off)
				oplog = append(oplog, fmt.Sprintf("  write dir %d name %q len %d off %d found %v", dir, name, len(data), off, lerr == nil))
				h.Release()
			}
		case 2:
			var ma Attr
			md := randDir(v)
			ma, err = s.Mkdir(v, md, name, 0o755, 0, 0)
			oplog = append(oplog, fmt.Sprintf("  mkdir %d/%q = %d", md, name, ma.Ino))
		case 3:
			if dir, p, _, ok := pick(v, false); ok {
				_, n := splitPath(p)
				err = s.Unlink(v, dir, n)
			}
		case 4:
			if dir, p, _, ok := pick(v, true); ok {
				_, n := splitPath(p)
				err = s.Rmdir(v, dir, n)
			}
		case 5, 6:
			if dir, p, _, ok := pick(v, rng.Intn(3) == 0); ok {
				_, n := splitPath(p)
				to := randDir(v)
				err = s.Rename(v, dir, n, to, name, 0)
				oplog = append(oplog, fmt.Sprintf("  rename %d/%q -> %d/%q", dir, n, to, name))
			}
		case 7:
			if _, _, a, ok := pick(v, false); ok {
				_, err = s.Link(v, a.Ino, randDir(v), name)
			}
		case 8:
			if _, _, a, ok := pick(v, rng.Intn(2) == 0); ok {
				_, err = s.SetAttr(v, a.Ino, SetAttrIn{Valid: SetMode, Mode: uint32(0o600 + rng.Intn(0o177))})
			}
		case 9:
			if _, _, a, ok := pick(v, false); ok {
				if rng.Intn(2) == 0 {
					err = s.SetXattr(v, a.Ino, "user."+name[:1], []byte(fmt.Sprint(rng.Intn(3))), 0)
				} else {
					err = s.RemoveXattr(v, a.Ino, "user."+name[:1])
				}
			}
		case 10:
			if _, _, a, ok := pick(v, false); ok && a.Mode&sIFMT == sIFREG {
				_, err = s.SetAttr(v, a.Ino, SetAttrIn{Valid: SetSize, Size: uint64(rng.Intn(3) * 70000)})
			}
		case 11:
			if rng.Intn(2) == 0 {
				_, err = s.Symlink(v, randDir(v), name, "t"+fmt.Sprint(rng.Intn(9)), 0, 0)
			} else {
				sv, _, perr := s.PinEpoch(v.Lineage, fmt.Sprint("s", step), nil)
				if perr != nil {
					t.Fatal(perr)
				}
				views = append(views, sv)
				if branch == nil && rng.Intn(2) == 0 {
					bv, ferr := s.ForkLineage(sv, fmt.Sprint("b", step), nil)
					if ferr != nil {
						t.Fatal(ferr)
					}
					branch = &bv
					views = append(views, bv)
				}
			}
		}
		if err != nil && !isNotFound(err) && !isExists(err) && !isErr(err, ErrNotEmpty) && !isErr(err, ErrInvalid) &&
			!isErr(err, ErrIsDir) && !isErr(err, ErrNotDir) && !isErr(err, ErrNoData) && !isErr(err, ErrPerm) {
			t.Fatalf("step %d: %v", step, err)
		}
		oplog = append(oplog, fmt.Sprintf("step %d op %d name %q lin %d err %v", step, op, name, v.Lineage, err))
		if step%25 == 24 {
			compared += checkDiffPairs(t, s, views, pairs)
		}
	}
	compared += checkDiffPairs(t, s, views, pairs)
	if steps >= 100 && compared == 0 {
		t.Fatalf("no diff line was compared in %d steps: the test checks nothing", steps)
	}
	t.Logf("%d diff lines compared with the model over %d views", compared, len(views))
}

func checkDiffPairs(t *testing.T, s *Store, views []View, rng *rand.Rand) int {
	t.Helper()
	lines := 0
	for i := 0; i < 6; i++ {
		from, to := views[rng.Intn(len(views))], views[rng.Intn(len(views))]
		a, b := walkTree(t, s, from), walkTree(t, s, to)
		want := modelDiff(a, b)
		got := engineDiff(t, s, from, to, b)
		if strings.Join(want, "\n") != strings.Join(got, "\n") {
			t.Fatalf("diff %+v -> %+v:\nengine:\n%s\nmodel:\n%s", from, to, strings.Join(got, "\n"), strings.Join(want, "\n"))
		}
		lines += len(got)
	}
	return lines
}
