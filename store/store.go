package store

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/snapfs/snapfs/pool"
)

// Store is the filesystem engine of one pool: it owns the pool's Pebble
// database and reads and writes chunk bytes through the pool.
type Store struct {
	db   *pebble.DB
	pool *pool.Pool
	opts Options
	// meta refuses changes once the metadata disk is nearly full.
	meta metaSpace

	// cat guards the catalog: volumes, lineages and id counters.
	cat struct {
		sync.Mutex
		volumes  map[string]*volumeRec
		lineages map[uint32]*lineage
		views    map[uint32]View
		// pins is the set of pinned epochs: the read-only views that exist.
		pins map[viewPoint]bool
		// openViews counts open file handles of read-only views.
		openViews map[viewPoint]int
		// gone marks views destroyed while open; deferred holds the pin
		// holders to release when their last handle closes (viewopen.go).
		gone     map[viewPoint]bool
		deferred map[viewPoint][]string
		// spaceRef caches the referenced bytes of pinned epochs, which
		// never change while the pin exists (space.go).
		spaceRef map[viewPoint]int64
	}

	inodes  inodeTable  // in-memory state of open and dirty inodes
	refs    refTable    // per-hash locks and the in-flight table
	cache   *chunkCache // hot chunks by hash
	grace   grace       // reads in flight, for punching safely
	flusher *flusher
	// internalErrors counts bugs caught at run time: panics a FUSE
	// handler recovered (NoteInternalError).
	internalErrors atomic.Int64
	// dirtyBytes counts buffered chunk bytes (dirty and sealed) pool-wide.
	dirtyBytes atomic.Int64
	seq        atomic.Uint64 // freeq and deadlist sequence numbers (process-wide, seeded at open)

	// frees tracks free-queue sequence numbers of uncommitted batches;
	// ckpt is the checkpointer's state (checkpoint.go).
	frees freeSeqs
	ckpt  ckptState
	// punchMu is held by a reclaim pass while it decides and punches,
	// and by the first checkpoint while it starts bounding punching.
	punchMu sync.Mutex
	// walOwn counts WAL bytes the store wrote that change nothing (empty
	// sync records, the punch mark); emptyLogLen is one empty record.
	walOwn      atomic.Uint64
	emptyLogLen uint64

	closing  atomic.Bool // Close has begun: flushes still run
	closed   atomic.Bool // no more changes
	stop     chan struct{}
	bg       sync.WaitGroup
	syncMu   sync.Mutex // serializes durable commits of the sync timer and Sync
	lastSync atomic.Int64

	// reclaims counts background reclaim walks; reclaimMu runs them one at
	// a time, and keeps DestroyLineage's drop of a lineage's keys apart
	// from them (taken before any lineage's epochMu).
	reclaims  sync.WaitGroup
	reclaimMu sync.Mutex

	// flushGate is held shared by a flush from its first pack append until
	// its batch commits, and exclusively by durableCommit while it records the
	// packs' accounted offsets, so an accounted record always has committed
	// metadata.
	flushGate sync.RWMutex

	// rollbackHooks are the functions OnRollback registered; its mutex
	// guards next and fns.
	rollbackHooks struct {
		sync.Mutex
		next int
		fns  map[int]func(lin uint32)
	}

	// removeMu runs one RemoveMember or Repack at a time (evacuate.go,
	// repack.go).
	removeMu sync.Mutex

	// memberMu runs one CheckMembers at a time (health.go).
	memberMu sync.Mutex
	// scrubMu runs one Scrub at a time (scrub.go: lockScrub).
	scrubMu sync.Mutex
	// damage remembers the chunks the read path recorded as damaged.
	damage damage
	// rrep queues the bad copies reads found, for rewriting (readrepair.go).
	rrep readRepairer
	// stats counts flushes, snapshots, checkpoints and scrub progress
	// for monitoring (stats.go).
	stats storeStats
}

// volumeRec is the catalog record of a volume.
type volumeRec struct {
	Name      string `json:"name"`
	Lineage   uint32 `json:"lineage"`
	ChunkSize int64  `json:"chunk_size"` // atomic after load: chunkSize()
	Quota     int64  `json:"quota"`      // atomic after load: quota()
	Uid       uint32 `json:"uid"`
	Gid       uint32 `json:"gid"`
	Created   int64  `json:"created"`
}

