package store

// overlayPage is the granularity of an overlay: small writes are kept by
// 4 KiB page.
const overlayPage = 4096

// overlay holds the bytes written to a stored chunk whose old contents were
// not read: a small write into the middle of a file costs a copy, and the
// old bytes are read once, when the chunk is flushed (or when something
// needs the whole chunk sooner), instead of on every first write to a chunk.
// Random 4 KiB writes thus cost no read, and a chunk written many times
// between flushes is read and rewritten once.
//
// Each page holds one contiguous valid span [lo, hi); a write that would
// leave two spans in one page does not fit (fits reports it) and the chunk
// is materialized instead. An overlay is guarded by its inode's mu, like
// the chunkBuf that holds it.
type overlay struct {
	pages [][]byte // by page index: nil where nothing was written, else overlayPage bytes
	spans []span   // valid span of each page
	whole int      // pages valid over all their bytes
	mem   int64    // bytes allocated for pages
}

// span is the valid byte range [lo, hi) of one overlay page.
type span struct{ lo, hi uint16 }

func newOverlay(cs int64) *overlay {
	n := (cs + overlayPage - 1) / overlayPage
	return &overlay{pages: make([][]byte, n), spans: make([]span, n)}
}

// pageRange calls fn for each page that [c, c+n) of the chunk touches, with
// the page index, the range within the page and the range's offset in the
// written bytes.
func pageRange(c, n int64, fn func(p int, lo, hi int, at int64) bool) bool {
	for at := int64(0); at < n; {
		pos := c + at
		p := int(pos / overlayPage)
		lo := int(pos % overlayPage)
		hi := min(overlayPage, lo+int(n-at))
		if !fn(p, lo, hi, at) {
			return false
		}
		at += int64(hi - lo)
	}
	return true
}

// fits reports whether writing [c, c+n) leaves one span per page.
func (o *overlay) fits(c, n int64) bool {
	return pageRange(c, n, func(p, lo, hi int, _ int64) bool {
		sp := o.spans[p]
		return o.pages[p] == nil || (lo <= int(sp.hi) && hi >= int(sp.lo))
	})
}

// write copies data to [c, c+len(data)) of the chunk, which must fit, and
// returns the bytes of memory it allocated.
func (o *overlay) write(c int64, data []byte) int64 {
	var added int64
	pageRange(c, int64(len(data)), func(p, lo, hi int, at int64) bool {
		sp := &o.spans[p]
		wasWhole := o.pages[p] != nil && sp.lo == 0 && sp.hi == overlayPage
		if o.pages[p] == nil {
			o.pages[p] = make([]byte, overlayPage)
			*sp = span{uint16(lo), uint16(hi)}
			added += overlayPage
		}
		sp.lo, sp.hi = min(sp.lo, uint16(lo)), max(sp.hi, uint16(hi))
		if !wasWhole && sp.lo == 0 && sp.hi == overlayPage {
			o.whole++
		}
		copy(o.pages[p][lo:hi], data[at:])
		return true
	})
	o.mem += added
	return added
}

// covers reports whether every byte of a chunk of cs bytes was written.
func (o *overlay) covers(cs int64) bool {
	return int64(o.whole)*overlayPage >= cs
}

// apply copies the overlay's bytes over dst, which holds the chunk's bytes
// [from, from+len(dst)).
func (o *overlay) apply(dst []byte, from int64) {
	end := from + int64(len(dst))
	for p, pg := range o.pages {
		if pg == nil {
			continue
		}
		base := int64(p) * overlayPage
		lo, hi := max(base+int64(o.spans[p].lo), from), min(base+int64(o.spans[p].hi), end)
		if lo < hi {
			copy(dst[lo-from:hi-from], pg[lo-base:hi-base])
		}
	}
}

// extent is the end of the last written byte.
func (o *overlay) extent() int64 {
	for p := len(o.pages) - 1; p >= 0; p-- {
		if o.pages[p] != nil {
			return int64(p)*overlayPage + int64(o.spans[p].hi)
		}
	}
	return 0
}

// clip returns a copy of the overlay's pages that touch [lo, hi): what a
// reader of that range needs after it lets go of the inode's lock.
func (o *overlay) clip(lo, hi int64) *overlay {
	c := &overlay{pages: make([][]byte, len(o.pages)), spans: make([]span, len(o.spans))}
	for p := lo / overlayPage; p*overlayPage < hi && int(p) < len(o.pages); p++ {
		if pg := o.pages[p]; pg != nil {
			c.pages[p] = append([]byte(nil), pg...)
			c.spans[p] = o.spans[p]
		}
	}
	return c
}
