package pool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"
)

// Slop reserve: Reserve keeps this much of each member free, for the
// space-freeing operations above (unlink, truncate, destroy, rollback need
// new metadata and tombstones): 1 % of the member, at least 8 MiB and at
// most 256 MiB.
const (
	slopMin = 8 << 20
	slopMax = 256 << 20
)

func slop(total int64) int64 { return min(max(total/100, slopMin), slopMax) }

// refreshSpace re-reads statfs of every live member if the cached view is
// older than spaceRefresh. Caller holds spaceMu.
func (p *Pool) refreshSpace() {
	now := time.Now()
	if !p.spaceAt.IsZero() && now.Sub(p.spaceAt) < spaceRefresh {
		return
	}
	p.spaceAt = now
	for i, m := range p.ms() {
		if m.gone != nil {
			p.space[i] = memberSpace{err: m.gone}
			continue
		}
		st, err := p.fs.Statfs(m.dir)
		p.space[i] = memberSpace{total: st.Total, free: st.Free, err: err}
	}
}

// avail is the member's free bytes as far as the pool knows. Caller holds
// spaceMu.
func (s memberSpace) avail() int64 {
	if s.err != nil {
		return 0
	}
	return max(0, s.free-s.appended)
}

func (p *Pool) noteAppended(i int, n int64) {
	p.spaceMu.Lock()
	p.space[i].appended += n
	p.spaceMu.Unlock()
}

// writableMember reports whether appends may go to member i.
func (p *Pool) writableMember(i int) bool {
	return p.canAppend(p.ms()[i])
}

// placement returns the members to try for one record, best first. The
// first copies entries are chosen by smooth weighted round robin over the
// writable members, weighted by free MiB, one per failure domain, so
// consecutive records stripe across members in proportion to free space;
// the rest follow as fallbacks in order of free space.
func (p *Pool) placement(copies int) []int {
	var cand []int
	for i := range p.ms() {
		if p.writableMember(i) && !p.ms()[i].cfg.Async { // a replica is never a counted copy
			cand = append(cand, i)
		}
	}
	p.spaceMu.Lock()
	defer p.spaceMu.Unlock()
	p.refreshSpace()
	weight := p.weights(cand)
	var total int64
	for _, i := range cand {
		total += weight[i]
	}
	for _, i := range cand {
		p.current[i] += weight[i]
	}
	order := make([]int, 0, len(cand))
	picked := map[int]bool{}
	domains := map[string]bool{}
	for len(order) < copies {
		best := -1
		for _, i := range cand {
			if !picked[i] && !domains[p.ms()[i].cfg.Domain] && (best < 0 || p.current[i] > p.current[best]) {
				best = i
			}
		}
		if best < 0 {
			break
		}
		p.current[best] -= total
		picked[best], domains[p.ms()[best].cfg.Domain] = true, true
		order = append(order, best)
	}
	rest := make([]int, 0, len(cand))
	for _, i := range cand {
		if !picked[i] {
			rest = append(rest, i)
		}
	}
	sort.SliceStable(rest, func(a, b int) bool { return weight[rest[a]] > weight[rest[b]] })
	return append(order, rest...)
}

// weights returns each candidate's placement weight: its free space as a
// percentage (1..100) of the largest, so members with about the same free
// space get exactly the same weight and alternate strictly, unperturbed by
// small statfs changes. Caller holds spaceMu.
func (p *Pool) weights(cand []int) map[int]int64 {
	var most int64
	for _, i := range cand {
		most = max(most, p.space[i].avail())
	}
	w := make(map[int]int64, len(cand))
	for _, i := range cand {
		w[i] = 100
		if most > 0 {
			w[i] = max(1, (100*p.space[i].avail()+most/2)/most)
		}
	}
	return w
}

// Reserve accounts n logical bytes of accepted-but-unflushed writes. It
// reserves n*Copies raw bytes and fails with an error wrapping ErrNoSpace
// when the members' free space (statfs, less what was appended since),
// minus the outstanding reservations and the slop reserve of each member,
// is below that.
func (p *Pool) Reserve(n int64) error {
	if err := p.writable(); err != nil {
		return err
	}
	need := n * int64(p.copies())
	p.spaceMu.Lock()
	defer p.spaceMu.Unlock()
	p.refreshSpace()
	var avail int64
	for i := range p.ms() {
		s := p.space[i]
		if s.err == nil {
			avail += max(0, s.avail()-slop(s.total))
		}
	}
	avail -= p.reserved
	if need > avail {
		return fmt.Errorf("pool: reserve %d bytes (x%d copies): %d available: %w", n, p.copies(), max(0, avail), ErrNoSpace)
	}
	p.reserved += need
	return nil
}

// Unreserve returns n logical bytes reserved by Reserve.
func (p *Pool) Unreserve(n int64) {
	p.spaceMu.Lock()
	defer p.spaceMu.Unlock()
	p.reserved = max(0, p.reserved-n*int64(p.copies()))
}

// Stats describes the pool's space.
type Stats struct {
	Members  []MemberStats
	Used     int64 // allocated bytes of all packs
	Free     int64 // free bytes of the members' file systems, each file system counted once
	Total    int64
	Packs    int
	Reserved int64 // outstanding Reserve bytes (raw)
	Appended int64 // records appended since Open
	Freed    int64 // records freed since Open
}

