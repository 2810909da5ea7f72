package pool

import (
	"io"
	"io/fs"
	"maps"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// MemFS is an in-memory FS for tests that models power cuts: file data
// (writes, truncates, punches) is durable only once File.Sync returned;
// Crash and CrashClone drop everything written since. Namespace operations
// (create, rename, remove, mkdir) are durable at once, which is kinder than a
// real file system; the pool fsyncs directories anyway.
//
// Space: all paths share one capacity (SetCapacity, default 1 GiB) counted in
// Align-sized blocks; a write needing blocks beyond it fails with ENOSPC.
// Device ids default to 1 for every path (one failure domain); SetDevice
// assigns one to a directory tree.
type MemFS struct {
	mu       sync.Mutex          // guards every field and every memNode
	nodes    map[string]*memNode // cleaned path -> node
	locks    map[string]bool     // lock names held
	devs     map[string]uint64   // directory -> device id
	capacity int64
	fsType   int64
	// readOnly holds directory trees whose file system is read-only
	// (SetReadOnly): writes under them fail with EROFS, even through
	// files opened before.
	readOnly map[string]bool
}

// memNode is a file or a directory. Files keep their data as a map of
// Align-sized blocks, copy-on-write: a block that is in dirty was allocated
// after the last Sync and may be written in place; any other block is
// shared with the synced snapshot and is replaced on write.
type memNode struct {
	dir    bool
	mtime  time.Time
	blocks map[int64]*[Align]byte
	dirty  map[int64]bool
	size   int64
	synced *memData // nil: never synced (a crash leaves an empty file)
}

type memData struct {
	blocks map[int64]*[Align]byte
	size   int64
}

var _ FS = (*MemFS)(nil)

// NewMemFS returns an empty MemFS holding the root directory "/".
func NewMemFS() *MemFS {
	m := &MemFS{
		nodes:    map[string]*memNode{"/": {dir: true}},
		locks:    map[string]bool{},
		devs:     map[string]uint64{},
		readOnly: map[string]bool{},
		capacity: 1 << 30,
	}
	return m
}

// SetCapacity sets the total bytes of the file system.
func (m *MemFS) SetCapacity(n int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.capacity = n
}

// SetType sets the statfs f_type reported (e.g. BtrfsMagic).
func (m *MemFS) SetType(t int64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fsType = t
}

// SetDevice makes dir and everything below it report device id dev.
func (m *MemFS) SetDevice(dir string, dev uint64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.devs[path.Clean(dir)] = dev
}

// SetReadOnly makes the tree under dir read-only (on) or writable again
// (off), as a file system remounted read-only after errors would be:
// creating, writing, syncing, truncating, punching and removing anything
// under it fail with EROFS, also through files opened before, and Statfs
// reports ReadOnly. Reads still work.
func (m *MemFS) SetReadOnly(dir string, on bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if on {
		m.readOnly[path.Clean(dir)] = true
	} else {
		delete(m.readOnly, path.Clean(dir))
	}
}

// readOnlyLocked reports whether name lies in a read-only tree. Caller
// holds mu.
func (m *MemFS) readOnlyLocked(name string) bool {
	for d := path.Clean(name); ; d = path.Dir(d) {
		if m.readOnly[d] {
			return true
		}
		if d == "/" || d == "." {
			return false
		}
	}
}

// RemoveAll removes dir and everything below it, as `rm -rf` (or a disk
// that vanished) would: files opened before keep working on their now
// nameless data, as unlinked files do.
func (m *MemFS) RemoveAll(dir string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir = path.Clean(dir)
	for p := range m.nodes {
		if p == dir || strings.HasPrefix(p, dir+"/") {
			delete(m.nodes, p)
		}
	}
}

// Crash drops, in place, every file change not yet synced, as a power cut
// would. Open files stay usable and see the surviving data.
func (m *MemFS) Crash() {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, n := range m.nodes {
		n.revert()
	}
	m.locks = map[string]bool{}
}

// CrashClone returns a new MemFS holding only what is durable in m, as the
// disk would after a power cut now; m itself is unchanged.
func (m *MemFS) CrashClone() *MemFS {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := NewMemFS()
	c.capacity, c.fsType, c.devs = m.capacity, m.fsType, maps.Clone(m.devs)
	for p, n := range m.nodes {
		cn := &memNode{dir: n.dir, mtime: n.mtime}
		if n.synced != nil {
			cn.synced = &memData{blocks: maps.Clone(n.synced.blocks), size: n.synced.size}
		}
		cn.revert()
		c.nodes[p] = cn
	}
	return c
}

func (n *memNode) revert() {
	if n.dir {
		return
	}
	n.dirty = map[int64]bool{}
	if n.synced == nil {
		n.blocks, n.size = map[int64]*[Align]byte{}, 0
		return
	}
	n.blocks, n.size = maps.Clone(n.synced.blocks), n.synced.size
}

func (m *MemFS) usedLocked() int64 {
	var used int64
	for _, n := range m.nodes {
		used += int64(len(n.blocks)) * Align
	}
	return used
}

func memErr(op, name string, err error) error {
	return &os.PathError{Op: op, Path: name, Err: err}
}

// OpenFile opens or creates a file. Supported flags: O_CREATE, O_EXCL, O_TRUNC.
func (m *MemFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	name = path.Clean(name)
	n, ok := m.nodes[name]
	switch {
	case m.readOnlyLocked(name) && (flag&(os.O_WRONLY|os.O_RDWR|os.O_CREATE|os.O_TRUNC) != 0):
		return nil, memErr("open", name, syscall.EROFS)
	case ok && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, memErr("open", name, fs.ErrExist)
	case ok && n.dir && flag&(os.O_WRONLY|os.O_RDWR) != 0:
		return nil, memErr("open", name, syscall.EISDIR)
	case !ok && flag&os.O_CREATE == 0:
		return nil, memErr("open", name, fs.ErrNotExist)
	case !ok:
		if p, ok := m.nodes[path.Dir(name)]; !ok || !p.dir {
			return nil, memErr("open", name, fs.ErrNotExist)
		}
		n = &memNode{blocks: map[int64]*[Align]byte{}, dirty: map[int64]bool{}, mtime: time.Now()}
		m.nodes[name] = n
	}
	if flag&os.O_TRUNC != 0 && !n.dir {
		n.truncate(0)
	}
	return &memFile{fs: m, name: name, node: n, readOnly: flag&(os.O_WRONLY|os.O_RDWR) == 0}, nil
}

// Remove removes a file or an empty directory.
func (m *MemFS) Remove(name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	name = path.Clean(name)
	n, ok := m.nodes[name]
	if !ok {
		return memErr("remove", name, fs.ErrNotExist)
	}
	if m.readOnlyLocked(name) {
		return memErr("remove", name, syscall.EROFS)
	}
	if n.dir && len(m.childrenLocked(name)) > 0 {
		return memErr("remove", name, syscall.ENOTEMPTY)
	}
	delete(m.nodes, name)
	return nil
}

// Rename renames a file, replacing any existing file at newname.
func (m *MemFS) Rename(oldname, newname string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	oldname, newname = path.Clean(oldname), path.Clean(newname)
	n, ok := m.nodes[oldname]
	if !ok {
		return memErr("rename", oldname, fs.ErrNotExist)
	}
	if p, ok := m.nodes[path.Dir(newname)]; !ok || !p.dir {
		return memErr("rename", newname, fs.ErrNotExist)
	}
	if n.dir {
		return m.renameDirLocked(oldname, newname)
	}
	delete(m.nodes, oldname)
	m.nodes[newname] = n
	return nil
}

// renameDirLocked moves directory oldname and everything under it to
// newname, which must not exist (or be an empty directory), as rename(2).
func (m *MemFS) renameDirLocked(oldname, newname string) error {
	if t, ok := m.nodes[newname]; ok {
		if !t.dir {
			return memErr("rename", newname, syscall.ENOTDIR)
		}
		if len(m.childrenLocked(newname)) > 0 {
			return memErr("rename", newname, syscall.ENOTEMPTY)
		}
	}
	if strings.HasPrefix(newname+"/", oldname+"/") {
		return memErr("rename", newname, syscall.EINVAL)
	}
	moved := map[string]*memNode{}
	for p, n := range m.nodes {
		if p == oldname || strings.HasPrefix(p, oldname+"/") {
			moved[newname+strings.TrimPrefix(p, oldname)] = n
			delete(m.nodes, p)
		}
	}
	maps.Copy(m.nodes, moved)
	return nil
}

// MkdirAll creates a directory and its parents.
func (m *MemFS) MkdirAll(p string, perm os.FileMode) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	p = path.Clean(p)
	for d := p; ; d = path.Dir(d) {
		if n, ok := m.nodes[d]; ok {
			if !n.dir {
				return memErr("mkdir", d, syscall.ENOTDIR)
			}
			break
		}
	}
	for d := p; ; d = path.Dir(d) {
		if _, ok := m.nodes[d]; ok {
			return nil
		}
		m.nodes[d] = &memNode{dir: true, mtime: time.Now()}
	}
}

