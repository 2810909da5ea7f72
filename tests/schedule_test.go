package tests

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// autoSnapshots lists the automatic snapshots of dataset ds (names
// starting auto-), oldest first, through snapshot list --json.
func autoSnapshots(t *testing.T, pool, ds string) []string {
	t.Helper()
	var l []struct {
		Name string `json:"name"`
		Kind string `json:"kind"`
	}
	out := snapfsOK(t, "-p", pool, "snapshot", "list", ds, "--json")
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("snapshot list --json: %v\n%s", err, out)
	}
	var names []string
	for _, s := range l {
		if s.Kind == "snapshot" && strings.HasPrefix(s.Name, "auto-") {
			names = append(names, s.Name)
		}
	}
	return names
}

// waitFor polls cond every 100 ms until it holds or d passes.
func waitFor(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(100 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

// TestScheduleKeepsThreeAndTheHeld: a schedule of 2s=3 set through the
// daemon runs for 10 seconds: three automatic snapshots are kept, plus
// the first one, which was held; ls .snapshots lists them in the order
// they were taken; rmdir of the held one is EBUSY; once released, the
// next pass prunes it.
func TestScheduleKeepsThreeAndTheHeld(t *testing.T) {
	mnt, pool := mountVolume(t, mountOpts{})
	writeFile(t, filepath.Join(mnt, "f"), []byte("v0"))
	out := snapfsOK(t, "-p", pool, "schedule", "set", "vol", "2s=3")
	if !strings.Contains(out, "2s=3") {
		t.Fatalf("schedule set: %q", out)
	}
	start := time.Now()
	var first string
	if !waitFor(3*time.Second, func() bool {
		l := autoSnapshots(t, pool, "vol")
		if len(l) > 0 {
			first = l[0]
		}
		return len(l) > 0
	}) {
		logDaemon(t, pool)
		t.Fatal("no automatic snapshot 3 s after schedule set")
	}
	snapfsOK(t, "-p", pool, "snapshot", "hold", "vol@"+first, "keep")
	for i := 1; time.Since(start) < 10*time.Second; i++ {
		writeFile(t, filepath.Join(mnt, "f"), []byte(strings.Repeat("v", i)))
		time.Sleep(500 * time.Millisecond)
	}
	autos := autoSnapshots(t, pool, "vol")
	if len(autos) != 4 || autos[0] != first {
		logDaemon(t, pool)
		t.Fatalf("after 10 s of 2s=3: automatic snapshots %v, want the held %s and three more", autos, first)
	}
	for _, n := range autos {
		if !strings.HasSuffix(n, "Z-2s") {
			t.Errorf("automatic snapshot %s: name does not say its tier", n)
		}
	}
	// ls .snapshots lists them in the order they were taken (the names
	// are fixed-width time stamps).
	var listed []string
	for _, n := range strings.Fields(mustRun(t, "", nil, "ls", filepath.Join(mnt, ".snapshots"))) {
		if strings.HasPrefix(n, "auto-") {
			listed = append(listed, n)
		}
	}
	if strings.Join(listed, " ") != strings.Join(autos, " ") {
		t.Errorf("ls .snapshots lists %v, taken in the order %v", listed, autos)
	}
	err := syscall.Rmdir(filepath.Join(mnt, ".snapshots", first))
	if !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("rmdir of the held snapshot: %v, want EBUSY", err)
	}
	r := snapfs(t, "-p", pool, "snapshot", "destroy", "vol@"+first)
	if r.err == nil || !strings.Contains(r.stderr, `is held by "keep"`) {
		t.Fatalf("snapshot destroy of a held snapshot: %v %q", r.err, r.stderr)
	}
	snapfsOK(t, "-p", pool, "snapshot", "release", "vol@"+first, "keep")
	if !waitFor(5*time.Second, func() bool {
		l := autoSnapshots(t, pool, "vol")
		return len(l) == 3 && l[0] != first
	}) {
		t.Fatalf("released snapshot not pruned: %v", autoSnapshots(t, pool, "vol"))
	}
	snapfsOK(t, "-p", pool, "schedule", "clear", "vol")
	before := autoSnapshots(t, pool, "vol")
	time.Sleep(2500 * time.Millisecond)
	if after := autoSnapshots(t, pool, "vol"); strings.Join(after, " ") != strings.Join(before, " ") {
		t.Fatalf("a cleared schedule still ran: %v -> %v", before, after)
	}
}

// alignTo sleeps until 100 ms into a period of length p (UTC, aligned
// to the Unix epoch as the schedules are).
func alignTo(p time.Duration) {
	now := time.Now()
	into := time.Duration(now.UnixNano() % int64(p))
	wait := p - into + 100*time.Millisecond
	if into < 100*time.Millisecond {
		wait = 100*time.Millisecond - into
	}
	time.Sleep(wait)
}

// TestScheduleCatchUpAcrossUnmount: nothing runs while the pool is not
// mounted; the next mount takes one catch-up snapshot for the tiers that
// fell due, not one per missed period. The policy, set while unmounted,
// is stored in the pool.
func TestScheduleCatchUpAcrossUnmount(t *testing.T) {
	checkFuse(t)
	base := t.TempDir()
	pool, mnt := filepath.Join(base, "pool"), filepath.Join(base, "mnt")
	check(t, os.Mkdir(mnt, 0o755))
	check(t, os.Mkdir(filepath.Join(base, "d1"), 0o755))
	snapfsOK(t, "pool", "create", pool, "--member", filepath.Join(base, "d1"))
	snapfsOK(t, "-p", pool, "volume", "create", "vol")
	const period = 4 * time.Second
	snapfsOK(t, "-p", pool, "schedule", "set", "vol", "4s=10")
	if l := autoSnapshots(t, pool, "vol"); len(l) != 0 {
		t.Fatalf("snapshots taken without a mount: %v", l)
	}
	alignTo(period)
	mountAt(t, pool, "vol", mnt)
	if !waitFor(time.Second, func() bool { return len(autoSnapshots(t, pool, "vol")) == 1 }) {
		t.Fatalf("first mount: automatic snapshots %v, want 1", autoSnapshots(t, pool, "vol"))
	}
	umount(t, pool, mnt)
	// Three periods pass unmounted: nothing is taken.
	time.Sleep(3 * period)
	if l := autoSnapshots(t, pool, "vol"); len(l) != 1 {
		t.Fatalf("snapshots taken while unmounted: %v", l)
	}
	alignTo(period)
	mountAt(t, pool, "vol", mnt)
	time.Sleep(time.Second) // well inside the period the mount began in
	l := autoSnapshots(t, pool, "vol")
	if len(l) != 2 {
		logDaemon(t, pool)
		t.Fatalf("after the remount: automatic snapshots %v, want the first and one catch-up", l)
	}
	out := snapfsOK(t, "-p", pool, "schedule", "list")
	if !strings.Contains(out, "vol") || !strings.Contains(out, "4s=10") {
		t.Fatalf("schedule list: %q", out)
	}
}

// TestVolumeDestroyReturnsSpace: volume destroy -r of a volume holding
// 24 MiB (and a snapshot of it) gives the space back to the pool: pool
// status and statfs of another mounted volume agree that it came back.
// The members are a tmpfs of their own, so no other writer moves the
// figures.
func TestVolumeDestroyReturnsSpace(t *testing.T) {
	checkFuse(t)
	base := t.TempDir()
	disk := tmpfsDir(t, filepath.Join(base, "disk"), "96m")
	pool, mnt, bmnt := filepath.Join(base, "pool"), filepath.Join(base, "mnt"), filepath.Join(base, "bmnt")
	check(t, os.Mkdir(mnt, 0o755))
	check(t, os.Mkdir(bmnt, 0o755))
	snapfsOK(t, "pool", "create", pool, "--member", disk)
	snapfsOK(t, "-p", pool, "volume", "create", "vol")
	snapfsOK(t, "-p", pool, "volume", "create", "big")
	mountAt(t, pool, "vol", mnt)
	mountAt(t, pool, "big", bmnt)
	for i := range 3 {
		writeFile(t, filepath.Join(bmnt, "f"+string(rune('0'+i))), pattern(8<<20, byte(i+1)))
	}
	snapfsOK(t, "-p", pool, "snapshot", "create", "big", "s1")
	snapfsOK(t, "-p", pool, "sync")
	used0, free0 := poolUsed(t, pool), statfsFree(t, mnt)
	r := snapfs(t, "-p", pool, "volume", "destroy", "big", "-r")
	if r.err == nil || !strings.Contains(r.stderr, "is mounted at") {
		t.Fatalf("volume destroy of a mounted volume: %v %q", r.err, r.stderr)
	}
	umount(t, pool, bmnt)
	// The daemon still runs for vol: the destroy goes through it.
	r = snapfs(t, "-p", pool, "volume", "destroy", "big")
	if r.err == nil || !strings.Contains(r.stderr, "has snapshots s1") {
		t.Fatalf("volume destroy without -r: %v %q", r.err, r.stderr)
	}
	snapfsOK(t, "-p", pool, "volume", "destroy", "big", "-r")
	// The name is free at once.
	snapfsOK(t, "-p", pool, "volume", "create", "big")
	const freed = 20 << 20
	if !waitFor(30*time.Second, func() bool {
		snapfsOK(t, "-p", pool, "sync")
		return used0-poolUsed(t, pool) >= freed && statfsFree(t, mnt)-free0 >= freed
	}) {
		t.Fatalf("space not back: pool used %d -> %d, statfs free %d -> %d", used0, poolUsed(t, pool), free0, statfsFree(t, mnt))
	}
	t.Logf("pool used %d -> %d, statfs free %d -> %d", used0, poolUsed(t, pool), free0, statfsFree(t, mnt))
}

// TestScheduleAndHoldsSurvivePoolImport: a schedule and a hold are in the
// pool's metadata: they move with volume rename, and a pool whose meta/
// is lost gets both back from the checkpoint pool import restores.
func TestScheduleAndHoldsSurvivePoolImport(t *testing.T) {
	base, pool, disks := newPoolDirs(t, 2, "2")
	mnt := mountNew(t, base, pool)
	writeFile(t, filepath.Join(mnt, "f"), []byte("data"))
	snapfsOK(t, "-p", pool, "snapshot", "create", "vol", "s1")
	snapfsOK(t, "-p", pool, "snapshot", "hold", "vol@s1", "audit")
	snapfsOK(t, "-p", pool, "schedule", "set", "vol", "hourly=3", "daily=2")
	r := snapfs(t, "-p", pool, "volume", "rename", "vol", "home")
	if r.err == nil || !strings.Contains(r.stderr, "is mounted at") {
		t.Fatalf("volume rename of a mounted volume: %v %q", r.err, r.stderr)
	}
	umount(t, pool, mnt)
	snapfsOK(t, "-p", pool, "volume", "rename", "vol", "home")
	// The command's close shipped a checkpoint holding the rename.
	check(t, os.RemoveAll(filepath.Join(pool, "meta")))
	snapfsOK(t, "pool", "import", pool, "--member", disks[0], "--member", disks[1])
	out := snapfsOK(t, "-p", pool, "schedule", "list", "home")
	if !strings.Contains(out, "hourly=3 daily=2") {
		t.Fatalf("schedule after rename and import: %q", out)
	}
	if out := snapfsOK(t, "-p", pool, "snapshot", "holds", "home@s1"); !strings.Contains(out, "audit") {
		t.Fatalf("holds after rename and import: %q", out)
	}
	if l := autoSnapshots(t, pool, "home"); len(l) != 1 {
		t.Fatalf("automatic snapshots after import: %v, want the one taken at mount", l)
	}
	// snapshot list --json says which are held and which tiers took one.
	var l []struct {
		Name  string   `json:"name"`
		Holds []string `json:"holds"`
		Auto  []string `json:"auto"`
	}
	check(t, json.Unmarshal([]byte(snapfsOK(t, "-p", pool, "snapshot", "list", "home", "--json")), &l))
	var got []string
	for _, x := range l {
		got = append(got, x.Name+" holds="+strings.Join(x.Holds, ",")+" auto="+strings.Join(x.Auto, ","))
	}
	if len(l) != 2 || got[0] != "s1 holds=audit auto=" || !strings.HasSuffix(got[1], " holds= auto=hourly,daily") {
		t.Fatalf("snapshot list --json: %v", got)
	}
}

// TestRmdirHeldSnapshotEBUSY: rmdir in .snapshots of a held snapshot
// fails with EBUSY, as ZFS refuses to destroy a held snapshot; the
// snapshot stays readable; once released, rmdir destroys it.
func TestRmdirHeldSnapshotEBUSY(t *testing.T) {
	mnt, pool := mountVolume(t, mountOpts{})
	writeFile(t, filepath.Join(mnt, "f"), []byte("kept"))
	snap := filepath.Join(mnt, ".snapshots", "mon")
	check(t, os.Mkdir(snap, 0o755))
	snapfsOK(t, "-p", pool, "snapshot", "hold", "vol@mon", "audit")
	if err := syscall.Rmdir(snap); !errors.Is(err, syscall.EBUSY) {
		t.Fatalf("rmdir of a held snapshot: %v, want EBUSY", err)
	}
	if b, err := os.ReadFile(filepath.Join(snap, "f")); err != nil || string(b) != "kept" {
		t.Fatalf("held snapshot after the refused rmdir: %q %v", b, err)
	}
	if out := snapfsOK(t, "-p", pool, "snapshot", "holds", "vol@mon"); !strings.Contains(out, "audit") {
		t.Fatalf("snapshot holds: %q", out)
	}
	snapfsOK(t, "-p", pool, "snapshot", "release", "vol@mon", "audit")
	check(t, syscall.Rmdir(snap))
	if _, err := os.Stat(snap); !os.IsNotExist(err) {
		t.Fatalf("snapshot after rmdir: %v", err)
	}
}
