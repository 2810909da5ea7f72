package store

import (
	"bytes"
	"fmt"
	"sort"
	"strings"

	"github.com/cockroachdb/pebble/v2"
)

// # What changed between two views
//
// Two views of one volume family differ only in keys that some lineage of
// their resolution chains wrote between the two points the chains read it
// at. For each lineage of either chain, with epoch a in one chain and b in
// the other (0 when it is absent from a chain), the keys that may differ
// are those with a version born in (min(a, b), max(a, b)]: any other key
// resolves, in both views, to the same version of the first lineage that
// has one. So a diff of snapshot (L, a) with (L, b) reads L's versions born
// in (a, b]; a diff of a branch's live view with its origin snapshot reads
// every version the branch wrote, plus the origin lineage's versions
// between the fork point and the snapshot.
//
// changeRanges computes those ranges; eachChangedKey scans one lineage's
// keys of one tag with the epoch block-property filter (epochprop.go), so
// sstable blocks holding only versions born at or before the range's start
// are never read: the cost follows what was written, not the volume's
// size. Every candidate key is then resolved in both views and compared,
// so a key rewritten with the same value (a chunk written with the same
// bytes) is no change.
//
// A version born in the range is never lost to the in-place rule: a
// version is overwritten in place only while it is newer than the
// lineage's newest pin, so the versions of epochs a snapshot sees stay, and
// a key deleted outright (no tombstone) had no version that an older pin
// sees (txn.del), so neither view has it.

// EntryChange is a directory entry (Parent, Name) that names different
// inodes in the two views of a Changes call. An Ino of 0 means the name
// does not exist on that side; the Type fields are file type bits.
type EntryChange struct {
	Parent   uint64
	Name     string
	FromIno  uint64
	FromType uint32
	ToIno    uint64
	ToType   uint32
}

// InodeChange is an inode whose stored state differs between the two
// views of a Changes call. From or To is nil where the inode does not exist.
type InodeChange struct {
	Ino      uint64
	From, To *Attr
	// Meta: the mode, owner, group, size, mtime, device number or
	// symlink target differ. Times other than mtime, the link count and
	// the block count alone do not set it.
	Meta bool
	// Data: the content differs. AllChunks says the file was truncated
	// to zero in between (a new chunk generation) or changed inline
	// storage, so every chunk of To is new; otherwise Chunks lists the
	// indexes of To's chunks whose content differs from From's.
	Data      bool
	AllChunks bool
	Chunks    []uint64
	// Xattrs names the extended attributes set, changed or removed.
	Xattrs []string
	// Target is the symlink target in To (symlinks only).
	Target string
}

// Changes calls onEntry for every directory entry and then onInode for
// every inode that differs between views from and to, which must belong to
// the same volume (a volume, its branches and their snapshots). Entries
// come in (parent, name hash) order, inodes in number order. Its cost
// follows the versions written between the two views (see above), not the
// volume's size. A live view is flushed first, so writes that returned
// before the call are seen; the comparison reads one consistent state of
// the database. A nil callback skips that part.
//
// This is the change iterator of diff and of incremental send: an inode
// change lists the chunks and xattrs to carry, an entry change the names
// to add, replace or remove.
func (s *Store) Changes(from, to View, onEntry func(EntryChange) error, onInode func(InodeChange) error) error {
	cs, err := s.newChangeScan(from, to)
	if err != nil {
		return err
	}
	defer cs.close()
	return cs.run(onEntry, onInode)
}

// changeScan is the state of one comparison of two views.
type changeScan struct {
	s      *Store
	snap   *pebble.Snapshot
	r      *iterReader
	cf, ct []viewPoint
	ranges []epochRange
}

// epochRange is the versions of one lineage that may make two views differ.
type epochRange struct {
	lin    uint32
	lo, hi uint64 // (lo, hi]
}

// iterReader is a versionReader over one iterator of a database snapshot.
type iterReader struct{ it *pebble.Iterator }

