package snap

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/snapfs/snapfs/store"
)

// Scheduled snapshots with retention, run by the daemon.
//
// A dataset's policy is a list of tiers, each an interval and a count:
// the named tiers hourly, daily, weekly and monthly, or any interval of
// whole seconds ("30s", "15m", "2h", "3d", "2w"). Periods are aligned in
// UTC: an interval tier's periods are multiples of the interval since the
// Unix epoch (so hourly and daily start at the top of the hour and at
// midnight UTC), weekly starts on Monday 00:00 UTC and monthly on the
// first of the month. A tier is due when it has taken no snapshot since
// its current period began. One snapshot serves every tier due at that
// moment; it is named
//
//	auto-YYYYMMDD-HHMMSSZ-TIER[+TIER...]
//
// e.g. auto-20261206-140000Z-hourly+daily: the time it was taken in UTC,
// fixed width, so ls .snapshots sorts automatic snapshots by time, then
// the tiers it serves, shortest period first. The tiers are also recorded
// in the snapshot's record (record.Auto), which is what retention reads:
// a hand-made snapshot named auto-... is never pruned, and renaming an
// automatic snapshot makes it hand-made.
//
// Retention (PlanPrune) works as sanoid's and snapper's timeline do: each
// tier keeps its newest COUNT automatic snapshots among those that served
// it; a snapshot kept by any tier stays, and one kept by none is pruned,
// unless it is held, was taken by hand, or has branches. A tier dropped
// from the policy keeps nothing; a cleared policy stops both taking and
// pruning.
//
// Nothing runs while the pool is not mounted (no daemon). A daemon's first
// pass, at mount, takes one catch-up snapshot for the tiers whose period
// began while it was away, not one per missed period: due is "no snapshot
// in the current period", which a single snapshot satisfies.
//
// The policy is a meta record sched/DATASET in the pool's metadata: it
// survives restarts and pool import, moves with volume rename and branch
// rename, and goes with the dataset. Its last-run times are written in
// the same batch as the snapshot that ran the tiers, so a crash never
// forgets a run or records one that did not happen.

const schedPrefix = "sched/"

func schedKey(ds string) string { return schedPrefix + ds }

// Errors of schedules.
var (
	// ErrBadTier: a tier is unparseable, its count is not positive, its
	// interval is under a second or not whole seconds, or it is given
	// twice (EINVAL).
	ErrBadTier = &snapError{"snap: invalid schedule tier", store.ErrInvalid}
	// ErrNoSchedule: the dataset has no schedule (ENOENT).
	ErrNoSchedule = &snapError{"snap: no schedule", store.ErrNotFound}
)

// MaxTierKeep bounds a tier's count.
const MaxTierKeep = 100000

// AutoPrefix starts the name of every automatic snapshot.
const AutoPrefix = "auto-"

// Tier is one tier of a schedule: take a snapshot every period, keep the
// newest Keep.
type Tier struct {
	Name  string        // hourly, daily, weekly, monthly, or an interval such as 15m
	Every time.Duration // the period; a month counts as 31 days here (monthly uses the calendar)
	Keep  int
}

func (t Tier) String() string { return fmt.Sprintf("%s=%d", t.Name, t.Keep) }

// namedTiers are the tiers known by name, with their period.
var namedTiers = map[string]time.Duration{
	"hourly": time.Hour, "daily": 24 * time.Hour, "weekly": 7 * 24 * time.Hour, "monthly": 31 * 24 * time.Hour,
}

