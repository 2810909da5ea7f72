package pool

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snapfs/snapfs/objstore"
)

const testObjURL = "s3://bucket/pool1"

// objEnv is a pool over dirs directory members and one object-store
// member (an objstore.Mem), all on one MemFS.
type objEnv struct {
	fs   *MemFS
	mem  *objstore.Mem
	dir  string
	oo   OpenOptions
	open func(objstore.Config) (objstore.Store, error)
}

func newObjEnv(t *testing.T, dirs, copies int, oo OpenOptions) (*objEnv, *Pool) {
	t.Helper()
	return newObjEnvAsync(t, dirs, copies, oo, false)
}

// newObjEnvAsync is newObjEnv with the object-store member an
// asynchronous replica when async is set.
func newObjEnvAsync(t *testing.T, dirs, copies int, oo OpenOptions, async bool) (*objEnv, *Pool) {
	t.Helper()
	e := &objEnv{fs: NewMemFS(), mem: objstore.NewMem("bucket/pool1")}
	e.open = func(c objstore.Config) (objstore.Store, error) {
		if c.URL != testObjURL {
			return nil, fmt.Errorf("no store %s", c.URL)
		}
		return e.mem, nil
	}
	root := t.TempDir()
	e.dir = filepath.Join(root, "pool")
	co := CreateOptions{FS: e.fs, Copies: copies, ObjectStores: e.open}
	if async {
		co.Async = map[string]bool{testObjURL: true}
	}
	for i := 0; i < dirs; i++ {
		d := filepath.Join(root, fmt.Sprintf("m%d", i))
		if err := e.fs.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		co.Members = append(co.Members, d)
		co.Domains = append(co.Domains, fmt.Sprintf("d%d", i))
	}
	co.Members = append(co.Members, testObjURL)
	co.Domains = append(co.Domains, "")
	if err := Create(e.dir, co); err != nil {
		t.Fatal(err)
	}
	oo.FS, oo.ObjectStores = e.fs, e.open
	e.oo = oo
	return e, e.openPool(t, e.fs)
}

