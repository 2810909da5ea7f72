package snap

import (
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/snapfs/snapfs/store"
	"github.com/snapfs/snapfs/store/storetest"
)

// figures prints the space figures of every entry of vol.
func figures(t *testing.T, m *Manager, vol string) string {
	t.Helper()
	if err := m.st.Sync(); err != nil {
		t.Fatal(err)
	}
	l, err := m.List(vol)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, s := range l {
		fmt.Fprintf(&b, "%s %s ref=%d written=%d unique=%d", s.Kind, s.Name, s.Referenced, s.Written, s.Unique)
		if len(s.HeldBy) > 0 {
			fmt.Fprintf(&b, " held-by=%s", strings.Join(s.HeldBy, ","))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// TestSpaceFigures: List and Get report each snapshot's referenced,
// written and unique bytes, a snapshot with branches reports 0 unique
// held by them, and VolumeSpace sums what snapshots and branches hold.
// Chunks are 128 KiB; writeFile truncates and rewrites a whole file.
func TestSpaceFigures(t *testing.T) {
	m, st, v := newTest(t)
	const chunk = 131072
	writeFile(t, st, v, "f", strings.Repeat("a", chunk))
	writeFile(t, st, v, "g", strings.Repeat("b", 2*chunk))
	if _, err := m.Create("vol", "s1"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, st, v, "f", strings.Repeat("c", chunk)) // s1 alone keeps "a"
	if _, err := m.Create("vol", "s2"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, st, v, "g", strings.Repeat("d", 1000)) // inline now: "b" is kept for s1 and s2 together
	want := "" +
		"snapshot s1 ref=393216 written=393216 unique=131072\n" +
		"snapshot s2 ref=393216 written=131072 unique=0\n"
	if got := figures(t, m, "vol"); got != want {
		t.Errorf("figures:\n%s\nwant:\n%s", got, want)
	}
	vs, err := m.VolumeSpace("vol")
	if err != nil {
		t.Fatal(err)
	}
	// "a" (s1 only), and both chunks of "b" (s1 and s2).
	if vs != (VolumeSpace{Snapshots: 3 * chunk}) {
		t.Errorf("VolumeSpace = %+v", vs)
	}

	// A branch from s1 holds it: s1's unique reads 0, held by the branch.
	if _, err := m.CreateBranch("vol", "s1", "try"); err != nil {
		t.Fatal(err)
	}
	bv, err := m.View("vol", "try")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, st, bv, "new", strings.Repeat("e", chunk))
	want = "" +
		"snapshot s1 ref=393216 written=393216 unique=0 held-by=try\n" +
		"snapshot s2 ref=393216 written=131072 unique=0\n" +
		"branch try ref=524288 written=131072 unique=131072\n"
	if got := figures(t, m, "vol"); got != want {
		t.Errorf("figures with a branch:\n%s\nwant:\n%s", got, want)
	}
	s1, err := m.Get("vol", "s1")
	if err != nil {
		t.Fatal(err)
	}
	if s1.Referenced != 3*chunk || s1.Unique != 0 || fmt.Sprint(s1.HeldBy) != "[try]" {
		t.Errorf("Get s1: %+v", s1.Space)
	}
	if vs, err := m.VolumeSpace("vol"); err != nil || vs != (VolumeSpace{Snapshots: 3 * chunk, Branches: chunk}) {
		t.Errorf("VolumeSpace with a branch = %+v, %v", vs, err)
	}

	// Destroying s2 hands "b" to s1 alone (once the branch goes).
	if err := m.Destroy("vol", "s2"); err != nil {
		t.Fatal(err)
	}
	if err := m.DestroyBranch("vol", "try"); err != nil {
		t.Fatal(err)
	}
	want = "snapshot s1 ref=393216 written=393216 unique=393216\n"
	if got := figures(t, m, "vol"); got != want {
		t.Errorf("figures after destroying s2 and the branch:\n%s\nwant:\n%s", got, want)
	}
}

// BenchmarkListWithSpace lists a volume with 1,000 snapshots, each after a
// change, with their space figures and (names) without, and gets one.
func BenchmarkListWithSpace(b *testing.B) {
	st, v := storetest.New(b, 1, store.Options{})
	m := ManagerFor(st)
	b.Cleanup(func() { Release(st) })
	_, h, err := st.Create(v, store.RootIno, "f", 0o644, 0, 0, syscall.O_RDWR)
	if err != nil {
		b.Fatal(err)
	}
	buf := make([]byte, 4096)
	for i := 0; i < 1000; i++ {
		buf[0], buf[1] = byte(i), byte(i>>8)
		if _, err := h.Write(buf, int64(i%64)*4096); err != nil {
			b.Fatal(err)
		}
		if _, err := m.Create("vol", fmt.Sprintf("s%d", i)); err != nil {
			b.Fatal(err)
		}
	}
	if err := h.Release(); err != nil {
		b.Fatal(err)
	}
	for _, c := range []struct {
		name string
		list func(string) ([]Snapshot, error)
	}{{"figures", m.List}, {"names", m.list}} {
		b.Run(c.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				l, err := c.list("vol")
				if err != nil || len(l) != 1000 {
					b.Fatal(len(l), err)
				}
			}
		})
	}
	b.Run("get", func(b *testing.B) {
		for i := 0; i < b.N; i++ {
			if s, err := m.Get("vol", "s500"); err != nil || s.Written == 0 {
				b.Fatal(s, err)
			}
		}
	})
}

