package store

import (
	"fmt"
	"strings"

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
