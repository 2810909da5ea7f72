package tests

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestCrashKill9Rounds is the crash harness: rounds of a mixed workload on
// a mounted volume (writes, some fsync'd, overwrites, in-place patches of
// small ranges, renames, truncates, unlinks, snapshot creates and
// destroys, branch creates, writes and destroys), each ended by kill -9
// of the daemon at a random moment. After
// each round the pool must pass fsck, every file whose last change was
// fsync'd must read back exactly, every snapshot whose mkdir returned must
// hold the tree as it was then, and every branch whose creation returned
// must be there. (TestCrashKillPoints kills at chosen points instead.) The seed is printed; set
// SNAPFS_CRASH_SEED to replay one and SNAPFS_CRASH_ROUNDS for a long run
// (make crash-test runs 200).
func TestCrashKill9Rounds(t *testing.T) { crashRounds(t) }

// TestCrashKill9RoundsWritebackCache is the crash harness, unchanged, on
// a mount with the kernel writeback cache (--writeback-cache): fsync'd
// files survive kill -9, and snapshots hold what was written before their
// mkdir returned.
func TestCrashKill9RoundsWritebackCache(t *testing.T) { crashRounds(t, "--writeback-cache") }

// crashRounds runs the crash harness on mounts with the snapfs mount
// arguments args.
func crashRounds(t *testing.T, args ...string) {
	rounds := 5
	if testing.Short() {
		rounds = 3
	}
	if v, err := strconv.Atoi(os.Getenv("SNAPFS_CRASH_ROUNDS")); err == nil && v > 0 {
		rounds = v
	}
	seed := time.Now().UnixNano()
	if v, err := strconv.ParseInt(os.Getenv("SNAPFS_CRASH_SEED"), 10, 64); err == nil {
		seed = v
	}
	t.Logf("crash harness: seed %d, %d rounds (replay with SNAPFS_CRASH_SEED=%d)", seed, rounds, seed)
	rng := rand.New(rand.NewSource(seed))
	mnt, pool := mountVolume(t, mountOpts{MountArgs: args})
	c := newCrashState(pool)
	c.mountArgs = args
	for r := 0; r < rounds; r++ {
		c.prepare(t, mnt)
		// The workload runs until the daemon dies under it: the kill lands
		// at a random moment, inside whatever operation is in flight.
		done := make(chan error, 1)
		go func(seed int64) { done <- c.run(rand.New(rand.NewSource(seed)), mnt) }(rng.Int63())
		select {
		case err := <-done:
			t.Fatalf("seed %d round %d: the workload failed before the kill: %v", seed, r, err)
		case <-time.After(time.Duration(30+rng.Intn(400)) * time.Millisecond):
		}
		killDaemon(t, pool)
		// The dead mount stays until the workload has seen it die: after a
		// lazy unmount its paths would reach the empty directory below.
		if err := <-done; err != nil && !deadMountError(err) {
			t.Fatalf("seed %d round %d: workload: %v", seed, r, err)
		}
		mustRun(t, "", nil, "fusermount3", "-u", "-z", mnt)
		if res := snapfs(t, "-p", pool, "fsck"); res.err != nil {
			t.Fatalf("seed %d round %d: fsck after kill -9: %v\n%s%s", seed, r, res.err, res.stdout, res.stderr)
		}
		mountAt(t, pool, "vol", mnt, args...)
		c.verify(t, mnt, fmt.Sprintf("seed %d round %d", seed, r))
	}
}

// crashState is what the workload knows must survive. Paths are relative
// to the mount: "f3" in the root, ".snapshots/b1/f3" in branch b1.
type crashState struct {
	pool string
	// live is the content of every file as last written (acknowledged).
	live map[string][]byte
	// durable is the content of files whose last change was fsync'd.
	durable map[string][]byte
	// snaps holds, per snapshot whose mkdir returned, the root files it
	// must show.
	snaps map[string]map[string][]byte
	// branches maps each branch whose creation returned to its snapshot.
	branches map[string]string
	nsnap    int
	nbranch  int
	// noDestroy keeps the workload from destroying snapshots and branches
	// and from rolling back (in a kill-point round whose trigger does one
	// of those itself); noSnapshots also from creating snapshots and
	// branches.
	noDestroy, noSnapshots bool
	// mountArgs are the snapfs mount arguments of every mount of the
	// pool (--writeback-cache for the harness's writeback variants).
	mountArgs []string
}

