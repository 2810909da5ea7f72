package fs

import (
	"context"
	"sync"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/snapfs/snapfs/snap"
	"github.com/snapfs/snapfs/store"
)

// fileSystem is what every node of one mount shares.
type fileSystem struct {
	st    *store.Store
	opts  MountOptions
	snaps *snap.Manager // the snapshots of st's volumes

	// writable maps the view ids of the mount's writable views (the live
	// view and branches reached through .snapshots) to their views, for
	// requests that name a node by id only (killprivFS). Guarded by mu.
	mu       sync.Mutex
	writable map[uint32]store.View
	// server serves the mount (set by Mount before it serves; nil for
	// a root made by NewRoot alone): kernel notifications go through it.
	server *fuse.Server
	// writers counts, by FUSE node id, the opens that can write, with the
	// writeback cache only: the files whose pages the kernel may hold
	// dirty (writeback.go). Guarded by mu.
	writers map[uint64]*writer

	// budget bounds the file inodes the kernel keeps (budget.go); it has
	// its own lock.
	budget inodeBudget
}

// writableView returns the writable view with id, if the mount served one.
func (f *fileSystem) writableView(id uint32) (store.View, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	v, ok := f.writable[id]
	return v, ok
}

// viewState is what every node of one view shares: the view itself and the
// kernel cache hints that follow from it. It is immutable once built.
type viewState struct {
	fsys *fileSystem
	view store.View
	// entryTimeout and attrTimeout go into every reply about the view's nodes.
	entryTimeout time.Duration
	attrTimeout  time.Duration
	// openFlags go into every Open and Opendir reply (FOPEN_KEEP_CACHE and
	// FOPEN_CACHE_DIR for immutable snapshot views).
	openFlags uint32
	// snapdir says the view's root serves a .snapshots directory: the view
	// is a dataset's live view (a volume's or a branch's). The dataset's
	// path is asked of snap.Manager.DatasetOf at each use, so a branch
	// renamed while mounted keeps its .snapshots. Snapshot views have none.
	snapdir bool
}

// newViewState returns the shared state of view v, with the cache hints of
// a live view or of a snapshot.
func newViewState(fsys *fileSystem, v store.View) *viewState {
	vs := &viewState{fsys: fsys, view: v}
	if v.Live() && !v.ReadOnly {
		fsys.mu.Lock()
		if fsys.writable == nil {
			fsys.writable = map[uint32]store.View{}
		}
		fsys.writable[v.ID] = v
		fsys.mu.Unlock()
		vs.entryTimeout = fsys.opts.EntryTimeout
		vs.attrTimeout = fsys.opts.AttrTimeout
		return vs
	}
	// A snapshot never changes: cache it for as long as the kernel likes.
	vs.entryTimeout = forever
	vs.attrTimeout = forever
	vs.openFlags = fuse.FOPEN_KEEP_CACHE | fuse.FOPEN_CACHE_DIR
	return vs
}

// fileOpenFlags are the flags of a regular file's Open or Create reply:
// the view's, plus FOPEN_NOFLUSH. close(2) then costs no round trip: the
// store hands a file's buffered data to the flusher at RELEASE (the last
// close of the open), and a flush error is returned by the next write or
// fsync, as ext4 reports writeback errors at fsync and never at close.
// Without the kernel writeback cache FLUSH would write no page back either
// (mmap stores reach the store at msync or writeback, as DESIGN.md says);
// with it, the kernel writes the file's dirty pages back at close and sends
// FLUSH despite FOPEN_NOFLUSH (writeback.go).
func (vs *viewState) fileOpenFlags() uint32 {
	return vs.openFlags | fuse.FOPEN_NOFLUSH
}

// writeOnlyDirect says whether an open with these open(2) flags is
// replied with FOPEN_DIRECT_IO: a write-only open of a mount without the
// kernel writeback cache. Its writes then go to the daemon as they are
// (they did already: without the writeback cache every write is sent
// before write(2) returns), without a copy into the page cache, and the
// kernel skips file_remove_privs, whose GETXATTR of security.capability
// cost every new file one more round trip before its first write (cp -a,
// tar -x, the compiler's output). What the kernel did there is done here
// instead: setuid and setgid by FUSE_WRITE_KILL_SUIDGID as before
// (killpriv.go), capabilities by fileHandle.Write. A write-only descriptor
// cannot be mapped, and the kernel drops the cached pages of the range
// such a write covers, so readers of other opens read the new bytes.
func (vs *viewState) writeOnlyDirect(flags uint32) bool {
	return flags&syscall.O_ACCMODE == syscall.O_WRONLY && !vs.fsys.opts.WritebackCache
}

