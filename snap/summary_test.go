package snap

import (
	"fmt"
	"testing"
	"time"

	"github.com/snapfs/snapfs/store"
)

// catalogReads returns the store's count of catalog records visited by
// listings and pin walks so far.
func catalogReads(t *testing.T, st *store.Store) uint64 {
	t.Helper()
	s, err := st.Stats()
	if err != nil {
		t.Fatal(err)
	}
	return s.CatalogReads
}

// TestNamespaceCostFlat counts the catalog records that taking and
// destroying a snapshot read, with the .snapshots directory's attributes
// asked before and after each as the kernel does, on a volume with 50
// snapshots and on one with 300. The counts must be equal: with 10,000
// snapshots every create once listed and decoded every snapshot record
// (53 ms each, issue 16) and every destroy listed them again and walked
// every pin of the lineage. Not a timed test: it counts reads.
func TestNamespaceCostFlat(t *testing.T) {
	cost := func(present int) uint64 {
		m, st, _ := newTest(t)
		for i := range present {
			if _, err := m.Create("vol", fmt.Sprintf("old%d", i)); err != nil {
				t.Fatal(err)
			}
		}
		if _, _, err := m.Summary("vol"); err != nil { // the first listing
			t.Fatal(err)
		}
		before := catalogReads(t, st)
		for i := range 3 {
			name := fmt.Sprintf("new%d", i)
			if _, _, err := m.Summary("vol"); err != nil {
				t.Fatal(err)
			}
			if _, err := m.Create("vol", name); err != nil {
				t.Fatal(err)
			}
			if _, _, err := m.Summary("vol"); err != nil {
				t.Fatal(err)
			}
			if _, err := m.Entry("vol", name); err != nil {
				t.Fatal(err)
			}
			if err := m.Destroy("vol", name); err != nil {
				t.Fatal(err)
			}
			if _, _, err := m.Summary("vol"); err != nil {
				t.Fatal(err)
			}
		}
		if err := m.Destroy("vol", "old0"); err != nil { // the oldest: a pin with no older neighbour
			t.Fatal(err)
		}
		return catalogReads(t, st) - before
	}
	few, many := cost(50), cost(300)
	if few != many {
		t.Fatalf("3 creates and 4 destroys read %d catalog records with 50 snapshots present, %d with 300: the cost grows with the snapshot count", few, many)
	}
}

// TestSummaryMatchesEntries checks Summary against a full listing after
// every kind of namespace change: creates and destroys (kept in place),
// renames, branches, snapshots of a branch, and destroys of branches
// (which drop the cache).
func TestSummaryMatchesEntries(t *testing.T) {
	m, _, _ := newTest(t)
	check := func(step, ds string) {
		t.Helper()
		n, newest, err := m.Summary(ds)
		if err != nil {
			t.Fatalf("%s: Summary(%s): %v", step, ds, err)
		}
		l, err := m.Entries(ds)
		if err != nil {
			t.Fatal(err)
		}
		var want time.Time
		for _, s := range l {
			if s.Created.After(want) {
				want = s.Created
			}
		}
		if n != len(l) || !newest.Equal(want) {
			t.Fatalf("%s: Summary(%s) = %d, %v; the listing has %d, newest %v", step, ds, n, newest, len(l), want)
		}
	}
	steps := []struct {
		name string
		do   func() error
	}{
		{"create s1", func() error { _, err := m.Create("vol", "s1"); return err }},
		{"create s2", func() error { _, err := m.Create("vol", "s2"); return err }},
		{"destroy the newest", func() error { return m.Destroy("vol", "s2") }},
		{"create s3", func() error { _, err := m.Create("vol", "s3"); return err }},
		{"rename", func() error { return m.Rename("vol", "s3", "renamed") }},
		{"branch", func() error { _, err := m.CreateBranch("vol", "s1", "b"); return err }},
		{"snapshot of the branch", func() error { _, err := m.Create("vol/b", "bs"); return err }},
		{"failed destroy", func() error {
			if err := m.Destroy("vol", "s1"); err == nil {
				return fmt.Errorf("destroyed a snapshot with a branch")
			}
			return nil
		}},
		{"destroy the branch's snapshot", func() error { return m.Destroy("vol/b", "bs") }},
		{"destroy the branch", func() error { return m.DestroyBranch("vol", "b") }},
		{"destroy the rest", func() error {
			if err := m.Destroy("vol", "s1"); err != nil {
				return err
			}
			return m.Destroy("vol", "renamed")
		}},
	}
	check("start", "vol")
	for _, st := range steps {
		if err := st.do(); err != nil {
			t.Fatalf("%s: %v", st.name, err)
		}
		check(st.name, "vol")
		if _, err := m.LiveView("vol/b"); err == nil {
			check(st.name, "vol/b")
		}
	}
}
