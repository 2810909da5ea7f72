package store

import (
	"encoding/binary"
	"fmt"
)

// POSIX ACLs are stored as ext4 presents them: the xattrs
// system.posix_acl_access and system.posix_acl_default, holding the
// kernel's xattr format (linux/posix_acl_xattr.h): a little-endian uint32
// version 2, then one 8-byte entry per tag (uint16 tag, uint16 perm,
// uint32 id; the id is ACL_UNDEFINED_ID, 0xffffffff, for the entries that
// name no one). They are ordinary xattr versions, so snapshots freeze them,
// branches inherit them and rollback takes them back like any other.
//
// The kernel enforces them (FUSE_POSIX_ACL with default_permissions: it
// reads the xattrs through GETXATTR and caches them) and validates what
// setfacl sends before it reaches us; the rules the kernel leaves to the
// file system are here, each applied in the txn of the change that causes
// it, as ext4 applies them:
//
//   - setting an access ACL sets the permission bits from it
//     (posix_acl_update_mode); an ACL equivalent to a mode (owner, group
//     and other entries only) is not stored, only the mode changes;
//   - chmod rewrites the stored access ACL: owner and other entries, and
//     the mask (or the group entry when there is no mask) (posix_acl_chmod);
//   - a new inode in a directory with a default ACL gets that ACL as its
//     access ACL, masked by the mode asked for instead of the umask
//     (posix_acl_create); a new directory inherits the default ACL too.
//     Without a default ACL the umask applies.
//   - a default ACL is only for directories: EACCES elsewhere.
const (
	ACLAccess  = "system.posix_acl_access"
	ACLDefault = "system.posix_acl_default"
)

// ACL entry tags, from linux/posix_acl.h.
const (
	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20

	aclXattrVersion = 2
)

// aclEntry is one entry of an ACL.
type aclEntry struct {
	tag, perm uint16
	id        uint32
}

// isACLName reports whether an xattr name is one of the two ACLs.
func isACLName(name string) bool { return name == ACLAccess || name == ACLDefault }

// parseACL decodes and validates an ACL xattr value by the kernel's rules
// (posix_acl_valid): entries in tag order (owner, named users, group,
// named groups, mask, other), each base entry once, a mask whenever a user
// or group is named, permissions of at most rwx. Ids are kept as given: a
// uid no account has is stored as given, as on ext4.
func parseACL(v []byte) ([]aclEntry, error) {
	if len(v) < 4+8 || (len(v)-4)%8 != 0 || binary.LittleEndian.Uint32(v) != aclXattrVersion {
		return nil, fmt.Errorf("ACL xattr of %d bytes: %w", len(v), ErrInvalid)
	}
	const (
		wantUserObj = iota
		inUsers
		inGroups
		wantOther
		done
	)
	state, needsMask := wantUserObj, false
	es := make([]aclEntry, 0, (len(v)-4)/8)
	for e := v[4:]; len(e) > 0; e = e[8:] {
		a := aclEntry{tag: binary.LittleEndian.Uint16(e), perm: binary.LittleEndian.Uint16(e[2:]), id: binary.LittleEndian.Uint32(e[4:])}
		if a.perm&^7 != 0 {
			return nil, fmt.Errorf("ACL entry permission %#x: %w", a.perm, ErrInvalid)
		}
		ok := false
		switch a.tag {
		case aclUserObj:
			ok, state = state == wantUserObj, inUsers
		case aclUser:
			ok, needsMask = state == inUsers, true
		case aclGroupObj:
			ok, state = state == inUsers, inGroups
		case aclGroup:
			ok, needsMask = state == inGroups, true
		case aclMask:
			ok, state = state == inGroups, wantOther
		case aclOther:
			ok = state == wantOther || state == inGroups && !needsMask
			state = done
		}
		if !ok {
			return nil, fmt.Errorf("ACL entry tag %#x out of place: %w", a.tag, ErrInvalid)
		}
		es = append(es, a)
	}
	if state != done {
		return nil, fmt.Errorf("ACL without its other entry: %w", ErrInvalid)
	}
	return es, nil
}

// encodeACL is the xattr value of an ACL.
func encodeACL(es []aclEntry) []byte {
	v := binary.LittleEndian.AppendUint32(make([]byte, 0, 4+8*len(es)), aclXattrVersion)
	for _, a := range es {
		v = binary.LittleEndian.AppendUint16(v, a.tag)
		v = binary.LittleEndian.AppendUint16(v, a.perm)
		v = binary.LittleEndian.AppendUint32(v, a.id)
	}
	return v
}

