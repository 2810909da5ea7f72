package pool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// Asynchronous replicas
//
// An object-store member marked Async (pool create --member s3://B/P
// --async, or pool add-member s3://B/P --async) is an off-site replica:
// it receives every record and every metadata checkpoint in the
// background and never counts toward Copies. Placement never chooses it
// as one of the counted copies; Append writes one extra copy of each
// record to it, after the counted ones.
//
// # The backlog is the stage
//
// The replica's copy of a record goes into the member's local stage (the
// pack files under POOL/stage/<member-id>/packs/ that every object-store
// member appends to) at Append, and a Sync of its location is an
// fdatasync of the stage file, in parallel with the counted copies'
// syncs (one group commit per member, as for a directory). The store
// commits a chunk's reference only after that Sync, so what the replica
// still needs is durable with the write that creates it: a kill -9 of
// the daemon loses none of it, and the next Open finds the stage packs
// (recoverObjects) and hands them to the uploader. The alternative, keys
// in Pebble naming the chunks to copy later, would read every record back
// from a counted copy and needs a second write path; the stage costs one
// sequential local write of bytes already in hand.
//
// The uploader (asyncLoop, one goroutine per replica) seals stage packs
// into objects (by size, or after the seal interval) and Puts them in
// order, oldest first, as a synchronous member's sealer would, but never
// on the fsync path.
//
// # Checkpoints after their chunks
//
// ShipCheckpoint stages every checkpoint for the replica too: the
// replica's append position at that moment (its frontier: every record
// the checkpoint can name lies before it) is written first, then the
// checkpoint's files under POOL/stage/<member-id>/meta-checkpoints/<seq>
// (hard-linked from the previous one where unchanged, as on a
// directory member), both fsynced. The uploader Puts the checkpoint
// (its manifest last, as for any object member) only once every stage
// pack before the frontier is in the bucket. A checkpoint is staged only
// for the replicas the store found complete (every chunk on the replica,
// ReplicaComplete) before it took the checkpoint: so the bucket
// always holds a consistent pool, the newest complete checkpoint naming
// only records that are there. A newer staged checkpoint replaces an
// older one not yet shipped.
//
// # Bounded, visible, degraded
//
// Past the backlog limit (OpenOptions.AsyncBacklog, DefaultAsyncBacklog)
// Append waits for the uploader before it stages more: writers slow down
// to the replica's pace instead of the lag growing without end. A
// replica whose Puts fail is degraded (Health): the uploader retries with
// backoff and the backlog keeps growing up to the limit; past it, records
// are written without their replica copy (counted as skips) rather than
// stopping the pool's writers on an off-site link, and the store's
// backfill copies those chunks up once the replica answers again. The
// backlog (stage bytes not yet Put, plus a staged checkpoint) and the age
// of its oldest record are in Stats.
//
// # Reclaim
//
// A replica's sealed objects are repacked like a synchronous member's
// (the store's Repack), under a stricter punch rule: the bucket's
// newest complete checkpoint must stay importable at every moment. The
// store moves the live records of the chosen objects to new records on
// the same replica, takes a checkpoint, and deletes the objects only
// once ReplicaCheckpointed says that checkpoint (or a newer one) is in
// the bucket and no older complete one is left there: the uploader Puts
// the new records before that checkpoint's manifest, so at every moment
// (a kill -9 included) the newest complete checkpoint in the bucket
// names records the bucket holds.

// DefaultAsyncBacklog bounds a replica's backlog when OpenOptions give
// none: about eight seconds of uploads at the 30 MiB/s raw PUT rate the
// SeaweedFS server on the test machine gives, so the lag stays bounded
// by seconds, and a small share of the pool directory's disk.
const DefaultAsyncBacklog = 256 << 20

// frontierFile (in a replica's stage directory) records the frontier of
// the newest staged checkpoint.
const frontierFile = "checkpoint-frontier.json"

// completeFile (in a replica's stage directory) is the persisted
// "replica complete" mark: present while every chunkref names a copy on
// the replica. A backfill pass that found every chunk there writes it
// (SetReplicaComplete); a record appended without its replica copy
// removes it, durably, before Append returns (asyncRep.skip), so the
// chunkref naming no replica copy is never durable while the mark is.
// It lives beside the stage because it speaks of the stage: a lost stage
// (the backlog gone) takes the mark with it, and the backfill verifies
// (Pool.ReplicaPacks) the records it would otherwise trust.
const completeFile = "replica-complete.json"

