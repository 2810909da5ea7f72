package store

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"syscall"
	"testing"

	"github.com/cockroachdb/pebble/v2"
)

// spaceCmd prints the space figures of the lineage of view v: each pin
// (named by the snapshot that took it in the test), the live view, and the
// bytes held by snapshots. A pin with more than one holder says so.
func spaceCmd(s *Store, views map[string]View, v View) (string, error) {
	if err := s.Sync(); err != nil { // figures count flushed data
		return "", err
	}
	ls, err := s.Space(v.Lineage)
	if err != nil {
		return "", err
	}
	names := map[uint64]string{}
	for n, w := range views {
		if w.Lineage == v.Lineage && !w.Live() {
			names[w.Epoch] = n
		}
	}
	var b strings.Builder
	for _, p := range ls.Pins {
		name := names[p.Epoch]
		if name == "" {
			name = fmt.Sprintf("@%d", p.Epoch)
		}
		fmt.Fprintf(&b, "%s: referenced=%d written=%d unique=%d", name, p.Referenced, p.Written, p.Unique)
		if len(p.Holders) > 1 {
			fmt.Fprintf(&b, " holders=%d", len(p.Holders))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "live: referenced=%d written=%d", ls.Live.Referenced, ls.Live.Written)
	if ls.Live.Unique != 0 {
		fmt.Fprintf(&b, " unique=%d", ls.Live.Unique)
	}
	fmt.Fprintf(&b, "\nsnapshots=%d\n", ls.Snapshots)
	return b.String(), nil
}

// destroySpaceCmd destroys snapshot (or branch) name and prints its unique bytes read
// before, the logical bytes the store's versions lost (by a scan of every
// version, independent of the counters) and the stored bytes the pool's
// chunk records lost. Logical freed equals unique; stored freed is less
// where chunks are shared.
func destroySpaceCmd(s *Store, views map[string]View, name string) (string, error) {
	sv, ok := views[name]
	if !ok {
		return "", fmt.Errorf("no view %q", name)
	}
	if err := s.Sync(); err != nil {
		return "", err
	}
	var unique int64
	if sv.Live() {
		ls, err := s.Space(sv.Lineage)
		if err != nil {
			return "", err
		}
		unique = ls.Live.Unique
	} else {
		ps, err := s.SnapshotSpace(sv.Lineage, sv.Epoch)
		if err != nil {
			return "", err
		}
		unique = ps.Unique
	}
	before, err := scanLogical(s)
	if err != nil {
		return "", err
	}
	_, storedBefore, _, err := s.PoolUsage()
	if err != nil {
		return "", err
	}
	if sv.Live() {
		err = s.DestroyLineage(sv.Lineage, name)
	} else {
		err = s.UnpinEpoch(sv.Lineage, sv.Epoch, name)
	}
	if err != nil {
		return "", err
	}
	delete(views, name)
	if err := s.Sync(); err != nil { // waits for the reclaim walk
		return "", err
	}
	after, err := scanLogical(s)
	if err != nil {
		return "", err
	}
	_, storedAfter, _, err := s.PoolUsage()
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("unique=%d freed=%d stored-freed=%d\n", unique, before-after, storedBefore-storedAfter), nil
}

// scanLogical sums the logical bytes of every stored version by reading
// them all: the test's independent measure of what the counters track.
func scanLogical(s *Store) (int64, error) {
	var n int64
	for _, tag := range []byte{tagInode, tagChunk} {
		lo, hi := tagBounds(tag)
		it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			return 0, err
		}
		for ok := it.First(); ok; ok = it.Next() {
			k := it.Key()
			n += versionBytes(k[:splitKey(k)], it.Value())
		}
		if err := it.Close(); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// spaceCounters lists a lineage's space counters by key.
func spaceCounters(t *testing.T, s *Store, lin uint32) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	err := scanSpace(s.db, lin, LiveEpoch, func(e uint64, kind byte, born uint64, v int64) {
		out[describeKey(spaceKey(lin, e, kind, born))] = v
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// putFile writes data at off of path name in the root of v and closes it.
func putFile(t *testing.T, s *Store, v View, name string, data []byte, off int64) {
	t.Helper()
	a, err := s.Lookup(v, RootIno, name)
	var h *Handle
	if isNotFound(err) {
		_, h, err = s.Create(v, RootIno, name, 0o644, 0, 0, syscall.O_RDWR)
	} else if err == nil {
		h, err = s.Open(v, a.Ino, syscall.O_RDWR)
	}
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Write(data, off); err != nil {
		t.Fatal(err)
	}
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
}

// TestDropSpaceAfter: the range rollback uses removes exactly the counters
// at epochs after r, in one batch.
func TestDropSpaceAfter(t *testing.T) {
	s, v := NewTestStore(t, 1, Options{})
	chunk := func(c byte) []byte { return bytes.Repeat([]byte{c}, 131072) }
	putFile(t, s, v, "f", chunk('a'), 0)
	if _, _, err := s.PinEpoch(v.Lineage, "s1", nil); err != nil {
		t.Fatal(err)
	}
	putFile(t, s, v, "f", chunk('b'), 0)
	if _, _, err := s.PinEpoch(v.Lineage, "s2", nil); err != nil {
		t.Fatal(err)
	}
	putFile(t, s, v, "f", chunk('c'), 0)
	before := spaceCounters(t, s, v.Lineage)
	want := map[string]int64{
		"space/1/born1":         131072,
		"space/1/born2":         131072,
		"space/1/killed2/born1": 131072,
		"space/1/born3":         131072,
		"space/1/killed3/born2": 131072,
	}
	if fmt.Sprint(before) != fmt.Sprint(want) {
		t.Fatalf("counters %v, want %v", before, want)
	}
	b := s.db.NewBatch()
	if err := dropSpaceAfter(b, v.Lineage, 1); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	b.Close()
	after := spaceCounters(t, s, v.Lineage)
	if fmt.Sprint(after) != fmt.Sprint(map[string]int64{"space/1/born1": 131072}) {
		t.Errorf("after dropSpaceAfter(1): %v", after)
	}
	// Put them back (the versions are still there) so the closing Check passes.
	b = s.db.NewBatch()
	for _, c := range []struct {
		e    uint64
		kind byte
		born uint64
	}{{2, spaceBorn, 0}, {2, spaceDead, 1}, {3, spaceBorn, 0}, {3, spaceDead, 2}} {
		_ = b.Merge(spaceKey(v.Lineage, c.e, c.kind, c.born), counterDelta(131072), nil)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		t.Fatal(err)
	}
	b.Close()
}

// TestCheckFindsSpaceErrors: a counter that disagrees with the versions
// it counts, and a referenced figure that disagrees with what the view
// resolves, are both reported.
func TestCheckFindsSpaceErrors(t *testing.T) {
	s, v := NewTestStore(t, 1, Options{})
	putFile(t, s, v, "f", bytes.Repeat([]byte{'a'}, 131072), 0)
	if _, _, err := s.PinEpoch(v.Lineage, "s1", nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		key  []byte
		want string
	}{
		{spaceKey(v.Lineage, 1, spaceBorn, 0), "space/1/born1: 131079 bytes, but the versions it counts hold 131072"},
		{spaceKey(v.Lineage, 1, spaceDead, 1), "space/1/killed1/born1: 7 bytes, but the versions it counts hold 0"},
		{spaceKey(v.Lineage, 2, spaceShadow, 0), "space of lineage 1, live view: referenced 131065, but the view resolves 131072 bytes"},
	} {
		if err := s.db.Merge(c.key, counterDelta(7), pebble.Sync); err != nil {
			t.Fatal(err)
		}
		err := s.Check()
		var ce *CheckError
		if !errors.As(err, &ce) {
			t.Fatalf("Check after corrupting %s: %v", describeKey(c.key), err)
		}
		if !strings.Contains(err.Error(), c.want) {
			t.Errorf("Check after corrupting %s: %v; want a problem containing %q", describeKey(c.key), err, c.want)
		}
		if err := s.db.Merge(c.key, counterDelta(-7), pebble.Sync); err != nil {
			t.Fatal(err)
		}
		if err := s.Check(); err != nil {
			t.Errorf("Check after repairing %s: %v", describeKey(c.key), err)
		}
	}
}

// TestCheckFindsMissingSpaceCounter: a born counter lost while its
// versions remain is reported.
func TestCheckFindsMissingSpaceCounter(t *testing.T) {
	s, v := NewTestStore(t, 1, Options{})
	putFile(t, s, v, "f", bytes.Repeat([]byte{'a'}, 4096), 0)
	k := spaceKey(v.Lineage, 1, spaceBorn, 0)
	if err := s.db.Delete(k, pebble.Sync); err != nil {
		t.Fatal(err)
	}
	err := s.Check()
	if err == nil || !strings.Contains(err.Error(), "space/1: B counter at epoch 1 (born 0) missing: versions hold 4096 bytes") {
		t.Errorf("Check without the born counter: %v", err)
	}
	if err := s.db.Merge(k, counterDelta(4096), pebble.Sync); err != nil {
		t.Fatal(err)
	}
}
