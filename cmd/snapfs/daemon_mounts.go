package main

import (
	"log"
	"sync"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/snapfs/snapfs/control"
	snapfs "github.com/snapfs/snapfs/fs"
	"github.com/snapfs/snapfs/internal/metrics"
	"github.com/snapfs/snapfs/snap"
)

// daemon is the set of mounts one daemon serves from its open pool; it
// is done when the last one is gone.
type daemon struct {
	e    *engine
	done chan struct{}

	mu      sync.Mutex
	n       int // mounts served or being mounted
	closing bool
	servers map[string]*fuse.Server // by mount point
	// points holds the mount point of each dataset served, by its live
	// view id (stable when a branch is renamed): one mount per dataset.
	points map[uint32]string
	// metrics, when --metrics was given, times every mount's requests.
	metrics *metrics.Metrics
}

func newDaemon(e *engine) *daemon {
	return &daemon{e: e, done: make(chan struct{}), servers: map[string]*fuse.Server{}, points: map[uint32]string{}}
}

// mount serves dataset vol (a volume or a branch path) at point until it
// is unmounted.
func (d *daemon) mount(vol, point string, o snapfs.MountOptions) error {
	mgr := snap.ManagerFor(d.e.st)
	v, err := mgr.LiveView(vol)
	if err != nil {
		return datasetMountError(mgr, d.e.dir, vol, err)
	}
	d.mu.Lock()
	if d.closing {
		d.mu.Unlock()
		return control.Errorf("EBUSY", "the daemon of pool %s %s; mount again", d.e.dir, daemonExitingMessage)
	}
	if at, ok := d.points[v.ID]; ok {
		d.mu.Unlock()
		// Unmounted from outside (umount, fusermount3 -u) but its server
		// has not seen it yet: the mount command waits and asks again.
		if m, mounted, err := findMount(at); err == nil && (!mounted || m.FsType != fsType) {
			return control.Errorf("EBUSY", "%s: its mount at %s %s; mount again", datasetNoun(vol), at, unmountClosingMessage)
		}
		return control.Errorf("EBUSY", "%s is already mounted at %s", datasetNoun(vol), at)
	}
	d.points[v.ID] = point
	d.n++
	d.mu.Unlock()
	ok := false
	defer func() {
		if !ok {
			d.mu.Lock()
			delete(d.points, v.ID)
			d.mu.Unlock()
		}
	}()
	o.Generation = d.e.p.Config().Incarnation
	if d.metrics != nil {
		o.Metrics = d.metrics
	}
	server, err := snapfs.Mount(d.e.st, v, point, o)
	if err != nil {
		d.release()
		return err
	}
	ok = true
	d.mu.Lock()
	d.servers[point] = server
	d.mu.Unlock()
	log.Printf("serving %s at %s", datasetNoun(vol), point)
	go func() {
		server.Wait()
		log.Printf("unmounted %s", point)
		d.mu.Lock()
		delete(d.servers, point)
		delete(d.points, v.ID)
		d.mu.Unlock()
		d.release()
	}()
	return nil
}

// mountedAt returns the mount point of the dataset whose live view has id
// viewID, if this daemon serves it.
func (d *daemon) mountedAt(viewID uint32) (string, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	p, ok := d.points[viewID]
	return p, ok
}

// controlMount is the control API's mount op.
func (d *daemon) controlMount(a control.MountArgs) error {
	o := snapfs.MountOptions{
		FsName:         a.Options.FsName,
		AllowOther:     a.Options.AllowOther,
		Debug:          a.Options.Debug,
		SnapdirVisible: a.Options.SnapdirVisible,
		WritebackCache: a.Options.WritebackCache,
		Options:        a.Options.Kernel,
	}
	if o.FsName == "" {
		o.FsName = mountSource(d.e.dir, a.Vol)
	}
	return d.mount(a.Vol, a.Mountpoint, o)
}

// release drops one mount; the last one closes done.
func (d *daemon) release() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.n--
	if d.n == 0 && !d.closing {
		d.closing = true
		close(d.done)
	}
}

// unmountAll unmounts every mount (lazily when busy).
func (d *daemon) unmountAll() {
	d.mu.Lock()
	servers := make(map[string]*fuse.Server, len(d.servers))
	for p, s := range d.servers {
		servers[p] = s
	}
	d.mu.Unlock()
	for p, s := range servers {
		unmountServer(s.Unmount, p)
	}
}