// TestSpaceOfBranchDatasets: a branch is a dataset with snapshots and
// branches of its own; each dataset lists its entries' figures, and
// VolumeSpace counts the branches of the whole tree.
func TestSpaceOfBranchDatasets(t *testing.T) {
	m, st, v := newTest(t)
	const chunk = 131072
	writeFile(t, st, v, "f", strings.Repeat("a", chunk))
	if _, err := m.Create("vol", "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.CreateBranch("vol", "s1", "try"); err != nil {
		t.Fatal(err)
	}
	tv, err := m.LiveView("vol/try")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, st, tv, "g", strings.Repeat("b", chunk))
	if _, err := m.Create("vol/try", "t1"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, st, tv, "g", strings.Repeat("c", chunk)) // t1 alone keeps "b"
	if _, err := m.CreateBranch("vol/try", "t1", "fix"); err != nil {
		t.Fatal(err)
	}
	fv, err := m.LiveView("vol/try/fix")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, st, fv, "h", strings.Repeat("d", 2*chunk))
	want := "" +
		"snapshot s1 ref=131072 written=131072 unique=0 held-by=try\n" +
		"branch try ref=262144 written=131072 unique=262144\n"
	if got := figures(t, m, "vol"); got != want {
		t.Errorf("vol:\n%s\nwant:\n%s", got, want)
	}
	want = "" +
		"snapshot t1 ref=262144 written=131072 unique=0 held-by=fix\n" +
		"branch fix ref=524288 written=262144 unique=262144\n"
	if got := figures(t, m, "vol/try"); got != want {
		t.Errorf("vol/try:\n%s\nwant:\n%s", got, want)
	}
	t1, err := m.Get("vol/try", "t1")
	if err != nil || t1.Referenced != 2*chunk || t1.Unique != 0 || fmt.Sprint(t1.HeldBy) != "[fix]" {
		t.Errorf("Get vol/try@t1: %+v, %v", t1.Space, err)
	}
	if vs, err := m.VolumeSpace("vol"); err != nil || vs != (VolumeSpace{Snapshots: 0, Branches: 4 * chunk}) {
		t.Errorf("VolumeSpace(vol) = %+v, %v", vs, err)
	}
	if vs, err := m.VolumeSpace("vol/try"); err != nil || vs != (VolumeSpace{Snapshots: chunk, Branches: 2 * chunk}) {
		t.Errorf("VolumeSpace(vol/try) = %+v, %v", vs, err)
	}
	// Without its branch, t1's unique is what it alone keeps.
	if err := m.DestroyBranch("vol/try", "fix"); err != nil {
		t.Fatal(err)
	}
	want = "snapshot t1 ref=262144 written=131072 unique=131072\n"
	if got := figures(t, m, "vol/try"); got != want {
		t.Errorf("vol/try after destroying fix:\n%s\nwant:\n%s", got, want)
	}
}
