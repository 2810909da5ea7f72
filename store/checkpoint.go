package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/snapfs/snapfs/pool"
)

// Metadata checkpoints (DESIGN-NOTES 8).
//
// # What is shipped when
//
// The store takes a Pebble checkpoint of meta/ (hard links of the
// sstables, copies of the WAL, MANIFEST and OPTIONS, in POOL/meta-checkpoint.tmp)
// and the pool ships it to max(1, copies) members in distinct failure
// domains (pool.ShipCheckpoint), then the local copy is removed. The local
// copy is written without fsyncs (scratchfs.go); the ship syncs the
// members' copies, which are what a checkpoint's durability is. It does so
//   - after every snapshot or snapshot batch (RequestCheckpoint from snap),
//   - every Options.CheckpointInterval while the metadata changed,
//   - when freed records wait for one (at most every freeCheckpointGap),
//     after which reclaim runs at once,
//   - at Close, if the metadata changed since the last one.
//
// # The punch rule
//
// Every free-queue entry has a sequence number. Before a checkpoint is
// taken the store reads the settled mark M: the highest sequence below
// which no free-queue batch is still uncommitted (freeSeqs). The
// checkpoint, taken after, holds every entry at or below M. Once the
// checkpoint is on all its target members, M is persisted (catalog key
// "K"/"punch-mark") and reclaim punches only entries at or below M: a
// record freed after the newest complete checkpoint was taken is still a
// live record of that checkpoint, and stays until a later one is shipped.
//
// A pool that never had a checkpoint punches freely (there is nothing to
// protect); the first checkpoint persists its M before it is taken, so
// nothing it references is punched even if the ship fails.

// freeCheckpointGap bounds the time between two checkpoints taken because
// freed records wait for one: ten times the last checkpoint's duration
// (so they take at most a tenth of the time), within these limits.
const (
	minFreeCheckpointGap = 250 * time.Millisecond
	maxFreeCheckpointGap = 2 * time.Second
)

// snapshotCheckpointGap is the least time between two checkpoints asked
// for by snapshots: a burst of snapshots is covered by one checkpoint
// shipped at most this long after the first of them.
func snapshotCheckpointGap(last time.Duration) time.Duration {
	return max(freeCheckpointGap(last), time.Second)
}

func freeCheckpointGap(last time.Duration) time.Duration {
	return min(max(10*last, minFreeCheckpointGap), maxFreeCheckpointGap)
}

// localCheckpointDir is where the checkpoint is made before shipping: next
// to meta/, on the same file system, so Pebble hard-links the sstables.
const localCheckpointDir = "meta-checkpoint.tmp"

const catCheckpoint byte = 'K'

func punchMarkKey() []byte { return catalogKey(catCheckpoint, "punch-mark") }

// punchMarkRec is the persisted punch mark.
type punchMarkRec struct {
	Mark uint64 `json:"mark"` // free-queue entries at or below it may be punched
	Seq  uint64 `json:"seq"`  // the checkpoint it came from (0: the first, not yet shipped)
}

// freeSeqs tracks free-queue sequence numbers whose batch has not yet
// committed or aborted, so a checkpoint knows which entries it holds.
type freeSeqs struct {
	mu      sync.Mutex
	pending map[uint64]struct{} // allocated, batch still open
}

// allocFreeSeq returns a new free-queue sequence number; the caller
// releases it with releaseFreeSeqs once its batch committed or aborted.
func (s *Store) allocFreeSeq() uint64 {
	s.frees.mu.Lock()
	defer s.frees.mu.Unlock()
	n := s.seq.Add(1)
	if s.frees.pending == nil {
		s.frees.pending = map[uint64]struct{}{}
	}
	s.frees.pending[n] = struct{}{}
	return n
}

func (s *Store) releaseFreeSeqs(seqs []uint64) {
	if len(seqs) == 0 {
		return
	}
	s.frees.mu.Lock()
	for _, n := range seqs {
		delete(s.frees.pending, n)
	}
	s.frees.mu.Unlock()
}

// settledFreeMark returns M such that every free-queue entry with a
// sequence at or below M is committed (or was aborted).
func (s *Store) settledFreeMark() uint64 {
	s.frees.mu.Lock()
	defer s.frees.mu.Unlock()
	m := s.seq.Load()
	for n := range s.frees.pending {
		m = min(m, n-1)
	}
	return m
}

// ckptState is the checkpointer's state.
type ckptState struct {
	run sync.Mutex // one checkpoint at a time

	mu      sync.Mutex // guards the fields below
	limited bool       // a mark exists: punch only entries at or below mark
	mark    uint64
	lastSeq uint64
	last    CheckpointStats
	lastAt  time.Time
	// lastIn is the WAL bytes of changes (total minus own) when the last
	// checkpoint was taken.
	lastIn  uint64
	reason  string // a requested checkpoint's reason, "" if none
	freesAt time.Time
	kick    chan struct{}
}

