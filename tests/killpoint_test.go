package tests

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"hash/crc32"
	"math/rand"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/snapfs/snapfs/internal/killpoint"
	"github.com/snapfs/snapfs/pool"
)

// TestCrashKillPoints is the crash harness with chosen kill points: each
// round restarts the daemon with $SNAPFS_KILLPOINT arming one point (see
// package internal/killpoint), runs the mixed workload of
// TestCrashKill9Rounds with a trigger that reaches the point, and waits
// for the daemon to kill itself there. A round fails unless the daemon
// died and its log names the point (a point never reached fails, it does
// not pass silently). Then, as after a random kill: fsck is clean, every
// fsync'd file and acknowledged snapshot reads back, and after the
// recovery of the next open every pack byte belongs to a live record
// (checkSpace); interrupted snapshot and branch operations are finished,
// and the space is checked again.
//
// By default (make test) it runs one round per point, in a seeded order;
// SNAPFS_CRASH_POINT_ROUNDS=N runs N rounds of seeded choices (make
// crash-test). The seed is printed; SNAPFS_CRASH_SEED replays it.
func TestCrashKillPoints(t *testing.T) { crashKillPoints(t) }

// TestCrashKillPointsWritebackCache is TestCrashKillPoints, unchanged, on
// mounts with the kernel writeback cache (--writeback-cache).
func TestCrashKillPointsWritebackCache(t *testing.T) { crashKillPoints(t, "--writeback-cache") }

// crashKillPoints runs the kill-point rounds on mounts with the snapfs
// mount arguments args.
func crashKillPoints(t *testing.T, args ...string) {
	seed := time.Now().UnixNano()
	if v, err := strconv.ParseInt(os.Getenv("SNAPFS_CRASH_SEED"), 10, 64); err == nil {
		seed = v
	}
	rng := rand.New(rand.NewSource(seed))
	// The daemon's points; a receive's (ReceiveStaged) is
	// TestReceiveKilledAfterStaging's.
	points := slices.DeleteFunc(append([]string(nil), killpoint.Names...), func(n string) bool { return n == killpoint.ReceiveStaged })
	plan := append([]string(nil), points...)
	rng.Shuffle(len(plan), func(i, j int) { plan[i], plan[j] = plan[j], plan[i] })
	if v, err := strconv.Atoi(os.Getenv("SNAPFS_CRASH_POINT_ROUNDS")); err == nil && v > 0 {
		for len(plan) < v {
			plan = append(plan, points[rng.Intn(len(points))])
		}
		plan = plan[:v]
	}
	t.Logf("kill points: seed %d, %d rounds (replay with SNAPFS_CRASH_SEED=%d)", seed, len(plan), seed)
	mnt, pool := mountVolume(t, mountOpts{MountArgs: args})
	c := newCrashState(pool)
	c.mountArgs = args
	for r, point := range plan {
		c.killPointRound(t, mnt, point, rng, fmt.Sprintf("seed %d round %d (%s)", seed, r, point))
	}
}