func (e *objEnv) openPool(t *testing.T, fsys FS) *Pool {
	t.Helper()
	oo := e.oo
	oo.FS = fsys
	p, err := Open(e.dir, oo)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// objMember returns the pool's object-store member.
func objMember(p *Pool) *member {
	for _, m := range p.ms() {
		if m.cfg.Kind == KindS3 {
			return m
		}
	}
	return nil
}

// objects lists the sealed objects of the store.
func (e *objEnv) objects(t *testing.T) []string {
	t.Helper()
	infos, err := e.mem.List(context.Background(), objPacks)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, in := range infos {
		keys = append(keys, in.Key)
	}
	return keys
}

// crash stops p as a power cut would: its object-store member neither
// seals nor Puts anything more (the store itself survives).
func crashObjects(p *Pool) {
	for _, m := range p.ms() {
		if m.obj != nil {
			m.stopSealer()
			m.syncMu.Lock()
			m.mu.Lock()
			m.failed = errors.New("crashed")
			m.mu.Unlock()
			m.syncMu.Unlock()
		}
	}
}

func onMember(locs []Location, i uint16) (Location, bool) {
	for _, l := range locs {
		if l.Member == i {
			return l, true
		}
	}
	return Location{}, false
}

// TestObjectMember covers the object-store member's life in a table:
// where records go, when objects are Put, how they read back.
func TestObjectMember(t *testing.T) {
	tests := []struct {
		name         string
		dirs, copies int
		oo           OpenOptions
		records      int
		size         int
		sync         bool
		wantObjects  int // after the appends (and Sync, if any); -1: at least one
		wantAfterRep int // objects after a reopen (which seals the stage)
	}{
		{"unsynced records stay in the stage", 1, 2, OpenOptions{SealInterval: time.Hour}, 3, 20000, false, 0, 1},
		{"sync puts one object", 1, 2, OpenOptions{SealInterval: time.Hour}, 3, 20000, true, 1, 1},
		{"only member", 0, 1, OpenOptions{SealInterval: time.Hour}, 5, 50000, true, 1, 1},
		{"rotation by size", 0, 1, OpenOptions{SealInterval: time.Hour, ObjectSize: 64 << 10}, 6, 40000, true, 6, 6},
		{"seal interval", 1, 2, OpenOptions{SealInterval: 20 * time.Millisecond}, 2, 9000, false, -1, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, p := newObjEnv(t, tc.dirs, tc.copies, tc.oo)
			obj := uint16(tc.dirs)
			var locs [][]Location
			var datas [][]byte
			for i := 0; i < tc.records; i++ {
				d := payload(i, tc.size)
				l := appendT(t, p, d)
				if _, ok := onMember(l, obj); !ok {
					t.Fatalf("record %d has no copy on the object member: %v", i, l)
				}
				locs, datas = append(locs, l), append(datas, d)
			}
			if tc.sync {
				var all []Location
				for _, l := range locs {
					all = append(all, l...)
				}
				if err := p.Sync(all); err != nil {
					t.Fatal(err)
				}
			}
			if tc.wantObjects < 0 {
				deadline := time.Now().Add(5 * time.Second)
				for len(e.objects(t)) == 0 && time.Now().Before(deadline) {
					time.Sleep(5 * time.Millisecond)
				}
				if len(e.objects(t)) == 0 {
					t.Fatal("the seal interval passed and no object was Put")
				}
			} else if got := e.objects(t); len(got) != tc.wantObjects {
				t.Fatalf("objects %v, want %d", got, tc.wantObjects)
			}
			for i, l := range locs {
				readT(t, p, l[len(l)-1], datas[i])
			}
			// A read of a sealed record is one ranged Get.
			if tc.sync {
				gets := e.mem.Ops("get")
				ol, _ := onMember(locs[0], obj)
				readT(t, p, ol, datas[0])
				if n := e.mem.Ops("get") - gets; n != 1 {
					t.Fatalf("a read of a sealed record made %d Gets, want 1", n)
				}
			}
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			q := e.openPool(t, e.fs)
			if got := e.objects(t); len(got) != tc.wantAfterRep {
				t.Fatalf("after close and reopen: objects %v, want %d", got, tc.wantAfterRep)
			}
			for i, l := range locs {
				ol, _ := onMember(l, obj)
				readT(t, q, ol, datas[i])
			}
			stage, err := objMember(q).listLocalPacks()
			if err != nil || len(stage) != 1 {
				t.Fatalf("stage after reopen holds packs %v (%v), want the fresh active one", stage, err)
			}
		})
	}
}

