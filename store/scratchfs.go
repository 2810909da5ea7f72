package store

import (
	"path/filepath"
	"strings"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// scratchFS is the file system Pebble opens meta/ with: the metadata's
// own file system, except that a sync of a file or directory under
// scratch (the local checkpoint copy, POOL/meta-checkpoint.tmp) does
// nothing.
//
// The local copy only exists so that a checkpoint is a consistent set of
// files while the pool ships it (pool.ShipCheckpoint reads it, writes each
// file to the members and syncs it there, then the copy is removed). A
// crash before the ship completes leaves a copy that the next checkpoint
// removes unread, so its durability is worth nothing, while Pebble's
// Checkpoint syncs every file it copies and the directory after each
// marker: nine fsyncs per checkpoint on the critical path of every
// command that closes a pool after a change (a CLI receive, a snapshot),
// and of every snapshot's checkpoint in the daemon. What is durable
// after a checkpoint is exactly what the members' copies are.
type scratchFS struct {
	vfs.FS
	scratch string
}

// newScratchFS wraps fs (vfs.Default when nil) so that syncs under
// scratch are skipped.
func newScratchFS(fs vfs.FS, scratch string) vfs.FS {
	if fs == nil {
		fs = vfs.Default
	}
	return scratchFS{FS: fs, scratch: filepath.Clean(scratch)}
}

// under says whether name is the scratch directory or inside it.
func (f scratchFS) under(name string) bool {
	name = filepath.Clean(name)
	return name == f.scratch || strings.HasPrefix(name, f.scratch+string(filepath.Separator))
}

func (f scratchFS) wrap(file vfs.File, name string, err error) (vfs.File, error) {
	if err != nil || !f.under(name) {
		return file, err
	}
	return unsyncedFile{file}, nil
}

func (f scratchFS) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	file, err := f.FS.Create(name, c)
	return f.wrap(file, name, err)
}

func (f scratchFS) OpenReadWrite(name string, c vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	file, err := f.FS.OpenReadWrite(name, c, opts...)
	return f.wrap(file, name, err)
}

func (f scratchFS) OpenDir(name string) (vfs.File, error) {
	file, err := f.FS.OpenDir(name)
	return f.wrap(file, name, err)
}

func (f scratchFS) ReuseForWrite(oldname, newname string, c vfs.DiskWriteCategory) (vfs.File, error) {
	file, err := f.FS.ReuseForWrite(oldname, newname, c)
	return f.wrap(file, newname, err)
}

func (f scratchFS) Unwrap() vfs.FS { return f.FS }

// unsyncedFile is a file of the local checkpoint copy: its syncs are
// skipped (see scratchFS).
type unsyncedFile struct{ vfs.File }

func (unsyncedFile) Sync() error                       { return nil }
func (unsyncedFile) SyncData() error                   { return nil }
func (unsyncedFile) SyncTo(length int64) (bool, error) { return true, nil }