// fileOpenReply returns the handle and the reply flags of an open with
// flags: fileOpenFlags, and FOPEN_DIRECT_IO for writeOnlyDirect.
func (vs *viewState) fileOpenReply(h *store.Handle, flags uint32) (*fileHandle, uint32) {
	fh := newFileHandle(h, flags)
	fl := vs.fileOpenFlags()
	if vs.writeOnlyDirect(flags) {
		fh.direct = true
		fl |= fuse.FOPEN_DIRECT_IO
	}
	return fh, fl
}

// forever is the longest timeout the kernel accepts without overflow
// concerns: about 68 years.
const forever = time.Duration(1<<31-1) * time.Second

// inoBits is the width of the inode number in a node id.
const inoBits = 40

// nodeID is the FUSE node id and st_ino of inode ino in view v.
func nodeID(v store.View, ino uint64) uint64 {
	return uint64(v.ID)<<inoBits | ino
}

// node is the state every node kind holds: its view and its inode number,
// nothing else, so that millions of nodes remembered by the kernel stay
// cheap. Everything else is read from the store.
type node struct {
	gofs.Inode
	vs  *viewState
	ino uint64
}

// baser is implemented by every node kind through the embedded node.
type baser interface{ base() *node }

func (n *node) base() *node { return n }

func (n *node) st() *store.Store { return n.vs.fsys.st }

func (n *node) view() store.View { return n.vs.view }

// newChild builds the node for attributes a, fills out and returns the
// Inode to hand to go-fuse, which keeps an existing one with the same id.
func (n *node) newChild(ctx context.Context, a store.Attr, out *fuse.EntryOut) *gofs.Inode {
	n.fillEntry(out, a)
	vs, ino := n.vs, a.Ino
	var ops gofs.InodeEmbedder
	switch a.Mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		ops = &dirNode{node{vs: vs, ino: ino}}
	case syscall.S_IFREG:
		ops = &fileNode{node{vs: vs, ino: ino}}
	case syscall.S_IFLNK:
		ops = &symlinkNode{node{vs: vs, ino: ino}}
	default:
		ops = &specialNode{node{vs: vs, ino: ino}}
	}
	id := gofs.StableAttr{
		Mode: a.Mode & syscall.S_IFMT,
		Ino:  nodeID(n.vs.view, a.Ino),
		Gen:  n.vs.fsys.opts.Generation,
	}
	in := n.NewInode(ctx, ops, id)
	if in.Operations() == ops && a.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		n.vs.fsys.budget.added(in) // a new inode for the kernel
	}
	return in
}

// fillEntry fills an entry reply with attributes and the view's timeouts.
func (n *node) fillEntry(out *fuse.EntryOut, a store.Attr) {
	fillAttr(&out.Attr, a, nodeID(n.vs.view, a.Ino))
	out.SetEntryTimeout(n.vs.entryTimeout)
	out.SetAttrTimeout(n.vs.attrTimeout)
}

// fillAttrOut fills an attribute reply with attributes and the view's timeout.
func (n *node) fillAttrOut(out *fuse.AttrOut, a store.Attr) {
	fillAttr(&out.Attr, a, nodeID(n.vs.view, a.Ino))
	out.SetTimeout(n.vs.attrTimeout)
}

// fillAttr converts store attributes to the kernel's.
func fillAttr(out *fuse.Attr, a store.Attr, id uint64) {
	out.Ino = id
	out.Size = a.Size
	out.Blocks = a.Blocks
	out.Blksize = a.Blksize
	out.Mode = a.Mode
	out.Nlink = a.Nlink
	out.Uid = a.Uid
	out.Gid = a.Gid
	out.Rdev = a.Rdev
	out.Atime, out.Atimensec = splitNs(a.Atime)
	out.Mtime, out.Mtimensec = splitNs(a.Mtime)
	out.Ctime, out.Ctimensec = splitNs(a.Ctime)
}

