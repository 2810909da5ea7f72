package fs

import (
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/snapfs/snapfs/store"
)

// With FUSE_POSIX_ACL the kernel marks the mount as applying ACLs itself
// (SB_POSIXACL), so it no longer takes the umask off a new inode's mode;
// with FUSE_DONT_MASK it sends the mode as asked and the umask beside it.
// A local file system uses the umask only when the parent directory has
// no default ACL, and that is decided in the store, in the create's txn.
// go-fuse's node API passes the mode but not the umask: these methods of
// the raw file system wrapper put it in the mode's spare high bits
// (store.WithUmask) on the way to the node methods, which hand the mode to
// the store unchanged.

func (k *killprivFS) Mkdir(cancel <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	in.Mode = store.WithUmask(in.Mode, in.Umask)
	return k.RawFileSystem.Mkdir(cancel, in, name, out)
}

func (k *killprivFS) Mknod(cancel <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	in.Mode = store.WithUmask(in.Mode, in.Umask)
	return k.RawFileSystem.Mknod(cancel, in, name, out)
}

func (k *killprivFS) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	in.Mode = store.WithUmask(in.Mode, in.Umask)
	return k.RawFileSystem.Create(cancel, in, name, out)
}