func (r *iterReader) seek(p []byte, e uint64) (version, error) { return seekVersion(r.it, p, e) }

func (s *Store) newChangeScan(from, to View) (*changeScan, error) {
	for _, v := range []View{from, to} {
		if v.Live() {
			if err := s.flushLineage(v.Lineage); err != nil {
				return nil, fmt.Errorf("diff: flush: %w", err)
			}
		}
	}
	cf, err := s.chain(from)
	if err != nil {
		return nil, err
	}
	ct, err := s.chain(to)
	if err != nil {
		return nil, err
	}
	ranges, err := changeRanges(cf, ct)
	if err != nil {
		return nil, err
	}
	snap := s.db.NewSnapshot()
	it, err := snap.NewIter(nil)
	if err != nil {
		snap.Close()
		return nil, err
	}
	return &changeScan{s: s, snap: snap, r: &iterReader{it}, cf: cf, ct: ct, ranges: ranges}, nil
}

func (cs *changeScan) close() {
	cs.r.it.Close()
	cs.snap.Close()
}

// changeRanges returns, for each lineage of chains cf and ct, the epochs
// whose versions may make the two views differ. The chains must end at the
// same lineage (the volume's own): else the views are of different volumes.
func changeRanges(cf, ct []viewPoint) ([]epochRange, error) {
	if cf[len(cf)-1].lin != ct[len(ct)-1].lin {
		return nil, fmt.Errorf("diff: views of different volumes (lineages %d and %d): %w",
			cf[len(cf)-1].lin, ct[len(ct)-1].lin, ErrInvalid)
	}
	at := func(c []viewPoint, lin uint32) uint64 {
		for _, p := range c {
			if p.lin == lin {
				return p.epoch
			}
		}
		return 0
	}
	seen := map[uint32]bool{}
	var out []epochRange
	for _, p := range append(append([]viewPoint(nil), cf...), ct...) {
		if seen[p.lin] {
			continue
		}
		seen[p.lin] = true
		a, b := at(cf, p.lin), at(ct, p.lin)
		if a != b {
			out = append(out, epochRange{p.lin, min(a, b), max(a, b)})
		}
	}
	return out, nil
}

// eachChangedKey calls fn with the prefix of every key of tag in lineage
// r.lin that has a version born in (r.lo, r.hi], in key order.
func (cs *changeScan) eachChangedKey(tag byte, r epochRange, fn func(p []byte) error) error {
	it, err := cs.snap.NewIter(&pebble.IterOptions{
		LowerBound:      keyBuf(nil).u8(tag).u32(r.lin).end(),
		UpperBound:      keyBuf(nil).u8(tag).u32(r.lin + 1).end(),
		PointKeyFilters: []pebble.BlockPropertyFilter{bornAfter(r.lo)}})
	if err != nil {
		return err
	}
	defer it.Close()
	ok := it.First()
	for ok {
		k := it.Key()
		p := append([]byte(nil), k[:splitKey(k)]...)
		hit := false
		for ok && hasPrefix(it.Key(), p) { // newest first
			e := keyEpoch(it.Key())
			if e <= r.lo {
				break
			}
			if e <= r.hi {
				hit = true
				break
			}
			ok = it.Next()
		}
		if hit {
			if err := fn(p); err != nil {
				return err
			}
		}
		if ok && hasPrefix(it.Key(), p) {
			ok = nextPrefix(it)
		}
	}
	return it.Error()
}

// entryKey names a directory entry independently of the lineage.
type entryKey struct {
	parent, hash uint64
	name         string
}

// chunkKey names one chunk of an inode independently of the lineage.
type chunkKey struct {
	cgen uint32
	idx  uint64
}

// candidates are the keys that may differ, gathered from every range.
type candidates struct {
	entries map[entryKey]bool
	inodes  map[uint64]bool
	chunks  map[uint64]map[chunkKey]bool
	xattrs  map[uint64]map[string]bool
}

