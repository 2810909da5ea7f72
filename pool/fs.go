package pool

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// FS is the narrow file-system seam every pool file access goes through
// (pool.json, the lock, member.json, packs). OSFS is the real one; MemFS
// models power cuts; FaultFS injects errors. Paths are absolute.
type FS interface {
	OpenFile(name string, flag int, perm os.FileMode) (File, error)
	Remove(name string) error
	Rename(oldname, newname string) error
	MkdirAll(path string, perm os.FileMode) error
	ReadDir(name string) ([]os.DirEntry, error)
	Stat(name string) (os.FileInfo, error)
	// Statfs describes the file system holding path.
	Statfs(path string) (Statfs, error)
	// Device returns the device id (st_dev) of path: the default failure domain.
	Device(path string) (uint64, error)
	// SyncDir makes the directory's entries (creates, renames, removes) durable.
	SyncDir(path string) error
	// Lock takes an exclusive, non-blocking lock on the file name (created if
	// needed) and records the caller's pid in it. If another holder has it,
	// the error is a *LockedError. Closing the returned Closer releases it.
	Lock(name string) (io.Closer, error)
}

// File is an open file of an FS. ReadAt and WriteAt may be called
// concurrently (pread/pwrite semantics).
type File interface {
	io.ReaderAt
	io.WriterAt
	// Sync makes the file's data durable (fdatasync).
	Sync() error
	Truncate(size int64) error
	// Punch deallocates [off, off+n) keeping the size
	// (fallocate PUNCH_HOLE|KEEP_SIZE); the range then reads as zeros.
	Punch(off, n int64) error
	// Size is the file's length in bytes.
	Size() (int64, error)
	// Allocated is the number of bytes of allocated blocks (st_blocks*512).
	Allocated() (int64, error)
	Close() error
}

// Statfs is the part of statfs(2) the pool uses.
type Statfs struct {
	Type  int64 // f_type magic, e.g. BtrfsMagic
	Total int64 // bytes
	Free  int64 // bytes available to unprivileged users (f_bavail)
	// ReadOnly: the file system is mounted read-only (ST_RDONLY), e.g.
	// remounted so by the kernel after errors.
	ReadOnly bool
}

// BtrfsMagic is the statfs f_type of btrfs, where punching frees nothing
// useful (DESIGN-NOTES 23).
const BtrfsMagic = 0x9123683E

// LockedError is returned by FS.Lock when another holder has the lock.
type LockedError struct {
	Name string
	PID  int // 0 if unknown
}

func (e *LockedError) Error() string {
	return fmt.Sprintf("pool: %s is locked by pid %d", e.Name, e.PID)
}

// Unwrap makes errors.Is(err, ErrInUse) true.
func (e *LockedError) Unwrap() error { return ErrInUse }

// OSFS is the FS of the operating system (Linux).
type OSFS struct{}

var _ FS = OSFS{}

// OpenFile opens a real file.
func (OSFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := os.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return osFile{f}, nil
}

// Remove removes a file or empty directory.
func (OSFS) Remove(name string) error { return os.Remove(name) }

// Rename renames a file.
func (OSFS) Rename(oldname, newname string) error { return os.Rename(oldname, newname) }

// MkdirAll creates a directory and its parents.
func (OSFS) MkdirAll(path string, perm os.FileMode) error { return os.MkdirAll(path, perm) }

// ReadDir lists a directory.
func (OSFS) ReadDir(name string) ([]os.DirEntry, error) { return os.ReadDir(name) }

// Stat stats a path.
func (OSFS) Stat(name string) (os.FileInfo, error) { return os.Stat(name) }

// Statfs calls statfs(2).
func (OSFS) Statfs(path string) (Statfs, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(path, &st); err != nil {
		return Statfs{}, &os.PathError{Op: "statfs", Path: path, Err: err}
	}
	return Statfs{
		Type:  int64(st.Type),
		Total: int64(st.Blocks) * int64(st.Bsize),
		Free:  int64(st.Bavail) * int64(st.Bsize),
		// ST_RDONLY is 1 in f_flags (statvfs(3)).
		ReadOnly: st.Flags&1 != 0,
	}, nil
}

// Device returns st_dev of path.
func (OSFS) Device(path string) (uint64, error) {
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		return 0, &os.PathError{Op: "stat", Path: path, Err: err}
	}
	return uint64(st.Dev), nil
}

// SyncDir fsyncs a directory.
func (OSFS) SyncDir(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Lock takes flock(LOCK_EX|LOCK_NB) on name and writes the pid into it.
func (OSFS) Lock(name string) (io.Closer, error) {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		pid := readPID(f)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, &LockedError{Name: name, PID: pid}
		}
		return nil, &os.PathError{Op: "flock", Path: name, Err: err}
	}
	if err := writePID(f); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func readPID(f *os.File) int {
	b := make([]byte, 32)
	n, _ := f.ReadAt(b, 0)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(b[:n])))
	return pid
}

func writePID(f *os.File) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	_, err := f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	return err
}

// osFile adapts *os.File to File.
type osFile struct{ *os.File }

const (
	fallocKeepSize  = 0x01
	fallocPunchHole = 0x02
)

func (f osFile) Sync() error {
	if err := syscall.Fdatasync(int(f.Fd())); err != nil {
		return &os.PathError{Op: "fdatasync", Path: f.Name(), Err: err}
	}
	return nil
}

func (f osFile) Punch(off, n int64) error {
	if err := syscall.Fallocate(int(f.Fd()), fallocPunchHole|fallocKeepSize, off, n); err != nil {
		return &os.PathError{Op: "punch", Path: f.Name(), Err: err}
	}
	return nil
}

func (f osFile) Size() (int64, error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (f osFile) Allocated() (int64, error) {
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		return 0, &os.PathError{Op: "fstat", Path: f.Name(), Err: err}
	}
	return st.Blocks * 512, nil
}

// readFile reads a whole (small) file through fs.
func readFile(fs FS, name string) ([]byte, error) {
	f, err := fs.OpenFile(name, os.O_RDONLY, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	n, err := f.Size()
	if err != nil {
		return nil, err
	}
	b := make([]byte, n)
	if _, err := f.ReadAt(b, 0); err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	return b, nil
}

// writeFileAtomic writes name via a temporary file, fsync, rename and
// directory fsync. With noReplace it refuses to replace an existing file.
func writeFileAtomic(fs FS, name string, data []byte, noReplace bool) error {
	if noReplace {
		if _, err := fs.Stat(name); err == nil {
			return fmt.Errorf("%s: %w", name, ErrExists)
		}
	}
	tmp := fmt.Sprintf("%s.tmp-%d", name, os.Getpid())
	f, err := fs.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return err
	}
	if _, err := f.WriteAt(data, 0); err != nil {
		f.Close()
		fs.Remove(tmp)
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		fs.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		fs.Remove(tmp)
		return err
	}
	if err := fs.Rename(tmp, name); err != nil {
		fs.Remove(tmp)
		return err
	}
	return fs.SyncDir(filepath.Dir(name))
}
