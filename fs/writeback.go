package fs

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"
)

// The kernel writeback cache (MountOptions.WritebackCache).
//
// With FUSE_WRITEBACK_CACHE negotiated, write(2) copies into the kernel's
// page cache and returns; the kernel sends the dirty pages later as WRITE
// requests at explicit offsets, from any open of the file that can write,
// merged into requests of up to maxWrite bytes. It writes them back at
// fsync(2) and fdatasync(2) (before FSYNC), at close(2) (before FLUSH,
// which it then sends even for FOPEN_NOFLUSH opens), at munmap and msync,
// under memory pressure and after dirty_expire_centisecs. It also owns
// mtime, ctime and the size of regular files: it ignores those of our
// replies while it caches the inode and sends them to us in SETATTR
// (FATTR_MTIME, FATTR_CTIME, FATTR_SIZE), which setAttrIn accepts.
//
// What changes for the daemon:
//   - O_APPEND is the kernel's: it places appended bytes at its own size
//     and sends WRITEs at offsets, so the store handle must not append
//     (storeOpenFlags drops the flag).
//   - A snapshot must hold every write(2) that returned before it began,
//     and a rollback must not be followed by older dirty pages: the mount
//     registers itself with the snapshot Manager (snap.AddWriteCache),
//     which calls mountCache.flush before it pins or rolls back a lineage
//     the mount serves (see flush for how it waits for the pages).
//   - SEEK_DATA and SEEK_HOLE: the kernel sends LSEEK without writing the
//     file back, so fileHandle.Lseek has it written back first.
//   - Kernels before 6.16 end a page's writeback as soon as they have
//     copied it, before the daemon has it: nothing the daemon can wait on
//     tells it the pages arrived, so the option is refused there.

// minWritebackKernel is the first Linux release that keeps a FUSE page
// under writeback until the daemon has answered its WRITE (it dropped the
// temporary writeback pages), so that waiting on writeback means the
// daemon has the data.
var minWritebackKernel = [2]int{6, 16}

// checkWritebackKernel returns an error unless release (uname -r) is at
// least minWritebackKernel.
func checkWritebackKernel(release string) error {
	fields := strings.FieldsFunc(release, func(r rune) bool { return r < '0' || r > '9' })
	if len(fields) >= 2 {
		major, err1 := strconv.Atoi(fields[0])
		minor, err2 := strconv.Atoi(fields[1])
		if err1 == nil && err2 == nil {
			if major > minWritebackKernel[0] || major == minWritebackKernel[0] && minor >= minWritebackKernel[1] {
				return nil
			}
		}
	}
	return fmt.Errorf("fs: writeback_cache needs Linux %d.%d or later (this is %s): "+
		"older kernels end page writeback before the daemon has the data, so a snapshot could miss writes",
		minWritebackKernel[0], minWritebackKernel[1], release)
}

// kernelRelease returns uname -r.
func kernelRelease() string {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "unknown"
	}
	return unix.ByteSliceToString(u.Release[:])
}

// storeOpenFlags keeps the open(2) flags the store acts on. O_SYNC and
// O_DSYNC are served here, by an fsync after each write (see fileHandle).
// With the writeback cache, O_APPEND is the kernel's (see above).
func (f *fileSystem) storeOpenFlags(flags uint32) int {
	keep := syscall.O_ACCMODE | syscall.O_APPEND | syscall.O_TRUNC |
		syscall.O_CREAT | syscall.O_EXCL
	if f.opts.WritebackCache {
		keep &^= syscall.O_APPEND
	}
	return int(flags) & keep
}

// holdsLineage reports whether the mount serves a writable view of
// lineage lin (its live view, or a branch reached through .snapshots):
// whether its kernel cache may hold writes of lin.
func (f *fileSystem) holdsLineage(lin uint32) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, v := range f.writable {
		if v.Lineage == lin {
			return true
		}
	}
	return false
}

// writer is a file open for writing: its opens that can write, and its
// inode in the mount's tree (to find a path to it).
type writer struct {
	opens int
	in    *gofs.Inode
}

