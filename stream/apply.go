package stream

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/snapfs/snapfs/pool"
	"github.com/snapfs/snapfs/snap"
	"github.com/snapfs/snapfs/store"
)

func base64url(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// applier builds a verified stream's tree in the live view of the target
// volume through the store's ordinary operations, then snapshots it.
//
// New inodes are made in a staging directory at the root (named
// "s<source ino>"); entries that a changed directory no longer has (or has
// for another inode) are moved there too ("t<target ino>"); then every changed
// directory takes its entries from the staging directory (a rename) or,
// for another name of a file already in place, by a link. What stays in
// the staging directory is gone in the snapshot and is deleted with it.
// Xattrs and file bytes follow, and attributes (owners, mode, then the
// three times) last, since every step before changes ctime.
type applier struct {
	st      *store.Store
	v       store.View
	p       *parsed
	m       *inoMap           // source ino -> target ino
	stage   uint64            // the staging directory's target ino
	staged  map[uint64]string // target ino -> its name in the staging directory
	types   map[uint64]uint32 // target ino -> file type
	dirBusy map[uint64]bool
}

const stagingPrefix = ".snapfs-receive-"

// Names in the staging directory: "s<source ino>" for a new inode, "t<target
// ino>" for one moved aside; the two never clash.
func newName(src uint64) string { return "s" + strconv.FormatUint(src, 10) }
func asideName(t uint64) string { return "t" + strconv.FormatUint(t, 10) }

// undoApply restores a target that a receive was applying to when it was
// interrupted: an incremental's volume is rolled back to the base, a full
// receive's volume is emptied.
func undoApply(st *store.Store, ds string, h *Header) error {
	m := snap.ManagerFor(st)
	if h.Base != nil {
		if _, err := m.Rollback(ds, h.Base.Name, false); err != nil {
			return fmt.Errorf("undo the interrupted receive into %s: %w", ds, err)
		}
		return nil
	}
	v, err := m.LiveView(ds)
	if errors.Is(err, store.ErrNoVolume) {
		return nil
	}
	if err != nil {
		return err
	}
	return removeChildren(st, v, store.RootIno)
}

// removeChildren deletes everything below directory dir.
func removeChildren(st *store.Store, v store.View, dir uint64) error {
	es, err := listDir(st, v, dir)
	if err != nil {
		return err
	}
	for _, e := range es {
		a, err := st.GetAttr(v, e.Ino)
		if err != nil {
			return err
		}
		if a.Mode&syscall.S_IFMT == syscall.S_IFDIR {
			if err := removeChildren(st, v, e.Ino); err != nil {
				return err
			}
			err = st.Rmdir(v, dir, e.Name)
		} else {
			err = st.Unlink(v, dir, e.Name)
		}
		if err != nil {
			return fmt.Errorf("remove %q: %w", e.Name, err)
		}
	}
	return nil
}

// apply builds the verified stream p in the target. The state says
// Applying already (verify saved it with Complete); resumed says an
// earlier run may have applied part of it, which is undone first.
func apply(t *Target, p *parsed, base *recvRecord, ps *partialState, resumed bool) error {
	st, ds, h := t.Store, t.Dataset, &p.hdr
	m := snap.ManagerFor(st)
	if resumed {
		if err := undoApply(st, ds, h); err != nil {
			return err
		}
	}
	im := newInoMap(st, ds, base)
	if h.Base == nil {
		if _, err := st.Volume(ds); errors.Is(err, store.ErrNoVolume) {
			if _, err := st.CreateVolume(ds, store.VolumeOptions{ChunkSize: int(h.ChunkSize)}); err != nil {
				return fmt.Errorf("receive: create %s: %w", ds, err)
			}
			if err := st.UpdateMeta(store.MetaOp{Key: newKey(ds), Value: []byte(h.StreamID)}); err != nil {
				return err
			}
		} else if err != nil {
			return err
		} else if !madeByReceive(st, ds) {
			return fmt.Errorf("%w: %s exists", ErrTargetExists, ds)
		} else {
			// left by an aborted full receive: start from an empty root
			lv, err := m.LiveView(ds)
			if err != nil {
				return err
			}
			if err := removeChildren(st, lv, store.RootIno); err != nil {
				return err
			}
		}
	} else {
		if changed, err := liveChanged(st, ds); err != nil {
			return err
		} else if changed {
			if !ps.Force {
				return fmt.Errorf("%w: %s was written since %s@%s (receive -F rolls it back first)", ErrTargetChanged, ds, ds, h.Base.Name)
			}
			if _, err := m.Rollback(ds, h.Base.Name, false); err != nil {
				return fmt.Errorf("receive -F: roll %s back to %s: %w", ds, h.Base.Name, err)
			}
		}
	}
	v, err := m.LiveView(ds)
	if err != nil {
		return err
	}
	a := &applier{st: st, v: v, p: p, m: im, staged: map[uint64]string{}, types: map[uint64]uint32{}}
	err = a.run()
	st.NotifyReplaced(v.Lineage) // a mount of the volume drops what the kernel cached
	if err != nil {
		return fmt.Errorf("receive %s@%s: %w", ds, h.Snapshot.Name, err)
	}
	rec := recvRecord{SourcePool: h.SourcePool, SourceDataset: h.Dataset, Snapshot: h.Snapshot, MapInKeys: true}
	mapOps, err := a.m.ops()
	if err != nil {
		return fmt.Errorf("receive %s@%s: %w", ds, h.Snapshot.Name, err)
	}
	_, err = m.CreateReceived(ds, h.Snapshot.Name, time.Unix(0, h.Snapshot.Created), func(e uint64) []store.MetaOp {
		rec.TargetEpoch = e
		return append(mapOps, store.MetaOp{Key: recvKey(ds), Value: mustJSON(rec)}, store.MetaOp{Key: newKey(ds), Delete: true})
	})
	if err != nil {
		return fmt.Errorf("receive %s@%s: %w", ds, h.Snapshot.Name, err)
	}
	// The snapshot is durable (taking it flushed the volume's writes and
	// synced the metadata log); its versions hold the chunks now, and
	// the stage lets go. The receive succeeded whatever happens here: a
	// stage left by a failed release holds references Check counts, and
	// the next receive into the dataset (or an abort) releases it.
	if err := st.ReleaseStageUnsynced(stageOf(ds)); err != nil {
		t.logf("receive %s@%s: release the staged chunks (the next receive into %s does): %v", ds, h.Snapshot.Name, ds, err)
	}
	return nil
}

func (a *applier) run() error {
	st, v := a.st, a.v
	name := stagingPrefix + a.p.hdr.StreamID[:12]
	if _, err := st.Lookup(v, store.RootIno, name); err == nil {
		if err := a.removeTree(store.RootIno, name); err != nil {
			return err
		}
	}
	sa, err := st.Mkdir(v, store.RootIno, name, 0o700, 0, 0)
	if err != nil {
		return fmt.Errorf("staging directory: %w", err)
	}
	a.stage = sa.Ino
	// New inodes, in the staging directory.
	for _, r := range a.p.inodes {
		if r.Ino == store.RootIno {
			continue
		}
		tg, ok, err := a.m.get(r.Ino)
		if err != nil {
			return err
		}
		if ok && !r.New {
			a.types[tg] = r.Mode & syscall.S_IFMT
			continue
		}
		if err := a.create(r); err != nil {
			return err
		}
	}
	// Entries that are wrong go to the staging directory.
	for _, d := range a.p.dirs {
		if err := a.moveOut(d); err != nil {
			return err
		}
	}
	// Every changed directory takes its entries.
	for _, d := range a.p.dirs {
		if err := a.moveIn(d); err != nil {
			return err
		}
	}
	// What is left in the staging directory is gone: its inodes leave
	// the map once no name holds them (another link may).
	left, err := listDir(st, v, a.stage)
	if err != nil {
		return err
	}
	if err := a.removeTree(store.RootIno, name); err != nil {
		return err
	}
	gone := map[uint64]bool{}
	for _, e := range left {
		if _, err := st.GetAttr(v, e.Ino); errors.Is(err, store.ErrNotFound) {
			gone[e.Ino] = true
		} else if err != nil {
			return err
		}
	}
	if len(gone) > 0 {
		if err := a.m.dropTargets(gone); err != nil {
			return err
		}
	}
	for src, xs := range a.p.xattrs {
		tg, err := a.m.mustGet(src)
		if err != nil {
			return err
		}
		if err := a.setXattrs(tg, xs); err != nil {
			return err
		}
	}
	for _, l := range a.p.layouts {
		tg, err := a.m.mustGet(l.Ino)
		if err != nil {
			return err
		}
		if err := a.layout(tg, l); err != nil {
			return err
		}
	}
	for _, r := range a.p.inodes {
		tg, err := a.m.mustGet(r.Ino)
		if err != nil {
			return err
		}
		if err := a.setAttrs(tg, r); err != nil {
			return err
		}
	}
	return nil
}

func (a *applier) create(r inodeRecord) error {
	st, v := a.st, a.v
	n := newName(r.Ino)
	var at store.Attr
	var err error
	switch r.Mode & syscall.S_IFMT {
	case syscall.S_IFDIR:
		at, err = st.Mkdir(v, a.stage, n, 0o700, 0, 0)
	case syscall.S_IFREG:
		var hd *store.Handle
		at, hd, err = st.Create(v, a.stage, n, syscall.S_IFREG|0o600, 0, 0, os.O_RDWR)
		if err == nil {
			err = hd.Release()
		}
	case syscall.S_IFLNK:
		at, err = st.Symlink(v, a.stage, n, r.Target, 0, 0)
	case syscall.S_IFIFO, syscall.S_IFCHR, syscall.S_IFBLK, syscall.S_IFSOCK:
		at, err = st.Mknod(v, a.stage, n, r.Mode&syscall.S_IFMT|0o600, r.Rdev, 0, 0)
	default:
		return fmt.Errorf("inode %d: unknown file type %#o: %w", r.Ino, r.Mode, ErrCorrupt)
	}
	if err != nil {
		return fmt.Errorf("create inode %d: %w", r.Ino, err)
	}
	a.m.put(r.Ino, at.Ino)
	a.staged[at.Ino] = n
	a.types[at.Ino] = r.Mode & syscall.S_IFMT
	return nil
}

// moveOut moves every entry of directory d that the stream's listing
// does not have (or has for another inode) to the staging directory, or
// unlinks it if that inode is there already.
func (a *applier) moveOut(d dirRecord) error {
	st, v := a.st, a.v
	dir, err := a.m.mustGet(d.ino)
	if err != nil {
		return err
	}
	want := map[string]uint64{}
	for _, e := range d.entries {
		if want[e.Name], err = a.m.mustGet(e.Ino); err != nil {
			return err
		}
	}
	cur, err := listDir(st, v, dir)
	if err != nil {
		return fmt.Errorf("list directory %d: %w", dir, err)
	}
	for _, e := range cur {
		if dir == store.RootIno && e.Ino == a.stage {
			continue
		}
		if tg, ok := want[e.Name]; ok && tg == e.Ino {
			continue
		}
		if _, ok := a.staged[e.Ino]; ok {
			if err := st.Unlink(v, dir, e.Name); err != nil {
				return fmt.Errorf("unlink %q: %w", e.Name, err)
			}
			continue
		}
		if err := st.Rename(v, dir, e.Name, a.stage, asideName(e.Ino), 0); err != nil {
			return fmt.Errorf("move %q aside: %w", e.Name, err)
		}
		a.staged[e.Ino] = asideName(e.Ino)
	}
	return nil
}

// moveIn gives directory d the entries it lacks.
func (a *applier) moveIn(d dirRecord) error {
	st, v := a.st, a.v
	dir, err := a.m.mustGet(d.ino)
	if err != nil {
		return err
	}
	for _, e := range d.entries {
		tg, err := a.m.mustGet(e.Ino)
		if err != nil {
			return err
		}
		if at, err := st.Lookup(v, dir, e.Name); err == nil && at.Ino == tg {
			continue
		}
		if sn, ok := a.staged[tg]; ok {
			if err := st.Rename(v, a.stage, sn, dir, e.Name, 0); err != nil {
				return fmt.Errorf("place %q: %w", e.Name, err)
			}
			delete(a.staged, tg)
			continue
		}
		if _, err := st.Link(v, tg, dir, e.Name); err != nil {
			return fmt.Errorf("link %q: %w", e.Name, err)
		}
	}
	return nil
}

// removeTree deletes name in dir with everything below it.
func (a *applier) removeTree(dir uint64, name string) error {
	at, err := a.st.Lookup(a.v, dir, name)
	if err != nil {
		return err
	}
	if err := removeChildren(a.st, a.v, at.Ino); err != nil {
		return err
	}
	return a.st.Rmdir(a.v, dir, name)
}

func (a *applier) setXattrs(ino uint64, xs []xattr) error {
	cur, err := a.st.ListXattr(a.v, ino)
	if err != nil {
		return err
	}
	want := map[string]bool{}
	for _, x := range xs {
		want[x.Name] = true
	}
	for _, n := range cur {
		if !want[n] {
			if err := a.st.RemoveXattr(a.v, ino, n); err != nil {
				return fmt.Errorf("remove xattr %q of inode %d: %w", n, ino, err)
			}
		}
	}
	for _, x := range xs {
		if err := a.st.SetXattr(a.v, ino, x.Name, x.Value, 0); err != nil {
			return fmt.Errorf("set xattr %q of inode %d: %w", x.Name, ino, err)
		}
	}
	return nil
}

// chunkData returns the bytes of chunk c from the target's store (staged
// by this receive, or held by the base).
func (a *applier) chunkData(c layoutEntry) ([]byte, error) {
	b, err := a.st.ReadChunk(pool.Hash(c.Hash))
	if err != nil {
		return nil, err
	}
	if len(b) != int(c.Length) {
		return nil, fmt.Errorf("chunk of %d bytes, layout says %d: %w", len(b), c.Length, ErrCorrupt)
	}
	return b, nil
}

// layout makes file ino's bytes those of l. Only the chunks that differ
// from what it holds change, and they are placed by reference
// (store.SetChunks): the stream's chunks are staged in the store already,
// an incremental's others are the base's, so no byte is written again. A
// file whose chunk size differs from the stream's (its volume's chunk size
// changed since it was made) takes the bytes through its handle instead.
func (a *applier) layout(ino uint64, l layoutRecord) error {
	st, v := a.st, a.v
	cur, err := st.FileLayout(v, ino)
	if err != nil {
		return err
	}
	hd, err := st.Open(v, ino, os.O_RDWR)
	if err != nil {
		return err
	}
	defer hd.Release()
	truncate := func(n uint64) error {
		_, err := st.SetAttr(v, ino, store.SetAttrIn{Valid: store.SetSize, Size: n, HandleFor: hd})
		return err
	}
	byRef := cur.ChunkSize == l.ChunkSize
	// sized: the file has l's size already, and nothing below changes
	// it (the common incremental: bytes rewritten in place), so the
	// final truncate, a commit, is left out.
	sized := cur.Size == l.Size && !l.Inline && !cur.Inline && byRef
	if l.Inline || cur.Inline || !byRef {
		if err := truncate(0); err != nil {
			return err
		}
		cur = store.FileLayout{ChunkSize: l.ChunkSize}
	}
	if cur.Size > l.Size {
		if err := truncate(l.Size); err != nil {
			return err
		}
	}
	if l.Inline {
		if _, err := hd.Write(l.Data, 0); err != nil {
			return err
		}
	} else {
		have := map[uint64]store.ChunkEntry{}
		for _, c := range cur.Chunks {
			have[c.Index] = c
		}
		cs := l.ChunkSize
		var place []store.ChunkEntry
		for _, c := range l.Chunks {
			old, ok := have[c.Index]
			delete(have, c.Index)
			if ok && old.Hash == pool.Hash(c.Hash) && old.Length == c.Length {
				continue
			}
			if byRef {
				place = append(place, store.ChunkEntry{Index: c.Index, Hash: pool.Hash(c.Hash), Length: c.Length})
				if c.Index*uint64(cs)+uint64(c.Length) > l.Size {
					sized = false // SetChunks grows the file to the chunk's end
				}
				continue
			}
			data, err := a.chunkData(c)
			if err != nil {
				return fmt.Errorf("inode %d chunk %d: %w", ino, c.Index, err)
			}
			if _, err := hd.Write(data, int64(c.Index)*cs); err != nil {
				return err
			}
		}
		if err := st.SetChunks(hd, place); err != nil {
			return fmt.Errorf("inode %d: %w", ino, err)
		}
		for idx := range have { // data where the stream has a hole
			if err := hd.Allocate(int64(idx)*cs, cs, store.FallocPunchHole|store.FallocKeepSize); err != nil {
				return err
			}
		}
	}
	if err := hd.Flush(); err != nil {
		return err
	}
	if sized {
		return nil
	}
	return truncate(l.Size)
}

// setAttrs gives inode ino the owner, mode and times of r, in one
// SetAttr (one commit) unless the mode has a set-user or set-group ID
// bit: a change of owner clears those (as on ext4), and SetAttr applies
// the owner after the mode, so such a mode is set in a second call.
func (a *applier) setAttrs(ino uint64, r inodeRecord) error {
	st, v := a.st, a.v
	valid := store.SetUid | store.SetGid | store.SetAtime | store.SetMtime | store.SetCtime
	if r.Mode&syscall.S_IFMT != syscall.S_IFLNK {
		valid |= store.SetMode
	}
	if valid&store.SetMode != 0 && r.Mode&(syscall.S_ISUID|syscall.S_ISGID) != 0 {
		if _, err := st.SetAttr(v, ino, store.SetAttrIn{Valid: store.SetUid | store.SetGid, Uid: r.Uid, Gid: r.Gid}); err != nil {
			return fmt.Errorf("owner of inode %d: %w", ino, err)
		}
		valid &^= store.SetUid | store.SetGid
	}
	if _, err := st.SetAttr(v, ino, store.SetAttrIn{Valid: valid, Mode: r.Mode & 0o7777, Uid: r.Uid, Gid: r.Gid,
		Atime: r.Atime, Mtime: r.Mtime, Ctime: r.Ctime}); err != nil {
		return fmt.Errorf("attributes of inode %d: %w", ino, err)
	}
	return nil
}
