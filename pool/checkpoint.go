package pool

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/snapfs/snapfs/objstore"
)

// Metadata checkpoints on members (DESIGN-NOTES 8).
//
//	MEMBER/meta-checkpoints/<seq>/          one complete checkpoint: the files of a
//	                                        Pebble checkpoint and checkpoint.json
//	MEMBER/meta-checkpoints/.tmp-<seq>/     one being written
//
// A checkpoint is written under the temporary name, every file fsynced,
// checkpoint.json written last, the directory fsynced, then renamed to
// <seq> and the parent fsynced: a directory named by a number is complete.
// Sstables (immutable) that the member's previous checkpoint holds with
// the same name and size are hard-linked from it instead of copied, so a
// ship copies only what changed. After the rename the member keeps only
// the new checkpoint.
const (
	checkpointsDir = "meta-checkpoints"
	checkpointFile = "checkpoint.json"
	checkpointTmp  = ".tmp-"
)

// CheckpointInfo describes a shipped metadata checkpoint: checkpoint.json.
type CheckpointInfo struct {
	// Seq orders checkpoints: a later checkpoint has a larger Seq.
	Seq uint64 `json:"seq"`
	// FreeMark is the free-queue sequence the store had settled when the
	// checkpoint was taken: every free-queue entry at or below it is in
	// the checkpoint (so its records may be punched once the checkpoint
	// is shipped), any entry above it may not be.
	FreeMark    uint64           `json:"free_mark"`
	Taken       time.Time        `json:"taken"`
	Reason      string           `json:"reason"` // e.g. "after snapshot vol@s3", "periodic", "at close"
	PoolID      string           `json:"pool_id"`
	Incarnation uint64           `json:"incarnation"`
	Files       []CheckpointFile `json:"files"`
	// Replicas are the asynchronous replicas that held every chunk
	// before the checkpoint was taken (CompleteReplicas): only they are
	// sent it (asyncrep.go). Not part of checkpoint.json.
	Replicas []uint16 `json:"-"`
}

// CheckpointFile is one file of a checkpoint.
type CheckpointFile struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// ShippedCheckpoint is a complete checkpoint found on a member.
type ShippedCheckpoint struct {
	Info   CheckpointInfo
	Member string // member directory (an object-store member's URL)
	Dir    string // the checkpoint's directory (or URL)
	// store holds the checkpoint when it is on an object-store member
	// (objcheckpoint.go); nil for a directory.
	store objstore.Store
}

// ShipResult says where a checkpoint went.
type ShipResult struct {
	Targets []uint16 // members chosen (distinct failure domains)
	Shipped []uint16 // members that hold it now
	Copied  int64    // bytes copied
	Linked  int64    // bytes hard-linked from a member's previous checkpoint
	// Complete is true when every target holds it: only then may the
	// store punch records freed before it.
	Complete bool
}

// linker is an FS that can hard-link files (OSFS).
type linker interface {
	Link(oldname, newname string) error
}

// Link makes newname a hard link of oldname.
func (OSFS) Link(oldname, newname string) error { return os.Link(oldname, newname) }

// CheckpointTargets returns the members that receive metadata checkpoints:
// max(1, copies) live, writable members in distinct failure domains, by
// index (the same ones each time while the membership holds, so a ship
// links the unchanged sstables of the previous one).
func (p *Pool) CheckpointTargets() []uint16 {
	want := max(1, p.Config().Copies)
	domains := map[string]bool{}
	var out []uint16
	for _, m := range p.ms() {
		if len(out) == want {
			break
		}
		if m.gone != nil || m.draining.Load() || domains[m.cfg.Domain] || m.cfg.Async {
			continue // a member being evacuated is about to go; a replica gets it later (asyncrep.go)
		}
		m.mu.Lock()
		failed := m.failed
		m.mu.Unlock()
		if failed != nil {
			continue
		}
		domains[m.cfg.Domain] = true
		out = append(out, m.idx)
	}
	return out
}