// MemberStats describes one member.
type MemberStats struct {
	Index    uint16
	Path     string
	Domain   string
	Gone     bool // directory or member.json missing
	Failed   string
	CanPunch bool  // false: reclaim needs repack (btrfs, or the probe failed)
	Draining bool  // being evacuated by remove-member
	Used     int64 // allocated bytes of its packs and metadata checkpoints
	// Checkpoints is the part of Used that holds metadata checkpoints.
	Checkpoints int64
	Free        int64 // statfs bytes available
	Total       int64 // statfs size
	Packs       int
	Appended    int64 // records appended since Open
	Freed       int64 // records freed since Open
	// Object-store members (Kind KindS3): Objects counts the sealed
	// objects (Packs counts them and the stage packs); Backlog is the
	// bytes staged and not yet Put, BacklogAge how long the oldest of
	// them has waited.
	Kind       string
	Objects    int
	Backlog    int64
	BacklogAge time.Duration
	// Async is set for an asynchronous replica (asyncrep.go);
	// ReplicaComplete once it holds every chunk (ReplicaComplete).
	Async, ReplicaComplete bool
}

// Space reports what statfs(2) of a mount needs: the members' free and
// total bytes (a file system shared by members counted once) and the
// outstanding reservations, without stat'ing every pack as Stats does.
func (p *Pool) Space() (free, total, reserved int64, err error) {
	if p.closed.Load() {
		return 0, 0, 0, ErrClosed
	}
	seen := map[uint64]bool{}
	for _, m := range p.ms() {
		if m.cfg.Removed || m.gone != nil {
			continue
		}
		sf, err := p.fs.Statfs(m.dir)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("pool: space of member %d: %w", m.idx, err)
		}
		if dev, err := m.fs.Device(m.dir); err != nil || !seen[dev] {
			free += sf.Free
			total += sf.Total
			if err == nil {
				seen[dev] = true
			}
		}
	}
	p.spaceMu.Lock()
	reserved = p.reserved
	p.spaceMu.Unlock()
	return free, total, reserved, nil
}

// Stats reports per-member and total space. It stats every pack file.
func (p *Pool) Stats() (Stats, error) {
	if p.closed.Load() {
		return Stats{}, ErrClosed
	}
	var st Stats
	seen := map[uint64]bool{} // devices already counted in Free and Total
	for _, m := range p.ms() {
		if m.cfg.Removed {
			continue
		}
		ms, err := p.memberStats(m)
		if err != nil {
			return st, err
		}
		st.Members = append(st.Members, ms)
		st.Used += ms.Used
		// Members on one file system share its free space: count it once.
		if dev, err := m.fs.Device(m.dir); err != nil || !seen[dev] {
			st.Free += ms.Free
			st.Total += ms.Total
			if err == nil {
				seen[dev] = true
			}
		}
		st.Packs += ms.Packs
		st.Appended += ms.Appended
		st.Freed += ms.Freed
	}
	p.spaceMu.Lock()
	st.Reserved = p.reserved
	p.spaceMu.Unlock()
	return st, nil
}

func (p *Pool) memberStats(m *member) (MemberStats, error) {
	ms := MemberStats{Index: m.idx, Path: m.cfg.Path, Domain: m.cfg.Domain, Kind: m.cfg.Kind, Gone: m.gone != nil, CanPunch: m.canPunch,
		Draining: m.draining.Load(), Appended: m.appended.Load(), Freed: m.freed.Load(), Async: m.cfg.Async}
	if m.gone != nil {
		return ms, nil
	}
	m.mu.Lock()
	if m.failed != nil {
		ms.Failed = m.failed.Error()
	}
	m.mu.Unlock()
	sf, err := p.fs.Statfs(m.dir)
	if err != nil {
		return ms, fmt.Errorf("pool: stats of member %d: %w", m.idx, err)
	}
	ms.Free, ms.Total = sf.Free, sf.Total
	if m.obj != nil {
		return m.objectStats(ms)
	}
	nums, err := m.listPacks()
	if err != nil {
		return ms, fmt.Errorf("pool: stats: %w", err)
	}
	for _, n := range nums {
		a, err := m.allocated(n)
		if err != nil {
			return ms, fmt.Errorf("pool: stats: %w", err)
		}
		ms.Used += a
		ms.Packs++
	}
	ms.Checkpoints = p.treeBytes(filepath.Join(m.cfg.Path, checkpointsDir))
	ms.Used += ms.Checkpoints
	return ms, nil
}

// treeBytes returns the bytes the files below dir take on disk (as du
// counts them: allocated blocks where the file system says, else the
// size rounded up to 4 KiB); a missing dir holds none.
func (p *Pool) treeBytes(dir string) int64 {
	ents, err := p.fs.ReadDir(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range ents {
		path := filepath.Join(dir, e.Name())
		if e.IsDir() {
			n += p.treeBytes(path)
			continue
		}
		fi, err := p.fs.Stat(path)
		if err != nil {
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		} else {
			n += (fi.Size() + Align - 1) / Align * Align
		}
	}
	return n
}

// allocated returns the allocated bytes of pack n without keeping it open.
func (m *member) allocated(n uint32) (int64, error) {
	if m.obj != nil {
		pi, err := m.objectPackInfo(n)
		if errors.Is(err, os.ErrNotExist) {
			return 0, nil
		}
		return pi.Allocated, err
	}
	m.packsMu.RLock()
	pk := m.packs[n]
	m.packsMu.RUnlock()
	if pk != nil {
		return pk.f.Allocated()
	}
	f, err := m.fs.OpenFile(m.packPath(n), os.O_RDONLY, 0)
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil // deleted meanwhile
	}
	if err != nil {
		return 0, err
	}
	defer f.Close()
	return f.Allocated()
}
