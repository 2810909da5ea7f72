package pool

import (
	"container/list"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"sync"
	"time"

	"github.com/snapfs/snapfs/objstore"
)

// Read-ahead of object records
//
// Without it a sequential reader of a file whose chunks live on an
// object-store member pays one ranged Get, one round trip, per record
// (per 128 KiB chunk by default), with one Get in flight: the daemon
// then mostly waits (docs/benchmarks.md, "Object-store members"). The
// store's read-ahead already tells the pool which records it will read
// next (Prefetch, from store/cache.go's readahead and the scrub's); for
// a run of adjacent records in one sealed object the pool fetches them
// in spans of about objSpanBytes, each one ranged Get, with up to
// objSpanGets Gets in flight for the whole pool, and keeps the bytes in
// memory until the records are read. Read takes a record from a span
// that covers it, waiting for the span's Get when it is still under way,
// and verifies those bytes exactly as it verifies a Get of its own: a
// span is only a faster way to fetch, never a reason to trust.
//
// Memory is bounded: the spans of a pool, fetched or under way, hold at
// most objAheadBytes. A hint that does not fit, once landed spans have
// been evicted oldest first, is dropped (a hint is not a promise; the
// Read then makes its own Get). A span is freed once every record it was
// fetched for has been read, when it is evicted, when it has waited
// objSpanTTL unread, and when its object is deleted (DeletePack). A span
// whose Get failed (the store's client retried it already) is dropped,
// and the failure is the error of the reads that waited for it, as if
// each had made that Get itself: a store that is down costs a reader one
// wait, not two. Later reads make their own Gets.
//
// Objects are immutable and pack numbers are never reused, so a span
// can never hold stale bytes of an object; damaged bytes fail
// verification as they would from any Get.

// Read-ahead tunables.
const (
	// objSpanBytes is the size a span of adjacent records grows to (a
	// single larger record makes a span of its own).
	objSpanBytes = 1 << 20
	// objSpanGets bounds the span Gets in flight for a pool.
	objSpanGets = 4
	// objAheadBytes bounds the bytes of a pool's spans.
	objAheadBytes = 32 << 20
	// objSpanTTL is how long a landed span waits for its reader before
	// any new hint may evict it.
	objSpanTTL = 30 * time.Second
)

// spanKey names one sealed object of one member.
type spanKey struct {
	member uint16
	pack   uint32
}

// objSpan is one ranged Get of adjacent records of an object: the bytes
// [off, end) of the object, or fewer when the object ends sooner.
type objSpan struct {
	key      spanKey
	f        objFile // the object
	off, end int64
	born     time.Time
	done     chan struct{} // closed once data and err are set
	data     []byte
	err      error

	// Guarded by objAhead.mu.
	left    int           // records hinted in it and not read yet
	started bool          // its Get has begun (it left the queue)
	landed  bool          // done is closed
	el      *list.Element // in objAhead.order; nil once dropped
}

// objAhead is a pool's read-ahead of object records. Its zero value is
// ready to use (with the default tunables).
type objAhead struct {
	// spanBytes, budget and gets override the tunables when non-zero
	// (tests); set before first use.
	spanBytes, budget int64
	gets              int

	mu      sync.Mutex // guards the fields below
	ctx     context.Context
	cancel  context.CancelFunc
	queue   []*objSpan // admitted spans whose Get has not started, in need order
	workers int        // goroutines fetching spans (at most gets)
	used    int64      // bytes of the spans in order
	order   *list.List // of *objSpan, oldest first
	byPack  map[spanKey][]*objSpan
	closed  bool
	stats   AheadStats

	// inflight counts the spans admitted and not finished (tests wait
	// for it).
	inflight sync.WaitGroup
}

// AheadStats counts what the read-ahead of object records did.
type AheadStats struct {
	Spans    int64 // span Gets made
	Bytes    int64 // bytes they fetched
	Hits     int64 // record reads served from a span
	Waits    int64 // record reads that found their span's Get under way and waited
	Dropped  int64 // hinted records dropped for want of memory
	Failed   int64 // span Gets that failed
	Resident int64 // bytes of the spans kept now
}

// AheadStats reports the read-ahead of object records.
func (p *Pool) AheadStats() AheadStats {
	a := &p.ahead
	a.mu.Lock()
	defer a.mu.Unlock()
	s := a.stats
	s.Resident = a.used
	return s
}

