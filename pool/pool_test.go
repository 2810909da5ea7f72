package pool

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"
)

func hashOf(b []byte) Hash { return Hash(sha256.Sum256(b)) }

// payload returns n deterministic pseudo-random bytes for seed.
func payload(seed, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(int64(seed))).Read(b)
	return b
}

func packPath(p *Pool, loc Location) string {
	return filepath.Join(p.cfg.Members[loc.Member].Path, packsDir, fmt.Sprintf("%d.pack", loc.Pack))
}

// appendT appends data and fails the test on error.
func appendT(t *testing.T, p *Pool, data []byte) []Location {
	t.Helper()
	locs, err := p.Append(hashOf(data), data)
	if err != nil {
		t.Fatalf("Append: %v", err)
	}
	return locs
}

func readT(t *testing.T, p *Pool, loc Location, want []byte) {
	t.Helper()
	got, err := p.Read(loc, hashOf(want), nil)
	if err != nil {
		t.Fatalf("Read %v: %v", loc, err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("Read %v: wrong bytes", loc)
	}
}

// reopen closes p and opens its directory again on fsys.
func reopen(t *testing.T, p *Pool, fsys FS, oo OpenOptions) *Pool {
	t.Helper()
	p.Close()
	return openT(t, p.Dir(), fsys, oo)
}

func openT(t *testing.T, dir string, fsys FS, oo OpenOptions) *Pool {
	t.Helper()
	oo.FS = fsys
	q, err := Open(dir, oo)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { q.Close() })
	return q
}

func TestLocationEncoding(t *testing.T) {
	locs := []Location{{}, {Member: 3, Pack: 77, Offset: 1 << 40, Length: 131072}, {Member: 65535, Pack: 1<<32 - 1, Offset: 4096, Length: 1}}
	var b []byte
	for _, l := range locs {
		b = l.AppendTo(b)
	}
	if len(b) != len(locs)*LocationSize {
		t.Fatalf("encoded %d bytes", len(b))
	}
	for _, want := range locs {
		got, rest, err := DecodeLocation(b)
		if err != nil || got != want {
			t.Fatalf("DecodeLocation: %v %v, want %v", got, err, want)
		}
		b = rest
	}
	if _, _, err := DecodeLocation([]byte{1, 2, 3}); err == nil {
		t.Error("short location decoded")
	}
	bad := Location{Offset: 100}.AppendTo(nil)
	if _, _, err := DecodeLocation(bad); err == nil {
		t.Error("unaligned offset decoded")
	}
}

func TestRoundTrip(t *testing.T) {
	sizes := []int{0, 1, Align - HeaderSize, Align - HeaderSize + 1, 100000, 128 << 10, 1 << 20}
	for members := 1; members <= 3; members++ {
		for copies := 1; copies <= members; copies++ {
			t.Run(fmt.Sprintf("members=%d/copies=%d", members, copies), func(t *testing.T) {
				p := NewTestPoolOptions(t, members, CreateOptions{Copies: copies}, OpenOptions{})
				type rec struct {
					data []byte
					locs []Location
				}
				var recs []rec
				var all []Location
				for i, n := range sizes {
					d := payload(i, n)
					locs := appendT(t, p, d)
					if len(locs) != copies {
						t.Fatalf("%d locations, want %d", len(locs), copies)
					}
					recs = append(recs, rec{d, locs})
					all = append(all, locs...)
				}
				if err := p.Sync(all); err != nil {
					t.Fatal(err)
				}
				check := func(p *Pool) {
					for _, r := range recs {
						for _, l := range r.locs {
							if l.Offset%Align != 0 || int(l.Length) != len(r.data) {
								t.Fatalf("location %v", l)
							}
							readT(t, p, l, r.data)
						}
						got, err := p.ReadAny(r.locs, hashOf(r.data), make([]byte, 10))
						if err != nil || !bytes.Equal(got, r.data) {
							t.Fatalf("ReadAny: %v", err)
						}
					}
				}
				check(p)
				p = reopen(t, p, OSFS{}, OpenOptions{})
				check(p)
				if tails := p.Tails(); len(tails) != len(all) {
					t.Errorf("%d tails, want %d (nothing accounted)", len(tails), len(all))
				}
			})
		}
	}
}