// completeJSON is completeFile.
type completeJSON struct {
	Since time.Time `json:"complete_since"`
}

// asyncRep is the state of one asynchronous replica that outlives the
// member value (CheckMembers replaces a member when it goes and comes
// back): its limit, waiters, failure and counters.
type asyncRep struct {
	limit int64
	// backlog is the bytes staged and not yet Put.
	backlog atomic.Int64
	// skips counts records appended without their replica copy (the
	// replica gone, or degraded with a full backlog); complete is set by
	// the store's backfill once a pass found every chunk on the replica
	// with no skip meanwhile, and cleared by a skip. Both change under
	// markMu, with the mark file markPath on fsys (completeFile) that
	// persists complete across restarts.
	markMu   sync.Mutex
	skips    atomic.Uint64
	complete atomic.Bool
	fsys     FS
	markPath string
	// fresh is set when the replica's stage had no accounted file at
	// Open: a new replica, or a stage that was lost (StageFresh).
	fresh atomic.Bool
	// shipped is the newest checkpoint seq in the bucket (0: none seen).
	shipped atomic.Uint64
	// uploaded counts bytes Put (records and checkpoints).
	uploaded atomic.Int64

	mu   sync.Mutex
	cond *sync.Cond // on mu: broadcast when the backlog shrinks, the state changes, or the uploader stops
	err  error      // guarded by mu: the last upload failure (nil: the replica answers)
	// stopped (under mu) is set while no uploader runs: waiters give up.
	stopped bool
}

// rep returns the replica state of member i, made on first use.
func (p *Pool) rep(i uint16) *asyncRep {
	p.repsMu.Lock()
	defer p.repsMu.Unlock()
	if p.reps == nil {
		p.reps = map[uint16]*asyncRep{}
	}
	r := p.reps[i]
	if r == nil {
		r = &asyncRep{limit: p.opts.AsyncBacklog, fsys: p.fs}
		if r.limit <= 0 {
			r.limit = DefaultAsyncBacklog
		}
		r.cond = sync.NewCond(&r.mu)
		if cfg := p.Config(); int(i) < len(cfg.Members) && cfg.Members[i].ID != "" {
			r.initMark(filepath.Join(p.dir, stageDir, cfg.Members[i].ID))
		}
		p.reps[i] = r
	}
	return r
}

func (r *asyncRep) setErr(err error) {
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
	r.cond.Broadcast()
}

func (r *asyncRep) lastErr() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

func (r *asyncRep) setStopped(v bool) {
	r.mu.Lock()
	r.stopped = v
	r.mu.Unlock()
	r.cond.Broadcast()
}

// waitRoom waits until n more bytes fit in the backlog. It returns false
// (the caller skips the replica copy) when they do not fit and the
// replica is failing or has no uploader.
func (r *asyncRep) waitRoom(n int64) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for {
		b := r.backlog.Load()
		if b == 0 || b+n <= r.limit {
			return true
		}
		if r.err != nil || r.stopped {
			return false
		}
		r.cond.Wait()
	}
}

// initMark sets where the complete mark of the replica whose stage is
// dir lives (once), and reads it: a mark persisted by an earlier run
// makes the replica complete. A member added online is opened before
// the pool's configuration names it, so its opening calls this too.
func (r *asyncRep) initMark(dir string) {
	r.markMu.Lock()
	defer r.markMu.Unlock()
	if r.markPath != "" {
		return
	}
	r.markPath = filepath.Join(dir, completeFile)
	if _, err := r.fsys.Stat(r.markPath); err == nil {
		r.complete.Store(true)
	}
}

// skip counts a record appended without its copy on the replica and
// clears the complete mark, durably, before the caller's Append returns
// (and so before any chunkref naming no replica copy can commit).
func (r *asyncRep) skip() {
	r.markMu.Lock()
	defer r.markMu.Unlock()
	r.skips.Add(1)
	if r.complete.Swap(false) {
		if err := r.removeMark(); err != nil {
			r.setErr(fmt.Errorf("clear the replica's complete mark: %w", err))
		}
	}
}

