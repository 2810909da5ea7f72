package store

import (
	"syscall"
	"testing"
)

// TestDeferredAttrs: a change of times or permission bits of an open
// regular file (deferRecord: cp -a's utimensat and minimal ACL) is seen at
// once, is in a snapshot taken before the file's next flush, is durable
// after fsync, and is committed by the flush its release queues; changes
// deferRecord must not take (owner, size, a directory, a closed file) are
// committed at once.
func TestDeferredAttrs(t *testing.T) {
	s, live := NewTestStore(t, 1, Options{})
	f, h, err := s.Create(live, RootIno, "f", sIFREG|0o600, 0, 0, syscall.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Write([]byte("data"), 0); err != nil {
		t.Fatal(err)
	}
	stored := func(v View) inodeRec { // the record in the database
		t.Helper()
		chain, err := s.chain(v)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := s.getInode(s.dbr(), chain, f.Ino)
		if err != nil {
			t.Fatal(err)
		}
		return rec
	}
	want := func(what string, v View, mode uint32, mtime int64) {
		t.Helper()
		a, err := s.GetAttr(v, f.Ino)
		if err != nil {
			t.Fatal(err)
		}
		if a.Mode&0o7777 != mode || a.Mtime != mtime {
			t.Errorf("%s: mode %o mtime %d, want %o %d", what, a.Mode&0o7777, a.Mtime, mode, mtime)
		}
	}
	const t1, t2, t3 = int64(1e18), int64(2e18), int64(3e18)
	for _, c := range []struct {
		what     string
		in       SetAttrIn
		deferred bool
	}{
		{"times of an open file", SetAttrIn{Valid: SetAtime | SetMtime, Atime: t1, Mtime: t1}, true},
		{"mode of an open file", SetAttrIn{Valid: SetMode, Mode: 0o644}, true},
		{"owner", SetAttrIn{Valid: SetUid, Uid: 7}, false},
	} {
		before := stored(live)
		a, err := s.SetAttr(live, f.Ino, c.in)
		if err != nil {
			t.Fatalf("%s: %v", c.what, err)
		}
		after := stored(live)
		if changed := after.Mode != before.Mode || after.Mtime != before.Mtime || after.Uid != before.Uid; changed == c.deferred {
			t.Errorf("%s: stored record changed %v, want deferred %v", c.what, changed, c.deferred)
		}
		if got, _ := s.GetAttr(live, f.Ino); got.Mode != a.Mode || got.Mtime != a.Mtime || got.Uid != a.Uid {
			t.Errorf("%s: GetAttr %+v, SetAttr replied %+v", c.what, got, a)
		}
	}
	want("after the changes", live, 0o644, t1)

	// A snapshot holds the deferred changes.
	if _, err := s.SetAttr(live, f.Ino, SetAttrIn{Valid: SetMtime, Mtime: t2}); err != nil {
		t.Fatal(err)
	}
	snap, _, err := s.PinEpoch(live.Lineage, "s1", nil)
	if err != nil {
		t.Fatal(err)
	}
	want("snapshot", snap, 0o644, t2)

	// A mode-equivalent ACL is a deferred chmod; fsync commits it.
	minimal := encodeACL(mkACL([3]uint32{aclUserObj, 6, aclNoID}, [3]uint32{aclGroupObj, 4, aclNoID}, [3]uint32{aclOther, 0, aclNoID}))
	if err := s.SetXattr(live, f.Ino, ACLAccess, minimal, 0); err != nil {
		t.Fatal(err)
	}
	if m := stored(live).Mode & 0o7777; m == 0o640 {
		t.Errorf("minimal ACL committed at once, want deferred")
	}
	want("minimal ACL", live, 0o640, t2)
	if err := h.Fsync(false); err != nil {
		t.Fatal(err)
	}
	if r := stored(live); r.Mode&0o7777 != 0o640 || r.Mtime != t2 {
		t.Errorf("after fsync: stored mode %o mtime %d, want 640 %d", r.Mode&0o7777, r.Mtime, t2)
	}

	// Release queues the flush of a record changed after the last one.
	if _, err := s.SetAttr(live, f.Ino, SetAttrIn{Valid: SetMtime | SetMode, Mtime: t3, Mode: 0o600}); err != nil {
		t.Fatal(err)
	}
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
	if err := s.flushAll(); err != nil {
		t.Fatal(err)
	}
	if r := stored(live); r.Mode&0o7777 != 0o600 || r.Mtime != t3 {
		t.Errorf("after release: stored mode %o mtime %d, want 600 %d", r.Mode&0o7777, r.Mtime, t3)
	}
	// A closed file's change is committed at once.
	if _, err := s.SetAttr(live, f.Ino, SetAttrIn{Valid: SetMode, Mode: 0o755}); err != nil {
		t.Fatal(err)
	}
	if m := stored(live).Mode & 0o7777; m != 0o755 {
		t.Errorf("chmod of a closed file: stored mode %o, want 755", m)
	}
	want("snapshot, unchanged", snap, 0o644, t2)
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}
