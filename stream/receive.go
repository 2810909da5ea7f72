package stream

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/zeebo/blake3"

	"github.com/snapfs/snapfs/internal/killpoint"
	"github.com/snapfs/snapfs/pool"
	"github.com/snapfs/snapfs/snap"
	"github.com/snapfs/snapfs/store"
)

// Target is where a receive goes: a volume of a store, whose pool
// directory holds the partial state of interrupted receives (Dir/recv/).
type Target struct {
	Store   *store.Store
	Dir     string
	Dataset string
	// Force rolls the target back to its newest snapshot before an
	// incremental is applied, if it changed since.
	Force      bool
	OnProgress func(bytes int64)
	// Logf logs what goes wrong after the receive succeeded (nil: stderr).
	Logf func(format string, args ...any)
}

func (t *Target) logf(format string, args ...any) {
	if t.Logf != nil {
		t.Logf(format, args...)
		return
	}
	fmt.Fprintf(os.Stderr, "snapfs: "+format+"\n", args...)
}

// Received is one snapshot a receive made.
type Received struct {
	Snapshot    string `json:"snapshot"`
	Incremental bool   `json:"incremental"`
	Base        string `json:"base,omitempty"`
}

// recvRecord is the meta record recv/<dataset> of a received volume: which
// source snapshot its newest received snapshot holds, and which target
// inode holds each source inode (an incremental names source inodes).
type recvRecord struct {
	SourcePool    string   `json:"source_pool"`
	SourceDataset string   `json:"source_dataset"`
	Snapshot      SnapInfo `json:"snapshot"`
	TargetEpoch   uint64   `json:"target_epoch"`
	// Map is the inode map of a record written before 2026-12-06; since,
	// MapInKeys is set and the map is in per-inode records (inomap.go).
	Map       [][2]uint64 `json:"map,omitempty"`
	MapInKeys bool        `json:"map_in_keys,omitempty"`
}

func recvKey(ds string) string { return "recv/" + ds }

// newKey marks a volume that a full receive created and has not finished:
// receive --abort destroys it (Abort), and an interrupted full receive
// leaves it, emptied, for the next full receive into that name to take
// over.
func newKey(ds string) string { return "recv-new/" + ds }

func madeByReceive(st *store.Store, ds string) bool {
	_, err := st.GetMeta(newKey(ds))
	return err == nil
}

// partialState is Dir/recv/<dataset>.state: the stream a partial receive
// is reading and how much of it the spool holds, verified and durable.
type partialState struct {
	Header   Header `json:"header"`
	Verified int64  `json:"verified"`
	Complete bool   `json:"complete"` // the whole stream is in the spool, verified
	Applying bool   `json:"applying"` // the target may hold part of it: undo before applying
	Force    bool   `json:"force"`
	// SpoolLen is the spool's length at Verified (chunk records are
	// references in the spool, so it is shorter than Verified); 0 in a
	// state written before, whose spool holds the stream as it came.
	SpoolLen int64 `json:"spool_len,omitempty"`
}

// Token is what a resume token says: the stream and the offset to resume at.
type Token struct {
	V          int       `json:"v"`
	StreamID   string    `json:"stream_id"`
	Offset     int64     `json:"offset"`
	SourcePool string    `json:"source_pool"`
	Dataset    string    `json:"dataset"`
	Snapshot   SnapInfo  `json:"snapshot"`
	Base       *SnapInfo `json:"base,omitempty"`
}

// paths returns the files of dataset ds's partial receive.
func paths(dir, ds string) (spool, state, lock string) {
	b := filepath.Join(dir, "recv", url.PathEscape(ds))
	return b + ".spool", b + ".state", b + ".lock"
}

// lockDataset takes the lock that lets one receive at a time into ds.
func lockDataset(dir, ds string) (func(), error) {
	_, _, lp := paths(dir, ds)
	if err := os.MkdirAll(filepath.Dir(lp), 0o700); err != nil {
		return nil, fmt.Errorf("receive: %w", err)
	}
	f, err := os.OpenFile(lp, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("receive: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, fmt.Errorf("%w: %s", ErrBusy, ds)
	}
	return func() { f.Close() }, nil
}

func loadState(dir, ds string) (*partialState, error) {
	_, sp, _ := paths(dir, ds)
	b, err := os.ReadFile(sp)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("receive state: %w", err)
	}
	var s partialState
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("receive state %s: %w", sp, err)
	}
	return &s, nil
}