// removeMark removes the mark file durably. Caller holds markMu.
func (r *asyncRep) removeMark() error {
	if r.markPath == "" {
		return nil
	}
	if err := r.fsys.Remove(r.markPath); err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	return r.fsys.SyncDir(filepath.Dir(r.markPath))
}

// IsReplica reports whether member i is an asynchronous replica.
func (p *Pool) IsReplica(i uint16) bool {
	ms := p.ms()
	return int(i) < len(ms) && ms[i].cfg.Async
}

// Counted returns how many of locs count toward Copies: those not on an
// asynchronous replica.
func (p *Pool) Counted(locs []Location) int {
	n := 0
	for _, l := range locs {
		if !p.IsReplica(l.Member) {
			n++
		}
	}
	return n
}

// Replicas returns the asynchronous replicas present now (not gone, not
// removed), by index.
func (p *Pool) Replicas() []uint16 {
	var out []uint16
	for _, m := range p.ms() {
		if m.cfg.Async && !m.cfg.Removed && m.gone == nil && m.rep != nil && !m.readOnly && !m.draining.Load() {
			out = append(out, m.idx)
		}
	}
	return out
}

// ReplicaSkips returns how many records were appended without their
// copy on replica i since Open; a backfill pass reads it before it
// starts and hands it to SetReplicaComplete.
func (p *Pool) ReplicaSkips(i uint16) uint64 { return p.rep(i).skips.Load() }

// SetReplicaComplete records that a backfill pass, started when
// ReplicaSkips(i) was skips, found every chunk with a copy on replica i:
// unless a record skipped it since, checkpoints may be shipped to it.
// The mark is persisted (completeFile) before it is set, so a restart
// finds it without a backfill pass; an error writing it leaves the
// replica incomplete.
func (p *Pool) SetReplicaComplete(i uint16, skips uint64) error {
	if err := p.writable(); err != nil {
		return err
	}
	r := p.rep(i)
	r.markMu.Lock()
	defer r.markMu.Unlock()
	if r.skips.Load() != skips || r.complete.Load() {
		return nil
	}
	if r.markPath != "" {
		b, _ := json.Marshal(completeJSON{Since: time.Now().UTC()})
		if err := writeFileAtomic(r.fsys, r.markPath, append(b, '\n'), false); err != nil {
			return fmt.Errorf("pool: replica %d: write %s: %w", i, r.markPath, err)
		}
	}
	r.complete.Store(true)
	p.kickReplica(i)
	return nil
}

// ClearReplicaComplete marks replica i incomplete (durably) because a
// chunkref is about to lose its copy there without a new one: the next
// backfill pass copies the chunk up again.
func (p *Pool) ClearReplicaComplete(i uint16) error {
	r := p.rep(i)
	r.markMu.Lock()
	defer r.markMu.Unlock()
	if r.complete.Swap(false) {
		if err := r.removeMark(); err != nil {
			return fmt.Errorf("pool: replica %d: clear the complete mark: %w", i, err)
		}
	}
	return nil
}

// CompleteReplicas returns the replicas present and complete now. The
// store asks before it takes a checkpoint and passes them in
// CheckpointInfo.Replicas: a checkpoint is staged only for the replicas
// that held every chunk it can name.
func (p *Pool) CompleteReplicas() []uint16 {
	var out []uint16
	for _, i := range p.Replicas() {
		if p.ReplicaComplete(i) {
			out = append(out, i)
		}
	}
	return out
}

// ReplicaComplete reports whether replica i holds every chunk (as of the
// last backfill pass, and no skip since).
func (p *Pool) ReplicaComplete(i uint16) bool { return p.rep(i).complete.Load() }

func (p *Pool) kickReplica(i uint16) {
	if ms := p.ms(); int(i) < len(ms) && ms[i].kick != nil {
		ms[i].kickSealer()
	}
}

// ReplicaState is what a replica still needs, for tests and status.
type ReplicaState struct {
	Backlog    int64         // stage bytes not yet Put, plus a staged checkpoint not yet shipped
	BacklogAge time.Duration // how long the oldest of it has waited
	Complete   bool          // every chunk is on the replica (ReplicaComplete)
	Shipped    uint64        // newest checkpoint seq in its bucket
	Staged     uint64        // newest checkpoint seq staged for it
	Skips      uint64
	Uploaded   int64
	Err        error // the last upload failure, nil when it answers
}

