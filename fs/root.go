package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
)

// rootNode is the root directory of a dataset's live view: a mounted
// volume or branch, or a branch reached at .snapshots/<name>. It is a
// directory like any other, except that it serves the .snapshots directory
// of the dataset (Lookup of that name and, with MountOptions.SnapdirVisible,
// one more entry in the listing) and keeps that name reserved, so that
// nothing below the root needs to know about it. A root whose view is no
// dataset's (vs.snapdir false) has no .snapshots.
type rootNode struct {
	dirNode
}

// snapdirHere reports whether name is the reserved .snapshots of this root.
func (r *rootNode) snapdirHere(name string) bool {
	return name == SnapdirName && r.vs.snapdir
}

var _ = (gofs.NodeLookuper)((*rootNode)(nil))

// Lookup serves .snapshots, and every other name from the store.
func (r *rootNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if r.snapdirHere(name) {
		return r.newSnapdir(ctx, out), 0
	}
	return r.dirNode.Lookup(ctx, name, out)
}

var _ = (gofs.NodeOpendirHandler)((*rootNode)(nil))

// OpendirHandle lists the root, with .snapshots first when it is visible.
func (r *rootNode) OpendirHandle(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	h := &dirHandle{dir: &r.dirNode}
	if r.vs.snapdir && r.vs.fsys.opts.SnapdirVisible {
		h.root = r
	}
	return h, r.vs.openFlags, 0
}

var _ = (gofs.NodeMkdirer)((*rootNode)(nil))

// Mkdir refuses the reserved name.
func (r *rootNode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if r.snapdirHere(name) {
		return nil, syscall.EEXIST
	}
	return r.dirNode.Mkdir(ctx, name, mode, out)
}

var _ = (gofs.NodeMknoder)((*rootNode)(nil))

// Mknod refuses the reserved name.
func (r *rootNode) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if r.snapdirHere(name) {
		return nil, syscall.EEXIST
	}
	return r.dirNode.Mknod(ctx, name, mode, dev, out)
}

var _ = (gofs.NodeSymlinker)((*rootNode)(nil))

// Symlink refuses the reserved name.
func (r *rootNode) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if r.snapdirHere(name) {
		return nil, syscall.EEXIST
	}
	return r.dirNode.Symlink(ctx, target, name, out)
}

var _ = (gofs.NodeLinker)((*rootNode)(nil))

// Link refuses the reserved name.
func (r *rootNode) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if r.snapdirHere(name) {
		return nil, syscall.EEXIST
	}
	return r.dirNode.Link(ctx, target, name, out)
}

var _ = (gofs.NodeCreater)((*rootNode)(nil))

// Create refuses the reserved name.
func (r *rootNode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	if r.snapdirHere(name) {
		return nil, nil, 0, syscall.EEXIST
	}
	return r.dirNode.Create(ctx, name, flags, mode, out)
}

var _ = (gofs.NodeUnlinker)((*rootNode)(nil))

// Unlink refuses the reserved name.
func (r *rootNode) Unlink(ctx context.Context, name string) syscall.Errno {
	if r.snapdirHere(name) {
		return syscall.EISDIR
	}
	return r.dirNode.Unlink(ctx, name)
}

var _ = (gofs.NodeRmdirer)((*rootNode)(nil))

// Rmdir refuses the reserved name: it is busy like a mount point.
func (r *rootNode) Rmdir(ctx context.Context, name string) syscall.Errno {
	if r.snapdirHere(name) {
		return syscall.EBUSY
	}
	return r.dirNode.Rmdir(ctx, name)
}

var _ = (gofs.NodeRenamer)((*rootNode)(nil))

// Rename refuses to move .snapshots away (EBUSY); dirNode.Rename refuses
// to move anything onto it.
func (r *rootNode) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if r.snapdirHere(name) {
		return syscall.EBUSY
	}
	return r.dirNode.Rename(ctx, name, newParent, newName, flags)
}
