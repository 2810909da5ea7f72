package fs

import (
	"context"
	"errors"
	"io"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/snapfs/snapfs/store"
)

// Whence values of lseek(2) that reach the file system.
const (
	seekData = 3
	seekHole = 4
)

// fsyncDataOnly is the FUSE fsync flag of fdatasync(2).
const fsyncDataOnly = 1

// fileHandle is one open of a regular file: a store handle, which buffers
// writes and latches flush errors, plus the O_SYNC/O_DSYNC behaviour. The
// store handle is safe for concurrent use; the fields here never change.
type fileHandle struct {
	h *store.Handle
	// syncWrites makes every write durable before it returns (O_SYNC or
	// O_DSYNC); dataOnly is set for O_DSYNC alone.
	syncWrites bool
	dataOnly   bool
	// untrack ends the open's count in the mount's writers (writeback.go)
	// at Release; nil when none was counted.
	untrack func()
	// wb is the mount and id the FUSE node id of the file, when the
	// mount has the writeback cache: Lseek writes dirty pages back first.
	wb *fileSystem
	id uint64
	// direct is set for an open replied with FOPEN_DIRECT_IO
	// (viewState.writeOnlyDirect): its writes remove the file's
	// capabilities, as the kernel would have before a cached write.
	direct bool
}

// newFileHandle wraps a store handle opened with the open(2) flags given.
func newFileHandle(h *store.Handle, flags uint32) *fileHandle {
	fh := &fileHandle{h: h}
	switch {
	case flags&syscall.O_SYNC == syscall.O_SYNC:
		fh.syncWrites = true
	case flags&syscall.O_DSYNC != 0:
		fh.syncWrites, fh.dataOnly = true, true
	}
	return fh
}

var _ = (gofs.FileReader)((*fileHandle)(nil))

// Read serves read(2); a short count means end of file. Reads never change
// atime.
func (f *fileHandle) Read(ctx context.Context, dest []byte, off int64) (fuse.ReadResult, syscall.Errno) {
	n, err := f.h.Read(dest, off)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, toErrno(err)
	}
	return fuse.ReadResultData(dest[:n]), 0
}

var _ = (gofs.FileWriter)((*fileHandle)(nil))

// Write serves write(2). A write that made progress before failing reports
// the bytes written; the error comes back on the next call.
func (f *fileHandle) Write(ctx context.Context, data []byte, off int64) (uint32, syscall.Errno) {
	if f.direct {
		if err := f.h.KillCapability(); err != nil {
			return 0, toErrno(err)
		}
	}
	n, err := f.h.Write(data, off)
	if err != nil && n == 0 {
		return 0, toErrno(err)
	}
	if f.syncWrites {
		if err := f.h.Fsync(f.dataOnly); err != nil {
			return 0, toErrno(err)
		}
	}
	return uint32(n), 0
}

var _ = (gofs.FileFlusher)((*fileHandle)(nil))

// Flush serves close(2) of a descriptor of this open when the kernel
// sends it (it does not for opens replied with FOPEN_NOFLUSH, which is
// every open of ours on kernels that know the flag): buffered data goes to
// the flusher and a latched write error is returned to close.
func (f *fileHandle) Flush(ctx context.Context) syscall.Errno {
	return toErrno(f.h.Flush())
}

var _ = (gofs.FileFsyncer)((*fileHandle)(nil))

// Fsync serves fsync(2) and fdatasync(2).
func (f *fileHandle) Fsync(ctx context.Context, flags uint32) syscall.Errno {
	return toErrno(f.h.Fsync(flags&fsyncDataOnly != 0))
}

var _ = (gofs.FileReleaser)((*fileHandle)(nil))

// Release is the last close of this open: buffered data goes to the
// flusher. The kernel ignores its result; a latched error stays latched
// for the next write or fsync of the file.
func (f *fileHandle) Release(ctx context.Context) syscall.Errno {
	err := f.h.Release()
	if f.untrack != nil {
		f.untrack()
	}
	return toErrno(err)
}

var _ = (gofs.FileAllocater)((*fileHandle)(nil))

// Allocate serves fallocate(2): preallocation (mode 0 and KEEP_SIZE: the
// first write of each chunk of the range has its space, store/prealloc.go),
// punching holes and zeroing ranges.
func (f *fileHandle) Allocate(ctx context.Context, off uint64, size uint64, mode uint32) syscall.Errno {
	return toErrno(f.h.Allocate(int64(off), int64(size), mode))
}

var _ = (gofs.FileLseeker)((*fileHandle)(nil))

// Lseek serves SEEK_DATA and SEEK_HOLE; the kernel does the other whences.
// With the writeback cache, the file's dirty pages are written back first.
func (f *fileHandle) Lseek(ctx context.Context, off uint64, whence uint32) (uint64, syscall.Errno) {
	if whence != seekData && whence != seekHole {
		return 0, syscall.EINVAL
	}
	// The kernel does not write back before LSEEK: data still in its
	// page cache would be reported as a hole.
	if f.wb != nil {
		if err := f.wb.writeBack(f.id); err != nil {
			return 0, toErrno(err)
		}
	}
	pos, err := f.h.Lseek(int64(off), int(whence))
	if err != nil {
		return 0, toErrno(err)
	}
	return uint64(pos), 0
}
