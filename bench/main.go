// Command bench measures snapfs against baselines on the same disk, side by
// side, and prints each figure with its ratio to the baselines.
//
// Targets (--targets), all under one work directory (--dir, default a new
// directory under /var/tmp) so they share a disk:
//
//	plain        a plain directory: the disk itself
//	loopback     go-fuse's loopback filesystem with FUSE passthrough hidden,
//	             so every read and write goes through the daemon as in snapfs:
//	             the baseline of every ratio ("vs loopback")
//	loopback-pt  the loopback as go-fuse ships it (passthrough when the kernel
//	             and privileges allow): reference only
//	snapfs-1     snapfs with a pool of one member directory
//	snapfs-2     snapfs with a pool of two member directories
//	snapfs-N@SIZE  the same with the volume's chunk size SIZE (e.g.
//	             snapfs-1@64KiB); snapfs-N.alt[@SIZE] (and snapfs-s3.alt) runs the --alt-bin
//	             binary instead, so two builds compare in one run
//	snapfs-wb    snapfs-1 mounted with the kernel writeback cache
//	             (--writeback-cache)
//	btrfs        btrfs on a loop device over an image file (root only),
//	             a reference for the snapshot workloads only
//	snapfs-loop1 snapfs with one member on a filesystem of its own: ext4 on
//	             a loop device over an image file (root only), pool
//	             workload only
//	snapfs-loop2 the same with two members, each on its own loop device
//	zfs-fuse     Debian's zfs-fuse (installed with apt-get when missing;
//	             its daemon started when not running), a pool on one file
//	             vdev in the work directory (root only): the other FUSE
//	             filesystem with snapshots, for the live-volume workloads;
//	             --quick leaves it out unless --targets names it
//	snapfs-tmpfs1, snapfs-tmpfs2
//	             the same with each member on a tmpfs of its own (RAM);
//	             --quick leaves these two out unless --targets names them
//	seaweedfs    a SeaweedFS server (S3) on 127.0.0.1 with its data in the
//	             work directory, objects workload only (`make weed` builds
//	             its binary once per machine; without it: n/a)
//	snapfs-s3    snapfs with a pool whose only member is a bucket on a
//	             SeaweedFS server of its own started the same way, mounted
//	             without a read cache; runs only when --targets names it;
//	             snapfs-s3@SIZE creates its volume with chunk size SIZE
//
// Workloads (--workloads): seq (sequential write with fsync, MB/s; cold
// sequential read, MB/s), rand (4 KiB random write and cold random read
// IOPS, by fio when installed, else a Go loop), burst (a 64 MiB burst of
// 4 KiB random pwrite(2)s into a laid-out file: IOPS until the last write
// returned, and until the fsync after it returned: the writeback cache's
// case), meta (create, cold stat and
// cold unlink of many empty files, then creates of as many files of 4 KiB
// of random data, ops/s), tree (cp -a of a Go source tree in and
// a cold ls -lR of it, seconds) and snap (snapshot create latency idle, under
// a sustained write with the writer's longest stall, and with many snapshots
// present; sequential write and cold read MB/s of the live volume with no
// snapshot and with the many present, and the slowdown between the two;
// listing the directory of the many snapshots, cold and warm; branch
// create; rsync -a of a snapshot; destroy; snapshot create on a volume of
// many files; time until the space of a destroyed snapshot is free again),
// the last on snapfs and btrfs only, diff (snapfs only: snapfs diff of two
// snapshots around a 1% change of 10,000 files, and snapfs versions of one
// file with 1,000 snapshots, ms, through the CLI and the Go client), and pool (striping and scrub, on the
// snapfs-loop and snapfs-tmpfs targets only: sequential write with fsync
// and cold read of one large file, MB/s, with the 2-member figure divided
// by the 1-member one; `snapfs pool scrub` through the daemon, cold, MB/s,
// against a plain cold read of the same pack files, one reader per member,
// and the fraction of that raw rate scrub reaches), and objects (the
// seaweedfs target only: the S3 client's raw PUT and GET of 8 MiB objects
// through package objstore, one and four in flight, MB/s, and ranged
// 128 KiB GETs, ms: the ceiling for object-store members), and
// fsync-small (runs only when named: 4 KiB append + fsync in a loop, p50
// and p99 ms; on snapfs-s3 the objects it made in the bucket and how many
// are left after snapfs pool repack). "Cold" means caches were dropped first (sync; echo 3 >
// /proc/sys/vm/drop_caches, root only) and snapfs was remounted. The copy
// workload (bench/copy.go) times cp of a large file inside the target,
// which uses copy_file_range(2), against dd copying every byte, both
// fsync'd, in seconds, and their ratio.
//
// Each workload runs --reps times; within a repetition the targets run one
// after the other (A B C A B C ...), so slow drifts of the machine hit all
// of them alike. Each table gives per target the median, the spread (min-max,
// or the interquartile range from 4 runs on), the number of runs, and the
// median divided by loopback's and by plain's. For a figure where higher is
// better (MB/s, IOPS, ops/s) a ratio below 1 means slower than the baseline;
// for times (s, ms) a ratio above 1 means slower. The snapfs daemon's peak
// resident memory (VmHWM, reset before each workload) closes the report.
//
// Usage:
//
//	go run ./bench                     # full run (about 15 minutes)
//	go run ./bench --quick             # CI smoke run (about 7 minutes on 2 cores)
//	go run ./bench --json > results.json
//	go run ./bench --targets plain,loopback,snapfs-1 --workloads seq,meta --reps 5
//	go run ./bench --workloads seq --profile-workload seq --cpuprofile cpu.pprof
//
// Run it as root for cold caches, direct FUSE mounts and btrfs. Everything it
// mounts is unmounted on exit, error or Ctrl-C.
package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/dustin/go-humanize"
	flag "github.com/spf13/pflag"
)

