package fs

import (
	"github.com/hanwen/go-fuse/v2/fuse"
)

// killprivFS serves the mount's requests through the node file system and
// clears setuid and setgid bits where the kernel asks the file system to
// (FUSE_HANDLE_KILLPRIV_V2): before a write, and after an open with
// O_TRUNC, whose caller lacks CAP_FSETID (truncate's setattr carries its
// own flag, see setAttrIn; chown clears them in the store).
//
// The capability is negotiated because with it the kernel stops asking
// for security.capability before every write (it marks the inode S_NOSEC
// once it has checked it): without it every write(2) cost two round trips,
// a GETXATTR and the WRITE. go-fuse's node API does not pass the
// requests' kill flags on, hence this wrapper of the raw file system.
type killprivFS struct {
	fuse.RawFileSystem
	fsys *fileSystem
}

// kill clears the bits of node id, which lies in a writable view of the
// mount (a write or an O_TRUNC open of any other fails on its own).
func (k *killprivFS) kill(id uint64) fuse.Status {
	v, ok := k.fsys.writableView(uint32(id >> inoBits))
	if !ok {
		return fuse.OK
	}
	return fuse.Status(toErrno(k.fsys.st.KillSuidgid(v, id&(1<<inoBits-1))))
}

func (k *killprivFS) Writev(cancel <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	if in.WriteFlags&fuse.WRITE_KILL_SUIDGID != 0 {
		if st := k.kill(in.NodeId); !st.Ok() {
			return 0, st
		}
	}
	return k.RawFileSystem.Writev(cancel, in, data)
}

func (k *killprivFS) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	st := k.RawFileSystem.Open(cancel, in, out)
	if st.Ok() && in.Mode&fuse.OPEN_KILL_SUIDGID != 0 {
		st = k.kill(in.NodeId)
	}
	return st
}
