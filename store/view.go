package store

import (
	"errors"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// reader is what versioned reads need: the database or an indexed batch.
type reader interface {
	NewIter(o *pebble.IterOptions) (*pebble.Iterator, error)
}

// viewPoint is one step of a view's resolution chain: a lineage read up to an
// epoch. A live view starts at (L, LiveEpoch); a branch continues at its
// parent point.
type viewPoint struct {
	lin   uint32
	epoch uint64
}

// chain returns the resolution chain of view v.
func (s *Store) chain(v View) ([]viewPoint, error) {
	l, err := s.lineageOf(v)
	if err != nil {
		return nil, err
	}
	if !v.Live() {
		s.cat.Lock()
		ok := s.viewUsableLocked(viewPoint{v.Lineage, v.Epoch})
		s.cat.Unlock()
		if !ok {
			return nil, fmt.Errorf("view %d (%d@%d): %w", v.ID, v.Lineage, v.Epoch, ErrStale)
		}
	}
	pts := []viewPoint{{l.rec.ID, v.Epoch}}
	for l.parent != nil {
		pts = append(pts, viewPoint{l.parent.rec.ID, l.rec.ParentEpoch})
		l = l.parent
	}
	return pts, nil
}

// version is one resolved version of a key.
type version struct {
	value []byte
	epoch uint64 // born-at
	own   bool   // stored under the first lineage of the chain
	found bool
}

// versionReader finds versions: the database, or a txn (which sees its
// own writes first).
type versionReader interface {
	// seek returns the newest version of prefix p born at or before epoch e.
	seek(p []byte, e uint64) (version, error)
}

// dbReader reads committed versions, one iterator per seek.
type dbReader struct{ db *pebble.DB }

func (s *Store) dbr() dbReader { return dbReader{s.db} }

func (r dbReader) seek(p []byte, e uint64) (version, error) {
	it, err := r.db.NewIter(nil)
	if err != nil {
		return version{}, err
	}
	defer it.Close()
	return seekVersion(it, p, e)
}

// lazyIterReader reads committed versions through one iterator, opened on the
// first seek: for a few point reads that belong together (a lookup's
// entry and record). Its view is fixed when it opens.
type lazyIterReader struct {
	db *pebble.DB
	it *pebble.Iterator
}

func (r *lazyIterReader) seek(p []byte, e uint64) (version, error) {
	if r.it == nil {
		it, err := r.db.NewIter(nil)
		if err != nil {
			return version{}, err
		}
		r.it = it
	}
	return seekVersion(r.it, p, e)
}

func (r *lazyIterReader) close() {
	if r.it != nil {
		r.it.Close()
	}
}

// seekVersion positions it at the newest version of p born at or before e.
func seekVersion(it *pebble.Iterator, p []byte, e uint64) (version, error) {
	if it.SeekPrefixGE(withEpoch(p, e)) && hasPrefix(it.Key(), p) {
		return version{value: append([]byte(nil), it.Value()...), epoch: keyEpoch(it.Key()), found: true}, nil
	}
	return version{}, it.Error()
}

// resolve finds the newest version visible through chain of the key built by
// mk for each lineage. A tombstone is returned as found (the caller decodes
// it): it stops the fall-through.
func resolve(r versionReader, chain []viewPoint, mk func(lin uint32) []byte) (version, error) {
	for i, pt := range chain {
		v, err := r.seek(mk(pt.lin), pt.epoch)
		if err != nil || v.found {
			v.own = i == 0
			return v, err
		}
	}
	return version{}, nil
}

// getInode resolves an inode in a view. A missing or tombstoned inode is ErrNotFound.
func (s *Store) getInode(r versionReader, chain []viewPoint, ino uint64) (inodeRec, error) {
	ver, err := resolve(r, chain, func(lin uint32) []byte { return inodePrefix(lin, ino) })
	if err != nil {
		return inodeRec{}, fmt.Errorf("read inode %d: %w", ino, err)
	}
	if !ver.found {
		return inodeRec{}, fmt.Errorf("inode %d: %w", ino, ErrNotFound)
	}
	rec, err := decodeInode(ver.value)
	if err != nil {
		return rec, fmt.Errorf("inode %d: %w", ino, err)
	}
	if rec.Flags&inodeTombstone != 0 {
		return rec, fmt.Errorf("inode %d: %w", ino, ErrNotFound)
	}
	return rec, nil
}

// getDirent resolves a name in a directory of a view.
func (s *Store) getDirent(r versionReader, chain []viewPoint, parent uint64, name string) (direntRec, error) {
	ver, err := resolve(r, chain, func(lin uint32) []byte { return direntPrefix(lin, parent, name) })
	if err != nil {
		return direntRec{}, fmt.Errorf("read entry %q: %w", name, err)
	}
	if !ver.found {
		return direntRec{}, &entryNotFound{name}
	}
	d, err := decodeDirent(ver.value)
	if err != nil {
		return d, fmt.Errorf("entry %q: %w", name, err)
	}
	if d.Tombstone {
		return d, &entryNotFound{name}
	}
	return d, nil
}

// entryNotFound is getDirent's ErrNotFound. It is the commonest error of
// the namespace (a create looks its name up twice: the kernel's LOOKUP,
// then CREATE), so its message is built only when someone prints it.
type entryNotFound struct{ name string }

func (e *entryNotFound) Error() string { return fmt.Sprintf("entry %q: %v", e.name, ErrNotFound) }
func (e *entryNotFound) Unwrap() error { return ErrNotFound }

// listDir calls fn for the live entries of directory dir visible through
// chain whose name hash is above after, in hash order. Entries of a branch
// shadow those of its ancestors; a tombstone hides the name. An opaque
// directory (DESIGN-NOTES 19) stops the merge at the lineage that marked it.
func listDir(r reader, chain []viewPoint, dir uint64, after uint64, fn func(h uint64, name string, d direntRec) bool) error {
	type cursor struct {
		it    *pebble.Iterator
		pt    viewPoint
		ok    bool
		h     uint64
		name  string
		value []byte
	}
	curs := make([]*cursor, 0, len(chain))
	defer func() {
		for _, c := range curs {
			c.it.Close()
		}
	}()
	// advance moves c to the next visible version (<= its epoch) of the next name.
	advance := func(c *cursor, first bool) error {
		if !first {
			c.ok = nextPrefix(c.it)
		}
		for c.ok {
			k := c.it.Key()
			if keyEpoch(k) <= c.pt.epoch {
				c.h, c.name = parseDirentKey(k)
				c.value = c.it.Value()
				return nil
			}
			c.ok = c.it.Next()
		}
		return c.it.Error()
	}
	for _, pt := range chain {
		it, err := r.NewIter(&pebble.IterOptions{LowerBound: direntDirStart(pt.lin, dir, 0), UpperBound: direntDirEnd(pt.lin, dir)})
		if err != nil {
			return err
		}
		c := &cursor{it: it, pt: pt}
		curs = append(curs, c)
		c.ok = it.SeekGE(direntDirStart(pt.lin, dir, after+1))
		if err := advance(c, true); err != nil {
			return err
		}
	}
	for {
		// pick the smallest (h, name) among cursors; the earliest cursor wins ties.
		var best *cursor
		for _, c := range curs {
			if c.ok && (best == nil || c.h < best.h || c.h == best.h && c.name < best.name) {
				best = c
			}
		}
		if best == nil {
			return nil
		}
		h, name := best.h, best.name
		d, err := decodeDirent(best.value)
		if err != nil {
			return fmt.Errorf("entry %q: %w", name, err)
		}
		for _, c := range curs {
			if c.ok && c.h == h && c.name == name {
				if err := advance(c, false); err != nil {
					return err
				}
			}
		}
		if !d.Tombstone && !fn(h, name, d) {
			return nil
		}
	}
}

// isNotFound reports whether err is ErrNotFound.
func isNotFound(err error) bool { return errors.Is(err, ErrNotFound) }

// isExists reports whether err is ErrExists.
func isExists(err error) bool { return errors.Is(err, ErrExists) }

func isErr(err, target error) bool { return errors.Is(err, target) }

// nextPrefix moves it to the first key of the next prefix. (Pebble's
// NextPrefix refuses iterators with an upper bound.) No real version has
// epoch 0, so the epoch-0 key of the current prefix sorts after all of them.
func nextPrefix(it *pebble.Iterator) bool {
	k := it.Key()
	return it.SeekGE(withEpoch(k[:splitKey(k)], 0))
}
