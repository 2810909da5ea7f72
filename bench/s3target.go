package main

// The snapfs-s3 target and the fsync-small workload: snapfs with a pool
// whose only member is a bucket on a SeaweedFS server the bench starts
// (docs/objects.md: records staged in a local pack, sealed into objects
// of up to 8 MiB by one PUT each, read back by ranged GETs). It is
// compared against the objects workload's raw PUT and GET on the
// seaweedfs target, a server started the same way on the same disk.
//
// The volume is mounted without --cache-dir, so a cold read (after the
// remount and drop_caches every cold read does) goes to the bucket.
//
// snapfs-s3 is opt-in: it is not in the default or --quick target sets
// and runs only when --targets names it.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/snapfs/snapfs/internal/seaweed"
	"github.com/snapfs/snapfs/objstore"
)

// s3Bucket and s3Prefix name where snapfs-s3's member keeps its objects.
const (
	s3Bucket = "snapfs-bench"
	s3Prefix = "pool"
)

// s3Target is a snapfs target whose pool's only member is a bucket; the
// embedded snapfsTarget does the pool, mount, remount and profiles.
type s3Target struct {
	*snapfsTarget
	srv     *seaweed.Server
	undoSrv func() error // stops srv, also on Ctrl-C
}

func newS3Target(base, bin string, binErr error) *s3Target {
	return &s3Target{snapfsTarget: &snapfsTarget{tname: "snapfs-s3", base: base, bin: bin, binErr: binErr}}
}

func (t *s3Target) setup(ctx context.Context) error {
	if t.binErr != nil {
		return t.binErr
	}
	dir := filepath.Join(t.base, "seaweed")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	srv, err := startSeaweed(dir)
	if err != nil {
		return err
	}
	t.srv = srv
	t.undoSrv = cleanups.push("stop seaweed "+dir, func() error { srv.Stop(); return nil })
	t.memberArgs = []string{"--member", fmt.Sprintf("s3://%s/%s", s3Bucket, s3Prefix),
		"--s3-endpoint", srv.Endpoint, "--s3-addressing", "path"}
	return t.snapfsTarget.setup(ctx)
}

func (t *s3Target) teardown() error {
	err := t.snapfsTarget.teardown()
	if t.undoSrv != nil {
		_ = t.undoSrv()
		t.undoSrv, t.srv = nil, nil
	}
	return err
}

// bucket opens the member's bucket prefix with the bench's own client,
// to count the objects snapfs made.
func (t *s3Target) bucket(ctx context.Context) (objstore.Store, error) {
	if t.srv == nil {
		return nil, errors.New("snapfs-s3: no server")
	}
	return objstore.Open(ctx, objstore.Config{
		URL: fmt.Sprintf("s3://%s/%s", s3Bucket, s3Prefix), Endpoint: t.srv.Endpoint,
	})
}

// listObjects lists the objects under the member's prefix: key to size.
func (t *s3Target) listObjects(ctx context.Context) (map[string]int64, error) {
	b, err := t.bucket(ctx)
	if err != nil {
		return nil, err
	}
	infos, err := b.List(ctx, "")
	if err != nil {
		return nil, fmt.Errorf("listing %s: %v", b, err)
	}
	m := make(map[string]int64, len(infos))
	for _, in := range infos {
		m[in.Key] = in.Size
	}
	return m, nil
}

// ---- fsync-small ------------------------------------------------------------

// fsyncSmallOps is how many 4 KiB write + fsync pairs fsync-small does.
func fsyncSmallOps(c *config) int {
	if c.quick {
		return 100
	}
	return 500
}

// runFsyncSmall appends 4 KiB and fsyncs, N times, to one file, and
// reports the latency of each pair. On snapfs-s3 it also counts the
// objects the loop made in the bucket, then runs `snapfs pool repack` and
// counts them again.
func runFsyncSmall(e *runEnv) (map[string]float64, error) {
	res := map[string]float64{}
	s3, isS3 := e.t.(*s3Target)
	var before map[string]int64
	if isS3 {
		var err error
		if before, err = s3.listObjects(e.ctx); err != nil {
			return res, err
		}
	}
	n := fsyncSmallOps(e.cfg)
	f, err := os.OpenFile(filepath.Join(e.dir, "fsync.dat"), os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o644)
	if err != nil {
		return res, err
	}
	g := newDataGen()
	buf := make([]byte, 4096)
	lat := make([]float64, 0, n)
	for i := 0; i < n; i++ {
		if e.ctx.Err() != nil {
			f.Close()
			return res, e.ctx.Err()
		}
		g.fill(buf, int64(i)*4096)
		start := time.Now()
		if _, err := f.Write(buf); err != nil {
			f.Close()
			return res, err
		}
		if err := f.Sync(); err != nil {
			f.Close()
			return res, err
		}
		lat = append(lat, float64(time.Since(start).Microseconds())/1000)
	}
	if err := f.Close(); err != nil {
		return res, err
	}
	sort.Float64s(lat)
	res["fsync-4k-p50"] = lat[len(lat)/2]
	res["fsync-4k-p99"] = lat[len(lat)*99/100]
	e.note(fmt.Sprintf("fsync-small: %d appends of 4 KiB to one file, each followed by fsync", n))
	if !isS3 {
		return res, nil
	}
	after, err := s3.listObjects(e.ctx)
	if err != nil {
		return res, err
	}
	var made int
	var madeBytes int64
	for k, size := range after {
		if _, ok := before[k]; !ok {
			made++
			madeBytes += size
		}
	}
	res["fsync-objects"] = float64(made)
	if made > 0 {
		res["fsync-obj-kib"] = float64(madeBytes) / float64(made) / 1024
	}
	res["bucket-objects"] = float64(len(after))
	out, err := s3.cli(e.ctx, "-p", s3.pool(), "pool", "repack")
	if err != nil {
		return res, err
	}
	e.note("fsync-small: snapfs pool repack said: " + strings.TrimSpace(lastLine(out)))
	repacked, err := s3.listObjects(e.ctx)
	if err != nil {
		return res, err
	}
	res["bucket-objects-repacked"] = float64(len(repacked))
	return res, nil
}

// ---- scrub-s3 -----------------------------------------------------------------

// runScrubS3 writes one file of seq_bytes (fsync at the end) on
// snapfs-s3, empties the caches (remount, drop_caches: every record must
// come from the bucket) and times `snapfs pool scrub` through the daemon:
// the rate at which scrub verifies an object-store member, to set
// against the objects workload's raw GET.
func runScrubS3(e *runEnv) (map[string]float64, error) {
	res := map[string]float64{}
	s3 := e.t.(*s3Target) // workload.s3: nothing else runs it
	n := e.cfg.seqBytes
	if err := writeFile(e.ctx, filepath.Join(e.dir, "scrub.dat"), n); err != nil {
		return res, err
	}
	if err := e.cold(); err != nil {
		return res, err
	}
	start := time.Now()
	out, err := s3.cli(e.ctx, "-p", s3.pool(), "pool", "scrub", "--json")
	took := time.Since(start)
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
	res["scrub-s3"] = mbps(sr.Bytes, took)
	e.note("scrub-s3: `snapfs pool scrub` through the daemon of snapfs-s3 (volume mounted, idle, remounted and caches dropped first), timed from the command's start to its exit; MB/s of file data verified, every copy read from the bucket")
	return res, nil
}
