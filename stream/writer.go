package stream

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"sort"
	"syscall"
	"time"

	"github.com/snapfs/snapfs/pool"
	"github.com/snapfs/snapfs/store"
)

// Source is what a stream is written from: a snapshot view of a source
// store and, for an incremental stream, an older snapshot view of the
// same dataset (the base, which the target already holds).
type Source struct {
	Store      *store.Store
	PoolID     string
	Dataset    string
	Snapshot   SnapInfo
	View       store.View
	Base       *SnapInfo
	BaseView   store.View
	ChunkSize  int64
	OnProgress func(bytes int64) // called now and then with the bytes written so far
}

// Stats sums up one stream, sent or received.
type Stats struct {
	Bytes      int64         `json:"bytes"`
	Chunks     int64         `json:"chunks"`      // chunk records carried
	ChunkBytes int64         `json:"chunk_bytes"` // their data bytes
	Files      int64         `json:"files"`       // inode records carried
	Records    int64         `json:"records"`
	Duration   time.Duration `json:"duration_ns"`
}

// Add adds o's counts to s (for -I chains).
func (s *Stats) Add(o Stats) {
	s.Bytes += o.Bytes
	s.Chunks += o.Chunks
	s.ChunkBytes += o.ChunkBytes
	s.Files += o.Files
	s.Records += o.Records
	s.Duration += o.Duration
}

// header returns the header of the stream src writes.
func (src *Source) header() *Header {
	h := &Header{Format: Version, SourcePool: src.PoolID, Dataset: src.Dataset,
		Snapshot: src.Snapshot, Base: src.Base, ChunkSize: src.ChunkSize}
	h.StreamID = streamID(h)
	return h
}

// countingWriter counts bytes and skips the first skip of them (a
// resumed stream starts at the receiver's offset).
type countingWriter struct {
	w          io.Writer
	n          int64
	skip       int64
	onProgress func(int64)
	lastReport int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	n := len(p)
	if c.skip > 0 {
		k := min(int64(len(p)), c.skip)
		c.skip -= k
		p = p[k:]
	}
	if len(p) > 0 {
		if _, err := c.w.Write(p); err != nil {
			return 0, err
		}
		c.n += int64(len(p))
		if c.onProgress != nil && c.n-c.lastReport >= 1<<20 {
			c.lastReport = c.n
			c.onProgress(c.n)
		}
	}
	return n, nil
}

// Send writes the stream of src to w.
func Send(src *Source, w io.Writer) (Stats, error) {
	return send(src, w, 0)
}

// send writes the stream of src, leaving out its first skip bytes and
// writing a resume preamble instead when skip > 0.
func send(src *Source, w io.Writer, skip int64) (Stats, error) {
	start := time.Now()
	cw := &countingWriter{w: w, skip: skip, onProgress: src.OnProgress}
	if skip > 0 {
		// A resumed stream: its own preamble and resume record, then the
		// bytes of the original stream from skip on.
		rw := newRecordWriter(w)
		rw.record(recResume, mustJSON(resumeInfo{StreamID: src.header().StreamID, Offset: skip}))
		if rw.err != nil {
			return Stats{}, fmt.Errorf("send: %w", rw.err)
		}
		cw.n = rw.bytes
	}
	// Records go out in writes of up to 1 MiB, not one write each: a
	// record is often tens of bytes, and through a pipe every write is a
	// system call that may wake the reader for those few bytes.
	bw := bufio.NewWriterSize(w, 1<<20)
	cw.w = bw
	sw := &sender{src: src, rw: newRecordWriter(cw), sent: map[pool.Hash]bool{}}
	err := sw.run()
	if ferr := bw.Flush(); err == nil && ferr != nil {
		err = ferr
	}
	st := sw.stats
	st.Bytes = cw.n
	st.Duration = time.Since(start)
	if err != nil {
		return st, fmt.Errorf("send %s@%s: %w", src.Dataset, src.Snapshot.Name, err)
	}
	if cw.skip > 0 {
		return st, fmt.Errorf("send --resume: offset %d is past the end of the stream (%d bytes): %w", skip, sw.rw.bytes, ErrStaleToken)
	}
	return st, nil
}

// sender writes the records of one stream: every inode of the snapshot,
// or, for an incremental, what changed since the base.
type sender struct {
	src   *Source
	rw    *recordWriter
	sent  map[pool.Hash]bool   // chunks carried so far
	based map[pool.Hash]bool   // chunks the base references (built on first need)
	fresh map[pool.Hash]uint64 // incremental: chunks considered, by hash (see needChunk)
	stats Stats
}

func (sw *sender) record(typ byte, payload []byte) error {
	sw.rw.record(typ, payload)
	sw.stats.Records++
	return sw.rw.err
}

