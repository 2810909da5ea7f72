package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
)

// Extended attributes, for every node kind. go-fuse's size protocol: a
// zero-length dest asks for the size; a dest too small gets the size and
// ERANGE.

// POSIX ACLs are not supported: without FUSE_POSIX_ACL the kernel passes
// system.posix_acl_* through as plain attributes, which would neither be
// enforced nor update the mode. Refusing them, as ext4 with noacl does,
// makes cp -a and tar fall back to chmod.
func isACL(attr string) bool {
	return attr == "system.posix_acl_access" || attr == "system.posix_acl_default"
}

var _ = (gofs.NodeGetxattrer)((*node)(nil))

// Getxattr serves getxattr(2).
func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
	if isACL(attr) {
		return 0, syscall.EOPNOTSUPP
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
	if isACL(attr) {
		return syscall.EOPNOTSUPP
	}
	return toErrno(n.st().SetXattr(n.view(), n.ino, attr, data, int(flags)))
}

var _ = (gofs.NodeRemovexattrer)((*node)(nil))

// Removexattr serves removexattr(2).
func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	if isACL(attr) {
		return syscall.EOPNOTSUPP
	}
	return toErrno(n.st().RemoveXattr(n.view(), n.ino, attr))
}