func TestStriping(t *testing.T) {
	p := NewTestPool(t, 3)
	counts := map[uint16]int{}
	prev := -1
	for i := 0; i < 30; i++ {
		locs := appendT(t, p, payload(i, 5000))
		m := int(locs[0].Member)
		if m == prev {
			t.Errorf("append %d: member %d twice in a row", i, m)
		}
		prev = m
		counts[locs[0].Member]++
	}
	for m := uint16(0); m < 3; m++ {
		if counts[m] < 8 || counts[m] > 12 {
			t.Errorf("member %d got %d of 30 records: %v", m, counts[m], counts)
		}
	}
}

func TestStripingWeightedByFree(t *testing.T) {
	// Two members on separate MemFS "disks" cannot be modelled (one shared
	// capacity), so check the weighting directly on the placement state.
	p := NewTestPool(t, 2)
	p.spaceMu.Lock()
	p.spaceAt = time.Now().Add(time.Hour) // freeze the cached statfs
	p.space[0] = memberSpace{total: 4 << 30, free: 3 << 30}
	p.space[1] = memberSpace{total: 4 << 30, free: 1 << 30}
	p.spaceMu.Unlock()
	counts := map[int]int{}
	for i := 0; i < 400; i++ {
		counts[p.placement(1)[0]]++
	}
	if counts[0] < 290 || counts[0] > 310 {
		t.Errorf("3:1 free space gave %v", counts)
	}
}

func TestCopiesDistinctDomains(t *testing.T) {
	tests := []struct {
		domains []string
		copies  int
	}{
		{[]string{"a", "b", "c"}, 2},
		{[]string{"a", "b", "c"}, 3},
		{[]string{"a", "a", "b"}, 2},
		{[]string{"a", "a", "b", "b"}, 2},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint(tc.domains, tc.copies), func(t *testing.T) {
			p := NewTestPoolOptions(t, len(tc.domains), CreateOptions{Copies: tc.copies, Domains: tc.domains}, OpenOptions{})
			used := map[uint16]int{}
			for i := 0; i < 24; i++ {
				locs := appendT(t, p, payload(i, 3000))
				seen := map[string]bool{}
				for _, l := range locs {
					d := p.cfg.Members[l.Member].Domain
					if seen[d] {
						t.Fatalf("two copies in domain %s: %v", d, locs)
					}
					seen[d] = true
					used[l.Member]++
				}
			}
			if len(used) != len(tc.domains) {
				t.Errorf("not every member used: %v", used)
			}
		})
	}
}

func TestChecksum(t *testing.T) {
	data := payload(1, 10000)
	tests := []struct {
		name    string
		corrupt func(t *testing.T, p *Pool, loc Location)
		hash    Hash
		length  int
	}{
		{"payload byte flipped", func(t *testing.T, p *Pool, loc Location) { flipByte(t, packPath(p, loc), loc.Offset+HeaderSize+5000) }, hashOf(data), 0},
		{"header byte flipped", func(t *testing.T, p *Pool, loc Location) { flipByte(t, packPath(p, loc), loc.Offset+30) }, hashOf(data), 0},
		{"magic flipped", func(t *testing.T, p *Pool, loc Location) { flipByte(t, packPath(p, loc), loc.Offset) }, hashOf(data), 0},
		{"wrong hash", func(*testing.T, *Pool, Location) {}, hashOf([]byte("x")), 0},
		{"wrong length", func(*testing.T, *Pool, Location) {}, hashOf(data), -1},
		{"truncated pack", func(t *testing.T, p *Pool, loc Location) { os.Truncate(packPath(p, loc), loc.Offset+100) }, hashOf(data), 0},
		{"punched", func(t *testing.T, p *Pool, loc Location) {
			if err := p.Free([]Location{loc}); err != nil {
				t.Fatal(err)
			}
		}, hashOf(data), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := NewTestPoolOptions(t, 2, CreateOptions{Copies: 2}, OpenOptions{})
			appendT(t, p, payload(0, 3000)) // something before, so offsets are not 0
			locs := appendT(t, p, data)
			if err := p.Sync(locs); err != nil {
				t.Fatal(err)
			}
			bad := locs[0]
			tc.corrupt(t, p, bad)
			bad.Length = uint32(int(bad.Length) + tc.length)
			got, err := p.Read(bad, tc.hash, nil)
			if !errors.Is(err, ErrChecksum) || len(got) != 0 {
				t.Fatalf("Read of bad copy: %d bytes, %v; want ErrChecksum", len(got), err)
			}
			if tc.length != 0 || tc.hash != hashOf(data) {
				return
			}
			got, err = p.ReadAny([]Location{bad, locs[1]}, tc.hash, nil)
			if err != nil || !bytes.Equal(got, data) {
				t.Fatalf("ReadAny around the bad copy: %v", err)
			}
			if _, err := p.ReadAny([]Location{bad, bad}, tc.hash, nil); !errors.Is(err, ErrChecksum) {
				t.Fatalf("ReadAny of bad copies: %v", err)
			}
		})
	}
}