// Replica returns the state of replica i.
func (p *Pool) Replica(i uint16) (ReplicaState, error) {
	m, err := p.member(i)
	if err != nil {
		return ReplicaState{}, err
	}
	if m.rep == nil {
		return ReplicaState{}, fmt.Errorf("pool: member %d is not an asynchronous replica", i)
	}
	return m.replicaStats()
}

// replicaStats is Replica of replica member m.
func (m *member) replicaStats() (ReplicaState, error) {
	r := m.rep
	st := ReplicaState{Backlog: r.backlog.Load(), Complete: r.complete.Load(), Shipped: r.shipped.Load(),
		Skips: r.skips.Load(), Uploaded: r.uploaded.Load(), Err: r.lastErr()}
	m.mu.Lock()
	if !m.oldestUnsealed.IsZero() {
		st.BacklogAge = time.Since(m.oldestUnsealed)
	}
	m.mu.Unlock()
	c, err := newestOn(m.fs, m.dir)
	if err != nil {
		return st, err
	}
	if c != nil {
		st.Staged = c.Info.Seq
		if c.Info.Seq > st.Shipped {
			for _, f := range c.Info.Files {
				st.Backlog += f.Size
			}
			st.BacklogAge = max(st.BacklogAge, time.Since(c.Info.Taken))
		}
	}
	return st, nil
}

// appendReplicas writes rec to every asynchronous replica after the
// counted copies, waiting for room in its backlog, and returns locs with
// the replica copies added. A replica that cannot take it is skipped.
func (p *Pool) appendReplicas(rec []byte, length uint32, locs []Location) []Location {
	for _, m := range p.ms() {
		if !m.cfg.Async || m.cfg.Removed {
			continue
		}
		l, err := p.appendReplica(m, rec, length)
		if err == nil {
			locs = append(locs, l)
		}
	}
	return locs
}

func (p *Pool) appendReplica(m *member, rec []byte, length uint32) (Location, error) {
	r := p.rep(m.idx)
	if m.gone != nil || m.rep == nil || m.readOnly || m.draining.Load() {
		r.skip() // if the removal stops half way, the backfill copies it
		return Location{}, fmt.Errorf("pool: replica %d is not open or is being removed", m.idx)
	}
	if !r.waitRoom(int64(len(rec))) {
		r.skip()
		return Location{}, fmt.Errorf("pool: replica %d: backlog full and uploads failing: %w", m.idx, r.lastErr())
	}
	at, err := m.append(rec)
	if err != nil {
		r.skip()
		p.suspect(err)
		return Location{}, err
	}
	r.backlog.Add(int64(len(rec)))
	m.appended.Add(1)
	return Location{Member: m.idx, Pack: at.pack, Offset: at.off, Length: length}, nil
}

// AppendReplica writes one copy of the record (h, data) to replica i
// (the store's backfill of chunks written before the replica took them).
// Not durable until Sync.
func (p *Pool) AppendReplica(i uint16, h Hash, data []byte) (Location, error) {
	if err := p.writable(); err != nil {
		return Location{}, err
	}
	if len(data) > MaxRecord {
		return Location{}, fmt.Errorf("pool: append %d bytes: larger than %d", len(data), MaxRecord)
	}
	ms := p.ms()
	if int(i) >= len(ms) || !ms[i].cfg.Async {
		return Location{}, fmt.Errorf("pool: member %d is not an asynchronous replica", i)
	}
	rec := encodeRecordVersion(nil, p.writeVersion, p.id, h, data)
	m := ms[i]
	if m.gone != nil || m.rep == nil || m.readOnly || m.draining.Load() {
		return Location{}, fmt.Errorf("pool: replica %d is not open or is being removed", i)
	}
	if !m.rep.waitRoom(int64(len(rec))) {
		return Location{}, fmt.Errorf("pool: replica %d: backlog full and uploads failing: %w", i, m.rep.lastErr())
	}
	at, err := m.append(rec)
	if err != nil {
		return Location{}, err
	}
	m.rep.backlog.Add(int64(len(rec)))
	m.appended.Add(1)
	return Location{Member: m.idx, Pack: at.pack, Offset: at.off, Length: uint32(len(data))}, nil
}