// ParseTier parses NAME=COUNT: NAME a named tier or an interval of whole
// seconds, at least one second (Go duration syntax, plus d for days and w
// for weeks); COUNT a positive integer.
func ParseTier(s string) (Tier, error) {
	name, count, ok := strings.Cut(s, "=")
	if !ok {
		return Tier{}, fmt.Errorf("tier %q: no count (write it as %s=N, e.g. hourly=24 or 15m=4): %w", s, s, ErrBadTier)
	}
	t := Tier{}
	var err error
	if t.Name, t.Every, err = parseInterval(name); err != nil {
		return Tier{}, err
	}
	n, err := strconv.Atoi(count)
	switch {
	case err != nil:
		return Tier{}, fmt.Errorf("tier %q: count %q is not a number: %w", s, count, ErrBadTier)
	case n <= 0:
		return Tier{}, fmt.Errorf("tier %q: count %d must be at least 1: %w", s, n, ErrBadTier)
	case n > MaxTierKeep:
		return Tier{}, fmt.Errorf("tier %q: count %d is over %d: %w", s, n, MaxTierKeep, ErrBadTier)
	}
	t.Keep = n
	return t, nil
}

// parseInterval returns a tier's canonical name and period.
func parseInterval(name string) (string, time.Duration, error) {
	if d, ok := namedTiers[name]; ok {
		return name, d, nil
	}
	var d time.Duration
	var err error
	switch {
	case name == "":
		return "", 0, fmt.Errorf("tier with no interval: %w", ErrBadTier)
	case strings.HasSuffix(name, "d") || strings.HasSuffix(name, "w"):
		unit := 24 * time.Hour
		if strings.HasSuffix(name, "w") {
			unit *= 7
		}
		n, perr := strconv.Atoi(name[:len(name)-1])
		if perr != nil || n < 0 || n > 10000 {
			err = perr
			if err == nil {
				err = errors.New("out of range")
			}
		}
		d = time.Duration(n) * unit
	default:
		d, err = time.ParseDuration(name)
	}
	switch {
	case err != nil:
		return "", 0, fmt.Errorf("tier interval %q: not hourly, daily, weekly, monthly or an interval such as 30s, 15m, 2h, 1d: %w", name, ErrBadTier)
	case d < time.Second:
		return "", 0, fmt.Errorf("tier interval %q is under one second: %w", name, ErrBadTier)
	case d%time.Second != 0:
		return "", 0, fmt.Errorf("tier interval %q is not a whole number of seconds: %w", name, ErrBadTier)
	}
	return formatInterval(d), d, nil
}

// formatInterval writes d in its largest whole unit: 90m, 1h, 2d, 45s.
func formatInterval(d time.Duration) string {
	for _, u := range []struct {
		d time.Duration
		s string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}} {
		if d%u.d == 0 {
			return fmt.Sprintf("%d%s", d/u.d, u.s)
		}
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

// ParseTiers parses a schedule's tiers (ParseTier each) and orders them
// shortest period first. A tier given twice is refused.
func ParseTiers(args []string) ([]Tier, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("no tiers given (e.g. hourly=24 daily=7): %w", ErrBadTier)
	}
	var out []Tier
	seen := map[string]bool{}
	for _, a := range args {
		t, err := ParseTier(a)
		if err != nil {
			return nil, err
		}
		if seen[t.Name] {
			return nil, fmt.Errorf("tier %s given twice: %w", t.Name, ErrBadTier)
		}
		seen[t.Name] = true
		out = append(out, t)
	}
	sortTiers(out)
	return out, nil
}

func sortTiers(ts []Tier) {
	sort.SliceStable(ts, func(i, j int) bool {
		if ts[i].Every != ts[j].Every {
			return ts[i].Every < ts[j].Every
		}
		return ts[i].Name < ts[j].Name
	})
}

// periodStart returns when t's period holding now began.
func (t Tier) periodStart(now time.Time) time.Time {
	u := now.UTC()
	switch t.Name {
	case "weekly":
		d := time.Date(u.Year(), u.Month(), u.Day(), 0, 0, 0, 0, time.UTC)
		return d.AddDate(0, 0, -((int(d.Weekday()) + 6) % 7))
	case "monthly":
		return time.Date(u.Year(), u.Month(), 1, 0, 0, 0, 0, time.UTC)
	}
	ns, every := u.UnixNano(), int64(t.Every)
	m := ns % every
	if m < 0 {
		m += every
	}
	return time.Unix(0, ns-m).UTC()
}