func flipByte(t *testing.T, name string, off int64) {
	t.Helper()
	f, err := os.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := []byte{0}
	f.ReadAt(b, off)
	b[0] ^= 0x40
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

func TestMissingPack(t *testing.T) {
	oo := OpenOptions{MaxPackSize: 8 << 10}
	p := NewTestPoolOptions(t, 2, CreateOptions{Copies: 2}, oo)
	data := payload(2, 5000)
	locs := appendT(t, p, data)
	appendT(t, p, data) // rotates: locs now in sealed packs
	p.Sync(locs)
	if err := p.MarkAccounted(); err != nil {
		t.Fatal(err)
	}
	p = reopen(t, p, OSFS{}, oo) // sealed packs are not opened
	if err := os.Remove(packPath(p, locs[0])); err != nil {
		t.Fatal(err)
	}
	_, err := p.Read(locs[0], hashOf(data), nil)
	if err == nil || errors.Is(err, ErrChecksum) || !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("Read from a missing pack: %v", err)
	}
	got, err := p.ReadAny(locs, hashOf(data), nil)
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadAny: %v", err)
	}
}

func TestMemberGone(t *testing.T) {
	p := NewTestPoolOptions(t, 2, CreateOptions{Copies: 2}, OpenOptions{})
	data := payload(3, 7000)
	locs := appendT(t, p, data)
	p.Sync(locs)
	p.Close()
	gone := p.cfg.Members[1].Path
	if err := os.Rename(gone, gone+".unmounted"); err != nil {
		t.Fatal(err)
	}
	os.Mkdir(gone, 0o755) // an empty mount point
	p = openT(t, p.Dir(), OSFS{}, OpenOptions{})
	for _, l := range locs {
		if l.Member == 1 {
			if _, err := p.Read(l, hashOf(data), nil); !errors.Is(err, ErrMemberGone) {
				t.Fatalf("Read on gone member: %v", err)
			}
		}
	}
	if got, err := p.ReadAny(locs, hashOf(data), nil); err != nil || !bytes.Equal(got, data) {
		t.Fatalf("ReadAny: %v", err)
	}
	// A degraded write: one copy on the member left, as a mirror with a
	// missing side keeps writing.
	if l2, err := p.Append(hashOf(data), data); err != nil || len(l2) != 1 || l2[0].Member != 0 {
		t.Fatalf("Append with copies=2 and one member gone: %v %v", l2, err)
	}
	if h := p.Health(); h.State != StateDegraded || h.Gone != 1 || h.Members[1].State != StateFailed {
		t.Fatalf("Health: %+v", h)
	}
	st, err := p.Stats()
	if err != nil || !st.Members[1].Gone || st.Members[0].Gone {
		t.Fatalf("Stats: %+v %v", st, err)
	}
	if ents, _ := os.ReadDir(gone); len(ents) != 0 {
		t.Errorf("pool wrote into the empty mount point: %v", ents)
	}
}

func allocated(t *testing.T, name string) int64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(name, &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks * 512
}

