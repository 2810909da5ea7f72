package pool

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/snapfs/snapfs/internal/killpoint"
	"github.com/snapfs/snapfs/objstore"
)

// Pack sizes: a pack is sealed and a new one started once a record would
// take it past this size.
const (
	PackSizePunch   = 1 << 30  // members that punch holes
	PackSizeNoPunch = 64 << 20 // members that cannot (repack reclaims them)
)

// pos is a position in a member's append stream: packs are numbered in
// append order, so (pack, offset) orders every record of a member.
type pos struct {
	pack uint32
	off  int64
}

func (a pos) less(b pos) bool {
	return a.pack < b.pack || (a.pack == b.pack && a.off < b.off)
}

// pack is an open pack file, shared by the appender and all readers.
type pack struct {
	num uint32
	f   File
}

// member is one member directory. Lock order: syncMu, then mu, then packsMu
// (accMu is taken alone, then mu briefly).
type member struct {
	// Immutable after Open.
	idx      uint16
	cfg      MemberConfig
	fs       FS
	gone     error // non-nil (wrapping ErrMemberGone): the member is unusable
	canPunch bool  // the punch probe succeeded and the fs is not btrfs
	maxPack  int64 // seal the active pack at this size
	readOnly bool
	// dir is the member's local directory: cfg.Path for a directory
	// member, the stage POOL/stage/<id> of an object-store member.
	dir string
	// obj is the store of an object-store member (nil for a directory);
	// objmember.go. sealEvery is its seal interval; stop and kick (nil
	// for directories) stop and wake its sealer goroutine.
	obj       objstore.Store
	sealEvery time.Duration
	stop      chan struct{}
	kick      chan struct{}
	stopOnce  sync.Once
	// rep is the replica state of an asynchronous replica (nil
	// otherwise; asyncrep.go); done is closed when its uploader ends.
	rep  *asyncRep
	done chan struct{}

	// draining is set while the member is being evacuated (remove-member):
	// placement skips it.
	draining atomic.Bool

	// activeNum mirrors active.num for lock-free "is this pack sealed?" tests;
	// written under mu.
	activeNum atomic.Uint32
	// appended and freed count records since Open (statistics only).
	appended, freed atomic.Int64

	// mu serializes appends (pwrite at the pack end) and pack rotation.
	mu      sync.Mutex
	active  *pack // guarded by mu: the pack being appended to
	end     int64 // guarded by mu: append offset in active, Align-aligned
	durable pos   // guarded by mu: every record before it is durable
	failed  error // guarded by mu: sticky write or sync failure; no more appends
	// failReported is set (under mu) once CheckMembers reported failed.
	failReported bool
	// pending (object-store members) lists the stage packs sealed by
	// size and not yet Put, oldest first; activeSince is when the first
	// record went into the active stage pack. Both guarded by mu.
	pending     []uint32
	activeSince time.Time
	// oldestUnsealed (under mu) is when the oldest record not yet Put was
	// staged (zero: none), for the backlog's age.
	oldestUnsealed time.Time

	// packsMu guards packs, the open pack handles (active and sealed).
	packsMu sync.RWMutex
	packs   map[uint32]*pack

	// syncMu guards the group-commit state below; syncCond (on syncMu) is
	// broadcast when a sync finishes.
	syncMu   sync.Mutex
	syncCond *sync.Cond
	syncing  bool // a leader is in fdatasync now

	// reads counts reads that failed with I/O errors (readfaults.go).
	reads readFaults

	// accMu serializes MarkAccounted writes and guards the fields below.
	accMu   sync.Mutex
	accFile File   // the accounted file (nil when read-only)
	accSeq  uint64 // sequence number of the newest accounted slot
	accPos  pos    // the persisted accounted position
}

func (m *member) packsPath() string { return filepath.Join(m.dir, packsDir) }

func (m *member) packPath(n uint32) string {
	return filepath.Join(m.packsPath(), fmt.Sprintf("%d.pack", n))
}

// listPacks returns the pack numbers present, ascending (for an
// object-store member: its stage packs and its objects).
func (m *member) listPacks() ([]uint32, error) {
	if m.obj != nil {
		return m.listAllPacks()
	}
	ents, err := m.fs.ReadDir(m.packsPath())
	if err != nil {
		return nil, fmt.Errorf("list packs of member %d: %w", m.idx, err)
	}
	var nums []uint32
	for _, e := range ents {
		s, ok := strings.CutSuffix(e.Name(), ".pack")
		if !ok {
			continue
		}
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil || n == 0 {
			continue
		}
		nums = append(nums, uint32(n))
	}
	sort.Slice(nums, func(i, j int) bool { return nums[i] < nums[j] })
	return nums, nil
}