// nextStart returns when t's period after the one holding now begins.
func (t Tier) nextStart(now time.Time) time.Time {
	p := t.periodStart(now)
	switch t.Name {
	case "weekly":
		return p.AddDate(0, 0, 7)
	case "monthly":
		return p.AddDate(0, 1, 0)
	}
	return p.Add(t.Every)
}

// Policy is a dataset's schedule.
type Policy struct {
	Dataset string
	Tiers   []Tier // shortest period first
	// Last is when each tier last took a snapshot (missing: never).
	Last map[string]time.Time
	Set  time.Time // when the policy was set
}

// Due returns the tiers due at now: those that took no snapshot since
// their current period began.
func (p Policy) Due(now time.Time) []Tier {
	var out []Tier
	for _, t := range p.Tiers {
		if last, ok := p.Last[t.Name]; !ok || last.Before(t.periodStart(now)) {
			out = append(out, t)
		}
	}
	return out
}

// Next returns when the policy next takes a snapshot, seen at now: now if
// a tier is due, else the earliest start of a tier's next period.
func (p Policy) Next(now time.Time) time.Time {
	if len(p.Due(now)) > 0 {
		return now
	}
	var next time.Time
	for _, t := range p.Tiers {
		if n := t.nextStart(now); next.IsZero() || n.Before(next) {
			next = n
		}
	}
	return next
}

// LastRun returns the newest of the tiers' last runs (zero if none ran).
func (p Policy) LastRun() time.Time {
	var last time.Time
	for _, l := range p.Last {
		if l.After(last) {
			last = l
		}
	}
	return last
}

// AutoName returns the name of the automatic snapshot taken at now for
// tiers.
func AutoName(now time.Time, tiers []Tier) string {
	names := make([]string, len(tiers))
	for i, t := range tiers {
		names[i] = t.Name
	}
	return AutoPrefix + now.UTC().Format("20060102-150405") + "Z-" + strings.Join(names, "+")
}

// policyRecord is the JSON of a sched/ meta record.
type policyRecord struct {
	Tiers []tierRecord     `json:"tiers"`
	Last  map[string]int64 `json:"last,omitempty"` // tier -> unix ns of its last run
	Set   int64            `json:"set"`
}

type tierRecord struct {
	Name string `json:"name"`
	Keep int    `json:"keep"`
}

func (p Policy) record() policyRecord {
	r := policyRecord{Set: p.Set.UnixNano()}
	for _, t := range p.Tiers {
		r.Tiers = append(r.Tiers, tierRecord{t.Name, t.Keep})
	}
	for n, l := range p.Last {
		if r.Last == nil {
			r.Last = map[string]int64{}
		}
		r.Last[n] = l.UnixNano()
	}
	return r
}

func policyOf(ds string, v []byte) (Policy, error) {
	var r policyRecord
	if err := json.Unmarshal(v, &r); err != nil {
		return Policy{}, fmt.Errorf("snap: schedule record of %s: %w", ds, store.ErrIO)
	}
	p := Policy{Dataset: ds, Set: time.Unix(0, r.Set), Last: map[string]time.Time{}}
	for _, tr := range r.Tiers {
		name, every, err := parseInterval(tr.Name)
		if err != nil {
			return Policy{}, fmt.Errorf("snap: schedule record of %s: %w", ds, err)
		}
		p.Tiers = append(p.Tiers, Tier{Name: name, Every: every, Keep: tr.Keep})
	}
	for n, l := range r.Last {
		p.Last[n] = time.Unix(0, l)
	}
	sortTiers(p.Tiers)
	return p, nil
}

