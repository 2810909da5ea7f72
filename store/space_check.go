package store

import (
	"fmt"
	"sort"

	"github.com/cockroachdb/pebble/v2"
)

// checkSpace recomputes the space accounting from the versions themselves,
// on one Pebble snapshot (counters change in the batches that change what
// they count, so a snapshot is consistent even on a busy store):
//   - every born(L, e) equals the logical bytes of L's stored versions born
//     at e, and every dlspace(L, k, b) those of L's deadlist entries killed at
//     k and born at b;
//   - the referenced bytes Space reports for every pin and live view equal
//     the sum over the keys the view resolves.
func (s *Store) checkSpace(add func(string, ...any)) error {
	snap := s.db.NewSnapshot()
	defer snap.Close()
	type cell struct {
		lin   uint32
		epoch uint64
		kind  byte
		born  uint64
	}
	want := map[cell]int64{}
	// Stored versions: born counters, and per lineage the versions of each
	// prefix for the referenced figures.
	vers := map[uint32]map[string][]verBytes{}
	for _, tag := range []byte{tagInode, tagChunk} {
		lo, hi := tagBounds(tag)
		it, err := snap.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
		if err != nil {
			return err
		}
		for ok := it.First(); ok; ok = it.Next() {
			k := it.Key()
			p := k[:splitKey(k)]
			lin, e, nb := be32(k[1:]), keyEpoch(k), versionBytes(p, it.Value())
			want[cell{lin, e, spaceBorn, 0}] += nb
			if vers[lin] == nil {
				vers[lin] = map[string][]verBytes{}
			}
			vers[lin][string(p)] = append(vers[lin][string(p)], verBytes{e, nb})
		}
		if err := it.Close(); err != nil {
			return err
		}
	}
	lo, hi := tagBounds(tagDeadlist)
	it, err := snap.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		k, v := it.Key(), it.Value()
		if len(k) < 29 || len(v) < 2 || len(v) < 2+(int(v[0])<<8|int(v[1])) {
			add("%s: malformed deadlist entry", describeKey(k))
			continue
		}
		plen := int(v[0])<<8 | int(v[1])
		want[cell{be32(k[1:]), be64(k[5:]), spaceDead, be64(k[13:])}] += versionBytes(v[2:2+plen], v[2+plen:])
	}
	if err := it.Close(); err != nil {
		return err
	}
	lo, hi = tagBounds(tagSpace)
	it, err = snap.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) != spaceKeyLen+1 {
			add("%x: malformed space counter", k)
			continue
		}
		c := cell{be32(k[1:]), be64(k[5:]), k[13], be64(k[14:])}
		got := decodeCounter(it.Value())
		switch c.kind {
		case spaceBorn, spaceDead:
			if got != want[c] {
				add("%s: %d bytes, but the versions it counts hold %d", describeKey(k), got, want[c])
			}
			delete(want, c)
		case spaceShadow:
			if got < 0 {
				add("%s: negative (%d)", describeKey(k), got)
			}
		default:
			add("%s: unknown counter kind %q", describeKey(k), c.kind)
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	for c, n := range want {
		if n != 0 {
			add("space/%d: %c counter at epoch %d (born %d) missing: versions hold %d bytes", c.lin, c.kind, c.epoch, c.born, n)
		}
	}

	// Referenced bytes of every view, recomputed, against Space.
	s.cat.Lock()
	lins := map[uint32]*lineage{}
	for id, l := range s.cat.lineages {
		lins[id] = l
	}
	s.cat.Unlock()
	rc := refCheck{snap: snap, vers: vers, lins: lins, memo: map[viewPoint]int64{}}
	for id, l := range lins {
		ls, err := s.lineageSpace(snap, l, false)
		if err != nil {
			add("space of lineage %d: %v", id, err)
			continue
		}
		views := []uint64{LiveEpoch}
		figs := []int64{ls.Live.Referenced}
		for _, p := range ls.Pins {
			views = append(views, p.Epoch)
			figs = append(figs, p.Referenced)
		}
		for i, e := range views {
			got, err := rc.referenced(id, e)
			if err != nil {
				return err
			}
			if got != figs[i] {
				at := fmt.Sprintf("epoch %d", e)
				if e == LiveEpoch {
					at = "live view"
				}
				add("space of lineage %d, %s: referenced %d, but the view resolves %d bytes", id, at, figs[i], got)
			}
		}
	}
	return nil
}

// verBytes is one stored version: its epoch and logical bytes.
type verBytes struct {
	epoch uint64
	bytes int64
}

// refCheck recomputes referenced bytes from stored versions.
type refCheck struct {
	snap *pebble.Snapshot
	vers map[uint32]map[string][]verBytes // lineage -> prefix -> versions, newest first
	lins map[uint32]*lineage
	memo map[viewPoint]int64
}

// referenced sums the bytes view (lin, e) resolves: its own versions
// visible at e, plus its parent point's bytes for the keys it has no own
// version of at e.
func (rc *refCheck) referenced(lin uint32, e uint64) (int64, error) {
	if n, ok := rc.memo[viewPoint{lin, e}]; ok {
		return n, nil
	}
	l := rc.lins[lin]
	var base int64
	var chain []viewPoint
	if l != nil && l.parent != nil {
		var err error
		if base, err = rc.referenced(l.parent.rec.ID, l.rec.ParentEpoch); err != nil {
			return 0, err
		}
		for a := l; a.parent != nil; a = a.parent {
			chain = append(chain, viewPoint{a.parent.rec.ID, a.rec.ParentEpoch})
		}
	}
	total := base
	prefixes := make([]string, 0, len(rc.vers[lin]))
	for p := range rc.vers[lin] {
		prefixes = append(prefixes, p)
	}
	sort.Strings(prefixes)
	for _, p := range prefixes {
		vs := rc.vers[lin][p] // key order: newest first
		visible := -1
		for i, v := range vs {
			if v.epoch <= e {
				visible = i
				break
			}
		}
		if visible >= 0 {
			total += vs[visible].bytes
		}
		// The oldest own version hides the inherited one from its epoch on.
		if len(chain) > 0 && vs[len(vs)-1].epoch <= e {
			pb := []byte(p)
			ver, err := resolve(snapReader{rc.snap}, chain, func(lin uint32) []byte { return relineage(pb, lin) })
			if err != nil {
				return 0, err
			}
			if ver.found {
				total -= versionBytes(pb, ver.value)
			}
		}
	}
	rc.memo[viewPoint{lin, e}] = total
	return total, nil
}

// snapReader reads committed versions from a Pebble snapshot.
type snapReader struct{ snap *pebble.Snapshot }

func (r snapReader) seek(p []byte, e uint64) (version, error) {
	it, err := r.snap.NewIter(nil)
	if err != nil {
		return version{}, err
	}
	defer it.Close()
	return seekVersion(it, p, e)
}