// ShipCheckpoint writes a checkpoint to every target member: the files
// info.Files, read through open, then checkpoint.json. A member that fails
// is reported in the error and left without the new checkpoint (its
// previous one stays). When every target has it, the checkpoints other
// live members still hold from earlier are removed (they are older than
// what the store may punch from then on).
func (p *Pool) ShipCheckpoint(info CheckpointInfo, open func(name string) (io.ReadCloser, error)) (ShipResult, error) {
	var res ShipResult
	if err := p.writable(); err != nil {
		return res, err
	}
	info.PoolID = p.cfg.ID
	info.Incarnation = p.cfg.Incarnation
	res.Targets = p.CheckpointTargets()
	if len(res.Targets) == 0 {
		return res, fmt.Errorf("pool: ship checkpoint: no writable member: %w", ErrMemberGone)
	}
	var errs []error
	for _, i := range res.Targets {
		m := p.ms()[i]
		var copied, linked int64
		var err error
		if m.obj != nil {
			copied, linked, err = shipToObject(m.obj, info, open)
		} else {
			copied, linked, err = shipTo(p.fs, m.cfg.Path, info, open)
		}
		res.Copied += copied
		res.Linked += linked
		if err != nil {
			errs = append(errs, fmt.Errorf("pool: ship checkpoint %d to member %d (%s): %w", info.Seq, i, m.cfg.Path, err))
			continue
		}
		res.Shipped = append(res.Shipped, i)
	}
	res.Complete = len(errs) == 0
	p.stageCheckpoints(info, open) // for the asynchronous replicas, shipped in the background
	if res.Complete {
		for _, m := range p.ms() {
			if m.gone == nil && m.obj == nil && !contains(res.Targets, m.idx) {
				pruneCheckpoints(p.fs, m.cfg.Path, info.Seq)
			}
		}
	}
	return res, errors.Join(errs...)
}

func contains(s []uint16, v uint16) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// shipTo writes one checkpoint into member directory mdir.
func shipTo(fsys FS, mdir string, info CheckpointInfo, open func(string) (io.ReadCloser, error)) (copied, linked int64, err error) {
	root := filepath.Join(mdir, checkpointsDir)
	name := strconv.FormatUint(info.Seq, 10)
	tmp := filepath.Join(root, checkpointTmp+name)
	final := filepath.Join(root, name)
	if _, err := fsys.Stat(final); err == nil {
		return 0, 0, fmt.Errorf("%s: %w", final, ErrExists)
	}
	prev, _ := newestOn(fsys, mdir)
	if err := removeTree(fsys, tmp); err != nil {
		return 0, 0, err
	}
	if err := fsys.MkdirAll(tmp, 0o755); err != nil {
		return 0, 0, err
	}
	if err := fsys.SyncDir(root); err != nil {
		return 0, 0, err
	}
	prevSizes := map[string]int64{}
	if prev != nil {
		for _, f := range prev.Info.Files {
			prevSizes[f.Name] = f.Size
		}
	}
	for _, f := range info.Files {
		if strings.ContainsRune(f.Name, '/') || f.Name == checkpointFile {
			removeTree(fsys, tmp)
			return copied, linked, fmt.Errorf("checkpoint file name %q: %w", f.Name, ErrCorrupt)
		}
		dst := filepath.Join(tmp, f.Name)
		if l, ok := fsys.(linker); ok && prev != nil && immutableFile(f.Name) && prevSizes[f.Name] == f.Size {
			if l.Link(filepath.Join(prev.Dir, f.Name), dst) == nil {
				linked += f.Size
				continue
			}
		}
		n, err := copyIn(fsys, dst, f, open)
		copied += n
		if err != nil {
			removeTree(fsys, tmp)
			return copied, linked, err
		}
	}
	b, _ := json.MarshalIndent(info, "", "  ")
	if err := writeFileAtomic(fsys, filepath.Join(tmp, checkpointFile), append(b, '\n'), true); err != nil {
		removeTree(fsys, tmp)
		return copied, linked, err
	}
	if err := fsys.Rename(tmp, final); err != nil {
		removeTree(fsys, tmp)
		return copied, linked, err
	}
	if err := fsys.SyncDir(root); err != nil {
		return copied, linked, err
	}
	pruneCheckpoints(fsys, mdir, info.Seq)
	return copied, linked, nil
}

