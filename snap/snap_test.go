package snap

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/snapfs/snapfs/store"
	"github.com/snapfs/snapfs/store/storetest"
)

func newTest(t *testing.T) (*Manager, *store.Store, store.View) {
	t.Helper()
	st, v := storetest.New(t, 2, store.Options{})
	t.Cleanup(func() { Release(st) })
	return ManagerFor(st), st, v
}

func TestValidName(t *testing.T) {
	tests := []struct {
		name    string
		ok      bool
		tooLong bool
	}{
		{"s1", true, false},
		{"nightly-2026-11-25_12:00", true, false},
		{"with space", true, false},
		{strings.Repeat("x", 255), true, false},
		{strings.Repeat("x", 256), false, true},
		{"", false, false},
		{".", false, false},
		{"..", false, false},
		{"...", true, false},
		{"a/b", false, false},
		{"vol@snap", false, false},
		{"nul\x00", false, false},
	}
	for _, tc := range tests {
		err := ValidName(tc.name)
		if tc.ok != (err == nil) {
			t.Errorf("ValidName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
			continue
		}
		if err == nil {
			continue
		}
		if !errors.Is(err, ErrBadName) || !errors.Is(err, store.ErrBadName) {
			t.Errorf("ValidName(%q) = %v: not ErrBadName", tc.name, err)
		}
		if got := errors.Is(err, store.ErrNameTooLong); got != tc.tooLong {
			t.Errorf("ValidName(%q): ErrNameTooLong = %v, want %v", tc.name, got, tc.tooLong)
		}
	}
}

func writeFile(t *testing.T, st *store.Store, v store.View, name, data string) uint64 {
	t.Helper()
	a, err := st.Lookup(v, store.RootIno, name)
	var h *store.Handle
	switch {
	case err == nil:
		h, err = st.Open(v, a.Ino, syscall.O_RDWR|syscall.O_TRUNC)
	case errors.Is(err, store.ErrNotFound):
		a, h, err = st.Create(v, store.RootIno, name, 0o644, 0, 0, syscall.O_RDWR)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Write([]byte(data), 0); err != nil {
		t.Fatal(err)
	}
	// Left buffered on purpose: the snapshot must flush it.
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
	return a.Ino
}

func readFile(t *testing.T, st *store.Store, v store.View, name string) string {
	t.Helper()
	a, err := st.Lookup(v, store.RootIno, name)
	if err != nil {
		t.Fatalf("lookup %s in view %+v: %v", name, v, err)
	}
	h, err := st.Open(v, a.Ino, syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	buf := make([]byte, a.Size+10)
	n, err := h.Read(buf, 0)
	if err != nil {
		t.Fatal(err)
	}
	return string(buf[:n])
}

func names(t *testing.T, m *Manager, vol string) string {
	t.Helper()
	l, err := m.List(vol)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, s := range l {
		out = append(out, s.Name)
	}
	return strings.Join(out, ",")
}

func TestCreateListRenameDestroy(t *testing.T) {
	m, st, live := newTest(t)
	writeFile(t, st, live, "f", "one")
	s1, err := m.Create("vol", "s1")
	if err != nil {
		t.Fatal(err)
	}
	if s1.ViewID == 0 || s1.ViewID == live.ID || s1.Lineage != live.Lineage || s1.Pause <= 0 {
		t.Fatalf("s1 = %+v", s1)
	}
	writeFile(t, st, live, "f", "two, longer")
	if _, err := m.Create("vol", "s2"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, st, live, "f", "three")
	if got := names(t, m, "vol"); got != "s1,s2" {
		t.Fatalf("list = %s", got)
	}
	if _, err := m.Create("vol", "s1"); !errors.Is(err, ErrSnapshotExists) || !errors.Is(err, store.ErrExists) {
		t.Fatalf("create s1 again: %v", err)
	}
	if _, err := m.Create("vol", "a@b"); !errors.Is(err, ErrBadName) {
		t.Fatalf("create a@b: %v", err)
	}
	if _, err := m.Create("nosuch", "x"); !errors.Is(err, store.ErrNoVolume) {
		t.Fatalf("create in nosuch: %v", err)
	}
	for name, want := range map[string]string{"s1": "one", "s2": "two, longer"} {
		v, err := m.View("vol", name)
		if err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, st, v, "f"); got != want {
			t.Errorf("%s: f = %q, want %q", name, got, want)
		}
		if _, _, err := st.Create(v, store.RootIno, "g", 0o644, 0, 0, syscall.O_RDWR); !errors.Is(err, store.ErrReadOnly) {
			t.Errorf("%s: create in snapshot: %v", name, err)
		}
	}
	if got := readFile(t, st, live, "f"); got != "three" {
		t.Errorf("live f = %q", got)
	}

	if err := m.Rename("vol", "s1", "monday"); err != nil {
		t.Fatal(err)
	}
	if err := m.Rename("vol", "monday", "s2"); !errors.Is(err, ErrSnapshotExists) {
		t.Fatalf("rename onto s2: %v", err)
	}
	if err := m.Rename("vol", "nosuch", "x"); !errors.Is(err, ErrNoSnapshot) || !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("rename nosuch: %v", err)
	}
	if got := names(t, m, "vol"); got != "monday,s2" {
		t.Fatalf("list after rename = %s", got)
	}
	if s, err := m.Get("vol", "monday"); err != nil || s.ViewID != s1.ViewID || s.Epoch != s1.Epoch {
		t.Fatalf("get monday = %+v, %v", s, err)
	}
	v, _ := m.View("vol", "monday")
	if got := readFile(t, st, v, "f"); got != "one" {
		t.Errorf("monday: f = %q", got)
	}

	if err := m.Destroy("vol", "monday"); err != nil {
		t.Fatal(err)
	}
	if err := m.Destroy("vol", "monday"); !errors.Is(err, ErrNoSnapshot) {
		t.Fatalf("destroy twice: %v", err)
	}
	if got := names(t, m, "vol"); got != "s2" {
		t.Fatalf("list after destroy = %s", got)
	}
	if err := m.Destroy("vol", "s2"); err != nil {
		t.Fatal(err)
	}
	if pins, err := st.Pins(live.Lineage); err != nil || len(pins) != 0 {
		t.Fatalf("pins left: %v %v", pins, err)
	}
	if got := readFile(t, st, live, "f"); got != "three" {
		t.Errorf("live f after destroys = %q", got)
	}
	// The name is free again; a new snapshot gets a new view id.
	s1b, err := m.Create("vol", "s1")
	if err != nil || s1b.ViewID == s1.ViewID {
		t.Fatalf("recreate s1: %+v %v", s1b, err)
	}
}

func TestConcurrentCreateOneName(t *testing.T) {
	m, st, live := newTest(t)
	writeFile(t, st, live, "f", "x")
	const n = 8
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = m.Create("vol", "race")
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range errs {
		switch {
		case err == nil:
			won++
		case !errors.Is(err, ErrSnapshotExists):
			t.Errorf("unexpected error %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d creates won", won)
	}
	if pins, _ := st.Pins(live.Lineage); len(pins) != 1 {
		t.Fatalf("pins = %v, want one", pins)
	}
	// Another Manager for the same store is the same one.
	if ManagerFor(st) != m {
		t.Fatal("ManagerFor returned a second manager")
	}
}

func TestBranch(t *testing.T) {
	m, st, live := newTest(t)
	writeFile(t, st, live, "f", "base")
	if _, err := m.Create("vol", "s1"); err != nil {
		t.Fatal(err)
	}
	b, err := m.CreateBranch("vol", "s1", "test")
	if err != nil {
		t.Fatal(err)
	}
	if b.Kind != KindBranch || b.View().ReadOnly || !b.View().Live() {
		t.Fatalf("branch = %+v", b)
	}
	if _, err := m.CreateBranch("vol", "s1", "s1"); !errors.Is(err, ErrSnapshotExists) {
		t.Fatalf("branch named like a snapshot: %v", err)
	}
	if _, err := m.Create("vol", "test"); !errors.Is(err, ErrSnapshotExists) {
		t.Fatalf("snapshot named like a branch: %v", err)
	}
	bv, _ := m.View("vol", "test")
	writeFile(t, st, bv, "f", "branch")
	writeFile(t, st, live, "f", "live")
	sv, _ := m.View("vol", "s1")
	for _, c := range []struct {
		v    store.View
		want string
	}{{bv, "branch"}, {live, "live"}, {sv, "base"}} {
		if got := readFile(t, st, c.v, "f"); got != c.want {
			t.Errorf("view %+v: f = %q, want %q", c.v, got, c.want)
		}
	}
	err = m.Destroy("vol", "s1")
	var be *BranchesError
	if !errors.Is(err, ErrHasBranches) || !errors.As(err, &be) || len(be.Branches) != 1 || be.Branches[0] != "test" {
		t.Fatalf("destroy s1 with branch: %v", err)
	}
	if !strings.Contains(err.Error(), "test") {
		t.Errorf("error does not name the branch: %v", err)
	}
	if err := m.Destroy("vol", "test"); !errors.Is(err, ErrIsBranch) || !errors.Is(err, store.ErrNotEmpty) {
		t.Fatalf("destroy branch: %v", err)
	}
	// Renaming the parent keeps the branch pointing at it.
	if err := m.Rename("vol", "s1", "base"); err != nil {
		t.Fatal(err)
	}
	if g, _ := m.Get("vol", "test"); g.Parent != "base" {
		t.Fatalf("branch parent after rename = %q", g.Parent)
	}
	if got := names(t, m, "vol"); got != "base,test" {
		t.Fatalf("list = %s", got)
	}
	// DestroyBranch removes the branch; then its snapshot can go too.
	if err := m.DestroyBranch("vol", "base"); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("DestroyBranch of a snapshot: %v", err)
	}
	if err := m.DestroyBranch("vol", "test"); err != nil {
		t.Fatal(err)
	}
	if err := m.Destroy("vol", "base"); err != nil {
		t.Fatalf("destroy the parent after its branch: %v", err)
	}
	if got := names(t, m, "vol"); got != "" {
		t.Fatalf("list after destroying all = %q", got)
	}
	if got := readFile(t, st, live, "f"); got != "live" {
		t.Fatalf("live f after destroying the branch = %q", got)
	}
	if err := st.Check(); err != nil {
		t.Fatal(err)
	}
}

func TestSnapshotSpaceReturns(t *testing.T) {
	m, st, live := newTest(t)
	big := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB, not zeros
	writeFile(t, st, live, "big", string(big))
	_, stored0, _, err := st.PoolUsage()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create("vol", "s"); err != nil {
		t.Fatal(err)
	}
	if err := st.Unlink(live, store.RootIno, "big"); err != nil {
		t.Fatal(err)
	}
	_, stored1, _, _ := st.PoolUsage()
	if stored1 < stored0 {
		t.Fatalf("snapshot did not keep the data: %d -> %d", stored0, stored1)
	}
	if err := m.Destroy("vol", "s"); err != nil {
		t.Fatal(err)
	}
	if err := st.Sync(); err != nil { // reclaim runs in the background
		t.Fatal(err)
	}
	_, stored2, _, _ := st.PoolUsage()
	if stored2 >= stored1 {
		t.Fatalf("destroy freed nothing: %d -> %d", stored1, stored2)
	}
}