func (m *member) openFlag() int {
	if m.readOnly {
		return os.O_RDONLY
	}
	return os.O_RDWR
}

// pack returns the open handle of pack n, opening it on first use.
func (m *member) pack(n uint32) (*pack, error) {
	m.packsMu.RLock()
	pk := m.packs[n]
	m.packsMu.RUnlock()
	if pk != nil {
		return pk, nil
	}
	m.packsMu.Lock()
	defer m.packsMu.Unlock()
	if pk := m.packs[n]; pk != nil {
		return pk, nil
	}
	f, err := m.fs.OpenFile(m.packPath(n), m.openFlag(), 0)
	if errors.Is(err, fs.ErrNotExist) && m.obj != nil {
		pk = &pack{num: n, f: objFile{m.obj, objKey(n)}} // sealed: read from the store
		m.packs[n] = pk
		return pk, nil
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("member %d: pack %d is missing: %w", m.idx, n, err)
	}
	if err != nil {
		return nil, fmt.Errorf("member %d: open pack %d: %w", m.idx, n, err)
	}
	pk = &pack{num: n, f: f}
	m.packs[n] = pk
	return pk, nil
}

// probePunch reports whether the member can punch holes: not btrfs, and a
// PUNCH_HOLE|KEEP_SIZE on a scratch file succeeds.
func (m *member) probePunch() bool {
	if st, err := m.fs.Statfs(m.dir); err != nil || st.Type == BtrfsMagic {
		return false
	}
	name := filepath.Join(m.packsPath(), ".punch-probe")
	f, err := m.fs.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return false
	}
	defer m.fs.Remove(name)
	defer f.Close()
	if _, err := f.WriteAt(make([]byte, 2*Align), 0); err != nil {
		return false
	}
	return f.Punch(0, Align) == nil
}

// newPack creates pack n (it must not exist) and makes its name durable.
func (m *member) newPack(n uint32) (*pack, error) {
	f, err := m.fs.OpenFile(m.packPath(n), os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, fmt.Errorf("member %d: create pack %d: %w", m.idx, n, err)
	}
	if err := m.fs.SyncDir(m.packsPath()); err != nil {
		f.Close()
		m.fs.Remove(m.packPath(n))
		return nil, fmt.Errorf("member %d: sync packs dir: %w", m.idx, err)
	}
	pk := &pack{num: n, f: f}
	m.packsMu.Lock()
	m.packs[n] = pk
	m.packsMu.Unlock()
	return pk, nil
}

// setActive makes pk the active pack with append offset end. Caller holds
// mu (or is Open).
func (m *member) setActive(pk *pack, end int64) {
	m.active, m.end = pk, end
	m.activeNum.Store(pk.num)
}

// append writes one encoded record at the end of the active pack. It
// rotates first when the record would overflow the pack.
func (m *member) append(rec []byte) (pos, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.failed != nil {
		return pos{}, fmt.Errorf("member %d is failed: %w", m.idx, m.failed)
	}
	if m.end > 0 && m.end+int64(len(rec)) > m.maxPack {
		if err := m.rotate(); err != nil {
			return pos{}, err
		}
	}
	at := pos{m.active.num, m.end}
	if m.end == 0 {
		m.activeSince = time.Now()
		if m.obj != nil && m.oldestUnsealed.IsZero() {
			m.oldestUnsealed = m.activeSince
		}
	}
	if killpoint.Armed() { // a crash test may tear this record and die
		killpoint.Tear(killpoint.PackAppend, m.active.f, rec, at.off)
	}
	if _, err := m.active.f.WriteAt(rec, at.off); err != nil {
		// Drop what a partial write left past the end; the next append
		// overwrites it anyway, and recovery skips invalid blocks.
		_ = m.active.f.Truncate(at.off)
		if !isNoSpace(err) {
			m.failed = err // a disk error: stop writing here
		}
		return pos{}, fmt.Errorf("member %d: write pack %d at %d: %w", m.idx, at.pack, at.off, err)
	}
	m.end += int64(len(rec))
	return at, nil
}

