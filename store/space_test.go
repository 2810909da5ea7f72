package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"strings"
	"syscall"
	"testing"
	"time"

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

// checkSnapshotSpace compares SnapshotSpace (bounded reads and the
// referenced cache) with Space (a full pass) for every pin of every
// lineage in lives and of their snapshots.
func checkSnapshotSpace(t *testing.T, s *Store, lives []View) {
	t.Helper()
	for _, v := range lives {
		ls, err := s.Space(v.Lineage)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range ls.Pins {
			got, err := s.SnapshotSpace(v.Lineage, p.Epoch)
			if err != nil {
				t.Fatal(err)
			}
			if got.SpaceFigures != p.SpaceFigures || len(got.Holders) != len(p.Holders) {
				t.Errorf("pin %d@%d: SnapshotSpace %+v, Space %+v", v.Lineage, p.Epoch, got, p)
			}
		}
	}
}

// TestSpaceRandom runs seeded random sequences of writes (chunked and
// inline), overwrites, truncates, unlinks, snapshots, branches and
// destroys in any order, and checks at every destroy that the unique bytes
// read before equal the logical bytes the destroy freed (by a scan of
// every version), and with Check (which recomputes every counter and every
// view's referenced bytes) after every few steps.
func TestSpaceRandom(t *testing.T) {
	for seed := int64(1); seed <= 4; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { spaceRandom(t, seed, 150) })
	}
}

func spaceRandom(t *testing.T, seed int64, steps int) {
	s, live := NewTestStore(t, 1, Options{})
	rng := rand.New(rand.NewSource(seed))
	type snapRec struct {
		name string
		v    View
	}
	lives := []View{live} // the volume and its branches
	var snaps []snapRec
	branchOf := map[uint32]string{} // branch lineage -> holder name
	n := 0
	var destroys, freeing, branchDestroys int
	destroy := func(name string, v View) {
		t.Helper()
		views := map[string]View{name: v}
		out, err := destroySpaceCmd(s, views, name)
		if err != nil {
			t.Fatalf("step %d: destroy %s: %v", n, name, err)
		}
		var unique, freed, stored int64
		if _, err := fmt.Sscanf(out, "unique=%d freed=%d stored-freed=%d", &unique, &freed, &stored); err != nil {
			t.Fatalf("step %d: %q: %v", n, out, err)
		}
		if unique != freed {
			t.Fatalf("step %d: destroying %s: unique %d, freed %d", n, name, unique, freed)
		}
		destroys++
		if freed > 0 {
			freeing++
		}
		if v.Live() {
			branchDestroys++
		}
	}
	for n = 0; n < steps; n++ {
		v := lives[rng.Intn(len(lives))]
		name := fmt.Sprintf("f%d", rng.Intn(6))
		switch op := rng.Intn(20); {
		case op < 7: // write: inline, one chunk, or several at an offset
			size := []int{100, 3000, 131072, 300000}[rng.Intn(4)]
			off := int64(rng.Intn(3)) * 65536
			data := make([]byte, size)
			rng.Read(data)
			for i := range data {
				data[i] |= 1 // no zero bytes: sizes stay exact
			}
			putFile(t, s, v, name, data, off)
		case op < 9: // truncate
			a, err := s.Lookup(v, RootIno, name)
			if err == nil {
				size := []uint64{0, 1000, 100000, 200000}[rng.Intn(4)]
				if _, err := s.SetAttr(v, a.Ino, SetAttrIn{Valid: SetSize, Size: size}); err != nil {
					t.Fatal(err)
				}
			}
		case op < 11: // unlink
			if err := s.Unlink(v, RootIno, name); err != nil && !isNotFound(err) {
				t.Fatal(err)
			}
		case op < 14: // snapshot
			sn := fmt.Sprintf("s%d", n)
			sv, _, err := s.PinEpoch(v.Lineage, sn, nil)
			if err != nil {
				t.Fatal(err)
			}
			snaps = append(snaps, snapRec{sn, sv})
		case op < 15 && len(snaps) > 0: // branch
			from := snaps[rng.Intn(len(snaps))]
			bn := fmt.Sprintf("b%d", n)
			bv, err := s.ForkLineage(from.v, bn, nil)
			if err != nil {
				t.Fatal(err)
			}
			lives = append(lives, bv)
			branchOf[bv.Lineage] = bn
		case op < 18 && len(snaps) > 0: // destroy a snapshot no branch or snapshot of a branch needs
			i := rng.Intn(len(snaps))
			sr := snaps[i]
			if ps, err := s.SnapshotSpace(sr.v.Lineage, sr.v.Epoch); err != nil || len(ps.Holders) > 1 {
				continue // held by a branch point
			}
			destroy(sr.name, sr.v)
			snaps = append(snaps[:i], snaps[i+1:]...)
		case op < 20 && len(lives) > 1: // destroy a branch without snapshots
			i := 1 + rng.Intn(len(lives)-1)
			bv := lives[i]
			if pins, err := s.Pins(bv.Lineage); err != nil || len(pins) > 0 {
				continue
			}
			destroy(branchOf[bv.Lineage], bv)
			lives = append(lives[:i], lives[i+1:]...)
		}
		if n%25 == 24 {
			if err := s.Check(); err != nil {
				t.Fatalf("step %d: %v", n, err)
			}
			checkSnapshotSpace(t, s, lives)
		}
	}
	left := len(snaps)
	// Destroy everything left, in whatever order is allowed, each checked.
	for len(snaps) > 0 || len(lives) > 1 {
		progress := false
		for i := len(lives) - 1; i >= 1; i-- {
			if pins, err := s.Pins(lives[i].Lineage); err == nil && len(pins) == 0 {
				destroy(branchOf[lives[i].Lineage], lives[i])
				lives = append(lives[:i], lives[i+1:]...)
				progress = true
			}
		}
		for i := len(snaps) - 1; i >= 0; i-- {
			if ps, err := s.SnapshotSpace(snaps[i].v.Lineage, snaps[i].v.Epoch); err == nil && len(ps.Holders) == 1 {
				destroy(snaps[i].name, snaps[i].v)
				snaps = append(snaps[:i], snaps[i+1:]...)
				progress = true
			}
		}
		if !progress {
			t.Fatalf("nothing can be destroyed: %d snapshots, %d branches", len(snaps), len(lives)-1)
		}
	}
	if ls, err := s.Space(live.Lineage); err != nil || ls.Snapshots != 0 || len(ls.Pins) != 0 {
		t.Errorf("after destroying everything: %+v, %v", ls, err)
	}
	t.Logf("seed %d: %d destroys (%d of them freed bytes, %d of branches), %d snapshots left before the final sweep",
		seed, destroys, freeing, branchDestroys, left)
	if freeing == 0 {
		t.Errorf("seed %d: no destroy freed anything: the sequence tests nothing", seed)
	}
}

