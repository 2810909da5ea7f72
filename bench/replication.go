package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// runSend measures replication (workload "send"): a snapshot of many
// files sent whole into a second pool on the plain disk, then an
// incremental after 1% of the files changed, each against rsync -a of the
// same snapshot into a plain directory. Both sides end durable: receive
// syncs its pool, and rsync is followed by sync(1).
func runSend(e *runEnv) (map[string]float64, error) {
	res := map[string]float64{}
	t, ok := e.t.(*snapfsTarget)
	if !ok {
		return res, errors.New("send/receive is snapfs only")
	}
	if !have("rsync") {
		return res, errors.New("rsync is not installed")
	}
	files, total := 10000, int64(1<<30)
	if e.cfg.quick {
		files, total = 1000, 64<<20
	}
	per := total / int64(files)
	g := newDataGen()
	buf := make([]byte, per)
	src := filepath.Join(e.dir, "repl")
	for i := 0; i < files; i++ {
		d := filepath.Join(src, fmt.Sprintf("d%02d", i%100))
		if i < 100 {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return res, err
			}
		}
		g.fill(buf, int64(i)*per)
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%05d", i)), buf, 0o644); err != nil {
			return res, err
		}
	}
	r := &snapRun{e: e, s: t, prefix: fmt.Sprintf("r%d-", e.rep)}
	defer r.cleanup()
	if _, err := r.create("repl-a"); err != nil {
		return res, err
	}
	q := filepath.Join(e.scratch, fmt.Sprintf("send-pool-%d", e.rep))
	qdisk := filepath.Join(e.scratch, fmt.Sprintf("send-disk-%d", e.rep))
	rs := filepath.Join(e.scratch, fmt.Sprintf("send-rsync-%d", e.rep))
	defer os.RemoveAll(q)
	defer os.RemoveAll(qdisk)
	defer os.RemoveAll(rs)
	if err := os.MkdirAll(qdisk, 0o755); err != nil {
		return res, err
	}
	if _, err := run(e.ctx, nil, t.bin, "pool", "create", q, "--member", qdisk); err != nil {
		return res, err
	}
	pipe := func(send string) (time.Duration, error) {
		start := time.Now()
		cmd := exec.CommandContext(e.ctx, "bash", "-c", "set -o pipefail; "+t.bin+" -p "+t.pool()+" "+send+" | "+t.bin+" -p "+q+" receive copy")
		out, err := cmd.CombinedOutput()
		if err != nil {
			return 0, fmt.Errorf("%s: %v: %s", send, err, out)
		}
		return time.Since(start), nil
	}
	rsync := func(snap string) (time.Duration, error) {
		start := time.Now()
		if _, err := run(e.ctx, nil, "rsync", "-a", t.snapPath(r.prefix+snap)+"/", rs+"/"); err != nil {
			return 0, err
		}
		if _, err := run(e.ctx, nil, "sync"); err != nil {
			return 0, err
		}
		return time.Since(start), nil
	}
	full, err := pipe("send " + t.vol + "@" + r.prefix + "repl-a")
	if err != nil {
		return res, err
	}
	rfull, err := rsync("repl-a")
	if err != nil {
		return res, err
	}
	res["send-full"], res["rsync-full"] = full.Seconds(), rfull.Seconds()
	res["send-full-ratio"] = full.Seconds() / rfull.Seconds()

	// 1% of the files change: their first 4 KiB are rewritten.
	for i := 0; i < files; i += 100 {
		p := filepath.Join(src, fmt.Sprintf("d%02d", i%100), fmt.Sprintf("f%05d", i))
		f, err := os.OpenFile(p, os.O_WRONLY, 0)
		if err != nil {
			return res, err
		}
		g.fill(buf[:4096], int64(files+i)*per)
		_, err = f.WriteAt(buf[:4096], 0)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return res, err
		}
	}
	if _, err := r.create("repl-b"); err != nil {
		return res, err
	}
	incr, err := pipe("send -i " + r.prefix + "repl-a " + t.vol + "@" + r.prefix + "repl-b")
	if err != nil {
		return res, err
	}
	rincr, err := rsync("repl-b")
	if err != nil {
		return res, err
	}
	res["send-incr"], res["rsync-incr"] = incr.Seconds(), rincr.Seconds()
	res["send-incr-speedup"] = rincr.Seconds() / incr.Seconds()
	res["send-incr-of-full"] = 100 * incr.Seconds() / full.Seconds()
	return res, os.RemoveAll(src)
}
