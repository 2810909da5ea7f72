package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// dirNode is a directory of a view. Every namespace change goes to the
// store as one call; go-fuse keeps its own tree of the names the kernel
// knows in step after each successful reply.
type dirNode struct {
	node
}

var _ = (gofs.NodeLookuper)((*dirNode)(nil))

// Lookup serves a name lookup. ENOENT replies are cached by the kernel for
// the mount's NegativeTimeout.
func (n *dirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	a, err := n.st().Lookup(n.view(), n.ino, name)
	if err != nil {
		return nil, toErrno(err)
	}
	return n.newChild(ctx, a, out), 0
}

var _ = (gofs.NodeMkdirer)((*dirNode)(nil))

// Mkdir serves mkdir(2). The mode carries the caller's umask (fs/acl.go): the
// store applies it, or the directory's default ACL.
func (n *dirNode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	uid, gid := caller(ctx)
	a, err := n.st().Mkdir(n.view(), n.ino, name, mode&^syscall.S_IFMT, uid, gid)
	if err != nil {
		return nil, toErrno(err)
	}
	return n.newChild(ctx, a, out), 0
}

var _ = (gofs.NodeMknoder)((*dirNode)(nil))

// Mknod serves mknod(2) for regular files, FIFOs, devices and sockets.
func (n *dirNode) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if mode&syscall.S_IFMT == 0 {
		mode |= syscall.S_IFREG
	}
	uid, gid := caller(ctx)
	a, err := n.st().Mknod(n.view(), n.ino, name, mode, dev, uid, gid)
	if err != nil {
		return nil, toErrno(err)
	}
	return n.newChild(ctx, a, out), 0
}

var _ = (gofs.NodeSymlinker)((*dirNode)(nil))

// Symlink serves symlink(2).
func (n *dirNode) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	uid, gid := caller(ctx)
	a, err := n.st().Symlink(n.view(), n.ino, name, target, uid, gid)
	if err != nil {
		return nil, toErrno(err)
	}
	return n.newChild(ctx, a, out), 0
}

var _ = (gofs.NodeLinker)((*dirNode)(nil))

// Link serves link(2). A link between views is EXDEV: the kernel allows
// it because all views are one mount.
func (n *dirNode) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	t := nodeOf(target)
	if t == nil || t.vs.view.ID != n.vs.view.ID {
		return nil, syscall.EXDEV
	}
	a, err := n.st().Link(n.view(), t.ino, n.ino, name)
	if err != nil {
		return nil, toErrno(err)
	}
	return n.newChild(ctx, a, out), 0
}

var _ = (gofs.NodeUnlinker)((*dirNode)(nil))

// Unlink serves unlink(2).
func (n *dirNode) Unlink(ctx context.Context, name string) syscall.Errno {
	return toErrno(n.st().Unlink(n.view(), n.ino, name))
}

var _ = (gofs.NodeRmdirer)((*dirNode)(nil))

// Rmdir serves rmdir(2).
func (n *dirNode) Rmdir(ctx context.Context, name string) syscall.Errno {
	return toErrno(n.st().Rmdir(n.view(), n.ino, name))
}

var _ = (gofs.NodeRenamer)((*dirNode)(nil))

// Rename serves rename(2) and renameat2(2) with RENAME_NOREPLACE and
// RENAME_EXCHANGE; the store rejects RENAME_WHITEOUT and directory loops.
// A rename between views is EXDEV.
func (n *dirNode) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if r, ok := newParent.(*rootNode); ok && r.snapdirHere(newName) {
		return syscall.EBUSY
	}
	p := nodeOf(newParent)
	if p == nil || p.vs.view.ID != n.vs.view.ID {
		return syscall.EXDEV
	}
	return toErrno(n.st().Rename(n.view(), n.ino, name, p.ino, newName, flags))
}

var _ = (gofs.NodeCreater)((*dirNode)(nil))

// Create serves open(2) with O_CREAT of a name the kernel did not find.
func (n *dirNode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	uid, gid := caller(ctx)
	mode = mode&^syscall.S_IFMT | syscall.S_IFREG // the umask rides along (fs/acl.go)
	a, h, err := n.st().Create(n.view(), n.ino, name, mode, uid, gid, n.vs.fsys.storeOpenFlags(flags))
	if err != nil {
		return nil, nil, 0, toErrno(err)
	}
	fh, fl := n.vs.fileOpenReply(h, flags)
	child := n.newChild(ctx, a, out)
	n.vs.fsys.trackWriter(fh, nodeID(n.vs.view, a.Ino), child, flags)
	return child, fh, fl, 0
}

var _ = (gofs.NodeOpendirHandler)((*dirNode)(nil))

// OpendirHandle serves opendir(3): a handle that lists the directory
// through the store in cookie order.
func (n *dirNode) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	return &dirHandle{dir: n}, n.vs.openFlags, 0
}

// lookupAttr builds the child node for attributes read without a name
// lookup, as READDIRPLUS does from the listing.
func (n *dirNode) lookupAttr(ctx context.Context, ino uint64, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	a, err := n.st().GetAttr(n.view(), ino)
	if err != nil {
		return nil, toErrno(err)
	}
	return n.newChild(ctx, a, out), 0
}