func (cs *changeScan) gather() (*candidates, error) {
	c := &candidates{entries: map[entryKey]bool{}, inodes: map[uint64]bool{},
		chunks: map[uint64]map[chunkKey]bool{}, xattrs: map[uint64]map[string]bool{}}
	for _, r := range cs.ranges {
		err := cs.eachChangedKey(tagInode, r, func(p []byte) error {
			c.inodes[be64(p[5:])] = true
			return nil
		})
		if err == nil {
			err = cs.eachChangedKey(tagDirent, r, func(p []byte) error {
				h, name := parseDirentKey(p)
				c.entries[entryKey{be64(p[5:]), h, name}] = true
				return nil
			})
		}
		if err == nil {
			err = cs.eachChangedKey(tagXattr, r, func(p []byte) error {
				ino := be64(p[5:])
				c.inodes[ino] = true
				markIn(c.xattrs, ino, parseXattrKey(p))
				return nil
			})
		}
		if err == nil {
			err = cs.eachChangedKey(tagChunk, r, func(p []byte) error {
				ino := be64(p[5:])
				c.inodes[ino] = true
				markIn(c.chunks, ino, chunkKey{be32(p[13:]), be64(p[17:])})
				return nil
			})
		}
		if err != nil {
			return nil, fmt.Errorf("diff: scan lineage %d (%d, %d]: %w", r.lin, r.lo, r.hi, err)
		}
	}
	return c, nil
}

func (cs *changeScan) run(onEntry func(EntryChange) error, onInode func(InodeChange) error) error {
	c, err := cs.gather()
	if err != nil {
		return err
	}
	if onEntry != nil {
		keys := make([]entryKey, 0, len(c.entries))
		for k := range c.entries {
			keys = append(keys, k)
		}
		sort.Slice(keys, func(i, j int) bool {
			a, b := keys[i], keys[j]
			if a.parent != b.parent {
				return a.parent < b.parent
			}
			if a.hash != b.hash {
				return a.hash < b.hash
			}
			return a.name < b.name
		})
		for _, k := range keys {
			ec, changed, err := cs.entry(k)
			if err != nil {
				return err
			}
			if changed {
				if err := onEntry(ec); err != nil {
					return err
				}
			}
		}
	}
	if onInode == nil {
		return nil
	}
	inos := make([]uint64, 0, len(c.inodes))
	for ino := range c.inodes {
		inos = append(inos, ino)
	}
	sort.Slice(inos, func(i, j int) bool { return inos[i] < inos[j] })
	for _, ino := range inos {
		ic, changed, err := cs.inode(ino, c.chunks[ino], c.xattrs[ino])
		if err != nil {
			return err
		}
		if changed {
			if err := onInode(ic); err != nil {
				return err
			}
		}
	}
	return nil
}

// entry resolves a candidate entry in both views.
func (cs *changeScan) entry(k entryKey) (EntryChange, bool, error) {
	ec := EntryChange{Parent: k.parent, Name: k.name}
	f, err := cs.s.getDirent(cs.r, cs.cf, k.parent, k.name)
	if err != nil && !isNotFound(err) {
		return ec, false, err
	}
	if err == nil {
		ec.FromIno, ec.FromType = f.Ino, f.Type
	}
	t, err := cs.s.getDirent(cs.r, cs.ct, k.parent, k.name)
	if err != nil && !isNotFound(err) {
		return ec, false, err
	}
	if err == nil {
		ec.ToIno, ec.ToType = t.Ino, t.Type
	}
	return ec, ec.FromIno != ec.ToIno, nil
}