// splitNs splits nanoseconds since the epoch into seconds and nanoseconds
// for the kernel. Times before 1970 are clamped to the epoch, since the
// FUSE protocol carries unsigned seconds.
func splitNs(ns int64) (uint64, uint32) {
	if ns < 0 {
		return 0, 0
	}
	return uint64(ns / 1e9), uint32(ns % 1e9)
}

// joinNs is the inverse of splitNs.
func joinNs(sec uint64, nsec uint32) int64 {
	return int64(sec)*1e9 + int64(nsec)
}

// caller returns the uid and gid of the process behind a request.
func caller(ctx context.Context) (uid, gid uint32) {
	if c, ok := fuse.FromContext(ctx); ok {
		return c.Uid, c.Gid
	}
	return 0, 0
}

// nodeOf returns the node behind an InodeEmbedder handed back by go-fuse, or
// nil when it is not one of ours.
func nodeOf(e gofs.InodeEmbedder) *node {
	if b, ok := e.(baser); ok {
		return b.base()
	}
	return nil
}

var _ = (gofs.NodeGetattrer)((*node)(nil))

// Getattr reports attributes, through the open handle when there is one so
// that buffered writes count.
func (n *node) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	var a store.Attr
	var err error
	if fh, ok := f.(*fileHandle); ok {
		a, err = fh.h.Attr()
	} else {
		a, err = n.st().GetAttr(n.view(), n.ino)
	}
	if err != nil {
		return toErrno(err)
	}
	n.fillAttrOut(out, a)
	return 0
}

var _ = (gofs.NodeSetattrer)((*node)(nil))

// Setattr serves chmod, chown, utimensat and truncate.
func (n *node) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	sa := setAttrIn(in)
	if fh, ok := f.(*fileHandle); ok {
		sa.HandleFor = fh.h
	}
	a, err := n.st().SetAttr(n.view(), n.ino, sa)
	if err != nil {
		return toErrno(err)
	}
	n.fillAttrOut(out, a)
	return 0
}

// setAttrIn translates the kernel's setattr request.
func setAttrIn(in *fuse.SetAttrIn) store.SetAttrIn {
	var sa store.SetAttrIn
	if in.Valid&fuse.FATTR_MODE != 0 {
		sa.Valid |= store.SetMode
		sa.Mode = in.Mode & 0o7777
	}
	if in.Valid&fuse.FATTR_UID != 0 {
		sa.Valid |= store.SetUid
		sa.Uid = in.Uid
	}
	if in.Valid&fuse.FATTR_GID != 0 {
		sa.Valid |= store.SetGid
		sa.Gid = in.Gid
	}
	if in.Valid&fuse.FATTR_SIZE != 0 {
		sa.Valid |= store.SetSize
		sa.Size = in.Size
	}
	switch {
	case in.Valid&fuse.FATTR_ATIME_NOW != 0:
		sa.Valid |= store.SetAtimeNow
	case in.Valid&fuse.FATTR_ATIME != 0:
		sa.Valid |= store.SetAtime
		sa.Atime = joinNs(in.Atime, in.Atimensec)
	}
	switch {
	case in.Valid&fuse.FATTR_MTIME_NOW != 0:
		sa.Valid |= store.SetMtimeNow
	case in.Valid&fuse.FATTR_MTIME != 0:
		sa.Valid |= store.SetMtime
		sa.Mtime = joinNs(in.Mtime, in.Mtimensec)
	}
	if in.Valid&fuse.FATTR_CTIME != 0 {
		sa.Valid |= store.SetCtime
		sa.Ctime = joinNs(in.Ctime, in.Ctimensec)
	}
	if in.Valid&fuse.FATTR_KILL_SUIDGID != 0 {
		sa.Valid |= store.SetKillSuidgid
	}
	return sa
}

var _ = (gofs.NodeStatfser)((*node)(nil))

// Statfs reports the space of the pool as the view sees it.
func (n *node) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	s, err := n.st().StatFS(n.view())
	if err != nil {
		return toErrno(err)
	}
	out.Bsize = s.Bsize
	out.Frsize = s.Bsize
	out.Blocks = s.Blocks
	out.Bfree = s.Bfree
	out.Bavail = s.Bavail
	out.Files = s.Files
	out.Ffree = s.Ffree
	out.NameLen = s.NameLen
	return 0
}
