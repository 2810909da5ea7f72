package pool

import (
	"errors"
	"fmt"
	"io"
	"math/rand"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snapfs/snapfs/objstore"
)

// newAsyncEnv is newObjEnv with the object-store member an asynchronous
// replica (member index dirs).
func newAsyncEnv(t *testing.T, dirs, copies int, oo OpenOptions) (*objEnv, *Pool) {
	t.Helper()
	return newObjEnvAsync(t, dirs, copies, oo, true)
}

// waitReplica waits until cond holds of replica i's state.
func waitReplica(t *testing.T, p *Pool, i uint16, what string, cond func(ReplicaState) bool) ReplicaState {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		st, err := p.Replica(i)
		if err != nil {
			t.Fatal(err)
		}
		if cond(st) {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %d: %s: not reached: %+v", i, what, st)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func drained(st ReplicaState) bool { return st.Backlog == 0 && st.Err == nil }

// TestAsyncReplicaConfig: which pools with replicas Create accepts, and
// the one line each refusal gives.
func TestAsyncReplicaConfig(t *testing.T) {
	tests := []struct {
		name    string
		dirs    int
		copies  int
		async   []string // "obj" = the s3 member, "dir" = the first directory
		objects int
		want    string // "" = accepted
	}{
		{"replica beside a directory", 1, 1, []string{"obj"}, 1, ""},
		{"replica beside two directories, copies 2", 2, 2, []string{"obj"}, 1, ""},
		{"the only member", 0, 1, []string{"obj"}, 1, "--async on the only member s3://bucket/pool1"},
		{"every member", 0, 1, []string{"obj", "obj2"}, 2, "every member is --async"},
		{"copies would need it", 1, 2, []string{"obj"}, 1, "copies 2 needs 2 failure domains besides the asynchronous replicas"},
		{"a directory", 1, 1, []string{"dir"}, 1, "only an s3:// member can be an asynchronous replica"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fsys := NewMemFS()
			stores := map[string]*objstore.Mem{}
			open := func(c objstore.Config) (objstore.Store, error) {
				if stores[c.URL] == nil {
					stores[c.URL] = objstore.NewMem(c.URL)
				}
				return stores[c.URL], nil
			}
			root := t.TempDir()
			co := CreateOptions{FS: fsys, Copies: tc.copies, ObjectStores: open, Async: map[string]bool{}}
			for i := 0; i < tc.dirs; i++ {
				d := filepath.Join(root, fmt.Sprintf("m%d", i))
				fsys.MkdirAll(d, 0o755)
				co.Members = append(co.Members, d)
				co.Domains = append(co.Domains, fmt.Sprintf("d%d", i))
			}
			urls := []string{testObjURL, "s3://bucket/pool2"}
			for i := 0; i < tc.objects; i++ {
				co.Members = append(co.Members, urls[i])
				co.Domains = append(co.Domains, "")
			}
			for _, a := range tc.async {
				switch a {
				case "obj":
					co.Async[urls[0]] = true
				case "obj2":
					co.Async[urls[1]] = true
				case "dir":
					co.Async[co.Members[0]] = true
				}
			}
			err := Create(filepath.Join(root, "pool"), co)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("Create: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("Create: %v, want an error saying %q", err, tc.want)
			case tc.want != "" && strings.Contains(err.Error(), "\n"):
				t.Fatalf("Create: %q is not one line", err)
			}
			if tc.want != "" {
				if _, serr := fsys.Stat(filepath.Join(root, "pool", poolFile)); serr == nil {
					t.Fatal("a refused Create wrote pool.json")
				}
				return
			}
			cfg, err := readConfig(fsys, filepath.Join(root, "pool"))
			if err != nil {
				t.Fatal(err)
			}
			if m := cfg.Members[len(cfg.Members)-1]; !m.Async {
				t.Fatalf("pool.json: member %s not recorded as async", m.Path)
			}
		})
	}
}

// TestAsyncReplica: records get a replica copy that does not count; a
// Sync never waits for a Put; the uploader drains the backlog; every
// record then reads from the bucket.
func TestAsyncReplica(t *testing.T) {
	e, p := newAsyncEnv(t, 1, 1, OpenOptions{SealInterval: time.Hour})
	putsBefore := e.mem.Ops("put") // member.json
	var all [][]Location
	var datas [][]byte
	for i := 0; i < 6; i++ {
		d := payload(i, 30000)
		l := appendT(t, p, d)
		if len(l) != 2 || l[0].Member != 0 || l[1].Member != 1 {
			t.Fatalf("locations %v: want the counted copy on member 0, then the replica's on 1", l)
		}
		if got := p.Counted(l); got != 1 {
			t.Fatalf("Counted = %d, want 1", got)
		}
		if err := p.Sync(l); err != nil {
			t.Fatal(err)
		}
		all, datas = append(all, l), append(datas, d)
	}
	if n := e.mem.Ops("put") - putsBefore; n != 0 {
		t.Fatalf("%d Puts before the seal interval: Sync must not wait for the replica", n)
	}
	st, err := p.Replica(1)
	if err != nil {
		t.Fatal(err)
	}
	if st.Backlog < 6*30000 || st.BacklogAge <= 0 {
		t.Fatalf("backlog %d bytes, age %v: want the 6 records, waiting", st.Backlog, st.BacklogAge)
	}
	ms, err := p.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if ms.Members[1].Backlog != st.Backlog {
		t.Fatalf("Stats backlog %d, Replica %d", ms.Members[1].Backlog, st.Backlog)
	}
	if targets := p.CheckpointTargets(); len(targets) != 1 || targets[0] != 0 {
		t.Fatalf("checkpoint targets %v: a replica is never one", targets)
	}
	// A short seal interval: the uploader seals and Puts.
	m := p.ms()[1]
	m.mu.Lock()
	m.sealEvery = time.Millisecond
	m.mu.Unlock()
	m.kickSealer()
	waitReplica(t, p, 1, "drained", drained)
	if len(e.objects(t)) == 0 {
		t.Fatal("no object in the bucket after the backlog drained")
	}
	for i, l := range all {
		readT(t, p, l[1], datas[i])
	}
	if h := p.Health(); h.State != StateOK {
		t.Fatalf("health %+v, want ok", h)
	}
}

// TestAsyncReplicaCrash: a power cut (MemFS keeps only what was synced)
// loses none of the backlog: the next Open finds the stage and Puts it.
func TestAsyncReplicaCrash(t *testing.T) {
	for _, accounted := range []bool{false, true} {
		t.Run(fmt.Sprintf("accounted=%v", accounted), func(t *testing.T) {
			e, p := newAsyncEnv(t, 1, 1, OpenOptions{SealInterval: time.Hour, ObjectSize: 64 << 10})
			var all [][]Location
			var datas [][]byte
			for i := 0; i < 7; i++ { // past one object size: a pending stage pack and the active one
				d := payload(100+i, 20000)
				l := appendT(t, p, d)
				if err := p.Sync(l); err != nil {
					t.Fatal(err)
				}
				all, datas = append(all, l), append(datas, d)
			}
			if accounted {
				if err := p.MarkAccounted(); err != nil {
					t.Fatal(err)
				}
			}
			crashObjects(p)
			before := len(e.objects(t))
			q := e.openPool(t, e.fs.CrashClone())
			st := waitReplica(t, q, 1, "backlog found", func(st ReplicaState) bool { return st.Backlog > 0 || len(e.objects(t)) > before })
			_ = st
			qm := q.ms()[1]
			qm.mu.Lock()
			qm.sealEvery = time.Millisecond
			qm.mu.Unlock()
			qm.kickSealer()
			waitReplica(t, q, 1, "drained", drained)
			for i, l := range all {
				readT(t, q, l[1], datas[i])
			}
		})
	}
}

// TestAsyncReplicaUnreachable: Puts failing mark the replica degraded
// and keep the backlog; once the store answers it catches up.
func TestAsyncReplicaUnreachable(t *testing.T) {
	e, p := newAsyncEnv(t, 1, 1, OpenOptions{SealInterval: 5 * time.Millisecond})
	down := errors.New("connection refused")
	var mu sync.Mutex
	isDown := true
	e.mem.SetFault(func(op, key string) error {
		mu.Lock()
		defer mu.Unlock()
		if isDown {
			return down
		}
		return nil
	})
	var all [][]Location
	var datas [][]byte
	for i := 0; i < 5; i++ {
		d := payload(200+i, 10000)
		l := appendT(t, p, d)
		if err := p.Sync(l); err != nil {
			t.Fatalf("Sync with the replica down: %v", err)
		}
		all, datas = append(all, l), append(datas, d)
	}
	st := waitReplica(t, p, 1, "degraded", func(st ReplicaState) bool { return st.Err != nil })
	if st.Backlog < 5*10000 {
		t.Fatalf("backlog %d while down: want the records kept", st.Backlog)
	}
	h := p.Health()
	if h.State != StateDegraded || h.Members[1].State != StateDegraded || !strings.Contains(h.Members[1].Problem, "not receiving") {
		t.Fatalf("health %+v: want the replica degraded", h)
	}
	if h.Members[0].State != StateOK {
		t.Fatalf("health %+v: the directory member is fine", h)
	}
	mu.Lock()
	isDown = false
	mu.Unlock()
	waitReplica(t, p, 1, "caught up", drained)
	for i, l := range all {
		readT(t, p, l[1], datas[i])
	}
	if h := p.Health(); h.State != StateOK {
		t.Fatalf("health after catching up %+v", h)
	}
}

// TestAsyncReplicaBacklogLimit: past the limit writers wait for the
// uploader (the backlog never grows past limit plus one record); with
// the replica failing and the backlog full, records go without their
// replica copy (skips) instead of waiting.
func TestAsyncReplicaBacklogLimit(t *testing.T) {
	const limit = 100 << 10
	e, p := newAsyncEnv(t, 1, 1, OpenOptions{SealInterval: time.Millisecond, ObjectSize: 32 << 10, AsyncBacklog: limit})
	var slow sync.Mutex // held: Puts wait
	e.mem.SetFault(func(op, key string) error {
		if op == "put" {
			slow.Lock()
			slow.Unlock()
		}
		return nil
	})
	slow.Lock()
	done := make(chan int)
	go func() {
		n := 0
		for i := 0; i < 12; i++ {
			l, err := p.Append(hashOf(payload(300+i, 20000)), payload(300+i, 20000))
			if err == nil && len(l) == 2 {
				n++
			}
		}
		done <- n
	}()
	time.Sleep(300 * time.Millisecond)
	st, _ := p.Replica(1)
	select {
	case <-done:
		t.Fatal("12 records of 20 KB were staged past a 100 KiB backlog with Puts stalled")
	default:
	}
	if st.Backlog > limit+20000+HeaderSize+Align*2 {
		t.Fatalf("backlog %d past the limit %d", st.Backlog, limit)
	}
	slow.Unlock()
	if n := <-done; n != 12 {
		t.Fatalf("%d of 12 records got a replica copy", n)
	}
	waitReplica(t, p, 1, "drained", drained)

	// Failing Puts with a full backlog: skip, do not wait.
	e.mem.SetFault(func(op, key string) error { return errors.New("HTTP 503") })
	skipsBefore := p.ReplicaSkips(1)
	var skipped int
	for i := 0; i < 12; i++ {
		l := appendT(t, p, payload(400+i, 20000))
		if len(l) == 1 {
			skipped++
		}
	}
	if skipped == 0 || p.ReplicaSkips(1)-skipsBefore != uint64(skipped) || p.ReplicaComplete(1) {
		t.Fatalf("skipped %d, skips %d, complete %v: want records skipping the full, failing replica counted",
			skipped, p.ReplicaSkips(1)-skipsBefore, p.ReplicaComplete(1))
	}
	e.mem.SetFault(nil)
	waitReplica(t, p, 1, "drained", drained)
}

// TestAsyncReplicaCheckpointOrder: a checkpoint staged for the replica
// reaches the bucket only after every record appended before it, and
// only once the replica holds every chunk (SetReplicaComplete).
func TestAsyncReplicaCheckpointOrder(t *testing.T) {
	e, p := newAsyncEnv(t, 1, 1, OpenOptions{SealInterval: time.Hour})
	var mu sync.Mutex
	var puts []string
	e.mem.SetFault(func(op, key string) error {
		if op == "put" {
			mu.Lock()
			puts = append(puts, key)
			mu.Unlock()
		}
		return nil
	})
	var locs []Location
	for i := 0; i < 3; i++ {
		l := appendT(t, p, payload(500+i, 15000))
		locs = append(locs, l[1])
	}
	if err := p.Sync(locs); err != nil {
		t.Fatal(err)
	}
	files := map[string][]byte{"000001.sst": payload(1, 3000), "MANIFEST-000001": payload(2, 500)}
	info := CheckpointInfo{Seq: 7, Taken: time.Now(), Reason: "test"}
	for _, n := range []string{"000001.sst", "MANIFEST-000001"} {
		info.Files = append(info.Files, CheckpointFile{Name: n, Size: int64(len(files[n]))})
	}
	open := func(name string) (io.ReadCloser, error) {
		return io.NopCloser(strings.NewReader(string(files[name]))), nil
	}
	// Not complete (no backfill pass yet): the replica is not sent it.
	info.Replicas = p.CompleteReplicas()
	res, err := p.ShipCheckpoint(info, open)
	if err != nil || !res.Complete {
		t.Fatalf("ShipCheckpoint: %+v, %v", res, err)
	}
	if st, _ := p.Replica(1); st.Staged != 0 || len(info.Replicas) != 0 {
		t.Fatalf("replica %+v: a checkpoint taken before the replica was complete was staged for it", st)
	}
	p.SetReplicaComplete(1, p.ReplicaSkips(1))
	info.Seq, info.Replicas = 8, p.CompleteReplicas()
	if res, err := p.ShipCheckpoint(info, open); err != nil || !res.Complete {
		t.Fatalf("ShipCheckpoint: %+v, %v", res, err)
	}
	st, _ := p.Replica(1)
	if st.Staged != 8 || st.Shipped != 0 {
		t.Fatalf("replica %+v: want checkpoint 8 staged, not shipped (its records are not Put)", st)
	}
	m := p.ms()[1]
	m.mu.Lock()
	m.sealEvery = time.Millisecond
	m.mu.Unlock()
	m.kickSealer()
	waitReplica(t, p, 1, "checkpoint shipped", func(st ReplicaState) bool { return st.Shipped == 8 && drained(st) })
	mu.Lock()
	defer mu.Unlock()
	manifest, lastPack := -1, -1
	for i, k := range puts {
		switch {
		case strings.HasPrefix(k, objPacks):
			lastPack = i
		case strings.HasSuffix(k, "/"+checkpointFile):
			manifest = i
		}
	}
	if manifest < 0 || lastPack < 0 || manifest < lastPack {
		t.Fatalf("Puts %v: want the packs before the manifest", puts)
	}
	cs, _, err := objectCheckpoints(e.mem, testObjURL)
	if err != nil || len(cs) != 1 || cs[0].Info.Seq != 8 {
		t.Fatalf("bucket checkpoints %v, %v", cs, err)
	}
}

// TestAsyncReplicaModel: random appends, syncs, outages, power cuts and
// reopens; after each power cut every synced record reads back from the
// replica once it drained. The seed is printed on failure.
func TestAsyncReplicaModel(t *testing.T) {
	seed := time.Now().UnixNano()
	rng := rand.New(rand.NewSource(seed))
	defer func() {
		if t.Failed() {
			t.Logf("seed %d", seed)
		}
	}()
	e, p := newAsyncEnv(t, 1, 1, OpenOptions{SealInterval: 2 * time.Millisecond, ObjectSize: 48 << 10})
	var mu sync.Mutex
	down := false
	e.mem.SetFault(func(op, key string) error {
		mu.Lock()
		defer mu.Unlock()
		if down && op == "put" {
			return errors.New("reset by peer")
		}
		return nil
	})
	type rec struct {
		loc  Location
		data []byte
	}
	var synced []rec
	fsys := e.fs
	for step := 0; step < 60; step++ {
		switch r := rng.Intn(10); {
		case r < 6:
			d := payload(rng.Int(), 1000+rng.Intn(20000))
			l := appendT(t, p, d)
			if rng.Intn(2) == 0 {
				if err := p.Sync(l); err != nil {
					t.Fatalf("step %d: Sync: %v", step, err)
				}
				if rl, ok := onMember(l, 1); ok {
					synced = append(synced, rec{rl, d})
				}
			}
		case r < 8:
			mu.Lock()
			down = !down
			mu.Unlock()
		default:
			crashObjects(p)
			fsys = fsys.CrashClone()
			p = e.openPool(t, fsys)
		}
	}
	mu.Lock()
	down = false
	mu.Unlock()
	waitReplica(t, p, 1, "drained", drained)
	for _, r := range synced {
		readT(t, p, r.loc, r.data)
	}
}

// TestAsyncReplicaCompleteMark: the "replica complete" mark outlives
// the process (a clean reopen and a power cut keep it) and is cleared,
// durably, by whatever makes the replica incomplete: a record skipping
// it, ClearReplicaComplete, a lost stage; a pass that saw a skip never
// sets it.
func TestAsyncReplicaCompleteMark(t *testing.T) {
	tests := []struct {
		name string
		// act runs on the open pool after a few records; it returns
		// whether the replica must be complete after the restart.
		act   func(t *testing.T, e *objEnv, p *Pool) bool
		crash bool // a power cut instead of Close
	}{
		{"never marked", func(t *testing.T, e *objEnv, p *Pool) bool { return false }, false},
		{"marked, closed", markComplete, false},
		{"marked, power cut", markComplete, true},
		{"pass saw a skip", func(t *testing.T, e *objEnv, p *Pool) bool {
			skips := p.ReplicaSkips(1)
			skipOnce(t, e, p)
			if err := p.SetReplicaComplete(1, skips); err != nil {
				t.Fatal(err)
			}
			if p.ReplicaComplete(1) {
				t.Fatal("a pass that began before a skip marked the replica complete")
			}
			return false
		}, false},
		{"marked, then a skip, power cut", func(t *testing.T, e *objEnv, p *Pool) bool {
			markComplete(t, e, p)
			skipOnce(t, e, p)
			if p.ReplicaComplete(1) {
				t.Fatal("complete after a record skipped the replica")
			}
			return false
		}, true},
		{"marked, then cleared, power cut", func(t *testing.T, e *objEnv, p *Pool) bool {
			markComplete(t, e, p)
			if err := p.ClearReplicaComplete(1); err != nil {
				t.Fatal(err)
			}
			return false
		}, true},
		{"marked, stage lost", func(t *testing.T, e *objEnv, p *Pool) bool {
			markComplete(t, e, p)
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			if err := removeTree(e.fs, objMember(p).dir); err != nil {
				t.Fatal(err)
			}
			return false
		}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, p := newAsyncEnv(t, 1, 1, OpenOptions{SealInterval: 5 * time.Millisecond, AsyncBacklog: 64 << 10})
			var all [][]Location
			var datas [][]byte
			for i := 0; i < 4; i++ {
				d := payload(500+i, 10000)
				l := appendT(t, p, d)
				if err := p.Sync(l); err != nil {
					t.Fatal(err)
				}
				all, datas = append(all, l), append(datas, d)
			}
			want := tc.act(t, e, p)
			fsys := FS(e.fs)
			if tc.crash {
				crashObjects(p)
				fsys = e.fs.CrashClone()
			} else {
				p.Close()
			}
			q := e.openPool(t, fsys)
			if got := q.ReplicaComplete(1); got != want {
				t.Fatalf("after the restart ReplicaComplete = %v, want %v", got, want)
			}
			st, err := q.Replica(1)
			if err != nil || st.Complete != want {
				t.Fatalf("Replica(1) = %+v, %v: Complete want %v", st, err, want)
			}
			if ms, err := q.Stats(); err != nil || ms.Members[1].ReplicaComplete != want {
				t.Fatalf("Stats: %+v, %v: ReplicaComplete want %v", ms.Members[1], err, want)
			}
			for i, l := range all {
				readT(t, q, l[0], datas[i])
			}
		})
	}
}