// TestObjectMemberSyncFailure: a Put that fails fails Sync of the
// records it holds and degrades the member; the directory copy serves
// reads; once the store answers again a CheckMembers retry Puts the
// stage and the member is back.
func TestObjectMemberSyncFailure(t *testing.T) {
	e, p := newObjEnv(t, 1, 2, OpenOptions{SealInterval: time.Hour})
	down := errors.New("503 SlowDown")
	e.mem.SetFault(func(op, key string) error { return down })
	d := payload(1, 30000)
	locs := appendT(t, p, d)
	failed := p.SyncEach(locs)
	if err := failed[1]; !errors.Is(err, down) {
		t.Fatalf("sync with the store down: %v, want the store's error on member 1", failed)
	}
	if failed[0] != nil {
		t.Fatalf("the directory copy failed too: %v", failed[0])
	}
	if h := p.Health(); h.Members[1].State != StateDegraded {
		t.Fatalf("health %+v, want member 1 degraded", h)
	}
	// The stage pack whose Put failed is not offered to repack.
	e.mem.SetFault(func(op, key string) error {
		if op == "put" {
			return down
		}
		return nil
	})
	pis, err := p.Packs(1)
	if err != nil || len(pis) != 2 || !pis[0].Active || !pis[1].Active {
		t.Fatalf("packs of the member with a failed Put: %+v %v, want the pending and the active stage pack, both active", pis, err)
	}
	e.mem.SetFault(func(op, key string) error { return down })
	if _, err := p.ReadAny(locs, hashOf(d), nil); err != nil {
		t.Fatalf("read around the object member: %v", err)
	}
	// Still down: a check finds it gone.
	evs := p.CheckMembers(CheckOptions{RetryFailed: true})
	if len(evs) != 1 || !evs[0].Lost {
		t.Fatalf("events with the store down: %+v, want member 1 lost", evs)
	}
	e.mem.SetFault(nil)
	evs = p.CheckMembers(CheckOptions{RetryFailed: true})
	if len(evs) != 1 || !evs[0].Back {
		t.Fatalf("events with the store back: %+v, want member 1 back", evs)
	}
	if len(e.objects(t)) != 1 {
		t.Fatalf("the stage was not Put when the member came back: %v", e.objects(t))
	}
	ol, _ := onMember(locs, 1)
	readT(t, p, ol, d)
	if h := p.Health(); h.State != StateOK {
		t.Fatalf("health after recovery %+v", h)
	}
}

// TestObjectMemberDamage: an object whose bytes or length are wrong
// reads as a checksum error (never wrong bytes) and ReadAny reads around
// it, reporting the bad copy for repair.
func TestObjectMemberDamage(t *testing.T) {
	for _, damage := range []string{"corrupt", "truncate", "delete"} {
		t.Run(damage, func(t *testing.T) {
			e, p := newObjEnv(t, 1, 2, OpenOptions{SealInterval: time.Hour})
			d := payload(2, 30000)
			locs := appendT(t, p, d)
			if err := p.Sync(locs); err != nil {
				t.Fatal(err)
			}
			ol, _ := onMember(locs, 1)
			key := objKey(ol.Pack)
			switch damage {
			case "corrupt":
				e.mem.Corrupt(key, ol.Offset+HeaderSize+100)
			case "truncate":
				e.mem.Truncate(key, ol.Offset+HeaderSize+1000)
			case "delete":
				e.mem.Delete(context.Background(), key)
			}
			_, err := p.Read(ol, hashOf(d), nil)
			if damage != "delete" && !errors.Is(err, ErrChecksum) {
				t.Fatalf("read of a damaged object: %v, want ErrChecksum", err)
			}
			if damage == "delete" && err == nil {
				t.Fatal("read of a deleted object succeeded")
			}
			got, bad, err := p.ReadAnyReport([]Location{ol, locs[0]}, hashOf(d), nil)
			if err != nil || !bytes.Equal(got, d) {
				t.Fatalf("read around: %v", err)
			}
			if damage != "delete" && (len(bad) != 1 || bad[0].Loc != ol) {
				t.Fatalf("bad copies %v, want the object's", bad)
			}
		})
	}
}

// TestObjectMemberPrefixTaken: a prefix holding another pool's
// member.json is refused naming that pool; one holding other objects is
// refused as someone else's; nothing in the store is changed.
func TestObjectMemberPrefixTaken(t *testing.T) {
	e, p := newObjEnv(t, 0, 1, OpenOptions{})
	id := p.Config().ID
	p.Close()
	co := CreateOptions{FS: e.fs, Members: []string{testObjURL}, ObjectStores: e.open}
	err := Create(filepath.Join(t.TempDir(), "p2"), co)
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), id) {
		t.Fatalf("create over another pool's member: %v, want ErrExists naming %s", err, id)
	}
	other := objstore.NewMem("other")
	other.Put(context.Background(), "photos/cat.jpg", []byte("meow"))
	co.ObjectStores = func(objstore.Config) (objstore.Store, error) { return other, nil }
	err = Create(filepath.Join(t.TempDir(), "p3"), co)
	if !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "someone else") {
		t.Fatalf("create over foreign objects: %v", err)
	}
	if infos, _ := other.List(context.Background(), ""); len(infos) != 1 {
		t.Fatalf("the refused create changed the store: %v", infos)
	}
	for _, bad := range []string{"s3://", "s3://Bad_Bucket/p", "gs://bucket/p"} {
		co.Members = []string{bad}
		if err := Create(filepath.Join(t.TempDir(), "p4"), co); err == nil {
			t.Fatalf("create with member %q succeeded", bad)
		}
	}
}