// saveState writes the state durably (temporary file, fsync, rename).
func saveState(dir, ds string, s *partialState) error {
	_, sp, _ := paths(dir, ds)
	tmp := sp + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return fmt.Errorf("receive state: %w", err)
	}
	_, err = f.Write(mustJSON(s))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, sp)
	}
	if err != nil {
		return fmt.Errorf("receive state: %w", err)
	}
	return syncDir(filepath.Dir(sp))
}

func syncDir(d string) error {
	f, err := os.Open(d)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Sync()
}

func dropPartial(dir, ds string) error {
	sp, st, _ := paths(dir, ds)
	for _, p := range []string{st, sp} {
		if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("receive: %w", err)
		}
	}
	return nil
}

// Partial describes a dataset's partial receive, for listings.
type Partial struct {
	Dataset  string `json:"dataset"`
	Snapshot string `json:"snapshot"`
	Verified int64  `json:"verified_bytes"`
	Complete bool   `json:"complete"`
	Token    string `json:"resume_token"`
}

// PartialOf returns the partial receive of dataset ds, or nil.
func PartialOf(dir, ds string) (*Partial, error) {
	s, err := loadState(dir, ds)
	if err != nil || s == nil {
		return nil, err
	}
	return &Partial{Dataset: ds, Snapshot: s.Header.Snapshot.Name, Verified: s.Verified,
		Complete: s.Complete, Token: encodeToken(s)}, nil
}