// TestPowerCutDuringReclaim destroys a snapshot whose reclaim walk takes
// several batches and cuts the power at several moments while it runs: at
// every reopen the walk resumes, and the space counters (which each batch
// changes with the entries it frees) match the versions again (Check),
// with nothing left held by snapshots.
func TestPowerCutDuringReclaim(t *testing.T) {
	pc := newPowerCut(t)
	defer pc.close(t)
	if _, err := pc.s.CreateVolume("small", VolumeOptions{ChunkSize: 4096}); err != nil {
		t.Fatal(err)
	}
	v, _ := pc.s.LiveView("small")
	const chunks = 2500 // more than two reclaim batches of 1024
	data := make([]byte, chunks*4096)
	for i := range data {
		data[i] = byte(i%251) + 1
	}
	if err := writeFileSync(pc.s, v, "f", data, true); err != nil {
		t.Fatal(err)
	}
	if _, _, err := pc.s.PinEpoch(v.Lineage, "s1", nil); err != nil {
		t.Fatal(err)
	}
	for i := range data {
		data[i] = byte(i%241) + 1
	}
	if err := writeFileSync(pc.s, v, "f", data, true); err != nil {
		t.Fatal(err)
	}
	ps, err := pc.s.SnapshotSpace(v.Lineage, 1)
	if err != nil {
		t.Fatal(err)
	}
	if ps.Unique != chunks*4096 {
		t.Fatalf("unique of s1: %d, want %d", ps.Unique, chunks*4096)
	}
	if err := pc.s.UnpinEpoch(v.Lineage, 1, "s1"); err != nil {
		t.Fatal(err)
	}
	for cut := 0; cut < 6; cut++ {
		after := pc.cut(t)
		if err := after.s.Check(); err != nil {
			t.Fatalf("cut %d: %v", cut, err)
		}
		av, _ := after.s.LiveView("small")
		if ls, err := after.s.Space(av.Lineage); err != nil || ls.Snapshots != 0 || ls.Live.Referenced != chunks*4096 {
			t.Errorf("cut %d: space %+v, %v", cut, ls, err)
		}
		after.close(t)
		time.Sleep(time.Duration(cut) * time.Millisecond)
	}
}
