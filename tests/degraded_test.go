package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// pluggableDisk is a member disk that can be pulled out and plugged back
// while the pool is mounted: a tmpfs mounted at dir+".disk" (its own
// device) and bind-mounted at dir, the member directory. Pulling lazily
// unmounts the bind mount (the daemon's open files keep the tmpfs alive,
// but the path shows an empty directory, as after a disk is unplugged);
// plugging binds it again, with its data.
type pluggableDisk struct {
	t        *testing.T
	dir, dev string
}

func newPluggableDisk(t *testing.T, dir, size string) *pluggableDisk {
	t.Helper()
	d := &pluggableDisk{t: t, dir: dir, dev: dir + ".disk"}
	tmpfsDir(t, d.dev, size)
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	d.plug()
	t.Cleanup(func() {
		if isMounted(dir) {
			exec.Command("umount", "-l", dir).Run()
		}
	})
	return d
}

func (d *pluggableDisk) plug() {
	d.t.Helper()
	mustRun(d.t, "", nil, "mount", "--bind", d.dev, d.dir)
}

func (d *pluggableDisk) pull() {
	d.t.Helper()
	mustRun(d.t, "", nil, "umount", "-l", d.dir)
}

// poolHealth is the health part of pool status --json.
type poolHealth struct {
	State           string `json:"state"`
	UnderReplicated int64  `json:"under_replicated"`
	Members         []struct {
		Path    string `json:"path"`
		State   string `json:"state"`
		Problem string `json:"problem"`
	} `json:"members"`
	Damaged []struct {
		Hash  string   `json:"hash"`
		Files []string `json:"files"`
	} `json:"damaged"`
}

func readHealth(t *testing.T, pool string, args ...string) poolHealth {
	t.Helper()
	var h poolHealth
	out := snapfsOK(t, append([]string{"-p", pool, "pool", "status", "--json"}, args...)...)
	if err := json.Unmarshal([]byte(out), &h); err != nil {
		t.Fatalf("pool status --json: %v\n%s", err, out)
	}
	return h
}

