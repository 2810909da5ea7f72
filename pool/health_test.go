package pool

import (
	"bytes"
	"errors"
	"os"
	"syscall"
	"testing"
)

func TestMemberVanishesAndComesBack(t *testing.T) {
	p := NewTestPoolOptions(t, 3, CreateOptions{Copies: 2}, OpenOptions{})
	data := payload(1, 9000)
	var before [][]Location
	for i := 0; i < 6; i++ {
		l := appendT(t, p, data)
		if err := p.Sync(l); err != nil {
			t.Fatal(err)
		}
		before = append(before, l)
	}
	if evs := p.CheckMembers(CheckOptions{}); len(evs) != 0 {
		t.Fatalf("healthy pool: events %+v", evs)
	}
	remount := UnmountTestMember(t, p, 1)
	evs := p.CheckMembers(CheckOptions{})
	if len(evs) != 1 || !evs[0].Lost || evs[0].Index != 1 || !errors.Is(evs[0].Err, ErrMemberGone) {
		t.Fatalf("events after unmount: %+v", evs)
	}
	if h := p.Health(); h.State != StateDegraded || h.Members[1].State != StateFailed || h.Members[0].State != StateOK {
		t.Fatalf("health: %+v", h)
	}
	// Reads go around it; new records land on the other two, with both copies.
	for _, l := range before {
		if got, err := p.ReadAny(l, hashOf(data), nil); err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read around the gone member: %v", err)
		}
	}
	for i := 0; i < 6; i++ {
		l := appendT(t, p, payload(10+i, 5000))
		if len(l) != 2 || l[0].Member == 1 || l[1].Member == 1 {
			t.Fatalf("append while member 1 is gone: %v", l)
		}
	}
	if p.Freeable(1) || !p.Freeable(0) {
		t.Fatal("Freeable: gone member 1 must not be freeable, member 0 must")
	}
	if ents, _ := os.ReadDir(p.Config().Members[1].Path); len(ents) != 0 {
		t.Fatalf("the pool wrote into the empty mount point: %v", ents)
	}
	remount()
	evs = p.CheckMembers(CheckOptions{})
	if len(evs) != 1 || !evs[0].Back || evs[0].Index != 1 {
		t.Fatalf("events after remount: %+v", evs)
	}
	if h := p.Health(); h.State != StateOK {
		t.Fatalf("health after return: %+v", h)
	}
	// Its member.json is brought up to date with the others'.
	var gens []uint64
	for _, mc := range p.Config().Members {
		mj, err := readMemberJSON(OSFS{}, p.Config(), mc)
		if err != nil {
			t.Fatal(err)
		}
		gens = append(gens, mj.Generation)
	}
	if gens[0] != gens[1] || gens[1] != gens[2] || gens[0] < 2 {
		t.Fatalf("member.json generations after the return: %v", gens)
	}
	for _, l := range before {
		for _, x := range l {
			readT(t, p, x, data)
		}
	}
	on1 := 0
	for i := 0; i < 9; i++ {
		for _, x := range appendT(t, p, payload(20+i, 5000)) {
			if x.Member == 1 {
				on1++
			}
		}
	}
	if on1 == 0 {
		t.Fatal("no record placed on the member that came back")
	}
}

