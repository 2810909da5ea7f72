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
