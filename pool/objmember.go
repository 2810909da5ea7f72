package pool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/snapfs/snapfs/objstore"
)

// Object-store members
//
// A member of kind KindS3 keeps its records in an object store (a bucket
// and prefix behind objstore.Store) instead of a directory. Objects are
// immutable, so the member appends to a local stage: pack files under
// POOL/stage/<member-id>/packs/, numbered like a directory member's
// packs, with the same record format. A stage pack is sealed into the
// object PREFIX/packs/<n>.pack by one Put of the whole file:
//
//   - when it reaches the object size (rotation, as a directory member
//     seals a pack at its size: the sealer goroutine uploads it),
//   - when Sync needs a record in it (the member is synchronous: Sync
//     returns once the object holding the record is Put), or
//   - when it has held records for the seal interval.
//
// After the Put the stage file is removed and reads of pack n become
// ranged Gets of the object (one Get per record, verified exactly as a
// pack read). The member's durable position is the start of the oldest
// stage pack not yet Put, so MarkAccounted and recovery keep their
// meaning: at Open every stage pack is scanned like a pack tail (a torn
// end truncated) and Put, objects past the accounted position are scanned
// for their records (Tails), and appends start in a fresh stage pack.
//
// Objects never shrink: a freed record is only counted, and the store's
// repack rewrites objects whose live records fell below its threshold and
// deletes them (DeletePack) once no metadata names them, as it does for
// packs of members that cannot punch.
//
// A store that does not answer makes the member gone (CheckMembers reads
// PREFIX/member.json each time), a failed Put makes it degraded like a
// failed fdatasync: either way reads go to other copies and a Sync that
// needs it fails. A member check reopens it once its store answers and
// takes the stage's Puts again (health.go), without waiting for a scrub.

// KindS3 is the MemberConfig.Kind of an object-store member.
const KindS3 = "s3"

// Object-store member tunables.
const (
	// DefaultObjectSize is the size at which a stage pack is sealed into
	// an object.
	DefaultObjectSize = 8 << 20
	// DefaultSealInterval is how long a stage pack holding records waits
	// for more before it is sealed anyway.
	DefaultSealInterval = 5 * time.Second
	// stageDir is the directory of the stages under the pool directory.
	stageDir = "stage"
	// objPacks is the key prefix of sealed objects in a member's store.
	objPacks = "packs/"
)

// DefaultObjectStores opens the store of an object-store member when the
// options give no opener: objstore.Open, the S3 client (credentials from
// the standard chain, retries with backoff, bounded by GiveUpEnv).
func DefaultObjectStores(c objstore.Config) (objstore.Store, error) {
	opts, err := retryFromEnv() // objretry.go
	if err != nil {
		return nil, err
	}
	return objstore.Open(context.Background(), c, opts...)
}

// isObjectURL reports whether a member argument names an object store.
func isObjectURL(s string) bool { return strings.Contains(s, "://") }

// objStores opens each object-store member's store once.
type objStores struct {
	open func(objstore.Config) (objstore.Store, error)
	mu   sync.Mutex                // guards byID
	byID map[string]objstore.Store // by member id
}

func newStores(open func(objstore.Config) (objstore.Store, error)) *objStores {
	if open == nil {
		open = DefaultObjectStores
	}
	return &objStores{open: open, byID: map[string]objstore.Store{}}
}

