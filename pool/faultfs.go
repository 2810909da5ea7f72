package pool

import (
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
)

// Op is a kind of file-system operation FaultFS can fail.
type Op int

// Operations FaultFS counts and can fail.
const (
	OpOpen Op = iota
	OpRead
	OpWrite
	OpSync
	OpPunch
	OpTruncate
	OpRemove
	OpRename
	OpMkdir
	OpStatfs
)

// Fault describes one injected failure.
type Fault struct {
	Op   Op
	Nth  int    // fail the Nth matching op after Inject (0 or 1: the next one)
	Path string // only ops on paths containing this substring; "" matches all
	Err  error  // the error returned, e.g. syscall.EIO or syscall.ENOSPC
	// Torn (OpWrite only): write the first half of the bytes, then fail.
	Torn bool
	// Sticky: once fired, fail every later matching op too.
	Sticky bool
}

// FaultFS wraps an FS and fails chosen operations (EIO on read, ENOSPC on
// write, torn writes, ...), for tests.
//
// It is production code, not a test helper, because the daemon needs it:
// snapfs mount started with $SNAPFS_FAULTS (see ParseFaults) opens its pool
// on a FaultFS, which is how the fault tests in tests/ fail a member of a
// mounted file system. It imports nothing of package testing; without
// $SNAPFS_FAULTS the daemon uses OSFS and FaultFS is idle.
type FaultFS struct {
	Inner FS

	mu     sync.Mutex // guards faults and counts
	faults []*faultState
	counts map[Op]int
}

type faultState struct {
	Fault
	seen  int
	fired bool
}

var _ FS = (*FaultFS)(nil)

// NewFaultFS wraps inner.
func NewFaultFS(inner FS) *FaultFS { return &FaultFS{Inner: inner} }

// Inject arms a fault.
func (f *FaultFS) Inject(ft Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if ft.Nth < 1 {
		ft.Nth = 1
	}
	f.faults = append(f.faults, &faultState{Fault: ft})
}

// Count returns how many ops of a kind were seen.
func (f *FaultFS) Count(op Op) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[op]
}

// Clear disarms every fault.
func (f *FaultFS) Clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.faults = nil
}

// hit counts an op and returns the fault to apply, if any.
func (f *FaultFS) hit(op Op, name string) *Fault {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.counts == nil {
		f.counts = map[Op]int{}
	}
	f.counts[op]++
	for _, s := range f.faults {
		if s.Op != op || (s.Path != "" && !strings.Contains(name, s.Path)) {
			continue
		}
		if s.fired {
			if s.Sticky {
				return &s.Fault
			}
			continue
		}
		s.seen++
		if s.seen == s.Nth {
			s.fired = true
			return &s.Fault
		}
	}
	return nil
}

func (f *FaultFS) fail(op Op, opName, name string) error {
	if ft := f.hit(op, name); ft != nil {
		return &os.PathError{Op: opName, Path: name, Err: ft.Err}
	}
	return nil
}

// OpenFile opens a file whose operations are subject to faults.
func (f *FaultFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	if err := f.fail(OpOpen, "open", name); err != nil {
		return nil, err
	}
	file, err := f.Inner.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return &faultFile{File: file, fs: f, name: name}, nil
}

// Remove removes name.
func (f *FaultFS) Remove(name string) error {
	if err := f.fail(OpRemove, "remove", name); err != nil {
		return err
	}
	return f.Inner.Remove(name)
}

// Rename renames a file.
func (f *FaultFS) Rename(oldname, newname string) error {
	if err := f.fail(OpRename, "rename", newname); err != nil {
		return err
	}
	return f.Inner.Rename(oldname, newname)
}

// MkdirAll creates directories.
func (f *FaultFS) MkdirAll(path string, perm os.FileMode) error {
	if err := f.fail(OpMkdir, "mkdir", path); err != nil {
		return err
	}
	return f.Inner.MkdirAll(path, perm)
}

// ReadDir lists a directory.
func (f *FaultFS) ReadDir(name string) ([]os.DirEntry, error) { return f.Inner.ReadDir(name) }

// Stat stats a path.
func (f *FaultFS) Stat(name string) (os.FileInfo, error) { return f.Inner.Stat(name) }

