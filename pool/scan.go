package pool

import (
	"context"
	"errors"
	"fmt"
	"io/fs"

	"github.com/snapfs/snapfs/objstore"
)

// Records calls fn for every valid record (header and payload CRC check,
// this pool) in every pack of member i, in pack and offset order, until fn
// returns false. It reads each pack from its start, skipping invalid or
// punched blocks (Align steps), and never changes a pack: it is the full
// pack-versus-chunkref scan of fsck (DESIGN-NOTES 15), O(pool data). A
// pack deleted while it runs is skipped. Records of the active pack
// appended after its size was taken are not seen.
func (p *Pool) Records(i uint16, fn func(TailRecord) bool) error {
	if p.closed.Load() {
		return ErrClosed
	}
	m, err := p.member(i)
	if err != nil {
		return fmt.Errorf("pool: records: %w", err)
	}
	nums, err := m.listPacks()
	if err != nil {
		return fmt.Errorf("pool: records: %w", err)
	}
	var buf []byte
	for _, n := range nums {
		pk, err := m.pack(n)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return fmt.Errorf("pool: records: %w", err)
		}
		if of, ok := pk.f.(objFile); ok { // one Get of the whole object
			b, err := of.st.Get(context.Background(), of.key, 0, -1)
			if errors.Is(err, objstore.ErrNotFound) {
				continue // deleted meanwhile
			}
			if err != nil {
				return fmt.Errorf("pool: records: member %d: %w", i, err)
			}
			pk = &pack{num: n, f: bytesFile{b}}
		}
		size, err := pk.f.Size()
		if err != nil {
			return fmt.Errorf("pool: records: member %d: size of pack %d: %w", i, n, err)
		}
		for off := int64(0); off+HeaderSize <= size; {
			h, ok, err := m.readValid(pk, off, size, p.id, &buf)
			if err != nil {
				return fmt.Errorf("pool: records: %w", err)
			}
			if !ok {
				off += Align
				continue
			}
			if !fn(TailRecord{Loc: Location{Member: m.idx, Pack: n, Offset: off, Length: h.logical}, Hash: h.hash}) {
				return nil
			}
			off += h.extent()
		}
	}
	return nil
}

// Domain returns the failure domain of member i ("" if there is none).
func (p *Pool) Domain(i uint16) string {
	ms := p.ms()
	if int(i) >= len(ms) {
		return ""
	}
	return ms[i].cfg.Domain
}

// AppendCopy writes one more copy of the record holding data under hash h
// on a writable member whose failure domain holds none of the locations in
// avoid (the copies that stay), for scrub repair and for raising a chunk's
// copies. The copy is not durable until Sync.
func (p *Pool) AppendCopy(h Hash, data []byte, avoid []Location) (Location, error) {
	if err := p.writable(); err != nil {
		return Location{}, err
	}
	if len(data) > MaxRecord {
		return Location{}, fmt.Errorf("pool: append %d bytes: larger than %d", len(data), MaxRecord)
	}
	domains := map[string]bool{}
	for _, l := range avoid {
		domains[p.Domain(l.Member)] = true
	}
	rec := encodeRecordVersion(nil, p.writeVersion, p.id, h, data)
	var errs []error
	for _, i := range p.placement(len(p.ms())) {
		m := p.ms()[i]
		if domains[m.cfg.Domain] {
			continue
		}
		at, err := m.append(rec)
		if err != nil {
			p.suspect(err)
			errs = append(errs, err)
			continue
		}
		m.appended.Add(1)
		p.noteAppended(i, int64(len(rec)))
		return Location{Member: m.idx, Pack: at.pack, Offset: at.off, Length: uint32(len(data))}, nil
	}
	if len(errs) == 0 {
		return Location{}, fmt.Errorf("pool: append copy: no writable member outside the %d domain(s) already used: %w", len(domains), ErrMemberGone)
	}
	return Location{}, fmt.Errorf("pool: append copy: %w", errors.Join(errs...))
}
