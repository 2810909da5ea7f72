package store

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2"
)

// Meta records are a small key-value space for the packages above the
// store (snapshot names, properties). They are written in the same batch as
// the lineage change they describe, so a snapshot's name and its pin appear
// and disappear together.
const catMeta byte = 'M'

// MetaOp sets or deletes one meta record.
type MetaOp struct {
	Key    string
	Value  []byte
	Delete bool
}

func metaKey(k string) []byte { return catalogKey(catMeta, k) }

func applyMeta(b *pebble.Batch, ops []MetaOp) error {
	for _, op := range ops {
		if err := checkMetaKey(op.Key); err != nil {
			return err
		}
		if op.Delete {
			_ = b.Delete(metaKey(op.Key), nil)
		} else {
			_ = b.Set(metaKey(op.Key), op.Value, nil)
		}
	}
	return nil
}

func checkMetaKey(k string) error {
	for _, c := range []byte(k) {
		if c == 0 {
			return fmt.Errorf("meta key %q: %w", k, ErrInvalid)
		}
	}
	if k == "" {
		return fmt.Errorf("empty meta key: %w", ErrInvalid)
	}
	return nil
}

// UpdateMeta applies meta operations in one durable batch.
func (s *Store) UpdateMeta(ops ...MetaOp) error {
	b := s.db.NewBatch()
	defer b.Close()
	if err := applyMeta(b, ops); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("update meta: %w", err)
	}
	return nil
}

// GetMeta returns a meta record, or ErrNotFound.
func (s *Store) GetMeta(key string) ([]byte, error) {
	v, c, err := s.db.Get(metaKey(key))
	if err == pebble.ErrNotFound {
		return nil, fmt.Errorf("meta %q: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("meta %q: %w", key, err)
	}
	defer c.Close()
	return append([]byte(nil), v...), nil
}

// ListMeta calls fn for every meta record whose key starts with prefix, in
// key order.
func (s *Store) ListMeta(prefix string, fn func(key string, value []byte) bool) error {
	lo := keyBuf(nil).u8(tagCatalog).u8(catMeta).str(prefix).end()
	hi := keyBuf(nil).u8(tagCatalog).u8(catMeta + 1).end()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	defer it.Close()
	for ok := it.First(); ok; ok = it.Next() {
		s.stats.catalogReads.Add(1)
		k := string(it.Key()[2 : len(it.Key())-1])
		if len(k) < len(prefix) || k[:len(prefix)] != prefix {
			break
		}
		if !fn(k, append([]byte(nil), it.Value()...)) {
			break
		}
	}
	return it.Error()
}

// AllocViewID returns a new view id (24 bits, never reused).
func (s *Store) AllocViewID() (uint32, error) {
	s.cat.Lock()
	defer s.cat.Unlock()
	b := s.db.NewIndexedBatch()
	defer b.Close()
	id, err := s.nextIDLocked(b, "view")
	if err != nil {
		return 0, err
	}
	if id >= 1<<24 {
		return 0, fmt.Errorf("view ids exhausted: %w", ErrNoSpace)
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return 0, fmt.Errorf("allocate view id: %w", err)
	}
	return uint32(id), nil
}
