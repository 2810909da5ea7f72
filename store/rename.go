package store

import (
	"errors"
	"fmt"
)

// Rename moves oldParent/oldName to newParent/newName. RenameNoReplace fails
// with ErrExists when the target exists; RenameExchange swaps two existing
// names; RenameWhiteout is not supported (ErrInvalid).
func (s *Store) Rename(v View, oldParent uint64, oldName string, newParent uint64, newName string, flags uint32) error {
	if flags&RenameWhiteout != 0 || flags&RenameNoReplace != 0 && flags&RenameExchange != 0 || flags&^7 != 0 {
		return fmt.Errorf("rename flags %#x: %w", flags, ErrInvalid)
	}
	if err := checkName(newName); err != nil {
		return err
	}
	if err := checkName(oldName); err != nil {
		return err
	}
	for {
		err := s.renameOnce(v, oldParent, oldName, newParent, newName, flags)
		if !errors.Is(err, errRetry) {
			return err
		}
	}
}

func (s *Store) renameOnce(v View, oldParent uint64, oldName string, newParent uint64, newName string, flags uint32) error {
	t, err := s.begin(v)
	if err != nil {
		return err
	}
	defer t.abort()
	src, err := s.getDirent(t, t.chain, oldParent, oldName)
	if err != nil {
		return err
	}
	dst, err := s.getDirent(t, t.chain, newParent, newName)
	dstExists := err == nil
	if err != nil && !isNotFound(err) {
		return err
	}
	// A directory moving to another parent takes the lineage's rename lock,
	// so that the loop check below sees a stable tree (like Linux's
	// s_vfs_rename_mutex).
	if oldParent != newParent && (src.Type == sIFDIR || dstExists && dst.Type == sIFDIR) {
		t.l.renameMu.Lock()
		defer t.l.renameMu.Unlock()
	}
	inos := []uint64{oldParent, newParent, src.Ino}
	if dstExists {
		inos = append(inos, dst.Ino)
	}
	li := s.inodes.lockInodes(v.Lineage, inos...)
	defer li.unlock()
	t.locked()
	// Re-check under the locks.
	if d, err := s.getDirent(t, t.chain, oldParent, oldName); err != nil || d.Ino != src.Ino {
		return errRetry
	}
	if d, err := s.getDirent(t, t.chain, newParent, newName); dstExists && (err != nil || d.Ino != dst.Ino) || !dstExists && err == nil {
		return errRetry
	}
	r := &renameOp{t: t, li: li, oldParent: oldParent, newParent: newParent, oldName: oldName, newName: newName, src: src, dst: dst, dstExists: dstExists}
	saved := li.saveRecs()
	if err := r.run(flags); err != nil {
		li.restoreRecs(saved)
		return err
	}
	return nil
}

// savedRec is the cached record state of a locked inode, which a txn's
// putInode changes before the txn commits.
type savedRec struct {
	rec           inodeRec
	loaded        bool
	recDirty      bool
	committedSize uint64
}

// saveRecs returns the cached records of the locked inodes, for
// restoreRecs.
func (li *lockedInodes) saveRecs() []savedRec {
	out := make([]savedRec, len(li.sts))
	for i, st := range li.sts {
		out[i] = savedRec{st.rec, st.loaded, st.recDirty, st.committedSize}
	}
	return out
}

// restoreRecs puts back the cached records saved before a txn that did not
// commit. Marking them unloaded instead (to re-read the committed record)
// would drop what the cache holds beyond it: the size and times of writes
// not yet flushed, so a failed rename of a file just written (rename over
// a directory: EISDIR) made the file read as empty.
func (li *lockedInodes) restoreRecs(saved []savedRec) {
	for i, st := range li.sts {
		sv := saved[i]
		st.rec, st.loaded, st.recDirty, st.committedSize = sv.rec, sv.loaded, sv.recDirty, sv.committedSize
	}
}

// renameOp holds one rename's locked state.
type renameOp struct {
	t                    *txn
	li                   *lockedInodes
	oldParent, newParent uint64
	oldName, newName     string
	src, dst             direntRec
	dstExists            bool
}

func (r *renameOp) run(flags uint32) error {
	t := r.t
	if _, err := t.dirInode(r.li.get(r.oldParent)); err != nil {
		return err
	}
	if _, err := t.dirInode(r.li.get(r.newParent)); err != nil {
		return err
	}
	switch {
	case flags&RenameNoReplace != 0 && r.dstExists:
		return fmt.Errorf("rename to %q: %w", r.newName, ErrExists)
	case flags&RenameExchange != 0 && !r.dstExists:
		return fmt.Errorf("exchange with %q: %w", r.newName, ErrNotFound)
	case r.dstExists && r.dst.Ino == r.src.Ino:
		return nil // the same inode under both names: POSIX says do nothing
	}
	if err := r.checkLoop(r.src, r.newParent); err != nil {
		return err
	}
	if flags&RenameExchange != 0 {
		if err := r.checkLoop(r.dst, r.oldParent); err != nil {
			return err
		}
		return r.exchange()
	}
	if r.dstExists {
		if err := r.checkReplace(); err != nil {
			return err
		}
	}
	return r.move()
}

