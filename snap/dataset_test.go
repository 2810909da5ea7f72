package snap

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"syscall"
	"testing"

	"github.com/cockroachdb/datadriven"

	"github.com/snapfs/snapfs/store"
	"github.com/snapfs/snapfs/store/storetest"
)

func TestParseDataset(t *testing.T) {
	tests := []struct {
		in       string
		vol      string
		branches string // joined with ','
		ok       bool
	}{
		{"vol", "vol", "", true},
		{"vol/b", "vol", "b", true},
		{"vol/b/c/d", "vol", "b,c,d", true},
		{"vol/with space", "vol", "with space", true},
		{"", "", "", false},
		{"/vol", "", "", false},
		{"vol/", "", "", false},
		{"vol//b", "", "", false},
		{"vol/b/", "", "", false},
		{"vol/.", "", "", false},
		{"vol/..", "", "", false},
		{"vol@s1", "", "", false},
		{"vol/b@s1", "", "", false},
		{"vol/b\x00", "", "", false},
		{"vol/" + strings.Repeat("x", 256), "", "", false},
	}
	for _, tc := range tests {
		vol, brs, err := ParseDataset(tc.in)
		if tc.ok != (err == nil) {
			t.Errorf("ParseDataset(%q) = %v, want ok=%v", tc.in, err, tc.ok)
			continue
		}
		if err != nil {
			if !errors.Is(err, ErrBadDataset) || !errors.Is(err, store.ErrBadName) {
				t.Errorf("ParseDataset(%q) = %v: not ErrBadDataset", tc.in, err)
			}
			continue
		}
		if vol != tc.vol || strings.Join(brs, ",") != tc.branches {
			t.Errorf("ParseDataset(%q) = %q, %q; want %q, %q", tc.in, vol, brs, tc.vol, tc.branches)
		}
	}
	if VolumeOf("vol/b/c") != "vol" || VolumeOf("vol") != "vol" {
		t.Errorf("VolumeOf: %q %q", VolumeOf("vol/b/c"), VolumeOf("vol"))
	}
}

// TestDatasets runs the operation sequences in testdata/datasets: trees of
// snapshots and branches of any depth, writes in every branch, reads through
// every view, destroy and rename rules, and the space of the pool once
// everything is gone. Each file ends with a Check (the test store's
// cleanup runs one too).
//
// A view is written DATASET (the live view of a volume or branch path) or
// DATASET@SNAP (a snapshot of it). Commands:
//
//	write at=VIEW file=F data=D     create or overwrite root file F
//	rm at=VIEW file=F               unlink root file F
//	read at=VIEW                    every root file of VIEW with its content
//	snapshot ds=DATASET name=N      snapshot N of DATASET
//	branch from=DATASET@SNAP name=N branch N of DATASET (dataset DATASET/N)
//	destroy at=DATASET@SNAP         destroy a snapshot
//	destroy-branch ds=DATASET/N [recursive]
//	rename at=DATASET@OLD new=NEW
//	rollback at=DATASET@SNAP [recursive]
//	list ds=DATASET                 its snapshots and branches, oldest first
//	liveview ds=DATASET             the lineage its live view writes to
//	datasetof ds=DATASET            DatasetOf of its live view id
//	usage [mark]                    chunks in the pool; with mark, remember
//	                                them; without, compare with the mark
//	check                           store Check and the pins of every lineage
func TestDatasets(t *testing.T) {
	datadriven.Walk(t, "testdata/datasets", func(t *testing.T, path string) {
		m, st, _ := newTest(t)
		r := &datasetRunner{m: m, st: st}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			out, err := r.run(d)
			if err != nil {
				return "error: " + err.Error() + "\n"
			}
			return out
		})
	})
}

type datasetRunner struct {
	m     *Manager
	st    *store.Store
	mark  int64 // chunks remembered by "usage mark"
	lins  map[uint32]bool
	dsets []string // every dataset the file made, for check
}

func ddArg(d *datadriven.TestData, key string) string {
	for _, a := range d.CmdArgs {
		if a.Key == key && len(a.Vals) > 0 {
			return a.Vals[0]
		}
	}
	return ""
}

func ddFlag(d *datadriven.TestData, key string) bool {
	for _, a := range d.CmdArgs {
		if a.Key == key {
			return true
		}
	}
	return false
}

