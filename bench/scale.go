package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ---- scale ----------------------------------------------------------------------

// The scale workloads (issue 16, part 7) ask whether snapfs stays itself
// at sizes people reach: a million files, ten thousand snapshots, a file
// of tens of GiB. They take long (the full sizes: about 15 minutes per
// target for scale, 10 for scale-snap, plus the file size at the write
// rate), so they are left out of the default set and run only when
// --workloads names them. The daemon's peak RSS, which closes every
// report, is the memory figure (target: under 300 MiB).
//
// scale: 10,000 empty files created, stat'ed cold and unlinked in a fresh
// directory of an empty volume (the baseline), then the volume populated
// with --scale-dirs directories of 10,000 files and one of 100,000 (full
// size: 1,100,000 files), then the same 10,000-file figures again and
// their ratio to the baseline (target: within 20%), and a cold ls -l of
// the 100,000-entry directory.
//
// scale-snap: --scale-snaps snapshots taken (full size: 10,000) through
// the target's own path (mkdir in .snapshots for snapfs), the create
// latency of the last 100 (target p50 at most 2 ms), one file of
// --scale-file-bytes written sequentially (full size 50 GiB), and, on
// snapfs, the mount time after a clean unmount and after kill -9 of the
// daemon.
var scaleWorkloads = []*workload{
	{
		name: "scale", optIn: true,
		desc: "a million files: create/stat/unlink of 10,000 before and after populating 1,100,000 files; cold ls -l of a 100,000-entry directory (opt-in)",
		metrics: []metricSpec{
			{"scale-populate", "files/s", true, "creating the population (4 writers, one directory each at a time)"},
			{"scale-create-base", "ops/s", true, "create of 10,000 empty files, empty volume"},
			{"scale-create-full", "ops/s", true, "the same with the population present"},
			{"scale-create-ratio", "x", true, "create-full / create-base (target at least 0.8)"},
			{"scale-stat-base", "ops/s", true, "cold lstat of the 10,000, empty volume"},
			{"scale-stat-full", "ops/s", true, "the same with the population present"},
			{"scale-stat-ratio", "x", true, "stat-full / stat-base (target at least 0.8)"},
			{"scale-unlink-base", "ops/s", true, "unlink of the 10,000, empty volume"},
			{"scale-unlink-full", "ops/s", true, "the same with the population present"},
			{"scale-unlink-ratio", "x", true, "unlink-full / unlink-base (target at least 0.8)"},
			{"scale-ls-big-dir", "s", false, "ls -l of the 100,000-entry directory, cold"},
		},
		run: runScale,
	},
	{
		name: "scale-snap", optIn: true, snapshot: true,
		desc: "ten thousand snapshots, one very large file, mount times (opt-in)",
		metrics: []metricSpec{
			{"scale-snaps-total", "s", false, "taking the many snapshots, total"},
			{"scale-snap-p50", "ms", false, "snapshot create with the many present, p50 of the last 100 (target at most 2)"},
			{"scale-snap-p99", "ms", false, "the same, p99"},
			{"scale-snap-destroy-p50", "ms", false, "snapshot destroy (rmdir) of the 100 oldest with the many present, p50"},
			{"scale-snap-destroy-p99", "ms", false, "the same, p99"},
			{"scale-big-write", "MB/s", true, "sequential write of the large file (1 MiB writes) incl. final fsync"},
			{"scale-mount-clean", "s", false, "mount after a clean unmount, with everything above present (snapfs only)"},
			{"scale-mount-kill9", "s", false, "mount after kill -9 of the daemon (snapfs only)"},
		},
		run: runScaleSnap,
	},
}

func init() { allWorkloads = append(allWorkloads, scaleWorkloads...) }

