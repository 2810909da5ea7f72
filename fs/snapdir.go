package fs

import (
	"context"
	"errors"
	"syscall"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/snapfs/snapfs/snap"
	"github.com/snapfs/snapfs/store"
)

// SnapdirName is the name of the control directory in the root of a
// dataset's live view (a volume's or a branch's).
const SnapdirName = ".snapshots"

// snapdirIno is the inode number of the .snapshots directory within its
// view. The store allocates inode numbers upwards from 2 and fails before
// reaching MaxIno, so that number is never a stored inode's.
const snapdirIno = store.MaxIno

// snapdirTimeout is the entry and attribute timeout of the .snapshots
// directory and of the names in it: they change with every mkdir, rmdir
// and mv in it, and with the CLI when the change does not come through the
// mount, so the kernel must ask again soon.
const snapdirTimeout = time.Second

// snapdirNode is the .snapshots directory of a dataset's live view: a
// volume's, or a branch's, which has snapshots and branches of its own. It
// holds no state of its own: its listing is the snap.Manager's, read at
// every call, for the dataset the live view is (looked up by view id, so a
// rename of a branch above does not strand it). Each entry is the root
// directory of a snapshot (a read-only view, without .snapshots) or of a
// branch (a writable one, with its own .snapshots).
type snapdirNode struct {
	gofs.Inode
	live *viewState // the view whose root holds this directory
}

func (d *snapdirNode) mgr() *snap.Manager { return d.live.fsys.snaps }

func (d *snapdirNode) st() *store.Store { return d.live.fsys.st }

// dataset returns the current path of the dataset whose .snapshots this is.
func (d *snapdirNode) dataset() (string, syscall.Errno) {
	ds, err := d.mgr().DatasetOf(d.live.view.ID)
	if err != nil {
		// The branch was destroyed under the mount.
		return "", syscall.ESTALE
	}
	return ds, 0
}

// newSnapdir returns the .snapshots node of the root r.
func (r *rootNode) newSnapdir(ctx context.Context, out *fuse.EntryOut) *gofs.Inode {
	d := &snapdirNode{live: r.vs}
	d.fillAttr(&out.Attr)
	out.SetEntryTimeout(snapdirTimeout)
	out.SetAttrTimeout(snapdirTimeout)
	id := gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: out.Attr.Ino, Gen: r.vs.fsys.opts.Generation}
	return r.NewInode(ctx, d, id)
}

// fillAttr synthesizes the directory's attributes: owned by the volume's
// owner, mode 0755, times those of the newest entry (or the volume's).
func (d *snapdirNode) fillAttr(out *fuse.Attr) {
	a := store.Attr{Ino: snapdirIno, Mode: syscall.S_IFDIR | 0o755, Nlink: 2, Blksize: 4096}
	ds, _ := d.dataset()
	if vi, err := d.st().Volume(snap.VolumeOf(ds)); err == nil {
		a.Uid, a.Gid = vi.Uid, vi.Gid
		a.Mtime = vi.Created.UnixNano()
	}
	// The summary is kept in memory by the Manager: this is asked around
	// every mkdir and rmdir here, and must not list every snapshot.
	if n, newest, err := d.mgr().Summary(ds); ds != "" && err == nil {
		a.Nlink += uint32(n)
		if !newest.IsZero() {
			a.Mtime = max(a.Mtime, newest.UnixNano())
		}
	}
	a.Atime, a.Ctime = a.Mtime, a.Mtime
	fillAttr(out, a, nodeID(d.live.view, snapdirIno))
}

var _ = (gofs.NodeGetattrer)((*snapdirNode)(nil))

// Getattr reports the synthesized attributes with a short timeout.
func (d *snapdirNode) Getattr(ctx context.Context, f gofs.FileHandle, out *fuse.AttrOut) syscall.Errno {
	d.fillAttr(&out.Attr)
	out.SetTimeout(snapdirTimeout)
	return 0
}

var _ = (gofs.NodeSetattrer)((*snapdirNode)(nil))