// TestObjectMemberCrash: after a power cut (MemFS drops what was not
// fsynced; the store keeps what was Put) every synced record reads back,
// records Put but not accounted come back as tails, the stage is Put at
// Open, and appends go on in a fresh stage pack.
func TestObjectMemberCrash(t *testing.T) {
	e, p := newObjEnv(t, 1, 2, OpenOptions{SealInterval: time.Hour})
	var synced [][]Location
	var datas [][]byte
	for i := 0; i < 4; i++ {
		d := payload(10+i, 25000)
		l := appendT(t, p, d)
		if err := p.Sync(l); err != nil {
			t.Fatal(err)
		}
		synced, datas = append(synced, l), append(datas, d)
		if i == 1 {
			if err := p.MarkAccounted(); err != nil {
				t.Fatal(err)
			}
		}
	}
	unsynced := payload(99, 25000)
	appendT(t, p, unsynced)
	crashObjects(p)
	q := e.openPool(t, e.fs.CrashClone())
	for i, l := range synced {
		ol, _ := onMember(l, 1)
		readT(t, q, ol, datas[i])
	}
	var objTails []Hash
	for _, tr := range q.Tails() {
		if tr.Loc.Member == 1 {
			objTails = append(objTails, tr.Hash)
		}
		if tr.Hash == hashOf(unsynced) && tr.Loc.Member == 1 {
			t.Fatal("an unsynced record came back from the stage after a power cut")
		}
	}
	if fmt.Sprint(objTails) != fmt.Sprint([]Hash{hashOf(datas[2]), hashOf(datas[3])}) {
		t.Fatalf("object member tails %v, want records 2 and 3", objTails)
	}
	d := payload(50, 25000)
	l := appendT(t, q, d)
	if err := q.Sync(l); err != nil {
		t.Fatal(err)
	}
	ol, _ := onMember(l, 1)
	readT(t, q, ol, d)
}

// TestObjectMemberRepackDelete: DeletePack deletes a sealed object, and
// refuses the active stage pack; Packs lists objects with their sizes.
func TestObjectMemberRepackDelete(t *testing.T) {
	e, p := newObjEnv(t, 0, 1, OpenOptions{SealInterval: time.Hour, ObjectSize: 64 << 10})
	var locs []Location
	for i := 0; i < 4; i++ {
		locs = append(locs, appendT(t, p, payload(i, 40000))...)
	}
	if err := p.Sync(locs); err != nil {
		t.Fatal(err)
	}
	pis, err := p.Packs(0)
	if err != nil {
		t.Fatal(err)
	}
	if len(pis) != 5 || !pis[4].Active || pis[0].Size != extent(40000) {
		t.Fatalf("packs %+v, want 4 objects of one record and the active stage pack", pis)
	}
	if err := p.DeletePack(0, pis[4].Pack); err == nil {
		t.Fatal("deleting the active stage pack succeeded")
	}
	if err := p.DeletePack(0, locs[0].Pack); err != nil {
		t.Fatal(err)
	}
	if got := e.objects(t); len(got) != 3 {
		t.Fatalf("objects after delete: %v", got)
	}
	if _, err := p.Read(locs[0], hashOf(payload(0, 40000)), nil); err == nil {
		t.Fatal("a record of a deleted object still reads")
	}
	readT(t, p, locs[1], payload(1, 40000))
}