// get returns the store of object-store member m, opening it on first use.
func (s *objStores) get(m MemberConfig) (objstore.Store, error) {
	if s == nil {
		return nil, fmt.Errorf("object-store member %s: no store opener", m.Path)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if st := s.byID[m.ID]; st != nil {
		return st, nil
	}
	st, err := s.open(*m.Object)
	if err != nil {
		return nil, err
	}
	s.byID[m.ID] = st
	return st, nil
}

// validateKind checks the kind-specific fields of a member configuration.
func (m MemberConfig) validateKind() error {
	switch m.Kind {
	case "":
		if !filepath.IsAbs(m.Path) {
			return errors.New("path is not absolute")
		}
	case KindS3:
		if m.Object == nil || m.Object.URL != m.Path {
			return errors.New("object-store member without its store configuration")
		}
		if _, _, err := objstore.ParseURL(m.Path); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown member kind %q", m.Kind)
	}
	return nil
}

// checkNewObjectMember builds the configuration of a new object-store
// member from its URL (the store itself is checked by
// createObjectMember). An object-store member is a failure domain of its
// own unless labelled.
func checkNewObjectMember(url, label string, objects map[string]objstore.Config) (MemberConfig, error) {
	if _, _, err := objstore.ParseURL(url); err != nil {
		return MemberConfig{}, fmt.Errorf("pool: %w", err)
	}
	c := objects[url]
	c.URL = url
	m := MemberConfig{Path: url, ID: randomID(), Domain: label, Kind: KindS3, Object: &c}
	if m.Domain == "" {
		m.Domain = "s3:" + c.Endpoint + "/" + strings.TrimPrefix(url, "s3://")
	}
	return m, nil
}

// createObjectMember claims the store's prefix for member m: it refuses
// a prefix holding another pool's member.json (naming that pool) or any
// other object (someone else's), then writes member.json.
func createObjectMember(st objstore.Store, cfg Config, m MemberConfig, gen uint64) error {
	ctx := context.Background()
	infos, err := st.List(ctx, "")
	if err != nil {
		return fmt.Errorf("list %s: %w", st, err)
	}
	for _, in := range infos {
		if in.Key == memberFile {
			b, err := st.Get(ctx, memberFile, 0, -1)
			var mj memberJSON
			if err == nil {
				err = json.Unmarshal(b, &mj)
			}
			if err != nil {
				return fmt.Errorf("%s holds an unreadable %s (%v): %w", st, memberFile, err, ErrExists)
			}
			return fmt.Errorf("%s already belongs to pool %q (member.json exists): %w", st, mj.Config.ID, ErrExists)
		}
	}
	if len(infos) > 0 {
		return fmt.Errorf("%s holds %d objects of someone else (%s, ...) and no %s: %w", st, len(infos), infos[0].Key, memberFile, ErrExists)
	}
	return putMemberJSON(st, cfg, m, gen)
}

func putMemberJSON(st objstore.Store, cfg Config, m MemberConfig, gen uint64) error {
	b, err := json.MarshalIndent(memberJSON{Config: cfg, Generation: gen, MemberID: m.ID}, "", "  ")
	if err != nil {
		return err
	}
	if err := st.Put(context.Background(), memberFile, append(b, '\n')); err != nil {
		return fmt.Errorf("write %s of %s: %w", memberFile, st, err)
	}
	return nil
}

// readObjectMemberJSON reads an object-store member's member.json. A
// store that cannot be opened or does not answer, and a missing
// member.json, make the member gone.
func readObjectMemberJSON(stores *objStores, m MemberConfig) ([]byte, error) {
	st, err := stores.get(m)
	if err != nil {
		return nil, fmt.Errorf("pool: member %d %s: %v: %w", m.Index, m.Path, err, ErrMemberGone)
	}
	b, err := st.Get(context.Background(), memberFile, 0, -1)
	if errors.Is(err, objstore.ErrNotFound) {
		return nil, fmt.Errorf("pool: member %d %s: no %s: %w", m.Index, m.Path, memberFile, ErrMemberGone)
	}
	if err != nil {
		return nil, fmt.Errorf("pool: member %d %s: read %s: %v: %w", m.Index, m.Path, memberFile, err, ErrMemberGone)
	}
	return b, nil
}

// objKey is the key of sealed pack n.
func objKey(n uint32) string { return fmt.Sprintf("%s%d.pack", objPacks, n) }

// parseObjKey returns the pack number of an object key.
func parseObjKey(key string) (uint32, bool) {
	s, ok := strings.CutPrefix(key, objPacks)
	if !ok {
		return 0, false
	}
	s, ok = strings.CutSuffix(s, ".pack")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(s, 10, 32)
	return uint32(n), err == nil && n > 0
}

// objFile is a sealed object seen as a read-only pack file: ReadAt is a
// ranged Get. A missing object reads as a missing file; an object shorter
// than the range (a wrong length) as a read past the end, which Read
// reports as a checksum error.
type objFile struct {
	st  objstore.Store
	key string
}

var errObjectReadOnly = errors.New("a sealed object is immutable")

func (f objFile) ReadAt(b []byte, off int64) (int, error) {
	data, err := f.st.Get(context.Background(), f.key, off, int64(len(b)))
	switch {
	case errors.Is(err, objstore.ErrNotFound):
		return 0, fmt.Errorf("%w: %w", err, fs.ErrNotExist)
	case errors.Is(err, objstore.ErrShort):
		return 0, fmt.Errorf("%w: %w", err, io.EOF)
	case err != nil:
		return 0, err
	case len(data) != len(b):
		return 0, fmt.Errorf("%s %s: %d bytes for a range of %d: %w", f.st, f.key, len(data), len(b), io.EOF)
	}
	return copy(b, data), nil
}

func (f objFile) WriteAt([]byte, int64) (int, error) { return 0, errObjectReadOnly }
func (f objFile) Sync() error                        { return nil }
func (f objFile) Truncate(int64) error               { return errObjectReadOnly }
func (f objFile) Punch(int64, int64) error           { return errObjectReadOnly }
func (f objFile) Close() error                       { return nil }

func (f objFile) Size() (int64, error) {
	in, err := f.st.Head(context.Background(), f.key)
	if errors.Is(err, objstore.ErrNotFound) {
		return 0, fmt.Errorf("%w: %w", err, fs.ErrNotExist)
	}
	return in.Size, err
}

func (f objFile) Allocated() (int64, error) { return f.Size() }

// bytesFile is an object read whole into memory, for the recovery scan.
type bytesFile struct{ b []byte }

func (f bytesFile) ReadAt(b []byte, off int64) (int, error) {
	if off >= int64(len(f.b)) {
		return 0, io.EOF
	}
	n := copy(b, f.b[off:])
	if n < len(b) {
		return n, io.EOF
	}
	return n, nil
}
func (f bytesFile) WriteAt([]byte, int64) (int, error) { return 0, errObjectReadOnly }
func (f bytesFile) Sync() error                        { return nil }
func (f bytesFile) Truncate(int64) error               { return errObjectReadOnly }
func (f bytesFile) Punch(int64, int64) error           { return errObjectReadOnly }
func (f bytesFile) Close() error                       { return nil }
func (f bytesFile) Size() (int64, error)               { return int64(len(f.b)), nil }
func (f bytesFile) Allocated() (int64, error)          { return int64(len(f.b)), nil }

// openObjectMember opens object-store member mc: its stage under the
// pool directory, the recovery of its stage packs and of objects past
// its accounted position, and its sealer.
func (p *Pool) openObjectMember(mc MemberConfig, opts OpenOptions) (*member, []TailRecord, error) {
	st, err := p.stores.get(mc)
	if err != nil {
		return nil, nil, fmt.Errorf("pool: member %d: %w", mc.Index, err)
	}
	m := &member{idx: mc.Index, cfg: mc, fs: p.fs, readOnly: p.readOnly, packs: map[uint32]*pack{},
		dir: filepath.Join(p.dir, stageDir, mc.ID), obj: st, sealEvery: opts.SealInterval}
	m.syncCond = sync.NewCond(&m.syncMu)
	if mc.Async {
		m.rep = p.rep(mc.Index) // asyncrep.go
		m.rep.initMark(m.dir)
	}
	if m.sealEvery <= 0 {
		m.sealEvery = DefaultSealInterval
	}
	m.maxPack = opts.ObjectSize
	if m.maxPack <= 0 {
		m.maxPack = DefaultObjectSize
	}
	if !m.readOnly {
		if err := p.fs.MkdirAll(m.packsPath(), 0o755); err != nil {
			return nil, nil, fmt.Errorf("pool: member %d: stage: %w", m.idx, err)
		}
	}
	if m.rep != nil {
		_, err := p.fs.Stat(filepath.Join(m.dir, accountedFil))
		m.rep.fresh.Store(errors.Is(err, fs.ErrNotExist))
	}
	if err := m.readAccounted(); err != nil {
		return nil, nil, fmt.Errorf("pool: %w", err)
	}
	tails, err := m.recoverObjects(p.id)
	if err != nil {
		m.close()
		return nil, nil, fmt.Errorf("pool: recover: %w", err)
	}
	if !m.readOnly {
		m.stop, m.kick = make(chan struct{}), make(chan struct{}, 1)
		if m.rep != nil {
			p.startReplica(m)
		} else {
			go m.sealLoop(m.stop)
		}
	}
	return m, tails, nil
}

// listObjects returns the numbers of the member's sealed objects and
// their sizes.
func (m *member) listObjects() (map[uint32]int64, error) {
	infos, err := m.obj.List(context.Background(), objPacks)
	if err != nil {
		return nil, fmt.Errorf("member %d: list %s: %w", m.idx, m.obj, err)
	}
	out := map[uint32]int64{}
	for _, in := range infos {
		if n, ok := parseObjKey(in.Key); ok {
			out[n] = in.Size
		}
	}
	return out, nil
}

// recoverObjects is recover for an object-store member. Every stage pack
// left by the last run is scanned (its torn tail truncated) and Put, in
// order (one whose object exists already is only removed: the object was
// Put whole, the file may be torn); objects past the accounted position
// are read whole and scanned;
// the records found are the tails. Appends then go to a fresh stage pack
// numbered past every pack seen, so no object is ever written twice with
// different contents. A Put that fails leaves the member failed (its
// stage stays for the next Open) but open.
func (m *member) recoverObjects(poolID [16]byte) ([]TailRecord, error) {
	local, err := m.listLocalPacks()
	if err != nil {
		return nil, err
	}
	remote, err := m.listObjects()
	if err != nil {
		return nil, err
	}
	isLocal := map[uint32]bool{}
	all := map[uint32]bool{}
	var stage []uint32 // local packs never Put, to Put now
	for _, n := range local {
		if _, put := remote[n]; put {
			// Put already (the crash came before its stage file's removal
			// was durable): the object is whole, the file may be torn.
			if m.readOnly {
				continue
			}
			if err := m.fs.Remove(m.packPath(n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("member %d: remove stage pack %d: %w", m.idx, n, err)
			}
			all[n] = true
			continue
		}
		isLocal[n], all[n] = true, true
		stage = append(stage, n)
	}
	for n := range remote {
		all[n] = true
	}
	nums := make([]uint32, 0, len(all))
	for n := range all {
		nums = append(nums, n)
	}
	sort.Slice(nums, func(i, j int) bool { return nums[i] < nums[j] })
	var tails []TailRecord
	for _, n := range nums {
		if n < m.accPos.pack {
			continue
		}
		start := int64(0)
		if n == m.accPos.pack {
			start = m.accPos.off
		}
		var pk *pack
		if isLocal[n] {
			if pk, err = m.pack(n); err != nil {
				return nil, err
			}
		} else {
			b, err := m.obj.Get(context.Background(), objKey(n), 0, -1)
			if err != nil {
				return nil, fmt.Errorf("member %d: read %s %s: %w", m.idx, m.obj, objKey(n), err)
			}
			pk = &pack{num: n, f: bytesFile{b}}
		}
		recs, _, err := m.scanPack(pk, start, poolID)
		if err != nil {
			return nil, err
		}
		tails = append(tails, recs...)
	}
	if m.readOnly {
		return tails, nil
	}
	next := m.accPos.pack + 1
	if len(nums) > 0 {
		next = max(next, nums[len(nums)-1]+1)
	}
	pk, err := m.newPack(next)
	if err != nil {
		return nil, err
	}
	m.setActive(pk, 0)
	m.durable = pos{next, 0}
	m.pending = stage
	if len(stage) > 0 {
		m.durable = pos{stage[0], 0}
	}
	if len(m.pending) > 0 {
		m.oldestUnsealed = time.Now() // staged by the last run, at least this old
	}
	if m.rep != nil {
		// A replica's stage was synced with each group commit: it is
		// durable as far as the scan found it, and the uploader Puts it.
		m.durable = pos{next, 0}
		return tails, nil
	}
	for len(m.pending) > 0 {
		if err := m.upload(m.pending[0]); err != nil {
			m.failed = err
			break
		}
		m.pending = m.pending[1:]
		m.durable = m.pendingStart()
	}
	if len(m.pending) == 0 {
		m.oldestUnsealed = time.Time{}
	}
	return tails, nil
}

// pendingStart is the durable position: the start of the oldest stage
// pack not yet Put, or of the active one. Caller holds mu (or is Open).
func (m *member) pendingStart() pos {
	if len(m.pending) > 0 {
		return pos{m.pending[0], 0}
	}
	return pos{m.active.num, 0}
}

// listLocalPacks is listPacks of the member's own directory (the stage of
// an object-store member).
func (m *member) listLocalPacks() ([]uint32, error) {
	ents, err := m.fs.ReadDir(m.packsPath())
	if err != nil {
		return nil, fmt.Errorf("list packs of member %d: %w", m.idx, err)
	}
	var nums []uint32
	for _, e := range ents {
		if n, ok := parseObjKey(objPacks + e.Name()); ok {
			nums = append(nums, n)
		}
	}
	sort.Slice(nums, func(i, j int) bool { return nums[i] < nums[j] })
	return nums, nil
}

// upload seals stage pack n: one Put of the whole file, then reads of
// pack n go to the object and the stage file is removed (its handle is
// closed after closeDelay, for reads that picked it before).
func (m *member) upload(n uint32) error {
	pk, err := m.pack(n)
	if err != nil {
		return err
	}
	size, err := pk.f.Size()
	if err != nil {
		return fmt.Errorf("member %d: size of stage pack %d: %w", m.idx, n, err)
	}
	if size == 0 { // an active stage pack that never took a record
		m.packsMu.Lock()
		delete(m.packs, n)
		m.packsMu.Unlock()
		pk.f.Close()
		return m.fs.Remove(m.packPath(n))
	}
	b := make([]byte, size)
	if _, err := pk.f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("member %d: read stage pack %d: %w", m.idx, n, err)
	}
	if err := m.obj.Put(context.Background(), objKey(n), b); err != nil {
		return fmt.Errorf("member %d: seal stage pack %d: %w", m.idx, n, err)
	}
	m.packsMu.Lock()
	m.packs[n] = &pack{num: n, f: objFile{m.obj, objKey(n)}}
	m.packsMu.Unlock()
	if _, isObj := pk.f.(objFile); !isObj {
		time.AfterFunc(closeDelay, func() { pk.f.Close() })
	}
	// A stage file that cannot be removed is Put again at the next Open:
	// harmless, the object's contents are the same.
	_ = m.fs.Remove(m.packPath(n))
	return nil
}

// rotateObject starts the next stage pack; the full one waits in pending
// for its Put. Caller holds mu.
func (m *member) rotateObject() error {
	pk, err := m.newPack(m.active.num + 1)
	if err != nil {
		m.failed = err
		return err
	}
	m.pending = append(m.pending, m.active.num)
	m.setActive(pk, 0)
	return nil
}

// leadSeal is leadSync for an object-store member: it seals the active
// stage pack when rec lies in it, then Puts every pending stage pack in
// order, advancing the durable position after each. Caller holds syncMu;
// it is released during the Puts.
func (m *member) leadSeal(rec pos) {
	m.syncing = true
	m.mu.Lock()
	if m.failed == nil && rec.pack >= m.active.num && m.end > 0 {
		_ = m.rotateObject()
	}
	todo := append([]uint32(nil), m.pending...)
	m.mu.Unlock()

	m.syncMu.Unlock()
	done := 0
	var err error
	for _, n := range todo {
		if err = m.upload(n); err != nil {
			break
		}
		done++
		m.mu.Lock()
		m.pending = m.pending[1:] // only the leader removes, in order
		m.durable = m.pendingStart()
		if len(m.pending) == 0 {
			m.oldestUnsealed = time.Time{}
			if m.end > 0 {
				m.oldestUnsealed = m.activeSince
			}
		}
		m.mu.Unlock()
	}
	m.syncMu.Lock()

	if err != nil {
		m.mu.Lock()
		if m.failed == nil {
			m.failed = err
		}
		m.mu.Unlock()
	}
	m.syncing = false
	m.syncCond.Broadcast()
}

// sealLoop Puts stage packs sealed by size at once, and the active stage
// pack once it has held records for the seal interval.
func (m *member) sealLoop(stop chan struct{}) {
	t := time.NewTicker(max(m.sealEvery/4, 10*time.Millisecond))
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-m.kick:
		case <-t.C:
		}
		m.mu.Lock()
		failed, active, end, since := m.failed, m.active.num, m.end, m.activeSince
		var last uint32
		if len(m.pending) > 0 {
			last = m.pending[len(m.pending)-1]
		}
		m.mu.Unlock()
		switch {
		case failed != nil:
		case last > 0:
			_ = m.sync(pos{last, 0})
		case end > 0 && time.Since(since) >= m.sealEvery:
			_ = m.sync(pos{active, 0})
		}
	}
}

