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
// O_TRUNC) and O_APPEND is kept by the store handle.
func (n *fileNode) Open(ctx context.Context, flags uint32) (gofs.FileHandle, uint32, syscall.Errno) {
	h, err := n.st().Open(n.view(), n.ino, storeOpenFlags(flags))
	if err != nil {
		return nil, 0, toErrno(err)
	}
	return newFileHandle(h, flags), n.vs.fileOpenFlags(), 0
}