// lineageRec is the catalog record of a lineage: a writable line of history.
type lineageRec struct {
	ID          uint32 `json:"id"`
	Family      uint32 `json:"family"` // the root lineage of its volume family: inode numbers are counted per family
	Volume      string `json:"volume"`
	Parent      uint32 `json:"parent,omitempty"`
	ParentEpoch uint64 `json:"parent_epoch,omitempty"`
	Epoch       uint64 `json:"epoch"` // current epoch: new versions are born here
	ViewID      uint32 `json:"view_id"`
}

// lineage is the in-memory state of a lineage.
type lineage struct {
	// epochMu is the epoch lock: mutating batches hold it shared from reading
	// the epoch until commit; snapshot creation and pin removal hold it
	// exclusively.
	epochMu sync.RWMutex
	rec     lineageRec // Epoch changes only under epochMu held exclusively
	lastPin uint64     // newest pinned epoch, 0 for none; under epochMu
	parent  *lineage   // nil for a root lineage
	vol     *volumeRec

	used  atomic.Int64 // logical bytes of non-hole data in the live view (quota)
	files atomic.Int64 // inodes in the live view

	// renameMu serializes directory moves between parents (loop checks).
	renameMu sync.Mutex

	// inoMu guards inode number allocation for the family (only used on the family root).
	inoMu   sync.Mutex
	inoNext uint64
	inoHigh uint64
}

// Catalog record kinds (second key byte).
const (
	catVolume  byte = 'V'
	catLineage byte = 'L'
)

// Open opens (creating if new) the store in the pool's meta directory.
func Open(p *pool.Pool, opts Options) (*Store, error) {
	opts = opts.EnsureDefaults()
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if err := checkMetaNotLost(p, opts); err != nil {
		return nil, err
	}
	db, err := openPebble(p.MetaDir(), opts)
	if err != nil {
		return nil, err
	}
	s := &Store{db: db, pool: p, opts: opts, stop: make(chan struct{})}
	if opts.PebbleFS == nil {
		if err := s.meta.init(p.MetaDir(), opts.MetaReserve); err != nil {
			db.Close()
			return nil, err
		}
	}
	s.cat.volumes = map[string]*volumeRec{}
	s.cat.lineages = map[uint32]*lineage{}
	s.cat.views = map[uint32]View{}
	s.cat.pins = map[viewPoint]bool{}
	s.cat.openViews = map[viewPoint]int{}
	s.cat.gone = map[viewPoint]bool{}
	s.cat.deferred = map[viewPoint][]string{}
	s.cat.spaceRef = map[viewPoint]int64{}
	s.inodes.init()
	s.refs.init()
	s.cache = newChunkCache(opts.CacheSize)
	s.rrep.init()
	eb := db.NewBatch()
	_ = eb.LogData(nil, nil)
	s.emptyLogLen = uint64(eb.Len())
	eb.Close()
	if err := s.loadPunchMark(); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.loadCatalog(); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.recover(); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.floorReplicas(); err != nil { // asyncrep.go
		db.Close()
		return nil, err
	}
	s.flusher = newFlusher(s)
	s.bg.Add(1)
	go s.memberWatch()
	s.bg.Add(1)
	go s.background()
	s.bg.Add(1)
	go s.readRepairLoop()
	s.bg.Add(1)
	go s.lockWatchdog()
	s.bg.Add(1)
	go s.replicator() // asyncrep.go
	if opts.CheckpointInterval > 0 {
		s.bg.Add(1)
		go s.checkpointer()
	}
	return s, nil
}

