package pool

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/snapfs/snapfs/objstore"
)

// OpenOptions configure Open.
type OpenOptions struct {
	FS       FS   // nil = OSFS
	ReadOnly bool // no appends, frees, truncation or accounting
	// MaxPackSize overrides the pack rotation size (0 = PackSizePunch, or
	// PackSizeNoPunch on members that cannot punch). For tests.
	MaxPackSize int64
	// RecordVersion is the record format Append and AppendCopy write: 0
	// for the current one (2); 1 writes records as pools made before
	// version 2 hold them, for tests of pools holding both.
	RecordVersion uint16
	// ObjectStores opens the store of an object-store member (nil =
	// DefaultObjectStores). Tests pass in-memory stores.
	ObjectStores func(objstore.Config) (objstore.Store, error)
	// ObjectSize is the size at which an object-store member's stage pack
	// is sealed into an object (0 = DefaultObjectSize); SealInterval how
	// long a stage pack holding records waits before it is sealed anyway
	// (0 = DefaultSealInterval).
	ObjectSize   int64
	SealInterval time.Duration
	// CacheDir, with CacheSize > 0, keeps up to CacheSize bytes of
	// records read from object-store members in local files
	// (readcache.go).
	CacheDir  string
	CacheSize int64
	// AsyncBacklog bounds the backlog of each asynchronous replica (0 =
	// DefaultAsyncBacklog): past it, writers wait (asyncrep.go).
	AsyncBacklog int64
}

// Pool is an open pool. All methods are safe for concurrent use.
type Pool struct {
	// Immutable after Open.
	dir      string
	fs       FS
	cfg      Config
	id       [16]byte
	readOnly bool
	lock     io.Closer
	tails    []TailRecord
	maxPack  int64 // OpenOptions.MaxPackSize, for members added online
	// writeVersion is the record format appends write (OpenOptions.RecordVersion).
	writeVersion uint16
	// opts are the options of Open, for members reopened or added online.
	opts OpenOptions
	// stores opens each object-store member's store once.
	stores *objStores
	// cache holds records read from object-store members (nil: none).
	cache *readCache
	// reps holds the state of each asynchronous replica, by member index
	// (asyncrep.go); repsMu guards the map.
	repsMu sync.Mutex
	reps   map[uint16]*asyncRep
	// ahead fetches runs of object records ahead of sequential readers
	// (objreadahead.go).
	ahead objAhead

	// members is the member list, by index; AddMember publishes a longer
	// copy (under spaceMu, after growing space and current).
	members atomic.Pointer[[]*member]
	// cfgMu guards cfg.Members against AddMember; addMu serializes AddMember.
	cfgMu sync.RWMutex
	addMu sync.Mutex

	closed atomic.Bool
	bufs   sync.Pool // *[]byte record encoding buffers
	// tables holds the page tables range reads verified (pagetables.go).
	tables pageTables

	// checkNow is signalled (never blocking, capacity 1) when a member
	// operation failed in a way that asks for CheckMembers (health.go).
	checkNow chan struct{}
	// shortWrites counts records appended with fewer copies than asked
	// because members were gone or degraded (statistics only).
	shortWrites atomic.Int64
	// fg is when the pool last did I/O for the volumes (foreground.go).
	fg foregroundClock

	// spaceMu guards the space and placement state below.
	spaceMu  sync.Mutex
	space    []memberSpace // by member index
	spaceAt  time.Time     // when space was last refreshed from statfs
	reserved int64         // outstanding Reserve bytes (raw, times copies)
	current  []int64       // smooth weighted round robin state, by member
}

// memberSpace is the statfs view of a member, corrected for bytes appended
// since it was taken.
type memberSpace struct {
	total, free int64
	appended    int64 // bytes appended since the statfs
	err         error
}

// spaceRefresh is how often statfs is re-read for placement and Reserve.
const spaceRefresh = time.Second

type inUseError struct {
	dir string
	pid int
}

func (e *inUseError) Error() string {
	return fmt.Sprintf("pool: pool %s is in use by pid %d", e.dir, e.pid)
}

func (e *inUseError) Unwrap() error { return ErrInUse }

