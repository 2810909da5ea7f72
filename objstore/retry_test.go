package objstore

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// TestRetryPolicy runs the retry loop on scripted attempts: which errors
// are retried, when it gives up, and that the caller's context wins.
func TestRetryPolicy(t *testing.T) {
	fast := RetryPolicy{Attempt: 200 * time.Millisecond, Total: time.Second, BaseDelay: time.Millisecond, MaxDelay: 20 * time.Millisecond}.withDefaults()
	permanent := errors.New("refused for good")
	for _, c := range []struct {
		name     string
		script   []error // attempt i returns script[i]; past the end, nil
		sleep    time.Duration
		wantN    int    // attempts made (0: do not check)
		wantErr  string // "" for success
		wantRetr bool   // the final error is transient
	}{
		{name: "first try", script: nil, wantN: 1},
		{name: "three transient then success", script: []error{transient(errors.New("503")), transient(errors.New("503")), transient(errors.New("reset"))}, wantN: 4},
		{name: "permanent at once", script: []error{permanent}, wantN: 1, wantErr: "refused for good"},
		{name: "transient then permanent", script: []error{transient(errors.New("500")), permanent}, wantN: 2, wantErr: "refused for good"},
		{name: "transient for ever is bounded", script: repeat(transient(errors.New("SlowDown")), 100000), wantErr: "gave up after", wantRetr: true},
		{name: "attempt timeout is transient", script: nil, sleep: time.Hour, wantErr: "no answer within", wantRetr: true},
	} {
		t.Run(c.name, func(t *testing.T) {
			n := 0
			start := time.Now()
			err := fast.retry(context.Background(), 0, func(ctx context.Context) error {
				n++
				if c.sleep > 0 {
					select {
					case <-ctx.Done():
						return ctx.Err()
					case <-time.After(c.sleep):
					}
				}
				if n-1 < len(c.script) {
					return c.script[n-1]
				}
				return nil
			})
			if took := time.Since(start); took > fast.Total+fast.Attempt+time.Second {
				t.Errorf("took %v, past the bound %v", took, fast.Total)
			}
			if c.wantN != 0 && n != c.wantN {
				t.Errorf("%d attempts, want %d", n, c.wantN)
			}
			if c.wantErr == "" {
				if err != nil {
					t.Fatalf("err = %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Fatalf("err = %v, want one with %q", err, c.wantErr)
			}
			if isTransient(err) != c.wantRetr {
				t.Errorf("transient(%v) = %v, want %v", err, isTransient(err), c.wantRetr)
			}
		})
	}
}

func repeat(err error, n int) []error {
	out := make([]error, n)
	for i := range out {
		out[i] = err
	}
	return out
}

// TestRetryCallerCancels: a canceled caller stops the loop during a wait,
// and the error says context.Canceled.
func TestRetryCallerCancels(t *testing.T) {
	p := RetryPolicy{BaseDelay: time.Second, MaxDelay: time.Second, Total: time.Minute}.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	n := 0
	go func() { time.Sleep(50 * time.Millisecond); cancel() }()
	start := time.Now()
	err := p.retry(ctx, 0, func(ctx context.Context) error {
		n++
		return transient(errors.New("503"))
	})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("cancel took %v", time.Since(start))
	}
}

// TestBackoffBounds: waits grow as BaseDelay*2^n up to MaxDelay and are
// drawn below that bound (full jitter).
func TestBackoffBounds(t *testing.T) {
	p := RetryPolicy{BaseDelay: 10 * time.Millisecond, MaxDelay: 300 * time.Millisecond}.withDefaults()
	for n, bound := range []time.Duration{10, 20, 40, 80, 160, 300, 300} {
		bound *= time.Millisecond
		var largest time.Duration
		for i := 0; i < 2000; i++ {
			d := p.backoff(n)
			if d < 0 || d > bound {
				t.Fatalf("backoff(%d) = %v, outside [0, %v]", n, d, bound)
			}
			largest = max(largest, d)
		}
		if largest < bound/2 {
			t.Errorf("backoff(%d): largest of 2000 draws %v, want near %v (jitter over the whole range)", n, largest, bound)
		}
	}
	if d := p.backoff(200); d > p.MaxDelay {
		t.Errorf("backoff(200) = %v past MaxDelay", d)
	}
}

// TestTransientExported: the exported test sees through wrapping, and
// the kinds that will not go away are not transient.
func TestTransientExported(t *testing.T) {
	down := fmt.Errorf("put s3://b/k: %w", MarkTransient(errors.New("503 SlowDown")))
	if !Transient(down) {
		t.Errorf("Transient(%v) = false", down)
	}
	for _, err := range []error{ErrNotFound, ErrShort, ErrAccessDenied, ErrCredentialsRefused, fmt.Errorf("x: %w", ErrNoCredentials), nil} {
		if Transient(err) {
			t.Errorf("Transient(%v) = true", err)
		}
	}
}