// CheckpointStats describes one checkpoint.
type CheckpointStats struct {
	Seq       uint64        `json:"seq"`
	Reason    string        `json:"reason"`
	Taken     time.Time     `json:"taken"`
	Mark      uint64        `json:"free_mark"`
	Files     int           `json:"files"`
	Bytes     int64         `json:"bytes"`  // size of the checkpoint
	Copied    int64         `json:"copied"` // bytes copied to members (summed)
	Linked    int64         `json:"linked"` // bytes hard-linked from the previous one
	Members   []uint16      `json:"members"`
	Complete  bool          `json:"complete"`
	Took      time.Duration `json:"took"`       // checkpoint and ship
	TookLocal time.Duration `json:"took_local"` // the Pebble checkpoint alone
}

// loadPunchMark reads the persisted mark at Open and seeds the sequence
// so that new free-queue entries always sort above it and above every
// entry already queued, whatever the clock did.
func (s *Store) loadPunchMark() error {
	v, c, err := s.db.Get(punchMarkKey())
	switch {
	case errors.Is(err, pebble.ErrNotFound):
	case err != nil:
		return fmt.Errorf("read punch mark: %w", err)
	default:
		var r punchMarkRec
		jerr := json.Unmarshal(v, &r)
		c.Close()
		if jerr != nil {
			return fmt.Errorf("punch mark: %v: %w", jerr, errCorrupt)
		}
		s.ckpt.limited, s.ckpt.mark, s.ckpt.lastSeq = true, r.Mark, r.Seq
	}
	seed := max(uint64(time.Now().UnixNano()), s.ckpt.mark+1)
	lo, hi := tagBounds(tagFreeQ)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	if it.Last() {
		seed = max(seed, be64(it.Key()[1:9])+1)
	}
	if err := it.Close(); err != nil {
		return err
	}
	s.seq.Store(seed)
	s.ckpt.kick = make(chan struct{}, 1)
	s.ckpt.lastIn = s.walChanges()
	s.ckpt.lastAt = time.Now()
	return nil
}

// putPunchMark persists the punch mark durably.
func (s *Store) putPunchMark(r punchMarkRec) error {
	b := s.db.NewBatch()
	defer b.Close()
	v, _ := json.Marshal(r)
	_ = b.Set(punchMarkKey(), v, nil)
	s.walOwn.Add(uint64(b.Len()))
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("persist punch mark: %w", err)
	}
	return nil
}

// SetPunchMark persists mark as the punch mark: what pool import does
// after restoring a checkpoint whose FreeMark is mark.
func (s *Store) SetPunchMark(mark, seq uint64) error {
	s.punchMu.Lock()
	defer s.punchMu.Unlock()
	if err := s.putPunchMark(punchMarkRec{Mark: mark, Seq: seq}); err != nil {
		return err
	}
	s.ckpt.mu.Lock()
	s.ckpt.limited, s.ckpt.mark, s.ckpt.lastSeq = true, mark, max(s.ckpt.lastSeq, seq)
	s.ckpt.mu.Unlock()
	return nil
}

// punchLimit returns the highest free-queue sequence reclaim may punch,
// and whether there is a limit at all.
func (s *Store) punchLimit() (uint64, bool) {
	s.ckpt.mu.Lock()
	defer s.ckpt.mu.Unlock()
	return s.ckpt.mark, s.ckpt.limited
}

// walChanges is the WAL bytes written by changes: every batch, minus the
// store's own records that change nothing (empty sync records and the
// punch mark).
func (s *Store) walChanges() uint64 {
	return s.db.Metrics().WAL.BytesIn - s.walOwn.Load()
}

// logSync writes an empty synced WAL record: every batch committed before
// it is then durable. Its bytes are counted as the store's own.
func (s *Store) logSync(o *pebble.WriteOptions) error {
	s.walOwn.Add(s.emptyLogLen)
	if err := s.db.LogData(nil, o); err != nil {
		return fmt.Errorf("sync metadata: %w", err)
	}
	return nil
}

// RequestCheckpoint asks the background checkpointer for a checkpoint
// soon, with reason (e.g. "after snapshot vol@s3"). It does not wait.
func (s *Store) RequestCheckpoint(reason string) {
	if s.opts.CheckpointInterval < 0 {
		return
	}
	s.ckpt.mu.Lock()
	s.ckpt.reason = reason
	s.ckpt.mu.Unlock()
	select {
	case s.ckpt.kick <- struct{}{}:
	default:
	}
}

// LastCheckpoint returns the stats of the newest checkpoint this store
// took (zero Seq if none).
func (s *Store) LastCheckpoint() CheckpointStats {
	s.ckpt.mu.Lock()
	defer s.ckpt.mu.Unlock()
	return s.ckpt.last
}