// Open opens the pool in dir: it takes the lock, reads pool.json and every
// member.json, probes hole punching, and recovers each member's tail past
// its accounted offset (see Tails). Members whose directory or member.json
// is missing are opened as gone; reads from them fail with ErrMemberGone.
func Open(dir string, opts OpenOptions) (*Pool, error) {
	p := &Pool{fs: opts.FS, readOnly: opts.ReadOnly, checkNow: make(chan struct{}, 1), opts: opts, stores: newStores(opts.ObjectStores)}
	p.fg.base = time.Now()
	if p.fs == nil {
		p.fs = OSFS{}
	}
	var err error
	if p.dir, err = filepath.Abs(dir); err != nil {
		return nil, fmt.Errorf("pool: open %s: %w", dir, err)
	}
	if _, err := p.fs.Stat(filepath.Join(p.dir, poolFile)); err != nil {
		return nil, fmt.Errorf("pool: %s has no %s: %w", p.dir, poolFile, ErrNotPool)
	}
	if err := p.takeLock(); err != nil {
		return nil, err
	}
	if err := p.load(opts); err != nil {
		p.closeAll()
		return nil, err
	}
	if opts.CacheDir != "" && opts.CacheSize > 0 {
		if p.cache, err = openReadCache(p.fs, opts.CacheDir, opts.CacheSize); err != nil {
			p.closeAll()
			return nil, err
		}
	}
	return p, nil
}

func (p *Pool) takeLock() error {
	l, err := p.fs.Lock(filepath.Join(p.dir, lockFile))
	var le *LockedError
	if errors.As(err, &le) {
		return &inUseError{dir: p.dir, pid: le.PID}
	}
	if err != nil {
		return fmt.Errorf("pool: lock %s: %w", p.dir, err)
	}
	p.lock = l
	return nil
}

func (p *Pool) load(opts OpenOptions) error {
	cfg, err := readConfig(p.fs, p.dir)
	if err != nil {
		return err
	}
	p.cfg = cfg
	if _, err := p.fs.Stat(filepath.Join(p.dir, metaDir)); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("pool: %s has no %s/ (its metadata is gone; snapfs pool import rebuilds it from the members): %w", p.dir, metaDir, ErrNoMeta)
	}
	if opts.RecordVersion > recordVersion {
		return fmt.Errorf("pool: record version %d: this snapfs writes at most %d", opts.RecordVersion, recordVersion)
	}
	p.maxPack = opts.MaxPackSize
	p.writeVersion = recordVersion
	if opts.RecordVersion != 0 {
		p.writeVersion = opts.RecordVersion
	}
	p.id, _ = parseID(cfg.ID)
	p.space = make([]memberSpace, len(cfg.Members))
	p.current = make([]int64, len(cfg.Members))
	// Check every member.json before touching any member.
	gone := make([]error, len(cfg.Members))
	for i, mc := range cfg.Members {
		if mc.Removed {
			gone[i] = errMemberRemoved
			continue
		}
		if _, err := readMemberJSONIn(p.fs, p.stores, p.cfg, mc); errors.Is(err, ErrMemberGone) {
			gone[i] = err
		} else if err != nil {
			return err
		}
	}
	live := 0
	for i, mc := range cfg.Members {
		m, tails, err := p.openMember(mc, gone[i], opts)
		if err != nil {
			return err
		}
		p.tails = append(p.tails, tails...)
		p.addLoaded(m)
		if m.gone == nil {
			live++
		}
	}
	if live == 0 {
		return fmt.Errorf("pool: %s: every member is missing: %w", p.dir, ErrMemberGone)
	}
	return nil
}