// Setattr: the directory's attributes are derived, not stored.
func (d *snapdirNode) Setattr(ctx context.Context, f gofs.FileHandle, in *fuse.SetAttrIn, out *fuse.AttrOut) syscall.Errno {
	return syscall.EPERM
}

var _ = (gofs.NodeStatfser)((*snapdirNode)(nil))

// Statfs reports the pool as the live view sees it.
func (d *snapdirNode) Statfs(ctx context.Context, out *fuse.StatfsOut) syscall.Errno {
	r := node{vs: d.live, ino: store.RootIno}
	return r.Statfs(ctx, out)
}

var _ = (gofs.NodeLookuper)((*snapdirNode)(nil))

// Lookup returns the root directory of snapshot or branch name.
func (d *snapdirNode) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	ds, errno := d.dataset()
	if errno != 0 {
		return nil, errno
	}
	s, err := d.mgr().Entry(ds, name)
	if err != nil {
		return nil, d.errno(err)
	}
	return d.entryRoot(ctx, s, out)
}

// entryRoot builds the node of the root directory of s: a plain directory
// for a snapshot (a read-only view has no .snapshots), a rootNode with its
// own .snapshots for a branch.
func (d *snapdirNode) entryRoot(ctx context.Context, s snap.Snapshot, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	v := s.View()
	a, err := d.st().GetAttr(v, store.RootIno)
	if err != nil {
		return nil, toErrno(err)
	}
	vs := newViewState(d.live.fsys, v)
	vs.snapdir = s.Kind == snap.KindBranch
	var ops gofs.InodeEmbedder
	if vs.snapdir {
		r := &rootNode{dirNode{node{vs: vs, ino: store.RootIno}}}
		r.fillEntry(out, a)
		ops = r
	} else {
		r := &dirNode{node{vs: vs, ino: store.RootIno}}
		r.fillEntry(out, a)
		ops = r
	}
	// The name may go away through the CLI without the kernel hearing of
	// it: keep the name short-lived; the view's attributes stay cached.
	out.SetEntryTimeout(snapdirTimeout)
	id := gofs.StableAttr{Mode: syscall.S_IFDIR, Ino: nodeID(v, store.RootIno), Gen: d.live.fsys.opts.Generation}
	return d.NewInode(ctx, ops, id), 0
}

var _ = (gofs.NodeReaddirer)((*snapdirNode)(nil))

// Readdir lists "." and "..", then snapshots and branches, oldest first.
func (d *snapdirNode) Readdir(ctx context.Context) (gofs.DirStream, syscall.Errno) {
	ds, errno := d.dataset()
	if errno != 0 {
		return nil, errno
	}
	l, err := d.mgr().Entries(ds)
	if err != nil {
		return nil, toErrno(err)
	}
	out := make([]fuse.DirEntry, 0, len(l)+2)
	out = append(out,
		fuse.DirEntry{Name: ".", Mode: syscall.S_IFDIR, Ino: nodeID(d.live.view, snapdirIno)},
		fuse.DirEntry{Name: "..", Mode: syscall.S_IFDIR, Ino: nodeID(d.live.view, store.RootIno)})
	for _, s := range l {
		out = append(out, fuse.DirEntry{Name: s.Name, Mode: syscall.S_IFDIR, Ino: nodeID(s.View(), store.RootIno)})
	}
	return gofs.NewListDirStream(out), 0
}

// mayChange returns the dataset if the caller may create, rename or
// destroy its entries: root and the owner of its volume only.
func (d *snapdirNode) mayChange(ctx context.Context) (string, syscall.Errno) {
	ds, errno := d.dataset()
	if errno != 0 {
		return "", errno
	}
	uid, _ := caller(ctx)
	if uid == 0 {
		return ds, 0
	}
	vi, err := d.st().Volume(snap.VolumeOf(ds))
	if err != nil {
		return "", toErrno(err)
	}
	if vi.Uid != uid {
		return "", syscall.EPERM
	}
	return ds, 0
}

