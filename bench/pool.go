package main

// The pool workload: striping across members on devices of their own, and
// scrub against the members' raw read rate.
//
// Its targets are snapfs pools whose members each sit on a filesystem of
// their own: "snapfs-loop1" and "snapfs-loop2" put each member on ext4 on
// its own loop device over an image file in the work directory (so the
// devices are separate but the disk under the image files is the work
// directory's one), "snapfs-tmpfs1" and "snapfs-tmpfs2" on a tmpfs each
// (RAM: nothing is cold there, the figures show the daemon's own limits).
// The filesystems are made once per target; every run creates a fresh pool
// on them (so the packs hold exactly the run's file) and removes it after.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// poolTarget is a snapfs pool layout: members members, each on a
// filesystem of its own of the given medium ("loop" or "tmpfs").
type poolTarget struct {
	tname   string
	medium  string
	members int
	base    string
	size    int64 // of each member filesystem
	bin     string
	binErr  error
	devs    []memberDev
	undos   []func() error
}

// memberDev is one member's filesystem: mounted at mnt, over loop device
// loop backed by img (loop medium only).
type memberDev struct {
	img, loop, mnt string
}

// poolOneMember maps each 2-member pool target to its 1-member counterpart, the
// baseline of its "vs 1 member" ratio.
var poolOneMember = map[string]string{
	"snapfs-loop2":  "snapfs-loop1",
	"snapfs-tmpfs2": "snapfs-tmpfs1",
}

func newPoolTarget(name, base string, c *config, bin string, binErr error) *poolTarget {
	t := &poolTarget{tname: name, base: base, bin: bin, binErr: binErr}
	switch name {
	case "snapfs-loop1", "snapfs-loop2":
		t.medium = "loop"
	default:
		t.medium = "tmpfs"
	}
	t.members = 1
	if strings.HasSuffix(name, "2") {
		t.members = 2
	}
	// Room for the whole file on one member, its record headers and
	// padding (3 %), a metadata checkpoint, the pool's slop reserve and
	// ext4's own overhead.
	t.size = c.poolBytes*3/2 + 256<<20
	return t
}

func (t *poolTarget) name() string { return t.tname }

// dir is where each run's pool directory and mount point are made (on the
// work directory's disk; the members are elsewhere).
func (t *poolTarget) dir() string { return filepath.Join(t.base, "runs") }

func (t *poolTarget) setup(ctx context.Context) error {
	if t.binErr != nil {
		return t.binErr
	}
	if !isRoot {
		what := "a tmpfs"
		if t.medium == "loop" {
			what = "ext4 on a loop device"
		}
		return fmt.Errorf("needs root (mounts %s per member); skipped", what)
	}
	if t.medium == "loop" {
		for _, p := range []string{"losetup", "mkfs.ext4"} {
			if !have(p) {
				return fmt.Errorf("%s not installed; skipped", p)
			}
		}
	}
	if err := os.MkdirAll(t.dir(), 0o755); err != nil {
		return err
	}
	for i := 0; i < t.members; i++ {
		d, err := t.makeMember(ctx, i)
		if err != nil {
			return fmt.Errorf("member %d: %w", i, err)
		}
		t.devs = append(t.devs, d)
	}
	return nil
}