func newCrashState(pool string) *crashState {
	return &crashState{pool: pool, live: map[string][]byte{}, durable: map[string][]byte{},
		snaps: map[string]map[string][]byte{}, branches: map[string]string{}}
}

// prepare forgets files whose content is not known to be durable (after a
// crash they may hold any acknowledged content, or none) and removes them,
// in the root and in every branch, so every round starts from what must
// survive. Snapshots and branches whose creation or destruction a crash
// interrupted are destroyed: the branches with snapfs branch destroy
// (which must finish an interrupted one), then the snapshots with rmdir.
func (c *crashState) prepare(t *testing.T, mnt string) {
	t.Helper()
	snapdir := filepath.Join(mnt, ".snapshots")
	ents, err := os.ReadDir(snapdir)
	if err != nil {
		t.Fatal(err)
	}
	var unknown []string
	for _, e := range ents {
		_, isSnap := c.snaps[e.Name()]
		_, isBranch := c.branches[e.Name()]
		if !isSnap && !isBranch {
			unknown = append(unknown, e.Name())
		}
	}
	var later []string
	for _, n := range unknown {
		err := os.Remove(filepath.Join(snapdir, n))
		switch {
		case errors.Is(err, syscall.ENOTEMPTY): // a branch
			if err := c.cli("branch", "destroy", "vol@"+n); err != nil {
				t.Fatalf("finish an interrupted branch: %v", err)
			}
		case errors.Is(err, syscall.EBUSY): // a snapshot with an unfinished branch
			later = append(later, n)
		case err != nil:
			t.Fatalf("remove unacknowledged snapshot %s: %v", n, err)
		}
	}
	for _, n := range later {
		if err := os.Remove(filepath.Join(snapdir, n)); err != nil {
			t.Fatalf("remove unacknowledged snapshot %s: %v", n, err)
		}
	}
	dirs := []string{""}
	for b := range c.branches {
		dirs = append(dirs, filepath.Join(".snapshots", b))
	}
	for _, d := range dirs {
		ents, _ := os.ReadDir(filepath.Join(mnt, d))
		for _, e := range ents {
			if _, ok := c.durable[filepath.Join(d, e.Name())]; !ok && e.Type().IsRegular() {
				_ = os.Remove(filepath.Join(mnt, d, e.Name()))
			}
		}
	}
	c.live = map[string][]byte{}
	for n, d := range c.durable {
		c.live[n] = d
	}
}

// rootFiles copies the live files of the root: what a snapshot taken now
// must show.
func (c *crashState) rootFiles() map[string][]byte {
	tree := map[string][]byte{}
	for n, d := range c.live {
		if !strings.Contains(n, "/") {
			tree[n] = d
		}
	}
	return tree
}

// forget drops every file under prefix (a destroyed branch) from the
// known state.
func (c *crashState) forget(prefix string) {
	for n := range c.live {
		if strings.HasPrefix(n, prefix) {
			delete(c.live, n)
			delete(c.durable, n)
		}
	}
	for n := range c.durable {
		if strings.HasPrefix(n, prefix) {
			delete(c.durable, n)
		}
	}
}

// randomFile returns a file name in the root, or in a branch one time in
// five when there is one.
func (c *crashState) randomFile(rng *rand.Rand) string {
	name := fmt.Sprintf("f%d", rng.Intn(16))
	if len(c.branches) > 0 && rng.Intn(5) == 0 {
		bs := sortedKeys(c.branches)
		return filepath.Join(".snapshots", bs[rng.Intn(len(bs))], name)
	}
	return name
}

