package store

import (
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/cockroachdb/pebble/v2"
)

// SetAttr changes mode, owner, size or times of an inode.
func (s *Store) SetAttr(v View, ino uint64, in SetAttrIn) (Attr, error) {
	t, err := s.begin(v)
	if err != nil {
		return Attr{}, err
	}
	defer t.abort()
	li := s.inodes.lockInodes(v.Lineage, ino)
	defer li.unlock()
	st := li.get(ino)
	rec, err := t.inode(st)
	if err != nil {
		return Attr{}, err
	}
	ts := now()
	if in.Valid&SetSize != 0 {
		if rec.Mode&sIFMT == sIFDIR {
			return Attr{}, fmt.Errorf("truncate a directory: %w", ErrIsDir)
		}
		if rec.Mode&sIFMT != sIFREG {
			return Attr{}, fmt.Errorf("truncate inode %d: %w", ino, ErrInvalid)
		}
		if rec, err = t.truncate(st, rec, in.Size); err != nil {
			distrustUnlessRefused(st, err)
			return Attr{}, err
		}
		rec.Mtime = ts
	}
	if in.Valid&SetMode != 0 {
		rec.Mode = rec.Mode&sIFMT | in.Mode&0o7777
		if err := t.chmodACL(ino, rec); err != nil {
			return Attr{}, err
		}
	}
	if in.Valid&SetUid != 0 {
		rec.Uid = in.Uid
	}
	if in.Valid&SetGid != 0 {
		rec.Gid = in.Gid
	}
	if in.Valid&(SetUid|SetGid) != 0 && rec.Mode&sIFMT != sIFDIR || in.Valid&SetKillSuidgid != 0 && rec.Mode&sIFMT == sIFREG {
		rec.Mode = killSuidgid(rec.Mode) // chown clears them, as on ext4
	}
	switch {
	case in.Valid&SetAtimeNow != 0:
		rec.Atime = ts
	case in.Valid&SetAtime != 0:
		rec.Atime = in.Atime
	}
	switch {
	case in.Valid&SetMtimeNow != 0:
		rec.Mtime = ts
	case in.Valid&SetMtime != 0:
		rec.Mtime = in.Mtime
	}
	rec.Ctime = ts
	if in.Valid&SetCtime != 0 {
		rec.Ctime = in.Ctime
	}
	// Times, and permission bits without a stored ACL to keep in step,
	// of an open file ride with its next flush.
	if in.Valid&^deferrableAttrs == 0 && (in.Valid&SetMode == 0 || rec.Flags&inodeXattrs == 0) && deferRecord(st, rec) {
		return rec.attr(ino), nil
	}
	if err := t.commitInode(st, rec); err != nil {
		return Attr{}, err
	}
	return rec.attr(ino), nil
}

// deferrableAttrs are the SetAttr changes deferRecord may take.
const deferrableAttrs = SetMode | SetAtime | SetMtime | SetAtimeNow | SetMtimeNow | SetCtime

// deferRecord makes rec the record of st, a locked inode, without a
// commit of its own when the change can wait for the file's next flush:
// st is a regular file open through a handle (its RELEASE queues the
// flush of a dirty record, store/file.go), and rec differs from the cached
// record only in times and permission bits. cp -a, tar -x and rsync set
// both on every file they write, before closing it: two commits per
// file, now none (the flush commits the record with the file's data,
// which it did anyway). Nothing is promised by fewer commits: a change
// is durable at fsync, which flushes the record first, and a snapshot
// flushes the lineage's dirty records before it pins (flushLineage), as
// for the times of buffered writes and KillSuidgid's change of mode.
// Readers see st.rec (GetAttr, Lookup's cachedAttr). It reports whether
// it took the change.
func deferRecord(st *inodeState, rec inodeRec) bool {
	cur := &st.rec
	if !st.loaded || st.opens == 0 || rec.Mode&sIFMT != sIFREG || cur.Mode&sIFMT != sIFREG ||
		rec.Size != cur.Size || rec.Uid != cur.Uid || rec.Gid != cur.Gid || rec.Flags != cur.Flags || rec.Nlink != cur.Nlink {
		return false
	}
	st.rec.Mode, st.rec.Atime, st.rec.Mtime, st.rec.Ctime = rec.Mode, rec.Atime, rec.Mtime, rec.Ctime
	st.recDirty = true
	if st.since.IsZero() {
		st.since = time.Now()
	}
	return true
}