// killPointRound runs one round killed at point; what names the round in
// failures.
func (c *crashState) killPointRound(t *testing.T, mnt, point string, rng *rand.Rand, what string) {
	t.Helper()
	c.prepare(t, mnt)
	nth := 1
	var trigger func() error
	switch point {
	case killpoint.PackAppend, killpoint.FlushSynced:
		nth = 1 + rng.Intn(8) // the workload's writes reach these
	case killpoint.SnapshotPin:
		trigger = func() error {
			time.Sleep(time.Duration(rng.Intn(200)) * time.Millisecond)
			return os.Mkdir(filepath.Join(mnt, ".snapshots", fmt.Sprintf("kp%d", rng.Int())), 0o755)
		}
	case killpoint.ReclaimBatch:
		nth = 1 + rng.Intn(2) // a kill after the first or second of several batches
		trigger = c.bigReclaim(t, mnt, rng)
	case killpoint.BranchDestroy:
		trigger = func() error { return c.branchToDestroy(mnt, rng) }
	case killpoint.RollbackCommit:
		trigger = func() error { return c.snapshotToRollBack(mnt, rng) }
	case killpoint.RepackMoved:
		trigger = func() error { return c.packsToRepack(mnt, rng) }
	case killpoint.ScrubSaved:
		trigger = func() error { return c.slowScrub(mnt, rng) }
	default:
		t.Fatalf("%s: no trigger for this kill point", what)
	}
	// A trigger that destroys something runs alone: the workload's own
	// destroys would reach the point first.
	// The scrub's trigger writes files of its own, which a rollback by
	// the workload would make stale.
	c.noDestroy = point == killpoint.ReclaimBatch || point == killpoint.BranchDestroy ||
		point == killpoint.RollbackCommit || point == killpoint.RepackMoved || point == killpoint.ScrubSaved
	// A snapshot taken meanwhile would refuse the rollback, or pin the
	// records repack should find mostly dead.
	c.noSnapshots = point == killpoint.RollbackCommit || point == killpoint.RepackMoved
	defer func() { c.noDestroy, c.noSnapshots = false, false }()

	umount(t, c.pool, mnt)
	logPath := filepath.Join(c.pool, "daemon.log")
	logStart := fileSize(logPath)
	spec := fmt.Sprintf("%s:%d", point, nth)
	env := []string{killpoint.Env + "=" + spec}
	if point == killpoint.RepackMoved {
		env = append(env, "SNAPFS_MAX_PACK_SIZE=1048576") // sealed packs from a few MiB
	}
	mountAtEnv(t, env, c.pool, "vol", mnt, c.mountArgs...)
	pid := daemonPid(t, c.pool)

	done := make(chan error, 2)
	go func(seed int64) { done <- c.run(rand.New(rand.NewSource(seed)), mnt) }(rng.Int63())
	running := 1
	if trigger != nil {
		go func() { done <- trigger() }()
		running++
	}
	// Wait for the daemon to die; a workload or trigger that fails while
	// it lives failed for real. (A trigger may return before the point:
	// a snapshot's reclaim runs after rmdir returns.)
	deadline := time.Now().Add(60 * time.Second)
	for !daemonGone(c.pool, pid) {
		select {
		case err := <-done:
			if err != nil && !waitGone(c.pool, pid, 5*time.Second) {
				killDaemon(t, c.pool)
				t.Fatalf("%s: failed while the daemon lived: %v", what, err)
			}
			running--
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			killDaemon(t, c.pool)
			t.Fatalf("%s: kill point %s never reached in 60s", what, spec)
		}
	}
	for ; running > 0; running-- {
		if err := <-done; err != nil && !deadMountError(err) {
			t.Fatalf("%s: after the kill: %v", what, err)
		}
	}
	logTail := readFrom(logPath, logStart)
	want := fmt.Sprintf("killpoint: %s reached (hit %d)", point, nth)
	if !strings.Contains(logTail, want) || strings.Contains(logTail, "exit: ") {
		t.Fatalf("%s: the daemon died but its log does not say %q (and no exit line):\n%s", what, want, logTail)
	}
	mustRun(t, "", nil, "fusermount3", "-u", "-z", mnt)
	if res := snapfs(t, "-p", c.pool, "fsck"); res.err != nil {
		t.Fatalf("%s: fsck after the kill: %v\n%s%s", what, res.err, res.stdout, res.stderr)
	}
	checkSpace(t, c.pool, what+", after recovery")
	mountAt(t, c.pool, "vol", mnt, c.mountArgs...)
	c.verify(t, mnt, what)
	// Finish what the kill interrupted, then everything only it held must
	// be gone too.
	c.prepare(t, mnt)
	umount(t, c.pool, mnt)
	if res := snapfs(t, "-p", c.pool, "fsck"); res.err != nil {
		t.Fatalf("%s: fsck after finishing interrupted work: %v\n%s%s", what, res.err, res.stdout, res.stderr)
	}
	checkSpace(t, c.pool, what+", after finishing interrupted work")
	mountAt(t, c.pool, "vol", mnt, c.mountArgs...)
}

