package fs

import (
	"context"
	"encoding/binary"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"

	"github.com/snapfs/snapfs/store"
)

// Extended attributes, for every node kind. go-fuse's size protocol: a
// zero-length dest asks for the size; a dest too small gets the size and
// ERANGE.

// POSIX ACLs: only access ACLs equivalent to a mode are taken, and
// they set the mode, as ext4 does with such an ACL (it stores none). None
// is ever stored, so reading or removing one answers ENODATA. Setting
// other ACLs is refused (EOPNOTSUPP, as ext4 with noacl): without FUSE_POSIX_ACL
// the kernel would pass them through as plain attributes, neither enforced
// nor updating the mode. cp -a and tar set a minimal ACL on every file
// they copy; taking it saves them the chmod they fall back to after a
// refusal, one round trip per file.
func isACL(attr string) bool {
	return attr == aclAccess || attr == "system.posix_acl_default"
}

const aclAccess = "system.posix_acl_access"

// ACL xattr format (linux/posix_acl_xattr.h): a little-endian uint32
// version 2, then entries of tag uint16, perm uint16, id uint32.
const (
	aclVersion  = 2
	aclUserObj  = 0x01
	aclGroupObj = 0x04
	aclOther    = 0x20
)

// minimalACLMode returns the permission bits of an access ACL that holds
// exactly the owner, group and other entries; ok is false for any other
// valid ACL (it names users or groups, or has a mask), and err is EINVAL
// for a malformed one.
func minimalACLMode(v []byte) (mode uint32, ok bool, err syscall.Errno) {
	if len(v) < 4 || (len(v)-4)%8 != 0 || binary.LittleEndian.Uint32(v) != aclVersion {
		return 0, false, syscall.EINVAL
	}
	seen := 0
	for e := v[4:]; len(e) > 0; e = e[8:] {
		tag, perm := binary.LittleEndian.Uint16(e), uint32(binary.LittleEndian.Uint16(e[2:]))
		if perm > 7 {
			return 0, false, syscall.EINVAL
		}
		var shift uint
		switch tag {
		case aclUserObj:
			shift = 6
		case aclGroupObj:
			shift = 3
		case aclOther:
			shift = 0
		default:
			return 0, false, 0
		}
		if seen&int(tag) != 0 {
			return 0, false, syscall.EINVAL
		}
		seen |= int(tag)
		mode |= perm << shift
	}
	if seen != aclUserObj|aclGroupObj|aclOther {
		return 0, false, syscall.EINVAL
	}
	return mode, true, 0
}

// setMinimalACL applies a minimal access ACL as ext4's
// posix_acl_update_mode does: only the owner or root may, the permission
// bits become the ACL's, and setgid goes unless the caller is root or in
// the file's group (known here as its primary group only).
func (n *node) setMinimalACL(ctx context.Context, perm uint32) syscall.Errno {
	a, err := n.st().GetAttr(n.view(), n.ino)
	if err != nil {
		return toErrno(err)
	}
	uid, gid := caller(ctx)
	if uid != 0 && uid != a.Uid {
		return syscall.EPERM
	}
	mode := a.Mode&0o7000 | perm
	if uid != 0 && gid != a.Gid {
		mode &^= 0o2000
	}
	_, err = n.st().SetAttr(n.view(), n.ino, store.SetAttrIn{Valid: store.SetMode, Mode: mode})
	return toErrno(err)
}

var _ = (gofs.NodeGetxattrer)((*node)(nil))

// Getxattr serves getxattr(2).
func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if isACL(attr) {
		return 0, syscall.ENODATA // none is stored: the mode says it all
	}
	val, err := n.st().GetXattr(n.view(), n.ino, attr)
	if err != nil {
		return 0, toErrno(err)
	}
	return copyOut(dest, val)
}

var _ = (gofs.NodeListxattrer)((*node)(nil))

// Listxattr serves listxattr(2): the names, each ended by a NUL.
func (n *node) Listxattr(ctx context.Context, dest []byte) (uint32, syscall.Errno) {
	names, err := n.st().ListXattr(n.view(), n.ino)
	if err != nil {
		return 0, toErrno(err)
	}
	size := 0
	for _, name := range names {
		size += len(name) + 1
	}
	buf := make([]byte, 0, size)
	for _, name := range names {
		buf = append(buf, name...)
		buf = append(buf, 0)
	}
	return copyOut(dest, buf)
}

// copyOut copies val into dest, or reports its size when dest is too small.
func copyOut(dest, val []byte) (uint32, syscall.Errno) {
	if len(dest) < len(val) {
		return uint32(len(val)), syscall.ERANGE
	}
	return uint32(copy(dest, val)), 0
}

var _ = (gofs.NodeSetxattrer)((*node)(nil))

// Setxattr serves setxattr(2); flags are XATTR_CREATE and XATTR_REPLACE.
func (n *node) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	if attr == aclAccess {
		perm, ok, errno := minimalACLMode(data)
		switch {
		case errno != 0:
			return errno
		case !ok:
			return syscall.EOPNOTSUPP
		}
		return n.setMinimalACL(ctx, perm)
	}
	if isACL(attr) {
		return syscall.EOPNOTSUPP
	}
	return toErrno(n.st().SetXattr(n.view(), n.ino, attr, data, int(flags)))
}

var _ = (gofs.NodeRemovexattrer)((*node)(nil))

// Removexattr serves removexattr(2).
func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	if isACL(attr) {
		return syscall.ENODATA // none is stored to remove
	}
	return toErrno(n.st().RemoveXattr(n.view(), n.ino, attr))
}
