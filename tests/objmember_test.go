package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/snapfs/snapfs/objstore/objstoretest"
)

// TestObjectMemberMount: a pool of copies 2 over a directory and a
// synchronous member in a real S3 service (SeaweedFS on 127.0.0.1),
// created with pool create --member s3://... --s3-endpoint. Files written
// and fsynced through the mount are in the bucket; pool status shows the
// member with its objects and backlog; every pack of the directory is
// then deleted and every file still reads (from the bucket, with the read
// cache), and pool scrub rewrites the directory's copies.
func TestObjectMemberMount(t *testing.T) {
	checkFuse(t)
	endpoint := objstoretest.StartSeaweed(t)
	objstoretest.IsolateCredentials(t, "snapfs", "snapfs-secret")
	pool, mnt, disk := objectPoolDirs(t)
	url := fmt.Sprintf("s3://snapfs-mount/pool-%d", time.Now().UnixNano())
	snapfsOK(t, "pool", "create", pool, "--member", disk, "--member", url, "--s3-endpoint", endpoint, "--s3-addressing", "path", "--copies", "2")
	snapfsOK(t, "-p", pool, "volume", "create", "vol")
	cache := []string{"--cache-dir", filepath.Join(t.TempDir(), "cache"), "--cache-size", "64MiB"}
	mountAt(t, pool, "vol", mnt, cache...)
	files := map[string][]byte{}
	for i := 0; i < 6; i++ {
		name := fmt.Sprintf("f%d", i)
		data := pattern(300<<10+i*7000, byte(i+1))
		f, err := os.Create(filepath.Join(mnt, name))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.Write(data); err != nil {
			t.Fatal(err)
		}
		if err := f.Sync(); err != nil { // returns once the object is Put
			t.Fatal(err)
		}
		f.Close()
		files[name] = data
	}
	var st struct {
		Members []struct {
			Path         string   `json:"path"`
			Kind         string   `json:"kind"`
			State        string   `json:"state"`
			Objects      int      `json:"objects"`
			BacklogBytes *int64   `json:"backlog_bytes"`
			BacklogAge   *float64 `json:"backlog_age_seconds"`
		} `json:"members"`
	}
	if err := json.Unmarshal([]byte(snapfsOK(t, "-p", pool, "pool", "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Members) != 2 || st.Members[1].Kind != "s3" || st.Members[1].Path != url || st.Members[1].Objects == 0 ||
		st.Members[1].BacklogBytes == nil || st.Members[1].BacklogAge == nil || st.Members[0].BacklogBytes == nil || *st.Members[0].BacklogBytes != 0 {
		t.Fatalf("pool status --json members: %+v", st.Members)
	}
	t.Logf("object member: %d objects, state %s", st.Members[1].Objects, st.Members[1].State)
	umount(t, pool, mnt)
	removeDirectoryPacks(t, disk)
	mountAt(t, pool, "vol", mnt, cache...)
	checkFiles(t, mnt, files, "with the directory's packs gone")
	out := snapfsOK(t, "-p", pool, "pool", "scrub")
	t.Logf("scrub: %s", out)
	umount(t, pool, mnt)
	snapfsOK(t, "-p", pool, "fsck")
}

// objectPoolDirs returns the pool, mount point and directory member of a
// test under a fresh temporary directory, the mount point and member made.
func objectPoolDirs(t *testing.T) (pool, mnt, disk string) {
	t.Helper()
	base := t.TempDir()
	pool, mnt, disk = filepath.Join(base, "pool"), filepath.Join(base, "mnt"), filepath.Join(base, "disk")
	for _, d := range []string{mnt, disk} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	return pool, mnt, disk
}

// removeDirectoryPacks deletes every pack of directory member disk (the
// pool unmounted), so that what is read next comes from the bucket.
func removeDirectoryPacks(t *testing.T, disk string) {
	t.Helper()
	packs, _ := filepath.Glob(filepath.Join(disk, "packs", "*.pack"))
	if len(packs) == 0 {
		t.Fatal("no pack on the directory member")
	}
	for _, p := range packs {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
}

// checkFiles reads every file of files below mnt and compares it with
// its contents; how says where they are read from, for the message.
func checkFiles(t *testing.T, mnt string, files map[string][]byte, how string) {
	t.Helper()
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(mnt, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s %s: %d bytes, %v", name, how, len(got), err)
		}
	}
}