// errno maps the snap package's errors; the rest go through toErrno.
func (d *snapdirNode) errno(err error) syscall.Errno {
	if errors.Is(err, snap.ErrHasBranches) {
		return syscall.EBUSY
	}
	return toErrno(err)
}

var _ = (gofs.NodeMkdirer)((*snapdirNode)(nil))

// Mkdir takes a snapshot named name. The mode is ignored: a snapshot's
// root has the mode of the volume's root when it was taken. Once the
// snapshot is committed the request's cancellation is ignored (note 21).
func (d *snapdirNode) Mkdir(ctx context.Context, name string, mode uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	ds, errno := d.mayChange(ctx)
	if errno != 0 {
		return nil, errno
	}
	s, err := d.mgr().Create(ds, name)
	if err != nil {
		return nil, d.errno(err)
	}
	return d.entryRoot(ctx, s, out)
}

var _ = (gofs.NodeRmdirer)((*snapdirNode)(nil))

// Rmdir destroys snapshot name. A branch is ENOTEMPTY (the CLI destroys
// branches) and a snapshot with branches EBUSY.
func (d *snapdirNode) Rmdir(ctx context.Context, name string) syscall.Errno {
	ds, errno := d.mayChange(ctx)
	if errno != 0 {
		return errno
	}
	return d.errno(d.mgr().Destroy(ds, name))
}

var _ = (gofs.NodeRenamer)((*snapdirNode)(nil))

// Rename renames a snapshot or branch within this directory. An existing
// target is never replaced (EEXIST), so RENAME_NOREPLACE changes nothing;
// RENAME_EXCHANGE is EINVAL and a rename out of .snapshots EXDEV.
func (d *snapdirNode) Rename(ctx context.Context, name string, newParent gofs.InodeEmbedder, newName string, flags uint32) syscall.Errno {
	if p, ok := newParent.(*snapdirNode); !ok || p != d {
		return syscall.EXDEV
	}
	if flags&^store.RenameNoReplace != 0 {
		return syscall.EINVAL
	}
	ds, errno := d.mayChange(ctx)
	if errno != 0 {
		return errno
	}
	return d.errno(d.mgr().Rename(ds, name, newName))
}

var _ = (gofs.NodeCreater)((*snapdirNode)(nil))

// Create: only directories (snapshots) are made here.
func (d *snapdirNode) Create(ctx context.Context, name string, flags uint32, mode uint32, out *fuse.EntryOut) (*gofs.Inode, gofs.FileHandle, uint32, syscall.Errno) {
	return nil, nil, 0, syscall.EPERM
}

var _ = (gofs.NodeMknoder)((*snapdirNode)(nil))

// Mknod: only directories (snapshots) are made here.
func (d *snapdirNode) Mknod(ctx context.Context, name string, mode uint32, dev uint32, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EPERM
}

var _ = (gofs.NodeSymlinker)((*snapdirNode)(nil))

// Symlink: only directories (snapshots) are made here.
func (d *snapdirNode) Symlink(ctx context.Context, target, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EPERM
}

var _ = (gofs.NodeLinker)((*snapdirNode)(nil))

// Link: only directories (snapshots) are made here.
func (d *snapdirNode) Link(ctx context.Context, target gofs.InodeEmbedder, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	return nil, syscall.EPERM
}

var _ = (gofs.NodeUnlinker)((*snapdirNode)(nil))

// Unlink: every entry is a directory; the kernel answers EISDIR itself.
func (d *snapdirNode) Unlink(ctx context.Context, name string) syscall.Errno {
	return syscall.EPERM
}

var _ = (gofs.NodeSetxattrer)((*snapdirNode)(nil))

// Setxattr: the directory stores nothing.
func (d *snapdirNode) Setxattr(ctx context.Context, attr string, data []byte, flags uint32) syscall.Errno {
	return syscall.EPERM
}

var _ = (gofs.NodeRemovexattrer)((*snapdirNode)(nil))

// Removexattr: the directory stores nothing.
func (d *snapdirNode) Removexattr(ctx context.Context, attr string) syscall.Errno {
	return syscall.ENODATA
}
