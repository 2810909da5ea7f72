package pool

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"time"
)

// Removing a member is done in three steps, driven by the store (which
// knows what references each record):
//
//  1. CheckRemove refuses what cannot work: the last member, a removal
//     that leaves fewer failure domains than Copies, or evacuated bytes
//     that do not fit on the other members.
//  2. SetDraining(i, true) stops placement on the member (Append and
//     AppendCopy go elsewhere); the store then copies every record the
//     metadata names there to other members and swaps the locations.
//     Nothing on disk records the draining state: a crash leaves the
//     member an ordinary member, every record readable from wherever the
//     metadata last pointed, and the removal can simply be run again.
//  3. ForgetMember(i) marks the member removed in every member.json and
//     in pool.json, and deletes the pool's files from its directory.
//
// A removed member keeps its slot (and index) in Config.Members with
// Removed set, so the member index in every stored Location stays valid:
// indices are never reused, and a location on a removed member reads as
// ErrMemberGone (a stale location hint falls back to the chunkref).

// errMemberRemoved is the error of a removed member's slot.
var errMemberRemoved = fmt.Errorf("member was removed from the pool: %w", ErrMemberGone)

// Sentinel errors of member removal.
var (
	// ErrLastMember: the pool's only member cannot be removed.
	ErrLastMember = errors.New("pool: cannot remove the last member")
	// ErrTooFewDomains: removing the member leaves fewer failure domains
	// than Copies.
	ErrTooFewDomains = errors.New("pool: too few failure domains left")
	// ErrNotMember: the directory is not a member of the pool.
	ErrNotMember = errors.New("pool: not a member")
)

// MemberIndex returns the index of the (not removed) member whose
// directory (or, for an object-store member, URL) is dir.
func (p *Pool) MemberIndex(dir string) (uint16, error) {
	if isObjectURL(dir) {
		return p.memberIndexByURL(dir)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return 0, fmt.Errorf("pool: member %s: %w", dir, err)
	}
	for _, mc := range p.Config().Members {
		if mc.Path == abs && !mc.Removed {
			return mc.Index, nil
		}
	}
	return 0, refuse(ErrNotMember, "pool: %s is not a member of pool %s", abs, p.dir)
}

// CheckRemove reports why member i cannot be removed, given that need
// bytes of records (header and padding included) must be copied off it to
// other members: it is the last member, the others span fewer failure
// domains than Copies, or their free space (less each one's slop reserve
// and the outstanding reservations; a file system shared by several
// members counted once) is below need.
func (p *Pool) CheckRemove(i uint16, need int64) error {
	if err := p.writable(); err != nil {
		return err
	}
	cfg := p.Config()
	if int(i) >= len(cfg.Members) || cfg.Members[i].Removed {
		return fmt.Errorf("pool: member %d: %w", i, ErrNotMember)
	}
	path := cfg.Members[i].Path
	domains := map[string]bool{}
	others, replicas := 0, 0
	for _, mc := range cfg.Members {
		switch {
		case mc.Index == i || mc.Removed:
		case mc.Async:
			replicas++ // never counted: no copy moves there
		default:
			others++
			domains[mc.Domain] = true
		}
	}
	if cfg.Members[i].Async {
		return nil // its copies are never counted: nothing moves, nothing is refused
	}
	if others == 0 && replicas > 0 {
		return refuse(ErrLastMember, "pool: %s is the only member besides asynchronous replicas, which never hold the counted copies (add another member first)", path)
	}
	if others == 0 {
		return refuse(ErrLastMember, "pool: %s is the only member of the pool (add another member first)", path)
	}
	if len(domains) < cfg.Copies {
		return refuse(ErrTooFewDomains, "pool: removing %s leaves %d failure domain(s) for %d copies (add a member in another domain, or lower copies, first)",
			path, len(domains), cfg.Copies)
	}
	avail := p.availExcept(i)
	if need > avail {
		return refuse(ErrNoSpace, "pool: removing %s needs %s free on the other members, they have %s (add a member first)",
			path, sizeString(need), sizeString(avail))
	}
	return nil
}

// availExcept is the space Reserve would see on every member but i.
func (p *Pool) availExcept(i uint16) int64 {
	p.spaceMu.Lock()
	defer p.spaceMu.Unlock()
	p.spaceAt = time.Time{}
	p.refreshSpace()
	seen := map[uint64]bool{}
	var avail int64
	for j, m := range p.ms() {
		s := p.space[j]
		if uint16(j) == i || s.err != nil || !p.canAppend(m) {
			continue
		}
		if dev, err := m.fs.Device(m.dir); err == nil {
			if seen[dev] {
				continue
			}
			seen[dev] = true
		}
		avail += max(0, s.avail()-slop(s.total))
	}
	return max(0, avail-p.reserved)
}

