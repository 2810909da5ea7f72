package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
)

// symlinkNode is a symbolic link. Its target lives in the inode record.
type symlinkNode struct {
	node
}

var _ = (gofs.NodeReadlinker)((*symlinkNode)(nil))

// Readlink serves readlink(2).
func (n *symlinkNode) Readlink(ctx context.Context) ([]byte, syscall.Errno) {
	target, err := n.st().Readlink(n.view(), n.ino)
	if err != nil {
		return nil, toErrno(err)
	}
	return []byte(target), 0
}