type config struct {
	quick           bool
	reps            int
	targets         []string
	workloads       []string
	jsonOut         bool
	dir             string
	snapfsBin       string
	altBin          string
	cpuProfile      string
	memProfile      string
	profileWorkload string
	keep            bool

	useFio        bool
	seqBytes      int64
	randBytes     int64
	randTime      time.Duration
	metaFiles     int
	treeSrc       string
	snapCount     int
	manySnaps     int
	snapDataBytes int64
	streamBytes   int64
	spaceBytes    int64
	liveBytes     int64
	popFiles      int
	spaceTimeout  time.Duration
	btrfsBytes    int64
	poolBytes     int64
	runTimeout    time.Duration

	scaleDirs      int   // directories of 10,000 files in the scale population
	scaleSnaps     int   // snapshots taken by scale-snap
	scaleFileBytes int64 // the large file of scale-snap
}

var allTargetNames = []string{"plain", "loopback", "loopback-pt", "snapfs-1", "snapfs-2", "snapfs-wb", "btrfs",
	"snapfs-loop1", "snapfs-loop2", "snapfs-tmpfs1", "snapfs-tmpfs2", "zfs-fuse", "seaweedfs"}

// optInTargetNames are targets left out of the default (and --quick) set:
// they run only when --targets names them.
var optInTargetNames = []string{"snapfs-s3"}

func main() {
	// Child mode: serve a loopback mount for the parent bench process.
	if len(os.Args) >= 4 && os.Args[1] == "--internal-serve-loopback" {
		pt := len(os.Args) > 4 && os.Args[4] == "--internal-passthrough"
		if err := serveLoopback(os.Args[2], os.Args[3], pt); err != nil {
			fmt.Fprintln(os.Stderr, "loopback server:", err)
			os.Exit(1)
		}
		return
	}
	os.Exit(mainErr())
}