// stopSealer stops the sealer goroutine (once).
func (m *member) stopSealer() {
	m.stopOnce.Do(func() {
		if m.stop != nil {
			close(m.stop)
		}
	})
}

// kickSealer wakes the sealer (never blocking).
func (m *member) kickSealer() {
	select {
	case m.kick <- struct{}{}:
	default:
	}
}

// objectPackInfo is packInfo for an object-store member: a stage pack's
// file size, or a sealed object's size (objects hold no holes). Stage
// packs not yet Put count as active: repack leaves them alone.
func (m *member) objectPackInfo(n uint32) (PackInfo, error) {
	pi := PackInfo{Member: m.idx, Pack: n, Active: n == m.activeNum.Load() && !m.readOnly}
	m.mu.Lock()
	for _, pn := range m.pending {
		pi.Active = pi.Active || pn == n // a stage pack not yet Put: not repacked either
	}
	m.mu.Unlock()
	pk, err := m.pack(n)
	if err != nil {
		return pi, err
	}
	if pi.Size, err = pk.f.Size(); err != nil {
		return pi, err
	}
	pi.Allocated = pi.Size
	return pi, nil
}

// packSet returns the numbers of an object-store member's packs, staged
// or in the bucket, as a set (a staged pack's value is 0, an object's its
// size).
func (m *member) packSet() (map[uint32]int64, error) {
	local, err := m.listLocalPacks()
	if err != nil {
		return nil, err
	}
	remote, err := m.listObjects()
	if err != nil {
		return nil, err
	}
	for _, n := range local {
		remote[n] = 0
	}
	return remote, nil
}