// Partials lists the partial receives of the pool in dir.
func Partials(dir string) ([]Partial, error) {
	ents, err := os.ReadDir(filepath.Join(dir, "recv"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Partial
	for _, e := range ents {
		n := e.Name()
		if filepath.Ext(n) != ".state" {
			continue
		}
		ds, err := url.PathUnescape(n[:len(n)-len(".state")])
		if err != nil {
			continue
		}
		p, err := PartialOf(dir, ds)
		if err != nil {
			return nil, err
		}
		if p != nil {
			out = append(out, *p)
		}
	}
	return out, nil
}

func encodeToken(s *partialState) string {
	h := s.Header
	t := Token{V: 1, StreamID: h.StreamID, Offset: s.Verified, SourcePool: h.SourcePool,
		Dataset: h.Dataset, Snapshot: h.Snapshot, Base: h.Base}
	return "1-" + base64url(mustJSON(t))
}

// ResumeToken returns the token of dataset ds's partial receive.
func ResumeToken(dir, ds string) (string, error) {
	s, err := loadState(dir, ds)
	if err != nil {
		return "", err
	}
	if s == nil {
		return "", fmt.Errorf("%w into %s", ErrNoPartial, ds)
	}
	return encodeToken(s), nil
}

// Abort drops dataset ds's partial receive. A receive interrupted while
// applying has its target restored first (rolled back to the base, or
// emptied if it was a full receive). The volume a full receive created
// (marked recv-new) is destroyed with its mark, in one batch, so an
// aborted full receive leaves no empty volume behind; it is only emptied
// when it cannot go: snapshots or branches were made of it, or mounted
// (nil: nothing is mounted, as without a daemon) says it is served.
func Abort(st *store.Store, dir, ds string, mounted func(vol string) bool) error {
	unlock, err := lockDataset(dir, ds)
	if err != nil {
		return err
	}
	defer unlock()
	s, err := loadState(dir, ds)
	if err != nil {
		return err
	}
	if s == nil {
		// Chunks a receive staged before it was killed, ahead of its
		// first resume point, go too.
		if err := st.ReleaseStage(stageOf(ds)); err != nil {
			return fmt.Errorf("abort: %w", err)
		}
		return fmt.Errorf("%w into %s", ErrNoPartial, ds)
	}
	if s.Applying {
		if err := undoApply(st, ds, &s.Header); err != nil {
			return err
		}
	}
	if err := st.ReleaseStage(stageOf(ds)); err != nil {
		return fmt.Errorf("abort: %w", err)
	}
	if s.Header.Base == nil && madeByReceive(st, ds) && (mounted == nil || !mounted(ds)) {
		err := snap.ManagerFor(st).DestroyVolume(ds, false, store.MetaOp{Key: newKey(ds), Delete: true})
		var busy *snap.VolumeBusyError
		switch {
		case errors.As(err, &busy):
			// kept (emptied above if it was being applied): its snapshots are the user's
		case err != nil && !errors.Is(err, store.ErrNoVolume):
			return fmt.Errorf("abort: destroy %s, made by the receive: %w", ds, err)
		}
	}
	return dropPartial(dir, ds)
}

// stageOf is the stage (store.StageChunks) that holds the chunks of a
// receive into ds until its snapshot holds them: one per dataset, as one
// receive at a time goes into a dataset, and derived from its name, so
// that what a receive killed before it wrote any state staged is found
// (and released) by the next receive or abort.
func stageOf(ds string) uint64 {
	h := blake3.Sum256([]byte("snapfs receive stage\x00" + ds))
	return binary.BigEndian.Uint64(h[:8]) | 1
}

// parsed is what the verify pass keeps of a stream for the apply pass:
// every metadata record, and the length of each chunk the stream carried
// (staged in the target's store).
type parsed struct {
	hdr     Header
	inodes  []inodeRecord
	inoSeen map[uint64]bool
	xattrs  map[uint64][]xattr
	dirs    []dirRecord
	layouts []layoutRecord
	chunks  map[pool.Hash]uint32
	stats   Stats
}

type dirRecord struct {
	ino     uint64
	entries []dirEntry
}

// zstdMagic opens a zstd frame: a stream sent with --compress.
var zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}

// Receive reads one stream, or several in a row (send -I), from in into
// t. Each is verified whole and made durable before its snapshot appears;
// a damaged, truncated or foreign stream leaves the target as it was, and
// what was verified of an interrupted one stays resumable.
func Receive(t *Target, in io.Reader) ([]Received, Stats, error) {
	if snap.VolumeOf(t.Dataset) != t.Dataset {
		return nil, Stats{}, fmt.Errorf("receive into %s: the target must be a volume, not a branch: %w", t.Dataset, store.ErrInvalid)
	}
	unlock, err := lockDataset(t.Dir, t.Dataset)
	if err != nil {
		return nil, Stats{}, err
	}
	defer unlock()
	br := bufio.NewReaderSize(in, 1<<20)
	if m, _ := br.Peek(4); bytes.Equal(m, zstdMagic) {
		zr, err := zstd.NewReader(br)
		if err != nil {
			return nil, Stats{}, fmt.Errorf("receive: %w", err)
		}
		defer zr.Close()
		br = bufio.NewReaderSize(zr, 1<<20)
	}
	var out []Received
	var total Stats
	for {
		if len(out) > 0 {
			if _, err := br.Peek(1); errors.Is(err, io.EOF) {
				return out, total, nil
			}
		}
		r, st, err := receiveOne(t, br)
		total.Add(st)
		if err != nil {
			return out, total, err
		}
		out = append(out, r)
	}
}

func receiveOne(t *Target, br *bufio.Reader) (Received, Stats, error) {
	start := time.Now()
	rd := newReader(br)
	var first bytes.Buffer
	rd.tee = &first
	if err := rd.preamble(); err != nil {
		return Received{}, Stats{}, err
	}
	typ, payload, err := rd.next()
	if err != nil {
		return Received{}, Stats{}, err
	}
	spoolPath, _, _ := paths(t.Dir, t.Dataset)
	var st *partialState
	var spool *os.File
	switch typ {
	case recResume:
		var ri resumeInfo
		if err := json.Unmarshal(payload, &ri); err != nil {
			return Received{}, Stats{}, corrupt(preambleLen, "resume record: %v", err)
		}
		if st, err = loadState(t.Dir, t.Dataset); err != nil {
			return Received{}, Stats{}, err
		}
		if st == nil {
			return Received{}, Stats{}, fmt.Errorf("%w into %s to resume", ErrNoPartial, t.Dataset)
		}
		if ri.StreamID != st.Header.StreamID || ri.Offset != st.Verified {
			return Received{}, Stats{}, fmt.Errorf("%w: the resumed stream does not continue the partial receive into %s", ErrStaleToken, t.Dataset)
		}
		if spool, err = os.OpenFile(spoolPath, os.O_RDWR, 0o600); err != nil {
			return Received{}, Stats{}, fmt.Errorf("receive: spool: %w", err)
		}
		if st.SpoolLen == 0 { // a spool of the stream as it came
			st.SpoolLen = st.Verified
		}
		if err := spool.Truncate(st.SpoolLen); err != nil {
			spool.Close()
			return Received{}, Stats{}, fmt.Errorf("receive: spool: %w", err)
		}
		if _, err := spool.Seek(st.SpoolLen, io.SeekStart); err != nil {
			spool.Close()
			return Received{}, Stats{}, fmt.Errorf("receive: spool: %w", err)
		}
		rd = newReader(io.MultiReader(newSpoolReader(spool, st.SpoolLen, t.Store), rd.r))
		rd.tee, rd.teeFrom = &spoolWriter{f: spool, n: st.SpoolLen}, st.Verified
		if err := rd.preamble(); err != nil {
			spool.Close()
			return Received{}, Stats{}, err
		}
		if typ, payload, err = rd.next(); err != nil || typ != recHeader {
			spool.Close()
			return Received{}, Stats{}, corrupt(preambleLen, "spool does not start with a header")
		}
	case recHeader:
		if old, err := loadState(t.Dir, t.Dataset); err != nil {
			return Received{}, Stats{}, err
		} else if old != nil {
			return Received{}, Stats{}, fmt.Errorf("%w into %s (of %s@%s): resume it (receive --resume-token) or abort it (receive --abort)",
				ErrPartial, t.Dataset, old.Header.Dataset, old.Header.Snapshot.Name)
		}
	default:
		return Received{}, Stats{}, corrupt(preambleLen, "the first record is %q, not a header", typ)
	}
	var hdr Header
	if err := json.Unmarshal(payload, &hdr); err != nil {
		closeFile(spool)
		return Received{}, Stats{}, corrupt(preambleLen, "header: %v", err)
	}
	if hdr.Format > Version {
		closeFile(spool)
		return Received{}, Stats{}, fmt.Errorf("%w: the stream is format %d, this snapfs reads up to %d", ErrNewerVersion, hdr.Format, Version)
	}
	if hdr.StreamID != streamID(&hdr) || hdr.Format < 1 || snap.ValidName(hdr.Snapshot.Name) != nil ||
		hdr.ChunkSize < 4096 || hdr.ChunkSize&(hdr.ChunkSize-1) != 0 {
		closeFile(spool)
		return Received{}, Stats{}, corrupt(preambleLen, "header is inconsistent")
	}
	var base *recvRecord
	if st == nil {
		if base, err = checkTarget(t, &hdr); err != nil {
			return Received{}, Stats{}, err
		}
		// What a receive killed before its first resume point staged
		// (no state says so) goes first.
		if err := t.Store.ReleaseStage(stageOf(t.Dataset)); err != nil {
			return Received{}, Stats{}, fmt.Errorf("receive: %w", err)
		}
		st = &partialState{Header: hdr, Force: t.Force}
		if spool, err = os.OpenFile(spoolPath, os.O_CREATE|os.O_TRUNC|os.O_RDWR, 0o600); err != nil {
			return Received{}, Stats{}, fmt.Errorf("receive: spool: %w", err)
		}
		if _, err := spool.Write(first.Bytes()); err != nil {
			spool.Close()
			return Received{}, Stats{}, fmt.Errorf("receive: spool: %w", err)
		}
		rd.tee, rd.teeFrom = &spoolWriter{f: spool, n: int64(first.Len())}, rd.off
		// The state is written at the first resume point (verify), after
		// what it names is durable.
		st.Verified, st.SpoolLen = rd.off, int64(first.Len())
	} else if !st.Applying {
		if base, err = checkTarget(t, &hdr); err != nil {
			spool.Close()
			return Received{}, Stats{}, err
		}
	} else if hdr.Base != nil {
		if base, err = loadRecv(t.Store, t.Dataset); err != nil {
			spool.Close()
			return Received{}, Stats{}, err
		}
	}
	defer spool.Close()
	wasApplying := st.Applying
	p, err := verify(t, rd, hdr, base, st, spool)
	p.stats.Duration = time.Since(start)
	if err != nil {
		return Received{}, p.stats, err
	}
	if err := apply(t, p, base, st, wasApplying); err != nil {
		return Received{}, p.stats, err
	}
	if err := dropPartial(t.Dir, t.Dataset); err != nil {
		return Received{}, p.stats, err
	}
	p.stats.Duration = time.Since(start)
	r := Received{Snapshot: hdr.Snapshot.Name, Incremental: hdr.Base != nil}
	if hdr.Base != nil {
		r.Base = hdr.Base.Name
	}
	return r, p.stats, nil
}

func closeFile(f *os.File) {
	if f != nil {
		f.Close()
	}
}

func loadRecv(st *store.Store, ds string) (*recvRecord, error) {
	b, err := st.GetMeta(recvKey(ds))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var r recvRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("receive record of %s: %w", ds, err)
	}
	return &r, nil
}

