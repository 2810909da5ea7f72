package store

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// checkName validates one path component.
func checkName(name string) error {
	switch {
	case len(name) > MaxNameLen:
		return fmt.Errorf("name of %d bytes: %w", len(name), ErrNameTooLong)
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("name %q: %w", name, ErrInvalid)
	case strings.ContainsAny(name, "/\x00"):
		return fmt.Errorf("name %q: %w", name, ErrInvalid)
	}
	return nil
}

func now() int64 { return time.Now().UnixNano() }

// inode returns the current record of a locked inode, loading it into the
// state's cache.
func (t *txn) inode(st *inodeState) (inodeRec, error) {
	if st.stale {
		return inodeRec{}, fmt.Errorf("inode %d was rolled back: %w", st.key.ino, ErrStale)
	}
	if st.loaded {
		return st.rec, nil
	}
	rec, err := t.s.getInode(t, t.chain, st.key.ino)
	if err != nil {
		return rec, err
	}
	st.rec, st.loaded, st.committedSize, st.own = rec, true, rec.Size, ownVersion{}
	return rec, nil
}

// commitInode writes rec as the inode's current version and commits the
// transaction. On failure the cached record is no longer trusted
// (st.loaded is cleared, so the next use reads it back from the
// database).
func (t *txn) commitInode(st *inodeState, rec inodeRec) error {
	if err := t.putInode(st, rec); err != nil {
		st.loaded = false
		return err
	}
	if err := t.commit(); err != nil {
		st.loaded = false
		return err
	}
	return nil
}

// putInode writes rec as the inode's current version and caches it. When
// the state knows where its own version sits and no pin has seen it since
// (the common case: a directory whose entries change), the version is
// overwritten in place without a seek.
func (t *txn) putInode(st *inodeState, rec inodeRec) error {
	p := inodePrefix(t.l.rec.ID, st.key.ino)
	val := rec.encode()
	_, wrote := t.w[string(p)]
	var err error
	if o := st.own; o.valid && st.loaded && o.epoch > t.pin && !wrote {
		err = t.putOwnKnown(p, o.epoch, o.inline, val)
	} else {
		err = t.put(p, val)
	}
	if err != nil {
		return err
	}
	t.owned = append(t.owned, ownedRec{st: st, epoch: t.w[string(p)].epoch, inline: versionBytes(p, val)})
	if rec.Mode&sIFMT == sIFREG {
		t.used += int64(rec.Size) - int64(st.committedSize)
	}
	st.rec, st.loaded, st.recDirty, st.committedSize = rec, true, false, rec.Size
	return nil
}

// dirInode returns the record of a locked directory.
func (t *txn) dirInode(st *inodeState) (inodeRec, error) {
	rec, err := t.inode(st)
	if err != nil {
		return rec, err
	}
	if rec.Mode&sIFMT != sIFDIR {
		return rec, fmt.Errorf("inode %d: %w", st.key.ino, ErrNotDir)
	}
	return rec, nil
}

// allocIno allocates a new inode number in the lineage's family.
func (s *Store) allocIno(l *lineage) (uint64, error) {
	fam := l
	for fam.parent != nil {
		fam = fam.parent
	}
	fam.inoMu.Lock()
	defer fam.inoMu.Unlock()
	if fam.inoNext == 0 || fam.inoNext >= fam.inoHigh {
		k := counterKey(fmt.Sprintf("ino/%d", fam.rec.ID))
		next := uint64(RootIno + 1)
		if v, c, err := s.db.Get(k); err == nil {
			next = be64(v)
			c.Close()
		}
		const step = 4096
		if next+step > MaxIno {
			return 0, fmt.Errorf("inode numbers exhausted: %w", ErrNoSpace)
		}
		if err := s.db.Set(k, keyBuf(nil).u64(next+step), nil); err != nil {
			return 0, fmt.Errorf("reserve inode numbers: %w", err)
		}
		fam.inoNext, fam.inoHigh = next, next+step
	}
	ino := fam.inoNext
	fam.inoNext++
	return ino, nil
}

// newNode creates an inode and names it in parent. mode carries the type bits.
func (s *Store) newNode(v View, parent uint64, name string, rec inodeRec) (Attr, error) {
	a, _, err := s.newNodeOpen(v, parent, name, rec, false)
	return a, err
}

