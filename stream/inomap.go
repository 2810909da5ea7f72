package stream

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/snapfs/snapfs/store"
)

// The inode map of a received volume says which target inode holds each
// source inode (an incremental stream names source inodes). It is kept as
// two meta records per inode, written in the pin batch of the received
// snapshot:
//
//	recv-ino/<dataset>/<source ino, 16 hex digits>  ->  target ino (8 bytes BE)
//	recv-tgt/<dataset>/<target ino, 16 hex digits>  ->  source ino (8 bytes BE)
//
// so a receive reads only the entries of the inodes its stream names and
// writes only the entries that changed: its cost follows the change, not
// the volume's size (before 2026-12-06 the map was one JSON list inside
// recv/<dataset>, read whole and written whole by every receive). The
// reverse records let an apply drop the entries of inodes that are gone.
// A receive record written before (Map set, MapInKeys false) is read as
// it is and converted to records by the next receive.

func inoKey(ds string, src uint64) string { return fmt.Sprintf("recv-ino/%s/%016x", ds, src) }
func tgtKey(ds string, tg uint64) string  { return fmt.Sprintf("recv-tgt/%s/%016x", ds, tg) }

func u64Value(v uint64) []byte { return binary.BigEndian.AppendUint64(nil, v) }

// inoMap is the inode map of one receive: the received volume's map as
// of its base (in the store, or a legacy list), with this receive's
// changes on top.
type inoMap struct {
	st     *store.Store
	ds     string
	legacy map[uint64]uint64 // a record written before per-inode records; nil if none
	set    map[uint64]uint64 // source -> target, added or changed by this receive
	del    map[uint64]bool   // source inodes this receive drops
	// full: a full receive, which starts from an empty map (records of
	// an earlier volume of that name are deleted at commit)
	full bool
}

func newInoMap(st *store.Store, ds string, base *recvRecord) *inoMap {
	m := &inoMap{st: st, ds: ds, set: map[uint64]uint64{store.RootIno: store.RootIno}, del: map[uint64]bool{}, full: base == nil}
	if base != nil && !base.MapInKeys {
		m.legacy = map[uint64]uint64{}
		for _, e := range base.Map {
			m.legacy[e[0]] = e[1]
		}
	}
	return m
}

// get returns the target inode of source inode src.
func (m *inoMap) get(src uint64) (uint64, bool, error) {
	if m.del[src] {
		return 0, false, nil
	}
	if tg, ok := m.set[src]; ok {
		return tg, true, nil
	}
	if m.full {
		return 0, false, nil
	}
	if m.legacy != nil {
		tg, ok := m.legacy[src]
		return tg, ok, nil
	}
	b, err := m.st.GetMeta(inoKey(m.ds, src))
	if errors.Is(err, store.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil || len(b) != 8 {
		return 0, false, fmt.Errorf("inode map of %s, inode %d: %v", m.ds, src, err)
	}
	return binary.BigEndian.Uint64(b), true, nil
}

// mustGet is get for an inode the verify pass has checked is known.
func (m *inoMap) mustGet(src uint64) (uint64, error) {
	tg, ok, err := m.get(src)
	if err == nil && !ok {
		err = fmt.Errorf("inode %d is not in the inode map of %s: %w", src, m.ds, ErrCorrupt)
	}
	return tg, err
}

// put records that source inode src is target inode tg.
func (m *inoMap) put(src, tg uint64) {
	m.set[src] = tg
	delete(m.del, src)
}

// dropTargets removes the entries of the target inodes in gone.
func (m *inoMap) dropTargets(gone map[uint64]bool) error {
	for src, tg := range m.set {
		if gone[tg] {
			delete(m.set, src)
			m.del[src] = true
		}
	}
	for src, tg := range m.legacy {
		if gone[tg] {
			m.del[src] = true
		}
	}
	if m.full || m.legacy != nil {
		return nil
	}
	for tg := range gone {
		b, err := m.st.GetMeta(tgtKey(m.ds, tg))
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil || len(b) != 8 {
			return fmt.Errorf("inode map of %s, target inode %d: %v", m.ds, tg, err)
		}
		if src := binary.BigEndian.Uint64(b); !inSet(m.set, src) {
			m.del[src] = true
		}
	}
	return nil
}

// ops returns the meta operations that make the stored map this
// receive's: the changed entries, or (a full receive, or a legacy record
// converted) every entry, after deleting whatever records the dataset had.
func (m *inoMap) ops() ([]store.MetaOp, error) {
	var ops []store.MetaOp
	write := map[uint64]uint64{}
	if m.full || m.legacy != nil {
		for _, prefix := range []string{"recv-ino/" + m.ds + "/", "recv-tgt/" + m.ds + "/"} {
			err := m.st.ListMeta(prefix, func(k string, _ []byte) bool {
				ops = append(ops, store.MetaOp{Key: k, Delete: true})
				return true
			})
			if err != nil {
				return nil, err
			}
		}
		for src, tg := range m.legacy {
			if !m.del[src] {
				write[src] = tg
			}
		}
		for src, tg := range m.set {
			write[src] = tg
		}
	} else {
		for src := range m.del {
			tg, ok, err := m.storedTarget(src)
			if err != nil {
				return nil, err
			}
			ops = append(ops, store.MetaOp{Key: inoKey(m.ds, src), Delete: true})
			if ok {
				ops = append(ops, store.MetaOp{Key: tgtKey(m.ds, tg), Delete: true})
			}
		}
		for src, tg := range m.set {
			old, ok, err := m.storedTarget(src)
			if err != nil {
				return nil, err
			}
			if ok && old == tg {
				continue // unchanged
			}
			if ok {
				ops = append(ops, store.MetaOp{Key: tgtKey(m.ds, old), Delete: true})
			}
			write[src] = tg
		}
	}
	for src, tg := range write {
		ops = append(ops, store.MetaOp{Key: inoKey(m.ds, src), Value: u64Value(tg)},
			store.MetaOp{Key: tgtKey(m.ds, tg), Value: u64Value(src)})
	}
	return ops, nil
}

// storedTarget reads the stored entry of src (not this receive's).
func (m *inoMap) storedTarget(src uint64) (uint64, bool, error) {
	b, err := m.st.GetMeta(inoKey(m.ds, src))
	if errors.Is(err, store.ErrNotFound) {
		return 0, false, nil
	}
	if err != nil || len(b) != 8 {
		return 0, false, fmt.Errorf("inode map of %s, inode %d: %v", m.ds, src, err)
	}
	return binary.BigEndian.Uint64(b), true, nil
}

// countInoMap returns the number of entries in dataset ds's stored map.
func countInoMap(st *store.Store, ds string) (int, error) {
	n := 0
	prefix := "recv-ino/" + ds + "/"
	err := st.ListMeta(prefix, func(k string, _ []byte) bool {
		if strings.HasPrefix(k, prefix) {
			n++
		}
		return true
	})
	return n, err
}

func inSet(m map[uint64]uint64, k uint64) bool {
	_, ok := m[k]
	return ok
}