// checkpointer runs in the background: requested checkpoints at once,
// checkpoints for waiting frees at most every freeCheckpointGap, and a
// periodic one every CheckpointInterval while the metadata changed.
func (s *Store) checkpointer() {
	defer s.bg.Done()
	tick := time.NewTicker(minFreeCheckpointGap)
	defer tick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-s.ckpt.kick:
		case <-tick.C:
		}
		reason := s.dueCheckpoint()
		if reason == "" {
			continue
		}
		st, err := s.Checkpoint(reason)
		if err != nil {
			s.logf("snapfs: metadata checkpoint (%s): %v", reason, err)
		}
		if st.Complete {
			s.reclaim(false) // what waited for this checkpoint
		}
	}
}

// dueCheckpoint returns the reason of the checkpoint to take now, or "".
func (s *Store) dueCheckpoint() string {
	s.ckpt.mu.Lock()
	reason, frees, lastAt, lastIn := s.ckpt.reason, s.ckpt.freesAt, s.ckpt.lastAt, s.ckpt.lastIn
	took := s.ckpt.last.Took
	s.ckpt.mu.Unlock()
	switch {
	case reason != "" && time.Since(lastAt) >= snapshotCheckpointGap(took):
		// Snapshots in a burst share one checkpoint: shipped back to
		// back, checkpoints took the disk from the writers and from the
		// next snapshots (p50 of a snapshot with 1,000 present 1.4 ms
		// -> 4.1 ms while they were taken one after the other).
		return reason
	case !frees.IsZero() && time.Since(lastAt) >= freeCheckpointGap(took):
		return "freed records waiting"
	case time.Since(lastAt) >= s.opts.CheckpointInterval && s.walChanges() != lastIn:
		return "periodic"
	}
	return ""
}

// noteFreesWaiting records that reclaim left entries above the punch
// limit: the checkpointer takes one soon.
func (s *Store) noteFreesWaiting() {
	if s.opts.CheckpointInterval < 0 {
		return
	}
	s.ckpt.mu.Lock()
	if s.ckpt.freesAt.IsZero() {
		s.ckpt.freesAt = time.Now()
	}
	s.ckpt.mu.Unlock()
	select {
	case s.ckpt.kick <- struct{}{}:
	default:
	}
}

// pebbleFS is the file system meta/ lives on.
func (s *Store) pebbleFS() vfs.FS {
	if s.opts.PebbleFS != nil {
		return s.opts.PebbleFS
	}
	return vfs.Default
}

// shipBeforeDropping makes sure the newest shipped checkpoint no longer
// names records about to be punched or packs about to be deleted outside
// the free queue (evacuation, repack, a removed member's files): once
// checkpoints are in use, it ships one now, after the batches that moved
// them away committed. It fails, and the caller keeps the old records, if
// no checkpoint reached every target.
func (s *Store) shipBeforeDropping(reason string) error {
	if _, limited := s.punchLimit(); !limited {
		return nil // no checkpoint yet: nothing protects old records
	}
	st, err := s.Checkpoint(reason)
	if err == nil && !st.Complete {
		err = fmt.Errorf("checkpoint reached %d member(s) only: %w", len(st.Members), ErrIO)
	}
	if err != nil {
		return fmt.Errorf("ship a checkpoint before dropping old records (%s): %w", reason, err)
	}
	return nil
}