// initLocked sets up a on first use. Caller holds mu.
func (a *objAhead) initLocked() {
	if a.order != nil {
		return
	}
	if a.spanBytes <= 0 {
		a.spanBytes = objSpanBytes
	}
	if a.budget <= 0 {
		a.budget = objAheadBytes
	}
	if a.gets <= 0 {
		a.gets = objSpanGets
	}
	a.ctx, a.cancel = context.WithCancel(context.Background())
	a.order = list.New()
	a.byPack = map[spanKey][]*objSpan{}
}

// prefetch starts fetching run, adjacent records (ascending offsets) of
// sealed object f of member mi, in spans; records already covered by a
// span are left out. It returns at once.
func (a *objAhead) prefetch(mi uint16, f objFile, run []Location) {
	if len(run) == 0 {
		return
	}
	key := spanKey{mi, run[0].Pack}
	a.mu.Lock()
	if a.closed {
		a.mu.Unlock()
		return
	}
	a.initLocked()
	var spans []*objSpan
	var cur *objSpan
	// flush admits the span being gathered, if any.
	flush := func() bool {
		if cur == nil {
			return true
		}
		ok := a.admitLocked(cur)
		if ok {
			spans = append(spans, cur)
		} else {
			a.stats.Dropped += int64(cur.left)
		}
		cur = nil
		return ok
	}
	for i, l := range run {
		lo, hi := l.Offset, l.Offset+int64(ReadBufSize(l.Length))
		if a.coveringLocked(key, lo, hi) != nil {
			if !flush() {
				a.stats.Dropped += int64(len(run) - i)
				break
			}
			continue
		}
		if cur != nil && cur.end >= lo-Align && hi-cur.off <= a.spanBytes {
			cur.end, cur.left = max(cur.end, hi), cur.left+1
			continue
		}
		if !flush() {
			a.stats.Dropped += int64(len(run) - i)
			break
		}
		cur = &objSpan{key: key, off: lo, end: hi, left: 1, done: make(chan struct{})}
	}
	flush()
	for _, sp := range spans {
		sp.f = f
	}
	a.queue = append(a.queue, spans...)
	for a.workers < a.gets && a.workers < len(a.queue) {
		a.workers++
		go a.work()
	}
	a.mu.Unlock()
}

// work fetches queued spans, oldest first, until the queue is empty:
// one of at most a.gets workers. Spans are queued in the order the hints
// came, which is the order readers need them, and a reader that waits
// for a span not started yet moves it to the front (read).
func (a *objAhead) work() {
	for {
		a.mu.Lock()
		if len(a.queue) == 0 {
			a.workers--
			a.mu.Unlock()
			return
		}
		sp := a.queue[0]
		a.queue = a.queue[1:]
		sp.started = true
		ctx, dropped := a.ctx, sp.el == nil
		a.mu.Unlock()
		if dropped || ctx.Err() != nil {
			// Its object was deleted, its member removed or the pool
			// closed while it waited: no Get.
			a.finish(sp, nil, errSpanDropped)
			continue
		}
		f := sp.f
		data, err := f.st.Get(ctx, f.key, sp.off, sp.end-sp.off)
		if errors.Is(err, objstore.ErrShort) {
			// The last record of an object may end before the range a
			// whole read asks for (Read copes, per record): take the
			// object's rest instead.
			data, err = f.st.Get(ctx, f.key, sp.off, -1)
		}
		a.finish(sp, data, objGetError(f, err))
	}
}

// errSpanDropped is the result of a span dropped before its Get began.
var errSpanDropped = errors.New("read-ahead span dropped before it was fetched")

// objGetError is what objFile.ReadAt makes of a failed Get, for a
// span's readers: a missing object reads as a missing file, a range past
// its end as a read past the end.
func objGetError(f objFile, err error) error {
	switch {
	case err == nil:
		return nil
	case errors.Is(err, objstore.ErrNotFound):
		return fmt.Errorf("%w: %w", err, fs.ErrNotExist)
	case errors.Is(err, objstore.ErrShort):
		return fmt.Errorf("%w: %w", err, io.EOF)
	}
	return fmt.Errorf("%s %s: %w", f.st, f.key, err)
}

// admitLocked adds span sp when the budget allows, evicting landed spans
// (oldest first) to make room; it reports whether sp was added. Caller
// holds mu.
func (a *objAhead) admitLocked(sp *objSpan) bool {
	size := sp.end - sp.off
	if size > a.budget {
		return false
	}
	now := time.Now()
	for e := a.order.Front(); e != nil; {
		next := e.Next()
		old := e.Value.(*objSpan)
		if old.landed && (a.used+size > a.budget || now.Sub(old.born) > objSpanTTL) {
			a.dropLocked(old)
		}
		e = next
	}
	if a.used+size > a.budget {
		return false
	}
	sp.born = now
	a.inflight.Add(1)
	sp.el = a.order.PushBack(sp)
	a.byPack[sp.key] = append(a.byPack[sp.key], sp)
	a.used += size
	return true
}

