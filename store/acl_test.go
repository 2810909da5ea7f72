package store

import (
	"bytes"
	"errors"
	"syscall"
	"testing"
)

const aclNoID = 0xffffffff

// mkACL builds an ACL from (tag, perm, id) triples.
func mkACL(es ...[3]uint32) []aclEntry {
	out := make([]aclEntry, len(es))
	for i, e := range es {
		out[i] = aclEntry{tag: uint16(e[0]), perm: uint16(e[1]), id: e[2]}
	}
	return out
}

// TestParseACL: the kernel's validity rules, and an encode round trip.
func TestParseACL(t *testing.T) {
	base := [][3]uint32{{aclUserObj, 6, aclNoID}, {aclGroupObj, 4, aclNoID}, {aclOther, 4, aclNoID}}
	named := [][3]uint32{{aclUserObj, 6, aclNoID}, {aclUser, 4, 4000000}, {aclGroupObj, 4, aclNoID}, {aclGroup, 7, 10}, {aclMask, 6, aclNoID}, {aclOther, 0, aclNoID}}
	for _, tc := range []struct {
		name  string
		value []byte
		ok    bool
	}{
		{"base entries", encodeACL(mkACL(base...)), true},
		{"named with mask, unknown uid", encodeACL(mkACL(named...)), true},
		{"mask without named entries", encodeACL(mkACL([3]uint32{aclUserObj, 6, aclNoID}, [3]uint32{aclGroupObj, 4, aclNoID}, [3]uint32{aclMask, 4, aclNoID}, [3]uint32{aclOther, 4, aclNoID})), true},
		{"named user without mask", encodeACL(mkACL([3]uint32{aclUserObj, 6, aclNoID}, [3]uint32{aclUser, 4, 1}, [3]uint32{aclGroupObj, 4, aclNoID}, [3]uint32{aclOther, 4, aclNoID})), false},
		{"group before owner", encodeACL(mkACL([3]uint32{aclGroupObj, 4, aclNoID}, [3]uint32{aclUserObj, 6, aclNoID}, [3]uint32{aclOther, 4, aclNoID})), false},
		{"owner twice", encodeACL(mkACL([3]uint32{aclUserObj, 6, aclNoID}, [3]uint32{aclUserObj, 6, aclNoID}, [3]uint32{aclGroupObj, 4, aclNoID}, [3]uint32{aclOther, 4, aclNoID})), false},
		{"no other", encodeACL(mkACL([3]uint32{aclUserObj, 6, aclNoID}, [3]uint32{aclGroupObj, 4, aclNoID})), false},
		{"entry after other", encodeACL(mkACL(append(append([][3]uint32{}, base...), [3]uint32{aclOther, 4, aclNoID})...)), false},
		{"perm 8", encodeACL(mkACL([3]uint32{aclUserObj, 8, aclNoID}, [3]uint32{aclGroupObj, 4, aclNoID}, [3]uint32{aclOther, 4, aclNoID})), false},
		{"unknown tag", encodeACL(mkACL([3]uint32{aclUserObj, 6, aclNoID}, [3]uint32{0x40, 4, aclNoID}, [3]uint32{aclGroupObj, 4, aclNoID}, [3]uint32{aclOther, 4, aclNoID})), false},
		{"version 1", append([]byte{1, 0, 0, 0}, encodeACL(mkACL(base...))[4:]...), false},
		{"header only", []byte{2, 0, 0, 0}, false},
		{"truncated", encodeACL(mkACL(base...))[:13], false},
		{"empty", nil, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			es, err := parseACL(tc.value)
			if tc.ok != (err == nil) {
				t.Fatalf("parseACL: %v, want ok=%v", err, tc.ok)
			}
			if err != nil && !errors.Is(err, ErrInvalid) {
				t.Fatalf("parseACL: %v, want ErrInvalid", err)
			}
			if err == nil && !bytes.Equal(encodeACL(es), tc.value) {
				t.Fatalf("round trip: %x, want %x", encodeACL(es), tc.value)
			}
		})
	}
}

