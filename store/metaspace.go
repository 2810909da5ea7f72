package store

import (
	"fmt"
	"sync/atomic"
	"syscall"
	"time"
)

// metaSpace keeps the metadata file system from filling up under Pebble.
// Pebble does not survive a failed write of its log: it panics inside the
// commit, its commit pipeline stays locked, and every later request of the
// mount hangs. So the store answers ENOSPC first (DESIGN-NOTES 7): once the
// file system holding meta/ has less than the reserve free, changes that
// grow the metadata (a write(2), a create, a snapshot) fail with
// ErrNoSpace; deletions, truncations, renames and the commits of writes
// already accepted go on, using the reserve, until a quarter of it is
// left, where every change fails. The reserve leaves Pebble room for its
// log, memtable flushes and the compactions that turn deletions into free
// space.
type metaSpace struct {
	// Immutable after Open. statfs is nil when the metadata is not on a
	// disk (Options.PebbleFS): there is nothing to guard.
	statfs  func() (free int64, err error)
	reserve int64

	// free is the last statfs answer, taken at at (unix nanoseconds);
	// it is refreshed every metaSpaceRefresh.
	free atomic.Int64
	at   atomic.Int64
}

// metaSpaceRefresh bounds how stale the free figure may be: the commits
// of one interval use far less than a quarter of the reserve.
const metaSpaceRefresh = 50 * time.Millisecond

// init sets the guard up for the metadata directory dir on disk,
// with the reserve from opts (see Options.MetaReserve).
func (m *metaSpace) init(dir string, reserve int64) error {
	statfs := func() (int64, int64, error) {
		var st syscall.Statfs_t
		if err := syscall.Statfs(dir, &st); err != nil {
			return 0, 0, fmt.Errorf("statfs %s: %w", dir, err)
		}
		return int64(st.Bavail) * int64(st.Bsize), int64(st.Blocks) * int64(st.Bsize), nil
	}
	free, total, err := statfs()
	if err != nil {
		return err
	}
	if reserve == 0 {
		reserve = min(max(total/32, 4<<20), 1<<30)
	}
	m.reserve = reserve
	m.statfs = func() (int64, error) { f, _, err := statfs(); return f, err }
	m.free.Store(free)
	m.at.Store(time.Now().UnixNano())
	return nil
}

// room returns ErrNoSpace when a change may not use the metadata file
// system now: grows says the change adds metadata (rather than deleting
// or replacing it).
func (m *metaSpace) room(grows bool) error {
	if m.statfs == nil {
		return nil
	}
	if now := time.Now().UnixNano(); now-m.at.Load() > int64(metaSpaceRefresh) {
		if free, err := m.statfs(); err == nil {
			m.free.Store(free)
			m.at.Store(now)
		}
	}
	free := m.free.Load()
	if free < m.reserve/4 || grows && free < m.reserve {
		return fmt.Errorf("metadata file system: %d bytes free, %d kept in reserve: %w", free, m.reserve, ErrNoSpace)
	}
	return nil
}