// xattrNames lists the xattr names of an inode visible through chain.
func (s *Store) xattrNames(r reader, chain []viewPoint, ino uint64) ([]string, error) {
	seen := map[string]bool{}
	var names []string
	for _, pt := range chain {
		it, err := r.NewIter(&pebble.IterOptions{LowerBound: xattrInoStart(pt.lin, ino), UpperBound: xattrInoEnd(pt.lin, ino)})
		if err != nil {
			return nil, err
		}
		for ok := it.First(); ok; {
			k := it.Key()
			if keyEpoch(k) > pt.epoch {
				ok = it.Next()
				continue
			}
			name := parseXattrKey(k)
			if !seen[name] {
				seen[name] = true
				if _, tomb, err := decodeXattr(it.Value()); err == nil && !tomb {
					names = append(names, name)
				}
			}
			ok = nextPrefix(it)
		}
		err = it.Close()
		if err != nil {
			return nil, err
		}
	}
	sort.Strings(names)
	return names, nil
}

// ListXattr lists an inode's extended attribute names.
func (s *Store) ListXattr(v View, ino uint64) ([]string, error) {
	chain, err := s.chain(v)
	if err != nil {
		return nil, err
	}
	if _, err := s.getInode(s.dbr(), chain, ino); err != nil {
		return nil, err
	}
	return s.xattrNames(s.db, chain, ino)
}

// GetXattr returns the value of an extended attribute.
func (s *Store) GetXattr(v View, ino uint64, name string) ([]byte, error) {
	// The kernel asks for security.capability before every write: answer
	// from the cached record of an inode that never had an xattr.
	if v.Live() {
		if st := s.inodes.peek(inodeKey{v.Lineage, ino}); st != nil {
			st.mu.Lock()
			none := st.loaded && st.rec.Flags&inodeXattrs == 0
			st.mu.Unlock()
			s.inodes.release(st)
			if none {
				return nil, fmt.Errorf("xattr %q: %w", name, ErrNoData)
			}
		}
	}
	chain, err := s.chain(v)
	if err != nil {
		return nil, err
	}
	ver, err := resolve(s.dbr(), chain, func(lin uint32) []byte { return xattrPrefix(lin, ino, name) })
	if err != nil {
		return nil, err
	}
	if !ver.found {
		return nil, fmt.Errorf("xattr %q: %w", name, ErrNoData)
	}
	val, tomb, err := decodeXattr(ver.value)
	if err != nil {
		return nil, err
	}
	if tomb {
		return nil, fmt.Errorf("xattr %q: %w", name, ErrNoData)
	}
	return val, nil
}

// checkXattrName validates an attribute name as the kernel would.
func checkXattrName(name string) error {
	if name == "" || len(name) > 255 {
		return fmt.Errorf("xattr name of %d bytes: %w", len(name), ErrInvalid)
	}
	for _, c := range []byte(name) {
		if c == 0 {
			return fmt.Errorf("xattr name: %w", ErrInvalid)
		}
	}
	return nil
}

// SetXattr sets an extended attribute. XattrCreate fails if it exists,
// XattrReplace if it does not.
func (s *Store) SetXattr(v View, ino uint64, name string, value []byte, flags int) error {
	if err := checkXattrName(name); err != nil {
		return err
	}
	if len(value) > 64<<10 {
		return fmt.Errorf("xattr value of %d bytes: %w", len(value), ErrNoXattrSpace)
	}
	if isACLName(name) {
		return s.SetACL(v, ino, name, value, flags, false)
	}
	return s.changeXattr(v, ino, name, func(t *txn, _ *inodeRec, exists bool) error {
		switch {
		case flags&XattrCreate != 0 && exists:
			return fmt.Errorf("xattr %q: %w", name, ErrExists)
		case flags&XattrReplace != 0 && !exists:
			return fmt.Errorf("xattr %q: %w", name, ErrNoData)
		}
		return t.put(xattrPrefix(t.l.rec.ID, ino, name), encodeXattr(value, false))
	})
}

// RemoveXattr removes an extended attribute.
func (s *Store) RemoveXattr(v View, ino uint64, name string) error {
	return s.changeXattr(v, ino, name, func(t *txn, _ *inodeRec, exists bool) error {
		if !exists {
			return fmt.Errorf("xattr %q: %w", name, ErrNoData)
		}
		return t.removeXattrKey(ino, name)
	})
}

func (t *txn) removeXattrKey(ino uint64, name string) error {
	mk := func(lin uint32) []byte { return xattrPrefix(lin, ino, name) }
	inh, err := t.inherited(mk)
	if err != nil {
		return err
	}
	return t.del(mk(t.l.rec.ID), encodeXattr(nil, true), inh)
}