// listAllPacks is listPacks of an object-store member: its stage packs
// and its objects, in order.
func (m *member) listAllPacks() ([]uint32, error) {
	set, err := m.packSet()
	if err != nil {
		return nil, err
	}
	nums := make([]uint32, 0, len(set))
	for n := range set {
		nums = append(nums, n)
	}
	sort.Slice(nums, func(i, j int) bool { return nums[i] < nums[j] })
	return nums, nil
}

// deleteObjectPack is DeletePack for an object-store member: it deletes
// sealed object n (and its cache entries), refusing the active stage pack
// and stage packs not yet Put. mu is held only for that check, not
// during the Delete.
func (p *Pool) deleteObjectPack(m *member, n uint32) error {
	m.mu.Lock()
	refuse := m.active != nil && m.active.num == n
	for _, pn := range m.pending {
		refuse = refuse || pn == n
	}
	m.mu.Unlock()
	if refuse {
		return fmt.Errorf("pool: delete pack %d of member %d: it is a stage pack not yet sealed into its object", n, m.idx)
	}
	m.packsMu.Lock()
	delete(m.packs, n) // an objFile: nothing to close
	m.packsMu.Unlock()
	if err := m.obj.Delete(context.Background(), objKey(n)); err != nil {
		return fmt.Errorf("pool: delete pack %d of member %d: delete %s %s: %w", n, m.idx, m.obj, objKey(n), err)
	}
	p.ahead.dropPack(spanKey{m.idx, n})
	if p.cache != nil {
		p.cache.dropPack(m, n)
	}
	return nil
}

