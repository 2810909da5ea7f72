package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/snapfs/snapfs/objstore/objstoretest"
)

// TestObjectMemberFaultsMount: a mount over a pool of copies 2 on a
// directory and a bucket in SeaweedFS, reached through a fault proxy of
// our own, with SNAPFS_S3_GIVE_UP=6s so that an outage degrades the
// member within the test.
//
//  1. Throttling (503 SlowDown), 500s and connection resets injected
//     into the PUTs of a cp -a of a tree and its fsyncs are retried
//     invisibly: every fsync returns 0 and the member stays ok.
//  2. The server is stopped during a second cp -a: every fsync of
//     acknowledged data still returns 0 (the directory's copy holds it),
//     the member turns degraded, and once the server is started again a
//     member check heals it and pool scrub re-makes the bucket's copies.
//  3. Every pack of the directory is then deleted: both trees read back
//     from the bucket alone, through 503s and resets injected into the
//     GETs, equal to the source; fsck is clean.
func TestObjectMemberFaultsMount(t *testing.T) {
	checkFuse(t)
	needTool(t, "cp", "coreutils")
	w := objstoretest.NewSeaweed(t, objstoretest.SeaweedOptions{})
	px := objstoretest.NewProxy(t, w.Endpoint)
	objstoretest.IsolateCredentials(t, "snapfs", "snapfs-secret")
	env := []string{"SNAPFS_S3_GIVE_UP=6s"}
	pool, mnt, disk := objectPoolDirs(t)
	src := filepath.Join(t.TempDir(), "src")
	makeTree(t, src, 6, 10)
	want := manifest(t, src)
	url := fmt.Sprintf("s3://snapfs-faults/pool-%d", time.Now().UnixNano())
	snapfsOK(t, "pool", "create", pool, "--member", disk, "--member", url, "--s3-endpoint", px.URL(), "--s3-addressing", "path", "--copies", "2")
	snapfsOK(t, "-p", pool, "volume", "create", "vol")
	mountAtEnv(t, env, pool, "vol", mnt)

	// 1. Faults injected into the PUTs of a copy and its fsyncs.
	px.FailNext(3, objstoretest.SlowDown, "PUT")
	px.FailNext(2, objstoretest.Reset, "PUT")
	px.FailNext(1, objstoretest.InternalError, "PUT")
	px.FailNext(1, objstoretest.ResetMidBody, "PUT")
	mustRun(t, "", nil, "cp", "-a", src, filepath.Join(mnt, "t1"))
	fsyncTree(t, filepath.Join(mnt, "t1"))
	if n := px.Pending(); n != 0 {
		t.Fatalf("%d PUT faults were never applied: the copy made too few PUTs to test anything", n)
	}
	if st := objectMemberState(t, pool); st != "ok" {
		t.Fatalf("after retried PUT faults the member is %s, want ok", st)
	}
	t.Logf("PUT faults retried: slowdown %d, reset %d, internal %d, reset mid-body %d",
		px.Injected(objstoretest.SlowDown), px.Injected(objstoretest.Reset), px.Injected(objstoretest.InternalError), px.Injected(objstoretest.ResetMidBody))

	// 2. The server stopped during a copy, started again.
	cp := exec.Command("cp", "-a", src, filepath.Join(mnt, "t2"))
	var cpOut []byte
	cpDone := make(chan error, 1)
	go func() {
		var err error
		cpOut, err = cp.CombinedOutput()
		cpDone <- err
	}()
	time.Sleep(200 * time.Millisecond)
	w.Stop()
	if err := <-cpDone; err != nil {
		t.Fatalf("cp -a with the server stopped: %v: %s", err, cpOut)
	}
	fsyncTree(t, filepath.Join(mnt, "t2")) // the directory's copy holds: 0
	waitMemberState(t, pool, "degraded", "failed")
	w.Start()
	waitMemberState(t, pool, "ok")
	t.Logf("scrub after the outage: %s", snapfsOK(t, "-p", pool, "pool", "scrub"))
	umount(t, pool, mnt)

	// 3. The directory's packs gone: reads from the bucket alone, through
	// GET faults.
	removeDirectoryPacks(t, disk)
	mountAtEnv(t, env, pool, "vol", mnt)
	px.FailNext(3, objstoretest.SlowDown, "GET")
	px.FailNext(2, objstoretest.Reset, "GET")
	px.FailNext(2, objstoretest.ResetMidBody, "GET")
	px.FailNext(1, objstoretest.InternalError, "GET")
	for _, tree := range []string{"t1", "t2"} {
		compareManifests(t, tree+" read from the bucket", want, manifest(t, filepath.Join(mnt, tree)))
	}
	if n := px.Pending(); n != 0 {
		t.Fatalf("%d GET faults were never applied", n)
	}
	t.Logf("scrub with the directory's packs gone: %s", snapfsOK(t, "-p", pool, "pool", "scrub"))
	umount(t, pool, mnt)
	snapfsOK(t, "-p", pool, "fsck")
}

// makeTree writes dirs directories of files files each under root, of
// sizes from a few bytes to about 700 KiB (several chunks), with
// deterministic contents.
func makeTree(t *testing.T, root string, dirs, files int) {
	t.Helper()
	for d := 0; d < dirs; d++ {
		dir := filepath.Join(root, fmt.Sprintf("d%d", d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for f := 0; f < files; f++ {
			n := 10 + (d*files+f)*(f%4)*6000
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%d", f)), pattern(n, byte(d*files+f)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// fsyncTree fsyncs every regular file under root and fails the test on
// any error.
func fsyncTree(t *testing.T, root string) {
	t.Helper()
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || !fi.Mode().IsRegular() {
			return err
		}
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := f.Sync(); err != nil {
			return fmt.Errorf("fsync %s: %w", p, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// objectMemberState is the state pool status gives the pool's s3 member.
func objectMemberState(t *testing.T, pool string) string {
	t.Helper()
	var st struct {
		Members []struct {
			Kind  string `json:"kind"`
			State string `json:"state"`
		} `json:"members"`
	}
	if err := json.Unmarshal([]byte(snapfsOK(t, "-p", pool, "pool", "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	for _, m := range st.Members {
		if m.Kind == "s3" {
			return m.State
		}
	}
	t.Fatal("pool status lists no s3 member")
	return ""
}

// waitMemberState waits up to a minute for the s3 member to reach one of
// the states.
func waitMemberState(t *testing.T, pool string, states ...string) {
	t.Helper()
	var st string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(500 * time.Millisecond) {
		st = objectMemberState(t, pool)
		for _, s := range states {
			if st == s {
				return
			}
		}
	}
	t.Fatalf("the s3 member stayed %s, want %v", st, states)
}
