package pool

import (
	"sync/atomic"
	"time"
)

// foregroundClock records when the pool last did I/O for the mounted
// volumes (as opposed to a scrub's), so that a scrub can yield to it.
type foregroundClock struct {
	// at is the time of the latest foreground I/O, in nanoseconds since
	// base (monotonic); 0 means never.
	at   atomic.Int64
	base time.Time
}

// NoteForeground records that file data is being read from or written to
// the members now on behalf of a volume. Append does it for every flush;
// the store does it before each chunk it reads for a reader.
func (p *Pool) NoteForeground() {
	p.fg.at.Store(int64(time.Since(p.fg.base)) + 1)
}

// SinceForeground returns how long ago the pool last did foreground I/O
// (NoteForeground), or a very long time if it never did.
func (p *Pool) SinceForeground() time.Duration {
	at := p.fg.at.Load()
	if at == 0 {
		return time.Duration(1<<63 - 1)
	}
	return time.Since(p.fg.base) - time.Duration(at-1)
}
