package fs

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/snapfs/snapfs/store"
)

// Extended attributes, for every node kind. go-fuse's size protocol: a
// zero-length dest asks for the size; a dest too small gets the size and
// ERANGE.

// POSIX ACLs (system.posix_acl_access and system.posix_acl_default) are
// stored by the store as ext4 presents them and enforced by the kernel,
// which reads them back through Getxattr (FUSE_POSIX_ACL, negotiated in
// mount.go). The kernel checks that the caller owns the file and that the
// ACL is well formed before it sends one; the store applies the mode
// change that goes with it (store/acl.go).
func isACL(attr string) bool {
	return attr == store.ACLAccess || attr == store.ACLDefault
}

// killsSgid reports whether setting an access ACL clears the file's
// setgid bit, as the kernel decides for a local file system
// (in_group_or_capable): unless the caller is root or one of its groups,
// primary or supplementary, is the file's group.
func killsSgid(ctx context.Context, fileGid uint32) bool {
	c, ok := fuse.FromContext(ctx)
	if !ok || c.Uid == 0 || c.Gid == fileGid {
		return false
	}
	for _, g := range supplementaryGroups(c.Pid) {
		if g == fileGid {
			return false
		}
	}
	return true
}

// supplementaryGroups reads the Groups line of /proc/PID/status: the
// request carries only the primary group.
func supplementaryGroups(pid uint32) []uint32 {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return nil
	}
	for _, line := range strings.Split(string(b), "\n") {
		rest, ok := strings.CutPrefix(line, "Groups:")
		if !ok {
			continue
		}
		var gs []uint32
		for _, f := range strings.Fields(rest) {
			if g, err := strconv.ParseUint(f, 10, 32); err == nil {
				gs = append(gs, uint32(g))
			}
		}
		return gs
	}
	return nil
}

var _ = (gofs.NodeGetxattrer)((*node)(nil))

// Getxattr serves getxattr(2).
func (n *node) Getxattr(ctx context.Context, attr string, dest []byte) (uint32, syscall.Errno) {
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
	if attr == store.ACLAccess {
		a, err := n.st().GetAttr(n.view(), n.ino)
		if err != nil {
			return toErrno(err)
		}
		return toErrno(n.st().SetACL(n.view(), n.ino, attr, data, int(flags), a.Mode&0o2000 != 0 && killsSgid(ctx, a.Gid)))
	}
	return toErrno(n.st().SetXattr(n.view(), n.ino, attr, data, int(flags)))
}

var _ = (gofs.NodeRemovexattrer)((*node)(nil))

// Removexattr serves removexattr(2).
func (n *node) Removexattr(ctx context.Context, attr string) syscall.Errno {
	return toErrno(n.st().RemoveXattr(n.view(), n.ino, attr))
}