// run applies random operations until one fails (the daemon was killed).
// Before an operation every name it touches leaves the durable set; an
// fsync that returns puts the name back with its content.
func (c *crashState) run(rng *rand.Rand, mnt string) error {
	for {
		name := c.randomFile(rng)
		p := filepath.Join(mnt, name)
		switch op := rng.Intn(24); {
		case op < 10:
			data := make([]byte, rng.Intn(300_000)+1)
			rng.Read(data[:min(len(data), 4096)])
			sync := rng.Intn(2) == 0
			delete(c.durable, name)
			delete(c.live, name)
			if err := writeMaybeSync(p, data, sync); err != nil {
				return err
			}
			c.live[name] = data
			if sync {
				c.durable[name] = data
			}
		case op < 12:
			to := filepath.Join(filepath.Dir(name), fmt.Sprintf("f%d", rng.Intn(16)))
			if _, ok := c.live[name]; ok && to != name {
				data := c.live[name]
				delete(c.durable, name)
				delete(c.durable, to) // the rename itself is not fsync'd
				delete(c.live, name)
				delete(c.live, to)
				if err := os.Rename(p, filepath.Join(mnt, to)); err != nil {
					return err
				}
				c.live[to] = data
			}
		case op < 13:
			if data, ok := c.live[name]; ok {
				n := rng.Intn(len(data) + 1)
				delete(c.durable, name)
				delete(c.live, name)
				if err := os.Truncate(p, int64(n)); err != nil {
					return err
				}
				c.live[name] = data[:n]
			}
		case op < 15:
			if _, ok := c.live[name]; ok {
				delete(c.durable, name)
				delete(c.live, name)
				if err := os.Remove(p); err != nil {
					return err
				}
			}
		case op < 17:
			if c.noSnapshots {
				continue
			}
			c.nsnap++
			s := fmt.Sprintf("s%d", c.nsnap)
			tree := c.rootFiles()
			if err := os.Mkdir(filepath.Join(mnt, ".snapshots", s), 0o755); err != nil {
				return err
			}
			c.snaps[s] = tree
		case op < 18:
			if err := c.destroySnapshot(rng, mnt); err != nil {
				return err
			}
		case op < 19:
			if err := c.createBranch(rng); err != nil {
				return err
			}
		case op < 20:
			if err := c.destroyBranch(rng); err != nil {
				return err
			}
		case op < 21:
			if err := c.rollback(); err != nil {
				return err
			}
		default:
			if err := c.patch(rng, name, p); err != nil {
				return err
			}
		}
	}
}