func parseFlags() *config {
	c := &config{}
	fl := flag.NewFlagSet("bench", flag.ExitOnError)
	fl.Usage = func() {
		fmt.Fprintf(os.Stderr, "Usage: go run ./bench [flags]\n\nRuns the same workloads on snapfs and on baselines and prints medians, spreads and ratios.\nSee `go doc ./bench` for how to read the output.\n\nFlags:\n")
		fl.PrintDefaults()
		fmt.Fprintf(os.Stderr, "\nWorkloads:\n")
		for _, w := range allWorkloads {
			fmt.Fprintf(os.Stderr, "  %-6s %s\n", w.name, w.desc)
		}
	}
	targets := fl.String("targets", strings.Join(allTargetNames, ","), "comma-separated targets: "+strings.Join(allTargetNames, ",")+" ("+strings.Join(optInTargetNames, ",")+" only when named)")
	var wnames, defaults []string
	for _, w := range allWorkloads {
		wnames = append(wnames, w.name)
		if !w.optIn {
			defaults = append(defaults, w.name)
		}
	}
	workloads := fl.String("workloads", strings.Join(defaults, ","), "comma-separated workloads: "+strings.Join(wnames, ",")+" (scale and scale-snap run only when named)")
	fl.IntVar(&c.scaleDirs, "scale-dirs", 0, "scale: directories of 10,000 files in the population (default 100, 10 with --quick)")
	fl.IntVar(&c.scaleSnaps, "scale-snaps", 0, "scale-snap: snapshots taken (default 10,000, 200 with --quick)")
	scaleFile := fl.String("scale-file-size", "", "scale-snap: size of the large file, e.g. 50GiB (default 50GiB, 256MiB with --quick)")
	fl.IntVar(&c.reps, "reps", 0, "repetitions of each workload per target (default 3, or 1 with --quick)")
	fl.BoolVar(&c.quick, "quick", false, "small sizes and one repetition: a smoke run (about 7 minutes on 2 cores)")
	fl.BoolVar(&c.jsonOut, "json", false, "write machine-readable results to stdout (tables go to stderr)")
	fl.StringVar(&c.dir, "dir", "/var/tmp", "directory under which the work directory is created (all targets live there)")
	fl.StringVar(&c.snapfsBin, "snapfs-bin", "", "snapfs binary to use (default: go build ./cmd/snapfs into the work directory)")
	fl.StringVar(&c.altBin, "alt-bin", "", "a second snapfs binary (another commit), run by the targets named snapfs-N.alt and snapfs-s3.alt, e.g. to compare two builds in one run")
	fl.StringVar(&c.cpuProfile, "cpuprofile", "", "write snapfs daemon CPU profiles to this path (target and run are added to the name); needs --profile-workload")
	fl.StringVar(&c.memProfile, "memprofile", "", "write snapfs daemon heap profiles to this path (target and run are added to the name); needs --profile-workload")
	fl.StringVar(&c.profileWorkload, "profile-workload", "", "the workload during which the snapfs daemon is profiled")
	fl.BoolVar(&c.keep, "keep", false, "keep the work directory afterwards")
	fl.BoolVarP(&verbose, "verbose", "v", false, "log every command run")
	_ = fl.Parse(os.Args[1:])

	if c.reps <= 0 {
		c.reps = 3
		if c.quick {
			c.reps = 1
		}
	}
	c.targets = splitList(*targets)
	if c.quick && !fl.Changed("targets") {
		// The smoke run keeps to its budget: the tmpfs pool layouts only
		// show the daemon's own limits, the loop ones say more; zfs-fuse
		// would be installed and started first.
		c.targets = slices.DeleteFunc(c.targets, func(n string) bool {
			return strings.HasPrefix(n, "snapfs-tmpfs") || n == "zfs-fuse"
		})
	}
	c.workloads = splitList(*workloads)
	c.setScaleDefaults(*scaleFile)
	c.useFio = have("fio")
	goroot := runtime.GOROOT()
	if out, err := exec.Command("go", "env", "GOROOT").Output(); err == nil && strings.TrimSpace(string(out)) != "" {
		goroot = strings.TrimSpace(string(out))
	}
	if c.quick {
		c.seqBytes = 64 << 20
		c.randBytes = 32 << 20
		c.randTime = 2 * time.Second
		c.metaFiles = 2000
		c.treeSrc = filepath.Join(goroot, "src", "net")
		c.snapCount = 10
		c.manySnaps = 100
		c.snapDataBytes = 16 << 20
		c.streamBytes = 64 << 20
		c.spaceBytes = 64 << 20
		c.liveBytes = 32 << 20
		c.popFiles = 1000
		c.spaceTimeout = 30 * time.Second
		c.btrfsBytes = 4 << 30
		c.poolBytes = 256 << 20
		c.runTimeout = 5 * time.Minute
	} else {
		c.seqBytes = 1 << 30
		c.randBytes = 256 << 20
		c.randTime = 8 * time.Second
		c.metaFiles = 10000
		c.treeSrc = filepath.Join(goroot, "src")
		c.snapCount = 30
		c.manySnaps = 1000
		c.snapDataBytes = 64 << 20
		c.streamBytes = 64 << 20
		c.spaceBytes = 256 << 20
		c.liveBytes = 256 << 20
		c.popFiles = 10000
		c.spaceTimeout = 2 * time.Minute
		c.btrfsBytes = 16 << 30
		c.poolBytes = 1 << 30
		c.runTimeout = 20 * time.Minute
	}
	return c
}

