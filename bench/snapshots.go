package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// snapRun tracks the snapshots and branches one run made, so that they are
// destroyed even when a step fails.
type snapRun struct {
	e        *runEnv
	s        snapshotter
	prefix   string
	snaps    []string
	branches []string
}

func (r *snapRun) create(name string) (time.Duration, error) {
	name = r.prefix + name
	start := time.Now()
	err := r.s.snapCreate(r.e.ctx, name)
	d := time.Since(start)
	if err != nil {
		return d, fmt.Errorf("snapshot %s: %v", name, err)
	}
	r.snaps = append(r.snaps, name)
	return d, nil
}

func (r *snapRun) destroy(name string) (time.Duration, error) {
	start := time.Now()
	err := r.s.snapDestroy(r.e.ctx, name)
	d := time.Since(start)
	if err != nil {
		return d, fmt.Errorf("destroy %s: %v", name, err)
	}
	for i, n := range r.snaps {
		if n == name {
			r.snaps = append(r.snaps[:i], r.snaps[i+1:]...)
			break
		}
	}
	return d, nil
}

// cleanup destroys what is left, branches first; errors are logged.
func (r *snapRun) cleanup() {
	ctx := context.Background()
	for _, b := range r.branches {
		if err := r.s.branchDestroy(ctx, b); err != nil {
			logf("%s: destroying branch %s: %v", r.s.name(), b, err)
		}
	}
	for i := len(r.snaps) - 1; i >= 0; i-- {
		if err := r.s.snapDestroy(ctx, r.snaps[i]); err != nil {
			logf("%s: destroying snapshot %s: %v", r.s.name(), r.snaps[i], err)
		}
	}
	r.branches, r.snaps = nil, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// percentile of durations in ms (nearest rank).
func pctMS(ds []time.Duration, p float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	idx := int(p/100*float64(len(s))+0.999999) - 1
	if idx < 0 {
		idx = 0
	}
	if idx >= len(s) {
		idx = len(s) - 1
	}
	return ms(s[idx])
}

// smallFiles is how many 4 KiB files the snap workload writes.
const smallFiles = 300

func runSnap(e *runEnv) (map[string]float64, error) {
	res := map[string]float64{}
	s, ok := e.t.(snapshotter)
	if !ok {
		return res, errors.New("target takes no snapshots")
	}
	r := &snapRun{e: e, s: s, prefix: fmt.Sprintf("r%d-", e.rep)}
	defer r.cleanup()
	c := e.cfg

	// Content: one big file and a few hundred small ones.
	if err := writeFile(e.ctx, filepath.Join(e.dir, "big.dat"), c.snapDataBytes); err != nil {
		return res, err
	}
	small := filepath.Join(e.dir, "small")
	if err := os.Mkdir(small, 0o755); err != nil {
		return res, err
	}
	for i := 0; i < smallFiles; i++ {
		if err := writeFile(e.ctx, filepath.Join(small, fmt.Sprintf("s%04d", i)), 4096); err != nil {
			return res, err
		}
	}

	// Live throughput before any snapshot exists (compared below with the
	// same with the many snapshots present).
	if err := liveIO(e, "none", res); err != nil {
		return res, err
	}

	// Idle.
	var lat []time.Duration
	for i := 0; i < c.snapCount; i++ {
		d, err := r.create(fmt.Sprintf("idle-%d", i))
		if err != nil {
			return res, err
		}
		lat = append(lat, d)
	}
	res["snap-idle-p50"], res["snap-idle-p99"] = pctMS(lat, 50), pctMS(lat, 99)

	// Under a sustained sequential write.
	lat, stall, err := snapUnderWrite(r)
	if err != nil {
		return res, err
	}
	res["snap-write-p50"], res["snap-write-p99"] = pctMS(lat, 50), pctMS(lat, 99)
	res["writer-stall"] = ms(stall)

	// Branch of the first idle snapshot.
	lat = nil
	for i := 0; i < 5; i++ {
		name := fmt.Sprintf("%sbranch-%d", r.prefix, i)
		start := time.Now()
		if err := s.branchCreate(e.ctx, r.prefix+"idle-0", name); err != nil {
			e.note("branch: " + err.Error())
			break
		}
		lat = append(lat, time.Since(start))
		r.branches = append(r.branches, name)
	}
	if len(lat) > 0 {
		res["branch-create"] = pctMS(lat, 50)
	}
	if a, ok := s.(apiTarget); ok {
		lat = nil
		for i := 0; i < 5; i++ {
			name := fmt.Sprintf("%sbranch-api-%d", r.prefix, i)
			start := time.Now()
			if err := a.branchCreateAPI(r.prefix+"idle-0", name); err != nil {
				e.note("branch through the API: " + err.Error())
				break
			}
			lat = append(lat, time.Since(start))
			r.branches = append(r.branches, name)
		}
		if len(lat) > 0 {
			res["branch-create-api"] = pctMS(lat, 50)
		}
	}

	// rsync -a of a snapshot to the plain disk.
	dst := filepath.Join(e.scratch, fmt.Sprintf("rsync-%s-%d", s.name(), e.rep))
	if have("rsync") {
		if err := e.cold(); err != nil {
			return res, err
		}
		start := time.Now()
		_, err := run(e.ctx, nil, "rsync", "-a", r.s.snapPath(r.prefix+"idle-0")+"/", dst+"/")
		el := time.Since(start)
		os.RemoveAll(dst)
		if err != nil {
			e.note("rsync: " + err.Error())
		} else {
			res["rsync-snap"] = el.Seconds()
		}
	} else {
		e.note("rsync not installed")
	}

	// Many snapshots present.
	start := time.Now()
	for i := 0; i < c.manySnaps; i++ {
		if _, err := r.create(fmt.Sprintf("many-%d", i)); err != nil {
			return res, err
		}
	}
	res["snap-many-total"] = time.Since(start).Seconds()
	lat = nil
	for i := 0; i < c.snapCount; i++ {
		d, err := r.create(fmt.Sprintf("after-%d", i))
		if err != nil {
			return res, err
		}
		lat = append(lat, d)
	}
	res["snap-many-p50"], res["snap-many-p99"] = pctMS(lat, 50), pctMS(lat, 99)

	// Live throughput with the many snapshots present.
	if err := liveIO(e, "many", res); err != nil {
		return res, err
	}
	if res["snap-many-write"] > 0 {
		res["snap-many-write-slowdown"] = res["snap-none-write"] / res["snap-many-write"]
	}
	if res["snap-many-read"] > 0 {
		res["snap-many-read-slowdown"] = res["snap-none-read"] / res["snap-many-read"]
	}

	// Listing the many snapshots, cold then warm.
	if err := listSnaps(r, res); err != nil {
		return res, err
	}

	// Destroy them all (branches first: they may hold their snapshot).
	for _, b := range r.branches {
		if err := s.branchDestroy(e.ctx, b); err != nil {
			e.note("branch destroy: " + err.Error())
		}
	}
	r.branches = nil
	lat = nil
	for len(r.snaps) > 0 {
		d, err := r.destroy(r.snaps[len(r.snaps)-1])
		if err != nil {
			return res, err
		}
		lat = append(lat, d)
	}
	res["snap-destroy-p50"] = pctMS(lat, 50)

	// Snapshot create on a populated volume (no other snapshot left).
	if err := populatedSnaps(r, res); err != nil {
		return res, err
	}

	// Space return: a big file held only by a snapshot.
	if err := spaceReturn(r, res); err != nil {
		return res, err
	}
	if a, ok := s.(apiTarget); ok {
		if err := timeRollback(r, a, res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// snapUnderWrite takes snapCount snapshots 200 ms apart while a goroutine
// rewrites a file sequentially in 1 MiB writes, as fast as it can, wrapping
// around at streamBytes (so each snapshot pins at most that much); it
// returns the snapshot latencies and the longest single write during the
// snapshot phase.
func snapUnderWrite(r *snapRun) ([]time.Duration, time.Duration, error) {
	e := r.e
	f, err := os.OpenFile(filepath.Join(e.dir, "stream.dat"), os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	var (
		stop     atomic.Bool
		phase    atomic.Bool
		maxStall atomic.Int64
		werr     error
		wg       sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		g := newDataGen()
		buf := make([]byte, 1<<20)
		var off int64
		for !stop.Load() {
			g.fill(buf, off)
			start := time.Now()
			_, err := f.WriteAt(buf, off)
			d := time.Since(start)
			if err != nil {
				werr = err
				return
			}
			if phase.Load() && int64(d) > maxStall.Load() {
				maxStall.Store(int64(d))
			}
			off += int64(len(buf))
			if off >= e.cfg.streamBytes {
				off = 0
			}
		}
	}()
	time.Sleep(500 * time.Millisecond)
	phase.Store(true)
	var lat []time.Duration
	for i := 0; i < e.cfg.snapCount; i++ {
		d, err := r.create(fmt.Sprintf("write-%d", i))
		if err != nil {
			stop.Store(true)
			wg.Wait()
			return nil, 0, err
		}
		lat = append(lat, d)
		time.Sleep(200 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	if werr != nil {
		return nil, 0, fmt.Errorf("writer: %v", werr)
	}
	return lat, time.Duration(maxStall.Load()), nil
}

func spaceReturn(r *snapRun, res map[string]float64) error {
	e := r.e
	n := e.cfg.spaceBytes
	p := filepath.Join(e.dir, "space.dat")
	if err := writeFile(e.ctx, p, n); err != nil {
		return err
	}
	if _, err := r.create("space"); err != nil {
		return err
	}
	if err := os.Remove(p); err != nil {
		return err
	}
	root := r.s.spaceRoot()
	syncFS(root)
	time.Sleep(500 * time.Millisecond)
	syncFS(root)
	before, err := freeBytes(root)
	if err != nil {
		return err
	}
	d, err := r.destroy(r.prefix + "space")
	if err != nil {
		return err
	}
	res["destroy"] = ms(d)
	start := time.Now()
	want := before + uint64(float64(n)*0.9)
	var now uint64
	for {
		syncFS(root)
		now, err = freeBytes(root)
		if err != nil {
			return err
		}
		if now >= want {
			res["space-return"] = time.Since(start).Seconds()
			return nil
		}
		if time.Since(start) > e.cfg.spaceTimeout {
			got := int64(now) - int64(before)
			return fmt.Errorf("space not returned within %v (%d of %d MiB back)", e.cfg.spaceTimeout, got>>20, n>>20)
		}
		if e.ctx.Err() != nil {
			return e.ctx.Err()
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// liveIO writes a file of liveBytes to the live volume in 1 MiB writes with
// a final fsync, reads it back cold (caches dropped, snapfs remounted) and
// removes it, recording snap-WHEN-write and snap-WHEN-read in MB/s.
func liveIO(e *runEnv, when string, res map[string]float64) error {
	p := filepath.Join(e.dir, "live-"+when+".dat")
	n := e.cfg.liveBytes
	start := time.Now()
	if err := writeFile(e.ctx, p, n); err != nil {
		return fmt.Errorf("live write (%s): %v", when, err)
	}
	res["snap-"+when+"-write"] = mbps(n, time.Since(start))
	if err := e.cold(); err != nil {
		return err
	}
	start = time.Now()
	got, err := readFile(e.ctx, p)
	if err != nil {
		return fmt.Errorf("live read (%s): %v", when, err)
	}
	if got != n {
		return fmt.Errorf("live read (%s): read %d bytes back, wrote %d", when, got, n)
	}
	res["snap-"+when+"-read"] = mbps(n, time.Since(start))
	return os.Remove(p)
}

// listSnaps times os.ReadDir of the snapshot directory, cold then warm, and
// checks that it lists at least the snapshots this run holds.
func listSnaps(r *snapRun, res map[string]float64) error {
	e := r.e
	dir := r.s.snapListDir()
	if err := e.cold(); err != nil {
		return err
	}
	for _, key := range []string{"snap-list-cold", "snap-list-warm"} {
		start := time.Now()
		ents, err := os.ReadDir(dir)
		d := time.Since(start)
		if err != nil {
			return fmt.Errorf("listing %s: %v", dir, err)
		}
		if len(ents) < len(r.snaps) {
			return fmt.Errorf("listing %s: %d entries, want at least %d", dir, len(ents), len(r.snaps))
		}
		res[key] = ms(d)
	}
	return nil
}

// populatedSnaps brings the volume to popFiles files, reusing the smallFiles
// small ones already there and adding empty files (in directories of 1,000),
// takes snapCount snapshots of it, records their p50 and destroys
// them again.
func populatedSnaps(r *snapRun, res map[string]float64) error {
	e := r.e
	root := filepath.Join(e.dir, "populated")
	for i := 0; i < e.cfg.popFiles-smallFiles; i++ {
		d := filepath.Join(root, fmt.Sprintf("d%03d", i/1000))
		if i%1000 == 0 {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
			if e.ctx.Err() != nil {
				return e.ctx.Err()
			}
		}
		f, err := os.OpenFile(filepath.Join(d, fmt.Sprintf("f%05d", i)), os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
		if err != nil {
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	syncFS(r.s.spaceRoot())
	var lat []time.Duration
	for i := 0; i < e.cfg.snapCount; i++ {
		d, err := r.create(fmt.Sprintf("populated-%d", i))
		if err != nil {
			return err
		}
		lat = append(lat, d)
	}
	res["snap-populated-p50"] = pctMS(lat, 50)
	for len(r.snaps) > 0 {
		if _, err := r.destroy(r.snaps[len(r.snaps)-1]); err != nil {
			return err
		}
	}
	return nil
}

// apiTarget is a target whose snapshots can also be driven through a Go
// API (snapfs's client package), without starting a process per call.
type apiTarget interface {
	branchCreateAPI(snap, name string) error
	rollbackAPI(snap string) error
}

// timeRollback takes a snapshot, rewrites 100 small files and 64 MiB of
// the big file, and times the rollback to the snapshot.
func timeRollback(r *snapRun, a apiTarget, res map[string]float64) error {
	e := r.e
	if _, err := r.create("rollback"); err != nil {
		return err
	}
	for i := 0; i < 100; i++ {
		if err := writeFile(e.ctx, filepath.Join(e.dir, "small", fmt.Sprintf("s%04d", i)), 8192); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(filepath.Join(e.dir, "big.dat"), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	buf := make([]byte, 1<<20)
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	for off := int64(0); off < 64<<20; off += int64(len(buf)) {
		buf[0]++
		if _, err := f.WriteAt(buf, off); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	start := time.Now()
	if err := a.rollbackAPI(r.prefix + "rollback"); err != nil {
		e.note("rollback: " + err.Error())
		return nil
	}
	res["rollback"] = ms(time.Since(start))
	_, err = r.destroy(r.prefix + "rollback")
	return err
}