// openMember opens one member and recovers its tail, which it returns. A
// gone member is not an error. A member on a read-only file system (of a
// pool opened for writing) opens read-only and failed: it serves reads,
// takes no appends and frees nothing (see health.go).
func (p *Pool) openMember(mc MemberConfig, gone error, opts OpenOptions) (*member, []TailRecord, error) {
	m := &member{idx: mc.Index, cfg: mc, fs: p.fs, readOnly: p.readOnly, packs: map[uint32]*pack{}, gone: gone, dir: mc.Path}
	m.syncCond = sync.NewCond(&m.syncMu)
	if gone != nil {
		return m, nil, nil
	}
	if mc.Kind == KindS3 {
		return p.openObjectMember(mc, opts)
	}
	if !p.readOnly {
		if st, err := p.fs.Statfs(mc.Path); err == nil && st.ReadOnly {
			m.readOnly, m.failed = true, errReadOnlyFS
		}
	}
	if !m.readOnly {
		if err := p.fs.MkdirAll(m.packsPath(), 0o755); errors.Is(err, syscall.EROFS) {
			m.readOnly, m.failed = true, errReadOnlyFS
		} else if err != nil {
			return nil, nil, fmt.Errorf("pool: member %d: %w", m.idx, err)
		}
	}
	if !m.readOnly {
		if err := m.probeWritable(); err != nil {
			// Readable, but writes fail (ext4 made read-only after errors
			// still says rw in statfs): serve reads, take no records.
			m.readOnly, m.failed = true, fmt.Errorf("a test write failed: %w", err)
		}
	}
	if !m.readOnly {
		m.canPunch = m.probePunch()
	}
	m.maxPack = opts.MaxPackSize
	if m.maxPack <= 0 {
		m.maxPack = PackSizeNoPunch
		if m.canPunch {
			m.maxPack = PackSizePunch
		}
	}
	if err := m.readAccounted(); err != nil {
		return nil, nil, fmt.Errorf("pool: %w", err)
	}
	tails, err := m.recover(p.id)
	if err != nil {
		m.close()
		return nil, nil, fmt.Errorf("pool: recover: %w", err)
	}
	return m, tails, nil
}

func (p *Pool) closeAll() error {
	var first error
	p.ahead.close()
	for _, m := range p.ms() {
		if m.gone == nil {
			if err := m.close(); err != nil && first == nil {
				first = fmt.Errorf("pool: close: %w", err)
			}
		}
	}
	if p.lock != nil {
		p.lock.Close()
	}
	return first
}

// Close syncs the active packs and releases the pool.
func (p *Pool) Close() error {
	if p.closed.Swap(true) {
		return ErrClosed
	}
	return p.closeAll()
}

// Dir is the pool directory (absolute).
func (p *Pool) Dir() string { return p.dir }

// MetaDir is the directory of the metadata database: Dir()/meta.
func (p *Pool) MetaDir() string { return filepath.Join(p.dir, metaDir) }

// Config returns the pool configuration (a copy).
func (p *Pool) Config() Config {
	p.cfgMu.RLock()
	defer p.cfgMu.RUnlock()
	c := p.cfg
	c.Members = append([]MemberConfig(nil), p.cfg.Members...)
	return c
}

// Tails returns the valid records found past the accounted offsets at Open.
func (p *Pool) Tails() []TailRecord { return append([]TailRecord(nil), p.tails...) }

func (p *Pool) writable() error {
	switch {
	case p.closed.Load():
		return ErrClosed
	case p.readOnly:
		return ErrReadOnly
	}
	return nil
}

func (p *Pool) member(i uint16) (*member, error) {
	ms := p.ms()
	if int(i) >= len(ms) {
		return nil, fmt.Errorf("pool: member %d does not exist (pool has %d)", i, len(ms))
	}
	m := ms[i]
	if m.gone != nil {
		return nil, m.gone
	}
	return m, nil
}

// Append writes one record holding data under hash h: Copies copies, each
// on a member of a distinct failure domain, chosen by striping weighted by
// free space. A copy whose write fails is retried on the next member in
// placement order. The records are not durable until Sync.
//
// Degraded writes: when members are gone or degraded so that fewer than
// Copies failure domains take the record, Append still succeeds with the
// copies it could write (at least one), as a ZFS mirror with a missing
// side keeps writing; the record is then under-replicated until scrub
// raises it. A copy missing for lack of space is not that: the append
// fails with ErrNoSpace.
func (p *Pool) Append(h Hash, data []byte) ([]Location, error) {
	if err := p.writable(); err != nil {
		return nil, err
	}
	if len(data) > MaxRecord {
		return nil, fmt.Errorf("pool: append %d bytes: larger than %d", len(data), MaxRecord)
	}
	p.NoteForeground() // Append is the flush's: a volume's write
	bp, _ := p.bufs.Get().(*[]byte)
	if bp == nil {
		bp = new([]byte)
	}
	defer p.bufs.Put(bp)
	*bp = encodeRecordVersion(*bp, p.writeVersion, p.id, h, data)
	return p.appendCopies(*bp, uint32(len(data)))
}