// changeXattr runs fn in a txn with the inode locked and its ctime updated;
// fn may change the inode's record too (an ACL sets the mode).
func (s *Store) changeXattr(v View, ino uint64, name string, fn func(t *txn, rec *inodeRec, exists bool) error) error {
	t, err := s.begin(v)
	if err != nil {
		return err
	}
	defer t.abort()
	li := s.inodes.lockInodes(v.Lineage, ino)
	defer li.unlock()
	st := li.get(ino)
	rec, err := t.inode(st)
	if err != nil {
		return err
	}
	exists := false
	if rec.Flags&inodeXattrs != 0 {
		// An inode that never had an xattr has none to look up (cp -a
		// sets a minimal ACL on every file it copies).
		ver, err := resolve(t, t.chain, func(lin uint32) []byte { return xattrPrefix(lin, ino, name) })
		if err != nil {
			return err
		}
		if ver.found {
			_, tomb, err := decodeXattr(ver.value)
			if err != nil {
				return err
			}
			exists = !tomb
		}
	}
	if err := fn(t, &rec, exists); err != nil {
		return err
	}
	_, wrote := t.w[string(xattrPrefix(t.l.rec.ID, ino, name))]
	if wrote {
		// Set only when a key was written: an ACL equivalent to a mode
		// stores none, and GetXattr answers an inode without the flag
		// from memory (the kernel's security.capability before a write).
		rec.Flags |= inodeXattrs
	}
	rec.Ctime = now()
	if !wrote && !exists && deferRecord(st, rec) {
		return nil // a mode-equivalent ACL: a chmod (SetAttr)
	}
	return t.commitInode(st, rec)
}

// StatFS reports pool space (bounded by the volume's quota) and file counts.
func (s *Store) StatFS(v View) (StatFS, error) {
	l, err := s.lineageOf(v)
	if err != nil {
		return StatFS{}, err
	}
	pfree, ptotal, reserved, err := s.pool.Space()
	if err != nil {
		return StatFS{}, err
	}
	const bs = 4096
	total, free := ptotal, max(pfree-reserved, 0)
	used := l.used.Load()
	if q := l.vol.quota(); q > 0 {
		total = q
		free = max(q-used, 0)
		free = min(free, pfree)
	}
	files := uint64(l.files.Load())
	return StatFS{Bsize: bs, Blocks: uint64(total) / bs, Bfree: uint64(free) / bs, Bavail: uint64(free) / bs,
		Files: files + uint64(free)/bs, Ffree: uint64(free) / bs, NameLen: MaxNameLen}, nil
}

// killSuidgid returns mode without setuid, and without setgid when group
// execute is set (setgid without it marks mandatory locking, which ext4
// keeps).
func killSuidgid(mode uint32) uint32 {
	mode &^= 0o4000
	if mode&0o010 != 0 {
		mode &^= 0o2000
	}
	return mode
}

// capabilityXattr holds a file's capabilities (setcap(8)).
const capabilityXattr = "security.capability"

// KillCapability removes the file capabilities (security.capability) of
// the handle's file, as every write(2) on ext4 does (file_remove_privs).
// The kernel does that itself for a write through its page cache, asking
// for the attribute once per inode; a write it sends straight to the
// daemon (an open replied with FOPEN_DIRECT_IO, fs/file.go) leaves it to
// the file system. A file that never had an extended attribute costs a
// look at its cached record.
func (h *Handle) KillCapability() error {
	if st := h.st; st != nil {
		st.mu.Lock()
		none := st.loaded && st.rec.Flags&inodeXattrs == 0
		st.mu.Unlock()
		if none {
			return nil
		}
	}
	err := h.s.RemoveXattr(h.v, h.ino, capabilityXattr)
	if errors.Is(err, ErrNoData) {
		return nil
	}
	return err
}

// KillSuidgid clears setuid, and setgid with group execute, of a regular
// file of a live view, as ext4 does when a caller without CAP_FSETID
// writes to it or opens it with O_TRUNC (the kernel asks for it with
// FUSE_HANDLE_KILLPRIV_V2 instead of a setattr of its own). A file without
// those bits costs a look at its cached record; a change is committed with
// the file's next flush, like the write's times.
func (s *Store) KillSuidgid(v View, ino uint64) error {
	if !v.Live() || v.ReadOnly {
		return fmt.Errorf("kill setuid: %w", ErrReadOnly)
	}
	chain, err := s.chain(v)
	if err != nil {
		return err
	}
	st := s.inodes.acquire(inodeKey{v.Lineage, ino})
	defer s.inodes.release(st)
	st.mu.Lock()
	defer st.mu.Unlock()
	rec, err := s.loadLocked(st, chain)
	if err != nil {
		return err
	}
	if rec.Mode&sIFMT != sIFREG || killSuidgid(rec.Mode) == rec.Mode {
		return nil
	}
	st.rec.Mode = killSuidgid(rec.Mode)
	st.rec.Ctime = now()
	st.recDirty = true
	if st.since.IsZero() {
		st.since = time.Now()
	}
	return nil
}