// newNodeOpen is newNode; with open set it also returns the new inode's
// state, acquired, loaded and counted as open (Create's handle).
func (s *Store) newNodeOpen(v View, parent uint64, name string, rec inodeRec, open bool) (Attr, *inodeState, error) {
	if err := checkName(name); err != nil {
		return Attr{}, nil, err
	}
	t, err := s.begin(v)
	if err != nil {
		return Attr{}, nil, err
	}
	defer t.abort()
	li := s.inodes.lockInodes(v.Lineage, parent)
	defer li.unlock()
	pst := li.get(parent)
	prec, err := t.dirInode(pst)
	if err != nil {
		pst.loaded = false
		return Attr{}, nil, err
	}
	if _, err := s.getDirent(t, t.chain, parent, name); err == nil {
		return Attr{}, nil, fmt.Errorf("create %q: %w", name, ErrExists)
	} else if !isNotFound(err) {
		return Attr{}, nil, err
	}
	ino, err := s.allocIno(t.l)
	if err != nil {
		return Attr{}, nil, err
	}
	ts := now()
	rec.Atime, rec.Mtime, rec.Ctime = ts, ts, ts
	rec.LinkParent, rec.LinkName = parent, name
	if rec.ChunkShift == 0 {
		rec.ChunkShift = uint8(log2(t.l.vol.chunkSize()))
	}
	mode, umask, hasUmask := splitUmask(rec.Mode)
	rec.Mode = mode
	access, def, err := t.inheritACL(parent, prec, &rec, umask, hasUmask)
	if err != nil {
		return Attr{}, nil, err
	}
	if access != nil || def != nil {
		rec.Flags |= inodeXattrs
	}
	isDir := rec.Mode&sIFMT == sIFDIR
	if isDir {
		rec.Nlink, rec.Parent = 2, parent
		prec.Nlink++
	} else {
		rec.Nlink = 1
	}
	if rec.Mode&sIFMT == sIFREG {
		rec.Flags |= inodeInline
	}
	if prec.Mode&0o2000 != 0 { // setgid directory: new entries inherit its group
		rec.Gid = prec.Gid
		if isDir {
			rec.Mode |= 0o2000
		}
	}
	prec.Entries++
	prec.Mtime, prec.Ctime = ts, ts
	ip, ival := inodePrefix(t.l.rec.ID, ino), rec.encode()
	if err := t.putNew(ip, ival); err != nil {
		return Attr{}, nil, err
	}
	if err := t.put(direntPrefix(t.l.rec.ID, parent, name), direntRec{Ino: ino, Type: rec.Mode & sIFMT}.encode()); err != nil {
		return Attr{}, nil, err
	}
	for _, x := range []struct {
		name string
		val  []byte
	}{{ACLAccess, access}, {ACLDefault, def}} {
		if x.val == nil {
			continue
		}
		if err := t.put(xattrPrefix(t.l.rec.ID, ino, x.name), encodeXattr(x.val, false)); err != nil {
			return Attr{}, nil, err
		}
	}
	if err := t.putInode(pst, prec); err != nil {
		return Attr{}, nil, err
	}
	t.files++
	if err := t.commit(); err != nil {
		pst.loaded = false
		return Attr{}, nil, err
	}
	if !open {
		return rec.attr(ino), nil, nil
	}
	st := s.inodes.acquire(inodeKey{v.Lineage, ino})
	st.mu.Lock()
	st.rec, st.loaded, st.committedSize = rec, true, rec.Size
	st.own = ownVersion{epoch: t.cur, inline: versionBytes(ip, ival), valid: true}
	st.opens++
	st.mu.Unlock()
	return rec.attr(ino), st, nil
}

// attr converts a record to what stat reports.
func (r *inodeRec) attr(ino uint64) Attr {
	a := Attr{Ino: ino, Mode: r.Mode, Nlink: r.Nlink, Uid: r.Uid, Gid: r.Gid, Rdev: r.Rdev, Size: r.Size,
		Blksize: 1 << r.ChunkShift, Atime: r.Atime, Mtime: r.Mtime, Ctime: r.Ctime}
	switch r.Mode & sIFMT {
	case sIFREG:
		a.Blocks = r.Blocks
		if r.Flags&inodeInline != 0 {
			a.Blocks = (uint64(len(r.Data)) + 511) / 512
		}
	case sIFDIR:
		a.Size = 4096
		a.Blocks = 8
	case sIFLNK:
		a.Size = uint64(len(r.Target))
	}
	if r.ChunkShift == 0 {
		a.Blksize = 4096
	}
	return a
}

// Mknod creates a regular file, FIFO, socket or device node.
func (s *Store) Mknod(v View, parent uint64, name string, mode, rdev, uid, gid uint32) (Attr, error) {
	switch mode & sIFMT {
	case sIFREG, sIFIFO, sIFCHR, sIFBLK, sIFSOCK:
	case 0:
		mode |= sIFREG
	default:
		return Attr{}, fmt.Errorf("mknod mode %o: %w", mode, ErrInvalid)
	}
	return s.newNode(v, parent, name, inodeRec{Mode: mode, Rdev: rdev, Uid: uid, Gid: gid})
}