// makeMember makes and mounts member i's filesystem, registering every
// undo step as it goes so that a failure half way leaves nothing behind.
func (t *poolTarget) makeMember(ctx context.Context, i int) (memberDev, error) {
	d := memberDev{mnt: filepath.Join(t.base, fmt.Sprintf("member%d", i))}
	if err := os.MkdirAll(d.mnt, 0o755); err != nil {
		return d, err
	}
	if t.medium == "tmpfs" {
		if _, err := run(ctx, nil, "mount", "-t", "tmpfs", "-o", fmt.Sprintf("size=%d", t.size), "tmpfs", d.mnt); err != nil {
			return d, err
		}
		t.undos = append(t.undos, cleanups.push("umount "+d.mnt, func() error { return unmount(d.mnt) }))
		return d, nil
	}
	d.img = filepath.Join(t.base, fmt.Sprintf("member%d.img", i))
	f, err := os.Create(d.img)
	if err != nil {
		return d, err
	}
	t.undos = append(t.undos, cleanups.push("rm "+d.img, func() error { return os.Remove(d.img) }))
	err = f.Truncate(t.size)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return d, err
	}
	// Inode tables and journal written now, not by a background thread
	// during the measurements; one inode per MiB is plenty for packs.
	if _, err := run(ctx, nil, "mkfs.ext4", "-q", "-F", "-T", "largefile",
		"-E", "lazy_itable_init=0,lazy_journal_init=0", d.img); err != nil {
		return d, err
	}
	// Direct I/O to the image file: the loop device then caches nothing
	// of its own, and dropping the page cache empties the member for real.
	out, err := run(ctx, nil, "losetup", "-f", "--show", "--direct-io=on", d.img)
	if err != nil {
		debugf("losetup --direct-io=on: %v; without", err)
		out, err = run(ctx, nil, "losetup", "-f", "--show", d.img)
	}
	if err != nil {
		return d, err
	}
	d.loop = strings.TrimSpace(out)
	loop := d.loop
	t.undos = append(t.undos, cleanups.push("losetup -d "+loop, func() error {
		_, err := run(context.Background(), nil, "losetup", "-d", loop)
		return err
	}))
	if _, err := run(ctx, nil, "mount", "-o", "noatime", d.loop, d.mnt); err != nil {
		return d, err
	}
	t.undos = append(t.undos, cleanups.push("umount "+d.mnt, func() error { return unmount(d.mnt) }))
	return d, nil
}

// remountMembers unmounts and mounts again every loop member filesystem,
// so that nothing of them survives in any cache. tmpfs members stay.
func (t *poolTarget) remountMembers(ctx context.Context) error {
	if t.medium != "loop" {
		return nil
	}
	for _, d := range t.devs {
		if _, err := run(ctx, nil, "umount", d.mnt); err != nil {
			return err
		}
		if _, err := run(ctx, nil, "mount", "-o", "noatime", d.loop, d.mnt); err != nil {
			return err
		}
	}
	return nil
}

func (t *poolTarget) coldCache(ctx context.Context) (bool, error) { return dropCaches(), nil }

func (t *poolTarget) teardown() error {
	var first error
	for i := len(t.undos) - 1; i >= 0; i-- {
		if err := t.undos[i](); err != nil && first == nil {
			first = err
		}
	}
	t.undos, t.devs = nil, nil
	return first
}

// poolRun is one run's fresh pool on a poolTarget's members, mounted.
type poolRun struct {
	t       *poolTarget
	fs      *snapfsTarget
	members []string
}

// newPoolRun creates a pool with one member directory on each of t's
// filesystems, a volume, and mounts it. close undoes all of it.
func newPoolRun(e *runEnv, t *poolTarget) (*poolRun, error) {
	r := &poolRun{t: t}
	for _, d := range t.devs {
		r.members = append(r.members, filepath.Join(d.mnt, fmt.Sprintf("run%d", e.rep)))
	}
	r.fs = &snapfsTarget{tname: t.tname, base: e.dir, members: t.members, bin: t.bin, memberDirs: r.members}
	c := e.cfg
	if c.profileWorkload == "pool" {
		suffix := fmt.Sprintf(".%s.rep%d", t.tname, e.rep)
		r.fs.profCPU, r.fs.profMem = addSuffix(c.cpuProfile, suffix), addSuffix(c.memProfile, suffix)
	}
	if err := r.fs.setup(e.ctx); err != nil {
		r.close()
		return nil, err
	}
	return r, nil
}

// cold unmounts snapfs, remounts the member filesystems, drops the page
// cache and mounts snapfs again.
func (r *poolRun) cold(e *runEnv) error {
	if err := r.fs.umount(); err != nil {
		return err
	}
	if err := r.t.remountMembers(e.ctx); err != nil {
		return err
	}
	if !dropCaches() {
		e.note("caches not dropped: reads are warm")
	}
	return r.fs.mount(e.ctx)
}

func (r *poolRun) close() error {
	err := r.fs.teardown()
	for _, m := range r.members {
		if rerr := os.RemoveAll(m); rerr != nil && err == nil {
			err = rerr
		}
	}
	return err
}

// packFiles lists the pack files of every member, by member.
func (r *poolRun) packFiles() ([][]string, error) {
	var out [][]string
	for _, m := range r.members {
		ps, err := filepath.Glob(filepath.Join(m, "packs", "*.pack"))
		if err != nil {
			return nil, err
		}
		if len(ps) == 0 {
			return nil, fmt.Errorf("no pack files in %s", m)
		}
		sort.Strings(ps)
		out = append(out, ps)
	}
	return out, nil
}