// startReplica sets up replica member m at Open: its backlog (the stage
// packs recovery left pending), the newest checkpoint in its bucket, and
// its uploader.
func (p *Pool) startReplica(m *member) {
	r := m.rep
	var backlog int64
	for _, n := range m.pending {
		if pk, err := m.pack(n); err == nil {
			if size, err := pk.f.Size(); err == nil {
				backlog += size
			}
		}
	}
	r.backlog.Store(backlog)
	if cs, _, err := objectCheckpoints(m.obj, m.cfg.Path); err == nil && len(cs) > 0 {
		r.shipped.Store(cs[len(cs)-1].Info.Seq)
	}
	r.setStopped(false)
	m.done = make(chan struct{})
	go p.asyncLoop(m, m.stop, m.done)
}

// replicaStatsWait bounds the List that statistics of a replica make.
const replicaStatsWait = 5 * time.Second

// Uploader retry backoff bounds.
const (
	asyncRetryMin = 100 * time.Millisecond
	asyncRetryMax = 5 * time.Second
)

// asyncLoop is a replica's uploader: it seals stage packs, Puts them in
// order and ships staged checkpoints once their chunks are in the
// bucket. A failure marks the replica degraded and is retried with
// exponential backoff until it succeeds or the member closes.
func (p *Pool) asyncLoop(m *member, stop, done chan struct{}) {
	defer close(done)
	defer m.rep.setStopped(true)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-stop:
			cancel()
		case <-done:
		}
	}()
	m.mu.Lock()
	every := min(max(m.sealEvery/4, 10*time.Millisecond), time.Second)
	m.mu.Unlock()
	tick := time.NewTicker(every)
	defer tick.Stop()
	backoff := asyncRetryMin
	for {
		progressed, err := p.asyncStep(ctx, m)
		if ctx.Err() != nil {
			return
		}
		if err != nil {
			m.rep.setErr(err)
			p.suspect(err)
			select {
			case <-stop:
				return
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, asyncRetryMax)
			continue
		}
		backoff = asyncRetryMin
		if progressed {
			if m.rep.lastErr() != nil {
				m.rep.setErr(nil)
			}
			continue
		}
		if m.rep.lastErr() != nil {
			// Idle but marked degraded (a member check found the store
			// silent): it is back once member.json answers.
			if _, err := m.obj.Head(ctx, memberFile); err == nil {
				m.rep.setErr(nil)
			}
		}
		select {
		case <-stop:
			return
		case <-m.kick:
		case <-tick.C:
		}
	}
}

// asyncStep does one unit of the uploader's work: seal the active stage
// pack when due, Put the oldest pending one, or ship the staged
// checkpoint once its frontier is in the bucket. It reports whether it
// did anything.
func (p *Pool) asyncStep(ctx context.Context, m *member) (bool, error) {
	ck, frontier := p.stagedCheckpoint(m)
	m.mu.Lock()
	if m.failed != nil {
		err := m.failed
		m.mu.Unlock()
		return false, fmt.Errorf("member %d: stage: %w", m.idx, err)
	}
	due := m.end > 0 && time.Since(m.activeSince) >= m.sealEvery
	if ck != nil && frontier.pack == m.active.num && frontier.off > 0 {
		due = true // the staged checkpoint names records in the active pack
	}
	if len(m.pending) == 0 && due {
		if err := m.rotate(); err != nil {
			m.mu.Unlock()
			return false, err
		}
	}
	n := uint32(0)
	if len(m.pending) > 0 {
		n = m.pending[0]
	}
	putPos := m.pendingStart()
	m.mu.Unlock()
	if n > 0 {
		size, err := m.uploadCtx(ctx, n)
		if err != nil {
			return false, err
		}
		m.mu.Lock()
		m.pending = m.pending[1:] // only the uploader removes, in order
		if len(m.pending) == 0 {
			m.oldestUnsealed = time.Time{}
			if m.end > 0 {
				m.oldestUnsealed = m.activeSince
			}
		}
		m.mu.Unlock()
		m.rep.backlog.Add(-size)
		m.rep.uploaded.Add(size)
		m.rep.cond.Broadcast()
		return true, nil
	}
	if ck == nil || putPos.less(frontier) {
		return false, nil
	}
	dir := ck.Dir
	copied, _, err := shipToObjectCtx(ctx, m.obj, ck.Info, func(name string) (io.ReadCloser, error) {
		return openReader(p.fs, filepath.Join(dir, name))
	})
	if errors.Is(err, ErrExists) {
		err = nil // shipped before a crash: its manifest is there
	}
	if err != nil {
		return false, fmt.Errorf("member %d: ship checkpoint %d: %w", m.idx, ck.Info.Seq, err)
	}
	m.rep.uploaded.Add(copied)
	m.rep.shipped.Store(ck.Info.Seq)
	return true, nil
}

