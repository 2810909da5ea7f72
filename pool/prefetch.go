package pool

import (
	"os"
	"sort"

	"golang.org/x/sys/unix"
)

// Prefetcher is a File that can start reading a range into memory without
// waiting for it. OSFS files do (posix_fadvise WILLNEED); files that
// cannot simply do not implement it.
type Prefetcher interface {
	Prefetch(off, n int64) error
}

// Prefetch hints the kernel to read [off, off+n) in the background.
func (f osFile) Prefetch(off, n int64) error {
	if err := unix.Fadvise(int(f.Fd()), off, n, unix.FADV_WILLNEED); err != nil {
		return &os.PathError{Op: "fadvise", Path: f.Name(), Err: err}
	}
	return nil
}

// Prefetch asks the members to start reading the records at locs in the
// background, so that Reads of them soon after find them in memory (a
// scrub reads ahead this way on every member at once). It sends one hint
// per run of adjacent records of a pack (for a sealed object: ranged
// Gets of the run into memory, objreadahead.go). It is only a hint and returns
// nothing: locations on gone members or in missing packs, and packs whose
// File is not a Prefetcher, are skipped, and the Read that follows reports
// whatever is wrong with them.
func (p *Pool) Prefetch(locs []Location) {
	if p.closed.Load() || len(locs) == 0 {
		return
	}
	ls := append([]Location(nil), locs...)
	sort.Slice(ls, func(i, j int) bool {
		a, b := ls[i], ls[j]
		if a.Member != b.Member {
			return a.Member < b.Member
		}
		if a.Pack != b.Pack {
			return a.Pack < b.Pack
		}
		return a.Offset < b.Offset
	})
	start := 0    // ls[start:] begins the run being gathered
	var end int64 // and where it ends (exclusive)
	flush := func(i int) {
		if i > start {
			p.prefetchRun(ls[start:i], end-ls[start].Offset)
		}
		start = i
	}
	for i, l := range ls {
		e := l.Offset + extent(l.Length)
		if i > start && l.Member == ls[start].Member && l.Pack == ls[start].Pack && l.Offset <= end {
			end = max(end, e)
			continue
		}
		flush(i)
		end = e
	}
	flush(len(ls))
}

// prefetchRun hints run, adjacent records of one pack spanning n bytes:
// a sealed object's are fetched into memory by the read-ahead of object
// records (objreadahead.go), a pack file's are hinted to the kernel.
func (p *Pool) prefetchRun(run []Location, n int64) {
	at := run[0]
	m, err := p.member(at.Member)
	if err != nil {
		return
	}
	pk, err := m.pack(at.Pack)
	if err != nil {
		return
	}
	if of, ok := pk.f.(objFile); ok {
		p.ahead.prefetch(at.Member, of, run)
		return
	}
	p.prefetchExtent(pk, at.Offset, n)
}

// prefetchExtent hints n bytes of pack pk from off to the kernel.
func (p *Pool) prefetchExtent(pk *pack, off, n int64) {
	if pf, ok := pk.f.(Prefetcher); ok {
		_ = pf.Prefetch(off, n)
	}
}
