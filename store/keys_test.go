package store

import (
	"bytes"
	"fmt"
	"testing"
)

// TestBoundKeysAreUnversioned checks that every bound and seek-key
// constructor yields a valid key whose Split is the whole key, whatever the
// low byte of its fields (a trailing 9 would look like a version suffix).
func TestBoundKeysAreUnversioned(t *testing.T) {
	for _, v := range []uint64{0, 8, 9, 0x109, 1<<40 - 1} {
		keys := map[string][]byte{
			"direntDirStart": direntDirStart(9, v, v),
			"direntDirEnd":   direntDirEnd(9, v),
			"xattrInoStart":  xattrInoStart(9, v),
			"xattrInoEnd":    xattrInoEnd(9, v),
			"chunkGenStart":  chunkGenStart(9, v, 9, v),
			"chunkGenEnd":    chunkGenEnd(9, v, 9),
			"inodePrefix":    inodePrefix(9, v),
			"orphanKey":      orphanKey(9, v),
			"deadlistKey":    deadlistKey(9, v, v, v),
			"spaceKey":       spaceKey(9, v, spaceDead, v),
			"spaceFrom":      spaceFrom(9, v),
		}
		for name, k := range keys {
			if splitKey(k) != len(k) || k[len(k)-1] != 0 {
				t.Errorf("%s(%d) = %x: split %d of %d", name, v, k, splitKey(k), len(k))
			}
		}
	}
}

// TestKeyOrder checks that versions sort newest first and that a prefix sorts
// before its versions and after shorter names.
func TestKeyOrder(t *testing.T) {
	p := direntPrefix(1, 2, "a")
	ordered := [][]byte{
		direntDirStart(1, 2, nameHash("a")),
		p,
		withEpoch(p, 7),
		withEpoch(p, 3),
		withEpoch(p, 1),
		withEpoch(p, 0),
	}
	for i := 1; i < len(ordered); i++ {
		if bytes.Compare(ordered[i-1], ordered[i]) >= 0 {
			t.Errorf("key %d (%s) does not sort before key %d (%s)", i-1, describeKey(ordered[i-1]), i, describeKey(ordered[i]))
		}
	}
	if keyEpoch(withEpoch(p, 12345)) != 12345 {
		t.Error("keyEpoch does not invert withEpoch")
	}
	if h, name := parseDirentKey(withEpoch(p, 5)); name != "a" || h != nameHash("a") {
		t.Errorf("parseDirentKey = %d %q", h, name)
	}
}

// TestReadDirResumeAtNineCookie resumes listings right after cookies whose
// successor ends in byte 9 (the case a malformed seek key got wrong).
func TestReadDirResumeAtNineCookie(t *testing.T) {
	s, v := NewTestStore(t, 1, Options{})
	var names []string
	for i := 0; len(names) < 40; i++ {
		n := fmt.Sprintf("n%d", i)
		if _, err := s.Mknod(v, RootIno, n, 0o644, 0, 0, 0); err != nil {
			t.Fatal(err)
		}
		if nameHash(n)&0xff == 8 {
			names = append(names, n)
		}
	}
	for _, n := range names {
		after := nameHash(n)
		err := s.ReadDir(v, RootIno, after, func(e DirEntry) bool {
			if e.Cookie <= after {
				t.Errorf("after %q (%d): got %q with cookie %d", n, after, e.Name, e.Cookie)
			}
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// TestSpaceKeys checks the space counter layout: a lineage's counters sort
// by epoch first, so spaceFrom(lin, r+1) .. spaceFrom(lin+1, 0) holds
// exactly its counters at epochs after r (what dropSpaceAfter deletes),
// and describeKey names each kind.
func TestSpaceKeys(t *testing.T) {
	keys := []struct {
		k    []byte
		name string
	}{
		{spaceKey(7, 3, spaceBorn, 0), "space/7/born3"},
		{spaceKey(7, 3, spaceDead, 1), "space/7/killed3/born1"},
		{spaceKey(7, 3, spaceDead, 2), "space/7/killed3/born2"},
		{spaceKey(7, 3, spaceShadow, 0), "space/7/shadow3"},
		{spaceKey(7, 4, spaceBorn, 0), "space/7/born4"},
		{spaceKey(7, 9, spaceDead, 4), "space/7/killed9/born4"},
		{spaceKey(7, 1<<40, spaceBorn, 0), "space/7/born1099511627776"},
	}
	for i, c := range keys {
		if got := describeKey(c.k); got != c.name {
			t.Errorf("describeKey(%x) = %q, want %q", c.k, got, c.name)
		}
		if len(c.k) != spaceKeyLen+1 {
			t.Errorf("%s: length %d", c.name, len(c.k))
		}
		if i > 0 && bytes.Compare(keys[i-1].k, c.k) >= 0 {
			t.Errorf("%s does not sort before %s", keys[i-1].name, c.name)
		}
	}
	// Bounds: from epoch 4 on, and below the next lineage.
	lo, hi := spaceFrom(7, 4), spaceFrom(8, 0)
	for _, c := range keys {
		in := bytes.Compare(c.k, lo) >= 0 && bytes.Compare(c.k, hi) < 0
		if want := be64(c.k[5:]) >= 4; in != want {
			t.Errorf("%s in [spaceFrom(7,4), spaceFrom(8,0)) = %v, want %v", c.name, in, want)
		}
	}
	for _, other := range [][]byte{spaceKey(6, 1<<60, spaceShadow, 0), spaceKey(8, 0, spaceBorn, 0), deadlistKey(7, 5, 4, 1)} {
		if bytes.Compare(other, lo) >= 0 && bytes.Compare(other, hi) < 0 {
			t.Errorf("%s falls inside lineage 7's counter range", describeKey(other))
		}
	}
	if got := describeKey(deadlistKey(7, 5, 4, 12)); got != "deadlist/7/killed5/born4/12" {
		t.Errorf("describeKey(deadlist) = %q", got)
	}
}
