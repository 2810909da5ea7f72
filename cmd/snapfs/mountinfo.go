package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// fsType is the mount type of every snapfs mount (go-fuse prefixes the
// subtype with "fuse.").
const fsType = "fuse.snapfs"

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	Point  string // mount point
	FsType string // e.g. fuse.snapfs
	Source string // for snapfs: POOLDIR/VOL or POOLDIR/VOL/BRANCH[/...]
}

// readMounts parses /proc/self/mountinfo.
func readMounts() ([]mountEntry, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var out []mountEntry
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		// id parent major:minor root point options [optional...] - type source superoptions
		fields := strings.Fields(sc.Text())
		sep := -1
		for i := 6; i < len(fields); i++ {
			if fields[i] == "-" {
				sep = i
				break
			}
		}
		if len(fields) < 5 || sep < 0 || sep+2 >= len(fields) {
			continue
		}
		out = append(out, mountEntry{
			Point:  unescapeMount(fields[4]),
			FsType: fields[sep+1],
			Source: unescapeMount(fields[sep+2]),
		})
	}
	return out, sc.Err()
}

// unescapeMount undoes the octal escapes (\040 for a space) of mountinfo.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// findMount returns the mount at point, if any.
func findMount(point string) (mountEntry, bool, error) {
	mounts, err := readMounts()
	if err != nil {
		return mountEntry{}, false, err
	}
	for i := len(mounts) - 1; i >= 0; i-- { // the last mount on a point is the visible one
		if mounts[i].Point == point {
			return mounts[i], true, nil
		}
	}
	return mountEntry{}, false, nil
}

// poolMounts returns the snapfs mounts served from pool directory dir.
func poolMounts(dir string) ([]mountEntry, error) {
	mounts, err := readMounts()
	if err != nil {
		return nil, err
	}
	var out []mountEntry
	for _, m := range mounts {
		if m.FsType == fsType && poolOfSource(m.Source) == dir {
			out = append(out, m)
		}
	}
	return out, nil
}

// mountSource is the mount source of dataset vol (a volume or a branch
// path) of the pool in dir: like ZFS's pool/dataset, and what umount and
// sync read back (poolOfSource).
func mountSource(dir, vol string) string {
	return filepath.Join(dir, vol)
}

// poolOfSource returns the pool directory of a mount source: the nearest
// directory above it holding pool.json (a branch's source has several
// components after the pool), or the source's parent when none does.
func poolOfSource(src string) string {
	for d := filepath.Dir(src); d != "/" && d != "."; d = filepath.Dir(d) {
		if _, err := os.Stat(filepath.Join(d, "pool.json")); err == nil {
			return d
		}
	}
	return filepath.Dir(src)
}

// cleanPoint returns the absolute, symlink-free path of a mount point. A
// dead FUSE mount cannot be resolved (ENOTCONN); its cleaned path is used.
func cleanPoint(p string) (string, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		return real, nil
	}
	return abs, nil
}

// checkMountpoint reports why point cannot be mounted on, if it cannot.
func checkMountpoint(point string) error {
	fi, err := os.Stat(point)
	switch {
	case errors.Is(err, syscall.ENOTCONN):
		return fmt.Errorf("mountpoint %s is a dead FUSE mount; run snapfs umount %s", point, point)
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("mountpoint %s does not exist", point)
	case err != nil:
		return fmt.Errorf("mountpoint %s: %w", point, err)
	case !fi.IsDir():
		return fmt.Errorf("mountpoint %s is not a directory", point)
	}
	if m, ok, err := findMount(point); err != nil {
		return fmt.Errorf("read mounts: %w", err)
	} else if ok {
		return fmt.Errorf("mountpoint %s is already a mount (%s from %s)", point, m.FsType, m.Source)
	}
	d, err := os.Open(point)
	if err != nil {
		return fmt.Errorf("mountpoint %s: %w", point, err)
	}
	defer d.Close()
	if names, _ := d.Readdirnames(1); len(names) > 0 {
		return fmt.Errorf("mountpoint %s is not empty", point)
	}
	return nil
}
