package pool

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckRemoveRefusals(t *testing.T) {
	t.Run("last member", func(t *testing.T) {
		p := NewTestPool(t, 1)
		err := p.CheckRemove(0, 0)
		if !errors.Is(err, ErrLastMember) || !strings.Contains(err.Error(), "only member") {
			t.Fatalf("CheckRemove: %v", err)
		}
	})
	t.Run("domains", func(t *testing.T) {
		p := NewTestPoolOptions(t, 2, CreateOptions{Copies: 2}, OpenOptions{})
		err := p.CheckRemove(1, 0)
		if !errors.Is(err, ErrTooFewDomains) || !strings.Contains(err.Error(), "leaves 1 failure domain(s) for 2 copies") {
			t.Fatalf("CheckRemove: %v", err)
		}
	})
	t.Run("two members share the other domain", func(t *testing.T) {
		p := NewTestPoolOptions(t, 3, CreateOptions{Copies: 2, Domains: []string{"a", "b", "b"}}, OpenOptions{})
		if err := p.CheckRemove(0, 0); !errors.Is(err, ErrTooFewDomains) {
			t.Fatalf("remove the only member of domain a: %v", err)
		}
		if err := p.CheckRemove(2, 0); err != nil {
			t.Fatalf("remove one of two in domain b: %v", err)
		}
	})
	t.Run("space", func(t *testing.T) {
		mem := NewMemFS()
		mem.SetCapacity(64 << 20)
		p := NewTestPoolOptions(t, 2, CreateOptions{FS: mem}, OpenOptions{})
		// 64 MiB less 8 MiB of slop: 56 MiB fit, 60 do not.
		if err := p.CheckRemove(0, 50<<20); err != nil {
			t.Fatalf("CheckRemove 50 MiB: %v", err)
		}
		err := p.CheckRemove(0, 60<<20)
		if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "needs 60.0 MiB free on the other members") {
			t.Fatalf("CheckRemove 60 MiB: %v", err)
		}
	})
	t.Run("not a member", func(t *testing.T) {
		p := NewTestPool(t, 2)
		if _, err := p.MemberIndex(t.TempDir()); !errors.Is(err, ErrNotMember) {
			t.Fatalf("MemberIndex: %v", err)
		}
		if err := p.CheckRemove(7, 0); !errors.Is(err, ErrNotMember) {
			t.Fatalf("CheckRemove of index 7: %v", err)
		}
	})
}

func TestDrainingMemberGetsNoAppends(t *testing.T) {
	p := NewTestPool(t, 2)
	p.SetDraining(0, true)
	for i := 0; i < 6; i++ {
		d := payload(i, 3000)
		if l := appendT(t, p, d); l[0].Member != 1 {
			t.Fatalf("append to a draining member: %v", l)
		}
		nl, err := p.AppendCopy(hashOf(d), d, nil)
		if err != nil || nl.Member != 1 {
			t.Fatalf("AppendCopy to a draining member: %v %v", nl, err)
		}
	}
	st, _ := p.Stats()
	if !st.Members[0].Draining || st.Members[1].Draining {
		t.Fatalf("stats: %+v", st.Members)
	}
	p.SetDraining(0, false)
	seen := map[uint16]bool{}
	for i := 0; i < 4; i++ {
		seen[appendT(t, p, payload(10+i, 3000))[0].Member] = true
	}
	if !seen[0] {
		t.Fatal("no append on member 0 after draining ended")
	}
}

func TestForgetMember(t *testing.T) {
	p := NewTestPool(t, 3)
	cfg := p.Config()
	m1 := cfg.Members[1].Path
	keep := appendT(t, p, payload(1, 9000))
	for keep[0].Member == 1 { // a record on another member, to read after
		keep = appendT(t, p, payload(len(keep)+1, 9000))
	}
	var onM1 Location
	for i := 0; onM1.Length == 0; i++ {
		if l := appendT(t, p, payload(100+i, 5000)); l[0].Member == 1 {
			onM1 = l[0]
		}
	}
	if err := p.Sync(append(keep, onM1)); err != nil {
		t.Fatal(err)
	}
	if err := p.ForgetMember(1); err != nil {
		t.Fatal(err)
	}
	// Its directory holds nothing of the pool any more.
	if ents, err := os.ReadDir(m1); err != nil || len(ents) != 0 {
		t.Fatalf("removed member's directory: %v %v", ents, err)
	}
	if _, err := p.Read(onM1, Hash{}, nil); !errors.Is(err, ErrMemberGone) {
		t.Fatalf("read on a removed member: %v", err)
	}
	if err := p.ForgetMember(1); !errors.Is(err, ErrNotMember) {
		t.Fatalf("forget twice: %v", err)
	}
	if _, err := p.MemberIndex(m1); !errors.Is(err, ErrNotMember) {
		t.Fatalf("MemberIndex of a removed member: %v", err)
	}
	for i := 0; i < 6; i++ {
		if l := appendT(t, p, payload(200+i, 100)); l[0].Member == 1 {
			t.Fatalf("append to a removed member: %v", l)
		}
	}
	st, err := p.Stats()
	if err != nil || len(st.Members) != 2 {
		t.Fatalf("stats list %d members: %v", len(st.Members), err)
	}

	// The configuration survives a reopen; indices stay; the directory can
	// join again, under a new index.
	q := reopen(t, p, OSFS{}, OpenOptions{})
	qc := q.Config()
	if len(qc.Members) != 3 || !qc.Members[1].Removed || qc.Members[2].Path != cfg.Members[2].Path {
		t.Fatalf("config after reopen: %+v", qc.Members)
	}
	readT(t, q, keep[0], payload(1, 9000))
	for _, mc := range []MemberConfig{qc.Members[0], qc.Members[2]} {
		mj, err := readMemberJSON(OSFS{}, qc, mc)
		if err != nil || !mj.Config.Members[1].Removed || mj.Generation < 2 {
			t.Fatalf("member.json of %s: %+v %v", mc.Path, mj, err)
		}
	}
	mc, err := q.AddMember(m1, "again")
	if err != nil || mc.Index != 3 {
		t.Fatalf("re-add the removed directory: %+v %v", mc, err)
	}
	if _, err := os.Stat(filepath.Join(m1, memberFile)); err != nil {
		t.Fatal(err)
	}
}

func TestForgetGoneMember(t *testing.T) {
	p := NewTestPool(t, 2)
	m1 := p.Config().Members[1].Path
	p.Close()
	if err := os.RemoveAll(m1); err != nil {
		t.Fatal(err)
	}
	q := openT(t, p.Dir(), OSFS{}, OpenOptions{})
	if err := q.ForgetMember(1); err != nil {
		t.Fatalf("forget a gone member: %v", err)
	}
	if q := reopen(t, q, OSFS{}, OpenOptions{}); !q.Config().Members[1].Removed {
		t.Fatal("not removed after reopen")
	}
}