// TestObjectMemberModel is a randomized model test: appends, syncs,
// reads, store outages, checks, closes and power cuts in random order;
// every record whose Sync succeeded on the object member must read back
// from it. The seed is printed on failure.
func TestObjectMemberModel(t *testing.T) {
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	defer func() {
		if t.Failed() {
			t.Logf("seed %d", seed)
		}
	}()
	e, p := newObjEnv(t, 1, 2, OpenOptions{SealInterval: 30 * time.Millisecond, ObjectSize: 96 << 10})
	type rec struct {
		loc  Location
		data []byte
	}
	var durable []rec  // synced on the object member
	var unsynced []rec // appended, not synced
	var down bool      // the store fails every operation
	var mu sync.Mutex  // guards down (read by the fault hook)
	e.mem.SetFault(func(op, key string) error {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return errors.New("store down")
		}
		return nil
	})
	setDown := func(v bool) { mu.Lock(); down = v; mu.Unlock() }
	for step := 0; step < 300; step++ {
		switch op := rng.Intn(20); {
		case op < 8:
			d := payload(rng.Int(), 1+rng.Intn(40000))
			l, err := p.Append(hashOf(d), d)
			if err != nil {
				t.Fatalf("step %d: append: %v", step, err)
			}
			if ol, ok := onMember(l, 1); ok {
				unsynced = append(unsynced, rec{ol, d})
			}
		case op < 11:
			var ls []Location
			for _, r := range unsynced {
				ls = append(ls, r.loc)
			}
			failed := p.SyncEach(ls)
			if failed[1] == nil {
				durable = append(durable, unsynced...)
			}
			unsynced = nil
		case op < 14 && len(durable) > 0:
			r := durable[rng.Intn(len(durable))]
			mu.Lock()
			d := down
			mu.Unlock()
			if _, err := p.Read(r.loc, hashOf(r.data), nil); err != nil && !d && !p.Gone(1) {
				t.Fatalf("step %d: read %v: %v", step, r.loc, err)
			}
		case op == 14:
			setDown(!down)
		case op == 15:
			p.CheckMembers(CheckOptions{RetryFailed: true})
		case op == 16:
			if err := p.MarkAccounted(); err != nil {
				t.Fatalf("step %d: mark accounted: %v", step, err)
			}
		case op == 17:
			setDown(false)
			p.Close()
			p = e.openPool(t, e.fs)
			unsynced = nil
		case op == 18:
			setDown(false)
			crashObjects(p)
			clone := e.fs.CrashClone()
			p.Close()
			e.fs = clone
			p = e.openPool(t, e.fs)
			unsynced = nil
		}
	}
	setDown(false)
	p.CheckMembers(CheckOptions{RetryFailed: true})
	for _, r := range durable {
		readT(t, p, r.loc, r.data)
	}
}

