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

	loading map[pool.Hash]*loading // reads in progress
}

type cacheEntry struct {
	h    pool.Hash
	data []byte
}

func newChunkCache(max int64) *chunkCache {
	return &chunkCache{max: max, lru: list.New(), m: map[pool.Hash]*list.Element{}, loading: map[pool.Hash]*loading{}}
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

// busy reports whether chunk h is cached or being loaded: a reader then
// takes it from there rather than reading it again.
func (c *chunkCache) busy(h pool.Hash) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, cached := c.m[h]
	return cached || c.loading[h] != nil
}

// put stores a copy of data.
func (c *chunkCache) put(h pool.Hash, data []byte) {
	if int64(len(data)) > c.max/4 {
		return
	}
	c.putOwned(h, append([]byte(nil), data...))
}

// putOwned stores data itself: the caller gives it up and never changes it.
func (c *chunkCache) putOwned(h pool.Hash, cp []byte) {
	if int64(len(cp)) > c.max/4 {
		return
	}
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

// loading is one chunk read in progress; concurrent readers of the same
// hash (a reader and the read-ahead) wait for it instead of reading twice.
type loading struct {
	done chan struct{}
	data []byte
	err  error
}

// readHash returns the bytes of a stored chunk: from the cache, or from the
// pool (any good copy), verified by the pool's checksums.
func (s *Store) readHash(h pool.Hash, length uint32, hint []pool.Location) ([]byte, error) {
	if d, ok := s.cache.get(h); ok {
		return d, nil
	}
	c := s.cache
	c.mu.Lock()
	if l := c.loading[h]; l != nil {
		c.mu.Unlock()
		<-l.done
		return l.data, l.err
	}
	l := &loading{done: make(chan struct{})}
	c.loading[h] = l
	c.mu.Unlock()
	l.data, l.err = s.loadHash(h, length, hint)
	c.mu.Lock()
	delete(c.loading, h)
	c.mu.Unlock()
	close(l.done)
	return l.data, l.err
}

// loadHash reads a chunk from the pool into the cache: from the chunk
// record's location hint when it still holds the bytes, else from where the
// chunkref record says they are. Bad copies it read around are queued for
// rewriting (readrepair.go).
func (s *Store) loadHash(h pool.Hash, length uint32, hint []pool.Location) ([]byte, error) {
	e := s.grace.enter()
	defer s.grace.exit(e)
	s.pool.NoteForeground() // a scrub yields to this read (scrubpace.go)
	var bad []pool.BadCopy
	if len(hint) > 0 {
		// A hint that no longer holds the record (moved by scrub, punched)
		// fails its header check and falls through to the chunkref.
		data, hbad, err := s.pool.ReadAnyReport(hint, h, make([]byte, 0, pool.ReadBufSize(length)))
		if err == nil && uint32(len(data)) == length {
			s.cache.putOwned(h, data)
			s.queueReadRepair(h, data, hbad)
			return data, nil
		}
		bad = hbad
	}
	rec, found, err := getChunkRefFrom(s.db, h)
	if err != nil {
		return nil, err
	}
	if !found {
		return nil, fmt.Errorf("chunk %x has no record: %w", h[:8], ErrIO)
	}
	data, rbad, err := s.pool.ReadAnyReport(rec.Locs, h, make([]byte, 0, pool.ReadBufSize(length)))
	if err != nil {
		s.noteUnreadable(h, err)
		return nil, fmt.Errorf("read chunk %x: %w", h[:8], err)
	}
	if uint32(len(data)) != length {
		return nil, fmt.Errorf("chunk %x: %d bytes, want %d: %w", h[:8], len(data), length, ErrIO)
	}
	s.cache.putOwned(h, data)
	for _, b := range rbad {
		if !containsBad(bad, b.Loc) {
			bad = append(bad, b)
		}
	}
	s.queueReadRepair(h, data, bad)
	return data, nil
}

func containsBad(bad []pool.BadCopy, l pool.Location) bool {
	for _, b := range bad {
		if b.Loc == l {
			return true
		}
	}
	return false
}

// readahead detects a sequential stream on a handle and has the members
// read the chunks ahead of it, keeping a window of readaheadBytes ahead
// of the reader: each refill hints the whole new part of the window to
// the pool at once (hintChunks: the kernel reads those records of every
// member in the background, an object member fetches them into memory),
// and the next refill starts when the reader has used half the window.
// It loads nothing itself: a sequential read gets each chunk it holds
// from the start with one read of the record, from the page cache the
// hint filled, straight into the request's buffer (readChunkInto), so
// loading chunks into the chunk cache ahead of it, as this did before,
// only added a buffer to clear and a copy per byte.
type readahead struct {
	mu      sync.Mutex // guards next, ahead and running
	next    int64      // where a sequential reader would read next
	ahead   int64      // chunks [.., ahead) already hinted
	running int        // refills (hintChunks calls) in progress
}

const (
	readaheadBytes = 8 << 20
	// readaheadRefills bounds the refills hinting at once.
	readaheadRefills = 2
)

// sequential reports whether a read at off continues where the last
// read on the handle ended (a first read at 0 does too).
func (r *readahead) sequential(off int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return off == r.next
}

func (r *readahead) observe(s *Store, h *Handle, rec inodeRec, off, end int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	cs := int64(1) << rec.ChunkShift
	// The kernel keeps more than one READ of its read-ahead in flight
	// (cat advises the file sequential: two of 1 MiB), and they may be
	// served out of order: a big read near the stream's end still
	// continues it, and the stream's end is the furthest one served.
	near := end-off >= cs && off < r.next+readaheadBytes && end > r.next-readaheadBytes
	seq := off == r.next || near
	if seq {
		r.next = max(r.next, end)
	} else {
		r.next = end
	}
	if !seq || rec.Flags&inodeInline != 0 {
		r.ahead = 0
		return
	}
	end = r.next
	from := max(end/cs+1, r.ahead)
	to := min(end/cs+1+readaheadBytes/cs, (int64(rec.Size)+cs-1)/cs)
	// Refill when half the window has been consumed, in one go.
	if to-from < readaheadBytes/cs/2 || r.running >= readaheadRefills {
		return
	}
	r.ahead = to
	r.running++
	go func() {
		s.hintChunks(h.chain, h.ino, rec.Cgen, from, to)
		r.mu.Lock()
		r.running--
		r.mu.Unlock()
	}()
}

// hintChunks asks the pool to start reading, in the background, the
// records of chunks [from, to) of a file that are not cached: the copy a
// read would try first (pool.Prefetch). Chunks it cannot resolve are
// skipped: the read that follows reports them.
func (s *Store) hintChunks(chain []viewPoint, ino uint64, cgen uint32, from, to int64) {
	var locs []pool.Location
	for idx := from; idx < to; idx++ {
		ver, err := resolve(s.dbr(), chain, func(lin uint32) []byte { return chunkPrefix(lin, ino, cgen, uint64(idx)) })
		if err != nil || !ver.found {
			continue
		}
		c, err := decodeChunk(ver.value)
		if err != nil || c.Kind == chunkHole {
			continue
		}
		if _, ok := s.cache.get(c.Hash); ok {
			continue
		}
		for _, l := range c.Hint {
			if !s.pool.Gone(l.Member) && !s.pool.FailsReads(l.Member) {
				locs = append(locs, l)
				break
			}
		}
	}
	s.pool.Prefetch(locs)
}