// run writes the header, the records and the end record: for a full
// stream every inode (full), for an incremental only what the store's
// change iterator reports (incremental).
func (sw *sender) run() error {
	if err := sw.record(recHeader, mustJSON(sw.src.header())); err != nil {
		return err
	}
	var err error
	if sw.src.Base == nil {
		err = sw.full()
	} else {
		err = sw.incremental()
	}
	if err != nil {
		return err
	}
	return sw.rw.end()
}

// full writes every inode reachable from the root, breadth first in
// directory order (so the same snapshot gives the same bytes), each
// followed by its listing if it is a directory.
func (sw *sender) full() error {
	src := sw.src
	seen := map[uint64]bool{store.RootIno: true}
	queue := []uint64{store.RootIno}
	for len(queue) > 0 {
		ino := queue[0]
		queue = queue[1:]
		a, err := src.Store.GetAttr(src.View, ino)
		if err != nil {
			return err
		}
		if err := sw.inode(ino, a, true, nil); err != nil {
			return err
		}
		if a.Mode&syscall.S_IFMT != syscall.S_IFDIR {
			continue
		}
		entries, err := listDir(src.Store, src.View, ino)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if !seen[e.Ino] {
				seen[e.Ino] = true
				queue = append(queue, e.Ino)
			}
		}
		if err := sw.record(recDir, encodeDir(ino, entries)); err != nil {
			return err
		}
	}
	return nil
}

// change is one inode an incremental stream carries: what the change
// iterator said of it, whether the base lacks it (or has it as another
// kind of file), and for a regular file whose bytes changed, its layout
// and the positions in it of the chunks to consider sending.
type change struct {
	ic       store.InodeChange
	isNew    bool
	fl       *store.FileLayout
	consider []int
}

// alive reports whether a side of an inode change is a linked inode (an
// unlinked inode still open is in no tree the receiver holds).
func alive(a *store.Attr) bool { return a != nil && a.Nlink > 0 }

// incremental writes what changed from the base to the snapshot, as the
// store's change iterator (store.Changes, the iterator of diff) reports
// it: its cost follows the versions written between the two snapshots,
// not the volume's size.
//
//   - Every changed inode alive in the snapshot gets an I record (the
//     root always: the receiver needs one), new when the base lacks it or
//     had it as another kind of file; an X record when its xattrs changed
//     (the whole set); an L record when its bytes changed (the whole
//     layout), preceded by C records for the chunks of the changed indexes
//     that neither the stream nor the base carries (see needChunk).
//   - Every directory with a changed entry, and every new directory, gets
//     its listing; every directory of the base that is no longer a
//     directory gets an empty one, so the receiver moves its entries out of
//     the way. An inode no listing reaches is gone.
func (sw *sender) incremental() error {
	src := sw.src
	parents := map[uint64]bool{}
	var changes []*change
	rootSeen := false
	err := src.Store.Changes(src.BaseView, src.View, func(ec store.EntryChange) error {
		parents[ec.Parent] = true
		return nil
	}, func(ic store.InodeChange) error {
		if ic.Ino == store.RootIno {
			rootSeen = true
		}
		changes = append(changes, &change{ic: ic})
		return nil
	})
	if err != nil {
		return fmt.Errorf("changes since %s: %w", src.Base.Name, err)
	}
	if !rootSeen {
		a, err := src.Store.GetAttr(src.View, store.RootIno)
		if err != nil {
			return err
		}
		root := &change{ic: store.InodeChange{Ino: store.RootIno, From: &a, To: &a}}
		changes = append([]*change{root}, changes...)
	}
	// First the chunks to consider, counted by hash: the versions they
	// are were written after the base, so the base sees none of them.
	sw.fresh = map[pool.Hash]uint64{}
	var dirs, gone []uint64
	for _, c := range changes {
		from, to := c.ic.From, c.ic.To
		fromAlive, toAlive := alive(from), alive(to)
		if fromAlive && from.Mode&syscall.S_IFMT == syscall.S_IFDIR &&
			(!toAlive || to.Mode&syscall.S_IFMT != syscall.S_IFDIR) {
			gone = append(gone, c.ic.Ino)
		}
		if !toAlive {
			continue
		}
		typ := to.Mode & syscall.S_IFMT
		c.isNew = !fromAlive || from.Mode&syscall.S_IFMT != typ
		if typ == syscall.S_IFDIR && (c.isNew || parents[c.ic.Ino]) {
			dirs = append(dirs, c.ic.Ino)
		}
		if typ != syscall.S_IFREG || !c.isNew && !c.ic.Data {
			continue
		}
		fl, err := src.Store.FileLayout(src.View, c.ic.Ino)
		if err != nil {
			return err
		}
		c.fl = &fl
		changed := map[uint64]bool{}
		for _, idx := range c.ic.Chunks {
			changed[idx] = true
		}
		all := c.isNew || c.ic.AllChunks
		for i, ch := range fl.Chunks {
			if all || changed[ch.Index] {
				c.consider = append(c.consider, i)
				sw.fresh[ch.Hash]++
			}
		}
	}
	// Directories the iterator named as parents but that are gone are in
	// gone, not dirs: a listing is only of a directory the snapshot has.
	for _, c := range changes {
		if !alive(c.ic.To) {
			continue
		}
		if err := sw.inode(c.ic.Ino, *c.ic.To, c.isNew, c); err != nil {
			return err
		}
	}
	sort.Slice(dirs, func(i, j int) bool { return dirs[i] < dirs[j] })
	for _, ino := range dirs {
		entries, err := listDir(src.Store, src.View, ino)
		if err != nil {
			return err
		}
		if err := sw.record(recDir, encodeDir(ino, entries)); err != nil {
			return err
		}
	}
	for _, ino := range gone {
		if err := sw.record(recDir, encodeDir(ino, nil)); err != nil {
			return err
		}
	}
	return nil
}