// Mkdir creates a directory.
func (s *Store) Mkdir(v View, parent uint64, name string, mode, uid, gid uint32) (Attr, error) {
	return s.newNode(v, parent, name, inodeRec{Mode: sIFDIR | mode&createModeBits, Uid: uid, Gid: gid})
}

// Symlink creates a symbolic link.
func (s *Store) Symlink(v View, parent uint64, name, target string, uid, gid uint32) (Attr, error) {
	if len(target) > 4095 {
		return Attr{}, fmt.Errorf("symlink target of %d bytes: %w", len(target), ErrNameTooLong)
	}
	if target == "" {
		return Attr{}, fmt.Errorf("empty symlink target: %w", ErrNotFound)
	}
	return s.newNode(v, parent, name, inodeRec{Mode: sIFLNK | 0o777, Target: target, Uid: uid, Gid: gid})
}

// GetAttr returns an inode's attributes in a view.
func (s *Store) GetAttr(v View, ino uint64) (Attr, error) {
	if a, ok := s.cachedAttr(v, ino); ok {
		return a, nil
	}
	chain, err := s.chain(v)
	if err != nil {
		return Attr{}, err
	}
	rec, err := s.getInode(s.dbr(), chain, ino)
	if err != nil {
		return Attr{}, err
	}
	return rec.attr(ino), nil
}

// cachedAttr returns the attributes of a live inode whose state holds its
// record (open, dirty, or a directory kept by the inode table).
func (s *Store) cachedAttr(v View, ino uint64) (Attr, bool) {
	if !v.Live() {
		return Attr{}, false
	}
	st := s.inodes.peek(inodeKey{v.Lineage, ino})
	if st == nil {
		return Attr{}, false
	}
	st.mu.Lock()
	rec, ok := st.rec, st.loaded
	st.mu.Unlock()
	s.inodes.release(st)
	if !ok {
		return Attr{}, false
	}
	return rec.attr(ino), true
}

// Lookup resolves a name in a directory.
func (s *Store) Lookup(v View, parent uint64, name string) (Attr, error) {
	if len(name) > MaxNameLen {
		return Attr{}, fmt.Errorf("lookup: %w", ErrNameTooLong)
	}
	chain, err := s.chain(v)
	if err != nil {
		return Attr{}, err
	}
	// One iterator serves the entry and the record: a lookup is the most
	// frequent request of a path walk, and opening an iterator costs more
	// than one of its seeks.
	r := &lazyIterReader{db: s.db}
	defer r.close()
	d, err := s.getDirent(r, chain, parent, name)
	if err != nil {
		return Attr{}, err
	}
	if a, ok := s.cachedAttr(v, d.Ino); ok {
		return a, nil
	}
	rec, err := s.getInode(r, chain, d.Ino)
	if err != nil {
		return Attr{}, err
	}
	return rec.attr(d.Ino), nil
}

// Readlink returns a symlink's target.
func (s *Store) Readlink(v View, ino uint64) (string, error) {
	chain, err := s.chain(v)
	if err != nil {
		return "", err
	}
	rec, err := s.getInode(s.dbr(), chain, ino)
	if err != nil {
		return "", err
	}
	if rec.Mode&sIFMT != sIFLNK {
		return "", fmt.Errorf("readlink inode %d: %w", ino, ErrNotSymlink)
	}
	return rec.Target, nil
}

// ReadDir lists a directory after cookie (0 = from the start).
func (s *Store) ReadDir(v View, dir uint64, cookie uint64, fn func(e DirEntry) bool) error {
	chain, err := s.chain(v)
	if err != nil {
		return err
	}
	rec, err := s.getInode(s.dbr(), chain, dir)
	if err != nil {
		return err
	}
	if rec.Mode&sIFMT != sIFDIR {
		return fmt.Errorf("readdir inode %d: %w", dir, ErrNotDir)
	}
	return listDir(s.db, chain, dir, cookie, func(h uint64, name string, d direntRec) bool {
		return fn(DirEntry{Name: name, Ino: d.Ino, Mode: d.Type, Cookie: h})
	})
}

// inheritedDirent reports whether an ancestor view resolves the name (so a
// delete must leave a tombstone).
func (t *txn) inherited(mk func(lin uint32) []byte) (bool, error) {
	if len(t.chain) < 2 {
		return false, nil
	}
	ver, err := resolve(t, t.chain[1:], mk)
	return ver.found, err
}