// view resolves DATASET or DATASET@SNAP.
func (r *datasetRunner) view(at string) (store.View, error) {
	ds, name, isSnap := strings.Cut(at, "@")
	if !isSnap {
		return r.m.LiveView(ds)
	}
	return r.m.View(ds, name)
}

func (r *datasetRunner) run(d *datadriven.TestData) (string, error) {
	switch d.Cmd {
	case "write", "rm", "read":
		return r.file(d)
	case "snapshot":
		s, err := r.m.Create(ddArg(d, "ds"), ddArg(d, "name"))
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("snapshot %s@%s of lineage %d\n", s.Volume, s.Name, s.Lineage), nil
	case "branch":
		ds, from, _ := strings.Cut(ddArg(d, "from"), "@")
		b, err := r.m.CreateBranch(ds, from, ddArg(d, "name"))
		if err != nil {
			return "", err
		}
		r.remember(b.Lineage)
		return fmt.Sprintf("branch %s/%s: lineage %d forked from %d@%d\n", b.Volume, b.Name, b.Lineage, b.ParentLin, b.ParentEpoch), nil
	case "destroy":
		ds, name, _ := strings.Cut(ddArg(d, "at"), "@")
		return "ok\n", r.m.Destroy(ds, name)
	case "destroy-branch":
		ds := ddArg(d, "ds")
		i := strings.LastIndex(ds, "/")
		if i < 0 {
			return "", fmt.Errorf("destroy-branch needs DATASET/NAME")
		}
		if ddFlag(d, "recursive") {
			return "ok\n", r.m.DestroyBranchRecursive(ds[:i], ds[i+1:])
		}
		return "ok\n", r.m.DestroyBranch(ds[:i], ds[i+1:])
	case "rename":
		ds, old, _ := strings.Cut(ddArg(d, "at"), "@")
		return "ok\n", r.m.Rename(ds, old, ddArg(d, "new"))
	case "rollback":
		ds, name, _ := strings.Cut(ddArg(d, "at"), "@")
		if _, err := r.m.Rollback(ds, name, ddFlag(d, "recursive")); err != nil {
			return "", err
		}
		return "ok\n", nil
	case "list":
		l, err := r.m.List(ddArg(d, "ds"))
		if err != nil {
			return "", err
		}
		var b strings.Builder
		for _, s := range l {
			fmt.Fprintf(&b, "%s %s", s.Kind, s.Name)
			if s.Parent != "" {
				fmt.Fprintf(&b, " from %s", s.Parent)
			}
			b.WriteString("\n")
		}
		if b.Len() == 0 {
			return "(none)\n", nil
		}
		return b.String(), nil
	case "liveview":
		v, err := r.m.LiveView(ddArg(d, "ds"))
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("lineage %d\n", v.Lineage), nil
	case "datasetof":
		v, err := r.m.LiveView(ddArg(d, "ds"))
		if err != nil {
			return "", err
		}
		p, err := r.m.DatasetOf(v.ID)
		if err != nil {
			return "", err
		}
		return p + "\n", nil
	case "usage":
		return r.usage(ddFlag(d, "mark"))
	case "check":
		return r.check()
	}
	return "", fmt.Errorf("unknown command %q", d.Cmd)
}

func (r *datasetRunner) remember(lin uint32) {
	if r.lins == nil {
		r.lins = map[uint32]bool{}
	}
	r.lins[lin] = true
}

// file runs write, rm and read in the root directory of a view.
func (r *datasetRunner) file(d *datadriven.TestData) (string, error) {
	v, err := r.view(ddArg(d, "at"))
	if err != nil {
		return "", err
	}
	name := ddArg(d, "file")
	switch d.Cmd {
	case "write":
		a, err := r.st.Lookup(v, store.RootIno, name)
		var h *store.Handle
		switch {
		case err == nil:
			h, err = r.st.Open(v, a.Ino, syscall.O_RDWR|syscall.O_TRUNC)
		case errors.Is(err, store.ErrNotFound):
			_, h, err = r.st.Create(v, store.RootIno, name, 0o644, 0, 0, syscall.O_RDWR)
		}
		if err != nil {
			return "", err
		}
		// Repeat the data so that the file spans chunks the pool must keep.
		data := strings.Repeat(ddArg(d, "data"), 1000)
		_, err = h.Write([]byte(data), 0)
		if rerr := h.Release(); err == nil {
			err = rerr
		}
		return "ok\n", err
	case "rm":
		return "ok\n", r.st.Unlink(v, store.RootIno, name)
	}
	return r.readRoot(v)
}

