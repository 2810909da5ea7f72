package main

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// metricSpec describes one figure a workload produces.
type metricSpec struct {
	key          string
	unit         string
	higherBetter bool
	desc         string
}

// workload is a function over a fresh directory of one target that
// returns measured figures keyed by metricSpec.key. It may return some
// figures together with an error; the missing ones are reported as n/a.
type workload struct {
	name     string
	desc     string
	snapshot bool // needs a snapshotter target
	layouts  bool // runs on the pool layout targets (*poolTarget), and only there
	objects  bool // runs on the object-store targets (*objectsTarget), and only there
	s3       bool // runs on the snapfs-s3 targets only
	optIn    bool // left out of the default set: runs only when --workloads names it
	metrics  []metricSpec
	run      func(e *runEnv) (map[string]float64, error)
}

// targetsOf returns the targets, in order, on which w runs: the pool
// layouts for a layouts workload (and no other workload runs there),
// snapshotters for a snapshot workload, and btrfs for snapshot workloads
// only.
func (w *workload) targetsOf(all []target) []target {
	var ts []target
	for _, t := range all {
		_, layout := t.(*poolTarget)
		_, objects := t.(*objectsTarget)
		_, snap := t.(snapshotter)
		_, s3 := t.(*s3Target)
		switch {
		case w.s3 && !s3:
		case w.layouts != layout:
		case w.objects != objects:
		case w.snapshot && !snap:
		case !w.snapshot && t.name() == "btrfs": // a reference for snapshots only
		default:
			ts = append(ts, t)
		}
	}
	return ts
}

// runEnv is what a workload gets: its target, a fresh directory on it, a
// scratch directory on the plain disk, and the run's parameters.
type runEnv struct {
	ctx     context.Context
	t       target
	dir     string
	scratch string
	cfg     *config
	rep     int
	notes   map[string]bool
}

func (e *runEnv) note(s string) { e.notes[s] = true }

// cold empties caches before a read phase and notes when it could not.
func (e *runEnv) cold() error {
	ok, err := e.t.coldCache(e.ctx)
	if err != nil {
		return fmt.Errorf("dropping caches: %v", err)
	}
	if !ok {
		e.note("caches not dropped (not root): reads are warm")
	}
	return nil
}