// inode writes the I, X and L records of ino: all of them for a full
// stream (c nil); for an incremental, the I record, and the X and L
// records as far as c says they changed.
func (sw *sender) inode(ino uint64, a store.Attr, isNew bool, c *change) error {
	src := sw.src
	rec := inodeRecord{Ino: ino, New: isNew, Mode: a.Mode, Uid: a.Uid, Gid: a.Gid, Rdev: a.Rdev,
		Size: a.Size, Atime: a.Atime, Mtime: a.Mtime, Ctime: a.Ctime}
	typ := a.Mode & syscall.S_IFMT
	if typ == syscall.S_IFLNK {
		t, err := src.Store.Readlink(src.View, ino)
		if err != nil {
			return err
		}
		rec.Target = t
	}
	if err := sw.record(recInode, rec.encode()); err != nil {
		return err
	}
	sw.stats.Files++
	if isNew || len(c.ic.Xattrs) > 0 {
		xs, err := listXattrs(src.Store, src.View, ino)
		if err != nil {
			return err
		}
		if len(xs) > 0 || !isNew {
			if err := sw.record(recXattrs, encodeXattrs(ino, xs)); err != nil {
				return err
			}
		}
	}
	if typ != syscall.S_IFREG {
		return nil
	}
	if c == nil {
		fl, err := src.Store.FileLayout(src.View, ino)
		if err != nil {
			return err
		}
		all := make([]int, len(fl.Chunks))
		for i := range all {
			all[i] = i
		}
		return sw.layout(ino, fl, all, true)
	}
	if c.fl == nil {
		return nil // its bytes did not change
	}
	return sw.layout(ino, *c.fl, c.consider, isNew)
}

// layout writes the chunks at positions consider of fl that the receiver
// cannot have (needChunk), then the L record. Chunks at other positions
// are the base's own chunks of the same file (isNew: the base has no
// such file).
func (sw *sender) layout(ino uint64, fl store.FileLayout, consider []int, isNew bool) error {
	lr := layoutRecord{Ino: ino, Size: fl.Size, ChunkSize: fl.ChunkSize, Inline: fl.Inline, Data: fl.Data}
	for _, c := range fl.Chunks {
		lr.Chunks = append(lr.Chunks, layoutEntry{Index: c.Index, Hash: c.Hash, Length: c.Length})
	}
	var own map[pool.Hash]bool // the hashes of the base's version of ino, read on first need
	if isNew {
		own = map[pool.Hash]bool{}
	}
	for _, i := range consider {
		c := fl.Chunks[i]
		need, err := sw.needChunk(ino, c.Hash, &own)
		if err != nil {
			return err
		}
		if !need {
			continue
		}
		data, err := sw.src.Store.ReadChunk(c.Hash)
		if err != nil {
			return fmt.Errorf("inode %d chunk %d: %w", ino, c.Index, err)
		}
		payload := make([]byte, 0, 32+len(data))
		payload = append(append(payload, c.Hash[:]...), data...)
		if err := sw.record(recChunk, payload); err != nil {
			return err
		}
		sw.sent[c.Hash] = true
		sw.stats.Chunks++
		sw.stats.ChunkBytes += int64(len(data))
	}
	return sw.record(recLayout, lr.encode())
}