// checkLoop refuses to move directory d below itself.
func (r *renameOp) checkLoop(d direntRec, into uint64) error {
	if d.Type != sIFDIR || r.oldParent == r.newParent {
		return nil
	}
	for ino, n := into, 0; ; n++ {
		if ino == d.Ino {
			return fmt.Errorf("rename a directory into itself: %w", ErrInvalid)
		}
		if ino == RootIno || n > 1<<16 {
			return nil
		}
		rec, err := r.t.s.getInode(r.t, r.t.chain, ino)
		if err != nil {
			return err
		}
		ino = rec.Parent
	}
}

func (r *renameOp) checkReplace() error {
	drec, err := r.t.inode(r.li.get(r.dst.Ino))
	if err != nil {
		return err
	}
	srcDir, dstDir := r.src.Type == sIFDIR, drec.Mode&sIFMT == sIFDIR
	switch {
	case srcDir && !dstDir:
		return fmt.Errorf("rename a directory over %q: %w", r.newName, ErrNotDir)
	case !srcDir && dstDir:
		return fmt.Errorf("rename over directory %q: %w", r.newName, ErrIsDir)
	case dstDir && drec.Entries > 0:
		return fmt.Errorf("rename over %q: %w", r.newName, ErrNotEmpty)
	}
	return nil
}

// move renames src, replacing dst if it exists.
func (r *renameOp) move() error {
	t := r.t
	ts := now()
	op, np := r.li.get(r.oldParent), r.li.get(r.newParent)
	if r.dstExists {
		dst := r.li.get(r.dst.Ino)
		drec, err := t.inode(dst)
		if err != nil {
			return err
		}
		if drec.Mode&sIFMT == sIFDIR {
			if err := r.adjustParent(np, 0, -1, ts); err != nil {
				return err
			}
		}
		if err := t.dropLink(dst, drec); err != nil {
			return err
		}
		if err := r.adjustParent(np, -1, 0, ts); err != nil {
			return err
		}
	}
	if err := t.removeEntry(r.oldParent, r.oldName); err != nil {
		return err
	}
	if err := t.setEntry(r.newParent, r.newName, r.src.Ino, r.src.Type); err != nil {
		return err
	}
	dirDelta := int64(0)
	if r.src.Type == sIFDIR && r.oldParent != r.newParent {
		dirDelta = 1
	}
	if err := r.adjustParent(op, -1, -dirDelta, ts); err != nil {
		return err
	}
	if err := r.adjustParent(np, 1, dirDelta, ts); err != nil {
		return err
	}
	if err := r.touchMoved(r.li.get(r.src.Ino), r.newParent, r.newName, ts); err != nil {
		return err
	}
	return t.commit()
}

// exchange swaps the inodes named by src and dst.
func (r *renameOp) exchange() error {
	t := r.t
	ts := now()
	if err := t.setEntry(r.oldParent, r.oldName, r.dst.Ino, r.dst.Type); err != nil {
		return err
	}
	if err := t.setEntry(r.newParent, r.newName, r.src.Ino, r.src.Type); err != nil {
		return err
	}
	if r.oldParent != r.newParent {
		d := int64(0)
		if r.src.Type == sIFDIR {
			d++
		}
		if r.dst.Type == sIFDIR {
			d--
		}
		if err := r.adjustParent(r.li.get(r.oldParent), 0, -d, ts); err != nil {
			return err
		}
		if err := r.adjustParent(r.li.get(r.newParent), 0, d, ts); err != nil {
			return err
		}
	} else if err := r.adjustParent(r.li.get(r.oldParent), 0, 0, ts); err != nil {
		return err
	}
	if err := r.touchMoved(r.li.get(r.src.Ino), r.newParent, r.newName, ts); err != nil {
		return err
	}
	if err := r.touchMoved(r.li.get(r.dst.Ino), r.oldParent, r.oldName, ts); err != nil {
		return err
	}
	return t.commit()
}

// adjustParent changes a directory's entry count and link count and times.
func (r *renameOp) adjustParent(st *inodeState, entries, links int64, ts int64) error {
	rec, err := r.t.inode(st)
	if err != nil {
		return err
	}
	rec.Entries = uint64(int64(rec.Entries) + entries)
	rec.Nlink = uint32(int64(rec.Nlink) + links)
	rec.Mtime, rec.Ctime = ts, ts
	return r.t.putInode(st, rec)
}

// touchMoved updates a moved inode's ctime, its name hint and, for a
// directory, its parent.
func (r *renameOp) touchMoved(st *inodeState, parent uint64, name string, ts int64) error {
	rec, err := r.t.inode(st)
	if err != nil {
		return err
	}
	rec.Ctime = ts
	rec.LinkParent, rec.LinkName = parent, name
	if rec.Mode&sIFMT == sIFDIR {
		rec.Parent = parent
	}
	return r.t.putInode(st, rec)
}
