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
// per run of adjacent records of a pack. It is only a hint and returns
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
	var run Location // the run being gathered: Member, Pack, Offset
	var end int64    // and where it ends (exclusive)
	flush := func() {
		if end > run.Offset {
			p.prefetchExtent(run, end-run.Offset)
		}
	}
	for _, l := range ls {
		e := l.Offset + extent(l.Length)
		if l.Member == run.Member && l.Pack == run.Pack && end > run.Offset && l.Offset <= end {
			end = max(end, e)
			continue
		}
		flush()
		run, end = l, e
	}
	flush()
}

// prefetchExtent hints n bytes of the pack at at.Member, at.Pack from
// at.Offset.
func (p *Pool) prefetchExtent(at Location, n int64) {
	m, err := p.member(at.Member)
	if err != nil {
		return
	}
	pk, err := m.pack(at.Pack)
	if err != nil {
		return
	}
	if pf, ok := pk.f.(Prefetcher); ok {
		_ = pf.Prefetch(at.Offset, n)
	}
}