// finish records the result of sp's Get.
func (a *objAhead) finish(sp *objSpan, data []byte, err error) {
	defer a.inflight.Done()
	// A failed span is dropped before its waiters wake: a reader coming
	// after the failure makes its own Get instead of taking the error of
	// a Get it never waited for. done is closed after mu is released, and
	// readers read data and err only after done.
	a.mu.Lock()
	sp.data, sp.err = data, err
	sp.landed = true
	if err != nil {
		if err != errSpanDropped {
			a.stats.Failed++
		}
		a.dropLocked(sp)
	} else {
		a.stats.Spans++
		a.stats.Bytes += int64(len(data))
	}
	a.mu.Unlock()
	close(sp.done)
}

// coveringLocked returns a span of key covering [lo, hi), or nil. Caller
// holds mu.
func (a *objAhead) coveringLocked(key spanKey, lo, hi int64) *objSpan {
	for _, sp := range a.byPack[key] {
		if sp.off <= lo && hi <= sp.end {
			return sp
		}
	}
	return nil
}

// read fills buf with the bytes at off of object key from a span that
// covers them, waiting for its Get, and reports whether it did; the
// caller verifies them. When the span's Get failed, its error is the
// read's: the store's client has retried already, and a Get of the
// caller's own would only make it wait as long again.
func (a *objAhead) read(key spanKey, buf []byte, off int64) (bool, error) {
	a.mu.Lock()
	if a.order == nil {
		a.mu.Unlock()
		return false, nil
	}
	sp := a.coveringLocked(key, off, off+int64(len(buf)))
	if sp != nil && !sp.landed {
		a.stats.Waits++
		if !sp.started {
			a.toFrontLocked(sp) // a reader needs it now
		}
	}
	a.mu.Unlock()
	if sp == nil {
		return false, nil
	}
	<-sp.done
	// A span fetched to its object's shorter end may not cover the
	// whole range: the caller's own read then says what is wrong.
	ok := sp.err == nil && off+int64(len(buf)) <= sp.off+int64(len(sp.data))
	if ok {
		copy(buf, sp.data[off-sp.off:])
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if errors.Is(sp.err, errSpanDropped) {
		return false, nil // never fetched: the caller's own Get says why
	}
	if sp.err != nil {
		return false, sp.err // finish dropped it
	}
	if sp.left--; sp.left <= 0 {
		a.dropLocked(sp)
	}
	if ok {
		a.stats.Hits++
	}
	return ok, nil
}

// toFrontLocked moves queued span sp to the front of the queue. Caller
// holds mu.
func (a *objAhead) toFrontLocked(sp *objSpan) {
	for i, q := range a.queue {
		if q == sp {
			copy(a.queue[1:i+1], a.queue[:i])
			a.queue[0] = sp
			return
		}
	}
}

// dropLocked forgets span sp (once). Caller holds mu.
func (a *objAhead) dropLocked(sp *objSpan) {
	if sp.el == nil {
		return
	}
	a.order.Remove(sp.el)
	sp.el = nil
	a.used -= sp.end - sp.off
	l := a.byPack[sp.key]
	for i, s := range l {
		if s == sp {
			l = append(l[:i], l[i+1:]...)
			break
		}
	}
	if len(l) == 0 {
		delete(a.byPack, sp.key)
	} else {
		a.byPack[sp.key] = l
	}
}

// dropPack forgets every span of object key (deleted).
func (a *objAhead) dropPack(key spanKey) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for _, sp := range append([]*objSpan(nil), a.byPack[key]...) {
		a.dropLocked(sp)
	}
}

// dropMember forgets every span of member mi (removed).
func (a *objAhead) dropMember(mi uint16) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for key, l := range a.byPack {
		if key.member == mi {
			for _, sp := range append([]*objSpan(nil), l...) {
				a.dropLocked(sp)
			}
		}
	}
}

// close cancels the Gets under way and drops every span.
func (a *objAhead) close() {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.closed = true
	if a.order == nil {
		return
	}
	a.cancel()
	for a.order.Len() > 0 {
		a.dropLocked(a.order.Front().Value.(*objSpan))
	}
}