// needChunk reports whether chunk h of inode ino must travel in the
// stream: not when the stream carried it already, nor when the base
// references it (the target then holds it: a copied or renamed file
// sends no data). For a full stream that is the first rule alone. For an
// incremental, in order of cost:
//
//  1. The store's reference count of h (Store.ChunkRefs): every chunk this
//     stream considers is a version written after the base (the change
//     iterator says so), counted in sw.fresh by hash. A count no greater
//     than that leaves no version for the base to reference: send it. This
//     decides the common case, new bytes, with one point read.
//  2. The base's version of the same file (*own, read once per file;
//     empty for a file new in the snapshot).
//  3. baseHas: every chunk of the base, collected by one walk of the
//     base the first time the first two rules leave a chunk undecided (a
//     copy of a file, or bytes the volume holds elsewhere too).
//
// Only rules 2 and 3 ever leave a chunk out, and both are exact; rule 1
// can only decide to send, so a count that moved under concurrent writes
// or destroys costs bytes at worst, and a chunk the base does not hold is
// never left out.
func (sw *sender) needChunk(ino uint64, h pool.Hash, own *map[pool.Hash]bool) (bool, error) {
	if sw.sent[h] {
		return false, nil
	}
	src := sw.src
	if src.Base == nil {
		return true, nil
	}
	refs, err := src.Store.ChunkRefs(h)
	if err != nil {
		return false, fmt.Errorf("inode %d: references of chunk %x: %w", ino, h[:8], err)
	}
	if refs <= sw.fresh[h] {
		return true, nil
	}
	if *own == nil {
		*own = map[pool.Hash]bool{}
		bl, err := src.Store.FileLayout(src.BaseView, ino)
		if err != nil {
			return false, fmt.Errorf("inode %d in the base: %w", ino, err)
		}
		for _, c := range bl.Chunks {
			(*own)[c.Hash] = true
		}
	}
	if (*own)[h] {
		return false, nil
	}
	inBase, err := sw.baseHas(h)
	return !inBase, err
}

// baseHas reports whether the base snapshot references chunk h: its set
// of hashes is built by one walk of the base the first time a changed
// file has a chunk its own base version lacks (a copied or renamed file's
// data is then found and not sent).
func (sw *sender) baseHas(h pool.Hash) (bool, error) {
	if sw.src.Base == nil {
		return false, nil
	}
	if sw.based == nil {
		set := map[pool.Hash]bool{}
		err := walkTree(sw.src.Store, sw.src.BaseView, func(ino uint64, a store.Attr) error {
			if a.Mode&syscall.S_IFMT != syscall.S_IFREG {
				return nil
			}
			fl, err := sw.src.Store.FileLayout(sw.src.BaseView, ino)
			if err != nil {
				return err
			}
			for _, c := range fl.Chunks {
				set[c.Hash] = true
			}
			return nil
		})
		if err != nil {
			return false, fmt.Errorf("chunks of the base: %w", err)
		}
		sw.based = set
	}
	return sw.based[h], nil
}

func sameXattrs(a, b []xattr) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].Name != b[i].Name || !bytes.Equal(a[i].Value, b[i].Value) {
			return false
		}
	}
	return true
}

// listDir returns the entries of directory ino in view v, in the store's
// directory order.
func listDir(st *store.Store, v store.View, ino uint64) ([]dirEntry, error) {
	var out []dirEntry
	err := st.ReadDir(v, ino, 0, func(e store.DirEntry) bool {
		out = append(out, dirEntry{Name: e.Name, Ino: e.Ino})
		return true
	})
	return out, err
}

// listXattrs returns every xattr of ino in view v, sorted by name.
func listXattrs(st *store.Store, v store.View, ino uint64) ([]xattr, error) {
	names, err := st.ListXattr(v, ino)
	if err != nil {
		return nil, err
	}
	xs := make([]xattr, 0, len(names))
	for _, n := range names {
		val, err := st.GetXattr(v, ino, n)
		if err != nil {
			return nil, err
		}
		xs = append(xs, xattr{Name: n, Value: val})
	}
	return xs, nil
}

// walkTree calls fn once for every inode of view v, breadth first.
func walkTree(st *store.Store, v store.View, fn func(ino uint64, a store.Attr) error) error {
	seen := map[uint64]bool{store.RootIno: true}
	queue := []uint64{store.RootIno}
	for len(queue) > 0 {
		ino := queue[0]
		queue = queue[1:]
		a, err := st.GetAttr(v, ino)
		if err != nil {
			return err
		}
		if err := fn(ino, a); err != nil {
			return err
		}
		if a.Mode&syscall.S_IFMT != syscall.S_IFDIR {
			continue
		}
		es, err := listDir(st, v, ino)
		if err != nil {
			return err
		}
		for _, e := range es {
			if !seen[e.Ino] {
				seen[e.Ino] = true
				queue = append(queue, e.Ino)
			}
		}
	}
	return nil
}