func (p *Pool) appendCopies(rec []byte, length uint32) ([]Location, error) {
	want := p.copies()
	locs := make([]Location, 0, want)
	domains := map[string]bool{}
	var errs []error
	for _, i := range p.placement(want) {
		if len(locs) == want {
			break
		}
		m := p.ms()[i]
		if domains[m.cfg.Domain] {
			continue
		}
		at, err := m.append(rec)
		if err != nil {
			p.suspect(err)
			errs = append(errs, err)
			continue
		}
		m.appended.Add(1)
		p.noteAppended(i, int64(len(rec)))
		domains[m.cfg.Domain] = true
		locs = append(locs, Location{Member: m.idx, Pack: at.pack, Offset: at.off, Length: length})
	}
	if len(locs) == want {
		return p.appendReplicas(rec, length, locs), nil
	}
	if len(locs) > 0 && !anyNoSpace(errs) {
		p.shortWrites.Add(1)
		return p.appendReplicas(rec, length, locs), nil // degraded: fewer domains writable than copies
	}
	p.Free(locs)
	if len(locs) == 0 && p.everyMemberReadOnly() {
		return nil, fmt.Errorf("pool: append: every member is on a read-only file system: %w", syscall.EROFS)
	}
	return nil, appendError(len(locs), want, errs)
}

// everyMemberReadOnly reports whether every present member is on a
// read-only file system (at Open, or since an append failed with EROFS):
// writes then fail with EROFS, as on a read-only ext4.
func (p *Pool) everyMemberReadOnly() bool {
	n := 0
	for _, m := range p.ms() {
		if m.gone != nil {
			continue
		}
		m.mu.Lock()
		failed := m.failed
		m.mu.Unlock()
		if !errors.Is(failed, syscall.EROFS) {
			return false
		}
		n++
	}
	return n > 0
}

func anyNoSpace(errs []error) bool {
	for _, e := range errs {
		if isNoSpace(e) {
			return true
		}
	}
	return false
}

func appendError(got, want int, errs []error) error {
	err := errors.Join(errs...)
	for _, e := range errs {
		if isNoSpace(e) {
			return fmt.Errorf("pool: append: stored %d of %d copies: %w: %w", got, want, ErrNoSpace, err)
		}
	}
	if err == nil {
		return fmt.Errorf("pool: append: only %d of %d failure domains writable: %w", got, want, ErrMemberGone)
	}

	return fmt.Errorf("pool: append: stored %d of %d copies: %w", got, want, err)
}

// Read reads the record at loc whole, header, payload and (version 2)
// page trailer in one pread, into dst (used when its capacity holds
// ReadBufSize(loc.Length) bytes, else a new buffer) and returns its
// logical bytes, which start HeaderSize bytes into that buffer, after
// checking the header (magic, CRC, pool id), that it holds hash h and
// loc.Length bytes, the CRC32C of the stored bytes and the trailer's own
// CRC. A mismatch returns an error wrapping ErrChecksum, never wrong bytes.
func (p *Pool) Read(loc Location, h Hash, dst []byte) ([]byte, error) {
	m, pk, err := p.readTarget(loc)
	if err != nil {
		return dst[:0], err
	}
	// Sized for version 2; a version 1 record ends before the trailer
	// would, so only its leading bytes count.
	n := ReadBufSize(loc.Length)
	buf := dst[:0]
	if cap(buf) < n {
		buf = make([]byte, n)
	}
	buf = buf[:n]
	_, fromStore := pk.f.(objFile)
	cached := fromStore && p.cache != nil
	if cached && p.cache.get(m, loc, buf) {
		if data, err := verify(buf, loc, h, p.id); err == nil {
			return data, nil
		}
		p.cache.drop(p.cache.path(m, loc)) // damaged or stale: Get it again
	}
	var got int
	ahead := false
	if fromStore {
		ahead, err = p.ahead.read(spanKey{loc.Member, loc.Pack}, buf, loc.Offset)
	}
	switch {
	case ahead:
		got = len(buf) // fetched ahead (objreadahead.go), verified below
	case err == nil:
		got, err = pk.f.ReadAt(buf, loc.Offset)
	}
	if err != nil && errors.Is(err, io.EOF) && got >= HeaderSize+int(loc.Length) {
		// Only a version 1 record can end there (the pack's last);
		// verify says whether this one does.
		buf, err = buf[:got], nil
	}
	if err != nil {
		return dst[:0], p.readError(m, loc, err)
	}
	data, err := verify(buf, loc, h, p.id)
	if err != nil {
		return dst[:0], fmt.Errorf("pool: read %v: %w", loc, err)
	}
	if cached {
		p.cache.put(m, loc, buf)
	}
	// The payload is returned in place, after the header: no copy.
	return data, nil
}