var allWorkloads = []*workload{
	{
		name: "seq", desc: "sequential write of one file (1 MiB writes, fsync at end), then cold sequential read",
		metrics: []metricSpec{
			{"seq-write", "MB/s", true, "sequential write incl. final fsync"},
			{"seq-read", "MB/s", true, "cold sequential read (1 MiB reads)"},
			{"seq-read-cat", "MB/s", true, "cold sequential read by cat (128 KiB reads)"},
			{"seq-read-dd", "MB/s", true, "cold sequential read by dd bs=1M"},
			{"seq-read-rsync", "MB/s", true, "cold sequential read by rsync into /dev/shm"},
		},
		run: runSeq,
	},
	{
		name: "rand", desc: "4 KiB random writes (buffered, psync), then cold 4 KiB random reads, over one preallocated file",
		metrics: []metricSpec{
			{"rand-write", "IOPS", true, "4 KiB random write"},
			{"rand-read", "IOPS", true, "4 KiB random read (cold)"},
		},
		run: runRand,
	},
	{
		name: "burst", desc: "a 64 MiB burst of 4 KiB random writes (pwrite) into a laid-out file, then fsync",
		metrics: []metricSpec{
			{"burst-write", "IOPS", true, "4 KiB random writes until the last returned"},
			{"burst-fsync", "IOPS", true, "the same writes until the fsync after them returned"},
		},
		run: runBurst,
	},
	{
		name: "meta", desc: "create, stat (cold) and unlink (cold) of many empty files in one directory; create of as many 4 KiB files",
		metrics: []metricSpec{
			{"create", "ops/s", true, "create empty file"},
			{"stat", "ops/s", true, "lstat, cold dentry/inode cache"},
			{"unlink", "ops/s", true, "unlink, after a cache drop"},
			{"create-4k", "ops/s", true, "create, write 4 KiB of random data, close"},
		},
		run: runMeta,
	},
	{
		name: "tree", desc: "cp -a of a Go source tree into the target, then cold ls -lR of it",
		metrics: []metricSpec{
			{"cp-a", "s", false, "cp -a of the source tree (source warm)"},
			{"ls-lR", "s", false, "ls -lR of the copy (cold)"},
		},
		run: runTree,
	},
	{
		name: "snap", desc: "snapshot create/destroy latencies, live I/O and listing with many snapshots, branches, rsync of a snapshot, space return",
		snapshot: true,
		metrics: []metricSpec{
			{"snap-idle-p50", "ms", false, "snapshot create, idle, p50"},
			{"snap-idle-p99", "ms", false, "snapshot create, idle, p99"},
			{"snap-write-p50", "ms", false, "snapshot create under sequential write, p50"},
			{"snap-write-p99", "ms", false, "snapshot create under sequential write, p99"},
			{"writer-stall", "ms", false, "writer's longest write(2) while snapshots were taken"},
			{"snap-many-total", "s", false, "creating the many snapshots, total"},
			{"snap-many-p50", "ms", false, "snapshot create with many present, p50"},
			{"snap-many-p99", "ms", false, "snapshot create with many present, p99"},
			{"snap-none-write", "MB/s", true, "live volume, no snapshot yet: sequential write (1 MiB writes) incl. final fsync"},
			{"snap-many-write", "MB/s", true, "live volume, the many snapshots present: sequential write incl. final fsync"},
			{"snap-many-write-slowdown", "x", false, "snap-none-write / snap-many-write: how many times longer the write takes with the many snapshots (1 = unaffected)"},
			{"snap-none-read", "MB/s", true, "live volume, no snapshot yet: cold sequential read"},
			{"snap-many-read", "MB/s", true, "live volume, the many snapshots present: cold sequential read"},
			{"snap-many-read-slowdown", "x", false, "snap-none-read / snap-many-read: how many times longer the read takes with the many snapshots (1 = unaffected)"},
			{"snap-list-cold", "ms", false, "os.ReadDir of the snapshot directory with the many present, cold"},
			{"snap-list-warm", "ms", false, "os.ReadDir of the snapshot directory with the many present, right after the cold one"},
			{"branch-create", "ms", false, "writable branch of a snapshot through the CLI (a process start included), median"},
			{"branch-create-api", "ms", false, "writable branch of a snapshot through the Go client API (snapfs only), median"},
			{"rsync-snap", "s", false, "rsync -a of a snapshot to the plain disk"},
			{"snap-destroy-p50", "ms", false, "snapshot destroy, p50 over the many"},
			{"snap-populated-p50", "ms", false, "snapshot create on a volume of 10,000 files (1,000 with --quick), no other snapshot present, p50"},
			{"destroy", "ms", false, "destroy of the snapshot holding a deleted big file"},
			{"space-return", "s", false, "from destroy until statfs shows the space free"},
			{"rollback", "ms", false, "rollback through the API after rewriting 100 small files and 64 MiB of the big one (snapfs only)"},
		},
		run: runSnap,
	},
	{
		name: "diff", desc: "snapfs diff of a 1% change of 10,000 files between two snapshots; snapfs versions of one file with 1,000 snapshots (100 versions)",
		snapshot: true,
		metrics: []metricSpec{
			{"diff-1pct", "ms", false, "snapfs diff of two snapshots, 100 of 10,000 files changed, through the CLI (process start included), median of 5"},
			{"diff-1pct-api", "ms", false, "the same diff through the Go client, median of 5"},
			{"versions-1000", "ms", false, "snapfs versions of one file with 1,000 snapshots, CLI, median of 5"},
			{"versions-1000-api", "ms", false, "the same through the Go client, median of 5"},
		},
		run: runDiff,
	},
	{
		name: "pool", desc: "striping: sequential write (fsync) and cold read of one large file on 1 vs 2 members on devices of their own; scrub vs the members' raw read rate",
		layouts: true,
		metrics: []metricSpec{
			{"pool-write", "MB/s", true, "sequential write of one file (1 MiB writes) incl. final fsync"},
			{"pool-read", "MB/s", true, "cold sequential read of it (snapfs and the member filesystems remounted, caches dropped)"},
			{"scrub", "MB/s", true, "snapfs pool scrub through the daemon, cold: file bytes verified per second of the command"},
			{"raw-read", "MB/s", true, "the same pack files read plainly, cold, one sequential reader per member"},
			{"scrub-fraction", "x", true, "scrub's rate over the pack bytes / raw-read (target at least 0.8)"},
		},
		run: runPool,
	},
	{
		name: "objects", desc: "the S3 client's raw PUT and GET of 8 MiB objects, one and four in flight, and ranged 128 KiB GETs, against a SeaweedFS server (seaweedfs target only)",
		objects: true,
		metrics: []metricSpec{
			{"obj-put", "MB/s", true, "PUT of 8 MiB objects, one at a time"},
			{"obj-get", "MB/s", true, "GET of them whole, one at a time, cold (server caches dropped)"},
			{"obj-put-par4", "MB/s", true, "PUT of 8 MiB objects, four in flight"},
			{"obj-get-par4", "MB/s", true, "GET of them whole, four in flight, cold"},
			{"obj-get-128k-p50", "ms", false, "ranged GET of 128 KiB at a random offset, one at a time, p50"},
			{"async-write", "MB/s", true, "appends of 128 KiB records + a sync per 8 MiB into a pool of a directory and an asynchronous replica in the server, paced at half this rep's obj-put"},
			{"async-lag-p50", "s", false, "the replica's lag during that write (age of the oldest record not yet in the bucket, sampled every 100 ms), p50"},
			{"async-lag-max", "s", false, "the same lag, largest sample (target: under 5 s)"},
			{"async-drain", "s", false, "from the last sync to an empty backlog (the last stage pack waits for the 5 s seal interval)"},
		},
		run: runObjects,
	},
	{
		name: "fsync-small", desc: "4 KiB append + fsync, in a loop, to one file: latency; on snapfs-s3 the objects it made and what pool repack did (runs only when named)",
		optIn: true,
		metrics: []metricSpec{
			{"fsync-4k-p50", "ms", false, "4 KiB write + fsync, p50"},
			{"fsync-4k-p99", "ms", false, "4 KiB write + fsync, p99"},
			{"fsync-objects", "objects", false, "objects the loop made in the bucket (snapfs-s3 only)"},
			{"fsync-obj-kib", "KiB", true, "their mean size (snapfs-s3 only)"},
			{"bucket-objects", "objects", false, "objects in the bucket after the loop, the earlier workloads' included (snapfs-s3 only)"},
			{"bucket-objects-repacked", "objects", false, "objects in the bucket after snapfs pool repack (snapfs-s3 only)"},
		},
		run: runFsyncSmall,
	},
	{
		name: "scrub-s3", desc: "snapfs pool scrub of one large file, cold, every copy read from the bucket (snapfs-s3 targets only; runs only when named)",
		optIn: true, s3: true,
		metrics: []metricSpec{
			{"scrub-s3", "MB/s", true, "snapfs pool scrub through the daemon, cold: file bytes verified per second of the command"},
		},
		run: runScrubS3,
	},
	{
		name: "send", desc: "replication: full and incremental snapfs send | receive into a second pool on the plain disk, against rsync -a of the same snapshots (snapfs targets only)",
		snapshot: true,
		metrics: []metricSpec{
			{"send-full", "s", false, "snapfs send | snapfs receive of a snapshot of 10,000 files and 1 GiB (1,000 and 64 MiB with --quick) into an empty second pool, received durable"},
			{"rsync-full", "s", false, "rsync -a of the same snapshot into an empty directory, then sync"},
			{"send-full-ratio", "x", false, "send-full / rsync-full (target at most 1)"},
			{"send-incr", "s", false, "incremental send -i | receive after rewriting 1% of the files"},
			{"rsync-incr", "s", false, "rsync -a of the new snapshot onto the copy of the old one, then sync"},
			{"send-incr-speedup", "x", true, "rsync-incr / send-incr (target at least 10)"},
			{"send-incr-of-full", "%", false, "send-incr / send-full (target at most 5%)"},
			{"send-incr-served", "s", false, "the same incremental (another 1% rewritten) into the second pool while a daemon serves it (its volume mounted): receive goes through the daemon"},
			{"rsync-incr-c", "s", false, "rsync -a of that snapshot onto the copy, then sync"},
			{"send-incr-served-speedup", "x", true, "rsync-incr-c / send-incr-served (target at least 10)"},
		},
		run: runSend,
	},
}