// checkMetaNotLost refuses to create a new, empty database in a meta/
// that was emptied while the members hold checkpoints of the old one:
// that would silently start the pool over (pool import restores it).
func checkMetaNotLost(p *pool.Pool, o Options) error {
	fs := o.PebbleFS
	if fs == nil {
		fs = vfs.Default
	}
	if names, err := fs.List(p.MetaDir()); err == nil && len(names) > 0 {
		return nil
	}
	c, err := p.NewestCheckpoint()
	if err != nil || c == nil {
		return err
	}
	return fmt.Errorf("metadata %s is empty but member %s holds a checkpoint of it (%s): rebuild with snapfs pool import: %w",
		p.MetaDir(), c.Member, c.Info.Taken.Format("2006-01-02 15:04:05"), pool.ErrNoMeta)
}

func openPebble(dir string, o Options) (*pebble.DB, error) {
	cache := pebble.NewCache(o.PebbleCacheSize)
	defer cache.Unref()
	po := &pebble.Options{
		Comparer:           Comparer,
		Merger:             counterMerger,
		FormatMajorVersion: pebble.FormatNewest,
		Cache:              cache,
		Logger:             quietLogger{},
		// Syncs of the local checkpoint copy are skipped (scratchfs.go).
		FS: newScratchFS(o.PebbleFS, filepath.Join(filepath.Dir(dir), localCheckpointDir)),
		// The epoch interval of every block (epochprop.go).
		BlockPropertyCollectors: []func() pebble.BlockPropertyCollector{epochCollector},
	}
	if o.PebbleFS != nil {
		if err := makeDurableDir(o.PebbleFS, dir); err != nil {
			return nil, err
		}
	}
	for i := range po.Levels {
		po.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	db, err := pebble.Open(dir, po)
	if err != nil {
		return nil, fmt.Errorf("open metadata %s: %w", dir, err)
	}
	return db, nil
}

// makeDurableDir creates dir and syncs it and each parent, so that a power
// cut keeps the path (the pool creates meta/ durably on disk; this does the
// same on a test file system).
func makeDurableDir(fs vfs.FS, dir string) error {
	if err := fs.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create metadata dir %s: %w", dir, err)
	}
	for d := dir; ; d = filepath.Dir(d) {
		f, err := fs.OpenDir(d)
		if err != nil {
			return fmt.Errorf("open dir %s: %w", d, err)
		}
		err = f.Sync()
		f.Close()
		if err != nil {
			return fmt.Errorf("sync dir %s: %w", d, err)
		}
		if d == filepath.Dir(d) {
			return nil
		}
	}
}

// quietLogger keeps Pebble's informational chatter out of the daemon log.
type quietLogger struct{}

func (quietLogger) Infof(string, ...interface{}) {}
func (quietLogger) Errorf(format string, args ...interface{}) {
	fmt.Printf("pebble: "+format+"\n", args...)
}
func (quietLogger) Fatalf(format string, args ...interface{}) {
	panic(fmt.Sprintf("pebble: "+format, args...))
}

// counterMerger adds signed 64-bit little-endian deltas. It is used only for
// statistics that nothing tests for zero (DESIGN-NOTES 4). The name is part of
// the on-disk format.
var counterMerger = &pebble.Merger{
	Name: "snapfs.counter.v1",
	Merge: func(key, value []byte) (pebble.ValueMerger, error) {
		m := &counterSum{}
		return m, m.MergeNewer(value)
	},
}

type counterSum struct{ v int64 }

func (c *counterSum) MergeNewer(v []byte) error {
	if len(v) != 8 {
		return fmt.Errorf("counter operand of %d bytes: %w", len(v), errCorrupt)
	}
	c.v += int64(binary.LittleEndian.Uint64(v))
	return nil
}
func (c *counterSum) MergeOlder(v []byte) error { return c.MergeNewer(v) }
func (c *counterSum) Finish(bool) ([]byte, io.Closer, error) {
	return binary.LittleEndian.AppendUint64(nil, uint64(c.v)), nil, nil
}

func counterDelta(d int64) []byte { return binary.LittleEndian.AppendUint64(nil, uint64(d)) }

func decodeCounter(b []byte) int64 {
	if len(b) != 8 {
		return 0
	}
	return int64(binary.LittleEndian.Uint64(b))
}