// TestACLModeRules: the mode an access ACL gives, chmod's rewrite, and a
// default ACL applied to a new inode, as the kernel's posix_acl code
// computes them for ext4.
func TestACLModeRules(t *testing.T) {
	named := mkACL([3]uint32{aclUserObj, 7, aclNoID}, [3]uint32{aclUser, 7, 1000}, [3]uint32{aclGroupObj, 5, aclNoID}, [3]uint32{aclMask, 6, aclNoID}, [3]uint32{aclOther, 1, aclNoID})
	noMask := mkACL([3]uint32{aclUserObj, 6, aclNoID}, [3]uint32{aclGroupObj, 5, aclNoID}, [3]uint32{aclOther, 4, aclNoID})
	for _, tc := range []struct {
		name  string
		acl   []aclEntry
		perm  uint32
		equiv bool
	}{
		{"base entries", noMask, 0o654, true},
		{"mask stands for the group bits", named, 0o761, false},
	} {
		perm, equiv := aclMode(tc.acl)
		if perm != tc.perm || equiv != tc.equiv {
			t.Errorf("aclMode %s: %o %v, want %o %v", tc.name, perm, equiv, tc.perm, tc.equiv)
		}
	}

	for _, tc := range []struct {
		name string
		acl  []aclEntry
		mode uint32
		want []aclEntry
	}{
		{"mask takes the group bits", named, 0o640,
			mkACL([3]uint32{aclUserObj, 6, aclNoID}, [3]uint32{aclUser, 7, 1000}, [3]uint32{aclGroupObj, 5, aclNoID}, [3]uint32{aclMask, 4, aclNoID}, [3]uint32{aclOther, 0, aclNoID})},
		{"no mask: the group entry does", noMask, 0o705,
			mkACL([3]uint32{aclUserObj, 7, aclNoID}, [3]uint32{aclGroupObj, 0, aclNoID}, [3]uint32{aclOther, 5, aclNoID})},
	} {
		if got := aclChmod(tc.acl, tc.mode); !equalACL(got, tc.want) {
			t.Errorf("aclChmod %s: %v, want %v", tc.name, got, tc.want)
		}
	}

	def := mkACL([3]uint32{aclUserObj, 7, aclNoID}, [3]uint32{aclUser, 7, 65534}, [3]uint32{aclGroupObj, 5, aclNoID}, [3]uint32{aclMask, 7, aclNoID}, [3]uint32{aclOther, 0, aclNoID})
	for _, tc := range []struct {
		name     string
		def      []aclEntry
		mode     uint32
		wantPerm uint32
		want     []aclEntry
	}{
		{"file 0666", def, 0o666, 0o660,
			mkACL([3]uint32{aclUserObj, 6, aclNoID}, [3]uint32{aclUser, 7, 65534}, [3]uint32{aclGroupObj, 5, aclNoID}, [3]uint32{aclMask, 6, aclNoID}, [3]uint32{aclOther, 0, aclNoID})},
		{"directory 0777", def, 0o777, 0o770,
			mkACL([3]uint32{aclUserObj, 7, aclNoID}, [3]uint32{aclUser, 7, 65534}, [3]uint32{aclGroupObj, 5, aclNoID}, [3]uint32{aclMask, 7, aclNoID}, [3]uint32{aclOther, 0, aclNoID})},
		{"base-only default: no access ACL", noMask, 0o777, 0o654, nil},
		{"base-only default masks the mode", noMask, 0o640, 0o640, nil},
	} {
		perm, got := aclCreate(tc.def, tc.mode)
		if perm != tc.wantPerm || !equalACL(got, tc.want) {
			t.Errorf("aclCreate %s: %o %v, want %o %v", tc.name, perm, got, tc.wantPerm, tc.want)
		}
	}
}