// checkTarget refuses a stream the target cannot take, before anything
// is spooled: a full stream into an existing dataset, an incremental
// whose base the target lacks or whose target changed since (without
// Force), a snapshot name the target has. It returns the target's
// receive record for an incremental.
func checkTarget(t *Target, h *Header) (*recvRecord, error) {
	m := snap.ManagerFor(t.Store)
	_, err := t.Store.Volume(t.Dataset)
	exists := err == nil
	if err != nil && !errors.Is(err, store.ErrNoVolume) {
		return nil, err
	}
	if h.Base == nil {
		if exists && !madeByReceive(t.Store, t.Dataset) {
			return nil, fmt.Errorf("%w: %s exists; a full stream makes a new volume (send an incremental, or receive into another name)", ErrTargetExists, t.Dataset)
		}
		return nil, nil
	}
	if !exists {
		return nil, fmt.Errorf("%w: %s does not exist, so %s@%s is not there", ErrNoBase, t.Dataset, t.Dataset, h.Base.Name)
	}
	rec, err := loadRecv(t.Store, t.Dataset)
	if err != nil {
		return nil, err
	}
	bs, berr := m.Entry(t.Dataset, h.Base.Name)
	if rec == nil || berr != nil || rec.SourcePool != h.SourcePool || rec.SourceDataset != h.Dataset ||
		rec.Snapshot != *h.Base || bs.Epoch != rec.TargetEpoch {
		return nil, fmt.Errorf("%w: %s@%s is not a received copy of %s@%s of pool %s", ErrNoBase,
			t.Dataset, h.Base.Name, h.Dataset, h.Base.Name, h.SourcePool)
	}
	if _, err := m.Entry(t.Dataset, h.Snapshot.Name); err == nil {
		return nil, fmt.Errorf("%w: %s@%s", ErrSnapshotExists, t.Dataset, h.Snapshot.Name)
	}
	list, err := m.Entries(t.Dataset)
	if err != nil {
		return nil, err
	}
	for _, s := range list {
		if s.Kind == snap.KindSnapshot && s.Epoch > bs.Epoch {
			return nil, fmt.Errorf("%w: %s@%s is newer than the base %s (destroy it first)", ErrTargetChanged, t.Dataset, s.Name, h.Base.Name)
		}
	}
	if !t.Force {
		changed, err := liveChanged(t.Store, t.Dataset)
		if err != nil {
			return nil, err
		}
		if changed {
			return nil, fmt.Errorf("%w: %s was written since %s@%s (receive -F rolls it back first)", ErrTargetChanged, t.Dataset, t.Dataset, h.Base.Name)
		}
	}
	return rec, nil
}