func workloadByName(name string) *workload {
	for _, w := range allWorkloads {
		if w.name == name {
			return w
		}
	}
	return nil
}

// ---- data ---------------------------------------------------------------------

// dataGen makes incompressible data that never repeats a 4 KiB block within
// or across runs, so content-addressed dedup cannot shortcut any write.
type dataGen struct {
	pool  []byte
	nonce uint64
}

func newDataGen() *dataGen {
	r := rand.NewChaCha8([32]byte{1, 2, 3})
	g := &dataGen{pool: make([]byte, 8<<20), nonce: rand.Uint64()}
	_, _ = r.Read(g.pool)
	return g
}

// fill fills buf (a multiple of 4 KiB) with the content for file offset off.
func (g *dataGen) fill(buf []byte, off int64) {
	src := int((uint64(off)*2654435761)%uint64(len(g.pool)-len(buf))) &^ 4095
	copy(buf, g.pool[src:src+len(buf)])
	for i := 0; i+16 <= len(buf); i += 4096 {
		binary.LittleEndian.PutUint64(buf[i:], uint64(off)+uint64(i))
		binary.LittleEndian.PutUint64(buf[i+8:], g.nonce)
	}
}

// writeFile writes n bytes of fresh data to path in 1 MiB writes and
// fsyncs it.
func writeFile(ctx context.Context, path string, n int64) error {
	g := newDataGen()
	f, err := os.OpenFile(path, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for off := int64(0); off < n; off += int64(len(buf)) {
		if ctx.Err() != nil {
			f.Close()
			return ctx.Err()
		}
		b := buf
		if n-off < int64(len(b)) {
			b = b[:n-off]
		}
		g.fill(b, off)
		if _, err := f.Write(b); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func readFile(ctx context.Context, path string) (int64, error) {
	return readAll(ctx, path, make([]byte, 1<<20))
}

func mbps(n int64, d time.Duration) float64 { return float64(n) / d.Seconds() / 1e6 }

// readRate reads the file at path whole and returns the rate in MB/s; the
// file must hold the n bytes written to it.
func readRate(ctx context.Context, path string, n int64) (float64, error) {
	start := time.Now()
	got, err := readFile(ctx, path)
	if err != nil {
		return 0, err
	}
	if got != n {
		return 0, fmt.Errorf("read %d bytes back, wrote %d", got, n)
	}
	return mbps(n, time.Since(start)), nil
}

// ---- seq ----------------------------------------------------------------------

func runSeq(e *runEnv) (map[string]float64, error) {
	res := map[string]float64{}
	p := filepath.Join(e.dir, "seq.dat")
	n := e.cfg.seqBytes
	start := time.Now()
	if err := writeFile(e.ctx, p, n); err != nil {
		return res, err
	}
	res["seq-write"] = mbps(n, time.Since(start))
	if err := e.cold(); err != nil {
		return res, err
	}
	rate, err := readRate(e.ctx, p, n)
	if err != nil {
		return res, err
	}
	res["seq-read"] = rate
	// The same read by the tools users read with: each has its own
	// read size (cat 128 KiB, dd the bs given, rsync 256 KiB through
	// its own pipeline), and the kernel's read-ahead meets each
	// differently. A reader missing from the machine is left out.
	shm, err := os.MkdirTemp("/dev/shm", "snapfs-bench-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(shm)
	readers := []struct {
		metric string
		argv   []string
	}{
		{"seq-read-cat", []string{"sh", "-c", `cat "$1" >/dev/null`, "cat", p}},
		{"seq-read-dd", []string{"dd", "if=" + p, "of=/dev/null", "bs=1M", "status=none"}},
		{"seq-read-rsync", []string{"rsync", "--whole-file", "--inplace", p, filepath.Join(shm, "seq.dat")}},
	}
	for _, r := range readers {
		if !have(r.argv[0]) {
			e.note(r.argv[0] + " not installed: " + r.metric + " left out")
			continue
		}
		if err := e.cold(); err != nil {
			return res, err
		}
		start := time.Now()
		if _, err := run(e.ctx, nil, r.argv[0], r.argv[1:]...); err != nil {
			return res, fmt.Errorf("%s: %v", r.metric, err)
		}
		res[r.metric] = mbps(n, time.Since(start))
		os.Remove(filepath.Join(shm, "seq.dat"))
	}
	return res, nil
}

// ---- rand ---------------------------------------------------------------------

func runRand(e *runEnv) (map[string]float64, error) {
	res := map[string]float64{}
	p := filepath.Join(e.dir, "rand.dat")
	if err := writeFile(e.ctx, p, e.cfg.randBytes); err != nil {
		return res, fmt.Errorf("laying out: %v", err)
	}
	iops := randGo
	if e.cfg.useFio {
		iops = randFio
		e.note("random I/O by fio (psync, 1 job, queue depth 1)")
	} else {
		e.note("random I/O by a Go loop (fio not installed)")
	}
	w, err := iops(e, p, true)
	if err != nil {
		return res, err
	}
	res["rand-write"] = w
	if err := e.cold(); err != nil {
		return res, err
	}
	r, err := iops(e, p, false)
	if err != nil {
		return res, err
	}
	res["rand-read"] = r
	return res, nil
}

func randFio(e *runEnv, path string, write bool) (float64, error) {
	rw := "randread"
	if write {
		rw = "randwrite"
	}
	args := []string{
		"--name=" + rw, "--filename=" + path, fmt.Sprintf("--size=%d", e.cfg.randBytes),
		"--rw=" + rw, "--bs=4k", "--ioengine=psync", "--numjobs=1",
		fmt.Sprintf("--runtime=%d", int(e.cfg.randTime.Seconds())), "--time_based",
		"--randrepeat=0", "--refill_buffers", "--output-format=json",
	}
	if write {
		args = append(args, "--end_fsync=1")
	}
	cmd := exec.CommandContext(e.ctx, "fio", args...)
	cmd.Dir = e.dir
	out, err := cmd.Output()
	if err != nil {
		msg := ""
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			msg = lastLine(string(ee.Stderr))
		}
		return 0, fmt.Errorf("fio: %v %s", err, msg)
	}
	if i := strings.IndexByte(string(out), '{'); i > 0 {
		out = out[i:]
	}
	var r struct {
		Jobs []struct {
			Read  struct{ Iops float64 } `json:"read"`
			Write struct{ Iops float64 } `json:"write"`
		} `json:"jobs"`
	}
	if err := json.Unmarshal(out, &r); err != nil {
		return 0, fmt.Errorf("parsing fio output: %v", err)
	}
	if len(r.Jobs) == 0 {
		return 0, errors.New("fio reported no jobs")
	}
	if write {
		return r.Jobs[0].Write.Iops, nil
	}
	return r.Jobs[0].Read.Iops, nil
}

func randGo(e *runEnv, path string, write bool) (float64, error) {
	flag := os.O_RDONLY
	if write {
		flag = os.O_RDWR
	}
	f, err := os.OpenFile(path, flag, 0)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	g := newDataGen()
	blocks := e.cfg.randBytes / 4096
	buf := make([]byte, 4096)
	var ops int64
	start := time.Now()
	deadline := start.Add(e.cfg.randTime)
	for time.Now().Before(deadline) {
		if e.ctx.Err() != nil {
			return 0, e.ctx.Err()
		}
		for i := 0; i < 64; i++ {
			off := rand.Int64N(blocks) * 4096
			if write {
				g.fill(buf, off)
				_, err = f.WriteAt(buf, off)
			} else {
				_, err = f.ReadAt(buf, off)
			}
			if err != nil {
				return 0, err
			}
			ops++
		}
	}
	el := time.Since(start)
	if write {
		if err := f.Sync(); err != nil {
			return 0, err
		}
	}
	return float64(ops) / el.Seconds(), nil
}

// ---- burst --------------------------------------------------------------------

// burstBytes is what one burst writes: 64 MiB in 4 KiB writes.
const burstBytes = 64 << 20

// runBurst lays out a file of randBytes (fsync'd), then writes burstBytes
// of fresh 4 KiB blocks at random block offsets with pwrite(2) from one
// thread, and fsyncs. burst-write counts writes per second until the last
// write returned; burst-fsync until the fsync returned: the figure that
// includes what a write cache owes.
func runBurst(e *runEnv) (map[string]float64, error) {
	res := map[string]float64{}
	p := filepath.Join(e.dir, "burst.dat")
	size := max(e.cfg.randBytes, burstBytes)
	if err := writeFile(e.ctx, p, size); err != nil {
		return res, fmt.Errorf("laying out: %v", err)
	}
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		return res, err
	}
	defer f.Close()
	g := newDataGen()
	blocks := size / 4096
	n := int64(burstBytes / 4096)
	offs := make([]int64, n)
	for i := range offs {
		offs[i] = rand.Int64N(blocks) * 4096
	}
	bufs := make([]byte, 4096*64)
	start := time.Now()
	for i := int64(0); i < n; i++ {
		b := bufs[(i%64)*4096 : (i%64+1)*4096]
		if i%64 == 0 {
			if e.ctx.Err() != nil {
				return res, e.ctx.Err()
			}
			for j := int64(0); j < 64 && i+j < n; j++ {
				g.fill(bufs[j*4096:(j+1)*4096], offs[i+j])
			}
		}
		if _, err := f.WriteAt(b, offs[i]); err != nil {
			return res, err
		}
	}
	wrote := time.Since(start)
	if err := f.Sync(); err != nil {
		return res, err
	}
	synced := time.Since(start)
	res["burst-write"] = float64(n) / wrote.Seconds()
	res["burst-fsync"] = float64(n) / synced.Seconds()
	return res, nil
}

// ---- meta ---------------------------------------------------------------------

func runMeta(e *runEnv) (map[string]float64, error) {
	res := map[string]float64{}
	d := filepath.Join(e.dir, "meta")
	if err := os.Mkdir(d, 0o755); err != nil {
		return res, err
	}
	n := e.cfg.metaFiles
	names := make([]string, n)
	for i := range names {
		names[i] = filepath.Join(d, fmt.Sprintf("f%07d", i))
	}
	start := time.Now()
	for _, p := range names {
		fd, err := unix.Open(p, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return res, fmt.Errorf("create %s: %v", p, err)
		}
		unix.Close(fd)
	}
	res["create"] = float64(n) / time.Since(start).Seconds()
	if err := e.cold(); err != nil {
		return res, err
	}
	var st unix.Stat_t
	start = time.Now()
	for _, p := range names {
		if err := unix.Lstat(p, &st); err != nil {
			return res, fmt.Errorf("stat %s: %v", p, err)
		}
	}
	res["stat"] = float64(n) / time.Since(start).Seconds()
	if err := e.cold(); err != nil {
		return res, err
	}
	start = time.Now()
	for _, p := range names {
		if err := unix.Unlink(p); err != nil {
			return res, fmt.Errorf("unlink %s: %v", p, err)
		}
	}
	res["unlink"] = float64(n) / time.Since(start).Seconds()
	rate, err := create4K(d, n)
	if err != nil {
		return res, err
	}
	res["create-4k"] = rate
	return res, nil
}

// create4K creates n files of 4 KiB of random data in dir (each file's
// bytes differ, so no deduplication flatters a target) and returns the
// rate, files per second.
func create4K(dir string, n int) (float64, error) {
	buf := make([]byte, 4096)
	rng := rand.New(rand.NewPCG(uint64(n), 4096))
	for i := 0; i < len(buf); i += 8 {
		binary.LittleEndian.PutUint64(buf[i:], rng.Uint64())
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		binary.LittleEndian.PutUint64(buf, uint64(i))
		p := filepath.Join(dir, fmt.Sprintf("g%07d", i))
		fd, err := unix.Open(p, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, 0o644)
		if err != nil {
			return 0, fmt.Errorf("create %s: %v", p, err)
		}
		_, err = unix.Write(fd, buf)
		unix.Close(fd)
		if err != nil {
			return 0, fmt.Errorf("write %s: %v", p, err)
		}
	}
	return float64(n) / time.Since(start).Seconds(), nil
}

// ---- tree ---------------------------------------------------------------------

func runTree(e *runEnv) (map[string]float64, error) {
	res := map[string]float64{}
	src := e.cfg.treeSrc
	if err := warmTree(src); err != nil {
		return res, fmt.Errorf("reading %s: %v", src, err)
	}
	dst := filepath.Join(e.dir, "tree")
	start := time.Now()
	if _, err := run(e.ctx, nil, "cp", "-a", src, dst); err != nil {
		return res, err
	}
	res["cp-a"] = time.Since(start).Seconds()
	if err := e.cold(); err != nil {
		return res, err
	}
	start = time.Now()
	cmd := exec.CommandContext(e.ctx, "ls", "-lR", dst)
	cmd.Stdout = io.Discard
	if err := cmd.Run(); err != nil {
		return res, fmt.Errorf("ls -lR: %v", err)
	}
	res["ls-lR"] = time.Since(start).Seconds()
	return res, nil
}

// warmTree reads every file under root so that cp's source is in the page
// cache whatever ran before.
func warmTree(root string) error {
	buf := make([]byte, 1<<20)
	return filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		for {
			_, err := f.Read(buf)
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return err
			}
		}
	})
}

// treeSize counts files and bytes under root, for the report header.
func treeSize(root string) (files int, bytes int64) {
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil {
				files++
				bytes += fi.Size()
			}
		}
		return nil
	})
	return
}