// rotate seals the active pack (after making it durable) and starts the
// next one. Caller holds mu.
func (m *member) rotate() error {
	if m.obj != nil {
		if m.rep != nil {
			// A replica's stage is its durable backlog: synced as a
			// directory member's pack is before it is sealed.
			if err := m.active.f.Sync(); err != nil {
				m.failed = err
				return fmt.Errorf("member %d: sync stage pack %d before sealing: %w", m.idx, m.active.num, err)
			}
		}
		if err := m.rotateObject(); err != nil {
			return fmt.Errorf("member %d: start stage pack: %w", m.idx, err)
		}
		if m.rep != nil {
			m.durable = pos{m.active.num, 0}
		}
		m.kickSealer()
		return nil
	}
	old := m.active
	if err := old.f.Sync(); err != nil {
		m.failed = err
		return fmt.Errorf("member %d: sync pack %d before sealing: %w", m.idx, old.num, err)
	}
	pk, err := m.newPack(old.num + 1)
	if err != nil {
		return err
	}
	m.setActive(pk, 0)
	m.durable = pos{pk.num, 0}
	return nil
}

// sync returns once the record starting at rec is durable. Group commit:
// callers that find a sync in progress wait for it; if it did not cover
// them (it started before their record was written), one of them leads the
// next, which covers every waiter.
func (m *member) sync(rec pos) error {
	m.syncMu.Lock()
	defer m.syncMu.Unlock()
	for {
		m.mu.Lock()
		durable, failed := m.durable, m.failed
		m.mu.Unlock()
		if rec.less(durable) {
			return nil
		}
		if failed != nil {
			return fmt.Errorf("member %d is failed: %w", m.idx, failed)
		}
		if m.syncing {
			m.syncCond.Wait()
			continue
		}
		m.leadSync(rec)
	}
}

// leadSync runs one fdatasync of the active pack covering everything
// written before it started (for an object-store member, leadSeal: the
// Puts that make rec durable). Caller holds syncMu; it is released during
// the fdatasync.
func (m *member) leadSync(rec pos) {
	if m.obj != nil && m.rep == nil {
		m.leadSeal(rec)
		return
	}
	m.syncing = true
	m.mu.Lock()
	target, f := pos{m.active.num, m.end}, m.active.f
	m.mu.Unlock()

	m.syncMu.Unlock()
	err := f.Sync()
	m.syncMu.Lock()

	m.mu.Lock()
	switch {
	case err == nil:
		if m.durable.less(target) {
			m.durable = target
		}
	case m.durable.less(target) && m.failed == nil:
		// fsync failure leaves the page cache state unknown: stop using
		// the member for writes (a rotation may have synced it already,
		// which the first case covers).
		m.failed = err
	}
	m.mu.Unlock()
	m.syncing = false
	m.syncCond.Broadcast()
}

// free punches the record at loc (after checking its header names it) and
// deletes its pack when sealed and empty. It returns the pack punched (nil
// if none, or if it was deleted), which the caller syncs. Freeing an
// already punched record or a deleted pack is a no-op.
func (m *member) free(loc Location, poolID [16]byte) (*pack, error) {
	if !m.canPunch {
		m.freed.Add(1)
		return nil, nil
	}
	pk, err := m.pack(loc.Pack)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var hb [HeaderSize]byte
	if _, err := pk.f.ReadAt(hb[:], loc.Offset); err != nil && !errors.Is(err, io.EOF) {
		if IsReadFault(err) {
			m.noteReadFault(loc, err) // its frees park once it is degraded
		}
		return nil, fmt.Errorf("member %d: read header in pack %d at %d: %w", m.idx, loc.Pack, loc.Offset, err)
	}
	h, err := decodeHeader(hb[:], poolID)
	if err != nil || h.logical != loc.Length {
		return nil, nil // already punched (zeros), or not this record: never punch blindly
	}
	if err := pk.f.Punch(loc.Offset, h.extent()); err != nil {
		return nil, fmt.Errorf("member %d: punch pack %d at %d: %w", m.idx, loc.Pack, loc.Offset, err)
	}
	m.freed.Add(1)
	if loc.Pack != m.activeNum.Load() {
		if deleted, err := m.deleteIfEmpty(pk); deleted || err != nil {
			return nil, err
		}
	}
	return pk, nil
}

// syncPunched makes the holes punched in pk durable. A pack deleted or
// closed meanwhile needs nothing.
func (m *member) syncPunched(pk *pack) error {
	m.packsMu.RLock()
	open := m.packs[pk.num] == pk
	m.packsMu.RUnlock()
	if !open {
		return nil
	}
	if err := pk.f.Sync(); err != nil && !errors.Is(err, fs.ErrClosed) {
		return fmt.Errorf("member %d: sync punched pack %d: %w", m.idx, pk.num, err)
	}
	return nil
}