// aclMode returns the permission bits an access ACL gives the file (the
// mask stands for the group bits when there is one), and whether the ACL
// says no more than those bits (posix_acl_equiv_mode).
func aclMode(es []aclEntry) (perm uint32, equiv bool) {
	equiv = true
	var mask, group uint32
	hasMask := false
	for _, a := range es {
		p := uint32(a.perm)
		switch a.tag {
		case aclUserObj:
			perm |= p << 6
		case aclGroupObj:
			group = p
		case aclOther:
			perm |= p
		case aclMask:
			mask, hasMask, equiv = p, true, false
		default:
			equiv = false
		}
	}
	if hasMask {
		group = mask
	}
	return perm | group<<3, equiv
}

// aclChmod rewrites an access ACL for new permission bits (posix_acl_chmod):
// owner and other follow the mode, and the mask, or the group entry when
// there is no mask. Named entries keep their permissions.
func aclChmod(es []aclEntry, mode uint32) []aclEntry {
	out := append([]aclEntry(nil), es...)
	group, mask := -1, -1
	for i := range out {
		switch out[i].tag {
		case aclUserObj:
			out[i].perm = uint16(mode >> 6 & 7)
		case aclOther:
			out[i].perm = uint16(mode & 7)
		case aclMask:
			mask = i
		case aclGroupObj:
			group = i
		}
	}
	if mask >= 0 {
		group = mask
	}
	if group >= 0 {
		out[group].perm = uint16(mode >> 3 & 7)
	}
	return out
}

// aclCreate applies a parent's default ACL to a new inode asking for
// permission bits mode (posix_acl_create_masq): each base entry, or the
// mask in place of the group entry, keeps only the permissions the mode
// grants, and the mode keeps only what the ACL grants. It returns the new
// permission bits and the access ACL to store, nil when it says no more
// than the mode.
func aclCreate(def []aclEntry, mode uint32) (uint32, []aclEntry) {
	es := append([]aclEntry(nil), def...)
	perm := mode & 0o777
	equiv := true
	group, mask := -1, -1
	for i := range es {
		a := &es[i]
		switch a.tag {
		case aclUserObj:
			a.perm &= uint16(perm >> 6 & 7)
			perm &= uint32(a.perm)<<6 | ^uint32(0o700)
		case aclOther:
			a.perm &= uint16(perm & 7)
			perm &= uint32(a.perm) | ^uint32(0o007)
		case aclGroupObj:
			group = i
		case aclMask:
			mask, equiv = i, false
		default:
			equiv = false
		}
	}
	g := group
	if mask >= 0 {
		g = mask
	}
	if g >= 0 {
		es[g].perm &= uint16(perm >> 3 & 7)
		perm &= uint32(es[g].perm)<<3 | ^uint32(0o070)
	}
	if equiv {
		return perm, nil
	}
	return perm, es
}

// getXattrTx reads an xattr of ino through the txn's view; found is false
// when it is absent or removed.
func (t *txn) getXattrTx(ino uint64, name string) (val []byte, found bool, err error) {
	ver, err := resolve(t, t.chain, func(lin uint32) []byte { return xattrPrefix(lin, ino, name) })
	if err != nil || !ver.found {
		return nil, false, err
	}
	val, tomb, err := decodeXattr(ver.value)
	if err != nil || tomb {
		return nil, false, err
	}
	return val, true, nil
}

