package pool

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"time"
)

// Read faults
//
// A member whose disk answers reads with I/O errors (bad sectors, a
// failing disk or cable) is counted: every pack read that fails with EIO
// adds to its read error count, and the distinct records that failed
// within the last readFaultWindow are remembered. When readFaultLimit
// distinct records have failed within the window, the member is degraded
// as after a failed write (it takes no new records; frees of its records
// wait), with ErrReadFaults as its problem, and it is read last: ReadAny
// tries the copies on other members first, so with copies >= 2 readers
// go around it instead of waiting on the failing disk each time. One bad
// record (a single bad sector) does not degrade the member: it costs that
// record's copy, which a scrub rewrites elsewhere.
//
// The state lives in the member and goes with it: a member reopened by
// CheckMembers with RetryFailed (pool scrub) starts with a clean count,
// so a scrub tries it again, and degrades it again if it still fails.

const (
	// readFaultWindow is how long a failed record counts toward the limit.
	readFaultWindow = time.Minute
	// readFaultLimit is how many distinct records failing within the
	// window degrade a member.
	readFaultLimit = 4
)

// readFaults counts a member's failed reads.
type readFaults struct {
	mu     sync.Mutex             // guards the fields below
	total  int64                  // reads failed with EIO since the member was opened
	recent map[Location]time.Time // records that failed, and when last
	// degraded is set once the member was degraded for failing reads:
	// ReadAny reads it last.
	degraded bool
}

// IsReadFault reports whether a failed read (of Read or ReadAny) is a
// read fault of the member's disk: an I/O error, not a checksum mismatch
// or a missing member. A copy rewritten after one should go elsewhere.
func IsReadFault(err error) bool { return errors.Is(err, syscall.EIO) }

// noteReadFault counts a read of loc on m that failed with err, and
// degrades m once readFaultLimit distinct records failed within
// readFaultWindow.
func (m *member) noteReadFault(loc Location, err error) {
	now := time.Now()
	f := &m.reads
	f.mu.Lock()
	f.total++
	if f.recent == nil {
		f.recent = map[Location]time.Time{}
	}
	f.recent[loc] = now
	for l, at := range f.recent {
		if now.Sub(at) > readFaultWindow {
			delete(f.recent, l)
		}
	}
	n, total := len(f.recent), f.total
	degrade := n >= readFaultLimit && !f.degraded
	if degrade {
		f.degraded = true
	}
	f.mu.Unlock()
	if !degrade {
		return
	}
	why := fmt.Errorf("reads of %d records failed with I/O errors within %v (%d failed reads in all; last: %v): %w",
		n, readFaultWindow, total, err, ErrReadFaults)
	m.mu.Lock()
	if m.failed == nil {
		m.failed = why
	}
	m.mu.Unlock()
}

// readErrors returns m's failed reads so far and whether they degraded it.
func (m *member) readErrors() (int64, bool) {
	m.reads.mu.Lock()
	defer m.reads.mu.Unlock()
	return m.reads.total, m.reads.degraded
}

// failsReads reports whether member i was degraded for failing reads.
func (p *Pool) failsReads(i uint16) bool {
	ms := p.ms()
	if int(i) >= len(ms) {
		return false
	}
	_, bad := ms[i].readErrors()
	return bad
}

// FailsReads reports whether member i was degraded for failing reads (its
// copies are read last, and scrub, not the read path, rewrites them).
func (p *Pool) FailsReads(i uint16) bool { return p.failsReads(i) }