// markComplete marks replica 1 complete as a backfill pass would and
// checks the mark is on disk.
func markComplete(t *testing.T, e *objEnv, p *Pool) bool {
	t.Helper()
	if err := p.SetReplicaComplete(1, p.ReplicaSkips(1)); err != nil {
		t.Fatal(err)
	}
	if !p.ReplicaComplete(1) {
		t.Fatal("SetReplicaComplete with no skip since did not mark it")
	}
	if _, err := e.fs.Stat(filepath.Join(objMember(p).dir, completeFile)); err != nil {
		t.Fatalf("the mark is not on disk: %v", err)
	}
	return true
}

// skipOnce makes one record go without its replica copy (Puts failing,
// backlog full), then lets the store answer again.
func skipOnce(t *testing.T, e *objEnv, p *Pool) {
	t.Helper()
	e.mem.SetFault(func(op, key string) error { return errors.New("HTTP 503") })
	defer e.mem.SetFault(nil)
	waitReplica(t, p, 1, "failing", func(st ReplicaState) bool { return st.Err != nil || st.Backlog > 0 })
	skips := p.ReplicaSkips(1)
	for i := 0; p.ReplicaSkips(1) == skips; i++ {
		if i > 100 {
			t.Fatal("no record skipped the failing replica with a full backlog")
		}
		l := appendT(t, p, payload(600+i, 20000))
		if err := p.Sync(l); err != nil {
			t.Fatal(err)
		}
	}
}
