// Package killpoint lets the crash harness kill the snapfs daemon at a
// chosen point of its work, where a random kill -9 would land only by luck:
// inside a pack append, between the pack sync and the metadata commit of a
// flush, inside a snapshot's pin commit, half way through a snapshot's
// reclaim, inside a branch destroy, a rollback's commit, a repack, or
// after a scrub saved its progress part way.
//
// The engine calls Hit (or Tear) at each point. Unarmed, that is one atomic
// load. The daemon arms one point at start from $SNAPFS_KILLPOINT
// ("name" or "name:nth"); at the nth hit of that point the process writes
// one line naming it to stderr (the daemon's log) and sends itself SIGKILL,
// so a test can tell a kill at the point from a kill anywhere else, and a
// point that is never reached from one that was.
//
// The package imports nothing of snapfs, so pool and store may both use it.
package killpoint

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
)

// Env is the environment variable the daemon arms a point from.
const Env = "SNAPFS_KILLPOINT"

// The points. Each names the state a kill there leaves behind.
const (
	// PackAppend: a pack record half written (pool, member append).
	PackAppend = "pack-append"
	// FlushSynced: a flush's records durable in their packs, its metadata
	// batch not committed (store, flushJobs).
	FlushSynced = "flush-synced"
	// SnapshotPin: a snapshot's buffered writes flushed and its pin batch
	// built but not committed (store, PinEpoch).
	SnapshotPin = "snapshot-pin"
	// ReclaimBatch: one batch of a destroyed snapshot's deadlist walk
	// committed, the walk not finished (store, runReclaim).
	ReclaimBatch = "reclaim-batch"
	// BranchDestroy: a branch's keys dropped, its catalog record and its
	// hold on the parent point not yet (store, DestroyLineage).
	BranchDestroy = "branch-destroy"
	// RollbackCommit: a rollback's batch built (the versions after the
	// snapshot deleted in it), not committed (store, rollbackLocked).
	RollbackCommit = "rollback-commit"
	// RepackMoved: a repack's live records moved out of the packs it
	// chose, the packs not yet deleted (store, Repack).
	RepackMoved = "repack-moved"
	// ScrubSaved: a scrub's cursor and counts saved part way, the scrub
	// not finished (store, Scrub).
	ScrubSaved = "scrub-saved"
	// ReceiveStaged: a receive's verified chunks staged in the store and
	// its spool synced, its state not yet saved (stream, verify). The
	// receive command arms it too: it opens the pool itself.
	ReceiveStaged = "receive-staged"
)

// Names lists every point, in the order above.
var Names = []string{PackAppend, FlushSynced, SnapshotPin, ReclaimBatch, BranchDestroy, RollbackCommit, RepackMoved, ScrubSaved, ReceiveStaged}

var (
	// armed is set once the point and nth below are final.
	armed atomic.Bool
	// point and nth are written by Arm before armed is set, then only read.
	point string
	nth   int64
	// hits counts the hits of the armed point.
	hits atomic.Int64
)

// Arm arms the point spec names: "name" kills at its first hit,
// "name:nth" at its nth. An empty spec arms nothing. Arm must be called
// before the engine runs (it is not safe against concurrent Hits) and at
// most once.
func Arm(spec string) error {
	if spec == "" {
		return nil
	}
	name, n, err := parseSpec(spec)
	if err != nil {
		return err
	}
	point, nth = name, n
	armed.Store(true)
	return nil
}

// parseSpec splits "name[:nth]" and checks both parts.
func parseSpec(spec string) (string, int64, error) {
	name, count, hasCount := strings.Cut(spec, ":")
	n := int64(1)
	if hasCount {
		v, err := strconv.ParseInt(count, 10, 64)
		if err != nil || v < 1 {
			return "", 0, fmt.Errorf("%s=%q: the count after : must be a positive integer", Env, spec)
		}
		n = v
	}
	for _, p := range Names {
		if p == name {
			return name, n, nil
		}
	}
	return "", 0, fmt.Errorf("%s=%q: no such kill point (known: %s)", Env, spec, strings.Join(Names, ", "))
}

// ArmFromEnv arms the point named by $SNAPFS_KILLPOINT, if set.
func ArmFromEnv() error { return Arm(os.Getenv(Env)) }

// Armed reports whether any point is armed.
func Armed() bool { return armed.Load() }

// Hit is a kill point: at the armed point's nth hit the process dies.
func Hit(name string) {
	if armed.Load() {
		hit(name, nil, nil, 0)
	}
}

// Tear is a kill point inside a write: at the armed point's nth hit it
// writes the first half of b at off through w, then the process dies,
// leaving a torn write behind. Other hits write nothing (the caller writes
// b itself).
func Tear(name string, w io.WriterAt, b []byte, off int64) {
	if armed.Load() {
		hit(name, w, b, off)
	}
}

func hit(name string, w io.WriterAt, b []byte, off int64) {
	if name != point {
		return
	}
	n := hits.Add(1)
	if n != nth {
		return
	}
	what := ""
	if w != nil {
		k, err := w.WriteAt(b[:len(b)/2], off)
		what = fmt.Sprintf(" after writing %d of %d bytes at %d (%v)", k, len(b), off, err)
	}
	// One write(2) on stderr, the daemon's log: it survives the kill.
	fmt.Fprintf(os.Stderr, "killpoint: %s reached (hit %d)%s; SIGKILL\n", name, n, what)
	syscall.Kill(os.Getpid(), syscall.SIGKILL)
	select {} // SIGKILL cannot be caught; nothing runs past this point
}
