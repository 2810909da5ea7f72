package store

import (
	"container/list"
	"fmt"
	"sync"
	"time"

	"github.com/snapfs/snapfs/pool"
)

var timeNow = time.Now

// chunkCache keeps hot chunks by content hash, so it can never be stale.
type chunkCache struct {
	mu    sync.Mutex // guards everything below
	max   int64
	bytes int64
	lru   *list.List // of *cacheEntry, most recent at the front
	m     map[pool.Hash]*list.Element
}

type cacheEntry struct {
	h    pool.Hash
	data []byte
}

func newChunkCache(max int64) *chunkCache {
	return &chunkCache{max: max, lru: list.New(), m: map[pool.Hash]*list.Element{}}
}

func (c *chunkCache) get(h pool.Hash) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.m[h]; ok {
		c.lru.MoveToFront(e)
		return e.Value.(*cacheEntry).data, true
	}
	return nil, false
}

// put stores a copy of data.
func (c *chunkCache) put(h pool.Hash, data []byte) {
	if int64(len(data)) > c.max/4 {
		return
	}
	cp := append([]byte(nil), data...)
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m[h]; ok {
		return
	}
	c.m[h] = c.lru.PushFront(&cacheEntry{h, cp})
	c.bytes += int64(len(cp))
	for c.bytes > c.max {
		e := c.lru.Back()
		ce := e.Value.(*cacheEntry)
		c.lru.Remove(e)
		delete(c.m, ce.h)
		c.bytes -= int64(len(ce.data))
	}
}

// readHash returns the bytes of a stored chunk: from the cache, or from the
// pool (any good copy), verified by the pool's checksums.
func (s *Store) readHash(h pool.Hash, length uint32) ([]byte, error) {
	if d, ok := s.cache.get(h); ok {
		return d, nil
	}
	e := s.grace.enter()
	defer s.grace.exit(e)
	rec, found, err := getChunkRefFrom(s.db, h)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("chunk %x has no record: %w", h[:8], ErrIO)
	}
	data, err := s.pool.ReadAny(rec.Locs, h, make([]byte, 0, length))
	if err != nil {
		return nil, fmt.Errorf("read chunk %x: %w", h[:8], err)
	}
	if uint32(len(data)) != length {
		return nil, fmt.Errorf("chunk %x: %d bytes, want %d: %w", h[:8], len(data), length, ErrIO)
	}
	s.cache.put(h, data)
	return data, nil
}

// readahead detects a sequential stream on a handle and loads the next
// chunks into the cache in the background (the kernel asks for at most
// 128 KiB at a time).
type readahead struct {
	mu      sync.Mutex // guards next and ahead
	next    int64      // where a sequential reader would read next
	ahead   int64      // chunks [.., ahead) already requested
	running bool
}

const readaheadChunks = 8

func (r *readahead) observe(s *Store, h *Handle, rec inodeRec, off, end int64) {
	r.mu.Lock()
	seq := off == r.next
	r.next = end
	cs := int64(1) << rec.ChunkShift
	if !seq || r.running || rec.Flags&inodeInline != 0 {
		r.mu.Unlock()
		return
	}
	from := max(end/cs+1, r.ahead)
	to := min(end/cs+1+readaheadChunks, (int64(rec.Size)+cs-1)/cs)
	if from >= to {
		r.mu.Unlock()
		return
	}
	r.ahead = to
	r.running = true
	r.mu.Unlock()
	go func() {
		for idx := from; idx < to; idx++ {
			if _, err := s.readChunk(h.chain, h.ino, rec.Cgen, uint64(idx)); err != nil {
				break
			}
		}
		r.mu.Lock()
		r.running = false
		r.mu.Unlock()
	}()
}