// bigReclaim prepares a snapshot whose destruction frees thousands of
// deadlist entries (several reclaim batches of 1024): it writes 1500 small
// files with distinct contents, snapshots them and deletes them, all before
// the kill point is armed. The returned trigger destroys the snapshot.
func (c *crashState) bigReclaim(t *testing.T, mnt string, rng *rand.Rand) func() error {
	t.Helper()
	dir := filepath.Join(mnt, "big")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 1500; i++ {
		if err := os.WriteFile(filepath.Join(dir, strconv.Itoa(i)), pattern(6000, byte(rng.Intn(256))), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	name := fmt.Sprintf("big%d", rng.Int())
	if err := os.Mkdir(filepath.Join(mnt, ".snapshots", name), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	return func() error { return os.Remove(filepath.Join(mnt, ".snapshots", name)) }
}

// branchToDestroy snapshots the volume, makes a branch of it, writes and
// fsyncs files in the branch and destroys it. None of it enters the
// checked state: the destroy is the point.
func (c *crashState) branchToDestroy(mnt string, rng *rand.Rand) error {
	n := rng.Int()
	s, b := fmt.Sprintf("bs%d", n), fmt.Sprintf("bd%d", n)
	if err := os.Mkdir(filepath.Join(mnt, ".snapshots", s), 0o755); err != nil {
		return err
	}
	if err := c.cli("branch", "create", "vol@"+s, b); err != nil {
		return err
	}
	for i := 0; i < 20; i++ {
		p := filepath.Join(mnt, ".snapshots", b, fmt.Sprintf("g%d", i))
		if err := writeMaybeSync(p, pattern(50_000+i, byte(n+i)), true); err != nil {
			return err
		}
	}
	return c.cli("branch", "destroy", "vol@"+b)
}

// snapshotToRollBack snapshots the volume, writes a file and rolls the
// volume back to the snapshot. The kill comes before the rollback
// commits, so the root stays as the workload left it.
func (c *crashState) snapshotToRollBack(mnt string, rng *rand.Rand) error {
	s := fmt.Sprintf("rb%d", rng.Int())
	if err := os.Mkdir(filepath.Join(mnt, ".snapshots", s), 0o755); err != nil {
		return err
	}
	if err := writeMaybeSync(filepath.Join(mnt, "rollback-me"), pattern(200_000, 12), true); err != nil {
		return err
	}
	return c.cli("snapshot", "rollback", "vol@"+s)
}

// packsToRepack fills a few small packs (the daemon seals them at 1 MiB),
// removes three files in four so that they are mostly holes, and runs
// pool repack, which moves the live records out of them.
func (c *crashState) packsToRepack(mnt string, rng *rand.Rand) error {
	n := rng.Int()
	for i := 0; i < 24; i++ {
		p := filepath.Join(mnt, fmt.Sprintf("rp%d-%d", n, i))
		if err := writeMaybeSync(p, pattern(200_000, byte(n+i)), true); err != nil {
			return err
		}
	}
	for i := 0; i < 24; i++ {
		if i%4 != 0 {
			if err := os.Remove(filepath.Join(mnt, fmt.Sprintf("rp%d-%d", n, i))); err != nil {
				return err
			}
		}
	}
	return c.cli("pool", "repack")
}

// slowScrub writes 8 MiB of files and scrubs the pool at 2 MiB/s, so
// that the scrub saves its cursor (every second) before it ends.
func (c *crashState) slowScrub(mnt string, rng *rand.Rand) error {
	n := rng.Int()
	for i := 0; i < 8; i++ {
		// fsync'd: with the writeback cache the bytes could otherwise
		// still be in the kernel's page cache when the scrub starts, and
		// a scrub of too little data ends before it saves its progress.
		if err := writeMaybeSync(filepath.Join(mnt, fmt.Sprintf("sc%d-%d", n, i)), pattern(1<<20, byte(n+i)), true); err != nil {
			return err
		}
	}
	return c.cli("pool", "scrub", "--rate", "2MiB")
}

// daemonGone reports whether the daemon pid of pool has exited and
// released the pool: a thread group's leader shows as a zombie while its
// other threads still exit, so only the pool's lock tells.
func daemonGone(pool string, pid int) bool {
	if syscall.Kill(pid, 0) == nil && !isZombie(pid) {
		return false
	}
	f, err := os.OpenFile(filepath.Join(pool, "lock"), os.O_RDWR, 0)
	if err != nil {
		return false
	}
	defer f.Close()
	if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		return false
	}
	syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
	return true
}

// waitGone waits up to d for the daemon to be gone (daemonGone): an
// operation the dying daemon aborted may return before it has exited.
func waitGone(pool string, pid int, d time.Duration) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(10 * time.Millisecond) {
		if daemonGone(pool, pid) {
			return true
		}
	}
	return daemonGone(pool, pid)
}

// fileSize is the size of name, 0 if it cannot be read.
func fileSize(name string) int64 {
	fi, err := os.Stat(name)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// readFrom returns the content of name from offset off.
func readFrom(name string, off int64) string {
	b, err := os.ReadFile(name)
	if err != nil || int64(len(b)) < off {
		return ""
	}
	return string(b[off:])
}

// checkSpace checks, with the pool not mounted, that every allocated pack
// block belongs to a valid record: the packs' allocated blocks are the
// extents of their valid records (a torn tail was cut, what was freed was
// punched), and those records hold at least the chunks and stored bytes
// pool status counts. fsck, run before, has checked that every valid
// record is referenced or queued for reclaim; queued records may wait
// for the next metadata checkpoint before they are punched (DESIGN.md,
// "Metadata is protected"), so they are counted, not refused.
func checkSpace(t *testing.T, poolDir, what string) {
	t.Helper()
	var st struct {
		Copies  int   `json:"copies"`
		Stored  int64 `json:"stored"`
		Chunks  int64 `json:"chunks"`
		Members []struct {
			Path string `json:"path"`
		} `json:"members"`
	}
	if err := json.Unmarshal([]byte(snapfsOK(t, "-p", poolDir, "pool", "status", "--json")), &st); err != nil {
		t.Fatalf("%s: pool status --json: %v", what, err)
	}
	var recs, payload, extents, alloc int64
	var over []string // packs with more allocated than their records' extents
	for _, m := range st.Members {
		packs, err := filepath.Glob(filepath.Join(m.Path, "packs", "*.pack"))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range packs {
			r, pl, ex, al := scanPackFile(t, p)
			recs, payload, extents, alloc = recs+r, payload+pl, extents+ex, alloc+al
			if al > ex {
				fi, _ := os.Stat(p)
				over = append(over, fmt.Sprintf("%s: %d records, %d allocated, %d in extents, size %d", filepath.Base(p), r, al, ex, fi.Size()))
			}
		}
	}
	// ext4 counts the blocks of a file's extent tree in st_blocks; a pack
	// with many punched holes may need a few.
	slack := int64(8 * pool.Align * len(st.Members))
	if recs < st.Chunks*int64(st.Copies) || payload < st.Stored || alloc > extents+slack {
		t.Fatalf("%s: packs hold %d valid records with %d payload bytes in %d bytes of extents, %d allocated; "+
			"pool status counts %d chunks x %d copies, %d stored bytes; packs allocated past their records:\n%s", what, recs, payload, extents, alloc,
			st.Chunks, st.Copies, st.Stored, strings.Join(over, "\n"))
	}
	t.Logf("%s: %d records (%d chunks x %d copies, the rest queued for reclaim), %d payload bytes (%d stored), %d bytes of extents, %d allocated",
		what, recs, st.Chunks, st.Copies, payload, st.Stored, extents, alloc)
}

// scanPackFile reads one pack the way recovery does (a record at every
// Align boundary whose magic and header CRC check) and returns its valid
// records, their payload bytes, their extents and the file's allocated
// bytes. Its own decoding checks the pool's against the format in
// pool/doc.go.
func scanPackFile(t *testing.T, name string) (recs, payload, extents, alloc int64) {
	t.Helper()
	b, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(name)
	if err != nil {
		t.Fatal(err)
	}
	alloc = fi.Sys().(*syscall.Stat_t).Blocks * 512
	castagnoli := crc32.MakeTable(crc32.Castagnoli)
	for off := 0; off+pool.HeaderSize <= len(b); {
		h := b[off : off+pool.HeaderSize]
		if !bytes.Equal(h[:4], []byte("SNPK")) || crc32.Checksum(h[:68], castagnoli) != binary.LittleEndian.Uint32(h[68:]) {
			off += pool.Align
			continue
		}
		stored := int(binary.LittleEndian.Uint32(h[60:]))
		end := off + pool.HeaderSize + stored
		if end > len(b) || crc32.Checksum(b[off+pool.HeaderSize:end], castagnoli) != binary.LittleEndian.Uint32(h[64:]) {
			off += pool.Align
			continue
		}
		end += recordTrailer(h, stored)
		ext := (end - off + pool.Align - 1) / pool.Align * pool.Align
		recs, payload, extents = recs+1, payload+int64(stored), extents+int64(ext)
		off += ext
	}
	return recs, payload, extents, alloc
}

// recordTrailer is the size of the page trailer after a record's stored
// bytes: none in version 1, a CRC32C per 4 KiB page and one of the table
// from version 2 (pool/doc.go).
func recordTrailer(h []byte, stored int) int {
	if binary.LittleEndian.Uint16(h[4:]) < 2 {
		return 0
	}
	return 4*((stored+pool.PageSize-1)/pool.PageSize) + 4
}

// TestDaemonTestKnobsRefused: a daemon started with a kill point, a fault
// or a pack size it cannot parse refuses to mount, saying which, instead
// of running a test that would then pass without its fault.
func TestDaemonTestKnobsRefused(t *testing.T) {
	mnt, pool := mountVolume(t, mountOpts{})
	umount(t, pool, mnt)
	for _, c := range []struct{ env, want string }{
		{killpoint.Env + "=flush-sync", "no such kill point"},
		{killpoint.Env + "=flush-synced:0", "positive integer"},
		{"SNAPFS_FAULTS=op=fly", `bad "op=fly"`},
		{"SNAPFS_FAULTS=nth=2", "no op="},
		{"SNAPFS_MAX_PACK_SIZE=12", "at least 1 MiB"},
	} {
		r := run(t, "", []string{c.env}, snapfsBin, "-p", pool, "mount", "vol", mnt, "-d")
		if r.err == nil {
			t.Cleanup(func() { unmountClean(t, pool, mnt) })
			t.Fatalf("mount with %s succeeded", c.env)
		}
		if lines := strings.Split(strings.TrimSpace(r.stderr), "\n"); len(lines) != 1 || !strings.Contains(lines[0], c.want) {
			t.Errorf("mount with %s: stderr %q, want one line containing %q", c.env, r.stderr, c.want)
		}
		if isMounted(mnt) {
			t.Fatalf("mount with %s left %s mounted", c.env, mnt)
		}
	}
}