// loadCatalog reads volumes and lineages into memory.
func (s *Store) loadCatalog() error {
	lo := []byte{tagCatalog, 0}
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: []byte{tagCatalog + 1, 0}})
	if err != nil {
		return err
	}
	defer it.Close()
	var vols []*volumeRec
	var lins []lineageRec
	for it.First(); it.Valid(); it.Next() {
		k := it.Key()
		switch k[1] {
		case catVolume:
			v := &volumeRec{}
			if err := json.Unmarshal(it.Value(), v); err != nil {
				return fmt.Errorf("catalog volume %q: %w", k[2:len(k)-1], err)
			}
			vols = append(vols, v)
		case catLineage:
			var l lineageRec
			if err := json.Unmarshal(it.Value(), &l); err != nil {
				return fmt.Errorf("catalog lineage: %w", err)
			}
			lins = append(lins, l)
		}
	}
	if err := it.Error(); err != nil {
		return fmt.Errorf("read catalog: %w", err)
	}
	for _, v := range vols {
		s.cat.volumes[v.Name] = v
	}
	for _, l := range lins {
		s.cat.lineages[l.ID] = &lineage{rec: l, vol: s.cat.volumes[l.Volume]}
	}
	for _, l := range s.cat.lineages {
		if l.rec.Parent != 0 {
			l.parent = s.cat.lineages[l.rec.Parent]
		}
		if pins, err := s.Pins(l.rec.ID); err == nil && len(pins) > 0 {
			l.lastPin = pins[len(pins)-1]
			for _, e := range pins {
				s.cat.pins[viewPoint{l.rec.ID, e}] = true
			}
		}
		l.used.Store(s.readCounter(usedKey(l.rec.ID)))
		l.files.Store(s.readCounter(filesKey(l.rec.ID)))
		s.cat.views[l.rec.ViewID] = View{ID: l.rec.ViewID, Lineage: l.rec.ID, Epoch: LiveEpoch}
	}
	return nil
}

func usedKey(lin uint32) []byte  { return counterKey(fmt.Sprintf("used/%d", lin)) }
func filesKey(lin uint32) []byte { return counterKey(fmt.Sprintf("files/%d", lin)) }

func (s *Store) readCounter(k []byte) int64 {
	v, c, err := s.db.Get(k)
	if err != nil {
		return 0
	}
	defer c.Close()
	return decodeCounter(v)
}

// nextID allocates the next value of a persistent counter inside batch b.
// Callers hold s.cat.
func (s *Store) nextIDLocked(b *pebble.Batch, name string) (uint64, error) {
	k := counterKey("id/" + name)
	var n uint64
	v, c, err := b.Get(k)
	switch {
	case err == nil:
		n = binary.BigEndian.Uint64(v)
		c.Close()
	case !errors.Is(err, pebble.ErrNotFound):
		return 0, fmt.Errorf("read counter %s: %w", name, err)
	}
	n++
	return n, b.Set(k, binary.BigEndian.AppendUint64(nil, n), nil)
}

// lineageOf returns the in-memory lineage of a view.
func (s *Store) lineageOf(v View) (*lineage, error) {
	s.cat.Lock()
	l := s.cat.lineages[v.Lineage]
	s.cat.Unlock()
	if l == nil {
		return nil, fmt.Errorf("view %d lineage %d: %w", v.ID, v.Lineage, ErrStale)
	}
	return l, nil
}