// Checkpoint takes a checkpoint of the metadata now and ships it to the
// pool's checkpoint members; reason is recorded with it. It returns what
// it did; an error with Complete false means some target lacks it (the
// punch mark then stays where it was).
func (s *Store) Checkpoint(reason string) (CheckpointStats, error) {
	s.ckpt.run.Lock()
	defer s.ckpt.run.Unlock()
	start := time.Now()
	st := CheckpointStats{Reason: reason, Taken: start}
	mark := s.settledFreeMark()
	if err := s.limitFirst(mark); err != nil {
		return st, err
	}
	// Every entry at or below mark is committed: make it durable, so
	// the checkpoint (which copies the WAL file) holds it.
	if err := s.logSync(pebble.Sync); err != nil {
		return st, err
	}
	in := s.walChanges()
	fs := s.pebbleFS()
	dir := filepath.Join(filepath.Dir(s.pool.MetaDir()), localCheckpointDir)
	if err := fs.RemoveAll(dir); err != nil {
		return st, fmt.Errorf("checkpoint: clear %s: %w", dir, err)
	}
	// Asked before the checkpoint is taken: a replica complete now has
	// every chunk the checkpoint names (asyncrep.go).
	replicas := s.pool.CompleteReplicas()
	if err := s.db.Checkpoint(dir); err != nil {
		fs.RemoveAll(dir)
		return st, fmt.Errorf("checkpoint: %w", err)
	}
	defer fs.RemoveAll(dir)
	st.TookLocal = time.Since(start)
	files, err := checkpointFiles(fs, dir)
	if err != nil {
		return st, err
	}
	s.ckpt.mu.Lock()
	st.Seq = max(uint64(start.UnixNano()), s.ckpt.lastSeq+1)
	s.ckpt.lastSeq = st.Seq
	s.ckpt.reason, s.ckpt.freesAt = "", time.Time{}
	s.ckpt.lastAt, s.ckpt.lastIn = start, in
	s.ckpt.mu.Unlock()
	st.Mark, st.Files = mark, len(files)
	for _, f := range files {
		st.Bytes += f.Size
	}
	info := pool.CheckpointInfo{Seq: st.Seq, FreeMark: mark, Taken: start, Reason: reason, Files: files, Replicas: replicas}
	res, serr := s.pool.ShipCheckpoint(info, func(name string) (io.ReadCloser, error) {
		return fs.Open(filepath.Join(dir, name))
	})
	st.Copied, st.Linked, st.Members, st.Complete = res.Copied, res.Linked, res.Shipped, res.Complete
	if res.Complete {
		if err := s.advanceMark(mark, st.Seq); err != nil {
			serr = errors.Join(serr, err)
			st.Complete = false
		}
	}
	st.Took = time.Since(start)
	s.checkpointed(st.Complete && serr == nil)
	s.ckpt.mu.Lock()
	s.ckpt.last = st
	s.ckpt.mu.Unlock()
	if serr == nil {
		s.infof("snapfs: metadata checkpoint %d (%s): %d files, %d bytes, %d copied, %d linked, to members %v in %v",
			st.Seq, reason, st.Files, st.Bytes, st.Copied, st.Linked, st.Members, st.Took.Round(time.Millisecond))
	}
	return st, serr
}

// limitFirst bounds punching by mark before the first checkpoint is
// taken (a pool without one punches freely until then). punchMu keeps a
// reclaim pass from punching under the old, unlimited rule meanwhile.
func (s *Store) limitFirst(mark uint64) error {
	if _, limited := s.punchLimit(); limited {
		return nil
	}
	s.punchMu.Lock()
	defer s.punchMu.Unlock()
	if err := s.putPunchMark(punchMarkRec{Mark: mark}); err != nil {
		return err
	}
	s.ckpt.mu.Lock()
	s.ckpt.limited, s.ckpt.mark = true, mark
	s.ckpt.mu.Unlock()
	return nil
}

// advanceMark persists mark once the checkpoint seq is on every target,
// and lets reclaim punch up to it.
func (s *Store) advanceMark(mark, seq uint64) error {
	cur, _ := s.punchLimit()
	if mark < cur {
		mark = cur
	}
	if err := s.putPunchMark(punchMarkRec{Mark: mark, Seq: seq}); err != nil {
		return err
	}
	s.ckpt.mu.Lock()
	s.ckpt.mark = mark
	s.ckpt.mu.Unlock()
	return nil
}

// checkpointFiles lists the files of a local checkpoint with their sizes.
func checkpointFiles(fs vfs.FS, dir string) ([]pool.CheckpointFile, error) {
	names, err := fs.List(dir)
	if err != nil {
		return nil, fmt.Errorf("checkpoint: list %s: %w", dir, err)
	}
	sort.Strings(names)
	var out []pool.CheckpointFile
	for _, n := range names {
		fi, err := fs.Stat(filepath.Join(dir, n))
		if err != nil {
			return nil, fmt.Errorf("checkpoint: %w", err)
		}
		if fi.IsDir() {
			return nil, fmt.Errorf("checkpoint: unexpected directory %s", n)
		}
		out = append(out, pool.CheckpointFile{Name: n, Size: fi.Size()})
	}
	return out, nil
}

// checkpointAtClose takes the last checkpoint at Close when the metadata
// changed since the previous one.
func (s *Store) checkpointAtClose() {
	if s.opts.CheckpointInterval < 0 {
		return
	}
	s.ckpt.mu.Lock()
	lastIn, reason := s.ckpt.lastIn, s.ckpt.reason
	s.ckpt.mu.Unlock()
	if s.walChanges() == lastIn && reason == "" {
		return
	}
	// It covers everything, a snapshot's pending request included.
	if _, err := s.Checkpoint("at close"); err != nil && !errors.Is(err, pool.ErrReadOnly) {
		s.logf("snapfs: metadata checkpoint at close: %v", err)
	}
}

// logf logs a failure through Options.Logf, or to stderr when it is nil.
func (s *Store) logf(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf(format, args...)
		return
	}
	fmt.Fprintf(os.Stderr, format+"\n", args...)
}

// infof logs what went well through Options.Logf only.
func (s *Store) infof(format string, args ...any) {
	if s.opts.Logf != nil {
		s.opts.Logf(format, args...)
	}
}