// readRoot prints every file of a view's root with the start of its content.
func (r *datasetRunner) readRoot(v store.View) (string, error) {
	var names []string
	err := r.st.ReadDir(v, store.RootIno, 0, func(e store.DirEntry) bool {
		names = append(names, e.Name)
		return true
	})
	if err != nil {
		return "", err
	}
	sort.Strings(names)
	var b strings.Builder
	for _, n := range names {
		a, err := r.st.Lookup(v, store.RootIno, n)
		if err != nil {
			return "", err
		}
		fh, err := r.st.Open(v, a.Ino, syscall.O_RDONLY)
		if err != nil {
			return "", err
		}
		buf := make([]byte, a.Size)
		k, err := fh.Read(buf, 0)
		fh.Release()
		if err != nil {
			return "", err
		}
		// write repeats its data 1000 times: print it once.
		content := string(buf[:k])
		if unit := content[:len(content)/1000]; len(content)%1000 == 0 && strings.Repeat(unit, 1000) == content {
			content = unit
		} else {
			content = fmt.Sprintf("%d bytes, not data written x1000", len(content))
		}
		fmt.Fprintf(&b, "%s: %s\n", n, content)
	}
	if b.Len() == 0 {
		return "(empty)\n", nil
	}
	return b.String(), nil
}

func (r *datasetRunner) usage(mark bool) (string, error) {
	if err := r.st.Sync(); err != nil { // reclaim runs in the background
		return "", err
	}
	_, _, chunks, err := r.st.PoolUsage()
	if err != nil {
		return "", err
	}
	if mark {
		r.mark = chunks
		return fmt.Sprintf("marked %d chunks\n", chunks), nil
	}
	return fmt.Sprintf("%d chunks (%+d since the mark)\n", chunks, chunks-r.mark), nil
}

// check runs the store's Check once reclaim is done, and prints the pins of the volume's lineage
// and of every branch lineage made in the file that still exists.
func (r *datasetRunner) check() (string, error) {
	// Check wants a quiet store: let background reclaim walks finish.
	if err := r.st.Sync(); err != nil {
		return "", err
	}
	if err := r.st.Check(); err != nil {
		return "", err
	}
	live, err := r.st.LiveView("vol")
	if err != nil {
		return "", err
	}
	lins := []uint32{live.Lineage}
	for l := range r.lins {
		lins = append(lins, l)
	}
	sort.Slice(lins, func(i, j int) bool { return lins[i] < lins[j] })
	var b strings.Builder
	b.WriteString("check ok\n")
	for _, l := range lins {
		pins, err := r.st.Pins(l)
		if err != nil {
			return "", err
		}
		if len(pins) > 0 {
			fmt.Fprintf(&b, "lineage %d pins %v\n", l, pins)
		}
	}
	return b.String(), nil
}

// BenchmarkLiveView resolves dataset paths of depth 0, 1, 4 and 8 (one
// meta read per branch component), and DatasetOf of the deepest (cached
// after the first call), as the .snapshots directory of a mounted branch
// does on every request.
func BenchmarkLiveView(b *testing.B) {
	st, _ := storetest.New(b, 2, store.Options{})
	b.Cleanup(func() { Release(st) })
	m := ManagerFor(st)
	path := "vol"
	paths := map[int]string{0: path}
	for depth := 1; depth <= 8; depth++ {
		if _, err := m.Create(path, "s"); err != nil {
			b.Fatal(err)
		}
		if _, err := m.CreateBranch(path, "s", fmt.Sprintf("b%d", depth)); err != nil {
			b.Fatal(err)
		}
		path += fmt.Sprintf("/b%d", depth)
		paths[depth] = path
	}
	for _, depth := range []int{0, 1, 4, 8} {
		b.Run(fmt.Sprintf("depth=%d", depth), func(b *testing.B) {
			for range b.N {
				if _, err := m.LiveView(paths[depth]); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	v, err := m.LiveView(paths[8])
	if err != nil {
		b.Fatal(err)
	}
	b.Run("DatasetOf/depth=8", func(b *testing.B) {
		for range b.N {
			if _, err := m.DatasetOf(v.ID); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("List/depth=8", func(b *testing.B) {
		for range b.N {
			if _, err := m.List(paths[8]); err != nil {
				b.Fatal(err)
			}
		}
	})
}
