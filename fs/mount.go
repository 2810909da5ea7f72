package fs

import (
	"fmt"
	"os"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"
	"golang.org/x/sys/unix"

	"github.com/snapfs/snapfs/snap"
	"github.com/snapfs/snapfs/store"
)

// maxWrite is the largest write request the kernel sends (needs Linux 4.20).
const maxWrite = 1 << 20

// Mount mounts view v of st on mountpoint and starts serving it. The caller
// waits on the returned server (Wait) and, once it returns, closes the
// store; an unmount from outside ends the server.
func Mount(st *store.Store, v store.View, mountpoint string, o MountOptions) (*fuse.Server, error) {
	o = o.EnsureDefaults()
	if o.WritebackCache {
		if err := checkWritebackKernel(kernelRelease()); err != nil {
			return nil, err
		}
	}
	root, opts, err := NewRoot(st, v, o)
	if err != nil {
		return nil, err
	}
	fsys := root.(*rootNode).vs.fsys
	var raw fuse.RawFileSystem = &killprivFS{RawFileSystem: gofs.NewNodeFS(root, opts), fsys: fsys}
	if o.Metrics != nil {
		raw = &metricsFS{RawFileSystem: raw, m: o.Metrics}
	}
	server, err := fuse.NewServer(raw, mountpoint, &opts.MountOptions)
	if err != nil {
		return nil, fmt.Errorf("fs: mount %s: %w", mountpoint, err)
	}
	fsys.server = server
	removeCache := func() {}
	var cache *mountCache
	if o.WritebackCache {
		// Registered before the first request: a snapshot taken from
		// then on flushes the mount (writeback.go).
		cache = &mountCache{point: mountpoint, fsys: fsys, root: root.EmbeddedInode()}
		removeCache = fsys.snaps.AddWriteCache(fsys.holdsLineage, cache.flush)
	}
	go server.Serve()
	if err := server.WaitMount(); err != nil {
		removeCache()
		return nil, fmt.Errorf("fs: mount %s: %w", mountpoint, err)
	}
	if cache != nil {
		var sb unix.Stat_t
		if err := unix.Stat(mountpoint, &sb); err != nil {
			o.Logger.Printf("snapfs: writeback cache of %s: syncfs left out: %v", mountpoint, err)
		} else {
			cache.dev.Store(sb.Dev)
		}
	}
	if o.ReadAheadKB > 0 {
		if err := setReadAhead(mountpoint, o.ReadAheadKB); err != nil {
			o.Logger.Printf("snapfs: read-ahead of %s left as the kernel set it: %v", mountpoint, err)
		}
	}
	remove := st.OnRollback(func(lin uint32) { invalidateLineage(st, root.EmbeddedInode(), lin) })
	go func() {
		server.Wait()
		removeCache()
		remove()
	}()
	return server, nil
}

// NewRoot returns the root node of view v and the go-fuse options to serve
// it with, for callers that build their own server (and for tests that call
// node methods without mounting).
func NewRoot(st *store.Store, v store.View, o MountOptions) (gofs.InodeEmbedder, *gofs.Options, error) {
	o = o.EnsureDefaults()
	if err := o.Validate(); err != nil {
		return nil, nil, err
	}
	fsys := &fileSystem{st: st, opts: o, snaps: snap.ManagerFor(st)}
	vs := newViewState(fsys, v)
	vs.snapdir = isDataset(fsys.snaps, v)
	root := &rootNode{dirNode{node{vs: vs, ino: store.RootIno}}}
	negative := o.NegativeTimeout
	caps := uint64(fuse.CAP_READDIRPLUS_AUTO | fuse.CAP_ATOMIC_O_TRUNC | fuse.CAP_HANDLE_KILLPRIV_V2 | fuse.CAP_DONT_MASK)
	if o.WritebackCache {
		// The kernel writeback cache (writeback.go).
		caps |= fuse.CAP_WRITEBACK_CACHE
	}
	opts := &gofs.Options{
		MountOptions: fuse.MountOptions{
			AllowOther: o.AllowOther,
			Options:    append([]string{"default_permissions"}, o.Options...),
			MaxWrite:   maxWrite,
			FsName:     o.FsName,
			Name:       o.Name,
			Debug:      o.Debug,
			Logger:     o.Logger,
			// A panic is logged with its stack and counted (panic.go).
			PanicHandler: fsys.panicked,
			// As root, mount(2) directly; otherwise (or if that fails)
			// go-fuse runs fusermount3.
			DirectMount: os.Geteuid() == 0,
			// Every READ is answered with bytes the daemon verified
			// (fuse.ReadResultData), never a file to splice from: with
			// splice on, go-fuse first tried a pipe for each reply (a
			// resize, a write of the header, its discard) and, for a 1
			// MiB READ, logged that the pipe was too small, every time.
			DisableSplice: true,
			// Let the kernel choose between READDIR and READDIRPLUS,
			// pass O_TRUNC to Open instead of a separate truncate, and
			// leave clearing setuid and setgid to us (killprivFS).
			// CAP_DONT_MASK: the umask comes beside the mode, for ACLs.
			ExtraCapabilities: caps,
			// POSIX ACLs checked by the kernel (xattr.go, store/acl.go).
			EnableAcl: true,
			// No passthrough: every byte goes through the store. The
			// writeback cache is negotiated only when asked (caps).
			DisabledCapabilities: fuse.CAP_PASSTHROUGH,
		},
		// Entry and attribute timeouts are set per view in every reply;
		// global ones would override a node's 0.
		NegativeTimeout: &negative,
		// Node ids are view<<40 | ino, stable across restarts.
		ExternalNodeID: true,
		RootStableAttr: &gofs.StableAttr{
			Ino: nodeID(v, store.RootIno),
			Gen: o.Generation,
		},
		// Modes are real: a mode 000 file stays 000.
		NullPermissions: true,
		Logger:          o.Logger,
	}
	return root, opts, nil
}

// isDataset reports whether v is the live view of a dataset (a volume or
// a branch), whose root serves .snapshots.
func isDataset(m *snap.Manager, v store.View) bool {
	if !v.Live() || v.ReadOnly {
		return false
	}
	_, err := m.DatasetOf(v.ID)
	return err == nil
}

// setReadAhead sets the read-ahead window of the mount at mountpoint: the
// read_ahead_kb of its backing device (a FUSE mount has one of its own,
// named by its st_dev) in sysfs. Only root may write it.
func setReadAhead(mountpoint string, kb int) error {
	var st unix.Stat_t
	if err := unix.Stat(mountpoint, &st); err != nil {
		return err
	}
	path := fmt.Sprintf("/sys/class/bdi/%d:%d/read_ahead_kb", unix.Major(st.Dev), unix.Minor(st.Dev))
	return os.WriteFile(path, []byte(fmt.Sprintf("%d\n", kb)), 0o644)
}
