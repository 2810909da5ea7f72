package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snapfs/snapfs/objstore/objstoretest"
)

// replicaStatus is the asynchronous replica's entry of pool status --json.
type replicaStatus struct {
	Path         string   `json:"path"`
	Kind         string   `json:"kind"`
	Async        bool     `json:"async"`
	State        string   `json:"state"`
	Problem      string   `json:"problem"`
	BacklogBytes *int64   `json:"backlog_bytes"`
	BacklogAge   *float64 `json:"backlog_age_seconds"`
	Complete     bool     `json:"replica_complete"`
}

func replicaOf(t *testing.T, pool, url string) replicaStatus {
	t.Helper()
	var st struct {
		Members []replicaStatus `json:"members"`
	}
	if err := json.Unmarshal([]byte(snapfsOK(t, "-p", pool, "pool", "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	for _, m := range st.Members {
		if m.Path == url {
			if m.BacklogBytes == nil || m.BacklogAge == nil || !m.Async || m.Kind != "s3" {
				t.Fatalf("pool status --json: replica %+v lacks its fields", m)
			}
			return m
		}
	}
	t.Fatalf("pool status --json: no member %s", url)
	return replicaStatus{}
}

// waitDrained waits until the replica's backlog is 0 (records and the
// staged checkpoint in the bucket).
func waitDrained(t *testing.T, pool, url string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		m := replicaOf(t, pool, url)
		if *m.BacklogBytes == 0 && m.State == "ok" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica backlog not drained within %v: %+v (backlog %d, age %.1fs)", within, m, *m.BacklogBytes, *m.BacklogAge)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestAsyncReplicaMount is the disaster drill on a real S3 service
// (SeaweedFS on 127.0.0.1): a pool over a directory with an asynchronous
// replica (pool create --member s3://... --async) receives a cp -a of
// part of the Go source tree; a snapshot; the replica catches up
// (backlog 0 in pool status --json); then the host's pool directory and
// disk are deleted, pool import from the bucket alone gives a pool that
// mounts, whose snapshot equals the source tree (diff -r), and fsck is
// clean.
func TestAsyncReplicaMount(t *testing.T) {
	checkFuse(t)
	endpoint := objstoretest.StartSeaweed(t)
	objstoretest.IsolateCredentials(t, "snapfs", "snapfs-secret")
	src := filepath.Join(runtimeGOROOT(t), "src")
	trees := []string{"net", "crypto", "encoding"}
	pool, mnt, disk := objectPoolDirs(t)
	url := fmt.Sprintf("s3://snapfs-replica/pool-%d", time.Now().UnixNano())
	s3 := []string{"--s3-endpoint", endpoint, "--s3-addressing", "path"}
	snapfsOK(t, append([]string{"pool", "create", pool, "--member", disk, "--member", url}, append(s3, "--async")...)...)
	snapfsOK(t, "-p", pool, "volume", "create", "vol")
	env := []string{"SNAPFS_SEAL_INTERVAL=300ms"}
	mountAtEnv(t, env, pool, "vol", mnt)
	start := time.Now()
	files := 0
	for _, tree := range trees {
		mustRun(t, "", nil, "cp", "-a", filepath.Join(src, tree), mnt)
		n := strings.Count(mustRun(t, "", nil, "find", filepath.Join(src, tree), "-type", "f"), "\n")
		files += n
	}
	t.Logf("cp -a of %d files into a volume with an asynchronous replica: %v", files, time.Since(start).Round(time.Millisecond))
	snapfsOK(t, "-p", pool, "snapshot", "create", "vol", "s1")
	// The last checkpoint (at unmount) names the snapshot; the next mount
	// ships it with whatever records remained.
	umount(t, pool, mnt)
	mountAtEnv(t, env, pool, "vol", mnt)
	waitDrained(t, pool, url, 5*time.Minute)
	t.Logf("replica caught up %v after the copy began", time.Since(start).Round(time.Millisecond))
	umount(t, pool, mnt)

	// Lose the host: its pool directory and its disk.
	for _, d := range []string{pool, disk} {
		if err := os.RemoveAll(d); err != nil {
			t.Fatal(err)
		}
	}
	pool2 := filepath.Join(filepath.Dir(pool), "pool2")
	out := snapfsOK(t, append([]string{"pool", "import", pool2, "--member", url}, s3...)...)
	t.Logf("import: %s", out)
	mountAt(t, pool2, "vol", mnt)
	for _, tree := range trees {
		if r := run(t, "", nil, "diff", "-r", filepath.Join(src, tree), filepath.Join(mnt, ".snapshots", "s1", tree)); r.err != nil {
			t.Fatalf("diff -r %s against the imported snapshot: %v\n%s", tree, r.err, truncate(r.stdout, 2000))
		}
	}
	// The imported pool writes: the bucket is its counted copy now.
	if err := os.WriteFile(filepath.Join(mnt, "after-import"), []byte("written on the new host\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	umount(t, pool2, mnt)
	// The lost disk is gone for good: remove it (the drill in the README).
	t.Logf("remove-member: %s", snapfsOK(t, "-p", pool2, "pool", "remove-member", disk))
	if r := snapfs(t, "-p", pool2, "fsck"); r.err != nil {
		t.Fatalf("fsck of the imported pool: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
}

// TestAsyncReplicaKill: kill -9 of the daemon while the replica has a
// backlog (a seal interval of an hour keeps it staged): pool status then
// still shows the backlog; the next mount drains it; with every pack of
// the directory member deleted, every file reads back from the bucket.
func TestAsyncReplicaKill(t *testing.T) {
	checkFuse(t)
	endpoint := objstoretest.StartSeaweed(t)
	objstoretest.IsolateCredentials(t, "snapfs", "snapfs-secret")
	pool, mnt, disk := objectPoolDirs(t)
	url := fmt.Sprintf("s3://snapfs-replica/kill-%d", time.Now().UnixNano())
	snapfsOK(t, "pool", "create", pool, "--member", disk, "--member", url, "--s3-endpoint", endpoint, "--s3-addressing", "path", "--async")
	snapfsOK(t, "-p", pool, "volume", "create", "vol")
	mountAtEnv(t, []string{"SNAPFS_SEAL_INTERVAL=1h"}, pool, "vol", mnt)
	files := map[string][]byte{}
	for i := 0; i < 8; i++ {
		name := fmt.Sprintf("f%d", i)
		data := pattern(400<<10+i*5000, byte(i+1))
		f, err := os.Create(filepath.Join(mnt, name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil {
			t.Fatal(err)
		}
		f.Close()
		files[name] = data
	}
	if m := replicaOf(t, pool, url); *m.BacklogBytes < 8*400<<10 {
		t.Fatalf("backlog %d before the kill: want the 8 files staged", *m.BacklogBytes)
	}
	killDaemon(t, pool)
	mustRun(t, "", nil, "fusermount3", "-u", "-z", mnt)
	// The backlog is the replica's stage: still on disk after the kill.
	stage, _ := filepath.Glob(filepath.Join(pool, "stage", "*", "packs", "*.pack"))
	var staged int64
	for _, p := range stage {
		if fi, err := os.Stat(p); err == nil {
			staged += fi.Size()
		}
	}
	if staged < 8*400<<10 {
		t.Fatalf("%d bytes staged after kill -9 in %v: want the 8 fsynced files", staged, stage)
	}
	m := replicaOf(t, pool, url) // the pool opened by the command resumes the uploads
	t.Logf("after kill -9: %d bytes staged; pool status: backlog %d bytes, oldest %.1fs", staged, *m.BacklogBytes, *m.BacklogAge)
	mountAtEnv(t, []string{"SNAPFS_SEAL_INTERVAL=200ms"}, pool, "vol", mnt)
	waitDrained(t, pool, url, 2*time.Minute)
	umount(t, pool, mnt)
	removeDirectoryPacks(t, disk)
	mountAt(t, pool, "vol", mnt)
	checkFiles(t, mnt, files, "from the replica alone")
	umount(t, pool, mnt)
}

// TestAsyncReplicaAddOnline: pool add-member s3://... --async through
// the running daemon of a mounted pool holding files: the backfill copies
// them up (replica_complete, backlog 0), writes go on meanwhile, and with
// every pack of the directory deleted every file reads from the bucket.
func TestAsyncReplicaAddOnline(t *testing.T) {
	checkFuse(t)
	endpoint := objstoretest.StartSeaweed(t)
	objstoretest.IsolateCredentials(t, "snapfs", "snapfs-secret")
	pool, mnt, disk := objectPoolDirs(t)
	snapfsOK(t, "pool", "create", pool, "--member", disk)
	snapfsOK(t, "-p", pool, "volume", "create", "vol")
	mountAtEnv(t, []string{"SNAPFS_SEAL_INTERVAL=200ms"}, pool, "vol", mnt)
	files := map[string][]byte{}
	write := func(from, to int) {
		for i := from; i < to; i++ {
			name := fmt.Sprintf("f%d", i)
			data := pattern(200<<10+i*3000, byte(i+1))
			if err := os.WriteFile(filepath.Join(mnt, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
			files[name] = data
		}
	}
	write(0, 10)
	url := fmt.Sprintf("s3://snapfs-replica/online-%d", time.Now().UnixNano())
	out := snapfsOK(t, "-p", pool, "pool", "add-member", url, "--s3-endpoint", endpoint, "--s3-addressing", "path", "--async")
	t.Logf("add-member: %s", strings.TrimSpace(out))
	write(10, 14) // while the backfill runs
	deadline := time.Now().Add(2 * time.Minute)
	for {
		m := replicaOf(t, pool, url)
		if m.Complete && *m.BacklogBytes == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica added online never complete with an empty backlog: %+v (backlog %d)", m, *m.BacklogBytes)
		}
		time.Sleep(200 * time.Millisecond)
	}
	umount(t, pool, mnt)
	removeDirectoryPacks(t, disk)
	mountAt(t, pool, "vol", mnt)
	checkFiles(t, mnt, files, "from the replica alone")
	umount(t, pool, mnt)
}

// TestAsyncReplicaServerStopped: the replica's server stopped during
// writes: write and fsync go on at local speed (the replica never counts
// toward copies), the backlog grows; the server started again, the
// backlog drains, and every file reads from the bucket alone.
func TestAsyncReplicaServerStopped(t *testing.T) {
	checkFuse(t)
	w := objstoretest.NewSeaweed(t, objstoretest.SeaweedOptions{})
	objstoretest.IsolateCredentials(t, "snapfs", "snapfs-secret")
	pool, mnt, disk := objectPoolDirs(t)
	url := fmt.Sprintf("s3://snapfs-replica/stopped-%d", time.Now().UnixNano())
	snapfsOK(t, "pool", "create", pool, "--member", disk, "--member", url, "--s3-endpoint", w.Endpoint, "--s3-addressing", "path", "--async")
	snapfsOK(t, "-p", pool, "volume", "create", "vol")
	mountAtEnv(t, []string{"SNAPFS_SEAL_INTERVAL=200ms"}, pool, "vol", mnt)
	files := map[string][]byte{}
	write := func(from, to int) time.Duration {
		start := time.Now()
		for i := from; i < to; i++ {
			name := fmt.Sprintf("f%d", i)
			data := pattern(300<<10+i*4000, byte(i+1))
			f, err := os.Create(filepath.Join(mnt, name))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.Write(data); err != nil {
				t.Fatal(err)
			}
			if err := f.Sync(); err != nil {
				t.Fatalf("fsync %s: %v", name, err)
			}
			f.Close()
			files[name] = data
		}
		return time.Since(start)
	}
	write(0, 5)
	waitDrained(t, pool, url, time.Minute)
	w.Stop()
	took := write(5, 15)
	m := replicaOf(t, pool, url)
	t.Logf("10 files written and fsynced with the server stopped in %v; backlog %d bytes, state %s", took.Round(time.Millisecond), *m.BacklogBytes, m.State)
	if *m.BacklogBytes < 10*300<<10 {
		t.Fatalf("backlog %d with the server stopped: want the 10 files", *m.BacklogBytes)
	}
	restart := time.Now()
	w.Start()
	t.Logf("server answers again %v after Start began", time.Since(restart).Round(time.Millisecond))
	waitDrained(t, pool, url, 4*time.Minute)
	t.Logf("backlog drained %v after Start began", time.Since(restart).Round(time.Millisecond))
	umount(t, pool, mnt)
	removeDirectoryPacks(t, disk)
	mountAt(t, pool, "vol", mnt)
	checkFiles(t, mnt, files, "from the replica alone")
	umount(t, pool, mnt)
}

// runtimeGOROOT is the GOROOT of the go command on PATH.
func runtimeGOROOT(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// TestAsyncReplicaCompleteAcrossRestart: once the backfill found the
// replica complete, pool status says so across an unmount (the pool
// opened by the command, with no daemon) and the next mount (at once,
// without waiting for another backfill pass), in --json and in text.
func TestAsyncReplicaCompleteAcrossRestart(t *testing.T) {
	checkFuse(t)
	endpoint := objstoretest.StartSeaweed(t)
	objstoretest.IsolateCredentials(t, "snapfs", "snapfs-secret")
	pool, mnt, disk := objectPoolDirs(t)
	url := fmt.Sprintf("s3://snapfs-replica/complete-%d", time.Now().UnixNano())
	snapfsOK(t, "pool", "create", pool, "--member", disk)
	snapfsOK(t, "-p", pool, "volume", "create", "vol")
	env := []string{"SNAPFS_SEAL_INTERVAL=200ms"}
	mountAtEnv(t, env, pool, "vol", mnt)
	for i := 0; i < 6; i++ {
		if err := os.WriteFile(filepath.Join(mnt, fmt.Sprintf("f%d", i)), pattern(150<<10+i*1000, byte(i+1)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Added online: incomplete until the backfill copied the files up.
	snapfsOK(t, "-p", pool, "pool", "add-member", url, "--s3-endpoint", endpoint, "--s3-addressing", "path", "--async")
	deadline := time.Now().Add(2 * time.Minute)
	for m := replicaOf(t, pool, url); !m.Complete || *m.BacklogBytes != 0; m = replicaOf(t, pool, url) {
		if time.Now().After(deadline) {
			t.Fatalf("replica never complete and drained: %+v", m)
		}
		time.Sleep(200 * time.Millisecond)
	}
	umount(t, pool, mnt)
	if m := replicaOf(t, pool, url); !m.Complete {
		t.Fatalf("pool status without a daemon after the unmount: %+v, want replica_complete", m)
	}
	if out := snapfsOK(t, "-p", pool, "pool", "status"); !strings.Contains(out, "; complete (every chunk there)") {
		t.Fatalf("pool status does not say the replica is complete:\n%s", out)
	}
	mountAtEnv(t, env, pool, "vol", mnt)
	if m := replicaOf(t, pool, url); !m.Complete {
		t.Fatalf("pool status right after the mount: %+v, want replica_complete", m)
	}
	umount(t, pool, mnt)
}

// TestAsyncReplicaRemoveMember: pool remove-member of the last directory
// while an asynchronous replica remains is refused in one line; pool
// remove-member s3://... of the replica through the running daemon
// removes it (pool status no longer lists it, writes go on), says that
// the bucket is kept, and the kept bucket imports on its own into a pool
// that mounts with every file written before the removal.
func TestAsyncReplicaRemoveMember(t *testing.T) {
	checkFuse(t)
	endpoint := objstoretest.StartSeaweed(t)
	objstoretest.IsolateCredentials(t, "snapfs", "snapfs-secret")
	pool, mnt, disk := objectPoolDirs(t)
	url := fmt.Sprintf("s3://snapfs-replica/remove-%d", time.Now().UnixNano())
	s3 := []string{"--s3-endpoint", endpoint, "--s3-addressing", "path"}
	snapfsOK(t, append([]string{"pool", "create", pool, "--member", disk, "--member", url}, append(s3, "--async")...)...)
	snapfsOK(t, "-p", pool, "volume", "create", "vol")
	mountAtEnv(t, []string{"SNAPFS_SEAL_INTERVAL=200ms"}, pool, "vol", mnt)
	files := map[string][]byte{}
	for i := 0; i < 6; i++ {
		name := fmt.Sprintf("f%d", i)
		files[name] = pattern(200<<10+i*1000, byte(i+1))
		if err := os.WriteFile(filepath.Join(mnt, name), files[name], 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A snapshot, then an unmount and a mount: the checkpoint naming the
	// files reaches the bucket once the replica has drained.
	snapfsOK(t, "-p", pool, "snapshot", "create", "vol", "s1")
	umount(t, pool, mnt)
	mountAtEnv(t, []string{"SNAPFS_SEAL_INTERVAL=200ms"}, pool, "vol", mnt)
	waitDrained(t, pool, url, 2*time.Minute)

	r := snapfs(t, "-p", pool, "pool", "remove-member", disk)
	if r.err == nil || !strings.Contains(r.stderr, "is the only member besides asynchronous replicas") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Fatalf("remove-member of the last directory beside a replica: %v\n%s", r.err, r.stderr)
	}
	out := snapfsOK(t, "-p", pool, "pool", "remove-member", url)
	if !strings.Contains(out, "the bucket "+url+" keeps the pool as of its newest complete checkpoint") {
		t.Fatalf("remove-member of the replica does not say the bucket is kept:\n%s", out)
	}
	if st := snapfsOK(t, "-p", pool, "pool", "status", "--json"); strings.Contains(st, url) {
		t.Fatalf("pool status still names the removed replica:\n%s", st)
	}
	if err := os.WriteFile(filepath.Join(mnt, "after"), []byte("written after the removal\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	umount(t, pool, mnt)
	if r := snapfs(t, "-p", pool, "fsck"); r.err != nil {
		t.Fatalf("fsck after removing the replica: %v\n%s%s", r.err, r.stdout, r.stderr)
	}
	pool2 := filepath.Join(filepath.Dir(pool), "pool2")
	t.Logf("import of the kept bucket: %s", snapfsOK(t, append([]string{"pool", "import", pool2, "--member", url}, s3...)...))
	mountAt(t, pool2, "vol", mnt)
	checkFiles(t, filepath.Join(mnt, ".snapshots", "s1"), files, "from the kept bucket")
	umount(t, pool2, mnt)
}