// stagedCheckpoint returns the newest checkpoint staged for replica m
// and not shipped yet, with its frontier (nil: none).
func (p *Pool) stagedCheckpoint(m *member) (*ShippedCheckpoint, pos) {
	c, err := newestOn(p.fs, m.dir)
	if err != nil || c == nil || c.Info.Seq <= m.rep.shipped.Load() {
		return nil, pos{}
	}
	var f frontierJSON
	b, err := readFile(p.fs, filepath.Join(m.dir, frontierFile))
	if err == nil {
		err = json.Unmarshal(b, &f)
	}
	if err != nil || f.Seq < c.Info.Seq {
		// Written before the checkpoint, so this cannot happen short of
		// damage: wait for everything staged now.
		m.mu.Lock()
		defer m.mu.Unlock()
		return c, pos{m.active.num, m.end}
	}
	return c, pos{f.Pack, f.Off}
}

// frontierJSON is frontierFile: the replica's append position when
// checkpoint Seq was staged.
type frontierJSON struct {
	Seq  uint64 `json:"seq"`
	Pack uint32 `json:"pack"`
	Off  int64  `json:"offset"`
}

// stageCheckpoints stages checkpoint info for every open replica (see
// the package comment on asyncrep.go). Failures mark the replica
// degraded; they do not fail the ship, whose completeness is the counted
// targets'.
func (p *Pool) stageCheckpoints(info CheckpointInfo, open func(name string) (io.ReadCloser, error)) {
	for _, m := range p.ms() {
		if !m.cfg.Async || m.gone != nil || m.rep == nil || m.readOnly || !contains(info.Replicas, m.idx) {
			continue
		}
		if err := p.stageCheckpoint(m, info, open); err != nil {
			m.rep.setErr(fmt.Errorf("stage checkpoint %d: %w", info.Seq, err))
			continue
		}
		m.kickSealer()
	}
}

func (p *Pool) stageCheckpoint(m *member, info CheckpointInfo, open func(name string) (io.ReadCloser, error)) error {
	m.mu.Lock()
	f := frontierJSON{Seq: info.Seq, Pack: m.active.num, Off: m.end}
	m.mu.Unlock()
	b, _ := json.Marshal(f)
	if err := writeFileAtomic(p.fs, filepath.Join(m.dir, frontierFile), b, false); err != nil {
		return err
	}
	_, _, err := shipTo(p.fs, m.dir, info, open)
	return err
}

// uploadCtx is upload for a replica: the Put is cancelled when the
// member closes. It returns the bytes Put.
func (m *member) uploadCtx(ctx context.Context, n uint32) (int64, error) {
	pk, err := m.pack(n)
	if err != nil {
		return 0, err
	}
	size, err := pk.f.Size()
	if err != nil {
		return 0, fmt.Errorf("member %d: size of stage pack %d: %w", m.idx, n, err)
	}
	if size == 0 {
		return 0, m.upload(n) // removes the empty file
	}
	b := make([]byte, size)
	if _, err := pk.f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return 0, fmt.Errorf("member %d: read stage pack %d: %w", m.idx, n, err)
	}
	if err := m.obj.Put(ctx, objKey(n), b); err != nil {
		return 0, fmt.Errorf("member %d: put stage pack %d: %w", m.idx, n, err)
	}
	m.packsMu.Lock()
	m.packs[n] = &pack{num: n, f: objFile{m.obj, objKey(n)}}
	m.packsMu.Unlock()
	if _, isObj := pk.f.(objFile); !isObj {
		time.AfterFunc(closeDelay, func() { pk.f.Close() })
	}
	_ = m.fs.Remove(m.packPath(n)) // one left is only removed at the next Open
	return size, nil
}

// closeReplica stops the uploader of replica m, waits for it, and syncs
// the active stage pack: the backlog stays for the next Open.
func (m *member) closeReplica() error {
	m.stopSealer()
	if m.done != nil {
		<-m.done
	}
	return nil
}

