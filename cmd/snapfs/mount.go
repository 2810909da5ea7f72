package main

import (
	"errors"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/snapfs/snapfs/client"
	"github.com/snapfs/snapfs/control"
	snapfs "github.com/snapfs/snapfs/fs"
	"github.com/snapfs/snapfs/internal/killpoint"
	"github.com/snapfs/snapfs/internal/metrics"
	"github.com/snapfs/snapfs/pool"
	"github.com/snapfs/snapfs/snap"
	"github.com/snapfs/snapfs/store"
)

// faultsEnv names the member faults a daemon injects once mounted (see
// pool.ParseFaults), for the fault tests in tests/.
const faultsEnv = "SNAPFS_FAULTS"

// packSizeEnv seals the daemon's packs at this many bytes instead of the
// default, so that a test gets sealed packs (for repack) from a few MiB.
const packSizeEnv = "SNAPFS_MAX_PACK_SIZE"

// mountArgs is a parsed mount command line.
type mountArgs struct {
	dir     string // pool directory, absolute
	vol     string // the dataset: VOL or VOL/BRANCH[/...]
	point   string // mount point, absolute
	daemon  bool
	opts    snapfs.MountOptions
	metrics string // --metrics: the address to serve /metrics on, or ""
	// cacheDir and cacheSize (--cache-dir, --cache-size) keep records
	// read from object-store members in local files (pool.OpenOptions).
	cacheDir  string
	cacheSize int64
	// asyncBacklog (--async-backlog) bounds each asynchronous replica's
	// backlog (0: pool.DefaultAsyncBacklog).
	asyncBacklog int64
}

func cmdMount(g *globals, args []string) error {
	flags := newFlags(g, "mount", "VOL[/BRANCH...] MOUNTPOINT [-d|--daemon] [--allow-other] [--writeback-cache] [-o OPTS] [--debug] [--metrics ADDR] [--cache-dir DIR [--cache-size SIZE]] [--async-backlog SIZE]")
	daemon := flags.BoolP("daemon", "d", false, "run in the background; return once the mount answers")
	allowOther := flags.Bool("allow-other", false, "let other users use the mount")
	writeback := flags.Bool("writeback-cache", false, "cache writes in the kernel's page cache (write errors come at fsync or close; see docs/cli.md)")
	rawOpts := flags.StringArrayP("options", "o", nil, "mount options, comma separated (snapdir=visible|hidden, writeback_cache, or passed to the kernel)")
	debug := flags.Bool("debug", false, "log every FUSE request")
	metricsAddr := flags.String("metrics", "", "serve Prometheus metrics at http://ADDR/metrics (HOST:PORT; default: off)")
	cacheDir := flags.String("cache-dir", "", "keep records read from object-store members in this directory (default: no cache)")
	cacheSize := flags.String("cache-size", "", "most bytes the --cache-dir cache holds (default 1GiB)")
	asyncBacklog := flags.String("async-backlog", "", "most bytes each asynchronous replica may lag behind before writers wait (default 256MiB)")
	rest, err := parseArgs(flags, args, 2, 2)
	if err != nil {
		return err
	}
	m := mountArgs{vol: rest[0], daemon: *daemon, metrics: *metricsAddr}
	if m.dir, err = g.poolDir(); err != nil {
		return err
	}
	if m.cacheDir, m.cacheSize, err = cacheArgs(*cacheDir, *cacheSize); err != nil {
		return err
	}
	if m.asyncBacklog, err = asyncBacklogArg(*asyncBacklog); err != nil {
		return err
	}
	if err := checkDataset(m.vol); err != nil {
		return err
	}
	if m.point, err = cleanPoint(rest[1]); err != nil {
		return err
	}
	m.opts = snapfs.MountOptions{AllowOther: *allowOther, Debug: *debug, WritebackCache: *writeback}
	if err := parseMountOptions(&m.opts, *rawOpts); err != nil {
		return err
	}
	m.opts.FsName = mountSource(m.dir, m.vol)
	if err := checkMountpoint(m.point); err != nil {
		return err
	}
	return mountDataset(m)
}

// mountDataset mounts m, parsed and checked: through the pool's running
// daemon when one answers, else by serving it here (in the background with
// m.daemon). A daemon that is still exiting (after umount or fusermount3
// -u) or starting is waited for, up to mountWait (see awaitPoolDaemon).
func mountDataset(m mountArgs) error {
	if fd := os.Getenv(readyFdEnv); fd != "" {
		return runDaemonChild(m, fd)
	}
	served, err := awaitPoolDaemon(m.dir, func(c *client.Client) error {
		return c.Mount(m.vol, m.point, client.MountOptions{FsName: m.opts.FsName, AllowOther: m.opts.AllowOther,
			Debug: m.opts.Debug, SnapdirVisible: m.opts.SnapdirVisible, WritebackCache: m.opts.WritebackCache,
			Kernel: m.opts.Options})
	})
	if served || err != nil {
		if err != nil {
			return daemonMountError(m, err)
		}
		if m.metrics != "" {
			log.Printf("--metrics %s not served: the pool's running daemon (started by an earlier mount) serves this mount", m.metrics)
		}
		if !m.daemon {
			log.Printf("%s of %s is served at %s by the pool's running daemon", datasetNoun(m.vol), m.dir, m.point)
		}
		return nil
	}
	if m.daemon {
		return startDaemon(m)
	}
	return serve(m, func(err error) {
		if err == nil {
			log.Printf("serving %s of %s at %s; interrupt to unmount", datasetNoun(m.vol), m.dir, m.point)
		}
	})
}

