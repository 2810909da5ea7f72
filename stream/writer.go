package stream

import (
	"bytes"
	"errors"
	"fmt"
	"io"
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
	sw := &sender{src: src, rw: newRecordWriter(cw), sent: map[pool.Hash]bool{}}
	err := sw.run()
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

// sender walks the snapshot (and the base) and writes the records.
type sender struct {
	src   *Source
	rw    *recordWriter
	sent  map[pool.Hash]bool // chunks carried so far
	based map[pool.Hash]bool // chunks the base references (built on first need)
	stats Stats
}

func (sw *sender) record(typ byte, payload []byte) error {
	sw.rw.record(typ, payload)
	sw.stats.Records++
	return sw.rw.err
}

// run writes the header, every changed inode (breadth first from the
// root, in directory order, so the same snapshots give the same bytes)
// and the end record.
//
// An incremental stream finds what changed by visiting every inode of the
// snapshot and comparing it with the same inode in the base. The epoch
// based change iterator (store/diff.go, issue 13 part 1) would replace
// this walk: it yields the inodes with versions born between the two
// epochs, and a directory listing only when its entries changed.
func (sw *sender) run() error {
	src := sw.src
	if err := sw.record(recHeader, mustJSON(src.header())); err != nil {
		return err
	}
	seen := map[uint64]bool{store.RootIno: true}
	queue := []uint64{store.RootIno}
	for len(queue) > 0 {
		ino := queue[0]
		queue = queue[1:]
		a, err := src.Store.GetAttr(src.View, ino)
		if err != nil {
			return err
		}
		var ba *store.Attr
		if src.Base != nil {
			b, err := src.Store.GetAttr(src.BaseView, ino)
			switch {
			case err == nil && b.Mode&syscall.S_IFMT == a.Mode&syscall.S_IFMT:
				ba = &b
			case err != nil && !errors.Is(err, store.ErrNotFound):
				return err
			}
		}
		if err := sw.inode(ino, a, ba); err != nil {
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
		if ba != nil && ino != store.RootIno && sameAttr(a, *ba) {
			continue // its entries changed its ctime if they changed
		}
		if err := sw.dir(ino, entries, ba); err != nil {
			return err
		}
	}
	return sw.rw.end()
}

// inode writes the I, X and L records of ino, as far as they differ from
// the base's (ba nil: new).
func (sw *sender) inode(ino uint64, a store.Attr, ba *store.Attr) error {
	src := sw.src
	rec := inodeRecord{Ino: ino, New: ba == nil, Mode: a.Mode, Uid: a.Uid, Gid: a.Gid, Rdev: a.Rdev,
		Size: a.Size, Atime: a.Atime, Mtime: a.Mtime, Ctime: a.Ctime}
	typ := a.Mode & syscall.S_IFMT
	if typ == syscall.S_IFLNK {
		t, err := src.Store.Readlink(src.View, ino)
		if err != nil {
			return err
		}
		rec.Target = t
	}
	changed := ba == nil || ino == store.RootIno || !sameAttr(a, *ba)
	if !changed && typ == syscall.S_IFLNK {
		bt, err := src.Store.Readlink(src.BaseView, ino)
		if err != nil {
			return err
		}
		changed = bt != rec.Target
	}
	if changed {
		if err := sw.record(recInode, rec.encode()); err != nil {
			return err
		}
		sw.stats.Files++
	}
	if ba != nil && !changed {
		// Every change to an inode (xattrs, bytes, entries) sets its
		// ctime, which the comparison includes: nothing else to compare.
		return nil
	}
	xs, err := listXattrs(src.Store, src.View, ino)
	if err != nil {
		return err
	}
	if ba == nil {
		if len(xs) > 0 {
			if err := sw.record(recXattrs, encodeXattrs(ino, xs)); err != nil {
				return err
			}
		}
	} else {
		bxs, err := listXattrs(src.Store, src.BaseView, ino)
		if err != nil {
			return err
		}
		if !sameXattrs(xs, bxs) {
			if err := sw.record(recXattrs, encodeXattrs(ino, xs)); err != nil {
				return err
			}
		}
	}
	if typ != syscall.S_IFREG {
		return nil
	}
	fl, err := src.Store.FileLayout(src.View, ino)
	if err != nil {
		return err
	}
	var bl *store.FileLayout
	if ba != nil {
		b, err := src.Store.FileLayout(src.BaseView, ino)
		if err != nil {
			return err
		}
		if sameLayout(fl, b) {
			return nil
		}
		bl = &b
	}
	return sw.layout(ino, fl, bl)
}

// layout writes the chunks of fl that neither this stream nor the base
// carries, then the L record.
func (sw *sender) layout(ino uint64, fl store.FileLayout, bl *store.FileLayout) error {
	lr := layoutRecord{Ino: ino, Size: fl.Size, ChunkSize: fl.ChunkSize, Inline: fl.Inline, Data: fl.Data}
	own := map[pool.Hash]bool{}
	if bl != nil {
		for _, c := range bl.Chunks {
			own[c.Hash] = true
		}
	}
	for _, c := range fl.Chunks {
		lr.Chunks = append(lr.Chunks, layoutEntry{Index: c.Index, Hash: c.Hash, Length: c.Length})
		if sw.sent[c.Hash] || own[c.Hash] {
			continue
		}
		inBase, err := sw.baseHas(c.Hash)
		if err != nil {
			return err
		}
		if inBase {
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

// dir writes the D record of directory ino when its listing differs from
// the base's, and an empty D record for every base directory below it
// that is gone, so the receiver moves their entries out of the way.
func (sw *sender) dir(ino uint64, entries []dirEntry, ba *store.Attr) error {
	if ba == nil {
		return sw.record(recDir, encodeDir(ino, entries))
	}
	bentries, err := listDir(sw.src.Store, sw.src.BaseView, ino)
	if err != nil {
		return err
	}
	if sameEntries(entries, bentries) {
		return nil
	}
	if err := sw.record(recDir, encodeDir(ino, entries)); err != nil {
		return err
	}
	now := map[uint64]bool{}
	for _, e := range entries {
		now[e.Ino] = true
	}
	for _, e := range bentries {
		if !now[e.Ino] {
			if err := sw.goneDirs(e.Ino); err != nil {
				return err
			}
		}
	}
	return nil
}

// goneDirs writes empty D records for base directory ino and the base
// directories below it, if ino is a directory the snapshot no longer has.
func (sw *sender) goneDirs(ino uint64) error {
	src := sw.src
	ba, err := src.Store.GetAttr(src.BaseView, ino)
	if err != nil || ba.Mode&syscall.S_IFMT != syscall.S_IFDIR {
		return err
	}
	if a, err := src.Store.GetAttr(src.View, ino); err == nil && a.Mode&syscall.S_IFMT == syscall.S_IFDIR {
		return nil // moved, not gone: compared where the walk finds it
	} else if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err := sw.record(recDir, encodeDir(ino, nil)); err != nil {
		return err
	}
	bentries, err := listDir(src.Store, src.BaseView, ino)
	if err != nil {
		return err
	}
	for _, e := range bentries {
		if err := sw.goneDirs(e.Ino); err != nil {
			return err
		}
	}
	return nil
}

func sameAttr(a, b store.Attr) bool {
	return a.Mode == b.Mode && a.Uid == b.Uid && a.Gid == b.Gid && a.Rdev == b.Rdev && a.Size == b.Size &&
		a.Nlink == b.Nlink && a.Atime == b.Atime && a.Mtime == b.Mtime && a.Ctime == b.Ctime
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

func sameEntries(a, b []dirEntry) bool {
	if len(a) != len(b) {
		return false
	}
	m := make(map[string]uint64, len(b))
	for _, e := range b {
		m[e.Name] = e.Ino
	}
	for _, e := range a {
		if ino, ok := m[e.Name]; !ok || ino != e.Ino {
			return false
		}
	}
	return true
}

func sameLayout(a, b store.FileLayout) bool {
	if a.Size != b.Size || a.Inline != b.Inline || a.ChunkSize != b.ChunkSize || !bytes.Equal(a.Data, b.Data) || len(a.Chunks) != len(b.Chunks) {
		return false
	}
	for i := range a.Chunks {
		if a.Chunks[i] != b.Chunks[i] {
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