// Statfs reports space.
func (f *FaultFS) Statfs(path string) (Statfs, error) {
	if err := f.fail(OpStatfs, "statfs", path); err != nil {
		return Statfs{}, err
	}
	return f.Inner.Statfs(path)
}

// Device returns the device id.
func (f *FaultFS) Device(path string) (uint64, error) { return f.Inner.Device(path) }

// SyncDir syncs a directory (counted as OpSync).
func (f *FaultFS) SyncDir(path string) error {
	if err := f.fail(OpSync, "syncdir", path); err != nil {
		return err
	}
	return f.Inner.SyncDir(path)
}

// Lock locks name.
func (f *FaultFS) Lock(name string) (io.Closer, error) { return f.Inner.Lock(name) }

type faultFile struct {
	File
	fs   *FaultFS
	name string
}

func (f *faultFile) ReadAt(b []byte, off int64) (int, error) {
	if err := f.fs.fail(OpRead, "read", f.name); err != nil {
		return 0, err
	}
	return f.File.ReadAt(b, off)
}

func (f *faultFile) WriteAt(b []byte, off int64) (int, error) {
	ft := f.fs.hit(OpWrite, f.name)
	if ft == nil {
		return f.File.WriteAt(b, off)
	}
	n := 0
	if ft.Torn {
		n, _ = f.File.WriteAt(b[:len(b)/2], off)
	}
	return n, &os.PathError{Op: "write", Path: f.name, Err: ft.Err}
}

func (f *faultFile) Sync() error {
	if err := f.fs.fail(OpSync, "sync", f.name); err != nil {
		return err
	}
	return f.File.Sync()
}

func (f *faultFile) Punch(off, n int64) error {
	if err := f.fs.fail(OpPunch, "punch", f.name); err != nil {
		return err
	}
	return f.File.Punch(off, n)
}

func (f *faultFile) Truncate(size int64) error {
	if err := f.fs.fail(OpTruncate, "truncate", f.name); err != nil {
		return err
	}
	return f.File.Truncate(size)
}

// faultOps names the operations in a fault spec.
var faultOps = map[string]Op{
	"open": OpOpen, "read": OpRead, "write": OpWrite, "sync": OpSync, "punch": OpPunch,
	"truncate": OpTruncate, "remove": OpRemove, "rename": OpRename, "mkdir": OpMkdir, "statfs": OpStatfs,
}

// faultErrs names the errors in a fault spec.
var faultErrs = map[string]syscall.Errno{"EIO": syscall.EIO, "ENOSPC": syscall.ENOSPC, "EDQUOT": syscall.EDQUOT}

// ParseFaults parses faults for a daemon armed from the environment (the
// crash and fault tests): faults separated by ";", each a list of
// "op=OP" (open, read, write, sync, punch, truncate, remove, rename,
// mkdir, statfs), "nth=N", "path=SUBSTRING", "err=EIO|ENOSPC|EDQUOT"
// (default EIO) and the flags "torn" and "sticky", separated by ",".
// Example: "op=sync,path=disk1/packs,err=EIO;op=read,nth=3".
func ParseFaults(spec string) ([]Fault, error) {
	var out []Fault
	for _, one := range strings.Split(spec, ";") {
		if strings.TrimSpace(one) == "" {
			continue
		}
		ft := Fault{Err: syscall.EIO}
		hasOp := false
		for _, kv := range strings.Split(one, ",") {
			k, v, _ := strings.Cut(strings.TrimSpace(kv), "=")
			var ok bool
			switch k {
			case "op":
				ft.Op, ok = faultOps[v]
				hasOp = ok
			case "nth":
				n, err := strconv.Atoi(v)
				ft.Nth, ok = n, err == nil && n >= 1
			case "path":
				ft.Path, ok = v, v != ""
			case "err":
				ft.Err, ok = faultErrs[v]
			case "torn":
				ft.Torn, ok = true, v == ""
			case "sticky":
				ft.Sticky, ok = true, v == ""
			}
			if !ok {
				return nil, fmt.Errorf("fault %q: bad %q", one, kv)
			}
		}
		if !hasOp {
			return nil, fmt.Errorf("fault %q: no op=", one)
		}
		if ft.Torn && ft.Op != OpWrite {
			return nil, fmt.Errorf("fault %q: torn applies to op=write only", one)
		}
		out = append(out, ft)
	}
	return out, nil
}
