package objstore

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// RetryPolicy bounds how an S3 store retries the failures that go away by
// themselves: an attempt that timed out, a 5xx answer, throttling (503
// SlowDown, 429), a connection refused, reset or cut in the middle of a
// body. Failures that will not go away are returned at once: refused or
// missing credentials (403), a missing object (404), a missing bucket, a
// range past the end, a malformed request.
//
// Attempts are spaced by exponential backoff with full jitter: the n-th
// wait is drawn uniformly from [0, min(MaxDelay, BaseDelay*2^n)), so many
// clients throttled at once spread out rather than retrying together.
type RetryPolicy struct {
	// Attempt bounds one request, from sending it to its body's last
	// byte (default 60 s: an 8 MiB object at 150 KB/s).
	Attempt time.Duration
	// Total bounds an operation, every attempt and wait included
	// (default 2 min); the last attempt's error is returned past it.
	Total time.Duration
	// BaseDelay is the first wait's bound (default 100 ms).
	BaseDelay time.Duration
	// MaxDelay caps every wait (default 5 s).
	MaxDelay time.Duration
	// OpenTotal bounds Open's first contact with the service (default
	// 20 s), so that an endpoint that does not answer is reported soon.
	OpenTotal time.Duration
}

// DefaultRetry is the policy of a store opened without WithRetry.
var DefaultRetry = RetryPolicy{
	Attempt:   60 * time.Second,
	Total:     2 * time.Minute,
	BaseDelay: 100 * time.Millisecond,
	MaxDelay:  5 * time.Second,
	OpenTotal: 20 * time.Second,
}

// withDefaults fills the zero fields from DefaultRetry.
func (p RetryPolicy) withDefaults() RetryPolicy {
	d := DefaultRetry
	if p.Attempt <= 0 {
		p.Attempt = d.Attempt
	}
	if p.Total <= 0 {
		p.Total = d.Total
	}
	if p.BaseDelay <= 0 {
		p.BaseDelay = d.BaseDelay
	}
	if p.MaxDelay <= 0 {
		p.MaxDelay = d.MaxDelay
	}
	if p.OpenTotal <= 0 {
		p.OpenTotal = d.OpenTotal
	}
	return p
}

// backoff returns the wait before attempt n+1 (n counts from 0).
func (p RetryPolicy) backoff(n int) time.Duration {
	bound := p.MaxDelay
	if n < 30 {
		if b := p.BaseDelay << n; b > 0 && b < bound {
			bound = b
		}
	}
	return time.Duration(rand.Int64N(int64(bound) + 1))
}

// errTransient marks an attempt's error as one to retry.
type errTransient struct{ err error }

func (e errTransient) Error() string { return e.err.Error() }
func (e errTransient) Unwrap() error { return e.err }

// transient wraps err as worth retrying.
func transient(err error) error { return errTransient{err} }

// Transient reports whether err is a failure that may go away by itself:
// the service was down, throttled, failing with 5xx or too slow for the
// whole retry bound. A store that keeps failing so is unavailable (a
// pool member degraded); one failing otherwise is misconfigured or
// damaged. Mem's injected faults are transient when wrapped by
// MarkTransient.
func Transient(err error) bool { return isTransient(err) }

// MarkTransient wraps err as transient (for fault hooks of Mem that model
// an outage).
func MarkTransient(err error) error { return transient(err) }

func isTransient(err error) bool {
	var t errTransient
	return errors.As(err, &t)
}

// retry runs attempt until it succeeds, fails with an error that is not
// transient, or the policy's total time (or ctx) runs out. Each attempt
// gets a context bounded by p.Attempt; an attempt that runs past it is
// transient. total overrides p.Total when positive (Open's first contact).
func (p RetryPolicy) retry(ctx context.Context, total time.Duration, attempt func(ctx context.Context) error) error {
	if total <= 0 {
		total = p.Total
	}
	start := time.Now()
	deadline := start.Add(total)
	for n := 0; ; n++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		actx, cancel := context.WithTimeout(ctx, p.Attempt)
		err := attempt(actx)
		timedOut := actx.Err() == context.DeadlineExceeded
		cancel()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			// The caller gave up (canceled, or its own deadline): say so
			// rather than what the cut request reported.
			return fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		if timedOut && !isTransient(err) {
			err = transient(fmt.Errorf("no answer within %v: %w", p.Attempt, err))
		}
		if !isTransient(err) {
			return err
		}
		wait := p.backoff(n)
		if time.Now().Add(wait).After(deadline) {
			return fmt.Errorf("gave up after %d attempts in %v: %w", n+1, time.Since(start).Round(time.Millisecond), err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (%v)", ctx.Err(), err)
		case <-time.After(wait):
		}
	}
}