// checkAsync checks the Async marks of a new configuration: only
// object-store members, never every member, and Copies reachable
// without the replicas.
func checkAsync(cfg Config, async map[string]bool) error {
	if len(async) == 0 {
		return nil
	}
	byPath := map[string]MemberConfig{}
	for _, m := range cfg.Members {
		byPath[m.Path] = m
	}
	domains := map[string]bool{}
	for url := range async {
		m, ok := byPath[url]
		if !ok {
			return fmt.Errorf("pool: --async %s: not a member", url)
		}
		if m.Kind != KindS3 {
			return fmt.Errorf("pool: --async %s: only an s3:// member can be an asynchronous replica", url)
		}
	}
	for _, m := range cfg.Members {
		if !m.Async {
			domains[m.Domain] = true
		}
	}
	if len(domains) == 0 {
		if len(cfg.Members) == 1 {
			return fmt.Errorf("pool: --async on the only member %s: an asynchronous replica copies what other members hold; give a member that takes the counted copies too", cfg.Members[0].Path)
		}
		return errors.New("pool: every member is --async: an asynchronous replica copies what other members hold; give a member that takes the counted copies too")
	}
	if cfg.Copies > len(domains) {
		return fmt.Errorf("pool: copies %d needs %d failure domains besides the asynchronous replicas (which never count toward copies), but the other members span %d",
			cfg.Copies, cfg.Copies, len(domains))
	}
	return nil
}

// replicaProblem says why replica m is degraded ("" when it is not).
func (p *Pool) replicaProblem(m *member) string {
	if m.gone != nil {
		return m.gone.Error()
	}
	m.mu.Lock()
	failed := m.failed
	m.mu.Unlock()
	if failed != nil {
		return failed.Error()
	}
	if m.rep == nil {
		return ""
	}
	if err := m.rep.lastErr(); err != nil {
		return fmt.Sprintf("asynchronous replica not receiving (backlog %d bytes kept): %v", m.rep.backlog.Load(), err)
	}
	return ""
}

// promoteReplicas makes the asynchronous replicas named by an import
// synchronous members when every member it names is a replica: the
// bucket is then the one copy the new host has, and it must take the
// counted copies of new writes (an import that also names members that
// are not replicas keeps them replicas).
func promoteReplicas(cfg *Config, named []importMember) {
	isNamed := map[string]bool{}
	for _, m := range named {
		isNamed[m.path] = true
	}
	for _, m := range cfg.Members {
		if isNamed[m.Path] && !m.Async && !m.Removed {
			return
		}
	}
	for i := range cfg.Members {
		if isNamed[cfg.Members[i].Path] {
			cfg.Members[i].Async = false
		}
	}
}

// replicaStatsOf fills in the backlog of replica m's statistics.
func (m *member) replicaStatsOf(ms MemberStats) MemberStats {
	rs, _ := m.replicaStats()
	ms.Backlog, ms.BacklogAge, ms.ReplicaComplete = rs.Backlog, rs.BacklogAge, rs.Complete
	ms.Used += ms.Backlog
	return ms
}

// checkStore is a member check of replica m: one Head of member.json,
// bounded by replicaStatsWait (a check, and pool status with it, must
// not wait out the client's retries while the store is silent). A store
// that does not answer marks the replica degraded; the uploader clears
// it once a Put or its own probe succeeds.
func (r *asyncRep) checkStore(m *member) {
	ctx, cancel := context.WithTimeout(context.Background(), replicaStatsWait)
	defer cancel()
	if _, err := m.obj.Head(ctx, memberFile); err != nil && r.lastErr() == nil {
		r.setErr(fmt.Errorf("member check: %w", err))
	}
}

// ReplicaPacks returns a test of whether a pack of replica i exists, for
// the backfill's check that the records chunkrefs name there were not
// lost with the stage (a stage directory deleted or a disk replaced
// under the pool directory: the backlog gone). It lists the stage and
// the bucket once; packs numbered from the active stage pack on (at the
// time of the listing) count as present, since appends go there.
func (p *Pool) ReplicaPacks(i uint16) (func(pack uint32) bool, error) {
	m, err := p.member(i)
	if err != nil {
		return nil, err
	}
	if m.rep == nil || m.gone != nil {
		return nil, fmt.Errorf("pool: replica %d is not open", i)
	}
	active := m.activeNum.Load()
	present, err := m.packSet()
	if err != nil {
		return nil, err
	}
	return func(n uint32) bool {
		_, ok := present[n]
		return ok || n >= active
	}, nil
}