// readTarget finds the pack a read of loc goes to.
func (p *Pool) readTarget(loc Location) (*member, *pack, error) {
	if p.closed.Load() {
		return nil, nil, ErrClosed
	}
	m, err := p.member(loc.Member)
	if err != nil {
		return nil, nil, fmt.Errorf("pool: read %v: %w", loc, err)
	}
	if loc.Length > MaxRecord || loc.Offset%Align != 0 {
		return nil, nil, fmt.Errorf("pool: read %v: impossible location: %w", loc, ErrChecksum)
	}
	pk, err := m.pack(loc.Pack)
	if err != nil {
		p.suspect(err)
		return nil, nil, fmt.Errorf("pool: read %v: %w", loc, err)
	}
	return m, pk, nil
}

// readError wraps a failed pread of a record at loc: past the end of the
// pack is a bad record (ErrChecksum); a read fault counts against the
// member (readfaults.go).
func (p *Pool) readError(m *member, loc Location, err error) error {
	if errors.Is(err, io.EOF) {
		return fmt.Errorf("pool: read %v: past end of pack: %w", loc, ErrChecksum)
	}
	if IsReadFault(err) {
		m.noteReadFault(loc, err)
	}
	p.suspect(err)
	return fmt.Errorf("pool: read %v: %w", loc, err)
}

// verify checks a record read whole into buf (at least its readSize
// bytes) and returns its payload, in place.
func verify(buf []byte, loc Location, h Hash, poolID [16]byte) ([]byte, error) {
	hd, err := decodeHeader(buf, poolID)
	switch {
	case err != nil:
		return nil, err
	case hd.hash != h:
		return nil, fmt.Errorf("record holds hash %v, want %v: %w", hd.hash, h, ErrChecksum)
	case hd.logical != loc.Length:
		return nil, fmt.Errorf("record length %d, want %d: %w", hd.logical, loc.Length, ErrChecksum)
	case int64(len(buf)) < readSize(hd.version, hd.stored):
		return nil, fmt.Errorf("record of %d bytes cut at %d: %w", readSize(hd.version, hd.stored), len(buf), ErrChecksum)
	}
	end := HeaderSize + int(hd.stored)
	if crc32c(buf[HeaderSize:end]) != hd.storedCRC {
		return nil, fmt.Errorf("payload crc mismatch: %w", ErrChecksum)
	}
	if hd.version >= recordV2 {
		// The trailer must hold too, or partial reads of this copy
		// would fail where whole reads pass: scrub finds it here.
		if _, err := checkTrailer(buf[end:], hd.stored); err != nil {
			return nil, err
		}
	}
	return buf[HeaderSize:end:end], nil
}