// setScaleDefaults fills the scale workloads' sizes the flags left unset.
func (c *config) setScaleDefaults(fileSize string) {
	dirs, snaps, file := 100, 10000, int64(50<<30)
	if c.quick {
		dirs, snaps, file = 10, 200, 256<<20
	}
	if c.scaleDirs <= 0 {
		c.scaleDirs = dirs
	}
	if c.scaleSnaps <= 0 {
		c.scaleSnaps = snaps
	}
	c.scaleFileBytes = file
	if fileSize != "" {
		n, err := humanize.ParseBytes(fileSize)
		if err != nil || n == 0 {
			logf("--scale-file-size %q: want a size such as 50GiB", fileSize)
			os.Exit(2)
		}
		c.scaleFileBytes = int64(n)
	}
}

func splitList(s string) []string {
	var out []string
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}

// snapfsVariant splits a snapfs target name of the form
// snapfs-N[.alt][@SIZE] into the plain target name, whether it runs the
// --alt-bin binary, and the chunk size its volume is created with ("" for
// the default). Other names come back unchanged.
func snapfsVariant(n string) (name string, alt bool, chunk string) {
	name = n
	if i := strings.IndexByte(name, '@'); i > 0 && strings.HasPrefix(name, "snapfs-") {
		name, chunk = name[:i], name[i+1:]
	}
	if strings.HasPrefix(name, "snapfs-") && strings.HasSuffix(name, ".alt") {
		name, alt = strings.TrimSuffix(name, ".alt"), true
	}
	return name, alt, chunk
}

func (c *config) validate() error {
	for _, t := range c.targets {
		name, alt, chunk := snapfsVariant(t)
		if alt && name != "snapfs-1" && name != "snapfs-2" && name != "snapfs-s3" {
			return fmt.Errorf("target %q: only snapfs-1, snapfs-2 and snapfs-s3 take .alt", t)
		}
		if chunk != "" && name != "snapfs-1" && name != "snapfs-2" && name != "snapfs-s3" {
			return fmt.Errorf("target %q: only snapfs-1, snapfs-2 and snapfs-s3 take @SIZE", t)
		}
		if alt && c.altBin == "" {
			return fmt.Errorf("target %q needs --alt-bin", t)
		}
		t = name
		if !slices.Contains(allTargetNames, t) && !slices.Contains(optInTargetNames, t) {
			return fmt.Errorf("unknown target %q (have %s)", t, strings.Join(append(slices.Clone(allTargetNames), optInTargetNames...), ","))
		}
	}
	for _, w := range c.workloads {
		if workloadByName(w) == nil {
			return fmt.Errorf("unknown workload %q", w)
		}
	}
	if (c.cpuProfile != "" || c.memProfile != "") && c.profileWorkload == "" {
		return fmt.Errorf("--cpuprofile/--memprofile need --profile-workload")
	}
	if c.profileWorkload != "" && workloadByName(c.profileWorkload) == nil {
		return fmt.Errorf("unknown --profile-workload %q", c.profileWorkload)
	}
	for _, p := range []*string{&c.cpuProfile, &c.memProfile} {
		if *p != "" {
			abs, err := filepath.Abs(*p)
			if err != nil {
				return err
			}
			*p = abs
			if err := os.MkdirAll(filepath.Dir(abs), 0o755); err != nil {
				return err
			}
		}
	}
	return nil
}

func (c *config) summary() map[string]any {
	m := map[string]any{
		"quick": c.quick, "reps": c.reps,
		"seq_bytes": c.seqBytes, "rand_file_bytes": c.randBytes, "rand_seconds": c.randTime.Seconds(),
		"meta_files": c.metaFiles, "tree": c.treeSrc, "snapshots_per_latency": c.snapCount,
		"many_snapshots": c.manySnaps, "space_bytes": c.spaceBytes,
		"snap_live_bytes": c.liveBytes, "snap_populated_files": c.popFiles,
		"pool_file_bytes": c.poolBytes,
	}
	if c.useFio {
		m["random_io"] = "fio"
	} else {
		m["random_io"] = "go-loop"
	}
	return m
}