// daemonMountError says why the running daemon refused to mount m: a
// missing volume or branch in the dataset path first.
func daemonMountError(m mountArgs, err error) error {
	if errors.Is(err, client.ErrNotFound) || errors.Is(err, client.ErrInvalid) {
		perr := withDaemonErr(m.dir, func(c *client.Client) error {
			vols, lerr := c.ListVolumes()
			if lerr == nil && !hasVolume(vols, snap.VolumeOf(m.vol)) {
				return volumeError(m.dir, snap.VolumeOf(m.vol), store.ErrNoVolume)
			}
			return missingBranch(m.vol, func(p string) error { _, err := c.ListSnapshots(p); return asErrno(err) })
		})
		if perr != nil {
			return perr
		}
	}
	return fmt.Errorf("mount %s at %s: %w", m.vol, m.point, err)
}

// withDaemonErr is withDaemon for a lookup whose only result is an error.
func withDaemonErr(dir string, fn func(c *client.Client) error) error {
	_, err := withDaemon(dir, fn)
	return err
}

// datasetMountError says why dataset ds of the pool opened here cannot be
// mounted: a missing volume, or which branch of its path is missing.
func datasetMountError(mgr *snap.Manager, dir, ds string, err error) error {
	if errors.Is(err, store.ErrNoVolume) {
		return volumeError(dir, snap.VolumeOf(ds), err)
	}
	if perr := missingBranch(ds, func(p string) error { _, err := mgr.List(p); return err }); perr != nil {
		return perr
	}
	return fmt.Errorf("%s: %w", datasetNoun(ds), err)
}

// parseMountOptions splits -o values at commas, keeps snapfs's own
// options and passes the rest to the kernel.
func parseMountOptions(o *snapfs.MountOptions, raw []string) error {
	for _, r := range raw {
		for _, opt := range strings.Split(r, ",") {
			switch opt {
			case "":
			case "snapdir=visible":
				o.SnapdirVisible = true
			case "snapdir=hidden":
				o.SnapdirVisible = false
			case "allow_other":
				o.AllowOther = true
			case "writeback_cache":
				o.WritebackCache = true
			case "no_writeback_cache":
				o.WritebackCache = false
			case "debug":
				o.Debug = true
			default:
				if strings.HasPrefix(opt, "snapdir=") {
					return fmt.Errorf("-o %s: snapdir is visible or hidden", opt)
				}
				o.Options = append(o.Options, opt)
			}
		}
	}
	return nil
}