// liveChanged reports whether the live view of ds has versions born since
// its newest snapshot.
func liveChanged(st *store.Store, ds string) (bool, error) {
	m := snap.ManagerFor(st)
	v, err := m.LiveView(ds)
	if err != nil {
		return false, err
	}
	list, err := m.Entries(ds)
	if err != nil {
		return false, err
	}
	newest := uint64(0)
	for _, s := range list {
		if s.Kind == snap.KindSnapshot && s.Lineage == v.Lineage && s.Epoch > newest {
			newest = s.Epoch
		}
	}
	return st.WrittenSince(v.Lineage, newest)
}

// verify reads the rest of the stream, checking every record, staging
// its chunks in the target's store and its other records in the spool,
// and making both durable every few MiB (the resume point); it returns
// what apply needs.
func verify(t *Target, rd *reader, hdr Header, base *recvRecord, st *partialState, spool *os.File) (*parsed, error) {
	p := &parsed{hdr: hdr, inoSeen: map[uint64]bool{}, xattrs: map[uint64][]xattr{}, chunks: map[pool.Hash]uint32{}}
	im := newInoMap(t.Store, t.Dataset, base)
	known := func(ino uint64) (bool, error) {
		_, ok, err := im.get(ino)
		return ok, err
	}
	sw := rd.tee.(*spoolWriter)
	_, statePath, _ := paths(t.Dir, t.Dataset)
	_, err := os.Stat(statePath)
	saved := err == nil // a fresh receive has no state until its first resume point
	lastSync := rd.off
	// Chunks verified since the last resume point, staged there.
	var pending []store.StagedChunk
	// durable stages the pending chunks, syncs the spool and moves the
	// resume point to the end of the last verified record.
	durable := func(complete bool) error {
		// The spool is synced while the chunks are staged (two files on
		// their own, each with its own fsync): the state saved below,
		// after both, is what names them.
		spooled := make(chan error, 1)
		go func() { spooled <- spool.Sync() }()
		if err := t.Store.StageChunks(stageOf(t.Dataset), pending); err != nil {
			// The pool is full (say): what the state says stays
			// resumable, and a fresh receive gets its first state here.
			serr := <-spooled
			if !saved && serr == nil && saveState(t.Dir, t.Dataset, st) == nil {
				saved = true
			}
			return fmt.Errorf("receive: stage chunks: %w", err)
		}
		pending = pending[:0]
		if err := <-spooled; err != nil {
			return fmt.Errorf("receive: spool: %w", err)
		}
		killpoint.Hit(killpoint.ReceiveStaged)
		lastSync = rd.off
		if lastSync > st.Verified || complete || !saved {
			// Complete, the target is about to be applied to: one save
			// says both (a resume undoes whatever apply did).
			st.Verified, st.SpoolLen, st.Complete = lastSync, sw.n, complete
			st.Applying = st.Applying || complete
			saved = true
			return saveState(t.Dir, t.Dataset, st)
		}
		return nil
	}
	// one X, D and L record per inode at most: the applier relies on it
	seen := map[[2]uint64]bool{}
	once := func(typ byte, ino uint64) bool {
		k := [2]uint64{uint64(typ), ino}
		if seen[k] {
			return false
		}
		seen[k] = true
		return true
	}
	for {
		recStart := rd.off
		typ, payload, err := rd.next()
		if err != nil {
			// What was verified stays: the spool and the stage hold
			// exactly the records that passed their checks; made durable,
			// the state says so.
			if derr := durable(false); derr != nil && errors.Is(derr, store.ErrNoSpace) {
				err = derr
			}
			return p, fmt.Errorf("receive %s@%s: %w", t.Dataset, hdr.Snapshot.Name, err)
		}
		p.stats.Records++
		switch typ {
		case recInode:
			r, err := decodeInodeRecord(payload)
			if err != nil || p.inoSeen[r.Ino] || r.Ino == 0 || r.Ino > store.MaxIno {
				return p, corrupt(recStart, "bad inode record")
			}
			p.inoSeen[r.Ino] = true
			p.inodes = append(p.inodes, r)
			p.stats.Files++
		case recXattrs:
			ino, xs, err := decodeXattrs(payload)
			if err == nil && !once(typ, ino) {
				err = fmt.Errorf("a second xattr record of inode %d", ino)
			}
			if err != nil {
				return p, corrupt(recStart, "bad xattr record: %v", err)
			}
			p.xattrs[ino] = xs
		case recDir:
			ino, es, err := decodeDir(payload)
			if err == nil && !once(typ, ino) {
				err = fmt.Errorf("a second listing of directory %d", ino)
			}
			if err != nil {
				return p, corrupt(recStart, "bad directory record: %v", err)
			}
			p.dirs = append(p.dirs, dirRecord{ino, es})
		case recChunk:
			if len(payload) <= 32 || len(payload)-32 > pool.MaxChunkSize {
				return p, corrupt(recStart, "chunk record of %d bytes", len(payload))
			}
			var h pool.Hash
			copy(h[:], payload)
			if blake3.Sum256(payload[32:]) != h {
				return p, corrupt(recStart, "chunk data does not match its hash")
			}
			if _, dup := p.chunks[h]; !dup {
				pending = append(pending, store.StagedChunk{Hash: h, Data: append([]byte(nil), payload[32:]...)})
			}
			p.chunks[h] = uint32(len(payload) - 32)
			p.stats.Chunks++
			p.stats.ChunkBytes += int64(len(payload) - 32)
		case recLayout:
			lr, err := decodeLayout(payload)
			if err == nil && !once(typ, lr.Ino) {
				err = fmt.Errorf("a second layout of inode %d", lr.Ino)
			}
			if err != nil {
				return p, corrupt(recStart, "bad layout record: %v", err)
			}
			for _, c := range lr.Chunks {
				if n, ok := p.chunks[c.Hash]; ok {
					if n != c.Length {
						return p, corrupt(recStart, "inode %d names a chunk of %d bytes as %d", lr.Ino, n, c.Length)
					}
					continue
				}
				has := false
				if hdr.Base != nil {
					if has, err = t.Store.HasChunk(c.Hash); err != nil {
						return p, err
					}
				}
				if !has {
					return p, corrupt(recStart, "inode %d names a chunk neither the stream nor the target holds", lr.Ino)
				}
			}
			p.layouts = append(p.layouts, lr)
		case recEnd:
			p.stats.Bytes = rd.off
			if err := p.check(known); err != nil {
				return p, corrupt(recStart, "%v", err)
			}
			return p, durable(true)
		default:
			return p, corrupt(recStart, "unknown record type %q", typ)
		}
		if rd.off-lastSync >= 8<<20 {
			if err := durable(false); err != nil {
				return p, err
			}
			if t.OnProgress != nil {
				t.OnProgress(rd.off)
			}
		}
	}
}