func mainErr() int {
	c := parseFlags()
	if err := c.validate(); err != nil {
		logf("%v", err)
		return 2
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sigs
		logf("%v: stopping, cleaning up (again to force)", s)
		cancel()
		select {
		case <-sigs:
		case <-time.After(20 * time.Second):
			logf("still running 20s after %v; forcing cleanup", s)
		}
		cleanups.runAll()
		os.Exit(130)
	}()
	defer cleanups.runAll()

	if err := os.MkdirAll(c.dir, 0o755); err != nil {
		logf("%v", err)
		return 1
	}
	work, err := os.MkdirTemp(c.dir, "snapfs-bench-")
	if err != nil {
		logf("%v", err)
		return 1
	}
	work, _ = filepath.Abs(work)
	cleanups.push("rm -r "+work, func() error {
		if c.keep {
			logf("work directory kept: %s", work)
			return nil
		}
		if mounted := mountsUnder(work); len(mounted) > 0 {
			return fmt.Errorf("not removing %s: still mounted: %s", work, strings.Join(mounted, " "))
		}
		return os.RemoveAll(work)
	})
	scratch := filepath.Join(work, "scratch")
	if err := os.MkdirAll(scratch, 0o755); err != nil {
		logf("%v", err)
		return 1
	}

	res := newResults(c.targets)
	res.Machine = gatherMachine(work)
	res.Config = c.summary()
	if !isRoot {
		res.addNote("seq", "not root: caches are not dropped, so 'cold' reads are warm; FUSE mounts use fusermount3", "all")
	}

	targets := makeTargets(ctx, c, work)
	used := map[string]bool{}
	for _, wname := range c.workloads {
		for _, t := range workloadByName(wname).targetsOf(targets) {
			used[t.name()] = true
		}
	}
	ready := map[string]bool{}
	for _, t := range targets {
		if !used[t.name()] {
			continue
		}
		logf("setting up %s", t.name())
		if err := t.setup(ctx); err != nil {
			logf("%s: n/a: %v", t.name(), err)
			res.Setup[t.name()] = err.Error()
			_ = t.teardown()
			continue
		}
		ready[t.name()] = true
	}

	for _, wname := range c.workloads {
		w := workloadByName(wname)
		ts := w.targetsOf(targets)
		for _, t := range ts {
			if !ready[t.name()] {
				for _, m := range w.metrics {
					cl := res.cell(w, m, t.name())
					cl.Errors = append(cl.Errors, "setup failed (see the header)")
				}
			}
		}
		for rep := 1; rep <= c.reps && ctx.Err() == nil; rep++ {
			// Rotate the order each repetition, still alternating.
			for i := range ts {
				t := ts[(i+rep-1)%len(ts)]
				if !ready[t.name()] || ctx.Err() != nil {
					continue
				}
				runOne(ctx, c, res, w, t, rep, scratch)
			}
		}
	}
	if ctx.Err() != nil {
		logf("interrupted; partial results follow")
	}

	for i := len(targets) - 1; i >= 0; i-- {
		if ready[targets[i].name()] {
			if err := targets[i].teardown(); err != nil {
				logf("%s teardown: %v", targets[i].name(), err)
			}
		}
	}
	res.finish()
	if c.jsonOut {
		res.writeText(os.Stderr)
		if err := res.writeJSON(os.Stdout); err != nil {
			logf("%v", err)
			return 1
		}
	} else {
		res.writeText(os.Stdout)
	}
	if ctx.Err() != nil {
		return 130
	}
	return 0
}