// inode resolves a candidate inode in both views and compares what it stores.
func (cs *changeScan) inode(ino uint64, chunks map[chunkKey]bool, xattrs map[string]bool) (InodeChange, bool, error) {
	ic := InodeChange{Ino: ino}
	fr, err := cs.s.getInode(cs.r, cs.cf, ino)
	fok := err == nil
	if err != nil && !isNotFound(err) {
		return ic, false, err
	}
	tr, err := cs.s.getInode(cs.r, cs.ct, ino)
	tok := err == nil
	if err != nil && !isNotFound(err) {
		return ic, false, err
	}
	if fok {
		a := fr.attr(ino)
		ic.From = &a
	}
	if tok {
		a := tr.attr(ino)
		ic.To = &a
		ic.Target = tr.Target
	}
	switch {
	case !fok && !tok:
		return ic, false, nil
	case fok != tok:
		return ic, true, nil
	}
	ic.Meta = fr.Mode != tr.Mode || fr.Uid != tr.Uid || fr.Gid != tr.Gid || fr.Size != tr.Size ||
		fr.Mtime != tr.Mtime || fr.Rdev != tr.Rdev || fr.Target != tr.Target
	if tr.Mode&sIFMT == sIFREG {
		if err := cs.compareData(ino, fr, tr, chunks, &ic); err != nil {
			return ic, false, err
		}
	}
	names := make([]string, 0, len(xattrs))
	for n := range xattrs {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fv, fhas, err := cs.xattr(cs.cf, ino, n)
		if err != nil {
			return ic, false, err
		}
		tv, thas, err := cs.xattr(cs.ct, ino, n)
		if err != nil {
			return ic, false, err
		}
		if fhas != thas || !bytes.Equal(fv, tv) {
			ic.Xattrs = append(ic.Xattrs, n)
		}
	}
	changed := ic.Meta || ic.Data || len(ic.Xattrs) > 0 || fr.Nlink != tr.Nlink || fr.Ctime != tr.Ctime
	return ic, changed, nil
}

// compareData compares the content of a regular file in both views.
func (cs *changeScan) compareData(ino uint64, fr, tr inodeRec, chunks map[chunkKey]bool, ic *InodeChange) error {
	finline, tinline := fr.Flags&inodeInline != 0, tr.Flags&inodeInline != 0
	switch {
	case finline || tinline:
		if finline != tinline || !bytes.Equal(fr.Data, tr.Data) || fr.Size != tr.Size {
			ic.Data, ic.AllChunks = true, true
		}
		return nil
	case fr.Cgen != tr.Cgen:
		ic.Data, ic.AllChunks = true, true
		return nil
	}
	idxs := make([]uint64, 0, len(chunks))
	for k := range chunks {
		if k.cgen == tr.Cgen {
			idxs = append(idxs, k.idx)
		}
	}
	sort.Slice(idxs, func(i, j int) bool { return idxs[i] < idxs[j] })
	for _, idx := range idxs {
		mk := func(lin uint32) []byte { return chunkPrefix(lin, ino, tr.Cgen, idx) }
		f, err := resolve(cs.r, cs.cf, mk)
		if err != nil {
			return fmt.Errorf("diff: chunk %d of inode %d: %w", idx, ino, err)
		}
		t, err := resolve(cs.r, cs.ct, mk)
		if err != nil {
			return fmt.Errorf("diff: chunk %d of inode %d: %w", idx, ino, err)
		}
		if !sameChunk(f, t) {
			ic.Chunks = append(ic.Chunks, idx)
		}
	}
	ic.Data = len(ic.Chunks) > 0 || fr.Size != tr.Size
	return nil
}

// sameChunk reports whether two resolved chunk versions hold the same
// bytes (where the copies are, the hint, does not matter).
func sameChunk(a, b version) bool {
	if !a.found || !b.found {
		return a.found == b.found
	}
	ca, err1 := decodeChunk(a.value)
	cb, err2 := decodeChunk(b.value)
	if err1 != nil || err2 != nil {
		return false
	}
	return ca.Kind == cb.Kind && ca.Hash == cb.Hash && ca.Length == cb.Length
}

