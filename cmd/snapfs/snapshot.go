package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	snapfs "github.com/snapfs/snapfs/fs"
	"github.com/snapfs/snapfs/snap"
	"github.com/snapfs/snapfs/store"
)

// Snapshot commands work on the pool directly when it is not open, and
// through the mount (mkdir, rmdir and mv in MNT/.snapshots, which the
// daemon serves) when the volume is mounted. Branch creation has no mount
// form yet, so it needs the pool closed.

// volumeMount returns the mountpoint of vol of the pool in dir, or "".
func volumeMount(dir, vol string) (string, error) {
	mounts, err := poolMounts(dir)
	if err != nil {
		return "", fmt.Errorf("read mounts: %w", err)
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		if mounts[i].Source == mountSource(dir, vol) {
			return mounts[i].Point, nil
		}
	}
	return "", nil
}

// splitAt splits VOL@NAME.
func splitAt(arg string) (vol, name string, err error) {
	vol, name, ok := strings.Cut(arg, "@")
	if !ok || vol == "" || name == "" {
		return "", "", fmt.Errorf("%q: expected VOL@NAME", arg)
	}
	return vol, name, nil
}

// withManager runs fn on the snapshot manager of the pool in dir, opened
// directly, and closes it. A pool held by a daemon that does not serve vol
// gets a message saying so.
func withManager(dir, vol string, fn func(m *snap.Manager) error) error {
	e, err := openEngine(dir)
	if err != nil {
		return fmt.Errorf("%v; volume %q is not mounted, so the snapshot cannot go through a mount", err, vol)
	}
	m := snap.ManagerFor(e.st)
	err = fn(m)
	snap.Release(e.st)
	if cerr := e.close(); err == nil {
		err = cerr
	}
	return err
}

// snapError turns the engine's and the mount's errors into one clear line.
func snapError(dir, vol, name string, err error) error {
	var be *snap.BranchesError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &be):
		return fmt.Errorf("snapshot %s@%s has branches (%s): destroy them first", vol, name, strings.Join(be.Branches, ", "))
	case errors.Is(err, store.ErrNoVolume):
		return volumeError(dir, vol, err)
	case errors.Is(err, snap.ErrSnapshotExists), errors.Is(err, syscall.EEXIST):
		return fmt.Errorf("%s@%s already exists", vol, name)
	case errors.Is(err, snap.ErrNoSnapshot), errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("no snapshot %s@%s (see snapfs snapshot list %s)", vol, name, vol)
	case errors.Is(err, store.ErrNameTooLong), errors.Is(err, syscall.ENAMETOOLONG):
		return fmt.Errorf("snapshot name %q is longer than 255 bytes", name)
	case errors.Is(err, snap.ErrBadName), errors.Is(err, syscall.EINVAL):
		return fmt.Errorf("invalid snapshot name %q (not empty, '.' or '..'; no '/', '@' or NUL; at most 255 bytes)", name)
	case errors.Is(err, snap.ErrIsBranch), errors.Is(err, syscall.ENOTEMPTY):
		return fmt.Errorf("%s@%s is a branch, not a snapshot", vol, name)
	case errors.Is(err, syscall.EBUSY):
		return fmt.Errorf("snapshot %s@%s has branches: destroy them first", vol, name)
	case errors.Is(err, syscall.EPERM), errors.Is(err, syscall.EACCES):
		return fmt.Errorf("only root and the owner of volume %s may change its snapshots", vol)
	}
	return fmt.Errorf("%s@%s: %w", vol, name, err)
}

func cmdSnapshotCreate(g *globals, args []string) error {
	flags := newFlags(g, "snapshot create", "VOL NAME")
	rest, err := parseArgs(flags, args, 2, 2)
	if err != nil {
		return err
	}
	dir, err := g.poolDir()
	if err != nil {
		return err
	}
	vol, name := rest[0], rest[1]
	if err := snap.ValidName(name); err != nil {
		return snapError(dir, vol, name, err)
	}
	mnt, err := volumeMount(dir, vol)
	if err != nil {
		return err
	}
	if mnt != "" {
		err := os.Mkdir(filepath.Join(mnt, snapfs.SnapdirName, name), 0o755)
		if err != nil {
			return snapError(dir, vol, name, err)
		}
		fmt.Printf("created snapshot %s@%s (through %s)\n", vol, name, mnt)
		return nil
	}
	var s snap.Snapshot
	err = withManager(dir, vol, func(m *snap.Manager) (err error) {
		s, err = m.Create(vol, name)
		return err
	})
	if err != nil {
		return snapError(dir, vol, name, err)
	}
	fmt.Printf("created snapshot %s@%s in %v\n", vol, name, s.Pause.Round(time.Microsecond))
	return nil
}

func cmdSnapshotDestroy(g *globals, args []string) error {
	flags := newFlags(g, "snapshot destroy", "VOL@NAME")
	rest, err := parseArgs(flags, args, 1, 1)
	if err != nil {
		return err
	}
	dir, err := g.poolDir()
	if err != nil {
		return err
	}
	vol, name, err := splitAt(rest[0])
	if err != nil {
		return err
	}
	mnt, err := volumeMount(dir, vol)
	if err != nil {
		return err
	}
	if mnt != "" {
		if err := syscall.Rmdir(filepath.Join(mnt, snapfs.SnapdirName, name)); err != nil {
			return snapError(dir, vol, name, err)
		}
	} else if err := withManager(dir, vol, func(m *snap.Manager) error { return m.Destroy(vol, name) }); err != nil {
		return snapError(dir, vol, name, err)
	}
	fmt.Printf("destroyed snapshot %s@%s\n", vol, name)
	return nil
}

