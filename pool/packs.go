package pool

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
)

// PackInfo describes one pack file of a member.
type PackInfo struct {
	Member    uint16
	Pack      uint32
	Size      int64 // file size: where the next record would go
	Allocated int64 // bytes the file system holds for it (punched holes excluded)
	Active    bool  // the pack being appended to (never repacked or deleted)
}

// Packs lists the packs of member i, ascending.
func (p *Pool) Packs(i uint16) ([]PackInfo, error) {
	if p.closed.Load() {
		return nil, ErrClosed
	}
	m, err := p.member(i)
	if err != nil {
		return nil, fmt.Errorf("pool: packs: %w", err)
	}
	nums, err := m.listPacks()
	if err != nil {
		return nil, fmt.Errorf("pool: packs: %w", err)
	}
	out := make([]PackInfo, 0, len(nums))
	for _, n := range nums {
		pi, err := m.packInfo(n)
		if errors.Is(err, fs.ErrNotExist) {
			continue // deleted meanwhile
		}
		if err != nil {
			return nil, fmt.Errorf("pool: packs: member %d: %w", i, err)
		}
		out = append(out, pi)
	}
	return out, nil
}

func (m *member) packInfo(n uint32) (PackInfo, error) {
	if m.obj != nil {
		return m.objectPackInfo(n)
	}
	pi := PackInfo{Member: m.idx, Pack: n, Active: n == m.activeNum.Load() && !m.readOnly}
	f, err := m.fs.OpenFile(m.packPath(n), os.O_RDONLY, 0)
	if err != nil {
		return pi, err
	}
	defer f.Close()
	if pi.Size, err = f.Size(); err != nil {
		return pi, err
	}
	pi.Allocated, err = f.Allocated()
	return pi, err
}

// DeletePack deletes sealed pack n of member i, for repack. The caller
// guarantees that no metadata names a record in it and that no read can
// still use one (a read of a deleted pack fails, and the caller's readers
// fall back to another location). The active pack is refused.
func (p *Pool) DeletePack(i uint16, n uint32) error {
	if err := p.writable(); err != nil {
		return err
	}
	m, err := p.member(i)
	if err != nil {
		return fmt.Errorf("pool: delete pack: %w", err)
	}
	if m.obj != nil {
		return p.deleteObjectPack(m, n)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.active != nil && m.active.num == n {
		return fmt.Errorf("pool: delete pack %d of member %d: it is the active pack", n, i)
	}
	m.packsMu.Lock()
	if pk := m.packs[n]; pk != nil {
		pk.f.Close()
		delete(m.packs, n)
	}
	m.packsMu.Unlock()
	if err := m.fs.Remove(m.packPath(n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("pool: delete pack %d of member %d: %w", n, i, err)
	}
	if err := m.fs.SyncDir(m.packsPath()); err != nil {
		return fmt.Errorf("pool: delete pack %d of member %d: sync packs dir: %w", n, i, err)
	}
	return nil
}

// CanPunch reports whether member i punches freed records out of its packs
// (false on btrfs, when the probe failed, and for a gone member): where it
// cannot, freed records keep their space until repack deletes their pack.
func (p *Pool) CanPunch(i uint16) bool {
	m, err := p.member(i)
	return err == nil && m.canPunch
}
