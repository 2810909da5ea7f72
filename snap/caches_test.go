package snap

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/snapfs/snapfs/store"
)

// fakeCache stands for a mount with the kernel writeback cache: writes
// it has acknowledged reach the store only when the Manager flushes it.
type fakeCache struct {
	t       *testing.T
	st      *store.Store
	v       store.View
	pending map[string]string // name -> content, acknowledged, not stored
	flushes int
	fail    error // returned by the next flush, if set
}

func (c *fakeCache) holds(lin uint32) bool { return lin == c.v.Lineage }

func (c *fakeCache) flush() error {
	c.flushes++
	if c.fail != nil {
		err := c.fail
		c.fail = nil
		return err
	}
	for n, d := range c.pending {
		writeFile(c.t, c.st, c.v, n, d)
	}
	clear(c.pending)
	return nil
}

// TestWriteCachesFlushedBeforePin: every way a snapshot is taken (Create,
// CreateMany, a schedule) and a rollback first flush the write caches
// that hold the lineage, and only those; a snapshot then holds the
// acknowledged writes. A flush that fails fails the snapshot, which does
// not exist afterwards. Check passes at the end.
func TestWriteCachesFlushedBeforePin(t *testing.T) {
	m, st, live := newTest(t)
	if _, err := st.CreateVolume("other", store.VolumeOptions{}); err != nil {
		t.Fatal(err)
	}
	other, err := st.LiveView("other")
	if err != nil {
		t.Fatal(err)
	}
	c := &fakeCache{t: t, st: st, v: live, pending: map[string]string{}}
	o := &fakeCache{t: t, st: st, v: other, pending: map[string]string{}}
	remove := m.AddWriteCache(c.holds, c.flush)
	removeO := m.AddWriteCache(o.holds, o.flush)
	defer removeO()

	tiers, err := ParseTiers([]string{"2s=3"})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 12, 6, 13, 0, 0, 0, time.UTC)
	for i, step := range []struct {
		name string
		take func() (string, error) // returns the snapshot's name
	}{
		{"create", func() (string, error) { _, err := m.Create("vol", "a"); return "a", err }},
		{"create-many", func() (string, error) { _, err := m.CreateMany([]string{"vol"}, "b"); return "b", err }},
		{"schedule", func() (string, error) {
			if _, err := m.SetSchedule("vol", tiers); err != nil {
				return "", err
			}
			r := m.RunSchedules(now)
			if len(r.Taken) != 1 || len(r.Errors) > 0 {
				return "", fmt.Errorf("schedule pass: %+v", r)
			}
			return r.Taken[0][len("vol@"):], m.ClearSchedule("vol")
		}},
	} {
		content := fmt.Sprintf("acknowledged before %s", step.name)
		c.pending["f"] = content
		before, beforeO := c.flushes, o.flushes
		name, err := step.take()
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		if c.flushes != before+1 || o.flushes != beforeO {
			t.Errorf("%s: %d flushes of the volume's cache, %d of the other's; want 1, 0",
				step.name, c.flushes-before, o.flushes-beforeO)
		}
		sv, err := m.View("vol", name)
		if err != nil {
			t.Fatal(err)
		}
		if got := readFile(t, st, sv, "f"); got != content {
			t.Errorf("step %d %s: vol@%s holds %q, want %q", i, step.name, name, got, content)
		}
	}

	// A failing flush fails the snapshot: nothing is pinned.
	no := errors.New("kernel said no")
	c.fail = no
	if _, err := m.Create("vol", "x"); err == nil || !errors.Is(err, no) {
		t.Errorf("create with a failing flush: %v", err)
	}
	if _, err := m.Get("vol", "x"); !errors.Is(err, ErrNoSnapshot) {
		t.Errorf("snapshot of a failed flush: %v, want ErrNoSnapshot", err)
	}

	// A rollback flushes first: the write acknowledged before it is
	// discarded with the rest instead of landing after it.
	c.pending["late"] = "written before the rollback"
	if _, err := m.Rollback("vol", "a", true); err != nil {
		t.Fatal(err)
	}
	if len(c.pending) != 0 {
		t.Error("the rollback did not flush the cache")
	}
	if _, err := st.Lookup(live, store.RootIno, "late"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a file written before the rollback survives it: %v", err)
	}
	if got := readFile(t, st, live, "f"); got != "acknowledged before create" {
		t.Errorf("after the rollback f = %q", got)
	}

	// Removed, a cache is flushed no more; sync flushes every cache.
	remove()
	n := c.flushes
	if _, err := m.Create("vol", "after"); err != nil {
		t.Fatal(err)
	}
	if err := m.FlushWriteCaches(); err != nil {
		t.Fatal(err)
	}
	if c.flushes != n || o.flushes == 0 {
		t.Errorf("removed cache flushed %d more times; other cache flushed %d times", c.flushes-n, o.flushes)
	}
	if err := st.Check(); err != nil {
		t.Fatal(err)
	}
}
