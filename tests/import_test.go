package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// waitCheckpoint waits until every disk holds a shipped metadata
// checkpoint whose reason is reason.
func waitCheckpoint(t *testing.T, reason string, disks ...string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, d := range disks {
		for {
			files, _ := filepath.Glob(filepath.Join(d, "meta-checkpoints", "*", "checkpoint.json"))
			found := false
			for _, f := range files {
				var info struct{ Reason string }
				if b, err := os.ReadFile(f); err == nil && json.Unmarshal(b, &info) == nil && info.Reason == reason {
					found = true
				}
			}
			if found {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no checkpoint %q shipped to %s within 20s (have %v)", reason, d, files)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// TestPoolImportAfterMetaLost: files written, a snapshot (its checkpoint
// shipped to both members, copies 2), more files written and synced, the
// daemon killed and meta/ deleted. pool import restores the checkpoint,
// reports the records written after it as lost, and the volume shows
// everything up to the snapshot, byte for byte, with fsck clean.
func TestPoolImportAfterMetaLost(t *testing.T) {
	base, pool, disks := newPoolDirs(t, 2, "2")
	mnt := mountNew(t, base, pool)
	src := filepath.Join(repoRoot, "store")
	mustRun(t, "", nil, "cp", "-a", src, filepath.Join(mnt, "before"))
	snapfsOK(t, "-p", pool, "snapshot", "create", "vol", "s1")
	waitCheckpoint(t, "after snapshot vol@s1", disks...)
	mustRun(t, "", nil, "cp", "-a", filepath.Join(repoRoot, "pool"), filepath.Join(mnt, "after"))
	snapfsOK(t, "-p", pool, "sync")
	killDaemon(t, pool)
	mustRun(t, "", nil, "fusermount3", "-u", "-z", mnt)
	if err := os.RemoveAll(filepath.Join(pool, "meta")); err != nil {
		t.Fatal(err)
	}

	r := snapfs(t, "-p", pool, "volume", "list")
	if r.err == nil || !strings.Contains(r.stderr, "has no meta/") || !strings.Contains(r.stderr, "snapfs pool import") {
		t.Fatalf("volume list without meta/: %v: %s", r.err, r.stderr)
	}
	out := snapfsOK(t, "pool", "import", pool, "--member", disks[0], "--member", disks[1])
	t.Logf("pool import:\n%s", out)
	for _, want := range []string{"incarnation 2", "restored from the checkpoint of", "(after snapshot vol@s1)", "written after the checkpoint were not in it and are freed", "vol: snapshots: s1"} {
		if !strings.Contains(out, want) {
			t.Errorf("pool import output lacks %q", want)
		}
	}
	if strings.Contains(out, "lost: nothing") {
		t.Errorf("the files written after the snapshot were synced to the packs: import must report them lost")
	}
	if out := snapfsOK(t, "-p", pool, "fsck"); !strings.Contains(out, " 0 leaked, 0 problem(s)") {
		t.Fatalf("fsck after import: %s", out)
	}
	mountAt(t, pool, "vol", mnt)
	mustRun(t, "", nil, "diff", "-r", src, filepath.Join(mnt, "before"))
	mustRun(t, "", nil, "diff", "-r", src, filepath.Join(mnt, ".snapshots", "s1", "before"))
	if _, err := os.Stat(filepath.Join(mnt, "after")); !os.IsNotExist(err) {
		t.Fatalf("files written after the checkpoint: stat: %v, want ENOENT", err)
	}
	// The pool works on: new writes, a new snapshot, a clean fsck.
	mustRun(t, "", nil, "cp", "-a", filepath.Join(repoRoot, "pool"), filepath.Join(mnt, "again"))
	snapfsOK(t, "-p", pool, "snapshot", "create", "vol", "s2")
	umount(t, pool, mnt)
	if out := snapfsOK(t, "-p", pool, "fsck"); !strings.Contains(out, " 0 problem(s)") {
		t.Fatalf("fsck after more writes: %s", out)
	}
}

// TestPoolImportPoolJSONAndMetaLost: pool.json deleted after a clean
// unmount is rebuilt from the member.json files with meta/ kept (nothing
// lost); then meta/ deleted after a clean unmount is restored from the
// checkpoint shipped at close, again with nothing lost.
func TestPoolImportPoolJSONAndMetaLost(t *testing.T) {
	base, pool, disks := newPoolDirs(t, 2, "1")
	mnt := mountNew(t, base, pool)
	src := filepath.Join(repoRoot, "store")
	mustRun(t, "", nil, "cp", "-a", src, filepath.Join(mnt, "before"))
	snapfsOK(t, "-p", pool, "snapshot", "create", "vol", "s1")
	mustRun(t, "", nil, "cp", "-a", filepath.Join(repoRoot, "pool"), filepath.Join(mnt, "after"))
	umount(t, pool, mnt)

	if err := os.Remove(filepath.Join(pool, "pool.json")); err != nil {
		t.Fatal(err)
	}
	out := snapfsOK(t, "pool", "import", pool, "--member", disks[0], "--member", disks[1])
	for _, want := range []string{"pool.json: rebuilt", "meta/: kept", "vol: snapshots: s1"} {
		if !strings.Contains(out, want) {
			t.Errorf("import after pool.json lost: output lacks %q:\n%s", want, out)
		}
	}
	checkImported(t, pool, mnt, src)

	if err := os.RemoveAll(filepath.Join(pool, "meta")); err != nil {
		t.Fatal(err)
	}
	out = snapfsOK(t, "pool", "import", pool, "--member", disks[0], "--member", disks[1])
	for _, want := range []string{"restored from the checkpoint of", "(at close)", "lost: nothing", "vol: snapshots: s1"} {
		if !strings.Contains(out, want) {
			t.Errorf("import after meta/ lost: output lacks %q:\n%s", want, out)
		}
	}
	checkImported(t, pool, mnt, src)
}

// checkImported runs fsck, mounts and compares both trees and the snapshot.
func checkImported(t *testing.T, pool, mnt, src string) {
	t.Helper()
	if out := snapfsOK(t, "-p", pool, "fsck"); !strings.Contains(out, " 0 leaked, 0 problem(s)") {
		t.Fatalf("fsck after import: %s", out)
	}
	mountAt(t, pool, "vol", mnt)
	mustRun(t, "", nil, "diff", "-r", src, filepath.Join(mnt, "before"))
	mustRun(t, "", nil, "diff", "-r", filepath.Join(repoRoot, "pool"), filepath.Join(mnt, "after"))
	mustRun(t, "", nil, "diff", "-r", src, filepath.Join(mnt, ".snapshots", "s1", "before"))
	if _, err := os.Stat(filepath.Join(mnt, ".snapshots", "s1", "after")); !os.IsNotExist(err) {
		t.Fatalf("snapshot s1 shows a file written after it: %v", err)
	}
	umount(t, pool, mnt)
}

// TestPoolImportRefusalsWriteNothing: a refused import leaves no trace:
// no pool directory is created, an existing pool.json and meta/ are
// untouched.
func TestPoolImportRefusalsWriteNothing(t *testing.T) {
	base, pool, disks := newPoolDirs(t, 1, "1")
	// A member without any checkpoint (the pool was never opened by a
	// store that changed something after creation) and a new directory.
	bare := filepath.Join(base, "bare")
	if err := os.Mkdir(bare, 0o755); err != nil {
		t.Fatal(err)
	}
	snapfsOK(t, "pool", "create", filepath.Join(base, "other"), "--member", bare)
	newDir := filepath.Join(base, "new")
	if r := snapfs(t, "pool", "import", newDir, "--member", bare); r.err == nil {
		t.Fatal("import from a member without checkpoint succeeded")
	}
	if _, err := os.Stat(newDir); !os.IsNotExist(err) {
		t.Fatalf("a refused import created %s: %v", newDir, err)
	}
	before, err := os.ReadFile(filepath.Join(pool, "pool.json"))
	if err != nil {
		t.Fatal(err)
	}
	metaBefore, _ := filepath.Glob(filepath.Join(pool, "meta", "*"))
	if r := snapfs(t, "pool", "import", pool, "--member", disks[0]); r.err == nil {
		t.Fatal("import over an existing pool.json and meta/ succeeded")
	}
	after, _ := os.ReadFile(filepath.Join(pool, "pool.json"))
	metaAfter, _ := filepath.Glob(filepath.Join(pool, "meta", "*"))
	if string(before) != string(after) || strings.Join(metaBefore, " ") != strings.Join(metaAfter, " ") {
		t.Fatal("a refused import changed pool.json or meta/")
	}
}