// CreateVolume creates a volume: a root lineage with an empty root directory.
func (s *Store) CreateVolume(name string, o VolumeOptions) (VolumeInfo, error) {
	if err := checkVolumeName(name); err != nil {
		return VolumeInfo{}, err
	}
	cs := o.ChunkSize
	if cs == 0 {
		cs = s.pool.Config().ChunkSize
	}
	if cs < 4096 || cs > 1<<20 || cs&(cs-1) != 0 {
		return VolumeInfo{}, fmt.Errorf("chunk size %d: must be a power of two from 4 KiB to 1 MiB: %w", cs, ErrInvalid)
	}
	mode := o.Mode
	if mode == 0 {
		mode = 0o755
	}
	s.cat.Lock()
	defer s.cat.Unlock()
	if _, ok := s.cat.volumes[name]; ok {
		return VolumeInfo{}, fmt.Errorf("volume %q: %w", name, ErrVolumeExists)
	}
	b := s.db.NewIndexedBatch()
	defer b.Close()
	linID, err := s.nextIDLocked(b, "lineage")
	if err != nil {
		return VolumeInfo{}, err
	}
	viewID, err := s.nextIDLocked(b, "view")
	if err != nil {
		return VolumeInfo{}, err
	}
	now := time.Now().UnixNano()
	vr := &volumeRec{Name: name, Lineage: uint32(linID), ChunkSize: int64(cs), Quota: o.Quota, Uid: o.Uid, Gid: o.Gid, Created: now}
	lr := lineageRec{ID: uint32(linID), Family: uint32(linID), Volume: name, Epoch: 1, ViewID: uint32(viewID)}
	root := inodeRec{Mode: sIFDIR | mode&0o7777, Uid: o.Uid, Gid: o.Gid, Nlink: 2, Atime: now, Mtime: now, Ctime: now,
		ChunkShift: uint8(log2(cs)), Parent: RootIno}
	vj, _ := json.Marshal(vr)
	lj, _ := json.Marshal(lr)
	_ = b.Set(catalogKey(catVolume, name), vj, nil)
	_ = b.Set(catalogKey(catLineage, fmt.Sprint(linID)), lj, nil)
	_ = b.Set(withEpoch(inodePrefix(lr.ID, RootIno), 1), root.encode(), nil)
	_ = b.Set(counterKey(fmt.Sprintf("ino/%d", lr.Family)), binary.BigEndian.AppendUint64(nil, RootIno+1), nil)
	_ = b.Merge(filesKey(lr.ID), counterDelta(1), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return VolumeInfo{}, fmt.Errorf("create volume %q: %w", name, err)
	}
	l := &lineage{rec: lr, vol: vr}
	l.files.Store(1)
	s.cat.volumes[name] = vr
	s.cat.lineages[lr.ID] = l
	s.cat.views[lr.ViewID] = View{ID: lr.ViewID, Lineage: lr.ID, Epoch: LiveEpoch}
	return s.volumeInfoLocked(vr), nil
}

func checkVolumeName(name string) error {
	if name == "" || name == "." || name == ".." || len(name) > MaxNameLen {
		return fmt.Errorf("volume name %q: %w", name, ErrBadName)
	}
	for _, c := range []byte(name) {
		if c == '/' || c == '@' || c == 0 || c < 0x20 {
			return fmt.Errorf("volume name %q: must not contain '/', '@' or control characters: %w", name, ErrBadName)
		}
	}
	return nil
}

func log2(n int) int {
	k := 0
	for 1<<k < n {
		k++
	}
	return k
}

func (s *Store) volumeInfoLocked(v *volumeRec) VolumeInfo {
	l := s.cat.lineages[v.Lineage]
	vi := VolumeInfo{Name: v.Name, Lineage: v.Lineage, ChunkSize: v.chunkSize(), Quota: v.quota(), Uid: v.Uid, Gid: v.Gid,
		Created: time.Unix(0, v.Created)}
	if l != nil {
		vi.ViewID = l.rec.ViewID
		vi.Used = l.used.Load()
		vi.Files = l.files.Load()
	}
	return vi
}

// Volumes lists the pool's volumes by name.
func (s *Store) Volumes() ([]VolumeInfo, error) {
	s.cat.Lock()
	defer s.cat.Unlock()
	out := make([]VolumeInfo, 0, len(s.cat.volumes))
	for _, v := range s.cat.volumes {
		out = append(out, s.volumeInfoLocked(v))
	}
	sortVolumes(out)
	return out, nil
}

// Volume describes one volume.
func (s *Store) Volume(name string) (VolumeInfo, error) {
	s.cat.Lock()
	defer s.cat.Unlock()
	v, ok := s.cat.volumes[name]
	if !ok {
		return VolumeInfo{}, fmt.Errorf("volume %q: %w", name, ErrNoVolume)
	}
	return s.volumeInfoLocked(v), nil
}