// canAppend reports whether appends may go to member m: present, not
// draining, not failed, with an active pack.
func (p *Pool) canAppend(m *member) bool {
	if m.gone != nil || m.draining.Load() {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.failed == nil && m.active != nil
}

// SetDraining turns placement on member i off (on) or back on (off).
// While draining, no new record lands there.
func (p *Pool) SetDraining(i uint16, on bool) {
	if ms := p.ms(); int(i) < len(ms) {
		ms[i].draining.Store(on)
	}
}

// Draining reports whether member i is draining.
func (p *Pool) Draining(i uint16) bool {
	ms := p.ms()
	return int(i) < len(ms) && ms[i].draining.Load()
}

// ForgetMember removes member i from the configuration: every other live
// member's member.json gets the new configuration (generation plus one),
// then pool.json (the pool's authority), then the member's own files
// (packs, accounted offset, member.json, in that order) are deleted from
// its directory. The caller guarantees that no metadata names a record on
// it any more. Reads of it fail with ErrMemberGone from now on.
func (p *Pool) ForgetMember(i uint16) error {
	if err := p.writable(); err != nil {
		return err
	}
	p.addMu.Lock()
	defer p.addMu.Unlock()
	cfg := p.Config()
	if int(i) >= len(cfg.Members) || cfg.Members[i].Removed {
		return fmt.Errorf("pool: forget member %d: %w", i, ErrNotMember)
	}
	cfg.Members[i].Removed = true
	if err := p.writeMemberConfigs(cfg, i); err != nil {
		return err
	}
	if err := writeConfig(p.fs, p.dir, cfg, false); err != nil {
		return fmt.Errorf("pool: forget member: write %s: %w", poolFile, err)
	}
	old := p.ms()[i]
	p.cfgMu.Lock()
	p.cfg.Members = cfg.Members
	p.cfgMu.Unlock()
	p.spaceMu.Lock()
	l := append([]*member(nil), p.ms()...)
	l[i] = &member{idx: i, cfg: cfg.Members[i], fs: p.fs, gone: errMemberRemoved, packs: map[uint32]*pack{}}
	p.members.Store(&l)
	p.space[i] = memberSpace{err: errMemberRemoved}
	p.spaceMu.Unlock()
	if old.cfg.Kind == KindS3 {
		if old.gone == nil {
			old.close()
		} else {
			old = &member{idx: i, cfg: old.cfg, fs: p.fs, dir: filepath.Join(p.dir, stageDir, old.cfg.ID)}
		}
		return p.forgetObjectFiles(old) // objremove.go: the stage, the objects
	}
	if old.gone != nil {
		return nil // nothing left to delete on a missing directory
	}
	old.close()
	return old.deleteFiles()
}

// writeMemberConfigs writes cfg into the member.json of every live member
// but skip, with the generation after the highest one found.
func (p *Pool) writeMemberConfigs(cfg Config, skip uint16) error {
	var gen uint64
	var live []MemberConfig
	for _, mc := range cfg.Members {
		if mc.Removed || mc.Index == skip {
			continue
		}
		mj, err := readMemberJSONIn(p.fs, p.stores, cfg, mc)
		if errors.Is(err, ErrMemberGone) {
			continue // a missing member keeps its old member.json
		}
		if err != nil {
			return err
		}
		gen = max(gen, mj.Generation)
		live = append(live, mc)
	}
	gen++
	for _, mc := range live {
		if mc.Kind == KindS3 {
			st, err := p.stores.get(mc)
			if err == nil {
				err = putMemberJSON(st, cfg, mc, gen)
			}
			if err != nil {
				return fmt.Errorf("pool: update member %d: %w", mc.Index, err)
			}
			continue
		}
		if err := writeMemberGen(p.fs, cfg, mc, gen, false); err != nil {
			return fmt.Errorf("pool: update %s: %w", filepath.Join(mc.Path, memberFile), err)
		}
	}
	return nil
}

// deleteFiles removes what the pool kept in a forgotten member's
// directory: its packs, the packs directory, the accounted file and, last,
// member.json, so the directory can join a pool again.
func (m *member) deleteFiles() error {
	nums, err := m.listPacks()
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("pool: clean removed member %s: %w", m.cfg.Path, err)
	}
	var errs []error
	for _, n := range nums {
		if err := m.fs.Remove(m.packPath(n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	for _, name := range []string{m.packsPath(), filepath.Join(m.cfg.Path, accountedFil), filepath.Join(m.cfg.Path, memberFile)} {
		if err := m.fs.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pool: member %s was removed, but cleaning its directory failed: %w", m.cfg.Path, err)
	}
	return nil
}

// sizeString formats n bytes in binary units (the pool does not import
// the CLI's humanize).
func sizeString(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for v := n / unit; v >= unit; v /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// refusal is an error whose message says all: it matches its sentinel
// kind with errors.Is without repeating the sentinel's text.
type refusal struct {
	msg  string
	kind error
}

func (e *refusal) Error() string { return e.msg }
func (e *refusal) Unwrap() error { return e.kind }

func refuse(kind error, format string, args ...any) error {
	return &refusal{msg: fmt.Sprintf(format, args...), kind: kind}
}
