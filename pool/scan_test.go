package pool

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestRecordsWalksEveryPack(t *testing.T) {
	p := NewTestPoolOptions(t, 2, CreateOptions{}, OpenOptions{MaxPackSize: 3 * Align})
	want := map[Location]Hash{}
	for i := 0; i < 12; i++ {
		d := payload(i, 1000+i*300)
		for _, l := range appendT(t, p, d) {
			want[l] = hashOf(d)
		}
	}
	var bad Location
	for l := range want {
		bad = l
		break
	}
	flipByte(t, packPath(p, bad), bad.Offset+HeaderSize+5)
	delete(want, bad)
	got := map[Location]Hash{}
	packs := map[uint32]bool{}
	for i := range p.Config().Members {
		if err := p.Records(uint16(i), func(r TailRecord) bool {
			got[r.Loc] = r.Hash
			packs[r.Loc.Pack] = true
			return true
		}); err != nil {
			t.Fatal(err)
		}
	}
	if len(got) != len(want) || len(packs) < 2 {
		t.Fatalf("records %d in %d packs, want %d", len(got), len(packs), len(want))
	}
	for l, h := range want {
		if got[l] != h {
			t.Fatalf("record %v missing or wrong", l)
		}
	}
	n := 0
	p.Records(0, func(TailRecord) bool { n++; return false })
	if n != 1 {
		t.Fatalf("stop after first: %d calls", n)
	}
}

func TestAppendCopyAvoidsDomains(t *testing.T) {
	p := NewTestPoolOptions(t, 3, CreateOptions{Copies: 2}, OpenOptions{})
	d := payload(1, 5000)
	locs := appendT(t, p, d)
	for i := 0; i < 5; i++ {
		nl, err := p.AppendCopy(hashOf(d), d, locs)
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range locs {
			if p.Domain(l.Member) == p.Domain(nl.Member) {
				t.Fatalf("copy %v shares a domain with %v", nl, l)
			}
		}
		readT(t, p, nl, d)
	}
	all := []Location{{Member: 0}, {Member: 1}, {Member: 2}}
	if _, err := p.AppendCopy(hashOf(d), d, all); !errors.Is(err, ErrMemberGone) {
		t.Fatalf("no domain left: %v", err)
	}
}

func TestAddMember(t *testing.T) {
	p := NewTestPool(t, 1)
	dir := p.Dir()
	old := p.Config()
	if _, err := AddMember(dir, t.TempDir(), AddMemberOptions{Domain: "x"}); !errors.Is(err, ErrInUse) {
		t.Fatalf("add to an open pool: %v", err)
	}
	p.Close()
	nd := filepath.Join(t.TempDir(), "new")
	os.Mkdir(nd, 0o755)
	mc, err := AddMember(dir, nd, AddMemberOptions{Domain: "d9"})
	if err != nil {
		t.Fatal(err)
	}
	if mc.Index != 1 || mc.Domain != "d9" {
		t.Fatalf("new member %+v", mc)
	}
	if _, err := AddMember(dir, nd, AddMemberOptions{}); !errors.Is(err, ErrExists) {
		t.Fatalf("add twice: %v", err)
	}
	if _, err := AddMember(dir, filepath.Join(nd, "nope"), AddMemberOptions{}); err == nil {
		t.Fatal("added a missing directory")
	}
	// A member of another pool is refused.
	other := NewTestPool(t, 1)
	if _, err := AddMember(dir, other.Config().Members[0].Path, AddMemberOptions{}); !errors.Is(err, ErrExists) {
		t.Fatalf("member of another pool: %v", err)
	}
	if os.Getuid() != 0 {
		ro := filepath.Join(t.TempDir(), "ro")
		os.Mkdir(ro, 0o555)
		if _, err := AddMember(dir, ro, AddMemberOptions{}); err == nil {
			t.Fatal("added a read-only directory")
		}
	}
	for _, m := range append(old.Members, mc) {
		b, err := os.ReadFile(filepath.Join(m.Path, memberFile))
		if err != nil {
			t.Fatal(err)
		}
		var mj memberJSON
		json.Unmarshal(b, &mj)
		if mj.Generation != 2 || len(mj.Config.Members) != 2 {
			t.Fatalf("%s: generation %d, %d members", m.Path, mj.Generation, len(mj.Config.Members))
		}
	}
	q := openT(t, dir, OSFS{}, OpenOptions{})
	if len(q.Config().Members) != 2 {
		t.Fatalf("members %+v", q.Config().Members)
	}
	used := map[uint16]bool{}
	for i := 0; i < 4; i++ {
		for _, l := range appendT(t, q, payload(i, 4000)) {
			used[l.Member] = true
		}
	}
	if !used[1] {
		t.Fatal("no record striped onto the new member")
	}
}

func TestAddMemberOnline(t *testing.T) {
	p := NewTestPool(t, 1)
	nd := filepath.Join(t.TempDir(), "new")
	os.Mkdir(nd, 0o755)
	done := make(chan struct{})
	go func() { // appends and reads race the add
		defer close(done)
		for i := 0; i < 200; i++ {
			d := payload(i, 3000)
			locs, err := p.Append(hashOf(d), d)
			if err != nil {
				t.Error(err)
				return
			}
			if _, err := p.ReadAny(locs, hashOf(d), nil); err != nil {
				t.Error(err)
				return
			}
			p.Stats()
		}
	}()
	mc, err := p.AddMember(nd, "dnew")
	if err != nil {
		t.Fatal(err)
	}
	<-done
	if len(p.Config().Members) != 2 || mc.Index != 1 {
		t.Fatalf("config %+v", p.Config())
	}
	used := false
	for i := 0; i < 4; i++ {
		for _, l := range appendT(t, p, payload(1000+i, 4000)) {
			used = used || l.Member == 1
		}
	}
	if !used {
		t.Fatal("no record on the new member")
	}
	if _, err := p.AddMember(nd, ""); !errors.Is(err, ErrExists) {
		t.Fatalf("add twice: %v", err)
	}
	q := reopen(t, p, OSFS{}, OpenOptions{})
	if len(q.Config().Members) != 2 {
		t.Fatal("member lost at reopen")
	}
}