func TestFreePunchesAndDeletesPacks(t *testing.T) {
	p := NewTestPoolOptions(t, 1, CreateOptions{}, OpenOptions{MaxPackSize: 64 << 10})
	if !p.ms()[0].canPunch {
		// CI's temp directories (ext4) punch holes; elsewhere (tmpfs on an
		// old kernel, a FUSE /tmp) this test cannot run.
		if os.Getenv("CI") == "true" || os.Getenv("SNAPFS_REQUIRE_FUSE") == "1" {
			t.Fatal("the temp dir file system cannot punch holes, but CI's must")
		}
		t.Skip("temp dir file system cannot punch holes")
	}
	var locs []Location
	var datas [][]byte
	for i := 0; i < 12; i++ { // 16 KiB extents: 4 per pack -> packs 1, 2, 3
		d := payload(i, 14000)
		locs = append(locs, appendT(t, p, d)...)
		datas = append(datas, d)
	}
	if err := p.Sync(locs); err != nil {
		t.Fatal(err)
	}
	if locs[0].Pack != 1 || locs[4].Pack != 2 || locs[11].Pack != 3 {
		t.Fatalf("packs: %v", locs)
	}
	first := packPath(p, locs[0])
	before := allocated(t, first)
	if err := p.Free(locs[:2]); err != nil {
		t.Fatal(err)
	}
	if after := allocated(t, first); after >= before {
		t.Fatalf("allocated %d -> %d after punching", before, after)
	}
	readT(t, p, locs[2], datas[2])
	if err := p.Free(locs[:4]); err != nil { // includes a double free
		t.Fatal(err)
	}
	if _, err := os.Stat(first); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("empty sealed pack 1 not deleted: %v", err)
	}
	if err := p.Free(locs[:4]); err != nil {
		t.Fatalf("free in a deleted pack: %v", err)
	}
	// The active pack is never deleted, even when empty.
	if err := p.Free(locs[8:]); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(packPath(p, locs[8])); err != nil {
		t.Fatalf("active pack: %v", err)
	}
	readT(t, p, locs[5], datas[5])
	st, err := p.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Packs != 2 || st.Used != 4*16384 || st.Freed != 8 || st.Appended != 12 {
		t.Errorf("stats %+v", st)
	}
	// Appending goes on in the active pack after the freed records.
	l := appendT(t, p, datas[0])
	readT(t, p, l[0], datas[0])
}

func TestFreeWithoutPunch(t *testing.T) {
	for _, tc := range []struct {
		name string
		fs   func() FS
	}{
		{"probe fails", func() FS {
			f := NewFaultFS(NewMemFS())
			f.Inject(Fault{Op: OpPunch, Err: syscall.EOPNOTSUPP, Sticky: true})
			return f
		}},
		{"btrfs", func() FS { m := NewMemFS(); m.SetType(BtrfsMagic); return m }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := NewTestPoolOptions(t, 1, CreateOptions{FS: tc.fs()}, OpenOptions{})
			if p.ms()[0].canPunch || p.ms()[0].maxPack != PackSizeNoPunch {
				t.Fatalf("canPunch %v maxPack %d", p.ms()[0].canPunch, p.ms()[0].maxPack)
			}
			d := payload(4, 9000)
			locs := appendT(t, p, d)
			if err := p.Free(locs); err != nil {
				t.Fatal(err)
			}
			readT(t, p, locs[0], d) // nothing was punched
			st, _ := p.Stats()
			if st.Members[0].CanPunch {
				t.Error("stats say it can punch")
			}
		})
	}
}

// slowSyncFS counts and slows down pack fdatasyncs.
type slowSyncFS struct {
	FS
	mu    sync.Mutex
	syncs int
}

type slowSyncFile struct {
	File
	fs *slowSyncFS
}

func (s *slowSyncFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := s.FS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return slowSyncFile{f, s}, nil
}

func (f slowSyncFile) Sync() error {
	f.fs.mu.Lock()
	f.fs.syncs++
	f.fs.mu.Unlock()
	time.Sleep(2 * time.Millisecond)
	return f.File.Sync()
}

func TestSyncGroupCommit(t *testing.T) {
	mem := NewMemFS()
	sfs := &slowSyncFS{FS: mem}
	p := NewTestPoolOptions(t, 2, CreateOptions{FS: sfs}, OpenOptions{})
	sfs.mu.Lock()
	sfs.syncs = 0
	sfs.mu.Unlock()
	const writers, each = 32, 8
	var wg sync.WaitGroup
	var mu sync.Mutex
	type rec struct {
		loc  Location
		data []byte
	}
	var done []rec
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				d := payload(w*1000+i, 2000)
				locs, err := p.Append(hashOf(d), d)
				if err != nil {
					t.Error(err)
					return
				}
				if err := p.Sync(locs); err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				done = append(done, rec{locs[0], d})
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	sfs.mu.Lock()
	syncs := sfs.syncs
	sfs.mu.Unlock()
	t.Logf("%d Sync calls, %d fdatasyncs", writers*each, syncs)
	if syncs >= writers*each/2 {
		t.Errorf("%d fdatasyncs for %d Sync calls: no group commit", syncs, writers*each)
	}
	// Everything Sync returned for survives a power cut.
	q := openT(t, p.Dir(), mem.CrashClone(), OpenOptions{})
	for _, r := range done {
		readT(t, q, r.loc, r.data)
	}
}