// LiveView returns the writable view of a volume.
func (s *Store) LiveView(volume string) (View, error) {
	s.cat.Lock()
	defer s.cat.Unlock()
	v, ok := s.cat.volumes[volume]
	if !ok {
		return View{}, fmt.Errorf("volume %q: %w", volume, ErrNoVolume)
	}
	l := s.cat.lineages[v.Lineage]
	return View{ID: l.rec.ViewID, Lineage: l.rec.ID, Epoch: LiveEpoch}, nil
}

// PoolUsage reports logical bytes (what files hold), stored bytes (what the
// unique chunks take) and the number of unique chunks.
func (s *Store) PoolUsage() (logical, stored, chunks int64, err error) {
	s.cat.Lock()
	for _, l := range s.cat.lineages {
		logical += l.used.Load()
	}
	s.cat.Unlock()
	lo, hi := tagBounds(tagChunkRef)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0, 0, 0, err
	}
	defer it.Close()
	for it.First(); it.Valid(); it.Next() {
		r, err := decodeChunkRef(it.Value())
		if err != nil {
			return 0, 0, 0, err
		}
		chunks++
		stored += int64(r.Length) * int64(len(r.Locs))
	}
	return logical, stored, chunks, it.Error()
}

// Closed reports whether Close has begun.
func (s *Store) Closed() bool { return s.closing.Load() }

// Close flushes every dirty buffer, commits durably and closes the database.
// The pool stays open; its owner closes it.
func (s *Store) Close() error {
	if s.closing.Swap(true) {
		return nil
	}
	ferr := s.flushAll()
	close(s.stop)
	s.bg.Wait()
	s.flusher.close() // drains what close(2) and release handed to it
	if err := s.flushAll(); ferr == nil {
		ferr = err
	}
	s.reclaims.Wait()
	s.closed.Store(true)
	serr := s.durableCommit()
	// The memtable goes to an sstable now, so that the next Open has no
	// log to replay: a process that opens the pool for one command (a
	// receive, a snapshot) would otherwise replay, and flush, every change
	// since the last flush (after a full receive of 10,000 files, a
	// command's open read a 3 MB log back: 85 reads, 24 with this flush).
	// It runs beside the checkpoint: the flush syncs meta/ (an sstable,
	// the MANIFEST), the checkpoint's ship the members' copies, and each
	// waited for the other's fsyncs when they ran one after the other.
	// What reclaim commits after the flush stays in the log, which
	// db.Close syncs.
	flushed := make(chan error, 1)
	go func() { flushed <- s.db.Flush() }()
	s.checkpointAtClose()
	s.reclaim(true)
	if err := <-flushed; err != nil {
		s.logf("snapfs: flush metadata at close: %v", err)
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("close metadata: %w", err)
	}
	return errors.Join(ferr, serr)
}

// Sync waits for background reclaim, flushes every dirty buffer and commits
// durably: what `snapfs sync` does.
func (s *Store) Sync() error {
	s.reclaims.Wait()
	if err := s.flushAll(); err != nil {
		return err
	}
	return s.durableCommit()
}

// durableCommit makes every committed batch durable (a synced WAL write), then
// lets the pool record its accounted offsets.
func (s *Store) durableCommit() error {
	s.syncMu.Lock()
	defer s.syncMu.Unlock()
	s.flushGate.Lock()
	defer s.flushGate.Unlock()
	if err := s.logSync(pebble.Sync); err != nil {
		return err
	}
	s.lastSync.Store(time.Now().UnixNano())
	return s.pool.MarkAccounted()
}

// background runs the timers: flushing old dirty chunks, durable commits and reclaim.
func (s *Store) background() {
	defer s.bg.Done()
	flushTick := time.NewTicker(s.opts.FlushInterval / 2)
	syncTick := time.NewTicker(s.opts.SyncInterval)
	defer flushTick.Stop()
	defer syncTick.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-flushTick.C:
			s.flushOld(time.Now().Add(-s.opts.FlushInterval))
			s.reclaim(false)
		case <-syncTick.C:
			if err := s.durableCommit(); err != nil {
				fmt.Printf("snapfs: periodic sync: %v\n", err)
			}
		}
	}
}

func sortVolumes(v []VolumeInfo) {
	sort.Slice(v, func(i, j int) bool { return v[i].Name < v[j].Name })
}