// patch writes a few small random ranges inside an existing file, in
// place (buffered as overlays over its stored chunks), and fsyncs them
// half the time.
func (c *crashState) patch(rng *rand.Rand, name, p string) error {
	data, ok := c.live[name]
	if !ok || len(data) == 0 {
		return nil
	}
	nd := append([]byte(nil), data...)
	sync := rng.Intn(2) == 0
	delete(c.durable, name)
	delete(c.live, name)
	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	for k := rng.Intn(4); k >= 0; k-- {
		off := rng.Intn(len(nd))
		buf := make([]byte, min(1+rng.Intn(6000), len(nd)-off))
		rng.Read(buf)
		if _, err := f.WriteAt(buf, int64(off)); err != nil {
			f.Close()
			return err
		}
		copy(nd[off:], buf)
	}
	if sync {
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	c.live[name] = nd
	if sync {
		c.durable[name] = nd
	}
	return nil
}

// destroySnapshot removes a random snapshot that has no branch. It leaves
// the checked set first: an interrupted rmdir may or may not have
// destroyed it.
func (c *crashState) destroySnapshot(rng *rand.Rand, mnt string) error {
	if c.noDestroy {
		return nil
	}
	held := map[string]bool{}
	for _, s := range c.branches {
		held[s] = true
	}
	var free []string
	for _, s := range sortedKeys(c.snaps) {
		if !held[s] {
			free = append(free, s)
		}
	}
	if len(free) == 0 {
		return nil
	}
	s := free[rng.Intn(len(free))]
	delete(c.snaps, s)
	return os.Remove(filepath.Join(mnt, ".snapshots", s))
}

// rollback rolls the volume back to its newest acknowledged snapshot
// (rollback needs the newest): the root then holds exactly the files the
// snapshot holds, durably. Until the rollback returns, no root file's
// content is known.
func (c *crashState) rollback() error {
	if c.noDestroy || len(c.snaps) == 0 {
		return nil
	}
	newest, s := -1, ""
	for name := range c.snaps {
		if n, err := strconv.Atoi(strings.TrimPrefix(name, "s")); err == nil && n > newest {
			newest, s = n, name
		}
	}
	for _, n := range sortedKeys(c.live) {
		if !strings.Contains(n, "/") {
			delete(c.live, n)
			delete(c.durable, n)
		}
	}
	if err := c.cli("snapshot", "rollback", "vol@"+s); err != nil {
		return err
	}
	for n, d := range c.snaps[s] {
		c.live[n] = d
		c.durable[n] = d
	}
	return nil
}

// createBranch makes a branch of a random acknowledged snapshot (at most
// three branches at a time).
func (c *crashState) createBranch(rng *rand.Rand) error {
	if c.noSnapshots || len(c.snaps) == 0 || len(c.branches) >= 3 {
		return nil
	}
	snaps := sortedKeys(c.snaps)
	s := snaps[rng.Intn(len(snaps))]
	c.nbranch++
	b := fmt.Sprintf("b%d", c.nbranch)
	if err := c.cli("branch", "create", "vol@"+s, b); err != nil {
		return err
	}
	c.branches[b] = s
	// The branch starts as the snapshot: its files are as durable as the
	// snapshot is.
	for n, d := range c.snaps[s] {
		c.live[filepath.Join(".snapshots", b, n)] = d
		c.durable[filepath.Join(".snapshots", b, n)] = d
	}
	return nil
}

// destroyBranch destroys a random branch.
func (c *crashState) destroyBranch(rng *rand.Rand) error {
	if c.noDestroy || len(c.branches) == 0 {
		return nil
	}
	bs := sortedKeys(c.branches)
	b := bs[rng.Intn(len(bs))]
	delete(c.branches, b)
	c.forget(filepath.Join(".snapshots", b) + "/")
	return c.cli("branch", "destroy", "vol@"+b)
}

// cli runs snapfs -p POOL args through the daemon. A failure is a
// *cliError: the daemon may have died under it.
func (c *crashState) cli(args ...string) error {
	cmd := exec.Command(snapfsBin, append([]string{"-p", c.pool}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return &cliError{args: args, out: strings.TrimSpace(string(out)), err: err}
	}
	return nil
}

// cliError is a snapfs command of the workload that failed.
type cliError struct {
	args []string
	out  string
	err  error
}

func (e *cliError) Error() string {
	return fmt.Sprintf("snapfs %s: %v: %s", strings.Join(e.args, " "), e.err, e.out)
}

// deadMountError reports the errors an operation gets when the daemon dies
// under it.
func deadMountError(err error) bool {
	// A snapfs command the daemon died under fails as a whole.
	var ce *cliError
	if errors.As(err, &ce) {
		return true
	}
	// A write whose request the dying connection aborted may also report
	// EIO.
	return errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EIO)
}

// verify checks what must have survived the kill.
func (c *crashState) verify(t *testing.T, mnt, what string) {
	t.Helper()
	for name, want := range c.durable {
		got, err := os.ReadFile(filepath.Join(mnt, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%s: fsync'd %s after kill -9: %d bytes (want %d), %v", what, name, len(got), len(want), err)
		}
	}
	for b := range c.branches {
		if _, err := os.Stat(filepath.Join(mnt, ".snapshots", b)); err != nil {
			t.Fatalf("%s: acknowledged branch %s: %v", what, b, err)
		}
	}
	for s, tree := range c.snaps {
		dir := filepath.Join(mnt, ".snapshots", s)
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatalf("%s: acknowledged snapshot %s: %v", what, s, err)
		}
		// Kill-point triggers leave files of their own (big/, rp*, rb*);
		// the workload's are f0 to f15.
		var names []string
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), "f") {
				names = append(names, e.Name())
			}
		}
		if len(names) != len(tree) {
			t.Fatalf("%s: snapshot %s has workload files %v, want %d", what, s, names, len(tree))
		}
		for name, want := range tree {
			got, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("%s: snapshot %s/%s: %d bytes (want %d), %v", what, s, name, len(got), len(want), err)
			}
		}
	}
}

// writeMaybeSync writes p whole, fsync'ing it when sync is set.
func writeMaybeSync(p string, data []byte, sync bool) error {
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if sync {
		if err := f.Sync(); err != nil {
			f.Close()
			return err
		}
	}
	return f.Close()
}

// killDaemon kills the pool's daemon with SIGKILL and waits for it to die.
func killDaemon(t *testing.T, pool string) {
	t.Helper()
	pid := daemonPid(t, pool)
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !daemonGone(pool, pid) {
		if time.Now().After(deadline) {
			t.Fatalf("daemon pid %d alive 10s after SIGKILL", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