func equalACL(a, b []aclEntry) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestACLStore: SetACL with its mode changes, chmod keeping the ACL in
// step, inheritance with and without a default ACL and the umask, a
// snapshot freezing the ACL, and the refusals (default ACL on a file,
// ACL in a snapshot), each leaving nothing changed. Check runs at cleanup.
func TestACLStore(t *testing.T) {
	s, live := NewTestStore(t, 2, Options{})
	dir, err := s.Mkdir(live, RootIno, "d", 0o755, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	f, err := s.Mknod(live, dir.Ino, "f", sIFREG|0o644, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	access := encodeACL(mkACL([3]uint32{aclUserObj, 6, aclNoID}, [3]uint32{aclUser, 4, 4000000}, [3]uint32{aclGroupObj, 4, aclNoID}, [3]uint32{aclMask, 6, aclNoID}, [3]uint32{aclOther, 0, aclNoID}))
	if err := s.SetXattr(live, f.Ino, ACLAccess, access, 0); err != nil {
		t.Fatal(err)
	}
	mode := func(ino uint64) uint32 {
		t.Helper()
		a, err := s.GetAttr(live, ino)
		if err != nil {
			t.Fatal(err)
		}
		return a.Mode & 0o7777
	}
	if m := mode(f.Ino); m != 0o660 {
		t.Errorf("mode after the ACL: %o, want 660", m)
	}
	if _, err := s.SetAttr(live, f.Ino, SetAttrIn{Valid: SetMode, Mode: 0o604}); err != nil {
		t.Fatal(err)
	}
	got, err := s.GetXattr(live, f.Ino, ACLAccess)
	if err != nil {
		t.Fatal(err)
	}
	want := encodeACL(mkACL([3]uint32{aclUserObj, 6, aclNoID}, [3]uint32{aclUser, 4, 4000000}, [3]uint32{aclGroupObj, 4, aclNoID}, [3]uint32{aclMask, 0, aclNoID}, [3]uint32{aclOther, 4, aclNoID}))
	if !bytes.Equal(got, want) {
		t.Errorf("ACL after chmod 604: %x, want %x", got, want)
	}

	// A default ACL on a file is refused; on the directory it is taken.
	def := encodeACL(mkACL([3]uint32{aclUserObj, 7, aclNoID}, [3]uint32{aclGroupObj, 5, aclNoID}, [3]uint32{aclGroup, 5, 10}, [3]uint32{aclMask, 5, aclNoID}, [3]uint32{aclOther, 0, aclNoID}))
	if err := s.SetXattr(live, f.Ino, ACLDefault, def, 0); !errors.Is(err, ErrAccess) {
		t.Errorf("default ACL on a file: %v, want ErrAccess", err)
	}
	if err := s.SetXattr(live, f.Ino, ACLAccess, []byte{2, 0, 0, 0, 1}, 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("malformed ACL: %v, want ErrInvalid", err)
	}
	if got2, _ := s.GetXattr(live, f.Ino, ACLAccess); !bytes.Equal(got2, want) || mode(f.Ino) != 0o604 {
		t.Errorf("refusals changed the file: ACL %x mode %o", got2, mode(f.Ino))
	}
	if err := s.SetXattr(live, dir.Ino, ACLDefault, def, 0); err != nil {
		t.Fatal(err)
	}

	// Inheritance: the umask is ignored under a default ACL.
	sub, err := s.Mkdir(live, dir.Ino, "sub", WithUmask(0o777, 0o077), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if m := sub.Mode & 0o7777; m != 0o750 {
		t.Errorf("new directory's mode: %o, want 750", m)
	}
	if got, err := s.GetXattr(live, sub.Ino, ACLDefault); err != nil || !bytes.Equal(got, def) {
		t.Errorf("new directory's default ACL: %x %v, want %x", got, err, def)
	}
	nf, h, err := s.Create(live, sub.Ino, "nf", WithUmask(0o666, 0o077), 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
	if m := nf.Mode & 0o7777; m != 0o640 {
		t.Errorf("new file's mode: %o, want 640", m)
	}
	wantAcc := encodeACL(mkACL([3]uint32{aclUserObj, 6, aclNoID}, [3]uint32{aclGroupObj, 5, aclNoID}, [3]uint32{aclGroup, 5, 10}, [3]uint32{aclMask, 4, aclNoID}, [3]uint32{aclOther, 0, aclNoID}))
	if got, err := s.GetXattr(live, nf.Ino, ACLAccess); err != nil || !bytes.Equal(got, wantAcc) {
		t.Errorf("new file's access ACL: %x %v, want %x", got, err, wantAcc)
	}
	if _, err := s.GetXattr(live, nf.Ino, ACLDefault); !errors.Is(err, ErrNoData) {
		t.Errorf("new file's default ACL: %v, want none", err)
	}
	// Without a default ACL the umask applies; a mode without one is kept.
	plain, err := s.Mkdir(live, RootIno, "plain", WithUmask(0o777, 0o027), 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if m := plain.Mode & 0o7777; m != 0o750 {
		t.Errorf("directory without a default ACL, umask 027: %o, want 750", m)
	}

	// A snapshot freezes the ACL and refuses changes to it.
	snap, _, err := s.PinEpoch(live.Lineage, "s1", nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RemoveXattr(live, f.Ino, ACLAccess); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetXattr(snap, f.Ino, ACLAccess); err != nil || !bytes.Equal(got, want) {
		t.Errorf("snapshot's ACL after removal in the live view: %x %v, want %x", got, err, want)
	}
	if err := s.SetXattr(snap, f.Ino, ACLAccess, access, 0); !errors.Is(err, ErrReadOnly) {
		t.Errorf("ACL in a snapshot: %v, want ErrReadOnly", err)
	}
	if err := s.UnpinEpoch(live.Lineage, snap.Epoch, "s1"); err != nil {
		t.Fatal(err)
	}
}

// TestMinimalACLStoresNothing: an access ACL equivalent to a mode (what
// cp -a sets on every file it copies) changes the mode and stores no
// xattr, so the inode keeps answering xattr lookups from its record; a
// full ACL set later and replaced by a minimal one is removed. Then
// Handle.KillCapability (the daemon's part of a write through a
// write-only open) removes security.capability and nothing else.
func TestMinimalACLStoresNothing(t *testing.T) {
	s, live := NewTestStore(t, 1, Options{})
	minimal := func(perm uint32) []byte {
		return encodeACL(mkACL([3]uint32{aclUserObj, perm >> 6 & 7, aclNoID}, [3]uint32{aclGroupObj, perm >> 3 & 7, aclNoID}, [3]uint32{aclOther, perm & 7, aclNoID}))
	}
	full := encodeACL(mkACL([3]uint32{aclUserObj, 6, aclNoID}, [3]uint32{aclUser, 4, 1234}, [3]uint32{aclGroupObj, 4, aclNoID}, [3]uint32{aclMask, 4, aclNoID}, [3]uint32{aclOther, 0, aclNoID}))
	f, h, err := s.Create(live, RootIno, "f", sIFREG|0o600, 0, 0, syscall.O_WRONLY)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Release()
	state := func() (mode uint32, flagged bool, names []string) {
		t.Helper()
		chain, err := s.chain(live)
		if err != nil {
			t.Fatal(err)
		}
		rec, err := s.getInode(s.dbr(), chain, f.Ino)
		if err != nil {
			t.Fatal(err)
		}
		a, err := s.GetAttr(live, f.Ino)
		if err != nil {
			t.Fatal(err)
		}
		names, err = s.ListXattr(live, f.Ino)
		if err != nil {
			t.Fatal(err)
		}
		return a.Mode & 0o7777, rec.Flags&inodeXattrs != 0, names
	}
	for _, step := range []struct {
		what      string
		set       []byte // an access ACL to set; nil: a capability, then KillCapability
		wantMode  uint32
		wantFlag  bool
		wantNames int
	}{
		{"minimal ACL on a new file", minimal(0o644), 0o644, false, 0},
		{"another minimal ACL", minimal(0o640), 0o640, false, 0},
		{"full ACL", full, 0o640, true, 1},
		{"minimal ACL over the full one", minimal(0o604), 0o604, true, 0},
		{"capability removed by a write-only write", nil, 0o604, true, 0},
	} {
		if step.set != nil {
			if err := s.SetXattr(live, f.Ino, ACLAccess, step.set, 0); err != nil {
				t.Fatalf("%s: %v", step.what, err)
			}
		} else {
			if err := s.SetXattr(live, f.Ino, "security.capability", []byte{1, 0, 0, 2, 0, 32, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}, 0); err != nil {
				t.Fatal(err)
			}
			if err := s.SetXattr(live, f.Ino, "user.kept", []byte("v"), 0); err != nil {
				t.Fatal(err)
			}
			if err := h.KillCapability(); err != nil {
				t.Fatalf("%s: %v", step.what, err)
			}
			if err := h.KillCapability(); err != nil { // none left: not an error
				t.Fatalf("%s, again: %v", step.what, err)
			}
			if err := s.RemoveXattr(live, f.Ino, "user.kept"); err != nil {
				t.Errorf("%s: user.kept: %v", step.what, err)
			}
		}
		mode, flagged, names := state()
		if mode != step.wantMode || flagged != step.wantFlag || len(names) != step.wantNames {
			t.Errorf("%s: mode %o, xattr flag %v, xattrs %q; want %o, %v, %d", step.what, mode, flagged, names, step.wantMode, step.wantFlag, step.wantNames)
		}
	}
	if _, err := s.GetXattr(live, f.Ino, "security.capability"); !errors.Is(err, ErrNoData) {
		t.Errorf("security.capability after KillCapability: %v, want ErrNoData", err)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}