// check verifies that the records describe a whole tree: every inode an
// entry, xattr or layout names is in the stream or (incremental) on the
// target, layouts belong to regular files, and a full stream has a root.
func (p *parsed) check(isKnown func(uint64) (bool, error)) error {
	var lookErr error
	ok := func(ino uint64) bool {
		if p.inoSeen[ino] {
			return true
		}
		k, err := isKnown(ino)
		if err != nil && lookErr == nil {
			lookErr = err
		}
		return k
	}
	if err := p.checkWith(ok); err != nil {
		return err
	}
	return lookErr
}

func (p *parsed) checkWith(ok func(uint64) bool) error {
	types := map[uint64]uint32{}
	for _, r := range p.inodes {
		types[r.Ino] = r.Mode & syscall.S_IFMT
	}
	if !p.inoSeen[store.RootIno] {
		return fmt.Errorf("no root inode record")
	}
	if types[store.RootIno] != syscall.S_IFDIR {
		return fmt.Errorf("the root is not a directory")
	}
	for _, d := range p.dirs {
		if !ok(d.ino) {
			return fmt.Errorf("directory %d is unknown", d.ino)
		}
		names := map[string]bool{}
		for _, e := range d.entries {
			if !ok(e.Ino) || e.Ino == store.RootIno || names[e.Name] || e.Name == "" || e.Name == "." || e.Name == ".." || len(e.Name) > store.MaxNameLen || bytes.ContainsAny([]byte(e.Name), "/\x00") {
				return fmt.Errorf("directory %d has a bad entry %q", d.ino, e.Name)
			}
			names[e.Name] = true
		}
	}
	for ino := range p.xattrs {
		if !ok(ino) {
			return fmt.Errorf("xattrs of unknown inode %d", ino)
		}
	}
	for _, l := range p.layouts {
		if t, in := types[l.Ino]; !ok(l.Ino) || in && t != syscall.S_IFREG {
			return fmt.Errorf("layout of inode %d, not a known regular file", l.Ino)
		}
	}
	return nil
}