func (m *MemFS) childrenLocked(dir string) []string {
	var out []string
	for p := range m.nodes {
		if p != "/" && path.Dir(p) == dir {
			out = append(out, p)
		}
	}
	sort.Strings(out)
	return out
}

// ReadDir lists a directory, sorted by name.
func (m *MemFS) ReadDir(name string) ([]os.DirEntry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	name = path.Clean(name)
	n, ok := m.nodes[name]
	if !ok {
		return nil, memErr("readdir", name, fs.ErrNotExist)
	}
	if !n.dir {
		return nil, memErr("readdir", name, syscall.ENOTDIR)
	}
	var out []os.DirEntry
	for _, c := range m.childrenLocked(name) {
		out = append(out, fs.FileInfoToDirEntry(m.nodes[c].info(c)))
	}
	return out, nil
}

// Stat describes a path.
func (m *MemFS) Stat(name string) (os.FileInfo, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	name = path.Clean(name)
	n, ok := m.nodes[name]
	if !ok {
		return nil, memErr("stat", name, fs.ErrNotExist)
	}
	return n.info(name), nil
}

// Statfs reports the shared capacity and what is left of it.
func (m *MemFS) Statfs(p string) (Statfs, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if _, ok := m.nodes[path.Clean(p)]; !ok {
		return Statfs{}, memErr("statfs", p, fs.ErrNotExist)
	}
	return Statfs{Type: m.fsType, Total: m.capacity, Free: max(0, m.capacity-m.usedLocked()), ReadOnly: m.readOnlyLocked(p)}, nil
}

