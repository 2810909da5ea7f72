package pool

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"syscall"
	"testing"
)

// memSource is a checkpoint's files in memory.
type memSource map[string][]byte

func (m memSource) files() []CheckpointFile {
	var out []CheckpointFile
	for _, n := range []string{"000001.sst", "000002.sst", "MANIFEST-000003", "OPTIONS-000004"} {
		if b, ok := m[n]; ok {
			out = append(out, CheckpointFile{Name: n, Size: int64(len(b))})
		}
	}
	return out
}

func (m memSource) open(name string) (io.ReadCloser, error) {
	b, ok := m[name]
	if !ok {
		return nil, os.ErrNotExist
	}
	return io.NopCloser(bytes.NewReader(b)), nil
}

func seqsOn(t *testing.T, fsys FS, mdir string) []uint64 {
	t.Helper()
	cs, err := Checkpoints(fsys, mdir)
	if err != nil {
		t.Fatal(err)
	}
	var out []uint64
	for _, c := range cs {
		out = append(out, c.Info.Seq)
	}
	return out
}

// TestShipCheckpointIncremental: a checkpoint goes to copies members in
// distinct domains; the next one links the unchanged sstables, replaces
// the previous one, and removes a stale one from a non-target member.
func TestShipCheckpointIncremental(t *testing.T) {
	p := NewTestPoolOptions(t, 3, CreateOptions{Copies: 2}, OpenOptions{})
	ms := p.Config().Members
	src := memSource{"000001.sst": bytes.Repeat([]byte{1}, 5000), "MANIFEST-000003": []byte("manifest one"), "OPTIONS-000004": []byte("options")}
	res, err := p.ShipCheckpoint(CheckpointInfo{Seq: 10, FreeMark: 7, Files: src.files()}, src.open)
	if err != nil || !res.Complete || len(res.Targets) != 2 || res.Targets[0] == res.Targets[1] {
		t.Fatalf("first ship: %+v, %v", res, err)
	}
	if res.Copied != 2*int64(5000+12+7) || res.Linked != 0 {
		t.Fatalf("first ship copied %d, linked %d", res.Copied, res.Linked)
	}
	// A stale checkpoint on the member that is not a target.
	stale := filepath.Join(ms[2].Path, checkpointsDir, "5")
	if err := os.MkdirAll(stale, 0o755); err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(CheckpointInfo{Seq: 5, PoolID: p.Config().ID})
	if err := os.WriteFile(filepath.Join(stale, checkpointFile), b, 0o644); err != nil {
		t.Fatal(err)
	}
	src["000002.sst"] = bytes.Repeat([]byte{2}, 3000)
	src["MANIFEST-000003"] = []byte("manifest two, longer")
	res, err = p.ShipCheckpoint(CheckpointInfo{Seq: 20, FreeMark: 9, Reason: "after snapshot v@s", Files: src.files()}, src.open)
	if err != nil || !res.Complete {
		t.Fatalf("second ship: %+v, %v", res, err)
	}
	if res.Linked != 2*5000 || res.Copied != 2*int64(3000+20+7) {
		t.Fatalf("second ship copied %d, linked %d: want the unchanged sstable linked", res.Copied, res.Linked)
	}
	for _, i := range res.Targets {
		if got := seqsOn(t, OSFS{}, ms[i].Path); !slices.Equal(got, []uint64{20}) {
			t.Fatalf("member %d holds checkpoints %v, want [20]", i, got)
		}
		c, _ := newestOn(OSFS{}, ms[i].Path)
		if c.Info.Reason != "after snapshot v@s" || c.Info.FreeMark != 9 || c.Info.PoolID != p.Config().ID {
			t.Fatalf("checkpoint.json: %+v", c.Info)
		}
		for name, want := range src {
			got, err := os.ReadFile(filepath.Join(c.Dir, name))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("member %d: %s differs (%v)", i, name, err)
			}
		}
		if tmp, _ := filepath.Glob(filepath.Join(ms[i].Path, checkpointsDir, checkpointTmp+"*")); len(tmp) != 0 {
			t.Fatalf("temporary checkpoint left: %v", tmp)
		}
	}
	if got := seqsOn(t, OSFS{}, ms[2].Path); len(got) != 0 {
		t.Fatalf("non-target member keeps stale checkpoints %v", got)
	}
	if c, err := p.NewestCheckpoint(); err != nil || c == nil || c.Info.Seq != 20 {
		t.Fatalf("NewestCheckpoint: %+v, %v", c, err)
	}
}