// immutableFile reports whether a Pebble file never changes once written
// (sstables and blob files), so an equal-sized one of the same name in an
// earlier checkpoint is the same file.
func immutableFile(name string) bool {
	return strings.HasSuffix(name, ".sst") || strings.HasSuffix(name, ".blob")
}

// copyIn copies one checkpoint file into dst and fsyncs it.
func copyIn(fsys FS, dst string, f CheckpointFile, open func(string) (io.ReadCloser, error)) (int64, error) {
	src, err := open(f.Name)
	if err != nil {
		return 0, fmt.Errorf("read %s: %w", f.Name, err)
	}
	defer src.Close()
	out, err := fsys.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return 0, err
	}
	n, err := copyAt(out, src, f.Size)
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return n, fmt.Errorf("write %s: %w", dst, err)
	}
	return n, nil
}

// copyAt copies exactly size bytes from r to w at offset 0.
func copyAt(w io.WriterAt, r io.Reader, size int64) (int64, error) {
	buf := make([]byte, 1<<20)
	var off int64
	for off < size {
		n, err := r.Read(buf[:min(int64(len(buf)), size-off)])
		if n > 0 {
			if _, werr := w.WriteAt(buf[:n], off); werr != nil {
				return off, werr
			}
			off += int64(n)
		}
		if errors.Is(err, io.EOF) && off < size {
			return off, fmt.Errorf("short file: %d of %d bytes: %w", off, size, io.ErrUnexpectedEOF)
		}
		if err != nil && !errors.Is(err, io.EOF) {
			return off, err
		}
	}
	return off, nil
}

// pruneCheckpoints removes every checkpoint on member mdir older than
// keep, and every unfinished one. Errors are ignored: what stays is
// removed by the next ship.
func pruneCheckpoints(fsys FS, mdir string, keep uint64) {
	root := filepath.Join(mdir, checkpointsDir)
	ents, err := fsys.ReadDir(root)
	if err != nil {
		return
	}
	changed := false
	for _, e := range ents {
		n, err := strconv.ParseUint(e.Name(), 10, 64)
		if strings.HasPrefix(e.Name(), checkpointTmp) || (err == nil && n < keep) {
			if removeTree(fsys, filepath.Join(root, e.Name())) == nil {
				changed = true
			}
		}
	}
	if changed {
		fsys.SyncDir(root)
	}
}

// removeTree removes a directory of files (one level) or a file; a
// missing one is no error.
func removeTree(fsys FS, p string) error {
	ents, err := fsys.ReadDir(p)
	if err == nil {
		for _, e := range ents {
			if err := removeTree(fsys, filepath.Join(p, e.Name())); err != nil {
				return err
			}
		}
	}
	if err := fsys.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// Checkpoints lists the complete checkpoints on member directory mdir,
// oldest first. A member without any has none (no error).
func Checkpoints(fsys FS, mdir string) ([]ShippedCheckpoint, error) {
	if fsys == nil {
		fsys = OSFS{}
	}
	root := filepath.Join(mdir, checkpointsDir)
	ents, err := fsys.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("pool: list checkpoints of %s: %w", mdir, err)
	}
	var out []ShippedCheckpoint
	for _, e := range ents {
		seq, err := strconv.ParseUint(e.Name(), 10, 64)
		if err != nil || !e.IsDir() {
			continue
		}
		dir := filepath.Join(root, e.Name())
		b, err := readFile(fsys, filepath.Join(dir, checkpointFile))
		if err != nil {
			continue // not ours, or damaged: never restored from
		}
		var info CheckpointInfo
		if json.Unmarshal(b, &info) != nil || info.Seq != seq {
			continue
		}
		out = append(out, ShippedCheckpoint{Info: info, Member: mdir, Dir: dir})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Info.Seq < out[j].Info.Seq })
	return out, nil
}

