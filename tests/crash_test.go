package tests

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// TestCrashKill9Rounds is the crash harness: rounds of a mixed workload on
// a mounted volume (writes, some fsync'd, overwrites, renames, truncates,
// unlinks, snapshots), each ended by kill -9 of the daemon at a random
// moment. After each round the pool must pass fsck, every file whose last
// change was fsync'd must read back exactly, and every snapshot whose mkdir
// returned must hold the tree as it was then. The seed is printed; set
// SNAPFS_CRASH_SEED to replay one and SNAPFS_CRASH_ROUNDS for a long run
// (make crash-test runs 200).
func TestCrashKill9Rounds(t *testing.T) {
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
	mnt, pool := mountVolume(t, mountOpts{})
	c := &crashState{durable: map[string][]byte{}, snaps: map[string]map[string][]byte{}}
	for r := 0; r < rounds; r++ {
		c.prepare(mnt)
		// The workload runs until the daemon dies under it: the kill lands
		// at a random moment, inside whatever operation is in flight.
		done := make(chan error, 1)
		go func(seed int64) { done <- c.run(rand.New(rand.NewSource(seed)), mnt) }(rng.Int63())
		time.Sleep(time.Duration(30+rng.Intn(400)) * time.Millisecond)
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
		mountAt(t, pool, "vol", mnt)
		c.verify(t, mnt, seed, r)
	}
}

// crashState is what the workload knows must survive.
type crashState struct {
	// live is the content of every file as last written (acknowledged).
	live map[string][]byte
	// durable is the content of files whose last change was fsync'd.
	durable map[string][]byte
	// snaps holds, per snapshot whose mkdir returned, the tree it must show.
	snaps map[string]map[string][]byte
	nsnap int
}

// prepare forgets files whose content is not known to be durable (after a
// crash they may hold any acknowledged content, or none) and removes them,
// so every round starts from what must survive.
func (c *crashState) prepare(mnt string) {
	if c.live == nil {
		c.live = map[string][]byte{}
	}
	ents, _ := os.ReadDir(mnt)
	for _, e := range ents {
		if _, ok := c.durable[e.Name()]; !ok {
			_ = os.Remove(filepath.Join(mnt, e.Name()))
		}
	}
	c.live = map[string][]byte{}
	for n, d := range c.durable {
		c.live[n] = d
	}
}

// run applies random operations until one fails (the daemon was killed).
// Before an operation every name it touches leaves the durable set; an
// fsync that returns puts the name back with its content.
func (c *crashState) run(rng *rand.Rand, mnt string) error {
	for {
		name := fmt.Sprintf("f%d", rng.Intn(16))
		p := filepath.Join(mnt, name)
		switch op := rng.Intn(10); {
		case op < 5:
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
		case op < 6:
			to := fmt.Sprintf("f%d", rng.Intn(16))
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
		case op < 7:
			if data, ok := c.live[name]; ok {
				n := rng.Intn(len(data) + 1)
				delete(c.durable, name)
				delete(c.live, name)
				if err := os.Truncate(p, int64(n)); err != nil {
					return err
				}
				c.live[name] = data[:n]
			}
		case op < 8:
			if _, ok := c.live[name]; ok {
				delete(c.durable, name)
				delete(c.live, name)
				if err := os.Remove(p); err != nil {
					return err
				}
			}
		default:
			c.nsnap++
			s := fmt.Sprintf("s%d", c.nsnap)
			tree := map[string][]byte{}
			for n, d := range c.live {
				tree[n] = d
			}
			if err := os.Mkdir(filepath.Join(mnt, ".snapshots", s), 0o755); err != nil {
				return err
			}
			c.snaps[s] = tree
		}
	}
}

// deadMountError reports the errors an operation gets when the daemon dies
// under it.
func deadMountError(err error) bool {
	// A write whose request the dying connection aborted may also report
	// EIO.
	return errors.Is(err, syscall.ENOTCONN) || errors.Is(err, syscall.ECONNABORTED) || errors.Is(err, syscall.EIO)
}

// verify checks what must have survived the kill.
func (c *crashState) verify(t *testing.T, mnt string, seed int64, r int) {
	t.Helper()
	for name, want := range c.durable {
		got, err := os.ReadFile(filepath.Join(mnt, name))
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("seed %d round %d: fsync'd %s after kill -9: %d bytes (want %d), %v", seed, r, name, len(got), len(want), err)
		}
	}
	for s, tree := range c.snaps {
		dir := filepath.Join(mnt, ".snapshots", s)
		ents, err := os.ReadDir(dir)
		if err != nil {
			t.Fatalf("seed %d round %d: acknowledged snapshot %s: %v", seed, r, s, err)
		}
		if len(ents) != len(tree) {
			t.Fatalf("seed %d round %d: snapshot %s has %d files, want %d", seed, r, s, len(ents), len(tree))
		}
		for name, want := range tree {
			got, err := os.ReadFile(filepath.Join(dir, name))
			if err != nil || !bytes.Equal(got, want) {
				t.Fatalf("seed %d round %d: snapshot %s/%s: %d bytes (want %d), %v", seed, r, s, name, len(got), len(want), err)
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
	for syscall.Kill(pid, 0) == nil && !isZombie(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("daemon pid %d alive 10s after SIGKILL", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
}