// SetSchedule sets dataset ds's policy to tiers, replacing any. Tiers it
// had before keep their last run, so changing a count does not take a
// snapshot at once.
func (m *Manager) SetSchedule(ds string, tiers []Tier) (Policy, error) {
	if len(tiers) == 0 {
		return Policy{}, fmt.Errorf("no tiers given: %w", ErrBadTier)
	}
	seen := map[string]bool{}
	for _, t := range tiers {
		if t.Keep <= 0 || t.Every < time.Second || seen[t.Name] {
			return Policy{}, fmt.Errorf("tier %s: %w", t, ErrBadTier)
		}
		seen[t.Name] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.LiveView(ds); err != nil {
		return Policy{}, err
	}
	p := Policy{Dataset: ds, Tiers: append([]Tier(nil), tiers...), Last: map[string]time.Time{}, Set: time.Now()}
	sortTiers(p.Tiers)
	if old, err := m.scheduleLocked(ds); err == nil {
		for n, l := range old.Last {
			if seen[n] {
				p.Last[n] = l
			}
		}
	} else if !errors.Is(err, ErrNoSchedule) {
		return Policy{}, err
	}
	rj, _ := json.Marshal(p.record())
	if err := m.st.UpdateMeta(store.MetaOp{Key: schedKey(ds), Value: rj}); err != nil {
		return Policy{}, fmt.Errorf("schedule %s: %w", ds, err)
	}
	m.st.RequestCheckpoint("after schedule of " + ds)
	m.kickScheduler()
	return p, nil
}

// ClearSchedule removes dataset ds's policy: nothing more is taken or
// pruned; the automatic snapshots stay.
func (m *Manager) ClearSchedule(ds string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, err := m.LiveView(ds); err != nil {
		return err
	}
	if _, err := m.scheduleLocked(ds); err != nil {
		return err
	}
	if err := m.st.UpdateMeta(store.MetaOp{Key: schedKey(ds), Delete: true}); err != nil {
		return fmt.Errorf("clear schedule of %s: %w", ds, err)
	}
	m.st.RequestCheckpoint("after schedule clear of " + ds)
	return nil
}

// Schedule returns dataset ds's policy, or ErrNoSchedule.
func (m *Manager) Schedule(ds string) (Policy, error) {
	if _, err := m.LiveView(ds); err != nil {
		return Policy{}, err
	}
	return m.scheduleLocked(ds)
}

func (m *Manager) scheduleLocked(ds string) (Policy, error) {
	v, err := m.st.GetMeta(schedKey(ds))
	if errors.Is(err, store.ErrNotFound) {
		return Policy{}, fmt.Errorf("dataset %s: %w", ds, ErrNoSchedule)
	}
	if err != nil {
		return Policy{}, err
	}
	return policyOf(ds, v)
}

// Schedules lists every dataset's policy, by dataset path.
func (m *Manager) Schedules() ([]Policy, error) {
	var out []Policy
	var bad error
	err := m.st.ListMeta(schedPrefix, func(key string, value []byte) bool {
		p, err := policyOf(key[len(schedPrefix):], value)
		if err != nil {
			bad = err
			return false
		}
		out = append(out, p)
		return true
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return nil, fmt.Errorf("list schedules: %w", err)
	}
	return out, nil
}

// scheduleMoveOps moves dataset from's own policy record to dataset to
// (the policies of datasets below it move with subtreeRenameOps).
func (m *Manager) scheduleMoveOps(from, to string) ([]store.MetaOp, error) {
	v, err := m.st.GetMeta(schedKey(from))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return []store.MetaOp{{Key: schedKey(from), Delete: true}, {Key: schedKey(to), Value: v}}, nil
}

// scheduleDeleteOps deletes the policies of dataset ds and of every
// dataset below it.
func (m *Manager) scheduleDeleteOps(ds string) ([]store.MetaOp, error) {
	ops := []store.MetaOp{{Key: schedKey(ds), Delete: true}}
	err := m.st.ListMeta(schedKey(ds+"/"), func(key string, _ []byte) bool {
		ops = append(ops, store.MetaOp{Key: key, Delete: true})
		return true
	})
	return ops, err
}

// PruneCandidate is one snapshot of a dataset as retention sees it.
type PruneCandidate struct {
	Name     string
	Created  time.Time
	Auto     []string // tiers it served; empty: taken by hand
	Held     bool
	Branched bool
}

// PlanPrune returns the snapshots retention destroys, oldest first: the
// automatic ones that no tier of tiers keeps among its newest Keep, and
// that are neither held nor branched. Hand-made snapshots are never
// returned.
func PlanPrune(tiers []Tier, snaps []PruneCandidate) []string {
	byAge := append([]PruneCandidate(nil), snaps...)
	sort.SliceStable(byAge, func(i, j int) bool {
		if !byAge[i].Created.Equal(byAge[j].Created) {
			return byAge[i].Created.After(byAge[j].Created)
		}
		return byAge[i].Name > byAge[j].Name
	})
	kept := map[string]bool{}
	for _, t := range tiers {
		n := 0
		for _, s := range byAge {
			if n >= t.Keep {
				break
			}
			for _, a := range s.Auto {
				if a == t.Name {
					kept[s.Name] = true
					n++
					break
				}
			}
		}
	}
	var out []string
	for i := len(byAge) - 1; i >= 0; i-- {
		s := byAge[i]
		if len(s.Auto) == 0 || s.Held || s.Branched || kept[s.Name] {
			continue
		}
		out = append(out, s.Name)
	}
	return out
}

// RunReport is what one scheduling pass did.
type RunReport struct {
	Taken  []string // DATASET@NAME of each snapshot taken
	Pruned []string // DATASET@NAME of each snapshot destroyed by retention
	Errors []error
}

// RunSchedules runs one pass of every policy at now: for each dataset
// with tiers due, one snapshot serving them all; then retention. Errors
// of one dataset do not stop the others; they are reported.
func (m *Manager) RunSchedules(now time.Time) RunReport {
	var r RunReport
	ps, err := m.Schedules()
	if err != nil {
		r.Errors = append(r.Errors, err)
		return r
	}
	for _, p := range ps {
		if name, err := m.runPolicy(p.Dataset, now); err != nil {
			r.Errors = append(r.Errors, fmt.Errorf("scheduled snapshot of %s: %w", p.Dataset, err))
		} else if name != "" {
			r.Taken = append(r.Taken, p.Dataset+"@"+name)
		}
		pruned, errs := m.prune(p.Dataset)
		r.Pruned = append(r.Pruned, pruned...)
		r.Errors = append(r.Errors, errs...)
	}
	return r
}

// runPolicy takes dataset ds's snapshot for the tiers due at now, if any,
// and returns its name. The policy's last runs are written in the
// snapshot's own batch.
func (m *Manager) runPolicy(ds string, now time.Time) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, err := m.scheduleLocked(ds)
	if errors.Is(err, ErrNoSchedule) {
		return "", nil // cleared since the list
	}
	if err != nil {
		return "", err
	}
	due := p.Due(now)
	if len(due) == 0 {
		return "", nil
	}
	name := AutoName(now, due)
	if err := m.checkFreeLocked(ds, name); err != nil {
		// Taken this very second (a clock step back): due again later.
		return "", nil
	}
	tiers := make([]string, len(due))
	for i, t := range due {
		tiers[i] = t.Name
		p.Last[t.Name] = now
	}
	rj, _ := json.Marshal(p.record())
	if _, err := m.createLocked(ds, name, now, tiers, []store.MetaOp{{Key: schedKey(ds), Value: rj}}); err != nil {
		return "", err
	}
	return name, nil
}

// prune destroys dataset ds's snapshots its policy no longer keeps, one
// destroy at a time (each costs what snapshot destroy costs; the space
// comes back through the background reclaim walk).
func (m *Manager) prune(ds string) (pruned []string, errs []error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p, err := m.scheduleLocked(ds)
	if errors.Is(err, ErrNoSchedule) {
		return nil, nil
	}
	if err != nil {
		return nil, []error{err}
	}
	l, err := m.list(ds)
	if err != nil {
		return nil, []error{fmt.Errorf("retention of %s: %w", ds, err)}
	}
	branched := map[pinPoint]bool{}
	for _, s := range l {
		if s.Kind == KindBranch {
			branched[pinPoint{s.ParentLin, s.ParentEpoch}] = true
		}
	}
	var cands []PruneCandidate
	for _, s := range l {
		if s.Kind != KindSnapshot {
			continue
		}
		cands = append(cands, PruneCandidate{Name: s.Name, Created: s.Created, Auto: s.Auto,
			Held: len(s.Holds) > 0, Branched: branched[pinPoint{s.Lineage, s.Epoch}]})
	}
	for _, name := range PlanPrune(p.Tiers, cands) {
		if err := m.destroyLocked(ds, name); err != nil {
			errs = append(errs, fmt.Errorf("retention of %s: destroy %s: %w", ds, name, err))
			continue
		}
		m.logf("retention: destroyed %s@%s", ds, name)
		pruned = append(pruned, ds+"@"+name)
	}
	return pruned, errs
}

// schedRetry is how long the scheduler waits after a pass that failed.
const schedRetry = 5 * time.Second

// Scheduler runs the pool's schedules in the background: a first pass at
// once (the catch-up after the pool was not mounted), then a pass at each
// moment a tier becomes due. It rereads the policies at least every
// second, and at once when SetSchedule changes one.
type Scheduler struct {
	m    *Manager
	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// schedKick wakes the running scheduler of a Manager; guarded by its own
// mutex since SetSchedule and StartScheduler run on different goroutines.
type schedKick struct {
	mu sync.Mutex
	ch chan struct{}
}

func (m *Manager) kickScheduler() {
	m.kick.mu.Lock()
	ch := m.kick.ch
	m.kick.mu.Unlock()
	if ch != nil {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// StartScheduler starts running the schedules of m's pool; Stop ends it.
// report, if set, is called after each pass that did something.
func (m *Manager) StartScheduler(report func(RunReport)) *Scheduler {
	s := &Scheduler{m: m, stop: make(chan struct{}), done: make(chan struct{})}
	kick := make(chan struct{}, 1)
	m.kick.mu.Lock()
	m.kick.ch = kick
	m.kick.mu.Unlock()
	go func() {
		defer close(s.done)
		for {
			now := time.Now()
			r := m.RunSchedules(now)
			if report != nil && (len(r.Taken) > 0 || len(r.Pruned) > 0 || len(r.Errors) > 0) {
				report(r)
			}
			wait := time.Second
			if ps, err := m.Schedules(); err == nil {
				for _, p := range ps {
					if d := p.Next(time.Now()).Sub(time.Now()); d < wait {
						wait = max(d, 50*time.Millisecond)
					}
				}
			}
			if len(r.Errors) > 0 {
				// A snapshot that failed (no space, say) is due again at
				// once: retry, but not in a tight loop of log lines.
				wait = schedRetry
			}
			t := time.NewTimer(wait)
			select {
			case <-s.stop:
				t.Stop()
				return
			case <-kick:
				t.Stop()
			case <-t.C:
			}
		}
	}()
	return s
}

// Stop ends the scheduler and waits for a pass in progress.
func (s *Scheduler) Stop() {
	s.once.Do(func() { close(s.stop) })
	<-s.done
	s.m.kick.mu.Lock()
	s.m.kick.ch = nil
	s.m.kick.mu.Unlock()
}

// pinPoint is a pinned epoch of a lineage: a snapshot, or a branch's
// parent point.
type pinPoint struct {
	lin   uint32
	epoch uint64
}