// deleteIfEmpty removes a sealed pack whose allocated blocks reached zero,
// and reports whether it did.
func (m *member) deleteIfEmpty(pk *pack) (bool, error) {
	alloc, err := pk.f.Allocated()
	if err != nil || alloc > 0 {
		return false, nil
	}
	m.packsMu.Lock()
	defer m.packsMu.Unlock()
	if m.packs[pk.num] != pk {
		return true, nil // deleted by a concurrent free
	}
	delete(m.packs, pk.num)
	pk.f.Close()
	if err := m.fs.Remove(m.packPath(pk.num)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return true, fmt.Errorf("member %d: delete empty pack %d: %w", m.idx, pk.num, err)
	}
	return true, nil
}

// Accounted file: two 32-byte slots written alternately, each
// "SNAC" | seq u64 | pack u32 | offset i64 | pad u32 | crc32c u32, little
// endian; the valid slot with the highest seq wins, so a torn slot write
// leaves the previous one.
const accSlot = 32

func encodeAcc(seq uint64, p pos) []byte {
	b := make([]byte, accSlot)
	copy(b, "SNAC")
	binary.LittleEndian.PutUint64(b[4:], seq)
	binary.LittleEndian.PutUint32(b[12:], p.pack)
	binary.LittleEndian.PutUint64(b[16:], uint64(p.off))
	binary.LittleEndian.PutUint32(b[28:], crc32c(b[:28]))
	return b
}

func decodeAcc(b []byte) (seq uint64, p pos, ok bool) {
	if len(b) < accSlot || string(b[:4]) != "SNAC" || crc32c(b[:28]) != binary.LittleEndian.Uint32(b[28:]) {
		return 0, pos{}, false
	}
	seq = binary.LittleEndian.Uint64(b[4:])
	p = pos{binary.LittleEndian.Uint32(b[12:]), int64(binary.LittleEndian.Uint64(b[16:]))}
	return seq, p, p.off >= 0 && p.off%Align == 0
}

// readAccounted loads the accounted position; without a valid slot it is
// the start of the first pack (recovery then scans everything).
func (m *member) readAccounted() error {
	name := filepath.Join(m.dir, accountedFil)
	b, err := readFile(m.fs, name)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("member %d: read %s: %w", m.idx, name, err)
	}
	for i := 0; i+accSlot <= len(b) && i < 2*accSlot; i += accSlot {
		if seq, p, ok := decodeAcc(b[i:]); ok && seq >= m.accSeq {
			m.accSeq, m.accPos = seq, p
		}
	}
	if m.readOnly {
		return nil
	}
	m.accFile, err = m.fs.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return fmt.Errorf("member %d: open %s: %w", m.idx, name, err)
	}
	return nil
}

// markAccounted persists the durable position as accounted.
func (m *member) markAccounted() error {
	m.accMu.Lock()
	defer m.accMu.Unlock()
	m.mu.Lock()
	p := m.durable
	m.mu.Unlock()
	if p == m.accPos {
		return nil
	}
	seq := m.accSeq + 1
	if _, err := m.accFile.WriteAt(encodeAcc(seq, p), int64(seq%2)*accSlot); err != nil {
		return fmt.Errorf("member %d: write accounted: %w", m.idx, err)
	}
	if err := m.accFile.Sync(); err != nil {
		return fmt.Errorf("member %d: sync accounted: %w", m.idx, err)
	}
	m.accSeq, m.accPos = seq, p
	return nil
}

// recover scans every pack at or past the accounted position for valid
// records, truncates invalid tails (unless read-only), and sets up the
// active pack. It returns the records found.
func (m *member) recover(poolID [16]byte) ([]TailRecord, error) {
	nums, err := m.listPacks()
	if err != nil {
		return nil, err
	}
	var tails []TailRecord
	var last *pack
	var lastEnd int64
	for _, n := range nums {
		if n < m.accPos.pack {
			continue
		}
		start := int64(0)
		if n == m.accPos.pack {
			start = m.accPos.off
		}
		pk, err := m.pack(n)
		if err != nil {
			return nil, err
		}
		recs, end, err := m.scanPack(pk, start, poolID)
		if err != nil {
			return nil, err
		}
		tails = append(tails, recs...)
		last, lastEnd = pk, end
	}
	if m.readOnly {
		return tails, nil
	}
	return tails, m.startActive(nums, last, lastEnd)
}

// startActive picks the active pack after recovery: the newest pack if it
// was scanned (its valid end known), else a fresh one.
func (m *member) startActive(nums []uint32, last *pack, end int64) error {
	if last != nil && last.num == nums[len(nums)-1] {
		m.setActive(last, end)
	} else {
		next := m.accPos.pack + 1 // never reuse the number of a lost pack
		if len(nums) > 0 {
			next = max(next, nums[len(nums)-1]+1)
		}
		pk, err := m.newPack(next)
		if err != nil {
			return err
		}
		m.setActive(pk, 0)
	}
	if err := m.active.f.Sync(); err != nil {
		return fmt.Errorf("member %d: sync pack %d: %w", m.idx, m.active.num, err)
	}
	m.durable = pos{m.active.num, m.end}
	return nil
}

