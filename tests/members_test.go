package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// tmpfsDir mounts a tmpfs of the given size (e.g. "64m") at a new
// directory dir, its own device, and unmounts it at cleanup (registered
// now, so it runs after the cleanups of mounts made later).
func tmpfsDir(t *testing.T, dir, size string) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if fuseRequired() {
			t.Fatal("this test mounts tmpfs member disks and needs root")
		}
		t.Skip("needs root to mount tmpfs member disks")
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size, "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs at %s: %v: %s", dir, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount tmpfs %s: %v: %s", dir, err, out)
		}
	})
	return dir
}

// createPool creates pool in base over disks with copies (domains by
// device) and volume "vol".
func createPool(t *testing.T, pool string, copies int, disks ...string) {
	t.Helper()
	args := []string{"pool", "create", pool, "--copies", fmt.Sprint(copies)}
	for _, d := range disks {
		args = append(args, "--member", d)
	}
	snapfsOK(t, args...)
	snapfsOK(t, "-p", pool, "volume", "create", "vol")
}

// writeTree writes n files of different sizes under dir and returns their
// contents by name.
func writeTree(t *testing.T, dir string, n, size int) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("f%03d", i)
		data := pattern(size+i*4099, byte(i))
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
		files[name] = data
	}
	return files
}

func checkTree(t *testing.T, dir string, files map[string][]byte) {
	t.Helper()
	for name, want := range files {
		got, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil || sha256Hex(got) != sha256Hex(want) {
			t.Fatalf("%s: %d of %d bytes, %v", name, len(got), len(want), err)
		}
	}
}

// memberPaths lists the pool's members from pool status --json.
func memberPaths(t *testing.T, pool string) []string {
	t.Helper()
	var out []string
	for _, m := range poolMembers(t, pool) {
		out = append(out, m.Path)
	}
	return out
}

// duBytes is what du says the member directory holds, in bytes.
func duBytes(t *testing.T, dir string) int64 {
	t.Helper()
	out := mustRun(t, "", nil, "du", "-s", "-B1", dir)
	var n int64
	fmt.Sscan(out, &n)
	return n
}

// TestPoolRemoveMemberOnline removes a member of a mounted copies=2 pool
// on three tmpfs devices: the data moves, the files (and a snapshot)
// still read back, the member directory is left empty, and a removal that
// would leave fewer domains than copies is refused with nothing changed.
func TestPoolRemoveMemberOnline(t *testing.T) {
	checkFuse(t)
	base := t.TempDir()
	var disks []string
	for i := 0; i < 3; i++ {
		disks = append(disks, tmpfsDir(t, filepath.Join(base, fmt.Sprintf("disk%d", i)), "96m"))
	}
	pool := filepath.Join(base, "pool")
	createPool(t, pool, 2, disks...)
	mnt := mountNew(t, base, pool)
	files := writeTree(t, mnt, 40, 300<<10)
	snapfsOK(t, "-p", pool, "snapshot", "create", "vol", "before")
	changed := pattern(2<<20, 99)
	if err := os.WriteFile(filepath.Join(mnt, "f000"), changed, 0o644); err != nil {
		t.Fatal(err)
	}
	snapfsOK(t, "-p", pool, "sync")
	if duBytes(t, disks[0]) < 1<<20 {
		t.Fatalf("member 0 holds only %d bytes", duBytes(t, disks[0]))
	}

	out := snapfsOK(t, "-p", pool, "pool", "remove-member", disks[0])
	if !strings.Contains(out, "removed member "+disks[0]) || !strings.Contains(out, "chunk copies moved") {
		t.Fatalf("remove-member: %s", out)
	}
	if got := memberPaths(t, pool); len(got) != 2 || got[0] != disks[1] || got[1] != disks[2] {
		t.Fatalf("members after removal: %v", got)
	}
	if n := duBytes(t, disks[0]); n > 4096 {
		ls, _ := exec.Command("ls", "-laR", disks[0]).CombinedOutput()
		t.Fatalf("removed member still holds %d bytes:\n%s", n, ls)
	}
	// A second removal would leave one domain for two copies.
	r := snapfs(t, "-p", pool, "pool", "remove-member", disks[1])
	if r.err == nil || !strings.Contains(r.stderr, "leaves 1 failure domain(s) for 2 copies") {
		t.Fatalf("remove down to one domain: %v %s", r.err, r.stderr)
	}
	if got := memberPaths(t, pool); len(got) != 2 {
		t.Fatalf("members after a refused removal: %v", got)
	}

	remount(t, pool, "vol", mnt) // cold cache: every read comes from the packs
	files["f000"] = changed
	checkTree(t, mnt, files)
	snap := filepath.Join(mnt, ".snapshots", "before")
	old, err := os.ReadFile(filepath.Join(snap, "f000"))
	if err != nil || sha256Hex(old) != sha256Hex(pattern(300<<10, 0)) {
		t.Fatalf("snapshot's f000: %d bytes, %v", len(old), err)
	}
	// New writes land on the two members left.
	more := writeTree(t, filepath.Join(mnt), 5, 1<<20)
	checkTree(t, mnt, more)
	umount(t, pool, mnt)
	snapfsOK(t, "-p", pool, "fsck")
}