// Device returns the device set by SetDevice for the nearest enclosing
// directory, or 1.
func (m *MemFS) Device(p string) (uint64, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	p = path.Clean(p)
	if _, ok := m.nodes[p]; !ok {
		return 0, memErr("stat", p, fs.ErrNotExist)
	}
	for d := p; ; d = path.Dir(d) {
		if dev, ok := m.devs[d]; ok {
			return dev, nil
		}
		if d == "/" {
			return 1, nil
		}
	}
}

// SyncDir is a no-op: namespace changes are durable at once.
func (m *MemFS) SyncDir(p string) error {
	if _, err := m.Stat(p); err != nil {
		return err
	}
	return nil
}

// Lock takes an in-process lock on name (creating the file).
func (m *MemFS) Lock(name string) (io.Closer, error) {
	f, err := m.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	f.Close()
	m.mu.Lock()
	defer m.mu.Unlock()
	name = path.Clean(name)
	if m.locks[name] {
		return nil, &LockedError{Name: name, PID: os.Getpid()}
	}
	m.locks[name] = true
	return memLock{m, name}, nil
}

type memLock struct {
	m    *MemFS
	name string
}

func (l memLock) Close() error {
	l.m.mu.Lock()
	defer l.m.mu.Unlock()
	delete(l.m.locks, l.name)
	return nil
}

func (n *memNode) info(name string) os.FileInfo {
	return memInfo{name: path.Base(name), size: n.size, dir: n.dir, mtime: n.mtime}
}

type memInfo struct {
	name  string
	size  int64
	dir   bool
	mtime time.Time
}

func (i memInfo) Name() string       { return i.name }
func (i memInfo) Size() int64        { return i.size }
func (i memInfo) ModTime() time.Time { return i.mtime }
func (i memInfo) IsDir() bool        { return i.dir }
func (i memInfo) Sys() any           { return nil }
func (i memInfo) Mode() os.FileMode {
	if i.dir {
		return os.ModeDir | 0o755
	}
	return 0o644
}