// TestObjectMemberStaleStageFile: a crash after a stage pack was Put but
// before its file's removal was durable leaves the file, perhaps torn;
// Open keeps the object (never Puts the torn file over it) and removes
// the file.
func TestObjectMemberStaleStageFile(t *testing.T) {
	e, p := newObjEnv(t, 0, 1, OpenOptions{SealInterval: time.Hour})
	var locs []Location
	var datas [][]byte
	for i := 0; i < 3; i++ {
		d := payload(30+i, 20000)
		locs, datas = append(locs, appendT(t, p, d)...), append(datas, d)
	}
	if err := p.Sync(locs); err != nil {
		t.Fatal(err)
	}
	m := objMember(p)
	stage := m.packPath(locs[0].Pack)
	whole, err := e.mem.Get(context.Background(), objKey(locs[0].Pack), 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	p.Close()
	f, err := e.fs.OpenFile(stage, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt(whole[:len(whole)/2], 0) // torn: the first record and a half
	f.Sync()
	f.Close()
	q := e.openPool(t, e.fs)
	for i, l := range locs {
		readT(t, q, l, datas[i])
	}
	if _, err := e.fs.Stat(stage); err == nil {
		t.Fatal("the stale stage file is still there")
	}
}

// TestObjectMemberReadCache: a record read from the store is kept in the
// cache and read again without a Get; a damaged cache entry is rejected
// (a Get, never wrong bytes); the cache stays within its size, evicting
// the least recently used; a deleted object's entries go with it.
func TestObjectMemberReadCache(t *testing.T) {
	cacheDir := filepath.Join(t.TempDir(), "cache")
	e, p := newObjEnv(t, 0, 1, OpenOptions{SealInterval: time.Hour, CacheDir: cacheDir, CacheSize: 3 * extent(30000)})
	var locs []Location
	var datas [][]byte
	for i := 0; i < 5; i++ {
		d := payload(70+i, 30000)
		locs, datas = append(locs, appendT(t, p, d)...), append(datas, d)
	}
	if err := p.Sync(locs); err != nil {
		t.Fatal(err)
	}
	gets := func() int { return e.mem.Ops("get") }
	g := gets()
	readT(t, p, locs[0], datas[0])
	readT(t, p, locs[0], datas[0])
	if n := gets() - g; n != 1 {
		t.Fatalf("two reads of one record made %d Gets, want 1 (the second from the cache)", n)
	}
	// Damage the entry: the read verifies it, Gets the record again.
	name := p.cache.path(objMember(p), locs[0])
	f, err := e.fs.OpenFile(name, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("garbage"), HeaderSize+10)
	f.Close()
	g = gets()
	readT(t, p, locs[0], datas[0])
	if n := gets() - g; n != 1 {
		t.Fatalf("a read over a damaged entry made %d Gets, want 1", n)
	}
	for i := range locs {
		readT(t, p, locs[i], datas[i])
	}
	if st := p.CacheStats(); st.Bytes > st.Limit || st.Entries != 3 {
		t.Fatalf("cache %+v after 5 records through a cache of 3", st)
	}
	g = gets()
	readT(t, p, locs[4], datas[4]) // most recent: cached
	readT(t, p, locs[1], datas[1]) // evicted: a Get
	if n := gets() - g; n != 1 {
		t.Fatalf("reads of a cached and an evicted record made %d Gets, want 1", n)
	}
	if err := p.DeletePack(0, locs[0].Pack); err != nil {
		t.Fatal(err)
	}
	if st := p.CacheStats(); st.Entries != 0 || st.Bytes != 0 {
		t.Fatalf("cache %+v after its object was deleted", st)
	}
	if _, err := p.Read(locs[4], hashOf(datas[4]), nil); err == nil {
		t.Fatal("a record of a deleted object read from the cache")
	}
}

// TestObjectMemberStats: the statistics of an object-store member count
// its objects, and its backlog (bytes staged, not yet Put) with its age.
func TestObjectMemberStats(t *testing.T) {
	_, p := newObjEnv(t, 1, 2, OpenOptions{SealInterval: time.Hour})
	d := payload(5, 50000)
	locs := appendT(t, p, d)
	time.Sleep(20 * time.Millisecond)
	st, err := p.Stats()
	if err != nil {
		t.Fatal(err)
	}
	om := st.Members[1]
	if om.Kind != KindS3 || om.Objects != 0 || om.Backlog != extent(50000) || om.BacklogAge < 20*time.Millisecond {
		t.Fatalf("before sync: %+v", om)
	}
	if dm := st.Members[0]; dm.Kind != "" || dm.Backlog != 0 || dm.BacklogAge != 0 {
		t.Fatalf("directory member with a backlog: %+v", dm)
	}
	if err := p.Sync(locs); err != nil {
		t.Fatal(err)
	}
	st, _ = p.Stats()
	if om := st.Members[1]; om.Objects != 1 || om.Backlog != 0 || om.BacklogAge != 0 || om.Used != extent(50000) {
		t.Fatalf("after sync: %+v", om)
	}
}

// TestObjectMemberAddOnline: an object-store member added to an open
// pool takes records at once (a domain of its own, so copies can be
// raised to 2); its member.json and every other member's carry the new
// configuration; a second add of the same prefix is refused naming this
// pool; after a reopen it is still a member.
func TestObjectMemberAddOnline(t *testing.T) {
	mem := objstore.NewMem("added")
	stores := func(objstore.Config) (objstore.Store, error) { return mem, nil }
	p := NewTestPoolOptions(t, 1, CreateOptions{}, OpenOptions{ObjectStores: stores, SealInterval: time.Hour})
	url := "s3://added/p"
	mc, err := p.AddObjectMember(url, "", &objstore.Config{Endpoint: "http://127.0.0.1:9"})
	if err != nil {
		t.Fatal(err)
	}
	if mc.Kind != KindS3 || mc.Object.Endpoint != "http://127.0.0.1:9" || mc.Index != 1 {
		t.Fatalf("added %+v", mc)
	}
	if err := p.SetCopies(2); err != nil {
		t.Fatal(err)
	}
	d := payload(3, 40000)
	locs := appendT(t, p, d)
	if len(locs) != 2 {
		t.Fatalf("locations %v, want a copy on each member", locs)
	}
	if err := p.Sync(locs); err != nil {
		t.Fatal(err)
	}
	ol, _ := onMember(locs, 1)
	readT(t, p, ol, d)
	b, err := mem.Get(context.Background(), memberFile, 0, -1)
	if err != nil || !strings.Contains(string(b), p.Config().ID) {
		t.Fatalf("member.json in the store: %s %v", b, err)
	}
	if _, err := p.AddObjectMember(url, "", nil); !errors.Is(err, ErrExists) {
		t.Fatalf("adding the prefix again: %v", err)
	}
	dir := p.Dir()
	p.Close()
	q := openT(t, dir, OSFS{}, OpenOptions{ObjectStores: stores})
	readT(t, q, ol, d)
	if h := q.Health(); h.State != StateOK || len(h.Members) != 2 {
		t.Fatalf("health after reopen %+v", h)
	}
}

// TestObjectMemberCatchesUp: a member degraded by a failed Put comes back
// at the next member check once its store takes Puts again (no scrub
// needed), and stays degraded, quietly, while the store still refuses.
func TestObjectMemberCatchesUp(t *testing.T) {
	e, p := newObjEnv(t, 1, 2, OpenOptions{SealInterval: time.Hour})
	refuse := true
	var mu sync.Mutex
	e.mem.SetFault(func(op, key string) error {
		mu.Lock()
		defer mu.Unlock()
		if refuse && op == "put" {
			return errors.New("403 AccessDenied")
		}
		return nil
	})
	d := payload(8, 30000)
	locs := appendT(t, p, d)
	if failed := p.SyncEach(locs); failed[1] == nil {
		t.Fatal("sync succeeded with the store refusing Puts")
	}
	if evs := p.CheckMembers(CheckOptions{}); len(evs) != 1 || !evs[0].Degraded {
		t.Fatalf("events while Puts fail: %+v, want one Degraded", evs)
	}
	if evs := p.CheckMembers(CheckOptions{}); len(evs) != 0 {
		t.Fatalf("events at the second check while Puts fail: %+v, want none", evs)
	}
	mu.Lock()
	refuse = false
	mu.Unlock()
	evs := p.CheckMembers(CheckOptions{})
	if len(evs) != 1 || !evs[0].Back {
		t.Fatalf("events once Puts work: %+v, want member 1 back", evs)
	}
	ol, _ := onMember(locs, 1)
	readT(t, p, ol, d)
	if len(e.objects(t)) != 1 || p.Health().State != StateOK {
		t.Fatalf("objects %v, health %+v", e.objects(t), p.Health())
	}
}
