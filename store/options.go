package store

import (
	"fmt"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Options tune a Store. The zero value gives the defaults.
type Options struct {
	// DirtyLimit is the most bytes of unflushed writes the store holds across
	// all files before writers wait for the flusher. The default value is 64 MiB.
	DirtyLimit int64
	// FlushInterval is how long a partly written chunk may stay dirty before
	// the timer flushes it. The default value is 1s.
	FlushInterval time.Duration
	// OverlayFlushInterval is how long an overlay (small writes into a
	// stored chunk, kept by page) may stay dirty before the timer flushes
	// it. Flushing one reads and rewrites its whole chunk, so it waits
	// longer than a buffer to gather more writes. The default value is 4
	// times FlushInterval.
	OverlayFlushInterval time.Duration
	// SyncInterval is how often a durable (synced) commit happens; it bounds
	// what a crash loses of data nobody fsync'd. The default value is 5s.
	SyncInterval time.Duration
	// CacheSize is the size of the cache of hot chunks, keyed by content hash.
	// The default value is 64 MiB.
	CacheSize int64
	// InlineMax is the largest file kept inside its inode record. The default
	// value is 2048.
	InlineMax int
	// FlushWorkers is the number of background flush goroutines. The default
	// value is 2.
	FlushWorkers int
	// PebbleCacheSize is Pebble's block cache. The default value is 64 MiB.
	PebbleCacheSize int64
	// PebbleFS is the file system the metadata lives on; tests pass Pebble's
	// crashable in-memory FS to cut the power at chosen moments. The
	// default value is nil: the pool's meta directory on disk.
	PebbleFS vfs.FS
	// MetaReserve is how many bytes of the file system holding the
	// metadata are kept free: below it, changes that grow the metadata fail
	// with ErrNoSpace (see metaSpace). It applies only to metadata on disk
	// (PebbleFS nil). The default value is 1/32 of that file system, at
	// least 4 MiB and at most 1 GiB.
	MetaReserve int64
	// MemberCheckInterval is how often the members are checked for a
	// vanished or read-only disk, and for one that came back (also checked
	// at once when an operation on a member fails). The default value is
	// 5s.
	MemberCheckInterval time.Duration
	// CheckpointInterval is how often, while the metadata changes, a
	// checkpoint of it is shipped to the pool's members (checkpoint.go);
	// checkpoints are also shipped after every snapshot, at Close and when
	// freed records wait for one. Negative disables automatic checkpoints
	// (Checkpoint still works); records freed after the last checkpoint
	// are then not punched until the next one. The default value is 2
	// minutes.
	CheckpointInterval time.Duration
	// LockWaitWarn is how long a request may wait for an inode's lock
	// before the lock watchdog logs the wait with every goroutine's stack
	// (once per wait). The default value is 10s.
	LockWaitWarn time.Duration
	// Logf, if set, receives a line per checkpoint shipped and per
	// background failure. The default value is nil: failures go to stderr.
	Logf func(format string, args ...any)
}

// EnsureDefaults fills zero fields with their defaults.
func (o Options) EnsureDefaults() Options {
	if o.DirtyLimit == 0 {
		o.DirtyLimit = 64 << 20
	}
	if o.FlushInterval == 0 {
		o.FlushInterval = time.Second
	}
	if o.OverlayFlushInterval == 0 {
		o.OverlayFlushInterval = 4 * o.FlushInterval
	}
	if o.LockWaitWarn == 0 {
		o.LockWaitWarn = 10 * time.Second
	}
	if o.SyncInterval == 0 {
		o.SyncInterval = 5 * time.Second
	}
	if o.CacheSize == 0 {
		o.CacheSize = 64 << 20
	}
	if o.InlineMax == 0 {
		o.InlineMax = 2048
	}
	if o.FlushWorkers == 0 {
		o.FlushWorkers = 2
	}
	if o.CheckpointInterval == 0 {
		o.CheckpointInterval = 2 * time.Minute
	}
	if o.PebbleCacheSize == 0 {
		o.PebbleCacheSize = 64 << 20
	}
	if o.MemberCheckInterval == 0 {
		o.MemberCheckInterval = 5 * time.Second
	}
	return o
}

// Validate reports options that cannot work.
func (o Options) Validate() error {
	switch {
	case o.DirtyLimit < 1<<20:
		return fmt.Errorf("store options: dirty limit %d below 1 MiB: %w", o.DirtyLimit, ErrInvalid)
	case o.InlineMax < 0 || o.InlineMax > 64<<10:
		return fmt.Errorf("store options: inline max %d out of range: %w", o.InlineMax, ErrInvalid)
	case o.MetaReserve < 0:
		return fmt.Errorf("store options: meta reserve %d: %w", o.MetaReserve, ErrInvalid)
	case o.FlushWorkers < 1:
		return fmt.Errorf("store options: flush workers %d: %w", o.FlushWorkers, ErrInvalid)
	}
	return nil
}