// memFile is an open MemFS file.
type memFile struct {
	fs       *MemFS
	name     string
	node     *memNode
	readOnly bool
	closed   bool // guarded by fs.mu
}

func (f *memFile) check(op string, write bool) error {
	if f.closed {
		return memErr(op, f.name, os.ErrClosed)
	}
	if write && f.readOnly {
		return memErr(op, f.name, syscall.EBADF)
	}
	if write && f.fs.readOnlyLocked(f.name) {
		return memErr(op, f.name, syscall.EROFS)
	}
	return nil
}

func (f *memFile) ReadAt(b []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("read", false); err != nil {
		return 0, err
	}
	n := f.node
	if off >= n.size {
		return 0, io.EOF
	}
	end := min(off+int64(len(b)), n.size)
	for pos := off; pos < end; {
		k, in := pos/Align, pos%Align
		c := min(Align-in, end-pos)
		dst := b[pos-off : pos-off+c]
		if blk := n.blocks[k]; blk != nil {
			copy(dst, blk[in:in+c])
		} else {
			clear(dst)
		}
		pos += c
	}
	if got := int(end - off); got < len(b) {
		return got, io.EOF
	}
	return len(b), nil
}

func (f *memFile) WriteAt(b []byte, off int64) (int, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("write", true); err != nil {
		return 0, err
	}
	n := f.node
	end := off + int64(len(b))
	var need int64
	for k := off / Align; k*Align < end; k++ {
		if n.blocks[k] == nil {
			need += Align
		}
	}
	if need > 0 && f.fs.usedLocked()+need > f.fs.capacity {
		return 0, memErr("write", f.name, syscall.ENOSPC)
	}
	for pos := off; pos < end; {
		k, in := pos/Align, pos%Align
		c := min(Align-in, end-pos)
		copy(n.writable(k)[in:in+c], b[pos-off:pos-off+c])
		pos += c
	}
	n.size = max(n.size, end)
	n.mtime = time.Now()
	return len(b), nil
}

// writable returns block k, private to the unsynced state.
func (n *memNode) writable(k int64) *[Align]byte {
	blk := n.blocks[k]
	if n.dirty[k] && blk != nil {
		return blk
	}
	nb := new([Align]byte)
	if blk != nil {
		*nb = *blk
	}
	n.blocks[k], n.dirty[k] = nb, true
	return nb
}

func (f *memFile) Sync() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("sync", f.fs.readOnlyLocked(f.name)); err != nil {
		return err
	}
	n := f.node
	n.synced = &memData{blocks: maps.Clone(n.blocks), size: n.size}
	n.dirty = map[int64]bool{}
	return nil
}

func (f *memFile) Truncate(size int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("truncate", true); err != nil {
		return err
	}
	f.node.truncate(size)
	return nil
}

func (n *memNode) truncate(size int64) {
	for k := range n.blocks {
		if k*Align >= size {
			delete(n.blocks, k)
			delete(n.dirty, k)
		}
	}
	if in := size % Align; in != 0 && n.blocks[size/Align] != nil {
		clear(n.writable(size / Align)[in:])
	}
	n.size = size
}

func (f *memFile) Punch(off, length int64) error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("punch", true); err != nil {
		return err
	}
	n := f.node
	end := min(off+length, n.size)
	for pos := off; pos < end; {
		k, in := pos/Align, pos%Align
		c := min(Align-in, end-pos)
		if c == Align {
			delete(n.blocks, k)
			delete(n.dirty, k)
		} else if n.blocks[k] != nil {
			clear(n.writable(k)[in : in+c])
		}
		pos += c
	}
	return nil
}

func (f *memFile) Size() (int64, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	return f.node.size, f.check("stat", false)
}

func (f *memFile) Allocated() (int64, error) {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	return int64(len(f.node.blocks)) * Align, f.check("stat", false)
}

func (f *memFile) Close() error {
	f.fs.mu.Lock()
	defer f.fs.mu.Unlock()
	if err := f.check("close", false); err != nil {
		return err
	}
	f.closed = true
	return nil
}