// newestOn returns the newest complete checkpoint on mdir, nil if none.
func newestOn(fsys FS, mdir string) (*ShippedCheckpoint, error) {
	cs, err := Checkpoints(fsys, mdir)
	if err != nil || len(cs) == 0 {
		return nil, err
	}
	return &cs[len(cs)-1], nil
}

// NewestCheckpoint returns the newest complete checkpoint on any live
// member of the open pool, or nil.
func (p *Pool) NewestCheckpoint() (*ShippedCheckpoint, error) {
	var best *ShippedCheckpoint
	for _, m := range p.ms() {
		if m.gone != nil {
			continue
		}
		var c *ShippedCheckpoint
		var err error
		if m.obj != nil {
			var cs []ShippedCheckpoint
			if cs, _, err = objectCheckpoints(m.obj, m.cfg.Path); len(cs) > 0 {
				c = &cs[len(cs)-1]
			}
		} else {
			c, err = newestOn(p.fs, m.cfg.Path)
		}
		if err != nil {
			return nil, err
		}
		if c != nil && (best == nil || c.Info.Seq > best.Info.Seq) {
			best = c
		}
	}
	return best, nil
}

// verifyCheckpoint checks that every file of c is present with its size.
func verifyCheckpoint(fsys FS, c ShippedCheckpoint) error {
	if c.store != nil {
		return nil // objectCheckpoints listed only complete ones
	}
	for _, f := range c.Info.Files {
		fi, err := fsys.Stat(filepath.Join(c.Dir, f.Name))
		if err != nil {
			return fmt.Errorf("checkpoint %s: %w", c.Dir, err)
		}
		if fi.Size() != f.Size {
			return fmt.Errorf("checkpoint %s: %s has %d bytes, want %d: %w", c.Dir, f.Name, fi.Size(), f.Size, ErrCorrupt)
		}
	}
	return nil
}

// restoreCheckpoint copies checkpoint c into metaDir, which must not
// exist (or be empty): into a temporary sibling, fsynced, then renamed.
func restoreCheckpoint(fsys FS, c ShippedCheckpoint, metaDir string) error {
	if c.store != nil {
		return restoreObjectCheckpoint(fsys, c, metaDir)
	}
	if err := verifyCheckpoint(fsys, c); err != nil {
		return err
	}
	tmp := metaDir + ".import-tmp"
	if err := removeTree(fsys, tmp); err != nil {
		return err
	}
	if err := fsys.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	for _, f := range c.Info.Files {
		open := func(name string) (io.ReadCloser, error) {
			return openReader(fsys, filepath.Join(c.Dir, name))
		}
		if _, err := copyIn(fsys, filepath.Join(tmp, f.Name), f, open); err != nil {
			removeTree(fsys, tmp)
			return err
		}
	}
	return finishRestore(fsys, tmp, metaDir)
}

// finishRestore makes the restored copy in tmp durable and renames it to
// metaDir (which must be missing or empty).
func finishRestore(fsys FS, tmp, metaDir string) error {
	if err := fsys.SyncDir(tmp); err != nil {
		return err
	}
	if err := fsys.Remove(metaDir); err != nil && !errors.Is(err, fs.ErrNotExist) {
		removeTree(fsys, tmp)
		return err // not empty: never replaced
	}
	if err := fsys.Rename(tmp, metaDir); err != nil {
		removeTree(fsys, tmp)
		return err
	}
	return fsys.SyncDir(filepath.Dir(metaDir))
}

// openReader opens a file of fsys as a sequential reader.
func openReader(fsys FS, name string) (io.ReadCloser, error) {
	f, err := fsys.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	return &fileReader{f: f}, nil
}

type fileReader struct {
	f   File
	off int64
}

func (r *fileReader) Read(b []byte) (int, error) {
	n, err := r.f.ReadAt(b, r.off)
	r.off += int64(n)
	if n > 0 && errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}

func (r *fileReader) Close() error { return r.f.Close() }
