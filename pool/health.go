package pool

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// Member health
//
// A member is in one of three states:
//
//   - ok: readable and writable.
//   - degraded: readable, but takes no new records: its file system is
//     read-only (at Open, or an append failed with EROFS), or an append or
//     fdatasync failed with an I/O error (the page cache state is then
//     unknown), or reads of several of its records failed with I/O errors
//     (readfaults.go; then ReadAny reads it last). Reads still go to it;
//     placement skips it; frees of its records wait (Freeable is false).
//     CheckMembers reports each once (a Degraded event).
//   - failed: gone: its directory or member.json is missing (a disk that
//     vanished, a file system unmounted, a directory removed). Nothing is
//     read from it or written to it.
//
// Failures are found on use (an append, fdatasync or read of the member's
// files failing with anything but a checksum mismatch or ENOSPC asks for a
// check) and by CheckMembers, which the store runs periodically and which
// looks at every member's member.json and file system. CheckMembers also
// brings members back: a gone member whose member.json is readable again
// (same pool, same member id), and a degraded member whose file system is
// writable again after EROFS, are reopened (their pack tails recovered as
// at Open) and used again at once. A member degraded by an I/O error is
// retried only when asked (RetryFailed: pool scrub does), since a disk
// that returns EIO would otherwise flap.
//
// The pool is ok when every member is ok; degraded when some member is
// not but records can still be written; failed when no member can take
// records, or when at least Copies members are gone (a record may have had
// every copy on them).

// Member and pool states, as Health reports them.
const (
	StateOK       = "ok"
	StateDegraded = "degraded"
	StateFailed   = "failed"
)

// errReadOnlyFS is the failure of a member on a read-only file system.
var errReadOnlyFS = fmt.Errorf("its file system is read-only: %w", syscall.EROFS)

// closeDelay is how long the files of a member replaced by CheckMembers
// (gone, or reopened) stay open for reads that picked it before.
var closeDelay = 10 * time.Second

// MemberHealth is the state of one member.
type MemberHealth struct {
	Index   uint16
	Path    string
	State   string // StateOK, StateDegraded or StateFailed
	Problem string // why it is not ok
	// ReadErrors counts its pack reads that failed with I/O errors since
	// it was opened; FailsReads is set when they degraded it
	// (readfaults.go).
	ReadErrors int64
	FailsReads bool
}

// Health is the state of the pool and of each (not removed) member.
type Health struct {
	State   string
	Members []MemberHealth
	// Gone counts failed members; Degraded counts degraded ones.
	Gone, Degraded int
}

// Health reports the state of the pool and its members as last seen (it
// does not check them: CheckMembers does).
func (p *Pool) Health() Health {
	h := Health{State: StateOK}
	writable := 0
	for _, m := range p.ms() {
		if m.cfg.Removed {
			continue
		}
		mh := MemberHealth{Index: m.idx, Path: m.cfg.Path, State: StateOK}
		mh.ReadErrors, mh.FailsReads = m.readErrors()
		switch {
		case m.cfg.Async:
			// A replica takes no counted copy: it degrades the pool
			// while it cannot receive, never fails it (asyncrep.go).
			if problem := p.replicaProblem(m); problem != "" {
				mh.State, mh.Problem = StateDegraded, problem
				h.Degraded++
			}
		case m.gone != nil:
			mh.State, mh.Problem = StateFailed, m.gone.Error()
			h.Gone++
		default:
			m.mu.Lock()
			failed := m.failed
			m.mu.Unlock()
			if failed != nil {
				mh.State, mh.Problem = StateDegraded, failed.Error()
				h.Degraded++
			} else if p.canAppend(m) || m.draining.Load() {
				writable++
			}
		}
		h.Members = append(h.Members, mh)
	}
	switch {
	case writable == 0 && !p.readOnly, h.Gone > 0 && h.Gone >= p.copies():
		h.State = StateFailed
	case h.Gone > 0 || h.Degraded > 0:
		h.State = StateDegraded
	}
	return h
}