func TestSyncFailureIsSticky(t *testing.T) {
	ffs := NewFaultFS(NewMemFS())
	p := NewTestPoolOptions(t, 2, CreateOptions{FS: ffs}, OpenOptions{})
	locs := appendT(t, p, payload(5, 100))
	ffs.Inject(Fault{Op: OpSync, Path: ".pack", Err: syscall.EIO})
	if err := p.Sync(locs); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Sync: %v, want EIO", err)
	}
	if err := p.Sync(locs); err == nil {
		t.Fatal("second Sync of the same record succeeded after a failed fdatasync")
	}
	bad := locs[0].Member
	for i := 0; i < 6; i++ {
		l := appendT(t, p, payload(i, 100))
		if l[0].Member == bad {
			t.Fatalf("append went to the failed member")
		}
		if err := p.Sync(l); err != nil {
			t.Fatal(err)
		}
	}
	st, _ := p.Stats()
	if st.Members[bad].Failed == "" {
		t.Error("stats do not show the failed member")
	}
}

func TestRotationSyncsSealedPack(t *testing.T) {
	mem := NewMemFS()
	p := NewTestPoolOptions(t, 1, CreateOptions{FS: mem}, OpenOptions{MaxPackSize: 32 << 10})
	var locs []Location
	var datas [][]byte
	for i := 0; i < 5; i++ { // 8 KiB extents: 4 fill pack 1, the 5th rotates
		d := payload(i, 5000)
		locs = append(locs, appendT(t, p, d)...)
		datas = append(datas, d)
	}
	if locs[3].Pack != 1 || locs[4].Pack != 2 {
		t.Fatalf("locations %v", locs)
	}
	if err := p.Sync(locs[:4]); err != nil { // already durable: no wait
		t.Fatal(err)
	}
	q := openT(t, p.Dir(), mem.CrashClone(), OpenOptions{MaxPackSize: 32 << 10})
	for i := 0; i < 4; i++ {
		readT(t, q, locs[i], datas[i])
	}
	if _, err := q.Read(locs[4], hashOf(datas[4]), nil); err == nil {
		t.Fatal("unsynced record in the new pack survived the crash")
	}
}

func TestRecoveryTornTail(t *testing.T) {
	mem := NewMemFS()
	p := NewTestPoolOptions(t, 1, CreateOptions{FS: mem}, OpenOptions{})
	var locs []Location
	var datas [][]byte
	add := func(n int) {
		for i := 0; i < n; i++ {
			d := payload(len(datas), 6000)
			locs = append(locs, appendT(t, p, d)...)
			datas = append(datas, d)
		}
		if err := p.Sync(locs); err != nil {
			t.Fatal(err)
		}
	}
	add(3)
	if err := p.MarkAccounted(); err != nil {
		t.Fatal(err)
	}
	add(3)
	// Record 4 is freed (punched) in the unaccounted tail: the scan must
	// step over its hole and still find record 5.
	if err := p.Free(locs[4:5]); err != nil {
		t.Fatal(err)
	}
	// A torn record after the last one: half a header and payload.
	end := locs[5].Offset + extent(6000)
	torn := encodeRecord(nil, p.id, hashOf(datas[0]), datas[0])[:3000]
	name := packPath(p, locs[0])
	f, _ := mem.OpenFile(name, os.O_RDWR, 0)
	f.WriteAt(torn, end)
	f.Sync()
	f.Close()
	if err := p.Sync(locs); err != nil { // make the punch durable too
		t.Fatal(err)
	}

	q := openT(t, p.Dir(), mem.CrashClone(), OpenOptions{})
	tails := q.Tails()
	want := []TailRecord{{locs[3], hashOf(datas[3])}, {locs[5], hashOf(datas[5])}}
	if fmt.Sprint(tails) != fmt.Sprint(want) {
		t.Fatalf("tails %v, want %v", tails, want)
	}
	fi, _ := q.fs.Stat(name)
	if fi.Size() != end {
		t.Fatalf("pack size %d after recovery, want %d (torn tail cut)", fi.Size(), end)
	}
	for _, i := range []int{0, 1, 2, 3, 5} {
		readT(t, q, locs[i], datas[i])
	}
	l := appendT(t, q, datas[1])
	if l[0].Offset != end {
		t.Fatalf("next append at %d, want %d", l[0].Offset, end)
	}
	// After the store frees what it does not reference and marks, the next
	// open scans nothing.
	if err := q.Sync(l); err != nil {
		t.Fatal(err)
	}
	if err := q.MarkAccounted(); err != nil {
		t.Fatal(err)
	}
	clone := q.fs.(*MemFS).CrashClone()
	if r := openT(t, q.Dir(), clone, OpenOptions{}); len(r.Tails()) != 0 {
		t.Fatalf("tails after MarkAccounted: %v", r.Tails())
	}
}