func cmdSnapshotRename(g *globals, args []string) error {
	flags := newFlags(g, "snapshot rename", "VOL@OLD NEW")
	rest, err := parseArgs(flags, args, 2, 2)
	if err != nil {
		return err
	}
	dir, err := g.poolDir()
	if err != nil {
		return err
	}
	vol, old, err := splitAt(rest[0])
	if err != nil {
		return err
	}
	newName := rest[1]
	if err := snap.ValidName(newName); err != nil {
		return snapError(dir, vol, newName, err)
	}
	mnt, err := volumeMount(dir, vol)
	if err != nil {
		return err
	}
	if mnt != "" {
		sd := filepath.Join(mnt, snapfs.SnapdirName)
		// Refuse to replace: the fs never replaces either, but ask first
		// so the message names the right snapshot.
		if _, err := os.Lstat(filepath.Join(sd, newName)); err == nil {
			return snapError(dir, vol, newName, syscall.EEXIST)
		}
		if err := os.Rename(filepath.Join(sd, old), filepath.Join(sd, newName)); err != nil {
			return snapError(dir, vol, old, err)
		}
	} else {
		err := withManager(dir, vol, func(m *snap.Manager) error { return m.Rename(vol, old, newName) })
		if errors.Is(err, snap.ErrSnapshotExists) {
			return snapError(dir, vol, newName, err)
		}
		if err != nil {
			return snapError(dir, vol, old, err)
		}
	}
	fmt.Printf("renamed %s@%s to %s@%s\n", vol, old, vol, newName)
	return nil
}

// snapshotJSON is one entry of snapshot list --json. Created is omitted
// (zero) when the list was read through a mount, which does not carry it.
type snapshotJSON struct {
	Name    string     `json:"name"`
	Kind    string     `json:"kind"`
	Created *time.Time `json:"created,omitempty"`
	PauseNs int64      `json:"pause_ns,omitempty"`
	Parent  string     `json:"parent,omitempty"`
}

func cmdSnapshotList(g *globals, args []string) error {
	flags := newFlags(g, "snapshot list", "VOL [--json]")
	asJSON := flags.Bool("json", false, "print JSON")
	rest, err := parseArgs(flags, args, 1, 1)
	if err != nil {
		return err
	}
	dir, err := g.poolDir()
	if err != nil {
		return err
	}
	vol := rest[0]
	mnt, err := volumeMount(dir, vol)
	if err != nil {
		return err
	}
	var out []snapshotJSON
	if mnt != "" {
		out, err = listThroughMount(mnt)
	} else {
		err = withManager(dir, vol, func(m *snap.Manager) error {
			l, err := m.List(vol)
			for _, s := range l {
				c := s.Created
				out = append(out, snapshotJSON{Name: s.Name, Kind: s.Kind.String(), Created: &c,
					PauseNs: int64(s.Pause), Parent: s.Parent})
			}
			return err
		})
	}
	if err != nil {
		return snapError(dir, vol, "", err)
	}
	if *asJSON {
		if out == nil {
			out = []snapshotJSON{}
		}
		return printJSON(out)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "NAME\tKIND\tCREATED\tPAUSE\tPARENT\n")
	for _, s := range out {
		created, pause, parent := "-", "-", "-"
		if s.Created != nil {
			created = s.Created.Local().Format("2006-01-02 15:04:05")
		}
		if s.PauseNs > 0 {
			pause = time.Duration(s.PauseNs).Round(time.Microsecond).String()
		}
		if s.Parent != "" {
			parent = s.Parent
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Name, s.Kind, created, pause, parent)
	}
	return tw.Flush()
}

// listThroughMount reads MNT/.snapshots, oldest first (the directory's
// order). Only names are known there: creation time and kind are not
// carried by the mount, so they print as "-".
func listThroughMount(mnt string) ([]snapshotJSON, error) {
	f, err := os.Open(filepath.Join(mnt, snapfs.SnapdirName))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	names, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	out := make([]snapshotJSON, 0, len(names))
	for _, n := range names {
		out = append(out, snapshotJSON{Name: n, Kind: "-"})
	}
	return out, nil
}

func cmdBranchCreate(g *globals, args []string) error {
	flags := newFlags(g, "branch create", "VOL@SNAP NAME")
	rest, err := parseArgs(flags, args, 2, 2)
	if err != nil {
		return err
	}
	dir, err := g.poolDir()
	if err != nil {
		return err
	}
	vol, from, err := splitAt(rest[0])
	if err != nil {
		return err
	}
	name := rest[1]
	if err := snap.ValidName(name); err != nil {
		return snapError(dir, vol, name, err)
	}
	if mnt, err := volumeMount(dir, vol); err != nil {
		return err
	} else if mnt != "" {
		return fmt.Errorf("volume %s is mounted on %s: branch create works only on an unmounted pool for now", vol, mnt)
	}
	err = withManager(dir, vol, func(m *snap.Manager) error {
		_, err := m.CreateBranch(vol, from, name)
		return err
	})
	if errors.Is(err, snap.ErrSnapshotExists) {
		return snapError(dir, vol, name, err)
	}
	if err != nil {
		return snapError(dir, vol, from, err)
	}
	fmt.Printf("created branch %s@%s from %s@%s\n", vol, name, vol, from)
	return nil
}