// ReadRange returns verified bytes of the record at loc that cover its
// logical bytes [off, off+n) (n clipped to its length), and the offset in
// the record where they start. From a version 2 record it reads only the
// header, the pages holding the range and the page trailer (at most three
// preads, fewer when they touch) and checks the header as Read does, the
// trailer's CRC and each page read against its CRC: the bytes returned
// are those pages. A version 1 record, or a range over more than half the
// pages, is read whole (Read): the bytes are then the whole payload, from
// 0, which the caller may keep. A mismatch returns an error wrapping
// ErrChecksum, never unverified bytes. The buffer is the caller's.
func (p *Pool) ReadRange(loc Location, h Hash, off, n int) ([]byte, int, error) {
	if off < 0 || n < 0 || off > int(loc.Length) {
		return nil, 0, fmt.Errorf("pool: read %v: range [%d, +%d) outside the record", loc, off, n)
	}
	n = min(n, int(loc.Length)-off)
	if n == 0 {
		return nil, off, nil // nothing to read, nothing to verify
	}
	whole := func() ([]byte, int, error) {
		b, err := p.Read(loc, h, nil)
		return b, 0, err
	}
	np := pages(loc.Length)
	first, last := off/PageSize, (off+n+PageSize-1)/PageSize
	if 2*(last-first) > np {
		return whole()
	}
	m, pk, err := p.readTarget(loc)
	if err != nil {
		return nil, 0, err
	}
	if _, inStore := pk.f.(objFile); inStore {
		// A record in an object store: one ranged GET of the whole
		// record (kept by the read cache) costs less than three of
		// its parts.
		return whole()
	}
	if table := p.tables.get(loc, h); table != nil {
		// The record's header and table were verified before: read
		// the pages alone, and check them against it.
		lo := int64(HeaderSize + first*PageSize)
		hi := int64(HeaderSize) + min(int64(last*PageSize), int64(loc.Length))
		body := make([]byte, hi-lo)
		if _, err := pk.f.ReadAt(body, loc.Offset+lo); err != nil {
			p.tables.drop(loc)
			return nil, 0, p.readError(m, loc, err)
		}
		if err := checkPages(table, first, body); err != nil {
			p.tables.drop(loc)
			return nil, 0, fmt.Errorf("pool: read %v: %w", loc, err)
		}
		return body, first * PageSize, nil
	}
	// The three parts, as offsets from the record's start, and where
	// they go in buf (one after the other).
	pagesLo := int64(HeaderSize + first*PageSize)
	pagesHi := int64(HeaderSize) + min(int64(last*PageSize), int64(loc.Length))
	trailLo := int64(HeaderSize) + int64(loc.Length)
	trailHi := trailLo + trailerSize(loc.Length)
	parts := [3][2]int64{{0, HeaderSize}, {pagesLo, pagesHi}, {trailLo, trailHi}}
	buf := make([]byte, HeaderSize+(pagesHi-pagesLo)+(trailHi-trailLo))
	at := int64(0) // where the current run of touching parts starts in buf
	for i := 0; i < len(parts); {
		j, lo, hi := i, parts[i][0], parts[i][1]
		for j+1 < len(parts) && parts[j+1][0] == hi {
			j++
			hi = parts[j][1]
		}
		if _, err := pk.f.ReadAt(buf[at:at+hi-lo], loc.Offset+lo); err != nil {
			if errors.Is(err, io.EOF) {
				// A version 1 record last in its pack may end before a
				// trailer would; Read tells that from a damaged one.
				return whole()
			}
			return nil, 0, p.readError(m, loc, err)
		}
		at += hi - lo
		i = j + 1
	}
	hd, err := decodeHeader(buf, p.id)
	switch {
	case err != nil:
	case hd.hash != h:
		err = fmt.Errorf("record holds hash %v, want %v: %w", hd.hash, h, ErrChecksum)
	case hd.logical != loc.Length:
		err = fmt.Errorf("record length %d, want %d: %w", hd.logical, loc.Length, ErrChecksum)
	case hd.version < recordV2:
		return whole() // no page table: only the whole record verifies
	}
	if err != nil {
		return nil, 0, fmt.Errorf("pool: read %v: %w", loc, err)
	}
	body := buf[HeaderSize : HeaderSize+pagesHi-pagesLo]
	table, err := checkTrailer(buf[HeaderSize+pagesHi-pagesLo:], hd.stored)
	if err == nil {
		p.tables.put(loc, h, table)
		err = checkPages(table, first, body)
	}
	if err != nil {
		p.tables.drop(loc)
		return nil, 0, fmt.Errorf("pool: read %v: %w", loc, err)
	}
	return body, first * PageSize, nil
}

