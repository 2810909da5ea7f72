package store

import (
	"runtime"
	"sort"
	"sync"
	"time"
)

// inodeMutex is the per-inode lock (inodeState.mu). It is a sync.Mutex
// whose slow path registers the wait with the table's lockWatch: a request
// stuck behind an inode lock that is never released (a bug: every holder
// must release it on every exit, panics included, which is why the
// critical sections of the read and write paths unlock with defer) is
// then reported in the log, with every goroutine's stack, instead of
// hanging in silence. The fast path (an uncontended lock) costs what
// sync.Mutex costs.
type inodeMutex struct {
	sync.Mutex
	watch *lockWatch // nil in states made outside a table (tests)
	key   inodeKey
}

// Lock locks m, registering the wait if m is held.
func (m *inodeMutex) Lock() {
	if m.TryLock() {
		return
	}
	if m.watch == nil {
		m.Mutex.Lock()
		return
	}
	id := m.watch.begin(m.key)
	m.Mutex.Lock()
	m.watch.end(id)
}

// lockWatch records the waits for inode locks now in progress. Its mu
// guards the fields below it; it is only taken on a lock's slow path and
// by the watchdog.
type lockWatch struct {
	mu    sync.Mutex
	next  uint64
	waits map[uint64]*lockWait
}

// lockWait is one goroutine waiting for one inode's lock.
type lockWait struct {
	key      inodeKey
	since    time.Time
	reported bool // the watchdog has logged it
}

func (w *lockWatch) begin(k inodeKey) uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.waits == nil {
		w.waits = map[uint64]*lockWait{}
	}
	w.next++
	w.waits[w.next] = &lockWait{key: k, since: time.Now()}
	return w.next
}

func (w *lockWatch) end(id uint64) {
	w.mu.Lock()
	defer w.mu.Unlock()
	delete(w.waits, id)
}

// overdue returns the waits begun before cutoff that were not reported
// yet, oldest first, and marks them reported: each stuck wait is logged
// once.
func (w *lockWatch) overdue(cutoff time.Time) []lockWait {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []lockWait
	for _, lw := range w.waits {
		if !lw.reported && lw.since.Before(cutoff) {
			lw.reported = true
			out = append(out, *lw)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].since.Before(out[j].since) })
	return out
}

// lockWatchdog logs, once per stuck wait, the inode locks waited for
// longer than Options.LockWaitWarn, with every goroutine's stack.
func (s *Store) lockWatchdog() {
	defer s.bg.Done()
	tick := time.NewTicker(max(s.opts.LockWaitWarn/4, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case now := <-tick.C:
			s.reportLockWaits(now)
		}
	}
}

// reportLockWaits logs the waits overdue at now (one line each) and then,
// once, every goroutine's stack.
func (s *Store) reportLockWaits(now time.Time) {
	late := s.inodes.watch.overdue(now.Add(-s.opts.LockWaitWarn))
	if len(late) == 0 {
		return
	}
	for _, lw := range late {
		s.logf("snapfs: a request has waited %v for the lock of inode %d (lineage %d): a lock may have leaked; goroutine stacks follow",
			now.Sub(lw.since).Round(time.Millisecond), lw.key.ino, lw.key.lin)
	}
	s.logf("%s", AllStacks())
}

// AllStacks returns the stack of every goroutine of the process, as a
// panic prints them (for the lock watchdog and `snapfs debug stacks`).
func AllStacks() []byte {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			return buf[:n]
		}
		buf = make([]byte, 2*len(buf))
	}
}