// ReplicaStageFresh reports whether replica i's stage was created at
// this Open (a new replica, or its stage lost with its backlog). The
// store then looks for records its chunkrefs name there
// (ReplicaPackFloor), since pack numbers the lost stage used must not be
// used again.
func (p *Pool) ReplicaStageFresh(i uint16) bool { return p.rep(i).fresh.Load() }

// ReplicaPackFloor makes replica i append from pack n on, when its
// active stage pack is numbered below n: the store found chunkrefs
// naming records in packs of a lost stage up to n-1, and a new record
// at the same place would read as theirs. The active stage pack (empty,
// before any append) is handed to the uploader, which removes it.
func (p *Pool) ReplicaPackFloor(i uint16, n uint32) error {
	m, err := p.member(i)
	if err != nil {
		return err
	}
	if m.rep == nil || m.readOnly || m.gone != nil {
		return fmt.Errorf("pool: replica %d is not open", i)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.active == nil || m.active.num >= n {
		return nil
	}
	pk, err := m.newPack(n)
	if err != nil {
		return err
	}
	old := m.active
	if m.end > 0 {
		m.pending = append(m.pending, old.num) // the uploader Puts it
	} else {
		// Empty: removed now, so that no listing takes its number for
		// one of the lost packs.
		m.packsMu.Lock()
		delete(m.packs, old.num)
		m.packsMu.Unlock()
		old.f.Close()
		if err := m.fs.Remove(m.packPath(old.num)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("member %d: remove empty stage pack %d: %w", m.idx, old.num, err)
		}
	}
	m.setActive(pk, 0)
	m.durable = pos{n, 0}
	return nil
}

// ReplicaCheckpointStall bounds how long ReplicaCheckpointed waits while
// the replica's uploader makes no progress (a variable for tests).
var ReplicaCheckpointStall = time.Minute

// ReplicaCheckpointed waits until replica i's bucket holds checkpoint
// seq or a newer one, then makes sure no older complete checkpoint is
// left there (deleting an older one's manifest makes it incomplete: an
// import never picks it): after that, nothing the bucket's complete
// checkpoints name lies in a record the store no longer names, and the
// store may delete the replica's objects it emptied. It fails when the
// uploader makes no progress for ReplicaCheckpointStall, or when the
// checkpoint was not staged for the replica (it was not complete).
func (p *Pool) ReplicaCheckpointed(i uint16, seq uint64) error {
	m, err := p.member(i)
	if err != nil {
		return err
	}
	if m.rep == nil || m.gone != nil {
		return fmt.Errorf("pool: replica %d is not open", i)
	}
	r := m.rep
	last, lastAt := r.uploaded.Load(), time.Now()
	for r.shipped.Load() < seq {
		if c, err := newestOn(p.fs, m.dir); err == nil && (c == nil || c.Info.Seq < seq) && r.shipped.Load() < seq {
			return fmt.Errorf("pool: replica %d: checkpoint %d was not staged for it (the replica was not complete)", i, seq)
		}
		if up := r.uploaded.Load(); up != last {
			last, lastAt = up, time.Now()
		}
		if time.Since(lastAt) > ReplicaCheckpointStall {
			return fmt.Errorf("pool: replica %d: checkpoint %d not in the bucket after %v without progress: %v", i, seq, ReplicaCheckpointStall, r.lastErr())
		}
		m.kickSealer()
		time.Sleep(20 * time.Millisecond)
	}
	cs, _, err := objectCheckpoints(m.obj, m.cfg.Path)
	if err != nil {
		return fmt.Errorf("pool: replica %d: %w", i, err)
	}
	for _, c := range cs {
		if c.Info.Seq >= seq {
			continue
		}
		key := objCheckpointKey(c.Info.Seq, checkpointFile)
		if err := m.obj.Delete(context.Background(), key); err != nil {
			return fmt.Errorf("pool: replica %d: delete older checkpoint %s %s: %w", i, m.obj, key, err)
		}
	}
	return nil
}