// removeEntry deletes the dirent parent/name.
func (t *txn) removeEntry(parent uint64, name string) error {
	mk := func(lin uint32) []byte { return direntPrefix(lin, parent, name) }
	inh, err := t.inherited(mk)
	if err != nil {
		return err
	}
	return t.del(mk(t.l.rec.ID), direntRec{Tombstone: true}.encode(), inh)
}

// setEntry names ino in parent.
func (t *txn) setEntry(parent uint64, name string, ino uint64, typ uint32) error {
	return t.put(direntPrefix(t.l.rec.ID, parent, name), direntRec{Ino: ino, Type: typ}.encode())
}

// dropLink removes one link of a locked inode; at zero links the inode is
// deleted, or kept as an orphan while it is open.
func (t *txn) dropLink(st *inodeState, rec inodeRec) error {
	ts := now()
	rec.Ctime = ts
	if rec.Mode&sIFMT == sIFDIR {
		rec.Nlink = 0
	} else {
		rec.Nlink--
	}
	if rec.Nlink > 0 {
		return t.putInode(st, rec)
	}
	if st.opens > 0 {
		if err := t.b.Set(orphanKey(t.l.rec.ID, st.key.ino), nil, nil); err != nil {
			return err
		}
		return t.putInode(st, rec)
	}
	return t.deleteInode(st, rec)
}

// deleteInode removes an inode, its xattrs and its chunks from the live view.
func (t *txn) deleteInode(st *inodeState, rec inodeRec) error {
	ino := st.key.ino
	lin := t.l.rec.ID
	// An inline file has no chunks in its generation; an inode that never
	// had an xattr has none to remove: skip both scans.
	if rec.Flags&inodeInline == 0 {
		if _, err := t.dropChunks(ino, rec.Cgen, 0); err != nil {
			return err
		}
	}
	var names []string
	if rec.Flags&inodeXattrs != 0 {
		var err error
		if names, err = t.s.xattrNames(t.s.db, t.chain, ino); err != nil {
			return err
		}
	}
	for _, n := range names {
		if err := t.removeXattrKey(ino, n); err != nil {
			return err
		}
	}
	mk := func(l uint32) []byte { return inodePrefix(l, ino) }
	inh, err := t.inherited(mk)
	if err != nil {
		return err
	}
	if err := t.del(mk(lin), (&inodeRec{Flags: inodeTombstone}).encode(), inh); err != nil {
		return err
	}
	_ = t.b.Delete(orphanKey(lin, ino), nil)
	if rec.Mode&sIFMT == sIFREG {
		t.used -= int64(st.committedSize)
		t.usedMem -= int64(rec.Size)
		if st.preallocEnd > rec.Size { // a KEEP_SIZE reservation goes too
			t.usedMem -= int64(st.preallocEnd - rec.Size)
		}
		st.preallocEnd = 0
	}
	t.files--
	st.loaded = false
	st.deleted = true
	// Buffered chunks go with the file, and give back their dirty bytes
	// and pool reservations (a flush in flight commits nothing now).
	t.s.discardLocked(st)
	return nil
}

// Unlink removes a non-directory name.
func (s *Store) Unlink(v View, parent uint64, name string) error {
	return s.remove(v, parent, name, false)
}

// Rmdir removes an empty directory.
func (s *Store) Rmdir(v View, parent uint64, name string) error {
	return s.remove(v, parent, name, true)
}

func (s *Store) remove(v View, parent uint64, name string, dir bool) error {
	if name == "." {
		return fmt.Errorf("rmdir %q: %w", name, ErrInvalid)
	}
	if name == ".." {
		return fmt.Errorf("rmdir %q: %w", name, ErrNotEmpty)
	}
	if len(name) > MaxNameLen {
		return fmt.Errorf("remove: %w", ErrNameTooLong)
	}
	if done, err := s.removeParentFirst(v, parent, name, dir); done {
		return err
	}
	for {
		t, err := s.begin(v)
		if err != nil {
			return err
		}
		d, err := s.getDirent(t, t.chain, parent, name)
		if err != nil {
			t.abort()
			return err
		}
		err = func() error {
			li := s.inodes.lockInodes(v.Lineage, parent, d.Ino)
			defer li.unlock()
			t.locked()
			return s.removeLocked(t, li, parent, name, d.Ino, dir)
		}()
		t.abort()
		if !errors.Is(err, errRetry) {
			return err
		}
	}
}

