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

	// 1% of the files change: their first 4 KiB are rewritten (files
	// first, first+100, ...).
	change := func(first int) error {
		for i := first; i < files; i += 100 {
			p := filepath.Join(src, fmt.Sprintf("d%02d", i%100), fmt.Sprintf("f%05d", i))
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			g.fill(buf[:4096], int64(files+i)*per)
			_, err = f.WriteAt(buf[:4096], 0)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return err
			}
		}
		return nil
	}
	if err := change(0); err != nil {
		return res, err
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

	// The same into a target pool that a daemon serves (its volume
	// mounted): receive goes through the daemon's socket, so no process
	// opens and closes the pool's metadata, and the checkpoint after the
	// snapshot is the daemon's, in the background. Another 1% changes.
	if err := change(50); err != nil {
		return res, err
	}
	if _, err := r.create("repl-c"); err != nil {
		return res, err
	}
	qmnt := filepath.Join(e.scratch, fmt.Sprintf("send-mnt-%d", e.rep))
	if err := os.MkdirAll(qmnt, 0o755); err != nil {
		return res, err
	}
	defer os.RemoveAll(qmnt)
	if _, err := run(e.ctx, nil, t.bin, "-p", q, "mount", "copy", qmnt, "-d"); err != nil {
		return res, err
	}
	if err := waitMounted(qmnt, 10*time.Second); err != nil {
		stopServed(e, t.bin, q, qmnt)
		return res, err
	}
	served, err := pipe("send -i " + r.prefix + "repl-b " + t.vol + "@" + r.prefix + "repl-c")
	if serr := stopServed(e, t.bin, q, qmnt); err == nil {
		err = serr
	}
	if err != nil {
		return res, err
	}
	rserved, err := rsync("repl-c")
	if err != nil {
		return res, err
	}
	res["send-incr-served"], res["rsync-incr-c"] = served.Seconds(), rserved.Seconds()
	res["send-incr-served-speedup"] = rserved.Seconds() / served.Seconds()
	return res, os.RemoveAll(src)
}

// stopServed unmounts the target pool's volume and waits for its daemon
// to exit (its control socket goes), so the pool can be removed.
func stopServed(e *runEnv, bin, q, qmnt string) error {
	_, err := run(e.ctx, nil, bin, "umount", qmnt)
	if err != nil {
		err = unmount(qmnt)
	}
	sock := filepath.Join(q, "control.sock")
	for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if _, serr := os.Stat(sock); os.IsNotExist(serr) {
			return err
		}
	}
	return errors.Join(err, fmt.Errorf("the daemon of %s still runs 60 s after unmount", q))
}