// metaRound creates, stats cold and unlinks n empty files in a new
// directory dir and returns the three rates in ops/s.
func metaRound(e *runEnv, dir string, n int) (create, stat, unlink float64, err error) {
	if err := os.Mkdir(dir, 0o755); err != nil {
		return 0, 0, 0, err
	}
	names := make([]string, n)
	for i := range names {
		names[i] = filepath.Join(dir, fmt.Sprintf("f%07d", i))
	}
	start := time.Now()
	for _, p := range names {
		fd, err := unix.Open(p, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return 0, 0, 0, fmt.Errorf("create %s: %v", p, err)
		}
		unix.Close(fd)
	}
	create = float64(n) / time.Since(start).Seconds()
	if err := e.cold(); err != nil {
		return create, 0, 0, err
	}
	var st unix.Stat_t
	start = time.Now()
	for _, p := range names {
		if err := unix.Lstat(p, &st); err != nil {
			return create, 0, 0, fmt.Errorf("stat %s: %v", p, err)
		}
	}
	stat = float64(n) / time.Since(start).Seconds()
	start = time.Now()
	for _, p := range names {
		if err := unix.Unlink(p); err != nil {
			return create, stat, 0, fmt.Errorf("unlink %s: %v", p, err)
		}
	}
	unlink = float64(n) / time.Since(start).Seconds()
	return create, stat, unlink, os.Remove(dir)
}

// populate creates dirs directories of perDir empty files and one of
// bigDir under root, four writers at a time, and returns the files made.
func populate(e *runEnv, root string, dirs, perDir, bigDir int) (int, error) {
	type job struct {
		dir string
		n   int
	}
	jobs := make(chan job)
	var made int64
	var mu sync.Mutex
	var firstErr error
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				n, err := fillDir(e, j.dir, j.n)
				mu.Lock()
				made += int64(n)
				if err != nil && firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	jobs <- job{filepath.Join(root, "big"), bigDir}
	for i := 0; i < dirs; i++ {
		jobs <- job{filepath.Join(root, fmt.Sprintf("d%03d", i)), perDir}
	}
	close(jobs)
	wg.Wait()
	return int(made), firstErr
}

// fillDir makes dir and n empty files in it.
func fillDir(e *runEnv, dir string, n int) (int, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return 0, err
	}
	for i := 0; i < n; i++ {
		if i%1000 == 0 && e.ctx.Err() != nil {
			return i, e.ctx.Err()
		}
		fd, err := unix.Open(filepath.Join(dir, fmt.Sprintf("f%06d", i)), unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return i, fmt.Errorf("populate %s: %v", dir, err)
		}
		unix.Close(fd)
	}
	return n, nil
}

func runScale(e *runEnv) (map[string]float64, error) {
	res := map[string]float64{}
	n := 10000
	dirs, perDir, bigDir := e.cfg.scaleDirs, 10000, 100000
	if e.cfg.quick {
		n, perDir, bigDir = 1000, 1000, 10000
	}
	c, s, u, err := metaRound(e, filepath.Join(e.dir, "base"), n)
	if err != nil {
		return res, fmt.Errorf("baseline: %v", err)
	}
	res["scale-create-base"], res["scale-stat-base"], res["scale-unlink-base"] = c, s, u

	root := filepath.Join(e.dir, "population")
	start := time.Now()
	made, err := populate(e, root, dirs, perDir, bigDir)
	if err != nil {
		return res, err
	}
	res["scale-populate"] = float64(made) / time.Since(start).Seconds()
	logf("scale: %d files made in %v", made, time.Since(start).Round(time.Second))
	syncFS(e.dir)

	c, s, u, err = metaRound(e, filepath.Join(e.dir, "full"), n)
	if err != nil {
		return res, fmt.Errorf("with the population: %v", err)
	}
	res["scale-create-full"], res["scale-stat-full"], res["scale-unlink-full"] = c, s, u
	res["scale-create-ratio"] = c / res["scale-create-base"]
	res["scale-stat-ratio"] = s / res["scale-stat-base"]
	res["scale-unlink-ratio"] = u / res["scale-unlink-base"]

	if err := e.cold(); err != nil {
		return res, err
	}
	start = time.Now()
	out, err := run(e.ctx, nil, "sh", "-c", "ls -l \"$1\" | wc -l", "sh", filepath.Join(root, "big"))
	if err != nil {
		return res, fmt.Errorf("ls -l: %v", err)
	}
	res["scale-ls-big-dir"] = time.Since(start).Seconds()
	var lines int
	if _, err := fmt.Sscan(lastLine(out), &lines); err != nil || lines != bigDir+1 {
		return res, fmt.Errorf("ls -l of the big directory printed %q lines, want %d", lastLine(out), bigDir+1)
	}
	return res, nil
}