func makeTargets(ctx context.Context, c *config, work string) []target {
	var bin string
	var binErr error
	for _, n := range c.targets {
		if strings.HasPrefix(n, "snapfs") { // snapfs-* and the pool layouts
			if c.snapfsBin != "" {
				bin = c.snapfsBin
			} else {
				logf("building snapfs")
				bin, binErr = buildSnapfs(ctx, work)
			}
			break
		}
	}
	var ts []target
	for _, full := range c.targets {
		base := filepath.Join(work, full)
		n, alt, chunk := snapfsVariant(full)
		if n == "snapfs-1" || n == "snapfs-2" {
			t := &snapfsTarget{tname: full, base: base, members: int(n[len(n)-1] - '0'), bin: bin, binErr: binErr, chunkSize: chunk}
			if alt {
				t.bin, t.binErr = c.altBin, nil
			}
			ts = append(ts, t)
			continue
		}
		switch n {
		case "plain":
			ts = append(ts, &plainTarget{root: base})
		case "loopback":
			ts = append(ts, &loopbackTarget{tname: n, base: base})
		case "loopback-pt":
			ts = append(ts, &loopbackTarget{tname: n, base: base, passthrough: true})
		case "snapfs-wb":
			ts = append(ts, &snapfsTarget{tname: n, base: base, members: 1, bin: bin, binErr: binErr,
				mountArgs: []string{"--writeback-cache"}})
		case "btrfs":
			ts = append(ts, &btrfsTarget{base: base, size: c.btrfsBytes})
		case "zfs-fuse":
			ts = append(ts, newZFSFuseTarget(base, c.btrfsBytes))
		case "snapfs-loop1", "snapfs-loop2", "snapfs-tmpfs1", "snapfs-tmpfs2":
			ts = append(ts, newPoolTarget(n, base, c, bin, binErr))
		case "seaweedfs":
			ts = append(ts, &objectsTarget{base: base})
		case "snapfs-s3":
			t := newS3Target(base, bin, binErr)
			t.tname, t.chunkSize = full, chunk
			if alt {
				t.bin, t.binErr = c.altBin, nil
			}
			ts = append(ts, t)
		}
	}
	return ts
}

// runOne runs workload w once on target t in a fresh directory and records
// the figures.
func runOne(parent context.Context, c *config, res *results, w *workload, t target, rep int, scratch string) {
	ctx, cancel := context.WithTimeout(parent, c.runTimeout)
	defer cancel()
	logf("%s rep %d/%d on %s", w.name, rep, c.reps, t.name())
	dir := filepath.Join(t.dir(), fmt.Sprintf("%s-%d", w.name, rep))
	e := &runEnv{ctx: ctx, t: t, dir: dir, scratch: scratch, cfg: c, rep: rep, notes: map[string]bool{}}
	dt, isDaemon := t.(daemonTarget)
	profiling := isDaemon && w.name == c.profileWorkload && (c.cpuProfile != "" || c.memProfile != "")

	var vals map[string]float64
	err := os.MkdirAll(dir, 0o755)
	if err == nil && profiling {
		suffix := fmt.Sprintf(".%s.rep%d", t.name(), rep)
		err = dt.setProfile(ctx, addSuffix(c.cpuProfile, suffix), addSuffix(c.memProfile, suffix))
	}
	if err == nil {
		if isDaemon {
			dt.resetPeak()
		}
		start := time.Now()
		vals, err = w.run(e)
		debugf("%s on %s took %v", w.name, t.name(), time.Since(start))
		if isDaemon {
			if v, perr := dt.peakRSS(); perr == nil {
				res.addPeak(t.name(), w.name, v)
			} else {
				debugf("peak RSS of %s: %v", t.name(), perr)
			}
		}
	}
	if profiling {
		if perr := dt.setProfile(context.Background(), "", ""); perr != nil {
			logf("%s: remount after profiling: %v", t.name(), perr)
		} else {
			logf("profiles of %s on %s written next to %s", w.name, t.name(), firstNonEmpty(c.cpuProfile, c.memProfile))
		}
	}
	if err != nil {
		logf("%s on %s: %v", w.name, t.name(), err)
	}
	for _, m := range w.metrics {
		cl := res.cell(w, m, t.name())
		if v, ok := vals[m.key]; ok {
			cl.Samples = append(cl.Samples, v)
		} else if err != nil {
			cl.Errors = append(cl.Errors, err.Error())
		} else {
			cl.Errors = append(cl.Errors, "not measured")
		}
	}
	for n := range e.notes {
		res.addNote(w.name, n, t.name())
	}
	if rerr := os.RemoveAll(dir); rerr != nil {
		logf("removing %s: %v", dir, rerr)
	}
}

func addSuffix(path, suffix string) string {
	if path == "" {
		return ""
	}
	ext := filepath.Ext(path)
	return strings.TrimSuffix(path, ext) + suffix + ext
}

func firstNonEmpty(s ...string) string {
	for _, v := range s {
		if v != "" {
			return v
		}
	}
	return ""
}

// mountsUnder lists mount points at or below dir.
func mountsUnder(dir string) []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 {
			mp := unescapeMount(f[4])
			if mp == dir || strings.HasPrefix(mp, dir+"/") {
				out = append(out, mp)
			}
		}
	}
	return out
}
