package store

import (
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/snapfs/snapfs/objstore"
	"github.com/snapfs/snapfs/pool"
	"github.com/snapfs/snapfs/pool/pooltest"
)

// waitCaughtUp waits until replica i holds every chunk, has no backlog
// and its bucket holds checkpoint seq or a newer one.
func waitCaughtUp(t *testing.T, p *pool.Pool, i uint16, seq uint64) pool.ReplicaState {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		st, err := p.Replica(i)
		if err != nil {
			t.Fatal(err)
		}
		if st.Complete && st.Backlog == 0 && st.Shipped >= seq && st.Err == nil {
			return st
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica %d did not catch up with checkpoint %d: %+v", i, seq, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitComplete waits until the backfill found every chunk on replica i.
func waitComplete(t *testing.T, p *pool.Pool, i uint16) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !p.ReplicaComplete(i) {
		if time.Now().After(deadline) {
			st, _ := p.Replica(i)
			t.Fatalf("replica %d never complete: %+v", i, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// importFromBucket loses the host (root removed), imports the pool from
// the bucket at url alone, reconciles, and checks that every file reads
// back, with Check and fsck clean.
func importFromBucket(t *testing.T, root, url string, open func(objstore.Config) (objstore.Store, error), objects map[string]objstore.Config, files map[uint64][]byte) {
	t.Helper()
	if err := os.RemoveAll(root); err != nil {
		t.Fatal(err)
	}
	importAndCheck(t, url, open, objects, files)
}

// importAndCheck imports the pool from the bucket at url alone into a
// new directory, reconciles, and checks that every file of files reads
// back, with Check and fsck clean, and that the imported pool writes.
func importAndCheck(t *testing.T, url string, open func(objstore.Config) (objstore.Store, error), objects map[string]objstore.Config, files map[uint64][]byte) {
	t.Helper()
	files = maps.Clone(files)
	dir := filepath.Join(t.TempDir(), "rebuilt")
	res, err := pool.Import(dir, pool.ImportOptions{Members: []string{url}, ObjectStores: open, Objects: objects})
	if err != nil {
		t.Fatal(err)
	}
	if res.Restored == nil {
		t.Fatal("import restored no checkpoint")
	}
	for _, mc := range res.Config.Members {
		if mc.Path == url && mc.Async {
			t.Fatal("the imported pool's only copy is still an asynchronous replica")
		}
	}
	p2, err := pool.Open(dir, pool.OpenOptions{ObjectStores: open})
	if err != nil {
		t.Fatal(err)
	}
	defer p2.Close()
	rep, err := ReconcileImport(p2, Options{}, res.Restored.Info)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Missing != 0 {
		t.Fatalf("reconcile after import from the replica: %+v", rep)
	}
	s2, v2 := openNoAutoCheckpoint(t, p2)
	defer s2.Close()
	checkFiles(t, s2, v2, files)
	// The lost host's disk is gone for good: remove it (its copies are
	// dropped; the bucket holds every chunk).
	for _, mc := range p2.Config().Members {
		if mc.Kind == "" {
			if r, err := s2.RemoveMember(mc.Path, RemoveOptions{}); err != nil {
				t.Fatalf("remove the lost member %s: %+v %v", mc.Path, r, err)
			}
		}
	}
	if err := s2.Check(); err != nil {
		t.Fatal(err)
	}
	if r, err := s2.Fsck(FsckOptions{}); err != nil || len(r.Problems) != 0 {
		t.Fatalf("fsck after import: %+v, %v", r, err)
	}
	// The imported pool takes writes (the bucket took the counted copies).
	d := randBytes(50 << 10)
	files[writeTestFile(t, s2, v2, "after-import", d)] = d
	if err := s2.Sync(); err != nil {
		t.Fatal(err)
	}
	checkFiles(t, s2, v2, files)
}

// TestAsyncReplicaDisasterRecovery: a pool with an asynchronous replica
// (from the start, or added online to a pool holding data, whose chunks
// the backfill copies up) catches up, then the host is lost and the pool
// imported from the bucket alone holds every file.
func TestAsyncReplicaDisasterRecovery(t *testing.T) {
	for _, online := range []bool{false, true} {
		t.Run(fmt.Sprintf("online=%v", online), func(t *testing.T) {
			root := t.TempDir()
			mem := objstore.NewMem("replica")
			open := func(objstore.Config) (objstore.Store, error) { return mem, nil }
			disk := filepath.Join(root, "disk")
			os.Mkdir(disk, 0o755)
			dir := filepath.Join(root, "pool")
			const url = "s3://replica/pool"
			co := pool.CreateOptions{Members: []string{disk}, Domains: []string{"local"}, Copies: 1, ObjectStores: open}
			if !online {
				co.Members = append(co.Members, url)
				co.Domains = append(co.Domains, "")
				co.Async = map[string]bool{url: true}
			}
			if err := pool.Create(dir, co); err != nil {
				t.Fatal(err)
			}
			p, err := pool.Open(dir, pool.OpenOptions{ObjectStores: open, ObjectSize: 1 << 20, SealInterval: 20 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			s, v := openNoAutoCheckpoint(t, p)
			files := map[uint64][]byte{}
			for i := 0; i < 12; i++ {
				d := randBytes(100<<10 + i*1000)
				files[writeTestFile(t, s, v, fmt.Sprint(i), d)] = d
			}
			if err := s.Sync(); err != nil {
				t.Fatal(err)
			}
			if online {
				if _, err := p.AddReplica(url, "", nil); err != nil {
					t.Fatal(err)
				}
				for i := 12; i < 16; i++ { // written with the replica taking them at once
					d := randBytes(80 << 10)
					files[writeTestFile(t, s, v, fmt.Sprint(i), d)] = d
				}
				if err := s.Sync(); err != nil {
					t.Fatal(err)
				}
			}
			// A checkpoint goes to the replica once the backfill found it
			// complete (before that, the chunks written before it was
			// added were not all there).
			waitComplete(t, p, 1)
			ck, err := s.Checkpoint("before the disaster")
			if err != nil {
				t.Fatal(err)
			}
			st := waitCaughtUp(t, p, 1, ck.Seq)
			t.Logf("replica caught up: %+v", st)
			if err := s.Check(); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			importFromBucket(t, root, url, open, nil, files)
		})
	}
}

// TestAsyncReplicaStoreOutage: with the replica's store down the pool's
// writes and fsyncs go on; the replica is degraded and keeps its backlog,
// and catches up (backfill included: records skipped while its backlog
// was full) once the store answers.
func TestAsyncReplicaStoreOutage(t *testing.T) {
	mem := objstore.NewMem("outage")
	open := func(objstore.Config) (objstore.Store, error) { return mem, nil }
	const url = "s3://outage/pool"
	p := pooltest.NewOptions(t, 1, pool.CreateOptions{}, pool.OpenOptions{ObjectStores: open, SealInterval: 10 * time.Millisecond, AsyncBacklog: 300 << 10})
	if _, err := p.AddReplica(url, "", nil); err != nil {
		t.Fatal(err)
	}
	s, v := openNoAutoCheckpoint(t, p)
	defer s.Close()
	var mu sync.Mutex
	down := true
	mem.SetFault(func(op, key string) error {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return errors.New("connection refused")
		}
		return nil
	})
	files := map[uint64][]byte{}
	for i := 0; i < 10; i++ { // 1 MB: past the 300 KiB backlog, so some records skip the replica
		d := randBytes(100 << 10)
		files[writeTestFile(t, s, v, fmt.Sprint(i), d)] = d
		if err := s.Sync(); err != nil {
			t.Fatalf("fsync with the replica down: %v", err)
		}
	}
	st, err := p.Replica(1)
	if err != nil {
		t.Fatal(err)
	}
	if st.Err == nil || st.Backlog == 0 || st.Skips == 0 || st.Complete {
		t.Fatalf("replica while down: %+v; want degraded, a backlog kept, records skipped", st)
	}
	if h := p.Health(); h.State != pool.StateDegraded {
		t.Fatalf("health %+v", h)
	}
	mu.Lock()
	down = false
	mu.Unlock()
	waitComplete(t, p, 1)
	ck, err := s.Checkpoint("after the outage")
	if err != nil {
		t.Fatal(err)
	}
	st = waitCaughtUp(t, p, 1, ck.Seq)
	t.Logf("caught up: %+v", st)
	checkFiles(t, s, v, files)
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}

// TestAsyncReplicaCompleteAcrossReopen: a replica the backfill found
// complete is complete after a restart without another pass; one whose
// stage was lost (backlog gone with its records never Put) is
// incomplete after the restart, and the backfill finds the records the
// chunkrefs name in the lost stage packs and copies them up again, so
// that an import from the bucket alone holds every file.
func TestAsyncReplicaCompleteAcrossReopen(t *testing.T) {
	for _, tc := range []struct{ online, lose bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
		online, lose := tc.online, tc.lose
		t.Run(fmt.Sprintf("online=%v,stage lost=%v", online, lose), func(t *testing.T) {
			var mu sync.Mutex
			passes := 0
			backfillPass = func(uint16) {
				mu.Lock()
				passes++
				mu.Unlock()
			}
			defer func() { backfillPass = nil }()
			countPasses := func() int {
				mu.Lock()
				defer mu.Unlock()
				return passes
			}
			root := t.TempDir()
			mem := objstore.NewMem("replica")
			open := func(objstore.Config) (objstore.Store, error) { return mem, nil }
			disk := filepath.Join(root, "disk")
			os.Mkdir(disk, 0o755)
			dir := filepath.Join(root, "pool")
			const url = "s3://replica/pool"
			co := pool.CreateOptions{Members: []string{disk, url}, Domains: []string{"local", ""}, Copies: 1,
				ObjectStores: open, Async: map[string]bool{url: true}}
			if online {
				co = pool.CreateOptions{Members: []string{disk}, Domains: []string{"local"}, Copies: 1, ObjectStores: open}
			}
			if err := pool.Create(dir, co); err != nil {
				t.Fatal(err)
			}
			oo := pool.OpenOptions{ObjectStores: open, ObjectSize: 256 << 10, SealInterval: 20 * time.Millisecond}
			if lose {
				oo.SealInterval = time.Hour // the second batch stays in the stage
			}
			p, err := pool.Open(dir, oo)
			if err != nil {
				t.Fatal(err)
			}
			s, v := openNoAutoCheckpoint(t, p)
			files := map[uint64][]byte{}
			for i := 0; i < 6; i++ {
				d := randBytes(90<<10 + i*1000)
				files[writeTestFile(t, s, v, fmt.Sprint(i), d)] = d
			}
			if err := s.Sync(); err != nil {
				t.Fatal(err)
			}
			if online {
				if _, err := p.AddReplica(url, "", nil); err != nil {
					t.Fatal(err)
				}
				for i := 6; i < 9; i++ { // staged with their replica copy
					d := randBytes(70 << 10)
					files[writeTestFile(t, s, v, fmt.Sprint(i), d)] = d
				}
				if err := s.Sync(); err != nil {
					t.Fatal(err)
				}
			}
			waitComplete(t, p, 1)
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if err := p.Close(); err != nil {
				t.Fatal(err)
			}
			before := countPasses()
			stage := filepath.Join(dir, "stage", p.Config().Members[1].ID)
			if lose {
				if ents, _ := os.ReadDir(filepath.Join(stage, "packs")); len(ents) == 0 {
					t.Fatal("nothing staged to lose")
				}
				if err := os.RemoveAll(stage); err != nil {
					t.Fatal(err)
				}
				oo.SealInterval = 20 * time.Millisecond
			}
			p, err = pool.Open(dir, oo)
			if err != nil {
				t.Fatal(err)
			}
			if got := p.ReplicaComplete(1); got == lose {
				t.Fatalf("after the restart ReplicaComplete = %v (stage lost %v)", got, lose)
			}
			s, v = openNoAutoCheckpoint(t, p)
			if !lose {
				time.Sleep(2 * replicaTick) // the replicator had its chance
				if n := countPasses() - before; n != 0 {
					t.Fatalf("%d backfill pass(es) after restarting a complete replica, want none", n)
				}
			}
			waitComplete(t, p, 1)
			if lose && countPasses() == before {
				t.Fatal("no backfill pass after the stage was lost")
			}
			ck, err := s.Checkpoint("before the disaster")
			if err != nil {
				t.Fatal(err)
			}
			waitCaughtUp(t, p, 1, ck.Seq)
			if err := s.Check(); err != nil {
				t.Fatal(err)
			}
			s.Close()
			p.Close()
			importFromBucket(t, root, url, open, nil, files)
		})
	}
}
