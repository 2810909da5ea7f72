package fs

import (
	"context"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/snapfs/snapfs/store"
)

// Directory offsets as the kernel sees them. Each entry carries the offset
// to resume after it: "." is 1, ".." is 2, and every stored name its store
// cookie, a 63-bit hash of the name that stays valid across changes to the
// directory and across handles (so telldir/seekdir and NFS work). A name
// whose cookie is 1 or 2 would be ambiguous; with 63-bit hashes the chance
// is 2^-62 per name and is accepted; so is 3, the offset of .snapshots.
const (
	offDot     = 1
	offDotDot  = 2
	offSnapdir = 3 // .snapshots in a root with snapdir=visible
)

// readdirBatch is how many entries one store.ReadDir call fetches.
const readdirBatch = 256

// dirHandle is an open directory. go-fuse serializes the calls on one
// handle (it holds the handle's lock around Readdirent, Seekdir and
// Lookup), so the fields need no lock of their own.
type dirHandle struct {
	dir *dirNode
	// root is set when the listing shows .snapshots (after "..").
	root *rootNode
	// pos is the offset of the last entry handed out (0 before any).
	pos uint64
	// batch holds entries fetched from the store and not yet handed out.
	batch []store.DirEntry
	// eof is set when the store had nothing after pos.
	eof bool
	// last is the entry handed out last, for the READDIRPLUS lookup.
	last store.DirEntry
}

var _ = (gofs.FileReaddirenter)((*dirHandle)(nil))

// Readdirent returns the next entry, or nil at the end.
func (d *dirHandle) Readdirent(ctx context.Context) (*fuse.DirEntry, syscall.Errno) {
	switch d.pos {
	case 0:
		d.pos = offDot
		return &fuse.DirEntry{Name: ".", Mode: syscall.S_IFDIR, Ino: d.selfIno(), Off: offDot}, 0
	case offDot:
		d.pos = offDotDot
		return &fuse.DirEntry{Name: "..", Mode: syscall.S_IFDIR, Ino: d.parentIno(), Off: offDotDot}, 0
	case offDotDot:
		if d.root != nil {
			d.pos = offSnapdir
			return &fuse.DirEntry{Name: SnapdirName, Mode: syscall.S_IFDIR, Ino: nodeID(d.dir.vs.view, snapdirIno), Off: offSnapdir}, 0
		}
	}
	if len(d.batch) == 0 {
		if d.eof {
			return nil, 0
		}
		if errno := d.fill(); errno != 0 {
			return nil, errno
		}
		if len(d.batch) == 0 {
			return nil, 0
		}
	}
	e := d.batch[0]
	d.batch = d.batch[1:]
	d.pos = e.Cookie
	d.last = e
	return &fuse.DirEntry{
		Name: e.Name,
		Mode: e.Mode & syscall.S_IFMT,
		Ino:  nodeID(d.dir.vs.view, e.Ino),
		Off:  e.Cookie,
	}, 0
}

// fill fetches the next batch of entries after pos.
func (d *dirHandle) fill() syscall.Errno {
	after := d.pos
	if after == offDotDot || after == offSnapdir {
		after = 0
	}
	batch := d.batch[:0]
	err := d.dir.st().ReadDir(d.dir.view(), d.dir.ino, after, func(e store.DirEntry) bool {
		batch = append(batch, e)
		return len(batch) < readdirBatch
	})
	if err != nil {
		return toErrno(err)
	}
	d.batch = batch
	d.eof = len(batch) < readdirBatch
	return 0
}

func (d *dirHandle) selfIno() uint64 {
	return nodeID(d.dir.vs.view, d.dir.ino)
}

// parentIno is the st_ino of "..", as far as go-fuse's tree knows it; the
// kernel answers ".." itself, so this is only what readdir shows.
func (d *dirHandle) parentIno() uint64 {
	if _, p := d.dir.Parent(); p != nil {
		return p.StableAttr().Ino
	}
	return d.selfIno()
}

var _ = (gofs.FileSeekdirer)((*dirHandle)(nil))

// Seekdir moves to just after the entry whose offset is off (0: the start).
func (d *dirHandle) Seekdir(ctx context.Context, off uint64) syscall.Errno {
	d.pos = off
	d.batch = d.batch[:0]
	d.eof = false
	d.last = store.DirEntry{}
	return 0
}

var _ = (gofs.FileLookuper)((*dirHandle)(nil))

// Lookup answers the READDIRPLUS lookup of the entry Readdirent returned
// last from the listing itself, without a second directory-entry seek.
func (d *dirHandle) Lookup(ctx context.Context, name string, out *fuse.EntryOut) (*gofs.Inode, syscall.Errno) {
	if d.root != nil && name == SnapdirName {
		return d.root.Lookup(ctx, name, out)
	}
	if name == d.last.Name && d.last.Ino != 0 {
		return d.dir.lookupAttr(ctx, d.last.Ino, out)
	}
	return d.dir.Lookup(ctx, name, out)
}

var _ = (gofs.FileFsyncdirer)((*dirHandle)(nil))

// Fsyncdir makes the directory's entries durable. The store commits all
// namespace changes in one stream, so this is a durable commit of it.
func (d *dirHandle) Fsyncdir(ctx context.Context, flags uint32) syscall.Errno {
	return toErrno(d.dir.st().Sync())
}

var _ = (gofs.FileReleasedirer)((*dirHandle)(nil))

// Releasedir drops the handle's buffered entries.
func (d *dirHandle) Releasedir(ctx context.Context, releaseFlags uint32) {
	d.batch = nil
}