func TestMemberTurnsReadOnly(t *testing.T) {
	mfs := NewMemFS()
	p := NewTestPoolOptions(t, 3, CreateOptions{Copies: 2}, OpenOptions{FS: mfs})
	data := payload(2, 7000)
	l := appendT(t, p, data)
	if err := p.Sync(l); err != nil {
		t.Fatal(err)
	}
	ro := p.Config().Members[1].Path
	mfs.SetReadOnly(ro, true)
	// Appends that try member 1 fail there with EROFS and go elsewhere.
	for i := 0; i < 6; i++ {
		got := appendT(t, p, payload(30+i, 5000))
		if len(got) != 2 {
			t.Fatalf("append with a read-only member: %v", got)
		}
		for _, x := range got {
			if x.Member == 1 {
				t.Fatalf("record placed on the read-only member: %v", got)
			}
		}
	}
	h := p.Health()
	if h.State != StateDegraded || h.Members[1].State != StateDegraded || h.Degraded != 1 {
		t.Fatalf("health: %+v", h)
	}
	for _, x := range l {
		readT(t, p, x, data) // reads still use it
	}
	if p.Freeable(1) {
		t.Fatal("a read-only member is freeable")
	}
	// Reported degraded once, then nothing changes.
	if evs := p.CheckMembers(CheckOptions{}); len(evs) != 1 || !evs[0].Degraded || !errors.Is(evs[0].Err, syscall.EROFS) {
		t.Fatalf("first check of the read-only member: events %+v", evs)
	}
	if evs := p.CheckMembers(CheckOptions{}); len(evs) != 0 {
		t.Fatalf("still read-only: events %+v", evs)
	}
	mfs.SetReadOnly(ro, false)
	evs := p.CheckMembers(CheckOptions{})
	if len(evs) != 1 || !evs[0].Back || evs[0].Index != 1 {
		t.Fatalf("events once writable: %+v", evs)
	}
	if !p.Freeable(1) || p.Health().State != StateOK {
		t.Fatalf("after return: freeable %v, health %+v", p.Freeable(1), p.Health())
	}
}

func TestOpenWithReadOnlyMember(t *testing.T) {
	mfs := NewMemFS()
	p := NewTestPoolOptions(t, 2, CreateOptions{Copies: 2}, OpenOptions{FS: mfs})
	data := payload(3, 6000)
	l := appendT(t, p, data)
	if err := p.Sync(l); err != nil {
		t.Fatal(err)
	}
	ro := p.Config().Members[0].Path
	mfs.SetReadOnly(ro, true)
	p = reopen(t, p, mfs, OpenOptions{})
	h := p.Health()
	if h.State != StateDegraded || h.Members[0].State != StateDegraded {
		t.Fatalf("health: %+v", h)
	}
	for _, x := range l {
		readT(t, p, x, data)
	}
	// copies=2 with one of two members read-only: a degraded write.
	got, err := p.Append(hashOf(data), data)
	if err != nil || len(got) != 1 || got[0].Member != 1 {
		t.Fatalf("degraded append: %v %v", got, err)
	}
	if err := p.MarkAccounted(); err != nil {
		t.Fatalf("MarkAccounted with a read-only member: %v", err)
	}
}

func TestDegradedAppendNeedsSpace(t *testing.T) {
	// A copy missing for lack of space is not a degraded write: ENOSPC.
	mfs := NewMemFS()
	p := NewTestPoolOptions(t, 2, CreateOptions{Copies: 2}, OpenOptions{FS: mfs})
	mfs.SetReadOnly(p.Config().Members[0].Path, true)
	mfs.SetCapacity(0)
	if _, err := p.Append(hashOf([]byte("x")), []byte("x")); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("append with one member read-only and the other full: %v", err)
	}
}

func TestSyncEachReportsFailedMember(t *testing.T) {
	ff := NewFaultFS(NewMemFS())
	p := NewTestPoolOptions(t, 2, CreateOptions{Copies: 2}, OpenOptions{FS: ff})
	l := appendT(t, p, payload(4, 3000))
	bad := p.Config().Members[1].Path
	ff.Inject(Fault{Op: OpSync, Path: bad, Err: syscall.EIO})
	failed := p.SyncEach(l)
	if len(failed) != 1 || failed[1] == nil || !errors.Is(failed[1], syscall.EIO) {
		t.Fatalf("SyncEach: %v", failed)
	}
	if h := p.Health(); h.Members[1].State != StateDegraded {
		t.Fatalf("a failed fdatasync leaves the member degraded: %+v", h)
	}
	// An I/O error is reported once, and retried only when asked.
	if evs := p.CheckMembers(CheckOptions{}); len(evs) != 1 || !evs[0].Degraded || evs[0].Back {
		t.Fatalf("first check without RetryFailed: %+v", evs)
	}
	if evs := p.CheckMembers(CheckOptions{}); len(evs) != 0 {
		t.Fatalf("events without RetryFailed: %+v", evs)
	}
	evs := p.CheckMembers(CheckOptions{RetryFailed: true})
	if len(evs) != 1 || !evs[0].Back {
		t.Fatalf("events with RetryFailed: %+v", evs)
	}
	select {
	case <-p.CheckWanted():
	default:
		t.Fatal("a failed sync did not ask for a member check")
	}
}