func TestCrashDropsUnsynced(t *testing.T) {
	mem := NewMemFS()
	p := NewTestPoolOptions(t, 2, CreateOptions{FS: mem}, OpenOptions{})
	a, b := payload(10, 20000), payload(11, 20000)
	la := appendT(t, p, a)
	if err := p.Sync(la); err != nil {
		t.Fatal(err)
	}
	la2 := appendT(t, p, a) // same member as lb? no matter: unsynced both
	lb := appendT(t, p, b)
	_ = la2
	q := openT(t, p.Dir(), mem.CrashClone(), OpenOptions{})
	readT(t, q, la[0], a)
	if _, err := q.Read(lb[0], hashOf(b), nil); !errors.Is(err, ErrChecksum) {
		t.Fatalf("unsynced record after crash: %v, want ErrChecksum", err)
	}
	for _, tr := range q.Tails() {
		if tr.Hash == hashOf(b) {
			t.Fatalf("unsynced record in tails")
		}
	}
	// In-place crash of the live FS too.
	mem.Crash()
	readT(t, p, la[0], a)
}

func TestNoSpace(t *testing.T) {
	t.Run("ENOSPC from a write", func(t *testing.T) {
		ffs := NewFaultFS(NewMemFS())
		p := NewTestPoolOptions(t, 1, CreateOptions{FS: ffs}, OpenOptions{})
		l1 := appendT(t, p, payload(1, 5000))
		ffs.Inject(Fault{Op: OpWrite, Path: ".pack", Err: syscall.ENOSPC, Torn: true})
		d := payload(2, 5000)
		if _, err := p.Append(hashOf(d), d); !errors.Is(err, ErrNoSpace) || !errors.Is(err, syscall.ENOSPC) {
			t.Fatalf("Append: %v, want ErrNoSpace", err)
		}
		l2 := appendT(t, p, d) // the member is usable again, at the same offset
		if l2[0].Offset != l1[0].Offset+extent(5000) {
			t.Fatalf("offset after a failed write: %d", l2[0].Offset)
		}
		readT(t, p, l2[0], d)
	})
	t.Run("falls back to another member", func(t *testing.T) {
		ffs := NewFaultFS(NewMemFS())
		p := NewTestPoolOptions(t, 2, CreateOptions{FS: ffs}, OpenOptions{})
		ffs.Inject(Fault{Op: OpWrite, Path: "m0/packs", Err: syscall.ENOSPC, Sticky: true})
		for i := 0; i < 4; i++ {
			if l := appendT(t, p, payload(i, 100)); l[0].Member != 1 {
				t.Fatalf("append to the full member: %v", l)
			}
		}
	})
	t.Run("MemFS capacity", func(t *testing.T) {
		mem := NewMemFS()
		mem.SetCapacity(64 << 10)
		p := NewTestPoolOptions(t, 1, CreateOptions{FS: mem}, OpenOptions{})
		var err error
		for i := 0; i < 20 && err == nil; i++ {
			d := payload(i, 8000)
			_, err = p.Append(hashOf(d), d)
		}
		if !errors.Is(err, ErrNoSpace) {
			t.Fatalf("filling the fs: %v", err)
		}
	})
	t.Run("Reserve", func(t *testing.T) {
		mem := NewMemFS()
		mem.SetCapacity(100 << 20)
		p := NewTestPoolOptions(t, 1, CreateOptions{FS: mem}, OpenOptions{})
		// 100 MiB less the 8 MiB slop less a few KiB of metadata.
		if err := p.Reserve(80 << 20); err != nil {
			t.Fatal(err)
		}
		if err := p.Reserve(20 << 20); !errors.Is(err, ErrNoSpace) {
			t.Fatalf("over-reserve: %v", err)
		}
		p.Unreserve(80 << 20)
		if err := p.Reserve(90 << 20); err != nil {
			t.Fatal(err)
		}
		st, _ := p.Stats()
		if st.Reserved != 90<<20 {
			t.Errorf("reserved %d", st.Reserved)
		}
	})
}

