package snap

import (
	"errors"
	"fmt"
	"sync"
)

// Write caches outside the store.
//
// A mount with the kernel writeback cache (fs.MountOptions.WritebackCache)
// lets write(2) return once the kernel's page cache holds the bytes; the
// daemon sees them only when the kernel writes the dirty pages back. A
// snapshot must still hold every write that returned before it began, and
// a rollback must not be followed by pages dirtied before it. So every
// such mount registers itself here, and the Manager has the caches that
// hold a lineage written back, and waits for them, before it pins a
// snapshot of it (Create, CreateMany, a schedule) and before it rolls it
// back. A flush must not need Manager.mu: it runs with mu held (the
// kernel's writeback reaches the store through WRITE and SETATTR requests
// of regular files, which never take it).

// writeCaches are the registered caches.
type writeCaches struct {
	mu  sync.Mutex           // guards set
	set map[*writeCache]bool // the registered caches
}

// writeCache is one registered cache (a mount).
type writeCache struct {
	holds func(lin uint32) bool // whether it may hold writes of lineage lin
	flush func() error          // write everything back; return once stored
}

// AddWriteCache registers a cache outside the store: holds reports
// whether it may hold writes of a lineage (a mount holds its live view's
// and those of the branches it serves), flush writes back everything it
// holds and returns once the store has it. flush is called before every
// snapshot and rollback of a lineage it holds. The returned function
// removes the cache; call it when the cache goes away (the unmount).
func (m *Manager) AddWriteCache(holds func(lin uint32) bool, flush func() error) (remove func()) {
	c := &writeCache{holds: holds, flush: flush}
	m.caches.mu.Lock()
	defer m.caches.mu.Unlock()
	if m.caches.set == nil {
		m.caches.set = map[*writeCache]bool{}
	}
	m.caches.set[c] = true
	return func() {
		m.caches.mu.Lock()
		defer m.caches.mu.Unlock()
		delete(m.caches.set, c)
	}
}

// FlushWriteCaches writes back the caches that hold any of the lineages
// given (every cache when none is given) and waits for them. Snapshots
// and rollbacks call it first; the control API's sync calls it too.
func (m *Manager) FlushWriteCaches(lins ...uint32) error {
	m.caches.mu.Lock()
	var cs []*writeCache
	for c := range m.caches.set {
		if len(lins) == 0 {
			cs = append(cs, c)
			continue
		}
		for _, lin := range lins {
			if c.holds(lin) {
				cs = append(cs, c)
				break
			}
		}
	}
	m.caches.mu.Unlock()
	// Flushed without caches.mu: a flush waits on the kernel, which may
	// wait on requests that register or remove a cache (a mount).
	var errs []error
	for _, c := range cs {
		if err := c.flush(); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("write back kernel caches: %w", err)
	}
	return nil
}