// xattr resolves one xattr of ino through chain.
func (cs *changeScan) xattr(chain []viewPoint, ino uint64, name string) ([]byte, bool, error) {
	v, err := resolve(cs.r, chain, func(lin uint32) []byte { return xattrPrefix(lin, ino, name) })
	if err != nil || !v.found {
		return nil, false, err
	}
	val, tomb, err := decodeXattr(v.value)
	if err != nil || tomb {
		return nil, false, err
	}
	return val, true, nil
}

// # Paths of inodes
//
// An inode record carries its newest name (LinkParent, LinkName: set by
// create, link and rename), checked against the directory before use. A
// name found stale (that link was removed) is looked for among the names a
// diff saw added; a directory without a hint is found in its parent's
// listing; the last resort walks the view's tree from the root, which
// costs the volume's size and is only needed for files of volumes written
// before hints existed, or a hard-linked file whose newest name was
// removed.

// pathFinder turns inode numbers into paths in one view, remembering them.
type pathFinder struct {
	s      *Store
	r      versionReader
	lr     reader
	chain  []viewPoint
	paths  map[uint64]string
	hints  map[uint64][]entryKey // names known from entry changes
	walked bool
}

func newPathFinder(s *Store, r versionReader, lr reader, chain []viewPoint) *pathFinder {
	return &pathFinder{s: s, r: r, lr: lr, chain: chain, paths: map[uint64]string{RootIno: "/"}, hints: map[uint64][]entryKey{}}
}

// path returns a path of inode ino in the view, "/" for the root.
func (pf *pathFinder) path(ino uint64) (string, error) {
	return pf.pathDepth(ino, 0)
}

func (pf *pathFinder) pathDepth(ino uint64, depth int) (string, error) {
	if p, ok := pf.paths[ino]; ok {
		return p, nil
	}
	if depth > 4096 {
		return "", fmt.Errorf("path of inode %d: too deep: %w", ino, errCorrupt)
	}
	rec, err := pf.s.getInode(pf.r, pf.chain, ino)
	if err != nil {
		return "", fmt.Errorf("path of inode %d: %w", ino, err)
	}
	cands := pf.hints[ino]
	if rec.LinkParent != 0 {
		cands = append([]entryKey{{parent: rec.LinkParent, name: rec.LinkName}}, cands...)
	}
	for _, c := range cands {
		d, err := pf.s.getDirent(pf.r, pf.chain, c.parent, c.name)
		if err != nil && !isNotFound(err) {
			return "", err
		}
		if err == nil && d.Ino == ino {
			return pf.join(ino, c.parent, c.name, depth)
		}
	}
	if rec.Mode&sIFMT == sIFDIR && rec.Parent != 0 {
		name, found, err := pf.nameIn(rec.Parent, ino)
		if err != nil {
			return "", err
		}
		if found {
			return pf.join(ino, rec.Parent, name, depth)
		}
	}
	if !pf.walked {
		pf.walked = true
		if err := pf.walk(RootIno, "/", 0); err != nil {
			return "", err
		}
		if p, ok := pf.paths[ino]; ok {
			return p, nil
		}
	}
	return "", fmt.Errorf("path of inode %d: no name in the view: %w", ino, ErrNotFound)
}

func (pf *pathFinder) join(ino, parent uint64, name string, depth int) (string, error) {
	pp, err := pf.pathDepth(parent, depth+1)
	if err != nil {
		return "", err
	}
	p := strings.TrimSuffix(pp, "/") + "/" + name
	pf.paths[ino] = p
	return p, nil
}

// nameIn finds the name of ino in directory dir by listing it.
func (pf *pathFinder) nameIn(dir, ino uint64) (string, bool, error) {
	var name string
	found := false
	err := listDir(pf.lr, pf.chain, dir, 0, func(_ uint64, n string, d direntRec) bool {
		if d.Ino == ino {
			name, found = n, true
			return false
		}
		return true
	})
	return name, found, err
}