// ReadAny reads the first good copy among locs, reading around bad copies
// and gone members; copies on members degraded for failing reads are
// tried last (readfaults.go). With every copy bad it returns all their
// errors.
func (p *Pool) ReadAny(locs []Location, h Hash, dst []byte) ([]byte, error) {
	b, _, err := p.ReadAnyReport(locs, h, dst)
	return b, err
}

// BadCopy is a copy ReadAnyReport could not use although its member is
// present: a checksum mismatch or an I/O error reading it. (A missing
// pack is not reported: it may be a member directory vanishing before
// CheckMembers marks it gone; scrub finds a pack really deleted.)
type BadCopy struct {
	Loc Location
	Err error
}

// ReadAnyReport is ReadAny that also returns the bad copies it read
// before the good one (or all of them, with the error), so the caller can
// rewrite them. Copies on gone members, and reads that failed because the
// pool closed, are not bad copies.
func (p *Pool) ReadAnyReport(locs []Location, h Hash, dst []byte) ([]byte, []BadCopy, error) {
	b, bad, err := p.readAny(locs, func(loc Location) ([]byte, error) {
		b, err := p.Read(loc, h, dst)
		dst = b
		return b, err
	})
	if err != nil {
		return dst[:0], bad, err
	}
	return b, bad, nil
}

// ReadRangeAnyReport is ReadAnyReport for bytes [off, off+n) of the
// record (ReadRange): it reads only the pages holding them from the first
// good copy, and reports the bad copies it read around. It returns the
// verified bytes and the record offset they start at.
func (p *Pool) ReadRangeAnyReport(locs []Location, h Hash, off, n int) ([]byte, int, []BadCopy, error) {
	from := 0
	b, bad, err := p.readAny(locs, func(loc Location) ([]byte, error) {
		b, at, err := p.ReadRange(loc, h, off, n)
		from = at
		return b, err
	})
	return b, from, bad, err
}

// readAny tries read on each of locs in turn (copies on members failing
// reads last) and returns the first success, with the bad copies read
// before it, or every error.
func (p *Pool) readAny(locs []Location, read func(Location) ([]byte, error)) ([]byte, []BadCopy, error) {
	if len(locs) == 0 {
		return nil, nil, errors.New("pool: read: no locations")
	}
	var errs []error
	var bad []BadCopy
	var last []Location
	try := func(loc Location) ([]byte, bool) {
		b, err := read(loc)
		if err == nil {
			return b, true
		}
		errs = append(errs, err)
		if isBadCopy(err) {
			bad = append(bad, BadCopy{Loc: loc, Err: err})
		}
		return nil, false
	}
	for _, loc := range locs {
		if p.failsReads(loc.Member) {
			last = append(last, loc)
			continue
		}
		if b, ok := try(loc); ok {
			return b, bad, nil
		}
	}
	for _, loc := range last {
		if b, ok := try(loc); ok {
			return b, bad, nil
		}
	}
	return nil, bad, errors.Join(errs...)
}

// isBadCopy reports whether a failed Read says the copy itself is bad
// (rewrite it), not its member gone or the pool closed.
func isBadCopy(err error) bool {
	if errors.Is(err, ErrMemberGone) || errors.Is(err, ErrClosed) {
		return false
	}
	return errors.Is(err, ErrChecksum) || IsReadFault(err)
}

// Sync returns once every record at locs is durable. Members sync in
// parallel; within a member, concurrent callers share one fdatasync per
// group-commit window.
func (p *Pool) Sync(locs []Location) error {
	if p.closed.Load() {
		return ErrClosed
	}
	failed := p.SyncEach(locs)
	errs := make([]error, 0, len(failed))
	for _, err := range failed {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// SyncEach is Sync reporting per member: it returns, for each member whose
// records at locs could not be made durable, why (nil when every record is
// durable). A caller holding other durable copies of a record may go on
// without the failed ones (a degraded write).
func (p *Pool) SyncEach(locs []Location) map[uint16]error {
	targets := map[uint16]pos{}
	for _, l := range locs {
		if t, ok := targets[l.Member]; !ok || t.less(pos{l.Pack, l.Offset}) {
			targets[l.Member] = pos{l.Pack, l.Offset}
		}
	}
	if len(targets) == 0 {
		return nil
	}
	var mu sync.Mutex // guards failed
	var failed map[uint16]error
	note := func(i uint16, err error) {
		mu.Lock()
		if failed == nil {
			failed = map[uint16]error{}
		}
		failed[i] = err
		mu.Unlock()
	}
	if p.closed.Load() {
		for i := range targets {
			note(i, ErrClosed)
		}
		return failed
	}
	if len(targets) == 1 {
		for i, t := range targets {
			if err := p.syncMember(i, t); err != nil {
				note(i, err)
			}
		}
		return failed
	}
	var wg sync.WaitGroup
	for i, t := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.syncMember(i, t); err != nil {
				note(i, err)
			}
		}()
	}
	wg.Wait()
	return failed
}

