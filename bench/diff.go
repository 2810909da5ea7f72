package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/snapfs/snapfs/client"
)

// differ is a target that can list what changed between two snapshots and
// the versions of one file (snapfs only; btrfs has neither).
type differ interface {
	snapshotter
	// diffCLI runs snapfs diff between two snapshots and returns its output.
	diffCLI(ctx context.Context, from, to string) (string, error)
	// diffAPI asks the daemon through the Go client; it returns the changes.
	diffAPI(from, to string) (int, error)
	// versionsCLI runs snapfs versions on a path in the mount.
	versionsCLI(ctx context.Context, path string) (string, error)
	// versionsAPI asks the daemon for the versions of inode st_ino.
	versionsAPI(stIno uint64) (int, error)
}

func (t *snapfsTarget) diffCLI(ctx context.Context, from, to string) (string, error) {
	return t.cli(ctx, "-p", t.pool(), "diff", t.vol+"@"+from, t.vol+"@"+to)
}

func (t *snapfsTarget) diffAPI(from, to string) (int, error) {
	c, err := client.Dial(t.pool())
	if err != nil {
		return 0, err
	}
	defer c.Close()
	l, err := c.Diff(t.vol+"@"+from, t.vol+"@"+to)
	return len(l), err
}

func (t *snapfsTarget) versionsCLI(ctx context.Context, path string) (string, error) {
	return t.cli(ctx, "versions", path)
}

func (t *snapfsTarget) versionsAPI(stIno uint64) (int, error) {
	c, err := client.Dial(t.pool())
	if err != nil {
		return 0, err
	}
	defer c.Close()
	v, err := c.Versions(uint32(stIno>>40), stIno&(1<<40-1))
	return len(v.Versions), err
}

// diffFiles is how many files the diff workload writes, and diffChanged
// how many of them (1%) it changes between its two snapshots;
// versionsSnaps is how many snapshots the versions step takes.
const (
	diffFiles     = 10000
	diffChanged   = 100
	versionsSnaps = 1000
)

// medianOf times fn n times and returns the median in milliseconds.
func medianOf(n int, fn func() error) (float64, error) {
	var ds []time.Duration
	for i := 0; i < n; i++ {
		start := time.Now()
		if err := fn(); err != nil {
			return 0, err
		}
		ds = append(ds, time.Since(start))
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ms(ds[len(ds)/2]), nil
}

// runDiff writes 10,000 files of 4 KiB in 100 directories, snapshots, changes
// 1% of them, snapshots again and times snapfs diff between the two
// snapshots; then takes 1,000 snapshots of one file, changed before every
// tenth, and times snapfs versions of it. Each figure is the median of 5
// runs, through the CLI (a process start included) and the Go client.
func runDiff(e *runEnv) (map[string]float64, error) {
	res := map[string]float64{}
	d, ok := e.t.(differ)
	if !ok {
		return res, errors.New("target has no diff or versions")
	}
	r := &snapRun{e: e, s: d, prefix: fmt.Sprintf("r%d-", e.rep)}
	defer r.cleanup()
	tree := filepath.Join(e.dir, "tree")
	for i := 0; i < diffFiles; i++ {
		dir := filepath.Join(tree, fmt.Sprintf("d%02d", i/100))
		if i%100 == 0 {
			if err := os.MkdirAll(dir, 0o755); err != nil {
				return res, err
			}
		}
		if err := writeFile(e.ctx, filepath.Join(dir, fmt.Sprintf("f%05d", i)), 4096); err != nil {
			return res, err
		}
	}
	if _, err := r.create("diff-a"); err != nil {
		return res, err
	}
	for i := 0; i < diffChanged; i++ {
		n := i * (diffFiles / diffChanged)
		p := filepath.Join(tree, fmt.Sprintf("d%02d", n/100), fmt.Sprintf("f%05d", n))
		if err := writeFile(e.ctx, p, 4096); err != nil {
			return res, err
		}
	}
	if _, err := r.create("diff-b"); err != nil {
		return res, err
	}
	a, b := r.prefix+"diff-a", r.prefix+"diff-b"
	var lines int
	v, err := medianOf(5, func() error {
		out, err := d.diffCLI(e.ctx, a, b)
		lines = strings.Count(out, "\n")
		return err
	})
	if err != nil {
		return res, err
	}
	if lines < diffChanged {
		return res, fmt.Errorf("diff printed %d lines for %d changed files", lines, diffChanged)
	}
	res["diff-1pct"] = v
	if res["diff-1pct-api"], err = medianOf(5, func() error { _, err := d.diffAPI(a, b); return err }); err != nil {
		return res, err
	}

	file := filepath.Join(e.dir, "app.conf")
	for i := 0; i < versionsSnaps; i++ {
		if i%10 == 0 {
			if err := os.WriteFile(file, []byte(fmt.Sprintf("version %d\n", i/10)), 0o644); err != nil {
				return res, err
			}
		}
		if _, err := r.create(fmt.Sprintf("v%04d", i)); err != nil {
			return res, err
		}
	}
	var st os.FileInfo
	if st, err = os.Stat(file); err != nil {
		return res, err
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return res, errors.New("no st_ino")
	}
	stIno := sys.Ino
	var n int
	if res["versions-1000"], err = medianOf(5, func() error { _, err := d.versionsCLI(e.ctx, file); return err }); err != nil {
		return res, err
	}
	if res["versions-1000-api"], err = medianOf(5, func() error { var err error; n, err = d.versionsAPI(stIno); return err }); err != nil {
		return res, err
	}
	if n != versionsSnaps/10 {
		return res, fmt.Errorf("versions found %d versions, want %d", n, versionsSnaps/10)
	}
	return res, nil
}
