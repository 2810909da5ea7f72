package main

import (
	"log"
	"sync"

	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/snapfs/snapfs/control"
	snapfs "github.com/snapfs/snapfs/fs"
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
	vols    map[string]string       // mount point of each volume served: one mount per volume
}

func newDaemon(e *engine) *daemon {
	return &daemon{e: e, done: make(chan struct{}), servers: map[string]*fuse.Server{}, vols: map[string]string{}}
}

// mount serves volume vol at point until it is unmounted.
func (d *daemon) mount(vol, point string, o snapfs.MountOptions) error {
	d.mu.Lock()
	if d.closing {
		d.mu.Unlock()
		return control.Errorf("EBUSY", "the daemon of pool %s is exiting; mount again", d.e.dir)
	}
	if at, ok := d.vols[vol]; ok {
		d.mu.Unlock()
		return control.Errorf("EBUSY", "volume %s is already mounted at %s", vol, at)
	}
	d.vols[vol] = point
	d.n++
	d.mu.Unlock()
	ok := false
	defer func() {
		if !ok {
			d.mu.Lock()
			delete(d.vols, vol)
			d.mu.Unlock()
		}
	}()
	v, err := d.e.st.LiveView(vol)
	if err != nil {
		d.release()
		return volumeError(d.e.dir, vol, err)
	}
	o.Generation = d.e.p.Config().Incarnation
	server, err := snapfs.Mount(d.e.st, v, point, o)
	if err != nil {
		d.release()
		return err
	}
	ok = true
	d.mu.Lock()
	d.servers[point] = server
	d.mu.Unlock()
	log.Printf("serving volume %s at %s", vol, point)
	go func() {
		server.Wait()
		log.Printf("unmounted %s", point)
		d.mu.Lock()
		delete(d.servers, point)
		delete(d.vols, vol)
		d.mu.Unlock()
		d.release()
	}()
	return nil
}

// controlMount is the control API's mount op.
func (d *daemon) controlMount(a control.MountArgs) error {
	o := snapfs.MountOptions{
		FsName:         a.Options.FsName,
		AllowOther:     a.Options.AllowOther,
		Debug:          a.Options.Debug,
		SnapdirVisible: a.Options.SnapdirVisible,
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