func TestReadFaults(t *testing.T) {
	ffs := NewFaultFS(NewMemFS())
	p := NewTestPoolOptions(t, 2, CreateOptions{FS: ffs, Copies: 2}, OpenOptions{})
	d := payload(9, 4000)
	locs := appendT(t, p, d)
	ffs.Inject(Fault{Op: OpRead, Path: "m" + fmt.Sprint(locs[0].Member) + "/", Err: syscall.EIO})
	if _, err := p.Read(locs[0], hashOf(d), nil); !errors.Is(err, syscall.EIO) {
		t.Fatalf("Read: %v, want EIO", err)
	}
	ffs.Inject(Fault{Op: OpRead, Path: "m" + fmt.Sprint(locs[0].Member) + "/", Err: syscall.EIO})
	got, err := p.ReadAny(locs, hashOf(d), nil)
	if err != nil || !bytes.Equal(got, d) {
		t.Fatalf("ReadAny around EIO: %v", err)
	}
}

func TestReadOnly(t *testing.T) {
	mem := NewMemFS()
	p := NewTestPoolOptions(t, 1, CreateOptions{FS: mem}, OpenOptions{})
	d := payload(1, 3000)
	locs := appendT(t, p, d)
	p.Sync(locs)
	p.Close()
	q := openT(t, p.Dir(), mem, OpenOptions{ReadOnly: true})
	readT(t, q, locs[0], d)
	if _, err := q.Append(hashOf(d), d); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Append: %v", err)
	}
	if err := q.Free(locs); !errors.Is(err, ErrReadOnly) {
		t.Fatalf("Free: %v", err)
	}
	if len(q.Tails()) != 1 {
		t.Fatalf("tails %v", q.Tails())
	}
}

func TestClosed(t *testing.T) {
	p := NewTestPool(t, 1)
	p.Close()
	if _, err := p.Append(Hash{}, nil); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
	if err := p.Close(); !errors.Is(err, ErrClosed) {
		t.Fatal(err)
	}
}

func TestRecoveryAcrossRotation(t *testing.T) {
	mem := NewMemFS()
	oo := OpenOptions{MaxPackSize: 16 << 10}
	p := NewTestPoolOptions(t, 1, CreateOptions{FS: mem}, oo)
	first := appendT(t, p, payload(0, 5000))
	p.Sync(first)
	if err := p.MarkAccounted(); err != nil {
		t.Fatal(err)
	}
	var locs []Location
	for i := 1; i <= 5; i++ { // 8 KiB extents, two per pack: packs 1..3
		locs = append(locs, appendT(t, p, payload(i, 5000))...)
	}
	if err := p.Sync(locs); err != nil {
		t.Fatal(err)
	}
	q := openT(t, p.Dir(), mem.CrashClone(), oo)
	var got []Location
	for _, tr := range q.Tails() {
		got = append(got, tr.Loc)
	}
	if fmt.Sprint(got) != fmt.Sprint(locs) {
		t.Fatalf("tails %v, want %v", got, locs)
	}
}

func TestWriteEIOFailsMember(t *testing.T) {
	ffs := NewFaultFS(NewMemFS())
	p := NewTestPoolOptions(t, 2, CreateOptions{FS: ffs}, OpenOptions{})
	ffs.Inject(Fault{Op: OpWrite, Path: "m0/packs", Err: syscall.EIO})
	for i := 0; i < 4; i++ {
		l := appendT(t, p, payload(i, 100)) // the first falls back to m1
		if l[0].Member != 1 {
			t.Fatalf("append %d went to the failed member: %v", i, l)
		}
	}
}