// readRaw reads every given file with plain sequential 1 MiB reads, the
// files of each member one after the other and the members in parallel
// (one reader per device, as a striped reader would keep them busy), and
// returns the bytes read.
func readRaw(ctx context.Context, byMember [][]string) (int64, error) {
	var wg sync.WaitGroup
	totals := make([]int64, len(byMember))
	errs := make([]error, len(byMember))
	for i, files := range byMember {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, 1<<20)
			for _, p := range files {
				n, err := readAll(ctx, p, buf)
				totals[i] += n
				if err != nil {
					errs[i] = err
					return
				}
			}
		}()
	}
	wg.Wait()
	var sum int64
	for _, n := range totals {
		sum += n
	}
	return sum, errors.Join(errs...)
}

func readAll(ctx context.Context, path string, buf []byte) (int64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	var total int64
	for {
		if ctx.Err() != nil {
			return total, ctx.Err()
		}
		n, err := f.Read(buf)
		total += int64(n)
		if err == io.EOF {
			return total, nil
		}
		if err != nil {
			return total, fmt.Errorf("reading %s: %w", path, err)
		}
	}
}

// scrubJSON is the part of `snapfs pool scrub --json` the workload reads.
type scrubJSON struct {
	Chunks int64 `json:"chunks"`
	Copies int64 `json:"copies"`
	Bytes  int64 `json:"bytes"`
	Bad    int64 `json:"bad"`
}

func runPool(e *runEnv) (map[string]float64, error) {
	res := map[string]float64{}
	t, ok := e.t.(*poolTarget)
	if !ok {
		return res, errors.New("not a pool layout target")
	}
	if t.medium == "loop" {
		e.note("loop members: ext4 on a loop device (direct I/O) over an image file each; the image files share the work directory's disk")
	} else {
		e.note("tmpfs members: the data stays in RAM, nothing is cold; the figures are the daemon's own limits")
	}
	r, err := newPoolRun(e, t)
	if err != nil {
		return res, err
	}
	defer func() {
		if err := r.close(); err != nil {
			logf("%s: removing the run's pool: %v", t.tname, err)
		}
	}()
	n := e.cfg.poolBytes
	p := filepath.Join(r.fs.dir(), "big.dat")
	dropCaches()

	start := time.Now()
	if err := writeFile(e.ctx, p, n); err != nil {
		return res, err
	}
	res["pool-write"] = mbps(n, time.Since(start))

	if err := r.cold(e); err != nil {
		return res, err
	}
	rate, err := readRate(e.ctx, p, n)
	if err != nil {
		return res, err
	}
	res["pool-read"] = rate

	// Scrub through the daemon, the volume mounted and idle, cold.
	if err := r.cold(e); err != nil {
		return res, err
	}
	start = time.Now()
	out, err := r.fs.cli(e.ctx, "-p", r.fs.pool(), "pool", "scrub", "--json")
	scrubTime := time.Since(start)
	if err != nil {
		return res, err
	}
	var sr scrubJSON
	if err := json.Unmarshal([]byte(out), &sr); err != nil {
		return res, fmt.Errorf("parsing pool scrub --json: %v", err)
	}
	if sr.Bad != 0 || sr.Bytes < n {
		return res, fmt.Errorf("scrub read %d bytes (want at least %d), %d bad copies", sr.Bytes, n, sr.Bad)
	}
	res["scrub"] = mbps(sr.Bytes, scrubTime)
	e.note("scrub: `snapfs pool scrub` through the daemon (volume mounted, idle), cold, timed from the command's start to its exit; MB/s of file data verified")

	// The members' raw read rate: the same pack files, read plainly, cold,
	// with snapfs unmounted.
	if err := r.fs.umount(); err != nil {
		return res, err
	}
	packs, err := r.packFiles()
	if err != nil {
		return res, err
	}
	if err := r.t.remountMembers(e.ctx); err != nil {
		return res, err
	}
	dropCaches()
	start = time.Now()
	raw, err := readRaw(e.ctx, packs)
	rawTime := time.Since(start)
	if err != nil {
		return res, err
	}
	if raw < n {
		return res, fmt.Errorf("pack files hold %d bytes, less than the %d written", raw, n)
	}
	res["raw-read"] = mbps(raw, rawTime)
	// The fraction compares the times to go through the same pack bytes.
	res["scrub-fraction"] = rawTime.Seconds() / scrubTime.Seconds()
	return res, nil
}