// Freeable reports whether records on member i can be freed now: the
// member is present and writable. Records on a gone or degraded member
// must wait (the store parks them) or they would leak when it comes back.
func (p *Pool) Freeable(i uint16) bool {
	ms := p.ms()
	if int(i) >= len(ms) {
		return false
	}
	m := ms[i]
	if m.gone != nil || m.readOnly {
		return false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.failed == nil
}

// Gone reports whether member i is gone (missing or removed).
func (p *Pool) Gone(i uint16) bool {
	ms := p.ms()
	return int(i) >= len(ms) || ms[i].gone != nil
}

// Removed reports whether member i was removed from the pool.
func (p *Pool) Removed(i uint16) bool {
	ms := p.ms()
	return int(i) >= len(ms) || ms[i].cfg.Removed
}

// Copies is the configured number of copies of each new record.
func (p *Pool) Copies() int { return p.copies() }

// MemberEvent is a change CheckMembers made.
type MemberEvent struct {
	Index uint16
	Path  string
	// Lost: the member became gone (Err says why). Back: the member was
	// reopened and takes records again (Err, if set, says what failed
	// after); Tails are the valid records past its accounted offset, which
	// the caller frees unless metadata names them (as at Open).
	// Degraded: the member was found degraded (read-only, a failed write,
	// failing reads: Err says why), reported once per opening of it.
	Lost, Back, Degraded bool
	Err                  error
	Tails                []TailRecord
}

// CheckOptions configure CheckMembers.
type CheckOptions struct {
	// RetryFailed reopens members degraded by an I/O error too (not only
	// by a read-only file system).
	RetryFailed bool
}

// CheckWanted is signalled when an operation on a member failed in a way
// that may mean the member is gone or read-only; the store then runs
// CheckMembers without waiting for its timer.
func (p *Pool) CheckWanted() <-chan struct{} { return p.checkNow }

// suspect asks for a CheckMembers soon (non-blocking).
func (p *Pool) suspect(err error) {
	if err == nil || errors.Is(err, ErrChecksum) || isNoSpace(err) || errors.Is(err, ErrClosed) {
		return
	}
	select {
	case p.checkNow <- struct{}{}:
	default:
	}
}

// CheckMembers looks at every member and changes its state: a present
// member whose member.json can no longer be read at its path becomes gone
// (its open files are closed after closeDelay); a gone member whose
// member.json is back, or a degraded member whose file system is writable
// again (after EROFS, or after any failure with RetryFailed), is reopened.
// It returns what changed. Errors reopening a member leave it as it was
// and are reported in its event (Back false).
func (p *Pool) CheckMembers(o CheckOptions) []MemberEvent {
	if p.closed.Load() || p.readOnly {
		return nil
	}
	p.addMu.Lock()
	defer p.addMu.Unlock()
	cfg := p.Config()
	var evs []MemberEvent
	for _, m := range p.ms() {
		if m.cfg.Removed {
			continue
		}
		if ev, ok := p.checkMember(cfg, m, o); ok {
			evs = append(evs, ev)
		} else if ev, ok := m.newlyDegraded(); ok {
			evs = append(evs, ev)
		}
	}
	return evs
}

// newlyDegraded returns the Degraded event of a present member that
// failed since it was opened, the first time it is asked.
func (m *member) newlyDegraded() (MemberEvent, bool) {
	if m.gone != nil {
		return MemberEvent{}, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failed == nil || m.failReported {
		return MemberEvent{}, false
	}
	m.failReported = true
	return MemberEvent{Index: m.idx, Path: m.cfg.Path, Degraded: true, Err: m.failed}, true
}

func (p *Pool) checkMember(cfg Config, m *member, o CheckOptions) (MemberEvent, bool) {
	ev := MemberEvent{Index: m.idx, Path: m.cfg.Path}
	if m.gone == nil && m.rep != nil {
		// A replica whose store does not answer stays open, degraded:
		// its backlog waits in the stage and its uploader retries.
		m.rep.checkStore(m)
		return ev, false
	}
	_, err := readMemberJSONIn(p.fs, p.stores, cfg, m.cfg)
	if m.gone == nil {
		if err != nil {
			ev.Lost, ev.Err = true, err
			p.markGone(m, err)
			return ev, true
		}
		if !p.retryable(m, o) {
			return ev, false
		}
	} else if err != nil {
		return ev, false // still gone
	}
	nm, tails, err := p.openMember(m.cfg, nil, p.opts)
	if err == nil && nm.readOnly {
		nm.close()
		return ev, false // still read-only
	}
	if err == nil && nm.obj != nil && nm.failed != nil {
		nm.close()
		return ev, false // its store still refuses the stage's Puts
	}
	if err != nil {
		ev.Err = err
		return ev, true
	}
	p.replaceMember(m, nm)
	ev.Back, ev.Tails = true, tails
	// Its member.json may predate configuration changes made while it
	// was away: every live member gets the current one (generation plus
	// one), so an import finds it whichever member it reads.
	if err := p.writeMemberConfigs(p.Config(), ^uint16(0)); err != nil {
		ev.Err = fmt.Errorf("back, but updating member.json files failed: %w", err)
	}
	return ev, true
}

// retryable reports whether a present member is degraded and worth
// reopening now.
func (p *Pool) retryable(m *member, o CheckOptions) bool {
	m.mu.Lock()
	failed := m.failed
	m.mu.Unlock()
	if failed == nil {
		return false
	}
	if m.obj != nil {
		// Its member.json answered: the store is back. Reopening Puts the
		// stage (checkMember keeps the old member if that still fails).
		return true
	}
	if !o.RetryFailed && !errors.Is(failed, syscall.EROFS) {
		return false
	}
	st, err := p.fs.Statfs(m.dir)
	return err == nil && !st.ReadOnly && m.probeWritable() == nil
}

// probeWritable writes, syncs and removes a scratch file in the member's
// packs directory: a file system the kernel made read-only after errors
// (ext4's emergency read-only) may still say rw in statfs.
func (m *member) probeWritable() error {
	name := filepath.Join(m.packsPath(), ".write-probe")
	f, err := m.fs.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, werr := f.WriteAt(make([]byte, Align), 0)
	serr := f.Sync()
	f.Close()
	rerr := m.fs.Remove(name)
	return errors.Join(werr, serr, rerr)
}

// markGone replaces member m by a gone one. Appends and syncs still
// running on m fail (it is marked failed); its files are closed later.
func (p *Pool) markGone(m *member, why error) {
	gone := fmt.Errorf("%v: %w", why, ErrMemberGone)
	if errors.Is(why, ErrMemberGone) {
		gone = why
	}
	nm := &member{idx: m.idx, cfg: m.cfg, fs: p.fs, gone: gone, packs: map[uint32]*pack{}, dir: m.dir}
	nm.syncCond = sync.NewCond(&nm.syncMu)
	p.replaceMember(m, nm)
	m.mu.Lock()
	if m.failed == nil {
		m.failed = gone
	}
	m.mu.Unlock()
	m.syncMu.Lock()
	m.syncCond.Broadcast()
	m.syncMu.Unlock()
}

// replaceMember publishes nm in m's slot and closes m's files after
// closeDelay. Caller holds addMu.
func (p *Pool) replaceMember(m, nm *member) {
	p.spaceMu.Lock()
	l := append([]*member(nil), p.ms()...)
	l[m.idx] = nm
	p.members.Store(&l)
	p.space[m.idx] = memberSpace{err: nm.gone}
	p.spaceAt = time.Time{}
	p.spaceMu.Unlock()
	if m.gone == nil {
		time.AfterFunc(closeDelay, m.closeFiles)
	}
}

// closeFiles closes every file of a member no longer in use, without
// syncing (its disk may be gone).
func (m *member) closeFiles() {
	m.stopSealer()
	m.packsMu.Lock()
	for n, pk := range m.packs {
		pk.f.Close()
		delete(m.packs, n)
	}
	m.packsMu.Unlock()
	m.accMu.Lock()
	if m.accFile != nil {
		m.accFile.Close()
		m.accFile = nil
	}
	m.accMu.Unlock()
}