// walk records the path of every inode below dir (the last resort).
func (pf *pathFinder) walk(dir uint64, path string, depth int) error {
	if depth > 4096 {
		return fmt.Errorf("walk: too deep: %w", errCorrupt)
	}
	var subdirs []uint64
	err := listDir(pf.lr, pf.chain, dir, 0, func(_ uint64, n string, d direntRec) bool {
		p := strings.TrimSuffix(path, "/") + "/" + n
		if _, ok := pf.paths[d.Ino]; !ok {
			pf.paths[d.Ino] = p
		}
		if d.Type == sIFDIR {
			subdirs = append(subdirs, d.Ino)
		}
		return true
	})
	if err != nil {
		return err
	}
	for _, sd := range subdirs {
		if err := pf.walk(sd, pf.paths[sd], depth+1); err != nil {
			return err
		}
	}
	return nil
}

// PathOf returns a path of inode ino in view v, relative to the view's
// root and starting with "/". A hard-linked file has several; this is its
// newest name when that still exists.
func (s *Store) PathOf(v View, ino uint64) (string, error) {
	chain, err := s.chain(v)
	if err != nil {
		return "", err
	}
	snap := s.db.NewSnapshot()
	defer snap.Close()
	it, err := snap.NewIter(nil)
	if err != nil {
		return "", err
	}
	defer it.Close()
	return newPathFinder(s, &iterReader{it}, snap, chain).path(ino)
}

// DiffLine is one change between two views, as snapfs diff prints it.
type DiffLine struct {
	// Change is 'M' (modified), '+' (added), '-' (removed) or 'R' (renamed).
	Change byte
	// Kind is the file's type as zfs diff -F prints it: 'F' regular file,
	// '/' directory, '@' symlink, '|' FIFO, '=' socket, 'B' block device,
	// 'C' character device.
	Kind byte
	// Path is the path in the view the change is read from: the old view
	// for '-' and the old name of 'R', the new view otherwise. NewPath is
	// the new name of 'R'. Both start with "/" (the dataset's root).
	Path, NewPath string
	Ino           uint64
}

// String renders the line as snapfs diff prints it, names escaped.
func (l DiffLine) String() string {
	s := fmt.Sprintf("%c\t%c\t%s", l.Change, l.Kind, EscapePath(l.Path))
	if l.Change == 'R' {
		s += " -> " + EscapePath(l.NewPath)
	}
	return s
}

