package snap

import (
	"errors"
	"reflect"
	"testing"

	"github.com/snapfs/snapfs/store"
)

// TestRollback: the namespace rules of a rollback, in order: branches
// forked from newer snapshots block it, newer snapshots block it unless
// recursive, a branch or a missing name is no target; then the volume
// reads as the snapshot did and the target stays.
func TestRollback(t *testing.T) {
	m, st, v := newTest(t)
	writeFile(t, st, v, "f", "one")
	if _, err := m.Create("vol", "s1"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, st, v, "f", "two")
	writeFile(t, st, v, "g", "new")
	if _, err := m.Create("vol", "s2"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.CreateBranch("vol", "s2", "b2"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, st, v, "f", "three")

	var ne *NewerSnapshotsError
	_, err := m.Rollback("vol", "s1", true)
	if !errors.As(err, &ne) || !reflect.DeepEqual(ne.Branches, []string{"b2"}) || !errors.Is(err, store.ErrBusy) {
		t.Fatalf("rollback past a branch point: %v", err)
	}
	if err := m.DestroyBranch("vol", "b2"); err != nil {
		t.Fatal(err)
	}
	_, err = m.Rollback("vol", "s1", false)
	if !errors.As(err, &ne) || !reflect.DeepEqual(ne.Snapshots, []string{"s2"}) || len(ne.Branches) != 0 {
		t.Fatalf("rollback past a newer snapshot: %v", err)
	}
	for _, c := range []struct {
		name string
		want error
	}{
		{"nope", ErrNoSnapshot},
		{"a/b", ErrBadName},
	} {
		if _, err := m.Rollback("vol", c.name, true); !errors.Is(err, c.want) {
			t.Errorf("rollback to %q: %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := m.Rollback("novol", "s1", true); !errors.Is(err, store.ErrNoVolume) {
		t.Errorf("rollback of a missing volume: %v", err)
	}
	if got := readFile(t, st, v, "f"); got != "three" {
		t.Fatalf("refused rollbacks changed the volume: f = %q", got)
	}

	// Rolling back to the newest snapshot keeps the older ones.
	stats, err := m.Rollback("vol", "s2", false)
	if err != nil {
		t.Fatal(err)
	}
	if stats.Versions == 0 {
		t.Fatalf("rollback discarded nothing: %+v", stats)
	}
	if got := readFile(t, st, v, "f"); got != "two" {
		t.Fatalf("after rollback to s2: f = %q", got)
	}
	if _, err := m.Rollback("vol", "s1", true); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, st, v, "f"); got != "one" {
		t.Fatalf("after rollback to s1: f = %q", got)
	}
	if _, err := st.Lookup(v, store.RootIno, "g"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("g survived the rollback: %v", err)
	}
	if got := names(t, m, "vol"); got != "s1" {
		t.Fatalf("snapshots after a recursive rollback: %q", got)
	}
	if err := st.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestRollbackToBranch: a branch is no rollback target.
func TestRollbackToBranch(t *testing.T) {
	m, st, v := newTest(t)
	writeFile(t, st, v, "f", "x")
	if _, err := m.Create("vol", "s1"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.CreateBranch("vol", "s1", "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Rollback("vol", "b", false); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("rollback to a branch: %v, want ErrInvalid", err)
	}
}

// TestCreateMany: one snapshot of several volumes in one step; a taken
// name in any of them, a repeated or missing volume change nothing.
func TestCreateMany(t *testing.T) {
	m, st, v := newTest(t)
	if _, err := st.CreateVolume("other", store.VolumeOptions{}); err != nil {
		t.Fatal(err)
	}
	ov, err := st.LiveView("other")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, st, v, "f", "vol before")
	writeFile(t, st, ov, "f", "other before")
	if _, err := m.Create("other", "taken"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		vols []string
		name string
		want error
	}{
		{[]string{"vol", "other"}, "taken", ErrSnapshotExists},
		{[]string{"vol", "vol"}, "x", store.ErrInvalid},
		{[]string{"vol", "nosuch"}, "x", store.ErrNoVolume},
		{nil, "x", store.ErrInvalid},
		{[]string{"vol", "other"}, "a/b", ErrBadName},
	} {
		if _, err := m.CreateMany(c.vols, c.name); !errors.Is(err, c.want) {
			t.Errorf("CreateMany(%v, %q): %v, want %v", c.vols, c.name, err, c.want)
		}
	}
	if got := names(t, m, "vol"); got != "" {
		t.Fatalf("refused calls left snapshots in vol: %q", got)
	}
	snaps, err := m.CreateMany([]string{"other", "vol"}, "both")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, st, v, "f", "vol after")
	writeFile(t, st, ov, "f", "other after")
	for i, want := range []string{"other before", "vol before"} {
		if got := readFile(t, st, snaps[i].View(), "f"); got != want {
			t.Errorf("snapshot %s@both: %q, want %q", snaps[i].Volume, got, want)
		}
		if snaps[i].Pause <= 0 {
			t.Errorf("snapshot %s@both: no pause recorded", snaps[i].Volume)
		}
	}
	if err := st.Check(); err != nil {
		t.Fatal(err)
	}
}
