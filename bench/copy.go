package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// ---- copy ---------------------------------------------------------------------

// copyWorkload measures a file copy inside the target: coreutils cp, which
// uses copy_file_range(2) (a copy by reference on snapfs, by extent
// sharing on filesystems that reflink), against dd reading and writing
// every byte. Both include an fsync of the copy. The source is the
// sequential workload's size (1 GiB, 64 MiB with --quick) of fresh data.
var copyWorkload = &workload{
	name: "copy", desc: "cp (copy_file_range) of a large file inside the target against a byte copy (dd), both fsync'd",
	metrics: []metricSpec{
		{"cp-file", "s", false, "cp of the file inside the target, incl. fsync of the copy"},
		{"byte-copy", "s", false, "dd bs=1M of the same file inside the target, conv=fsync"},
		{"cp-fraction", "x", false, "cp-file / byte-copy (small: the copy is by reference)"},
	},
	run: runCopy,
}

func init() { allWorkloads = append(allWorkloads, copyWorkload) }

func runCopy(e *runEnv) (map[string]float64, error) {
	res := map[string]float64{}
	src := filepath.Join(e.dir, "copy-src.dat")
	if err := writeFile(e.ctx, src, e.cfg.seqBytes); err != nil {
		return res, fmt.Errorf("laying out: %v", err)
	}
	dst := filepath.Join(e.dir, "copy-cp.dat")
	start := time.Now()
	if _, err := run(e.ctx, nil, "cp", src, dst); err != nil {
		return res, err
	}
	if err := fsyncPath(dst); err != nil {
		return res, err
	}
	cp := time.Since(start)
	res["cp-file"] = cp.Seconds()
	start = time.Now()
	if _, err := run(e.ctx, nil, "dd", "if="+src, "of="+filepath.Join(e.dir, "copy-dd.dat"), "bs=1M", "conv=fsync", "status=none"); err != nil {
		return res, err
	}
	dd := time.Since(start)
	res["byte-copy"] = dd.Seconds()
	res["cp-fraction"] = cp.Seconds() / dd.Seconds()
	return res, nil
}

// fsyncPath opens path and fsyncs it.
func fsyncPath(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