// EscapePath escapes a path for a line-based reader, as zfs diff does:
// every byte that is not a printable ASCII character other than space and
// backslash is written \0ooo (a backslash, then 0 and three octal digits
// of the byte), so names with spaces, tabs, newlines, " -> " or bytes that
// are not UTF-8 survive a parser that splits on white space.
func EscapePath(p string) string {
	var b strings.Builder
	for i := 0; i < len(p); i++ {
		c := p[i]
		if c <= ' ' || c >= 0x7f || c == '\\' {
			fmt.Fprintf(&b, "\\%04o", c)
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// UnescapePath undoes EscapePath.
func UnescapePath(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+5 > len(s) {
			return "", fmt.Errorf("escape at %d: truncated: %w", i, ErrInvalid)
		}
		var v int
		for _, d := range s[i+1 : i+5] {
			if d < '0' || d > '7' {
				return "", fmt.Errorf("escape at %d: not octal: %w", i, ErrInvalid)
			}
			v = v*8 + int(d-'0')
		}
		if v > 0xff {
			return "", fmt.Errorf("escape at %d: out of range: %w", i, ErrInvalid)
		}
		b.WriteByte(byte(v))
		i += 4
	}
	return b.String(), nil
}

// kindChar is the zfs diff -F character of file type bits.
func kindChar(mode uint32) byte {
	switch mode & sIFMT {
	case sIFDIR:
		return '/'
	case sIFLNK:
		return '@'
	case sIFIFO:
		return '|'
	case sIFSOCK:
		return '='
	case sIFBLK:
		return 'B'
	case sIFCHR:
		return 'C'
	}
	return 'F'
}

// Diff lists the changes between views from and to of one volume, sorted
// by path, by these rules (docs/cli.md, snapfs diff):
//
//   - '+': a name that is new in to, of an inode new in to, or a new hard
//     link of an inode both views have.
//   - '-': a name that is gone in to, of an inode gone in to, or a removed
//     hard link of an inode both views have.
//   - 'R': an inode both views have lost one name and gained another: the
//     old and new names, paired in sorted order when a hard-linked file
//     lost and gained several.
//   - 'M': an inode both views have whose content, size, mode, owner,
//     group, mtime, device number, symlink target or xattrs differ,
//     printed once at its name in to. A directory whose entries changed
//     has a new mtime, so it shows as 'M' too. A change of ctime, atime or
//     link count alone (which a rename or a link makes) is not 'M'.
//   - A name whose file was replaced by another (rm then create, a file
//     replaced by a directory, mv over an existing file) is '-' for the
//     old file and '+' for the new one: inode numbers are never reused,
//     so a new file is always a new inode.
func (s *Store) Diff(from, to View) ([]DiffLine, error) {
	cs, err := s.newChangeScan(from, to)
	if err != nil {
		return nil, err
	}
	defer cs.close()
	type names struct{ gone, added []entryKey }
	byIno := map[uint64]*names{}
	get := func(ino uint64) *names {
		n := byIno[ino]
		if n == nil {
			n = &names{}
			byIno[ino] = n
		}
		return n
	}
	inodes := map[uint64]InodeChange{}
	types := map[uint64]uint32{}
	err = cs.run(func(e EntryChange) error {
		k := entryKey{parent: e.Parent, name: e.Name}
		if e.FromIno != 0 {
			get(e.FromIno).gone = append(get(e.FromIno).gone, k)
			types[e.FromIno] = e.FromType
		}
		if e.ToIno != 0 {
			get(e.ToIno).added = append(get(e.ToIno).added, k)
			types[e.ToIno] = e.ToType
		}
		return nil
	}, func(c InodeChange) error {
		inodes[c.Ino] = c
		return nil
	})
	if err != nil {
		return nil, err
	}
	pf := newPathFinder(s, cs.r, cs.snap, cs.cf)
	pt := newPathFinder(s, cs.r, cs.snap, cs.ct)
	for ino, n := range byIno {
		pf.hints[ino] = n.gone
		pt.hints[ino] = n.added
	}
	namePath := func(f *pathFinder, k entryKey) (string, error) {
		pp, err := f.path(k.parent)
		if err != nil {
			return "", err
		}
		return strings.TrimSuffix(pp, "/") + "/" + k.name, nil
	}
	var out []DiffLine
	inos := make([]uint64, 0, len(byIno)+len(inodes))
	for ino := range byIno {
		inos = append(inos, ino)
	}
	for ino := range inodes {
		if byIno[ino] == nil {
			inos = append(inos, ino)
		}
	}
	for _, ino := range inos {
		ic, known := inodes[ino]
		inFrom, inTo := true, true
		if known {
			// An unlinked file still open (an orphan) has no name: as
			// far as names go, it is gone.
			inFrom, inTo = ic.From != nil && ic.From.Nlink > 0, ic.To != nil && ic.To.Nlink > 0
		}
		typ := types[ino]
		if known && ic.To != nil {
			typ = ic.To.Mode
		} else if known && ic.From != nil {
			typ = ic.From.Mode
		}
		kind := kindChar(typ)
		n := byIno[ino]
		if n == nil {
			n = &names{}
		}
		sortKeys := func(ks []entryKey, f *pathFinder) ([]string, error) {
			ps := make([]string, 0, len(ks))
			for _, k := range ks {
				p, err := namePath(f, k)
				if err != nil {
					return nil, err
				}
				ps = append(ps, p)
			}
			sort.Strings(ps)
			return ps, nil
		}
		gone, err := sortKeys(n.gone, pf)
		if err != nil {
			return nil, err
		}
		added, err := sortKeys(n.added, pt)
		if err != nil {
			return nil, err
		}
		switch {
		case !inFrom && !inTo:
			continue
		case !inFrom:
			for _, p := range added {
				out = append(out, DiffLine{Change: '+', Kind: kind, Path: p, Ino: ino})
			}
			continue
		case !inTo:
			for _, p := range gone {
				out = append(out, DiffLine{Change: '-', Kind: kind, Path: p, Ino: ino})
			}
			continue
		}
		paired := min(len(gone), len(added))
		for i := 0; i < paired; i++ {
			out = append(out, DiffLine{Change: 'R', Kind: kind, Path: gone[i], NewPath: added[i], Ino: ino})
		}
		for _, p := range added[paired:] {
			out = append(out, DiffLine{Change: '+', Kind: kind, Path: p, Ino: ino})
		}
		for _, p := range gone[paired:] {
			out = append(out, DiffLine{Change: '-', Kind: kind, Path: p, Ino: ino})
		}
		if known && (ic.Meta || ic.Data || len(ic.Xattrs) > 0) {
			p, err := pt.path(ino)
			if err != nil {
				return nil, err
			}
			out = append(out, DiffLine{Change: 'M', Kind: kind, Path: p, Ino: ino})
		}
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Path != b.Path {
			return a.Path < b.Path
		}
		if a.Change != b.Change {
			return a.Change < b.Change
		}
		return a.NewPath < b.NewPath
	})
	return out, nil
}

// InodeVersion is inode Ino as one view sees it (InodeVersions).
type InodeVersion struct {
	Exists bool
	Attr   Attr
	// Lineage and Born identify the version of the inode record the view
	// resolves to: two views that resolve to the same one see the same
	// file, since every change of content, size, mode, owner or xattrs
	// rewrites the record (its mtime or ctime).
	Lineage uint32
	Born    uint64
}

// InodeVersions resolves inode ino in each of views (of one volume) with
// one seek each, for snapfs versions: the cost is the number of views,
// not the file's size or history.
func (s *Store) InodeVersions(views []View, ino uint64) ([]InodeVersion, error) {
	for _, v := range views {
		if v.Live() {
			if err := s.flushLineage(v.Lineage); err != nil {
				return nil, fmt.Errorf("versions: flush: %w", err)
			}
		}
	}
	snap := s.db.NewSnapshot()
	defer snap.Close()
	it, err := snap.NewIter(nil)
	if err != nil {
		return nil, err
	}
	defer it.Close()
	r := &iterReader{it}
	out := make([]InodeVersion, len(views))
	for i, v := range views {
		chain, err := s.chain(v)
		if err != nil {
			return nil, err
		}
		for _, pt := range chain {
			ver, err := r.seek(inodePrefix(pt.lin, ino), pt.epoch)
			if err != nil {
				return nil, fmt.Errorf("versions: inode %d: %w", ino, err)
			}
			if !ver.found {
				continue
			}
			rec, err := decodeInode(ver.value)
			if err != nil {
				return nil, fmt.Errorf("versions: inode %d: %w", ino, err)
			}
			if rec.Flags&inodeTombstone == 0 {
				out[i] = InodeVersion{Exists: true, Attr: rec.attr(ino), Lineage: pt.lin, Born: ver.epoch}
			}
			break
		}
	}
	return out, nil
}

// markIn sets m[ino][k], making the inner set when ino has none yet.
func markIn[K comparable](m map[uint64]map[K]bool, ino uint64, k K) {
	if m[ino] == nil {
		m[ino] = map[K]bool{}
	}
	m[ino][k] = true
}