// objectStats fills in the statistics of an object-store member: its
// objects and checkpoint objects (one List), its stage and backlog.
func (m *member) objectStats(ms MemberStats) (MemberStats, error) {
	ms.Kind = KindS3
	if m.rep != nil && m.rep.lastErr() != nil {
		return m.replicaStatsOf(ms), nil // its store does not answer: no List
	}
	ctx := context.Background()
	if m.rep != nil {
		// A replica's status must not wait out the client's retries
		// (minutes) while its store is silent: it is degraded then.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, replicaStatsWait)
		defer cancel()
	}
	infos, err := m.obj.List(ctx, "")
	if err != nil && m.rep != nil {
		m.rep.setErr(err)
		return m.replicaStatsOf(ms), nil
	}
	if err != nil {
		return ms, fmt.Errorf("pool: stats: member %d: list %s: %w", m.idx, m.obj, err)
	}
	for _, in := range infos {
		switch {
		case strings.HasPrefix(in.Key, objPacks):
			ms.Objects++
			ms.Used += in.Size
		case strings.HasPrefix(in.Key, checkpointsDir+"/"):
			ms.Checkpoints += in.Size
		}
	}
	ms.Used += ms.Checkpoints
	ms.Packs = ms.Objects
	if m.rep != nil {
		return m.replicaStatsOf(ms), nil
	}
	m.mu.Lock()
	pending := append([]uint32(nil), m.pending...)
	ms.Backlog = m.end
	if !m.oldestUnsealed.IsZero() {
		ms.BacklogAge = time.Since(m.oldestUnsealed)
	}
	m.mu.Unlock()
	for _, n := range pending {
		if pk, err := m.pack(n); err == nil {
			if size, err := pk.f.Size(); err == nil {
				ms.Backlog += size
			}
		}
	}
	if ms.Backlog > 0 {
		ms.Packs++ // the active stage pack
	}
	ms.Used += ms.Backlog
	return ms, nil
}
