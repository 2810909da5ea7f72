package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
)

// fileNode is a regular file. Its data is read and written through the
// store handle of each open (see fileHandle); the node itself only opens.
type fileNode struct {
	node
}

var _ = (gofs.NodeOpener)((*fileNode)(nil))

// Open serves open(2). O_TRUNC arrives here (the mount negotiates atomic
// O_TRUNC) and O_APPEND is kept by the store handle (by the kernel with the
// writeback cache, writeback.go).
func (n *fileNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	h, err := n.st().Open(n.view(), n.ino, n.vs.fsys.storeOpenFlags(flags))
	if err != nil {
		return nil, 0, toErrno(err)
	}
	fh, fl := n.vs.fileOpenReply(h, flags)
	n.vs.fsys.trackWriter(fh, nodeID(n.vs.view, n.ino), n.EmbeddedInode(), flags)
	return fh, fl, 0
}

var _ = (gofs.NodeCopyFileRanger)((*fileNode)(nil))

// CopyFileRange serves copy_file_range(2) between two files of the mount,
// in any views (a snapshot into the live volume, one dataset into
// another): whole chunks are shared by reference, the edges copied
// (store.Store.CopyRange). The kernel has checked the descriptors, the
// flags and overlap within one file; a copy between mounts, or pools,
// never reaches here (EXDEV, and cp falls back to reading and writing).
// The destination is written as write(2) would: synchronously when it
// was opened O_SYNC or O_DSYNC.
func (n *fileNode) CopyFileRange(ctx context.Context, fhIn gofs.FileHandle, offIn uint64, out *gofs.Inode,
	fhOut gofs.FileHandle, offOut uint64, length uint64, flags uint64) (uint32, syscall.Errno) {
	in, ok := fhIn.(*fileHandle)
	dst, ok2 := fhOut.(*fileHandle)
	switch {
	case !ok || !ok2:
		return 0, syscall.EXDEV
	case flags != 0:
		return 0, syscall.EINVAL
	case offIn > 1<<62 || offOut > 1<<62:
		return 0, syscall.EFBIG
	}
	copied, err := n.st().CopyRange(in.h, int64(offIn), dst.h, int64(offOut), int64(min(length, 1<<62)))
	if err != nil {
		return 0, toErrno(err)
	}
	if dst.syncWrites {
		if err := dst.h.Fsync(dst.dataOnly); err != nil {
			return 0, toErrno(err)
		}
	}
	return uint32(copied), 0
}
