package fs

import (
	"time"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// Metrics of a mount's FUSE requests. MountOptions.Metrics, when set,
// wraps the mount's raw file system in metricsFS, which times every
// request by its type (Op) and counts the bytes read and written. The
// wrapper costs two clock reads and one call per request; the recorder
// (internal/metrics turns them into Prometheus histograms) is looked up
// by the op's index, never by name.
//
// There is one method per request type of fuse.RawFileSystem, all alike;
// keep them in step with go-fuse's interface (a method left out is served
// unmeasured, not broken, as the embedded file system answers it).

// Op is a FUSE request type, an index into OpNames.
type Op int

// The request types measured.
const (
	OpAccess Op = iota
	OpCopyFileRange
	OpCreate
	OpFallocate
	OpFlush
	OpForget
	OpFsync
	OpFsyncDir
	OpGetAttr
	OpGetLk
	OpGetXAttr
	OpIoctl
	OpLink
	OpListXAttr
	OpLookup
	OpLseek
	OpMkdir
	OpMknod
	OpOpen
	OpOpenDir
	OpRead
	OpReadDir
	OpReadDirPlus
	OpReadlink
	OpRelease
	OpReleaseDir
	OpRemoveXAttr
	OpRename
	OpRmdir
	OpSetAttr
	OpSetLk
	OpSetLkw
	OpSetXAttr
	OpStatFs
	OpStatx
	OpSymlink
	OpTmpfile
	OpUnlink
	OpWrite
	numOps
)

// OpNames are the ops' names as metrics label them: go-fuse's method
// names in lower case.
var OpNames = [numOps]string{
	OpAccess:        "access",
	OpCopyFileRange: "copyfilerange",
	OpCreate:        "create",
	OpFallocate:     "fallocate",
	OpFlush:         "flush",
	OpForget:        "forget",
	OpFsync:         "fsync",
	OpFsyncDir:      "fsyncdir",
	OpGetAttr:       "getattr",
	OpGetLk:         "getlk",
	OpGetXAttr:      "getxattr",
	OpIoctl:         "ioctl",
	OpLink:          "link",
	OpListXAttr:     "listxattr",
	OpLookup:        "lookup",
	OpLseek:         "lseek",
	OpMkdir:         "mkdir",
	OpMknod:         "mknod",
	OpOpen:          "open",
	OpOpenDir:       "opendir",
	OpRead:          "read",
	OpReadDir:       "readdir",
	OpReadDirPlus:   "readdirplus",
	OpReadlink:      "readlink",
	OpRelease:       "release",
	OpReleaseDir:    "releasedir",
	OpRemoveXAttr:   "removexattr",
	OpRename:        "rename",
	OpRmdir:         "rmdir",
	OpSetAttr:       "setattr",
	OpSetLk:         "setlk",
	OpSetLkw:        "setlkw",
	OpSetXAttr:      "setxattr",
	OpStatFs:        "statfs",
	OpStatx:         "statx",
	OpSymlink:       "symlink",
	OpTmpfile:       "tmpfile",
	OpUnlink:        "unlink",
	OpWrite:         "write",
}

// OpMetrics records a mount's requests. Its methods are called on the
// request path, concurrently: they must be quick and must not block.
type OpMetrics interface {
	// Observe records one request of type op that took elapsed and
	// answered an error (failed) or not.
	Observe(op Op, elapsed time.Duration, failed bool)
	// Transferred records n bytes read (write false) or written.
	Transferred(n int, write bool)
}

// metricsFS measures the requests of the file system it wraps.
type metricsFS struct {
	fuse.RawFileSystem
	m OpMetrics
}

// done records a request of type op begun at start.
func (f *metricsFS) done(op Op, start time.Time, st fuse.Status) fuse.Status {
	f.m.Observe(op, time.Since(start), !st.Ok())
	return st
}

func (f *metricsFS) Lookup(cancel <-chan struct{}, header *fuse.InHeader, name string, out *fuse.EntryOut) fuse.Status {
	start := time.Now()
	return f.done(OpLookup, start, f.RawFileSystem.Lookup(cancel, header, name, out))
}

func (f *metricsFS) GetAttr(cancel <-chan struct{}, in *fuse.GetAttrIn, out *fuse.AttrOut) fuse.Status {
	start := time.Now()
	return f.done(OpGetAttr, start, f.RawFileSystem.GetAttr(cancel, in, out))
}

func (f *metricsFS) SetAttr(cancel <-chan struct{}, in *fuse.SetAttrIn, out *fuse.AttrOut) fuse.Status {
	start := time.Now()
	return f.done(OpSetAttr, start, f.RawFileSystem.SetAttr(cancel, in, out))
}

func (f *metricsFS) Mknod(cancel <-chan struct{}, in *fuse.MknodIn, name string, out *fuse.EntryOut) fuse.Status {
	start := time.Now()
	return f.done(OpMknod, start, f.RawFileSystem.Mknod(cancel, in, name, out))
}

func (f *metricsFS) Mkdir(cancel <-chan struct{}, in *fuse.MkdirIn, name string, out *fuse.EntryOut) fuse.Status {
	start := time.Now()
	return f.done(OpMkdir, start, f.RawFileSystem.Mkdir(cancel, in, name, out))
}

func (f *metricsFS) Unlink(cancel <-chan struct{}, header *fuse.InHeader, name string) fuse.Status {
	start := time.Now()
	return f.done(OpUnlink, start, f.RawFileSystem.Unlink(cancel, header, name))
}

func (f *metricsFS) Rmdir(cancel <-chan struct{}, header *fuse.InHeader, name string) fuse.Status {
	start := time.Now()
	return f.done(OpRmdir, start, f.RawFileSystem.Rmdir(cancel, header, name))
}

func (f *metricsFS) Rename(cancel <-chan struct{}, in *fuse.RenameIn, oldName string, newName string) fuse.Status {
	start := time.Now()
	return f.done(OpRename, start, f.RawFileSystem.Rename(cancel, in, oldName, newName))
}

func (f *metricsFS) Link(cancel <-chan struct{}, in *fuse.LinkIn, name string, out *fuse.EntryOut) fuse.Status {
	start := time.Now()
	return f.done(OpLink, start, f.RawFileSystem.Link(cancel, in, name, out))
}

func (f *metricsFS) Symlink(cancel <-chan struct{}, header *fuse.InHeader, target string, name string, out *fuse.EntryOut) fuse.Status {
	start := time.Now()
	return f.done(OpSymlink, start, f.RawFileSystem.Symlink(cancel, header, target, name, out))
}

func (f *metricsFS) Access(cancel <-chan struct{}, in *fuse.AccessIn) fuse.Status {
	start := time.Now()
	return f.done(OpAccess, start, f.RawFileSystem.Access(cancel, in))
}

func (f *metricsFS) SetXAttr(cancel <-chan struct{}, in *fuse.SetXAttrIn, attr string, data []byte) fuse.Status {
	start := time.Now()
	return f.done(OpSetXAttr, start, f.RawFileSystem.SetXAttr(cancel, in, attr, data))
}

func (f *metricsFS) RemoveXAttr(cancel <-chan struct{}, header *fuse.InHeader, attr string) fuse.Status {
	start := time.Now()
	return f.done(OpRemoveXAttr, start, f.RawFileSystem.RemoveXAttr(cancel, header, attr))
}

func (f *metricsFS) Create(cancel <-chan struct{}, in *fuse.CreateIn, name string, out *fuse.CreateOut) fuse.Status {
	start := time.Now()
	return f.done(OpCreate, start, f.RawFileSystem.Create(cancel, in, name, out))
}

func (f *metricsFS) Tmpfile(cancel <-chan struct{}, in *fuse.CreateIn, out *fuse.CreateOut) fuse.Status {
	start := time.Now()
	return f.done(OpTmpfile, start, f.RawFileSystem.Tmpfile(cancel, in, out))
}

func (f *metricsFS) Open(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	start := time.Now()
	return f.done(OpOpen, start, f.RawFileSystem.Open(cancel, in, out))
}

func (f *metricsFS) Lseek(cancel <-chan struct{}, in *fuse.LseekIn, out *fuse.LseekOut) fuse.Status {
	start := time.Now()
	return f.done(OpLseek, start, f.RawFileSystem.Lseek(cancel, in, out))
}

func (f *metricsFS) GetLk(cancel <-chan struct{}, in *fuse.LkIn, out *fuse.LkOut) fuse.Status {
	start := time.Now()
	return f.done(OpGetLk, start, f.RawFileSystem.GetLk(cancel, in, out))
}

func (f *metricsFS) SetLk(cancel <-chan struct{}, in *fuse.LkIn) fuse.Status {
	start := time.Now()
	return f.done(OpSetLk, start, f.RawFileSystem.SetLk(cancel, in))
}

func (f *metricsFS) SetLkw(cancel <-chan struct{}, in *fuse.LkIn) fuse.Status {
	start := time.Now()
	return f.done(OpSetLkw, start, f.RawFileSystem.SetLkw(cancel, in))
}

func (f *metricsFS) Ioctl(cancel <-chan struct{}, in *fuse.IoctlIn, inbuf []byte, out *fuse.IoctlOut, outbuf []byte) fuse.Status {
	start := time.Now()
	return f.done(OpIoctl, start, f.RawFileSystem.Ioctl(cancel, in, inbuf, out, outbuf))
}

func (f *metricsFS) Flush(cancel <-chan struct{}, in *fuse.FlushIn) fuse.Status {
	start := time.Now()
	return f.done(OpFlush, start, f.RawFileSystem.Flush(cancel, in))
}

func (f *metricsFS) Fsync(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	start := time.Now()
	return f.done(OpFsync, start, f.RawFileSystem.Fsync(cancel, in))
}

func (f *metricsFS) Fallocate(cancel <-chan struct{}, in *fuse.FallocateIn) fuse.Status {
	start := time.Now()
	return f.done(OpFallocate, start, f.RawFileSystem.Fallocate(cancel, in))
}

func (f *metricsFS) OpenDir(cancel <-chan struct{}, in *fuse.OpenIn, out *fuse.OpenOut) fuse.Status {
	start := time.Now()
	return f.done(OpOpenDir, start, f.RawFileSystem.OpenDir(cancel, in, out))
}

func (f *metricsFS) ReadDir(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	start := time.Now()
	return f.done(OpReadDir, start, f.RawFileSystem.ReadDir(cancel, in, out))
}

func (f *metricsFS) ReadDirPlus(cancel <-chan struct{}, in *fuse.ReadIn, out *fuse.DirEntryList) fuse.Status {
	start := time.Now()
	return f.done(OpReadDirPlus, start, f.RawFileSystem.ReadDirPlus(cancel, in, out))
}

func (f *metricsFS) FsyncDir(cancel <-chan struct{}, in *fuse.FsyncIn) fuse.Status {
	start := time.Now()
	return f.done(OpFsyncDir, start, f.RawFileSystem.FsyncDir(cancel, in))
}

func (f *metricsFS) StatFs(cancel <-chan struct{}, in *fuse.InHeader, out *fuse.StatfsOut) fuse.Status {
	start := time.Now()
	return f.done(OpStatFs, start, f.RawFileSystem.StatFs(cancel, in, out))
}

func (f *metricsFS) Statx(cancel <-chan struct{}, in *fuse.StatxIn, out *fuse.StatxOut) fuse.Status {
	start := time.Now()
	return f.done(OpStatx, start, f.RawFileSystem.Statx(cancel, in, out))
}

func (f *metricsFS) Readlink(cancel <-chan struct{}, header *fuse.InHeader) ([]byte, fuse.Status) {
	start := time.Now()
	out, st := f.RawFileSystem.Readlink(cancel, header)
	return out, f.done(OpReadlink, start, st)
}

func (f *metricsFS) GetXAttr(cancel <-chan struct{}, header *fuse.InHeader, attr string, dest []byte) (uint32, fuse.Status) {
	start := time.Now()
	n, st := f.RawFileSystem.GetXAttr(cancel, header, attr, dest)
	// ENODATA (no such attribute) and ERANGE (buffer size probe) are
	// answers, not failures.
	ok := st
	if st == fuse.ENODATA || st == fuse.ERANGE {
		ok = fuse.OK
	}
	f.done(OpGetXAttr, start, ok)
	return n, st
}

func (f *metricsFS) ListXAttr(cancel <-chan struct{}, header *fuse.InHeader, dest []byte) (uint32, fuse.Status) {
	start := time.Now()
	n, st := f.RawFileSystem.ListXAttr(cancel, header, dest)
	ok := st
	if st == fuse.ERANGE {
		ok = fuse.OK
	}
	f.done(OpListXAttr, start, ok)
	return n, st
}

func (f *metricsFS) Read(cancel <-chan struct{}, in *fuse.ReadIn, buf []byte) (fuse.ReadResult, fuse.Status) {
	start := time.Now()
	res, st := f.RawFileSystem.Read(cancel, in, buf)
	if st.Ok() && res != nil {
		f.m.Transferred(res.Size(), false)
	}
	return res, f.done(OpRead, start, st)
}

func (f *metricsFS) Write(cancel <-chan struct{}, in *fuse.WriteIn, data []byte) (uint32, fuse.Status) {
	start := time.Now()
	n, st := f.RawFileSystem.Write(cancel, in, data)
	f.m.Transferred(int(n), true)
	return n, f.done(OpWrite, start, st)
}

// Writev is counted as a write: go-fuse calls it for WRITE requests.
func (f *metricsFS) Writev(cancel <-chan struct{}, in *fuse.WriteIn, data [][]byte) (uint32, fuse.Status) {
	start := time.Now()
	n, st := f.RawFileSystem.Writev(cancel, in, data)
	f.m.Transferred(int(n), true)
	return n, f.done(OpWrite, start, st)
}

func (f *metricsFS) CopyFileRange(cancel <-chan struct{}, in *fuse.CopyFileRangeIn) (uint32, fuse.Status) {
	start := time.Now()
	n, st := f.RawFileSystem.CopyFileRange(cancel, in)
	f.m.Transferred(int(n), true)
	return n, f.done(OpCopyFileRange, start, st)
}

func (f *metricsFS) Release(cancel <-chan struct{}, in *fuse.ReleaseIn) {
	start := time.Now()
	f.RawFileSystem.Release(cancel, in)
	f.done(OpRelease, start, fuse.OK)
}

func (f *metricsFS) ReleaseDir(in *fuse.ReleaseIn) {
	start := time.Now()
	f.RawFileSystem.ReleaseDir(in)
	f.done(OpReleaseDir, start, fuse.OK)
}

func (f *metricsFS) Forget(nodeid, nlookup uint64) {
	start := time.Now()
	f.RawFileSystem.Forget(nodeid, nlookup)
	f.done(OpForget, start, fuse.OK)
}