// TestShipCheckpointFailureKeepsPrevious: a member whose write fails keeps
// its previous checkpoint and no temporary one; the ship is not complete.
func TestShipCheckpointFailureKeepsPrevious(t *testing.T) {
	ffs := NewFaultFS(NewMemFS())
	p := NewTestPoolOptions(t, 2, CreateOptions{Copies: 2, FS: ffs}, OpenOptions{})
	ms := p.Config().Members
	src := memSource{"000001.sst": bytes.Repeat([]byte{1}, 5000), "MANIFEST-000003": []byte("m")}
	if res, err := p.ShipCheckpoint(CheckpointInfo{Seq: 10, Files: src.files()}, src.open); err != nil || !res.Complete {
		t.Fatalf("first ship: %+v, %v", res, err)
	}
	ffs.Inject(Fault{Op: OpWrite, Path: filepath.Join(ms[1].Path, checkpointsDir), Err: syscall.ENOSPC})
	src["MANIFEST-000003"] = []byte("m2")
	res, err := p.ShipCheckpoint(CheckpointInfo{Seq: 20, Files: src.files()}, src.open)
	if err == nil || res.Complete || len(res.Shipped) != 1 || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("ship with a failing member: %+v, %v", res, err)
	}
	if got := seqsOn(t, ffs, ms[0].Path); !slices.Equal(got, []uint64{20}) {
		t.Fatalf("good member holds %v, want [20]", got)
	}
	if got := seqsOn(t, ffs, ms[1].Path); !slices.Equal(got, []uint64{10}) {
		t.Fatalf("failed member holds %v, want its previous [10]", got)
	}
	ents, _ := ffs.ReadDir(filepath.Join(ms[1].Path, checkpointsDir))
	if len(ents) != 1 {
		t.Fatalf("failed member's checkpoint dir holds %d entries, want 1", len(ents))
	}
}

// TestMemberJSONCarriesConfig: every member.json holds the full pool
// configuration, kept current by add-member and by import (incarnation).
func TestMemberJSONCarriesConfig(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "pool")
	var members []string
	for _, n := range []string{"a", "b", "c"} {
		members = append(members, filepath.Join(root, n))
		if err := os.Mkdir(members[len(members)-1], 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := Create(dir, CreateOptions{Members: members[:2], Domains: []string{"x", "y"}, Copies: 2, ChunkSize: 64 << 10}); err != nil {
		t.Fatal(err)
	}
	if _, err := AddMember(dir, members[2], AddMemberOptions{Domain: "z"}); err != nil {
		t.Fatal(err)
	}
	check := func(incarnation, gen uint64) {
		t.Helper()
		cfg, err := readConfig(OSFS{}, dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range cfg.Members {
			mj, err := readMemberJSON(OSFS{}, cfg, m)
			if err != nil {
				t.Fatal(err)
			}
			c := mj.Config
			if c.ID != cfg.ID || c.Incarnation != incarnation || c.Copies != 2 || c.ChunkSize != 64<<10 || len(c.Members) != 3 || mj.Generation != gen {
				t.Fatalf("member %s: member.json %+v (generation %d), want incarnation %d, generation %d, 3 members", m.Path, c, mj.Generation, incarnation, gen)
			}
			for i, o := range c.Members {
				if o != cfg.Members[i] {
					t.Fatalf("member %s: member %d is %+v, pool.json says %+v", m.Path, i, o, cfg.Members[i])
				}
			}
		}
	}
	check(1, 2)
	// A checkpoint to import from, then meta/ lost.
	p, err := Open(dir, OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	src := memSource{"MANIFEST-000003": []byte("m")}
	if _, err := p.ShipCheckpoint(CheckpointInfo{Seq: 3, Files: src.files()}, src.open); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if err := os.RemoveAll(filepath.Join(dir, metaDir)); err != nil {
		t.Fatal(err)
	}
	res, err := Import(dir, ImportOptions{Members: members[1:2]})
	if err != nil || res.Restored == nil || res.Restored.Info.Seq != 3 {
		t.Fatalf("import: %+v, %v", res, err)
	}
	check(2, 3)
	if b, err := os.ReadFile(filepath.Join(dir, metaDir, "MANIFEST-000003")); err != nil || string(b) != "m" {
		t.Fatalf("restored meta/: %q, %v", b, err)
	}
}

// TestImportRefusals: each refusal wraps its sentinel and writes nothing.
func TestImportRefusals(t *testing.T) {
	p1 := NewTestPool(t, 1)
	p2 := NewTestPool(t, 1)
	m1, m2 := p1.Config().Members[0].Path, p2.Config().Members[0].Path
	p1.Close()
	p2.Close()
	newDir := filepath.Join(t.TempDir(), "new")
	for _, c := range []struct {
		name    string
		dir     string
		members []string
		want    error
	}{
		{"members of different pools", newDir, []string{m1, m2}, ErrCorrupt},
		{"no checkpoint", newDir, []string{m1}, ErrNoCheckpoint},
		{"missing member", newDir, []string{filepath.Join(newDir, "nope")}, ErrMemberGone},
		{"not a member", newDir, []string{t.TempDir()}, ErrNotPool},
		{"pool.json and meta/ exist", p1.Dir(), []string{m1}, nil},
	} {
		if c.name == "pool.json and meta/ exist" {
			// meta/ non-empty, as after a store opened it.
			if err := os.WriteFile(filepath.Join(p1.Dir(), metaDir, "CURRENT"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			c.want = ErrExists
		}
		_, err := Import(c.dir, ImportOptions{Members: c.members})
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		if _, err := os.Stat(newDir); !os.IsNotExist(err) {
			t.Fatalf("%s: the refused import created %s", c.name, newDir)
		}
	}
}