// trackWriter prepares fh, an open of FUSE node id (inode in) with the
// open(2) flags given, for the writeback cache if the mount has it: fh
// learns its node (for Lseek) and, if it can write, is counted among the
// mount's writers until its Release (fh.untrack). Only a file with such an
// open can have dirty pages: the kernel writes them all back before it
// sends the RELEASE of the last one (and a shared writable mapping keeps
// its open until munmap).
func (f *fileSystem) trackWriter(fh *fileHandle, id uint64, in *gofs.Inode, flags uint32) {
	if !f.opts.WritebackCache {
		return
	}
	fh.wb, fh.id = f, id
	if flags&syscall.O_ACCMODE == syscall.O_RDONLY {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.writers == nil {
		f.writers = map[uint64]*writer{}
	}
	w := f.writers[id]
	if w == nil {
		w = &writer{in: in}
		f.writers[id] = w
	}
	w.opens++
	fh.untrack = func() {
		f.mu.Lock()
		defer f.mu.Unlock()
		if w.opens--; w.opens <= 0 {
			delete(f.writers, id)
		}
	}
}

// writerIDs returns the node ids of the files open for writing.
func (f *fileSystem) writerIDs() []uint64 {
	f.mu.Lock()
	defer f.mu.Unlock()
	ids := make([]uint64, 0, len(f.writers))
	for id := range f.writers {
		ids = append(ids, id)
	}
	return ids
}

// writerPaths returns, by node id, a path below the mount's root of each
// file open for writing, as the mount's tree knows it (possibly stale, or
// "" when the file has no name the tree knows).
func (f *fileSystem) writerPaths(root *gofs.Inode) map[uint64]string {
	f.mu.Lock()
	ins := make(map[uint64]*gofs.Inode, len(f.writers))
	for id, w := range f.writers {
		ins[id] = w.in
	}
	f.mu.Unlock()
	paths := make(map[uint64]string, len(ins))
	for id, in := range ins {
		p := ""
		if in != nil {
			p = in.Path(root)
		}
		paths[id] = p
	}
	return paths
}

// mountCache is the kernel writeback cache of one mount.
type mountCache struct {
	point string        // the mount point
	dev   atomic.Uint64 // st_dev of the mount (0 until mounted): tells it from a mount over it
	fsys  *fileSystem
	root  *gofs.Inode // the mount's root, for paths to files
}

// flush writes back the mount's dirty pages and returns once the daemon
// has stored them:
//
//  1. syncfs(2) on a descriptor of the mount's root (opened for the call
//     only: one kept open would make umount(8) busy) starts writeback of
//     every dirty page and inode of the mount, merged into large WRITEs.
//     It does not wait for them: on Linux 6.18 syncfs returned before
//     the daemon had the pages (a snapshot test missed half of them), as
//     the kernel does not wait on FUSE mappings in sync, so that a stuck
//     daemon cannot hang sync(2). If the root cannot be opened as this
//     mount (another mount over it, a mode the daemon may not read), this
//     step is left to the next one.
//  2. Every file open for writing (the only ones that can hold dirty
//     pages, trackWriter) is opened read-only by its path in the mount,
//     and sync_file_range(2) with WAIT_BEFORE, WRITE and WAIT_AFTER writes
//     back the pages dirty when it began, in large WRITEs, and waits until
//     we have answered them (a FUSE page stays under writeback until
//     then, since 6.16). It sends no FSYNC (durability is not asked) and
//     takes no inode lock (the writer goes on), pages dirtied after it
//     began are not waited for (a writer that keeps writing cannot hold
//     the snapshot back), and the file's cached pages stay. The path is
//     the one the mount's tree knows; the descriptor is checked to be the
//     file (st_ino is the node id).
//  3. A file with no such path (unlinked, renamed meanwhile, not
//     readable by the daemon, or in a branch under .snapshots, whose
//     directory a mkdir there holds locked) gets FUSE_NOTIFY_INVAL_INODE
//     for its whole range instead: the kernel waits for writeback under
//     way on each cached page, writes back (launders) a page still dirty,
//     one WRITE per page, and drops it, all before the notification's
//     write(2) returns. It drops the clean pages too, and it follows a
//     writer that keeps appending.
//
// Other goroutines serve the WRITEs, so this works inside a FUSE request
// too (mkdir .snapshots/x): no path of step 2 goes through .snapshots.
func (c *mountCache) flush() error {
	if err := c.syncfs(); err != nil {
		c.fsys.opts.Logger.Printf("snapfs: writeback cache of %s: syncfs skipped: %v", c.point, err)
	}
	for id, p := range c.fsys.writerPaths(c.root) {
		if c.syncPath(id, p) == nil {
			continue
		}
		if err := c.fsys.writeBack(id); err != nil {
			return fmt.Errorf("fs: %s: %w", c.point, err)
		}
	}
	return nil
}

// syncPath writes back the file of node id through path p below the
// mount point (flush, step 2). An error means it did not, and says why.
func (c *mountCache) syncPath(id uint64, p string) error {
	if p == "" || p == SnapdirName || strings.HasPrefix(p, SnapdirName+"/") || strings.HasPrefix(p, ".go-fuse.") {
		return fmt.Errorf("no path outside %s", SnapdirName)
	}
	dev := c.dev.Load()
	if dev == 0 {
		return fmt.Errorf("not mounted yet")
	}
	fd, err := unix.Open(filepath.Join(c.point, p), unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_NOCTTY, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Dev != dev || st.Ino != id {
		return fmt.Errorf("%s is another file now", p)
	}
	// Not fsync(2): it would also send FSYNC, and making the file durable
	// can take seconds behind a fast writer; and it holds the inode's
	// lock, stalling the writer meanwhile.
	// Up to the kernel's size now: a range to the end of the file would
	// wait for the pages a writer appends meanwhile too.
	if st.Size == 0 {
		return nil
	}
	const flags = unix.SYNC_FILE_RANGE_WAIT_BEFORE | unix.SYNC_FILE_RANGE_WRITE | unix.SYNC_FILE_RANGE_WAIT_AFTER
	return unix.SyncFileRange(fd, 0, st.Size, flags)
}

// writeBack has the kernel write back the dirty pages of FUSE node id and
// returns once the daemon has stored them (NOTIFY_INVAL_INODE, flush step
// 3; Lseek uses it too).
// It must not run with a snapfs lock held that serving a WRITE takes.
func (f *fileSystem) writeBack(id uint64) error {
	if f.server == nil {
		return nil
	}
	// ENOENT: the kernel has forgotten the inode, so it caches nothing.
	if st := f.server.InodeNotify(id, 0, 0); st != fuse.OK && st != fuse.ENOENT {
		return fmt.Errorf("write back the cached pages of node %#x: %w", id, syscall.Errno(st))
	}
	return nil
}

// syncfs starts the writeback of the mount's dirty pages (flush, step 1).
func (c *mountCache) syncfs() error {
	fd, err := unix.Open(c.point, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	switch dev := c.dev.Load(); {
	case dev == 0:
		return fmt.Errorf("not mounted yet")
	case st.Dev != dev:
		return fmt.Errorf("another file system is mounted over it")
	}
	return unix.Syncfs(fd)
}