// TestPoolRemoveMemberOffline removes a member of an unmounted pool.
func TestPoolRemoveMemberOffline(t *testing.T) {
	base, pool, disks := newPoolDirs(t, 2, "1")
	mnt := mountNew(t, base, pool)
	files := writeTree(t, mnt, 30, 200<<10)
	umount(t, pool, mnt)
	out := snapfsOK(t, "-p", pool, "pool", "remove-member", disks[1], "--json")
	var rep struct {
		Moved   int64 `json:"moved"`
		Removed bool  `json:"removed"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || rep.Moved == 0 || !rep.Removed {
		t.Fatalf("remove-member --json: %v %s", err, out)
	}
	if got := memberPaths(t, pool); len(got) != 1 || got[0] != disks[0] {
		t.Fatalf("members: %v", got)
	}
	snapfsOK(t, "-p", pool, "fsck")
	mountAt(t, pool, "vol", mnt)
	checkTree(t, mnt, files)
	umount(t, pool, mnt)
	// The directory can join the pool again.
	snapfsOK(t, "-p", pool, "pool", "add-member", disks[1], "--domain", "again")
	if got := memberPaths(t, pool); len(got) != 2 || got[1] != disks[1] {
		t.Fatalf("members after re-adding: %v", got)
	}
}

// TestPoolRemoveMemberNoSpace: the member's data does not fit on the
// small tmpfs member left, so removal is refused and nothing changes.
func TestPoolRemoveMemberNoSpace(t *testing.T) {
	checkFuse(t)
	base := t.TempDir()
	big := filepath.Join(base, "big")
	os.Mkdir(big, 0o755)
	small := tmpfsDir(t, filepath.Join(base, "small"), "24m")
	pool := filepath.Join(base, "pool")
	createPool(t, pool, 1, big, small)
	mnt := mountNew(t, base, pool)
	files := writeTree(t, mnt, 8, 4<<20)
	umount(t, pool, mnt)
	r := snapfs(t, "-p", pool, "pool", "remove-member", big)
	if r.err == nil || !strings.Contains(r.stderr, "free on the other members") {
		t.Fatalf("remove-member: %v %s", r.err, r.stderr)
	}
	if got := memberPaths(t, pool); len(got) != 2 {
		t.Fatalf("members after a refused removal: %v", got)
	}
	snapfsOK(t, "-p", pool, "fsck")
	mountAt(t, pool, "vol", mnt)
	checkTree(t, mnt, files)
}

// TestPoolRemoveMemberKilled kills an offline removal with SIGKILL part
// way: the pool passes fsck, reads every file, still has the member, and
// the removal run again completes.
func TestPoolRemoveMemberKilled(t *testing.T) {
	base, pool, disks := newPoolDirs(t, 2, "1")
	mnt := mountNew(t, base, pool)
	files := writeTree(t, mnt, 24, 8<<20)
	umount(t, pool, mnt)
	cmd := exec.Command(snapfsBin, "-p", pool, "pool", "remove-member", disks[0])
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(250 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGKILL)
	err := cmd.Wait()
	if err == nil {
		t.Log("the removal finished before it could be killed; checking the result only")
	}
	snapfsOK(t, "-p", pool, "fsck")
	if err != nil {
		if got := memberPaths(t, pool); len(got) != 2 {
			t.Fatalf("members after a killed removal: %v", got)
		}
	}
	mountAt(t, pool, "vol", mnt)
	checkTree(t, mnt, files)
	umount(t, pool, mnt)
	if err != nil {
		snapfsOK(t, "-p", pool, "pool", "remove-member", disks[0])
	}
	if got := memberPaths(t, pool); len(got) != 1 {
		t.Fatalf("members: %v", got)
	}
	snapfsOK(t, "-p", pool, "fsck")
}

// btrfsDir makes a btrfs file system of size bytes on a loop device and
// mounts it at dir; it is unmounted and detached at cleanup. btrfs
// members cannot punch holes, so their freed records wait for repack.
func btrfsDir(t *testing.T, dir string, size int64) string {
	t.Helper()
	loopFS(t, dir, size, "btrfs", "btrfs-progs", "loop")
	return dir
}

// loopFS makes a file system of kind fs (mkfs.fs from package pkg) of size
// bytes in an image beside dir, mounts it at dir with mount options opts,
// and unmounts it at cleanup. It needs root: it fails when FUSE tests are
// required, and skips otherwise.
func loopFS(t *testing.T, dir string, size int64, fs, pkg, opts string) {
	t.Helper()
	needTool(t, "mkfs."+fs, pkg)
	if os.Geteuid() != 0 {
		if fuseRequired() {
			t.Fatalf("this test mounts %s member disks and needs root", fs)
		}
		t.Skipf("needs root to mount %s member disks", fs)
	}
	img := dir + ".img"
	if err := os.WriteFile(img, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "", nil, "mkfs."+fs, "-q", img)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "", nil, "mount", "-o", opts, img, dir)
	t.Cleanup(func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount %s: %v: %s", dir, err, out)
		}
	})
}

// statfsFree is what statfs says is available at path, in bytes.
func statfsFree(t *testing.T, path string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * st.Bsize
}

// poolUsed is the used bytes of pool status --json.
func poolUsed(t *testing.T, pool string) int64 {
	t.Helper()
	var s struct {
		Used int64 `json:"used"`
	}
	if err := json.Unmarshal([]byte(snapfsOK(t, "-p", pool, "pool", "status", "--json")), &s); err != nil {
		t.Fatal(err)
	}
	return s.Used
}

// TestPoolRepackReturnsSpace deletes most files of a pool on btrfs
// members (which cannot punch), then repacks online: du of the member
// directories, pool status and statfs of the mount all show the space
// back, the files left read back, and fsck is clean.
func TestPoolRepackReturnsSpace(t *testing.T) {
	checkFuse(t)
	base := t.TempDir()
	d0 := btrfsDir(t, filepath.Join(base, "disk0"), 768<<20)
	d1 := btrfsDir(t, filepath.Join(base, "disk1"), 768<<20)
	pool := filepath.Join(base, "pool")
	createPool(t, pool, 1, d0, d1)
	mnt := mountNew(t, base, pool)
	files := writeTree(t, mnt, 50, 6<<20)
	for name := range files {
		var i int
		fmt.Sscanf(name, "f%d", &i)
		if i%5 != 0 {
			if err := os.Remove(filepath.Join(mnt, name)); err != nil {
				t.Fatal(err)
			}
			delete(files, name)
		}
	}
	snapfsOK(t, "-p", pool, "sync")
	mustRun(t, "", nil, "sync")
	duBefore := duBytes(t, d0) + duBytes(t, d1)
	freeBefore := statfsFree(t, mnt)
	start := time.Now()
	out := snapfsOK(t, "-p", pool, "pool", "repack") // through the daemon
	took := time.Since(start)
	mustRun(t, "", nil, "sync")
	duAfter := duBytes(t, d0) + duBytes(t, d1)
	used := poolUsed(t, pool)
	freeAfter := statfsFree(t, mnt)
	t.Logf("%s: du %d -> %d MiB, statfs free %d -> %d MiB, pool status used %d MiB, %v",
		strings.TrimSpace(out), duBefore>>20, duAfter>>20, freeBefore>>20, freeAfter>>20, used>>20, took)
	if duAfter > duBefore/2 {
		t.Fatalf("repack returned too little: du %d -> %d", duBefore, duAfter)
	}
	// pool status counts the packs' allocated blocks; du also counts the
	// directories and small files: a few blocks per member.
	if d := duAfter - used; d < 0 || d > 256<<10 {
		t.Fatalf("pool status says %d bytes used, du of the members %d", used, duAfter)
	}
	if freeAfter-freeBefore < (duBefore-duAfter)/2 {
		t.Fatalf("statfs free grew by %d bytes, the members shrank by %d", freeAfter-freeBefore, duBefore-duAfter)
	}
	remount(t, pool, "vol", mnt)
	checkTree(t, mnt, files)
	umount(t, pool, mnt)
	snapfsOK(t, "-p", pool, "fsck")
	// Offline, a second repack has at most the last active packs to do.
	snapfsOK(t, "-p", pool, "pool", "repack")
	snapfsOK(t, "-p", pool, "fsck")
}
