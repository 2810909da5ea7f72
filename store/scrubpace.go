package store

import (
	"context"
	"time"

	"github.com/snapfs/snapfs/pool"
)

// Scrub pacing: how a scrub shares the disks with the volumes.
//
// The rule. Offline (nothing mounted, ScrubOptions.Yield unset) a scrub
// runs at full speed. Through the daemon it yields: while the pool has
// done foreground I/O within the last scrubYieldWindow (50 ms) — a chunk
// read from a member for a reader (cache misses only) or a flush's append
// of written data (pool.NoteForeground) — the scrub reads at most
// YieldRate (scrubYieldRate, 16 MiB/s, by default) of copies and hints
// only one batch (4 MiB) ahead instead of 32 MiB; 50 ms after the last
// foreground I/O it is back to full speed. A Rate (pool scrub --rate)
// caps it at all times, mounted or not.
//
// The pace is a token bucket of at most scrubBurst bytes, refilled at the
// rate in force; a chunk's copies are charged after they are read, and
// the scrub sleeps while it owes bytes, looking again every 20 ms at
// whether the volumes have gone quiet (or the scrub was stopped).
type scrubPacer struct {
	p         *pool.Pool
	rate      int64 // ScrubOptions.Rate: bytes/s at all times, 0 = none
	yield     bool
	yieldRate int64
	tokens    float64   // bytes the scrub may read now; negative: owed
	last      time.Time // when tokens was last refilled
	slept     time.Duration
}

const (
	// scrubYieldWindow is how recent foreground I/O must be for the
	// scrub to yield to it.
	scrubYieldWindow = 50 * time.Millisecond
	// scrubYieldRate is the default rate of a scrub yielding to the
	// volumes.
	scrubYieldRate = 16 << 20
	// scrubBurst bounds what a scrub may read at once after a pause.
	scrubBurst = 1 << 20
	// scrubPaceTick is the longest a paced scrub sleeps before it looks
	// again.
	scrubPaceTick = 20 * time.Millisecond
)

func newScrubPacer(p *pool.Pool, o ScrubOptions) *scrubPacer {
	yr := o.YieldRate
	if yr <= 0 {
		yr = scrubYieldRate
	}
	return &scrubPacer{p: p, rate: o.Rate, yield: o.Yield, yieldRate: yr, tokens: scrubBurst, last: time.Now()}
}

// yielding reports whether the volumes did I/O within the yield window
// (always false without Yield).
func (sp *scrubPacer) yielding() bool {
	return sp.yield && sp.p.SinceForeground() < scrubYieldWindow
}

// limit is the rate in force now, in bytes per second (0: none).
func (sp *scrubPacer) limit() int64 {
	r := sp.rate
	if sp.yielding() && (r == 0 || sp.yieldRate < r) {
		r = sp.yieldRate
	}
	return r
}

// window is how far ahead the scrub should hint reads now.
func (sp *scrubPacer) window() int64 {
	if sp.yielding() {
		return scrubAheadBatch
	}
	return scrubAheadWindow
}

// refill adds the tokens earned since the last refill at rate.
func (sp *scrubPacer) refill(rate int64) {
	now := time.Now()
	if rate == 0 {
		sp.tokens = scrubBurst
	} else {
		sp.tokens = min(scrubBurst, sp.tokens+float64(rate)*now.Sub(sp.last).Seconds())
	}
	sp.last = now
}

// wait charges n bytes just read and sleeps while the scrub owes bytes at
// the rate in force; it returns at once when ctx is done.
func (sp *scrubPacer) wait(ctx context.Context, n int64) {
	rate := sp.limit()
	sp.refill(rate)
	sp.tokens -= float64(n)
	if sp.tokens >= 0 || rate == 0 {
		return
	}
	t := time.NewTimer(0)
	defer t.Stop()
	<-t.C
	for sp.tokens < 0 {
		d := min(time.Duration(-sp.tokens/float64(rate)*float64(time.Second)), scrubPaceTick)
		t.Reset(d)
		began := time.Now()
		select {
		case <-ctx.Done():
			sp.slept += time.Since(began)
			return
		case <-t.C:
		}
		sp.slept += time.Since(began)
		if rate = sp.limit(); rate == 0 {
			sp.refill(0)
			return
		}
		sp.refill(rate)
	}
}
