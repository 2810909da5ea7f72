package snap

import (
	"sync"
	"time"
)

// The .snapshots directory reports a link count of 2 plus its entries and
// the creation time of its newest entry as its mtime, and the kernel asks
// for these attributes around every mkdir and rmdir in it. Reading them by
// listing the records would make taking or destroying a snapshot cost
// O(number of snapshots) (53 ms each with 10,000 present, issue 16). The
// Manager keeps them in memory instead, per dataset: the names and
// creation times of its snapshots and branches, filled by one listing on
// first use and kept up to date by the namespace changes that hold m.mu.

// summaries caches, per dataset, the creation time of each snapshot and
// branch. Create and Destroy update an entry in place; every other
// namespace change (rename, branch, receive, rollback, volume destroy)
// forgets them all, and the next Summary lists again.
type summaries struct {
	// mu guards gen and byDS. It is never held while reading the store.
	mu sync.Mutex
	// gen counts namespace changes; a listing started at an older gen is
	// not kept, since it may have missed the change.
	gen uint64
	// byDS maps a dataset to its entries' names and creation times (unix
	// nanoseconds).
	byDS map[string]map[string]int64
}

// added records that name was created in dataset ds at created.
func (c *summaries) added(ds, name string, created int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	if e, ok := c.byDS[ds]; ok {
		e[name] = created
	}
}

// removed records that name of dataset ds is gone.
func (c *summaries) removed(ds, name string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	delete(c.byDS[ds], name)
}

// forget drops every cached summary; call it after any namespace change
// other than a plain create or destroy.
func (c *summaries) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.gen++
	c.byDS = nil
}

// Summary returns the number of snapshots and branches of dataset vol
// (its own, as Entries lists them) and the creation time of the newest
// (zero if none). After the first call for a dataset it reads no
// records: its cost does not grow with the number of snapshots beyond a
// walk of an in-memory map.
func (m *Manager) Summary(vol string) (int, time.Time, error) {
	c := &m.sums
	c.mu.Lock()
	e, ok := c.byDS[vol]
	gen := c.gen
	var n int
	var newest int64
	if ok {
		n = len(e)
		for _, t := range e {
			newest = max(newest, t)
		}
	}
	c.mu.Unlock()
	if ok {
		return n, timeOf(newest), nil
	}
	l, err := m.list(vol)
	if err != nil {
		return 0, time.Time{}, err
	}
	e = make(map[string]int64, len(l))
	for _, s := range l {
		t := s.Created.UnixNano()
		e[s.Name] = t
		newest = max(newest, t)
	}
	c.mu.Lock()
	if c.gen == gen {
		if c.byDS == nil {
			c.byDS = map[string]map[string]int64{}
		}
		c.byDS[vol] = e
	}
	c.mu.Unlock()
	return len(l), timeOf(newest), nil
}

func timeOf(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}
