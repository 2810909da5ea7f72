package pool

import (
	"container/list"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// The read cache keeps records read from object-store members in local
// files (OpenOptions.CacheDir, at most CacheSize bytes), so a record read
// again costs no Get. An entry is one record as stored (header and
// payload), in CacheDir/<member-id>/<pack>-<offset>; it is verified like
// every read before it is used, so a damaged or stale entry costs a Get,
// never a wrong byte. Eviction is least recently used. Entries are
// written without fsync: a power cut may tear one, which verification
// then rejects.
type readCache struct {
	fs   FS
	dir  string
	size int64

	mu    sync.Mutex               // guards the fields below
	used  int64                    // bytes of the entries
	lru   *list.List               // of *cacheEntry, most recent first
	byKey map[string]*list.Element // by entry path
}

type cacheEntry struct {
	path string
	size int64
}

// openReadCache opens (creating) the cache in dir and indexes the entries
// a previous run left, oldest first by name order within each member.
func openReadCache(fsys FS, dir string, size int64) (*readCache, error) {
	c := &readCache{fs: fsys, dir: dir, size: size, lru: list.New(), byKey: map[string]*list.Element{}}
	if err := fsys.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("pool: read cache %s: %w", dir, err)
	}
	members, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("pool: read cache %s: %w", dir, err)
	}
	for _, md := range members {
		if !md.IsDir() {
			continue
		}
		ents, err := fsys.ReadDir(filepath.Join(dir, md.Name()))
		if err != nil {
			continue
		}
		sort.Slice(ents, func(i, j int) bool { return ents[i].Name() < ents[j].Name() })
		for _, e := range ents {
			p := filepath.Join(dir, md.Name(), e.Name())
			fi, err := fsys.Stat(p)
			if err != nil {
				continue
			}
			c.byKey[p] = c.lru.PushFront(&cacheEntry{path: p, size: fi.Size()})
			c.used += fi.Size()
		}
	}
	c.mu.Lock()
	c.evictLocked()
	c.mu.Unlock()
	return c, nil
}

func (c *readCache) path(m *member, loc Location) string {
	return filepath.Join(c.dir, m.cfg.ID, strconv.FormatUint(uint64(loc.Pack), 10)+"-"+strconv.FormatInt(loc.Offset, 10))
}

// get reads the cached record of loc into buf (its exact length) and
// reports whether it did; the caller verifies it.
func (c *readCache) get(m *member, loc Location, buf []byte) bool {
	p := c.path(m, loc)
	c.mu.Lock()
	el := c.byKey[p]
	if el != nil {
		c.lru.MoveToFront(el)
	}
	c.mu.Unlock()
	if el == nil {
		return false
	}
	f, err := c.fs.OpenFile(p, os.O_RDONLY, 0)
	if err != nil {
		c.drop(p)
		return false
	}
	defer f.Close()
	n, err := f.ReadAt(buf, 0)
	return n == len(buf) && (err == nil || n == len(buf))
}

// put stores a verified record read from the store.
func (c *readCache) put(m *member, loc Location, rec []byte) {
	if int64(len(rec)) > c.size {
		return
	}
	p := c.path(m, loc)
	c.mu.Lock()
	_, have := c.byKey[p]
	c.mu.Unlock()
	if have {
		return
	}
	if err := c.fs.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return
	}
	f, err := c.fs.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return
	}
	_, err = f.WriteAt(rec, 0)
	f.Close()
	if err != nil {
		c.fs.Remove(p)
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, have := c.byKey[p]; have {
		return
	}
	c.byKey[p] = c.lru.PushFront(&cacheEntry{path: p, size: int64(len(rec))})
	c.used += int64(len(rec))
	c.evictLocked()
}

// drop forgets and removes the entry at path p (a bad or vanished one).
func (c *readCache) drop(p string) {
	c.mu.Lock()
	if el := c.byKey[p]; el != nil {
		c.used -= el.Value.(*cacheEntry).size
		c.lru.Remove(el)
		delete(c.byKey, p)
	}
	c.mu.Unlock()
	if err := c.fs.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return
	}
}

// evictLocked removes least recently used entries until the cache fits.
// Caller holds mu.
func (c *readCache) evictLocked() {
	for c.used > c.size && c.lru.Len() > 0 {
		el := c.lru.Back()
		e := el.Value.(*cacheEntry)
		c.lru.Remove(el)
		delete(c.byKey, e.path)
		c.used -= e.size
		c.fs.Remove(e.path)
	}
}

// dropPack forgets every entry of pack n of member m (deleted by repack).
func (c *readCache) dropPack(m *member, n uint32) {
	prefix := filepath.Join(c.dir, m.cfg.ID, strconv.FormatUint(uint64(n), 10)+"-")
	c.mu.Lock()
	var gone []string
	for p := range c.byKey {
		if strings.HasPrefix(p, prefix) {
			gone = append(gone, p)
		}
	}
	c.mu.Unlock()
	for _, p := range gone {
		c.drop(p)
	}
}

// dropMember forgets every entry of member m (removed).
func (c *readCache) dropMember(m *member) {
	prefix := filepath.Join(c.dir, m.cfg.ID) + string(filepath.Separator)
	c.mu.Lock()
	var gone []string
	for p := range c.byKey {
		if strings.HasPrefix(p, prefix) {
			gone = append(gone, p)
		}
	}
	c.mu.Unlock()
	for _, p := range gone {
		c.drop(p)
	}
	_ = c.fs.Remove(filepath.Join(c.dir, m.cfg.ID))
}

// CacheStats is the read cache's state: entries and bytes.
type CacheStats struct {
	Entries int
	Bytes   int64
	Limit   int64
}

// CacheStats reports the read cache (zero without one).
func (p *Pool) CacheStats() CacheStats {
	c := p.cache
	if c == nil {
		return CacheStats{}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return CacheStats{Entries: c.lru.Len(), Bytes: c.used, Limit: c.size}
}