// waitState polls pool status until the pool is in state want (the
// daemon checks its members every 5 s, and at once after a failed I/O).
func waitState(t *testing.T, pool, want string) poolHealth {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		h := readHealth(t, pool)
		if h.State == want {
			return h
		}
		if time.Now().After(deadline) {
			t.Fatalf("pool state %q after 20 s, want %q: %+v", h.State, want, h)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// churn reads files back (checking sha256) and writes new ones (up to
// about 8 MiB) in mnt until stop is closed; it returns the files it wrote and the first
// error seen.
func churn(mnt string, files map[string][]byte, stop chan struct{}) (map[string][]byte, error) {
	written := map[string][]byte{}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	for i := 0; ; i++ {
		select {
		case <-stop:
			return written, nil
		default:
		}
		name := names[i%len(names)]
		got, err := os.ReadFile(filepath.Join(mnt, name))
		if err != nil {
			return written, fmt.Errorf("read %s: %w", name, err)
		}
		if sha256Hex(got) != sha256Hex(files[name]) {
			return written, fmt.Errorf("read %s: wrong bytes", name)
		}
		// Writes stop at 8 MiB: the members are small tmpfs disks, and a
		// fast machine filled them (ENOSPC) before the test went on.
		if i%3 == 0 && i*(256<<10+i*513)/3 < 8<<20 {
			w := fmt.Sprintf("w%04d", i)
			data := pattern(256<<10+i*513, byte(i))
			if err := os.WriteFile(filepath.Join(mnt, w), data, 0o644); err != nil {
				return written, fmt.Errorf("write %s: %w", w, err)
			}
			written[w] = data
		}
	}
}

// TestPoolMemberVanishesWhileMounted pulls one of three member disks of a
// mounted copies=2 pool while files are read and written: reads return
// the right bytes, writes succeed, pool status says degraded and how to
// fix it; then a fresh disk is added and the dead member removed, after
// which scrub finds full redundancy and fsck is clean.
func TestPoolMemberVanishesWhileMounted(t *testing.T) {
	checkFuse(t)
	base := t.TempDir()
	var disks []*pluggableDisk
	var paths []string
	for i := 0; i < 3; i++ {
		d := newPluggableDisk(t, filepath.Join(base, fmt.Sprintf("disk%d", i)), "64m")
		disks = append(disks, d)
		paths = append(paths, d.dir)
	}
	pool := filepath.Join(base, "pool")
	createPool(t, pool, 2, paths...)
	mnt := mountNew(t, base, pool)
	files := writeTree(t, mnt, 24, 1<<20)
	snapfsOK(t, "-p", pool, "snapshot", "create", "vol", "before")
	snapfsOK(t, "-p", pool, "sync")

	stop := make(chan struct{})
	var wg sync.WaitGroup
	var written map[string][]byte
	var churnErr error
	wg.Add(1)
	go func() {
		defer wg.Done()
		written, churnErr = churn(mnt, files, stop)
	}()
	time.Sleep(300 * time.Millisecond)
	disks[1].pull()
	h := waitState(t, pool, "degraded")
	time.Sleep(time.Second) // keep reading and writing on the degraded pool
	close(stop)
	wg.Wait()
	if churnErr != nil {
		t.Fatalf("while the member vanished: %v", churnErr)
	}
	if len(written) == 0 {
		t.Fatal("nothing was written meanwhile")
	}
	if h.Members[1].State != "failed" || h.Members[0].State != "ok" || h.Members[2].State != "ok" {
		t.Fatalf("member states: %+v", h.Members)
	}
	out := snapfsOK(t, "-p", pool, "pool", "status")
	for _, want := range []string{"state degraded", "member " + paths[1] + " is missing", "pool scrub", "pool remove-member " + paths[1]} {
		if !strings.Contains(out, want) {
			t.Fatalf("pool status lacks %q:\n%s", want, out)
		}
	}
	// Every file reads back, new and old, through a cold cache too.
	checkTree(t, mnt, files)
	checkTree(t, mnt, written)
	remount(t, pool, "vol", mnt)
	checkTree(t, mnt, files)
	checkTree(t, mnt, written)
	old, err := os.ReadFile(filepath.Join(mnt, ".snapshots", "before", "f003"))
	if err != nil || sha256Hex(old) != sha256Hex(files["f003"]) {
		t.Fatalf("snapshot file: %v", err)
	}

	// Fix: a fresh disk in, the dead member out (its chunks are copied
	// from their other copy), then scrub.
	fresh := newPluggableDisk(t, filepath.Join(base, "disk3"), "64m")
	snapfsOK(t, "-p", pool, "pool", "add-member", fresh.dir)
	snapfsOK(t, "-p", pool, "pool", "remove-member", paths[1])
	var rep struct {
		Bad             int64 `json:"bad"`
		Raised          int64 `json:"raised"`
		UnderReplicated int64 `json:"under_replicated"`
		Unavailable     int64 `json:"unavailable"`
		Chunks          int64 `json:"chunks"`
		Copies          int64 `json:"copies"`
	}
	if err := json.Unmarshal([]byte(snapfsOK(t, "-p", pool, "pool", "scrub", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Bad != 0 || rep.UnderReplicated != 0 || rep.Unavailable != 0 || rep.Copies != 2*rep.Chunks {
		t.Fatalf("scrub after the fix: %+v", rep)
	}
	if h := readHealth(t, pool); h.State != "ok" || len(h.Members) != 3 {
		t.Fatalf("health after the fix: %+v", h)
	}
	remount(t, pool, "vol", mnt)
	checkTree(t, mnt, files)
	checkTree(t, mnt, written)
	umount(t, pool, mnt)
	snapfsOK(t, "-p", pool, "fsck")
}

// TestPoolMemberComesBack: copies=2 over two disks; one is pulled while
// mounted, so new writes get one copy (a degraded write, as on a ZFS
// mirror with a side missing); when it is plugged back the daemon uses it
// again, status asks for a scrub, and scrub raises every chunk written
// meanwhile to two copies.
func TestPoolMemberComesBack(t *testing.T) {
	checkFuse(t)
	base := t.TempDir()
	d0 := newPluggableDisk(t, filepath.Join(base, "disk0"), "64m")
	d1 := newPluggableDisk(t, filepath.Join(base, "disk1"), "64m")
	pool := filepath.Join(base, "pool")
	createPool(t, pool, 2, d0.dir, d1.dir)
	mnt := mountNew(t, base, pool)
	files := writeTree(t, mnt, 8, 1<<20)
	snapfsOK(t, "-p", pool, "sync")
	d1.pull()
	waitState(t, pool, "degraded")
	more := map[string][]byte{}
	for i := 0; i < 6; i++ {
		name := fmt.Sprintf("g%d", i)
		data := pattern(1<<20+i*777, byte(100+i))
		if err := os.WriteFile(filepath.Join(mnt, name), data, 0o644); err != nil {
			t.Fatalf("write while degraded: %v", err)
		}
		more[name] = data
	}
	snapfsOK(t, "-p", pool, "sync")
	h := readHealth(t, pool)
	if h.UnderReplicated == 0 {
		t.Fatalf("degraded writes not counted: %+v", h)
	}
	out := snapfsOK(t, "-p", pool, "pool", "status")
	if !strings.Contains(out, "fewer than 2 copies") {
		t.Fatalf("pool status does not ask for a scrub:\n%s", out)
	}
	d1.plug()
	waitState(t, pool, "ok")
	var rep struct {
		Raised          int64 `json:"raised"`
		UnderReplicated int64 `json:"under_replicated"`
		Bad             int64 `json:"bad"`
	}
	if err := json.Unmarshal([]byte(snapfsOK(t, "-p", pool, "pool", "scrub", "--json")), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Raised != h.UnderReplicated || rep.UnderReplicated != 0 || rep.Bad != 0 {
		t.Fatalf("scrub: %+v, %d chunks were under-replicated", rep, h.UnderReplicated)
	}
	if h := readHealth(t, pool); h.UnderReplicated != 0 || h.State != "ok" {
		t.Fatalf("health after scrub: %+v", h)
	}
	remount(t, pool, "vol", mnt)
	checkTree(t, mnt, files)
	checkTree(t, mnt, more)
	umount(t, pool, mnt)
	snapfsOK(t, "-p", pool, "fsck")
}

// TestPoolReadOnlyMember: a member whose file system is read-only when
// the pool is mounted serves reads but takes no writes (degraded); made
// writable again while mounted, it is used again.
func TestPoolReadOnlyMember(t *testing.T) {
	checkFuse(t)
	base := t.TempDir()
	var paths []string
	for i := 0; i < 3; i++ {
		paths = append(paths, tmpfsDir(t, filepath.Join(base, fmt.Sprintf("disk%d", i)), "64m"))
	}
	pool := filepath.Join(base, "pool")
	createPool(t, pool, 2, paths...)
	mnt := mountNew(t, base, pool)
	files := writeTree(t, mnt, 10, 1<<20)
	umount(t, pool, mnt)
	mustRun(t, "", nil, "mount", "-o", "remount,ro", paths[0])
	mountAt(t, pool, "vol", mnt)
	h := readHealth(t, pool)
	if h.State != "degraded" || h.Members[0].State != "degraded" || !strings.Contains(h.Members[0].Problem, "read-only") {
		t.Fatalf("health with a read-only member: %+v", h)
	}
	checkTree(t, mnt, files)
	more := map[string][]byte{}
	for i := 0; i < 4; i++ {
		name := fmt.Sprintf("r%d", i)
		more[name] = pattern(700<<10, byte(50+i))
		if err := os.WriteFile(filepath.Join(mnt, name), more[name], 0o644); err != nil {
			t.Fatalf("write with a read-only member: %v", err)
		}
	}
	if err := os.Remove(filepath.Join(mnt, "f001")); err != nil { // its frees wait for the member
		t.Fatal(err)
	}
	delete(files, "f001")
	snapfsOK(t, "-p", pool, "sync")
	out := snapfsOK(t, "-p", pool, "pool", "status")
	if !strings.Contains(out, "takes no new data") || !strings.Contains(out, "make its file system writable again") {
		t.Fatalf("pool status:\n%s", out)
	}
	mustRun(t, "", nil, "mount", "-o", "remount,rw", paths[0])
	waitState(t, pool, "ok")
	snapfsOK(t, "-p", pool, "sync")
	remount(t, pool, "vol", mnt)
	checkTree(t, mnt, files)
	checkTree(t, mnt, more)
	umount(t, pool, mnt)
	snapfsOK(t, "-p", pool, "fsck")
}

// TestPoolStatusNamesDamagedFiles flips a byte of the only copy of a
// chunk: reading the file fails with EIO, and pool status -v names it in
// the live volume, in the snapshot, in the branch and in the branch's
// snapshot that share it (the other file is not named); scrub confirms it
// and exits non-zero.
func TestPoolStatusNamesDamagedFiles(t *testing.T) {
	base, pool, disks := newPoolDirs(t, 1, "1")
	mnt := mountNew(t, base, pool)
	if err := os.Mkdir(filepath.Join(mnt, "docs"), 0o755); err != nil {
		t.Fatal(err)
	}
	report := pattern(1<<20, 7)
	if err := os.WriteFile(filepath.Join(mnt, "docs", "report"), report, 0o644); err != nil {
		t.Fatal(err)
	}
	snapfsOK(t, "-p", pool, "sync")
	if err := os.WriteFile(filepath.Join(mnt, "other"), pattern(300<<10, 8), 0o644); err != nil {
		t.Fatal(err)
	}
	snapfsOK(t, "-p", pool, "snapshot", "create", "vol", "monday")
	snapfsOK(t, "-p", pool, "branch", "create", "vol@monday", "try")
	snapfsOK(t, "-p", pool, "snapshot", "create", "vol/try", "friday")
	umount(t, pool, mnt)
	// The first record of the first pack is report's first chunk.
	f, err := os.OpenFile(filepath.Join(disks[0], "packs", "1.pack"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	b := make([]byte, 1)
	f.ReadAt(b, 10000)
	b[0] ^= 0xff
	if _, err := f.WriteAt(b, 10000); err != nil {
		t.Fatal(err)
	}
	f.Close()
	mountAt(t, pool, "vol", mnt)
	if _, err := os.ReadFile(filepath.Join(mnt, "docs", "report")); err == nil || !strings.Contains(err.Error(), "input/output error") {
		t.Fatalf("read of a damaged file: %v, want EIO", err)
	}
	h := readHealth(t, pool, "-v")
	if h.State != "degraded" || len(h.Damaged) != 1 {
		t.Fatalf("health: %+v", h)
	}
	want := "vol/try:/docs/report,vol/try@friday:/docs/report,vol:/docs/report,vol@monday:/docs/report"
	if got := strings.Join(h.Damaged[0].Files, ","); got != want {
		t.Fatalf("damaged files %s, want %s", got, want)
	}
	out := snapfsOK(t, "-p", pool, "pool", "status", "-v")
	if !strings.Contains(out, "1 chunk(s) have no good copy") || !strings.Contains(out, "vol@monday:/docs/report") {
		t.Fatalf("pool status -v:\n%s", out)
	}
	if r := snapfs(t, "-p", pool, "pool", "scrub"); r.err == nil || !strings.Contains(r.stderr, "have no good copy") {
		t.Fatalf("scrub of a damaged pool: %v %s", r.err, r.stderr)
	}
	// Once every file referencing it is gone, nothing is damaged any more.
	snapfsOK(t, "-p", pool, "branch", "destroy", "vol/try", "--recursive")
	snapfsOK(t, "-p", pool, "snapshot", "destroy", "vol@monday")
	if err := os.Remove(filepath.Join(mnt, "docs", "report")); err != nil {
		t.Fatal(err)
	}
	snapfsOK(t, "-p", pool, "sync")
	deadline := time.Now().Add(10 * time.Second)
	for len(readHealth(t, pool).Damaged) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("damaged chunk still listed after its files are gone: %+v", readHealth(t, pool))
		}
		time.Sleep(200 * time.Millisecond)
	}
	umount(t, pool, mnt)
	snapfsOK(t, "-p", pool, "fsck")
}

// ext4Dir makes an ext4 file system of size bytes on a loop device,
// mounted at dir with errors=remount-ro, and returns the device's name
// under /sys/fs/ext4; it is unmounted at cleanup.
func ext4Dir(t *testing.T, dir string, size int64) string {
	t.Helper()
	loopFS(t, dir, size, "ext4", "e2fsprogs", "loop,errors=remount-ro")
	return filepath.Base(strings.TrimSpace(mustRun(t, "", nil, "findmnt", "-n", "-o", "SOURCE", dir)))
}

// TestPoolMemberTurnsReadOnlyWhileMounted: ext4 under one of three
// members of a mounted copies=2 pool hits an error and goes read-only
// (the kernel's errors=remount-ro, triggered through sysfs): writes go on
// to the other two, reads still use it, status says degraded; once its
// file system is checked and mounted again, the pool uses it again.
func TestPoolMemberTurnsReadOnlyWhileMounted(t *testing.T) {
	checkFuse(t)
	base := t.TempDir()
	paths := []string{
		tmpfsDir(t, filepath.Join(base, "disk0"), "64m"),
		tmpfsDir(t, filepath.Join(base, "disk1"), "64m"),
	}
	e4 := filepath.Join(base, "disk2")
	dev := ext4Dir(t, e4, 96<<20)
	trigger := filepath.Join("/sys/fs/ext4", dev, "trigger_fs_error")
	if _, err := os.Stat(trigger); err != nil {
		t.Fatalf("this kernel cannot make ext4 read-only on demand: %v", err)
	}
	paths = append(paths, e4)
	pool := filepath.Join(base, "pool")
	createPool(t, pool, 2, paths...)
	mnt := mountNew(t, base, pool)
	files := writeTree(t, mnt, 12, 1<<20)
	snapfsOK(t, "-p", pool, "sync")
	if err := os.WriteFile(trigger, []byte("1"), 0o200); err != nil {
		t.Fatal(err)
	}
	more := map[string][]byte{}
	for i := 0; i < 8; i++ {
		name := fmt.Sprintf("e%d", i)
		more[name] = pattern(512<<10+i*999, byte(60+i))
		if err := os.WriteFile(filepath.Join(mnt, name), more[name], 0o644); err != nil {
			t.Fatalf("write after a member went read-only: %v", err)
		}
	}
	snapfsOK(t, "-p", pool, "sync")
	h := waitState(t, pool, "degraded")
	if h.Members[2].State != "degraded" || h.Members[0].State != "ok" {
		t.Fatalf("member states: %+v", h.Members)
	}
	remount(t, pool, "vol", mnt)
	checkTree(t, mnt, files)
	checkTree(t, mnt, more)
	umount(t, pool, mnt)
	// Fix the file system, mount it again: the member is ok again.
	img := e4 + ".img"
	mustRun(t, "", nil, "umount", e4)
	run(t, "", nil, "e2fsck", "-fy", img) // exit 1: errors corrected
	mustRun(t, "", nil, "mount", "-o", "loop,errors=remount-ro", img, e4)
	if h := readHealth(t, pool); h.State != "ok" {
		t.Fatalf("health after the file system is fixed: %+v", h)
	}
	snapfsOK(t, "-p", pool, "pool", "scrub")
	snapfsOK(t, "-p", pool, "fsck")
	mountAt(t, pool, "vol", mnt)
	checkTree(t, mnt, files)
	checkTree(t, mnt, more)
}