// SetACL sets an access or default ACL (name is ACLAccess or ACLDefault)
// by the rules in this file's comment, in one txn with the mode change it
// implies. killSgid clears the setgid bit as an access ACL change does
// when the caller is neither in the file's group nor privileged (the
// kernel decides that; the caller passes it on). flags are SetXattr's.
func (s *Store) SetACL(v View, ino uint64, name string, value []byte, flags int, killSgid bool) error {
	if !isACLName(name) {
		return fmt.Errorf("ACL name %q: %w", name, ErrInvalid)
	}
	es, err := parseACL(value)
	if err != nil {
		return err
	}
	return s.changeXattr(v, ino, name, func(t *txn, rec *inodeRec, exists bool) error {
		switch {
		case flags&XattrCreate != 0 && exists:
			return fmt.Errorf("xattr %q: %w", name, ErrExists)
		case flags&XattrReplace != 0 && !exists:
			return fmt.Errorf("xattr %q: %w", name, ErrNoData)
		case rec.Mode&sIFMT == sIFLNK:
			return fmt.Errorf("ACL on a symbolic link: %w", ErrNotSupported)
		}
		if name == ACLDefault {
			if rec.Mode&sIFMT != sIFDIR {
				return fmt.Errorf("default ACL on a non-directory: %w", ErrAccess)
			}
			return t.put(xattrPrefix(t.l.rec.ID, ino, name), encodeXattr(encodeACL(es), false))
		}
		perm, equiv := aclMode(es)
		rec.Mode = rec.Mode&^0o777 | perm
		if killSgid {
			rec.Mode &^= 0o2000
		}
		if equiv {
			// As ext4: the mode says it all, and no ACL is kept.
			if !exists {
				return nil
			}
			return t.removeXattrKey(ino, name)
		}
		return t.put(xattrPrefix(t.l.rec.ID, ino, name), encodeXattr(encodeACL(es), false))
	})
}

// chmodACL keeps a stored access ACL in step with new permission bits, in
// the txn of the chmod; an inode that never had an xattr costs nothing.
func (t *txn) chmodACL(ino uint64, rec inodeRec) error {
	if rec.Flags&inodeXattrs == 0 || rec.Mode&sIFMT == sIFLNK {
		return nil
	}
	val, found, err := t.getXattrTx(ino, ACLAccess)
	if err != nil || !found {
		return err
	}
	es, err := parseACL(val)
	if err != nil {
		return fmt.Errorf("stored access ACL of inode %d: %w", ino, err)
	}
	return t.put(xattrPrefix(t.l.rec.ID, ino, ACLAccess), encodeXattr(encodeACL(aclChmod(es, rec.Mode)), false))
}

// inheritACL applies the default ACL of a directory (prec, its record) to
// a new inode's record inside the create's txn: it returns the access ACL
// and the default ACL to store on the new inode (nil for none), and
// changes rec's permission bits. Without a default ACL it applies umask
// when one was carried in (see WithUmask).
func (t *txn) inheritACL(parent uint64, prec inodeRec, rec *inodeRec, umask uint32, hasUmask bool) (access, def []byte, err error) {
	var dv []byte
	if prec.Flags&inodeXattrs != 0 && rec.Mode&sIFMT != sIFLNK {
		val, found, err := t.getXattrTx(parent, ACLDefault)
		if err != nil {
			return nil, nil, err
		}
		if found {
			dv = val
		}
	}
	if dv == nil {
		if hasUmask {
			rec.Mode &^= umask & 0o777
		}
		return nil, nil, nil
	}
	es, err := parseACL(dv)
	if err != nil {
		return nil, nil, fmt.Errorf("default ACL of directory %d: %w", parent, err)
	}
	perm, acc := aclCreate(es, rec.Mode)
	rec.Mode = rec.Mode&^0o777 | perm
	if acc != nil {
		access = encodeACL(acc)
	}
	if rec.Mode&sIFMT == sIFDIR {
		def = dv
	}
	return access, def, nil
}

// Bits of a create mode above the file type that carry the caller's umask
// (WithUmask). The kernel sends the mode unmasked when the file system
// applies ACLs (FUSE_DONT_MASK), and the umask beside it.
const (
	umaskShift   = 16
	umaskPresent = 1 << 30
	// createModeBits are the bits of a create mode the store reads.
	createModeBits = 0o7777 | umaskPresent | 0o777<<umaskShift
)

// WithUmask returns a create mode (for Create, Mkdir and Mknod) that
// carries umask: the store applies it when the parent directory has no
// default ACL, and ignores it when it has one, as the kernel does for a
// local file system. A mode without it is used as given.
func WithUmask(mode, umask uint32) uint32 {
	return mode | umaskPresent | (umask&0o777)<<umaskShift
}

// splitUmask takes the umask out of a create mode.
func splitUmask(mode uint32) (uint32, uint32, bool) {
	if mode&umaskPresent == 0 {
		return mode, 0, false
	}
	return mode &^ (umaskPresent | 0o777<<umaskShift), mode >> umaskShift & 0o777, true
}