// serve mounts m and serves it, with the pool's control socket, until its
// last mount is unmounted, from outside or on SIGINT/SIGTERM; then it
// flushes and closes the store and the pool. ready is called once, with
// nil when the mount answers or with the error that stopped it before.
func serve(m mountArgs, ready func(error)) (err error) {
	stopProfiles := startProfiles()
	limitMemory()
	defer stopProfiles()
	if err := killpoint.ArmFromEnv(); err != nil {
		ready(err)
		return err
	}
	if killpoint.Armed() {
		log.Printf("kill point armed: %s", os.Getenv(killpoint.Env))
	}
	// The metrics address is taken first: a bad or taken one fails the
	// mount before the pool is opened.
	var msrv *metrics.Server
	if m.metrics != "" {
		if msrv, err = metrics.Listen(m.metrics); err != nil {
			ready(err)
			return err
		}
		defer msrv.Close()
	}
	faults, err := pool.ParseFaults(os.Getenv(faultsEnv))
	if err != nil {
		err = fmt.Errorf("%s: %w", faultsEnv, err)
		ready(err)
		return err
	}
	var ffs *pool.FaultFS
	var po pool.OpenOptions
	if len(faults) > 0 {
		ffs = pool.NewFaultFS(pool.OSFS{})
		po.FS = ffs
	}
	if v := os.Getenv(packSizeEnv); v != "" {
		if po.MaxPackSize, err = strconv.ParseInt(v, 10, 64); err != nil || po.MaxPackSize < 1<<20 {
			err = fmt.Errorf("%s=%q: want a byte count of at least 1 MiB", packSizeEnv, v)
			ready(err)
			return err
		}
		log.Printf("packs sealed at %d bytes (%s)", po.MaxPackSize, packSizeEnv)
	}
	po.CacheDir, po.CacheSize = m.cacheDir, m.cacheSize
	po.AsyncBacklog = m.asyncBacklog
	if v := os.Getenv(sealIntervalEnv); v != "" {
		if po.SealInterval, err = time.ParseDuration(v); err != nil || po.SealInterval <= 0 {
			err = fmt.Errorf("%s=%q: want a positive duration", sealIntervalEnv, v)
			ready(err)
			return err
		}
	}
	e, err := openEngineWith(m.dir, store.Options{Logf: log.Printf}, po)
	if err != nil {
		ready(err)
		return err
	}
	defer func() {
		if cerr := e.close(); err == nil {
			err = cerr
		}
	}()
	if _, err := snap.ManagerFor(e.st).LiveView(m.vol); err != nil {
		err = datasetMountError(snap.ManagerFor(e.st), m.dir, m.vol, err)
		ready(err)
		return err
	}
	snap.ManagerFor(e.st).Logf = log.Printf
	d := newDaemon(e)
	if msrv != nil {
		d.metrics = metrics.New(e.st)
		e.st.SetObserver(d.metrics)
		msrv.Serve(d.metrics)
		log.Printf("serving metrics at http://%s/metrics", msrv.Addr())
	}
	// The socket is served before the first mount so that a concurrent
	// command finds the daemon; a socket that cannot be made costs only
	// the API, not the mount.
	ctl, cerr := control.Start(m.dir, e.p, e.st, func(s *control.Server) {
		s.Mount = d.controlMount
		s.MountedAt = d.mountedAt
		s.Logf = log.Printf
	})
	if cerr != nil {
		log.Printf("no control socket: %v", cerr)
	}
	if err := d.mount(m.vol, m.point, m.opts); err != nil {
		if ctl != nil {
			ctl.Close()
		}
		ready(err)
		return err
	}
	if ffs != nil {
		// Armed once mounted: the faults hit the operations of the mount,
		// not those of opening the pool.
		for _, f := range faults {
			ffs.Inject(f)
		}
		log.Printf("faults armed: %s", os.Getenv(faultsEnv))
	}
	ready(nil)
	defer startSchedules(e)()

	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM)
	defer signal.Stop(sigs)
	go func() {
		select {
		case s := <-sigs:
			log.Printf("%v: unmounting every mount", s)
			d.unmountAll()
		case <-d.done:
		}
	}()
	<-d.done
	if ctl != nil {
		ctl.Close()
	}
	log.Printf("last mount gone; flushing and closing pool %s", m.dir)
	return nil
}

// unmountServer unmounts point; when it is busy it detaches it lazily, so
// the server ends once the last open file on it is closed.
func unmountServer(unmount func() error, point string) {
	err := unmount()
	if err == nil {
		return
	}
	log.Printf("unmount %s: %v; detaching it lazily", point, oneLine(err))
	if os.Geteuid() == 0 {
		err = syscall.Unmount(point, syscall.MNT_DETACH)
	} else {
		err = exec.Command("fusermount3", "-u", "-z", point).Run()
	}
	if err != nil {
		log.Printf("lazy unmount %s: %v", point, err)
	}
}

func cmdSync(g *globals, args []string) error {
	flags := newFlags(g, "sync", "")
	dir, _, err := poolArgs(g, flags, args, 0, 0)
	if err != nil {
		return err
	}
	served, err := withDaemon(dir, func(c *client.Client) error { return c.Sync() })
	if served || err != nil {
		return err
	}
	mounts, err := poolMounts(dir)
	if err != nil {
		return err
	}
	if len(mounts) > 0 {
		return syncMounts(mounts)
	}
	e, err := openEngine(dir)
	if err != nil {
		return err
	}
	err = e.st.Sync()
	if cerr := e.close(); err == nil {
		err = cerr
	}
	return err
}

// syncMounts makes everything written to the daemon behind mounts durable:
// fsync of a mount's root directory reaches the daemon as FSYNCDIR, which
// commits the whole store durably (sync(1) and syncfs(2) never reach a
// FUSE daemon).
func syncMounts(mounts []mountEntry) error {
	var errs []error
	for _, m := range mounts {
		d, err := os.Open(m.Point)
		if err == nil {
			err = d.Sync()
			d.Close()
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("sync %s: %w", m.Point, err))
		}
	}
	return errors.Join(errs...)
}

// cmdDebugStacks asks the pool's daemon to write every goroutine's stack
// to POOLDIR/daemon.log: a hang seen without killing the daemon.
func cmdDebugStacks(g *globals, args []string) error {
	flags := newFlags(g, "debug stacks", "")
	dir, _, err := poolArgs(g, flags, args, 0, 0)
	if err != nil {
		return err
	}
	var out client.DebugStacks
	served, err := withDaemon(dir, func(c *client.Client) error {
		out, err = c.DebugStacks()
		return err
	})
	if err != nil {
		return err
	}
	if !served {
		return fmt.Errorf("no daemon serves pool %s: debug stacks shows a running daemon's goroutines", dir)
	}
	fmt.Printf("wrote the stacks of %d goroutines (%d bytes) to %s\n", out.Goroutines, out.Bytes, filepath.Join(dir, daemonLog))
	return nil
}