func runScaleSnap(e *runEnv) (map[string]float64, error) {
	res := map[string]float64{}
	s, ok := e.t.(snapshotter)
	if !ok {
		return res, errors.New("not a snapshotter")
	}
	// A little data the snapshots share, so that they are not all empty.
	if err := writeFile(e.ctx, filepath.Join(e.dir, "seed.dat"), 16<<20); err != nil {
		return res, err
	}
	r := &snapRun{e: e, s: s, prefix: fmt.Sprintf("sc%d-", e.rep)}
	defer r.cleanup()
	count := e.cfg.scaleSnaps
	var lat []time.Duration
	start := time.Now()
	for i := 0; i < count; i++ {
		d, err := r.create(fmt.Sprintf("%05d", i))
		if err != nil {
			return res, err
		}
		if i >= count-100 {
			lat = append(lat, d)
		}
		if i%1000 == 999 {
			logf("scale-snap: %d snapshots on %s", i+1, s.name())
		}
	}
	res["scale-snaps-total"] = time.Since(start).Seconds()
	res["scale-snap-p50"] = pctMS(lat, 50)
	res["scale-snap-p99"] = pctMS(lat, 99)

	// Destroying costs as much as taking: time the 100 oldest with the
	// many present (oldest first: each has a newer neighbour pin).
	lat = lat[:0]
	for _, name := range slices.Clone(r.snaps[:min(100, len(r.snaps))]) {
		d, err := r.destroy(name)
		if err != nil {
			return res, err
		}
		lat = append(lat, d)
	}
	res["scale-snap-destroy-p50"] = pctMS(lat, 50)
	res["scale-snap-destroy-p99"] = pctMS(lat, 99)

	big := filepath.Join(e.dir, "big.dat")
	start = time.Now()
	if err := writeFile(e.ctx, big, e.cfg.scaleFileBytes); err != nil {
		return res, fmt.Errorf("large file: %v", err)
	}
	res["scale-big-write"] = mbps(e.cfg.scaleFileBytes, time.Since(start))

	if t, ok := e.t.(*snapfsTarget); ok {
		if err := t.umount(); err != nil {
			return res, err
		}
		start = time.Now()
		if err := t.mount(e.ctx); err != nil {
			return res, err
		}
		res["scale-mount-clean"] = time.Since(start).Seconds()
		d, err := t.mountAfterKill(e)
		if err != nil {
			return res, err
		}
		res["scale-mount-kill9"] = d.Seconds()
	}
	return res, os.Remove(big)
}

// mountAfterKill kills the daemon with SIGKILL, clears the dead mount and
// times the next mount, which recovers the pool.
func (t *snapfsTarget) mountAfterKill(e *runEnv) (time.Duration, error) {
	pid, err := t.daemonPID()
	if err != nil {
		return 0, err
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		return 0, fmt.Errorf("kill -9 %d: %v", pid, err)
	}
	for deadline := time.Now().Add(30 * time.Second); processAlive(pid) && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
	}
	if err := unmount(t.mnt()); err != nil {
		return 0, fmt.Errorf("clearing the dead mount: %v", err)
	}
	t.mounted = false
	start := time.Now()
	if err := t.mount(e.ctx); err != nil {
		return 0, err
	}
	return time.Since(start), nil
}
