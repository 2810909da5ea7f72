package snap

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snapfs/snapfs/store"
)

func TestParseTiers(t *testing.T) {
	tests := []struct {
		in   string // space-separated arguments
		want string // the tiers as parsed, shortest period first, or "error"
	}{
		{"hourly=24 daily=7 weekly=4 monthly=12", "hourly=24 daily=7 weekly=4 monthly=12"},
		{"monthly=12 hourly=24", "hourly=24 monthly=12"},
		{"15m=4 hourly=48", "15m=4 hourly=48"},
		{"30s=2", "30s=2"},
		{"2h=3", "2h=3"},
		{"1h30m=2", "90m=2"},
		{"60s=1", "1m=1"},
		{"3d=2 1w=1", "3d=2 7d=1"},
		{"1s=1", "1s=1"},
		{"hourly=0", "error"},
		{"hourly=-1", "error"},
		{"hourly=x", "error"},
		{"hourly", "error"},
		{"30s", "error"},
		{"500ms=3", "error"},
		{"0s=3", "error"},
		{"1500ms=3", "error"},
		{"yearly=1", "error"},
		{"=3", "error"},
		{"15m=4 15m=5", "error"},
		{"60m=1 1h=2", "error"},
		{"hourly=100001", "error"},
		{"", "error"},
	}
	for _, tc := range tests {
		ts, err := ParseTiers(strings.Fields(tc.in))
		if tc.want == "error" {
			if err == nil || !errors.Is(err, ErrBadTier) || !errors.Is(err, store.ErrInvalid) {
				t.Errorf("ParseTiers(%q) = %v, %v; want ErrBadTier", tc.in, ts, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("ParseTiers(%q): %v", tc.in, err)
			continue
		}
		var got []string
		for _, x := range ts {
			got = append(got, x.String())
		}
		if strings.Join(got, " ") != tc.want {
			t.Errorf("ParseTiers(%q) = %q, want %q", tc.in, strings.Join(got, " "), tc.want)
		}
	}
}

func mustTier(t *testing.T, s string) Tier {
	t.Helper()
	x, err := ParseTier(s)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

func utc(s string) time.Time {
	x, err := time.Parse("2006-01-02 15:04:05", s)
	if err != nil {
		panic(err)
	}
	return x
}

// TestPeriods: where each tier's current period starts and the next one
// begins, in UTC.
func TestPeriods(t *testing.T) {
	tests := []struct {
		tier, now, start, next string
	}{
		{"hourly=1", "2026-12-06 13:45:10", "2026-12-06 13:00:00", "2026-12-06 14:00:00"},
		{"daily=1", "2026-12-06 13:45:10", "2026-12-06 00:00:00", "2026-12-07 00:00:00"},
		{"weekly=1", "2026-12-06 13:45:10", "2026-11-30 00:00:00", "2026-12-07 00:00:00"}, // a Sunday: the week began Monday
		{"weekly=1", "2026-11-30 00:00:00", "2026-11-30 00:00:00", "2026-12-07 00:00:00"},
		{"monthly=1", "2026-12-06 13:45:10", "2026-12-01 00:00:00", "2027-01-01 00:00:00"},
		{"monthly=1", "2026-02-28 23:59:59", "2026-02-01 00:00:00", "2026-03-01 00:00:00"},
		{"15m=1", "2026-12-06 13:45:10", "2026-12-06 13:45:00", "2026-12-06 14:00:00"},
		{"2s=1", "2026-12-06 13:45:11", "2026-12-06 13:45:10", "2026-12-06 13:45:12"},
		{"2h=1", "2026-12-06 13:45:10", "2026-12-06 12:00:00", "2026-12-06 14:00:00"},
	}
	for _, tc := range tests {
		tr := mustTier(t, tc.tier)
		now := utc(tc.now)
		if got := tr.periodStart(now); !got.Equal(utc(tc.start)) {
			t.Errorf("%s at %s: period starts %s, want %s", tc.tier, tc.now, got, tc.start)
		}
		if got := tr.nextStart(now); !got.Equal(utc(tc.next)) {
			t.Errorf("%s at %s: next period %s, want %s", tc.tier, tc.now, got, tc.next)
		}
	}
}

// TestDueAndName: which tiers are due given their last runs, and the name
// of the one snapshot that serves them all.
func TestDueAndName(t *testing.T) {
	tiers, err := ParseTiers([]string{"hourly=24", "daily=7", "15m=4"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		last string // tier=time,... ("" never ran)
		now  string
		want string // due tiers' snapshot name, or "" for none
	}{
		{"", "2026-12-06 13:45:10", "auto-20261206-134510Z-15m+hourly+daily"},
		{"15m=2026-12-06 13:45:00,hourly=2026-12-06 13:00:05,daily=2026-12-06 00:00:00", "2026-12-06 13:45:10", ""},
		{"15m=2026-12-06 13:45:00,hourly=2026-12-06 13:00:05,daily=2026-12-06 00:00:00", "2026-12-06 14:00:00", "auto-20261206-140000Z-15m+hourly"},
		// Away for two days: one snapshot catches every tier up.
		{"15m=2026-12-04 10:15:00,hourly=2026-12-04 10:00:00,daily=2026-12-04 00:00:00", "2026-12-06 09:01:02", "auto-20261206-090102Z-15m+hourly+daily"},
		// A tier added later is due at once, alone.
		{"15m=2026-12-06 13:45:00,hourly=2026-12-06 13:00:05", "2026-12-06 13:50:00", "auto-20261206-135000Z-daily"},
	}
	for _, tc := range tests {
		p := Policy{Tiers: tiers, Last: map[string]time.Time{}}
		if tc.last != "" {
			for _, kv := range strings.Split(tc.last, ",") {
				k, v, _ := strings.Cut(kv, "=")
				p.Last[k] = utc(v)
			}
		}
		now := utc(tc.now)
		due := p.Due(now)
		got := ""
		if len(due) > 0 {
			got = AutoName(now, due)
		}
		if got != tc.want {
			t.Errorf("last %q at %s: %q, want %q", tc.last, tc.now, got, tc.want)
		}
		if next := p.Next(now); len(due) > 0 != next.Equal(now) {
			t.Errorf("last %q at %s: next run %s with %d due", tc.last, tc.now, next, len(due))
		}
	}
	// Names sort by time whatever the tiers.
	a := AutoName(utc("2026-12-06 09:59:59"), []Tier{mustTier(t, "daily=1")})
	b := AutoName(utc("2026-12-06 10:00:00"), []Tier{mustTier(t, "15m=1")})
	if !(a < b) {
		t.Errorf("%s does not sort before %s", a, b)
	}
}

// TestPlanPrune: snapshot sets in, the set retention destroys out.
func TestPlanPrune(t *testing.T) {
	// A snapshot is NAME:MINUTE:TIERS[:held|:branched]; MINUTE orders them.
	tests := []struct {
		name   string
		policy string
		snaps  string
		want   string
	}{
		{"nothing to prune", "2s=3", "a:1:2s b:2:2s c:3:2s", ""},
		{"oldest go", "2s=3", "a:1:2s b:2:2s c:3:2s d:4:2s e:5:2s", "a b"},
		{"held stays, not counted out", "2s=3", "a:1:2s:held b:2:2s c:3:2s d:4:2s e:5:2s", "b"},
		{"branched stays", "2s=3", "a:1:2s:branched b:2:2s c:3:2s d:4:2s e:5:2s", "b"},
		{"hand-made never", "2s=1", "m:1: a:2:2s n:3: b:4:2s", "a"},
		{"one snapshot serves two tiers", "hourly=2 daily=2",
			"a:1:hourly+daily b:2:hourly c:3:hourly d:4:hourly+daily e:5:hourly", "b c"},
		{"kept by the longer tier", "hourly=1 daily=2",
			"a:1:hourly+daily b:2:hourly+daily c:3:hourly d:4:hourly+daily e:5:hourly", "a c"},
		{"tier dropped from the policy keeps nothing", "hourly=2",
			"a:1:daily b:2:hourly c:3:hourly d:4:hourly", "a b"},
		{"everything held", "1m=1", "a:1:1m:held b:2:1m:held c:3:1m", ""},
		{"empty", "hourly=1", "", ""},
	}
	base := utc("2026-12-06 00:00:00")
	for _, tc := range tests {
		tiers, err := ParseTiers(strings.Fields(tc.policy))
		if err != nil {
			t.Fatal(err)
		}
		var cands []PruneCandidate
		for _, s := range strings.Fields(tc.snaps) {
			f := strings.Split(s, ":")
			var min int
			fmt.Sscan(f[1], &min)
			c := PruneCandidate{Name: f[0], Created: base.Add(time.Duration(min) * time.Minute)}
			if f[2] != "" {
				c.Auto = strings.Split(f[2], "+")
			}
			if len(f) > 3 {
				c.Held, c.Branched = f[3] == "held", f[3] == "branched"
			}
			cands = append(cands, c)
		}
		// The plan does not depend on the order it is given.
		sort.Slice(cands, func(i, j int) bool { return cands[i].Name > cands[j].Name })
		got := strings.Join(PlanPrune(tiers, cands), " ")
		if got != tc.want {
			t.Errorf("%s: pruned %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestRunSchedulesFakeClock runs a 2s=3 policy pass by pass with a fake
// clock: each pass in a new period takes one snapshot, retention keeps
// three automatic ones, and never destroys the held, hand-made or
// branched snapshots; after a long absence one catch-up snapshot serves
// every due tier.
func TestRunSchedulesFakeClock(t *testing.T) {
	m, st, live := newTest(t)
	writeFile(t, st, live, "f", "v0")
	tiers, err := ParseTiers([]string{"2s=3", "hourly=2"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.SetSchedule("vol", tiers); err != nil {
		t.Fatal(err)
	}
	now := utc("2026-12-06 13:00:00.5")
	autos := func() []string {
		l, err := m.List("vol")
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, s := range l {
			if len(s.Auto) > 0 {
				out = append(out, s.Name)
			}
		}
		return out
	}
	r := m.RunSchedules(now)
	if len(r.Taken) != 1 || r.Taken[0] != "vol@auto-20261206-130000Z-2s+hourly" || len(r.Errors) > 0 {
		t.Fatalf("first pass: %+v", r)
	}
	// The same period again: nothing due.
	if r := m.RunSchedules(now.Add(time.Second)); len(r.Taken) != 0 {
		t.Fatalf("second pass in the same period took %v", r.Taken)
	}
	if err := m.Hold("vol", "auto-20261206-130000Z-2s+hourly", "audit"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create("vol", "by-hand"); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 6; i++ {
		now = now.Add(2 * time.Second)
		writeFile(t, st, live, "f", fmt.Sprintf("v%d", i))
		r := m.RunSchedules(now)
		if len(r.Taken) != 1 || len(r.Errors) > 0 {
			t.Fatalf("pass %d: %+v", i, r)
		}
		if i == 2 {
			if _, err := m.CreateBranch("vol", strings.TrimPrefix(r.Taken[0], "vol@"), "br"); err != nil {
				t.Fatal(err)
			}
		}
	}
	got := strings.Join(autos(), " ")
	want := "auto-20261206-130000Z-2s+hourly auto-20261206-130004Z-2s auto-20261206-130008Z-2s auto-20261206-130010Z-2s auto-20261206-130012Z-2s"
	if got != want {
		t.Fatalf("automatic snapshots:\n got %s\nwant %s", got, want)
	}
	if _, err := m.Entry("vol", "by-hand"); err != nil {
		t.Fatalf("hand-made snapshot pruned: %v", err)
	}
	// Away for a day: one catch-up snapshot for both tiers.
	now = now.Add(26 * time.Hour)
	r = m.RunSchedules(now)
	if len(r.Taken) != 1 || !strings.HasSuffix(r.Taken[0], "Z-2s+hourly") {
		t.Fatalf("catch-up pass: %+v", r)
	}
	if r := m.RunSchedules(now.Add(time.Millisecond)); len(r.Taken) != 0 {
		t.Fatalf("more than one catch-up snapshot: %v", r.Taken)
	}
	// The policy recorded the run in the snapshot's batch.
	p, err := m.Schedule("vol")
	if err != nil || !p.Last["2s"].Equal(now) || !p.Last["hourly"].Equal(now) {
		t.Fatalf("policy after catch-up: %+v %v", p, err)
	}
	// Released, the first snapshot is still one of hourly's newest two;
	// the next hourly run prunes it.
	if err := m.Release("vol", "auto-20261206-130000Z-2s+hourly", "audit"); err != nil {
		t.Fatal(err)
	}
	if r := m.RunSchedules(now.Add(time.Millisecond)); len(r.Pruned) != 0 {
		t.Fatalf("pruned a snapshot hourly keeps: %+v", r)
	}
	now = now.Add(time.Hour)
	r = m.RunSchedules(now)
	found := false
	for _, x := range r.Pruned {
		found = found || x == "vol@auto-20261206-130000Z-2s+hourly"
	}
	if !found {
		t.Fatalf("released snapshot not pruned: %+v", r)
	}
	// Clearing stops taking and pruning.
	if err := m.ClearSchedule("vol"); err != nil {
		t.Fatal(err)
	}
	before := autos()
	if r := m.RunSchedules(now.Add(2 * time.Hour)); len(r.Taken)+len(r.Pruned) != 0 {
		t.Fatalf("cleared policy ran: %+v", r)
	}
	if got := autos(); len(got) != len(before) {
		t.Fatalf("cleared policy pruned: %v -> %v", before, got)
	}
	if err := m.ClearSchedule("vol"); !errors.Is(err, ErrNoSchedule) {
		t.Fatalf("clear twice: %v", err)
	}
	if err := m.DestroyBranch("vol", "br"); err != nil {
		t.Fatal(err)
	}
}

// TestScheduleStorage: a policy is refused on a snapshot and on what does
// not exist, survives a reopen of the Manager, moves with a branch
// rename and a volume rename, and goes with the dataset.
func TestScheduleStorage(t *testing.T) {
	m, st, _ := newTest(t)
	tiers, _ := ParseTiers([]string{"hourly=24", "daily=7"})
	if _, err := m.Create("vol", "s1"); err != nil {
		t.Fatal(err)
	}
	for _, ds := range []string{"vol@s1", "vol/s1", "nosuch", "vol/nosuch", ""} {
		if _, err := m.SetSchedule(ds, tiers); err == nil {
			t.Errorf("schedule on %q accepted", ds)
		}
	}
	if _, err := m.SetSchedule("vol", nil); !errors.Is(err, ErrBadTier) {
		t.Errorf("empty policy: %v", err)
	}
	if _, err := m.CreateBranch("vol", "s1", "b"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.SetSchedule("vol", tiers); err != nil {
		t.Fatal(err)
	}
	if _, err := m.SetSchedule("vol/b", tiers[:1]); err != nil {
		t.Fatal(err)
	}
	list := func() string {
		ps, err := m.Schedules()
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, p := range ps {
			var ts []string
			for _, x := range p.Tiers {
				ts = append(ts, x.String())
			}
			out = append(out, p.Dataset+":"+strings.Join(ts, ","))
		}
		return strings.Join(out, " ")
	}
	if got := list(); got != "vol:hourly=24,daily=7 vol/b:hourly=24" {
		t.Fatalf("schedules: %s", got)
	}
	// A fresh Manager (as after a restart) reads the same policies.
	Release(st)
	m = ManagerFor(st)
	if got := list(); got != "vol:hourly=24,daily=7 vol/b:hourly=24" {
		t.Fatalf("schedules after restart: %s", got)
	}
	if err := m.Rename("vol", "b", "c"); err != nil {
		t.Fatal(err)
	}
	if got := list(); got != "vol:hourly=24,daily=7 vol/c:hourly=24" {
		t.Fatalf("schedules after branch rename: %s", got)
	}
	if err := m.RenameVolume("vol", "home"); err != nil {
		t.Fatal(err)
	}
	if got := list(); got != "home:hourly=24,daily=7 home/c:hourly=24" {
		t.Fatalf("schedules after volume rename: %s", got)
	}
	if err := m.DestroyBranch("home", "c"); err != nil {
		t.Fatal(err)
	}
	if got := list(); got != "home:hourly=24,daily=7" {
		t.Fatalf("schedules after branch destroy: %s", got)
	}
	if err := m.DestroyVolume("home", true); err != nil {
		t.Fatal(err)
	}
	if got := list(); got != "" {
		t.Fatalf("schedules after volume destroy: %s", got)
	}
}

// TestPlanPruneRandom checks retention's rules on random snapshot sets
// and policies: hand-made, held and branched snapshots are never pruned;
// each tier's newest Keep are never pruned; everything pruned is kept by
// no tier; and pruning again what is left prunes nothing. The seed is
// printed on failure.
func TestPlanPruneRandom(t *testing.T) {
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 0))
	names := []string{"1s", "2s", "5m", "hourly", "daily", "weekly"}
	base := utc("2026-12-06 00:00:00")
	for round := range 500 {
		var tiers []Tier
		for _, n := range names {
			if rng.IntN(2) == 0 {
				tiers = append(tiers, mustTier(t, fmt.Sprintf("%s=%d", n, 1+rng.IntN(4))))
			}
		}
		var cands []PruneCandidate
		for i := range rng.IntN(30) {
			c := PruneCandidate{Name: fmt.Sprintf("s%02d", i), Created: base.Add(time.Duration(rng.IntN(100)) * time.Second)}
			if rng.IntN(5) > 0 {
				for _, n := range names {
					if rng.IntN(3) == 0 {
						c.Auto = append(c.Auto, n)
					}
				}
			}
			c.Held, c.Branched = rng.IntN(8) == 0, rng.IntN(10) == 0
			cands = append(cands, c)
		}
		pruned := map[string]bool{}
		for _, n := range PlanPrune(tiers, cands) {
			pruned[n] = true
		}
		fail := func(format string, args ...any) {
			t.Fatalf("seed %d round %d: %s\ntiers %v\nsnapshots %+v", seed, round, fmt.Sprintf(format, args...), tiers, cands)
		}
		kept := map[string]bool{}
		for _, tr := range tiers {
			var members []PruneCandidate
			for _, c := range cands {
				for _, a := range c.Auto {
					if a == tr.Name {
						members = append(members, c)
					}
				}
			}
			sort.Slice(members, func(i, j int) bool {
				if !members[i].Created.Equal(members[j].Created) {
					return members[i].Created.After(members[j].Created)
				}
				return members[i].Name > members[j].Name
			})
			for i := 0; i < len(members) && i < tr.Keep; i++ {
				kept[members[i].Name] = true
			}
		}
		var left []PruneCandidate
		for _, c := range cands {
			switch {
			case pruned[c.Name] && (len(c.Auto) == 0 || c.Held || c.Branched):
				fail("pruned %s: hand-made, held or branched", c.Name)
			case pruned[c.Name] && kept[c.Name]:
				fail("pruned %s, one of a tier's newest", c.Name)
			case !pruned[c.Name] && !kept[c.Name] && len(c.Auto) > 0 && !c.Held && !c.Branched:
				fail("kept %s, which no tier keeps", c.Name)
			}
			if !pruned[c.Name] {
				left = append(left, c)
			}
		}
		if again := PlanPrune(tiers, left); len(again) > 0 {
			fail("a second pass prunes %v", again)
		}
	}
}

// TestSchedulerRandom runs a random policy through random clock steps
// (inside a period, across one, across many), with holds placed and
// released, hand-made snapshots and writes between passes, and checks
// after every pass: one snapshot at most, taken exactly when a tier was
// due; held and hand-made snapshots never go; every automatic snapshot
// left is held or kept by a tier. The store's Check runs at the end. The
// seed is printed on failure.
func TestSchedulerRandom(t *testing.T) {
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewPCG(uint64(seed), 1))
	m, st, live := newTest(t)
	var args []string
	for _, n := range []string{"1s", "3s", "1m", "hourly", "daily"} {
		if rng.IntN(2) == 0 || len(args) == 0 {
			args = append(args, fmt.Sprintf("%s=%d", n, 1+rng.IntN(3)))
		}
	}
	tiers, err := ParseTiers(args)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := m.SetSchedule("vol", tiers); err != nil {
		t.Fatal(err)
	}
	fail := func(step int, format string, a ...any) {
		t.Helper()
		t.Fatalf("seed %d, policy %v, step %d: %s", seed, args, step, fmt.Sprintf(format, a...))
	}
	now := utc("2026-12-06 23:59:00")
	held := map[string]bool{}
	handMade := map[string]bool{}
	for step := range 60 {
		switch rng.IntN(4) {
		case 0:
			now = now.Add(time.Duration(rng.IntN(900)) * time.Millisecond)
		case 1:
			now = now.Add(time.Duration(1+rng.IntN(5)) * time.Second)
		case 2:
			now = now.Add(time.Duration(rng.IntN(3)) * time.Hour)
		default:
			now = now.Add(time.Duration(rng.IntN(120)) * time.Second)
		}
		if rng.IntN(4) == 0 {
			writeFile(t, st, live, "f", fmt.Sprint(step))
		}
		if rng.IntN(10) == 0 {
			n := fmt.Sprintf("hand%d", step)
			if _, err := m.Create("vol", n); err != nil {
				t.Fatal(err)
			}
			handMade[n] = true
		}
		pol, err := m.Schedule("vol")
		if err != nil {
			t.Fatal(err)
		}
		due := pol.Due(now)
		r := m.RunSchedules(now)
		if len(r.Errors) > 0 {
			fail(step, "errors %v", r.Errors)
		}
		if len(r.Taken) > 1 || (len(r.Taken) == 1) != (len(due) > 0) {
			fail(step, "took %v with %d tiers due", r.Taken, len(due))
		}
		if len(r.Taken) == 1 && r.Taken[0] != "vol@"+AutoName(now, due) {
			fail(step, "took %v, want %s", r.Taken, AutoName(now, due))
		}
		l, err := m.List("vol")
		if err != nil {
			t.Fatal(err)
		}
		have := map[string]bool{}
		var cands []PruneCandidate
		for _, s := range l {
			have[s.Name] = true
			cands = append(cands, PruneCandidate{Name: s.Name, Created: s.Created, Auto: s.Auto, Held: len(s.Holds) > 0})
		}
		for n := range held {
			if !have[n] {
				fail(step, "held snapshot %s was pruned", n)
			}
		}
		for n := range handMade {
			if !have[n] {
				fail(step, "hand-made snapshot %s was pruned", n)
			}
		}
		if again := PlanPrune(tiers, cands); len(again) > 0 {
			fail(step, "left %v that no tier keeps", again)
		}
		// Hold or release one automatic snapshot now and then.
		if len(l) > 0 && rng.IntN(3) == 0 {
			s := l[rng.IntN(len(l))]
			if len(s.Auto) > 0 {
				if held[s.Name] {
					if err := m.Release("vol", s.Name, "t"); err != nil {
						t.Fatal(err)
					}
					delete(held, s.Name)
				} else {
					if err := m.Hold("vol", s.Name, "t"); err != nil {
						t.Fatal(err)
					}
					held[s.Name] = true
				}
			}
		}
	}
}

// TestSchedulerRuns starts the background scheduler on a real clock: a
// policy set while it runs is acted on at once (the kick), a 1s=2 tier
// keeps two automatic snapshots, and Stop ends it (nothing is taken
// after).
func TestSchedulerRuns(t *testing.T) {
	m, _, _ := newTest(t)
	var mu sync.Mutex
	var taken []string
	s := m.StartScheduler(func(r RunReport) {
		mu.Lock()
		taken = append(taken, r.Taken...)
		mu.Unlock()
		for _, err := range r.Errors {
			t.Errorf("scheduler: %v", err)
		}
	})
	stopped := false
	defer func() {
		if !stopped {
			s.Stop()
		}
	}()
	time.Sleep(100 * time.Millisecond) // a first pass with no policy
	tiers, _ := ParseTiers([]string{"1s=2"})
	set := time.Now()
	if _, err := m.SetSchedule("vol", tiers); err != nil {
		t.Fatal(err)
	}
	for {
		mu.Lock()
		n := len(taken)
		mu.Unlock()
		if n > 0 {
			break
		}
		if time.Since(set) > 500*time.Millisecond {
			t.Fatal("no snapshot 500 ms after the policy was set: the scheduler was not woken")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(3500 * time.Millisecond)
	s.Stop()
	stopped = true
	mu.Lock()
	n := len(taken)
	mu.Unlock()
	if n < 3 {
		t.Fatalf("%d snapshots in about 3.5 s of a 1s tier", n)
	}
	l, err := m.List("vol")
	if err != nil {
		t.Fatal(err)
	}
	if len(l) != 2 {
		t.Fatalf("%d snapshots kept by 1s=2: %v", len(l), l)
	}
	time.Sleep(1200 * time.Millisecond)
	if l2, _ := m.List("vol"); len(l2) != 2 || l2[1].Name != l[1].Name {
		t.Fatalf("the stopped scheduler still ran: %v -> %v", l, l2)
	}
}