// removeParentFirst is remove's usual path: it locks the parent, reads the
// entry under that lock (every change of a directory's entries holds it,
// so the entry cannot change), then locks the child, which inode order
// allows when the child's number is above the parent's (a name is almost
// always younger than its directory). The entry is read once, not read to
// learn what to lock and read again under the locks. done is false when
// the child's number is below: the caller takes the general path.
func (s *Store) removeParentFirst(v View, parent uint64, name string, dir bool) (done bool, err error) {
	t, err := s.begin(v)
	if err != nil {
		return true, err
	}
	defer t.abort()
	li := s.inodes.lockInodes(v.Lineage, parent)
	defer li.unlock()
	d, err := s.getDirent(t, t.chain, parent, name)
	if err != nil {
		return true, err
	}
	if d.Ino <= parent {
		return false, nil
	}
	li.lockAbove(v.Lineage, d.Ino)
	t.lockedMore()
	err = s.removeLocked(t, li, parent, name, d.Ino, dir)
	if errors.Is(err, errRetry) { // cannot happen under the parent's lock; the general path copes
		return false, nil
	}
	return true, err
}

// errRetry means the namespace changed between reading and locking: start over.
var errRetry = errors.New("store: retry")

func (s *Store) removeLocked(t *txn, li *lockedInodes, parent uint64, name string, ino uint64, dir bool) error {
	d, err := s.getDirent(t, t.chain, parent, name)
	if err != nil {
		return err
	}
	if d.Ino != ino {
		return errRetry
	}
	pst, cst := li.get(parent), li.get(ino)
	prec, err := t.dirInode(pst)
	if err != nil {
		return err
	}
	crec, err := t.inode(cst)
	if err != nil {
		return err
	}
	isDir := crec.Mode&sIFMT == sIFDIR
	switch {
	case dir && !isDir:
		return fmt.Errorf("rmdir %q: %w", name, ErrNotDir)
	case !dir && isDir:
		return fmt.Errorf("unlink %q: %w", name, ErrIsDir)
	case isDir && crec.Entries > 0:
		return fmt.Errorf("rmdir %q: %w", name, ErrNotEmpty)
	}
	if err := t.removeEntry(parent, name); err != nil {
		return err
	}
	ts := now()
	prec.Entries--
	prec.Mtime, prec.Ctime = ts, ts
	if isDir {
		prec.Nlink--
	}
	if err := t.putInode(pst, prec); err != nil {
		return err
	}
	if err := t.dropLink(cst, crec); err != nil {
		return err
	}
	if err := t.commit(); err != nil {
		pst.loaded, cst.loaded = false, false
		return err
	}
	return nil
}

// Link gives an existing non-directory inode another name.
func (s *Store) Link(v View, ino, newParent uint64, newName string) (Attr, error) {
	if err := checkName(newName); err != nil {
		return Attr{}, err
	}
	t, err := s.begin(v)
	if err != nil {
		return Attr{}, err
	}
	defer t.abort()
	li := s.inodes.lockInodes(v.Lineage, ino, newParent)
	defer li.unlock()
	pst, cst := li.get(newParent), li.get(ino)
	saved := li.saveRecs()
	prec, err := t.dirInode(pst)
	if err != nil {
		return Attr{}, err
	}
	crec, err := t.inode(cst)
	if err != nil {
		return Attr{}, err
	}
	if crec.Mode&sIFMT == sIFDIR {
		return Attr{}, fmt.Errorf("link to a directory: %w", ErrPerm)
	}
	if crec.Nlink == 0 {
		return Attr{}, fmt.Errorf("link to an unlinked file: %w", ErrNotFound)
	}
	if crec.Nlink >= 65000 {
		return Attr{}, fmt.Errorf("link: %w", ErrTooManyLinks)
	}
	if _, err := s.getDirent(t, t.chain, newParent, newName); err == nil {
		return Attr{}, fmt.Errorf("link %q: %w", newName, ErrExists)
	} else if !isNotFound(err) {
		return Attr{}, err
	}
	ts := now()
	crec.Nlink++
	crec.Ctime = ts
	crec.LinkParent, crec.LinkName = newParent, newName
	prec.Entries++
	prec.Mtime, prec.Ctime = ts, ts
	if err := t.setEntry(newParent, newName, ino, crec.Mode&sIFMT); err != nil {
		return Attr{}, err
	}
	if err := t.putInode(pst, prec); err != nil {
		li.restoreRecs(saved)
		return Attr{}, err
	}
	if err := t.putInode(cst, crec); err != nil {
		li.restoreRecs(saved)
		return Attr{}, err
	}
	if err := t.commit(); err != nil {
		li.restoreRecs(saved)
		return Attr{}, err
	}
	return crec.attr(ino), nil
}