// scanPack reads pk from start to its end. Each Align-aligned offset either
// holds a valid record (header and payload CRC check, this pool) or is
// skipped, so a scan resynchronises after a torn or punched record. The
// file is truncated after the last valid record. It returns the records
// and that end.
func (m *member) scanPack(pk *pack, start int64, poolID [16]byte) ([]TailRecord, int64, error) {
	size, err := pk.f.Size()
	if err != nil {
		return nil, 0, fmt.Errorf("member %d: size of pack %d: %w", m.idx, pk.num, err)
	}
	var recs []TailRecord
	var buf []byte
	end := alignUp(start)
	for off := end; off+HeaderSize <= size; {
		h, ok, err := m.readValid(pk, off, size, poolID, &buf)
		if err != nil {
			return nil, 0, err
		}
		if !ok {
			off += Align
			continue
		}
		recs = append(recs, TailRecord{Loc: Location{Member: m.idx, Pack: pk.num, Offset: off, Length: h.logical}, Hash: h.hash})
		off += h.extent()
		end = off
	}
	if _, inMemory := pk.f.(bytesFile); end != size && !m.readOnly && !inMemory {
		if err := pk.f.Truncate(end); err != nil {
			return nil, 0, fmt.Errorf("member %d: truncate torn tail of pack %d at %d: %w", m.idx, pk.num, end, err)
		}
	}
	return recs, end, nil
}

// readValid reads the record at off and reports whether it is valid.
func (m *member) readValid(pk *pack, off, size int64, poolID [16]byte, buf *[]byte) (header, bool, error) {
	var hb [HeaderSize]byte
	if _, err := pk.f.ReadAt(hb[:], off); err != nil {
		return header{}, false, fmt.Errorf("member %d: read pack %d at %d: %w", m.idx, pk.num, off, err)
	}
	h, err := decodeHeader(hb[:], poolID)
	n := readSize(h.version, h.stored) - HeaderSize // payload and trailer
	if err != nil || off+HeaderSize+n > size {
		return h, false, nil
	}
	if cap(*buf) < int(n) {
		*buf = make([]byte, n)
	}
	b := (*buf)[:n]
	if _, err := pk.f.ReadAt(b, off+HeaderSize); err != nil {
		return h, false, fmt.Errorf("member %d: read pack %d at %d: %w", m.idx, pk.num, off, err)
	}
	if crc32c(b[:h.stored]) != h.storedCRC {
		return h, false, nil
	}
	if h.version >= recordV2 {
		if _, err := checkTrailer(b[h.stored:], h.stored); err != nil {
			return h, false, nil // torn in the trailer: not a whole record
		}
	}
	return h, true, nil
}

// close syncs the active pack (an object-store member Puts its stage)
// and closes every handle.
func (m *member) close() error {
	var first error
	if m.rep != nil {
		m.closeReplica() // the stage keeps the backlog: synced below
	} else if m.obj != nil {
		m.stopSealer()
		m.mu.Lock()
		seal := m.active != nil && m.failed == nil && !m.readOnly && (m.end > 0 || len(m.pending) > 0)
		var target pos // a record position whose sealing Puts everything
		switch {
		case !seal:
		case m.end > 0:
			target = pos{m.active.num, 0}
		default:
			target = pos{m.pending[len(m.pending)-1], 0}
		}
		m.mu.Unlock()
		if seal {
			if err := m.sync(target); err != nil {
				first = fmt.Errorf("member %d: seal stage: %w", m.idx, err)
			}
		}
	}
	m.mu.Lock()
	if m.active != nil && m.failed == nil && !m.readOnly && (m.obj == nil || m.rep != nil) {
		if err := m.active.f.Sync(); err != nil {
			first = fmt.Errorf("member %d: sync pack %d: %w", m.idx, m.active.num, err)
		}
	}
	m.mu.Unlock()
	m.packsMu.Lock()
	for n, pk := range m.packs {
		pk.f.Close()
		delete(m.packs, n)
	}
	m.packsMu.Unlock()
	if m.accFile != nil {
		m.accFile.Close()
	}
	return first
}

// isNoSpace reports whether err is ENOSPC or EDQUOT.
func isNoSpace(err error) bool {
	return errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) || errors.Is(err, ErrNoSpace)
}
