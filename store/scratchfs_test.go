package store

import (
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/snapfs/snapfs/pool/pooltest"
)

// syncLog is a file system that records the name of every file or
// directory synced through it.
type syncLog struct {
	vfs.FS
	mu     sync.Mutex
	synced []string
}

func (l *syncLog) note(name string) {
	l.mu.Lock()
	l.synced = append(l.synced, name)
	l.mu.Unlock()
}

func (l *syncLog) names() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.synced...)
}

func (l *syncLog) wrap(f vfs.File, name string, err error) (vfs.File, error) {
	if err != nil {
		return f, err
	}
	return &loggedFile{File: f, name: name, log: l}, nil
}

func (l *syncLog) Create(name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := l.FS.Create(name, c)
	return l.wrap(f, name, err)
}

func (l *syncLog) OpenReadWrite(name string, c vfs.DiskWriteCategory, o ...vfs.OpenOption) (vfs.File, error) {
	f, err := l.FS.OpenReadWrite(name, c, o...)
	return l.wrap(f, name, err)
}

func (l *syncLog) OpenDir(name string) (vfs.File, error) {
	f, err := l.FS.OpenDir(name)
	return l.wrap(f, name, err)
}

func (l *syncLog) ReuseForWrite(old, name string, c vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := l.FS.ReuseForWrite(old, name, c)
	return l.wrap(f, name, err)
}

type loggedFile struct {
	vfs.File
	name string
	log  *syncLog
}

func (f *loggedFile) Sync() error     { f.log.note(f.name); return f.File.Sync() }
func (f *loggedFile) SyncData() error { f.log.note(f.name); return f.File.SyncData() }
func (f *loggedFile) SyncTo(n int64) (bool, error) {
	f.log.note(f.name)
	return f.File.SyncTo(n)
}

// TestCheckpointLocalCopyUnsynced: a checkpoint syncs nothing of its local
// copy (POOL/meta-checkpoint.tmp, read by the ship and removed after it),
// while the metadata's own files are still synced; the shipped
// checkpoint holds what was committed before it.
func TestCheckpointLocalCopyUnsynced(t *testing.T) {
	p := pooltest.New(t, 1)
	log := &syncLog{FS: vfs.Default}
	s, err := Open(p, Options{CheckpointInterval: -1, PebbleFS: log})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.CreateVolume("vol", VolumeOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := s.UpdateMeta(MetaOp{Key: "checkpoint-test", Value: []byte("held")}); err != nil {
		t.Fatal(err)
	}
	before := len(log.names())
	st, err := s.Checkpoint("test")
	if err != nil || !st.Complete {
		t.Fatalf("checkpoint: %+v, %v", st, err)
	}
	scratch := filepath.Join(filepath.Dir(p.MetaDir()), localCheckpointDir)
	var meta int
	for _, n := range log.names()[before:] {
		if n == scratch || strings.HasPrefix(n, scratch+"/") {
			t.Errorf("the checkpoint synced %s of its local copy", n)
		}
		if strings.HasPrefix(n, p.MetaDir()+"/") {
			meta++
		}
	}
	if meta == 0 {
		t.Errorf("the checkpoint synced no file of meta/ (its WAL sync before the copy)")
	}
	db := openCheckpointCopy(t, newestShipped(t, p))
	v, closer, err := db.Get(metaKey("checkpoint-test"))
	if err != nil {
		t.Fatalf("the shipped checkpoint lacks a record committed before it: %v", err)
	}
	defer closer.Close()
	if string(v) != "held" {
		t.Fatalf("record in the checkpoint: %q", v)
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}