func (p *Pool) syncMember(i uint16, t pos) error {
	m, err := p.member(i)
	if err != nil {
		return fmt.Errorf("pool: sync: %w", err)
	}
	if m.readOnly {
		return nil
	}
	if err := m.sync(t); err != nil {
		p.suspect(err)
		return fmt.Errorf("pool: sync: %w", err)
	}
	return nil
}

// Free releases records: it punches each record's aligned extent
// (PUNCH_HOLE|KEEP_SIZE) and deletes a sealed pack whose allocated blocks
// reach zero. On members that cannot punch it does nothing (repack will).
// Freeing a record twice, or one on a gone member, is a no-op. The punched
// packs are fsynced before it returns, so a caller that then forgets the
// records durably (freeq) never sees them come back after a power cut.
// It goes on past a record it cannot free and returns every failure;
// FreeEach says which records they were.
func (p *Pool) Free(locs []Location) error {
	failed, err := p.FreeEach(locs)
	if err != nil {
		return err
	}
	errs := make([]error, 0, len(failed))
	for _, l := range locs {
		if e := failed[l]; e != nil {
			errs = append(errs, e)
			delete(failed, l)
		}
	}
	return errors.Join(errs...)
}

// FreeEach is Free reporting per record: it returns, for each location
// that could not be freed (its punch failed, or the fsync of its punched
// pack did), why; the others are freed. The error is for the whole call
// (a closed or read-only pool: nothing freed).
func (p *Pool) FreeEach(locs []Location) (map[Location]error, error) {
	if err := p.writable(); err != nil {
		return nil, err
	}
	var failed map[Location]error
	note := func(l Location, err error) {
		if failed == nil {
			failed = map[Location]error{}
		}
		failed[l] = err
	}
	p.tables.drop(locs...)
	punched := map[*pack][]Location{}
	members := map[*pack]*member{}
	for _, loc := range locs {
		m, err := p.member(loc.Member)
		if errors.Is(err, ErrMemberGone) {
			continue
		}
		var pk *pack
		if err == nil {
			pk, err = m.free(loc, p.id)
		}
		if err != nil {
			note(loc, fmt.Errorf("pool: free %v: %w", loc, err))
		}
		if pk != nil {
			punched[pk] = append(punched[pk], loc)
			members[pk] = m
		}
	}
	for pk, ls := range punched {
		if err := members[pk].syncPunched(pk); err != nil {
			for _, l := range ls {
				note(l, fmt.Errorf("pool: free %v: %w", l, err))
			}
		}
	}
	if len(punched) > 0 {
		// The space is back: the next Reserve or placement reads statfs
		// again instead of its cached figure (up to spaceRefresh old).
		p.spaceMu.Lock()
		p.spaceAt = time.Time{}
		p.spaceMu.Unlock()
	}
	return failed, nil
}

// MarkAccounted persists, per member, the current durable end of its
// active pack as the accounted offset: recovery at the next Open scans only
// past it. Contract: call it only when every record durable now is either
// referenced by durable metadata or freed (e.g. from the flusher, after a
// commit, with no append of an uncommitted flush in between).
func (p *Pool) MarkAccounted() error {
	if err := p.writable(); err != nil {
		return err
	}
	var errs []error
	for _, m := range p.ms() {
		if m.gone == nil && !m.readOnly {
			if err := m.markAccounted(); err != nil {
				errs = append(errs, fmt.Errorf("pool: mark accounted: %w", err))
			}
		}
	}
	return errors.Join(errs...)
}
