package main

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/pflag"

	"github.com/snapfs/snapfs/client"
	"github.com/snapfs/snapfs/control"
	"github.com/snapfs/snapfs/snap"
	"github.com/snapfs/snapfs/store"
)

// Snapshot commands go through the daemon's control socket when the pool
// is open, and work on the pool directly when it is not. Each takes a
// dataset (dataset.go) where it names a volume: VOL or VOL/BRANCH[/...].

// withManager runs fn on the snapshot manager of the pool in dir, opened
// directly, and closes it. A pool held by a daemon that does not serve vol
// gets a message saying so.
func withManager(dir, vol string, fn func(m *snap.Manager) error) error {
	e, err := openEngine(dir)
	if err != nil {
		return err
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
	var db *snap.DatasetBusyError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &be):
		return fmt.Errorf("snapshot %s@%s has branches %s: destroy them first", vol, name, strings.Join(be.Branches, ", "))
	case errors.As(err, &db):
		return busyBranchError(db)
	case errors.As(err, new(*snap.HeldError)):
		return errors.New(oneLine(err)) // the daemon's line for it is the same
	case errors.Is(err, store.ErrNoVolume):
		return volumeError(dir, snap.VolumeOf(vol), err)
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
		return fmt.Errorf("only root and the owner of volume %s may change its snapshots", snap.VolumeOf(vol))
	}
	return fmt.Errorf("%s@%s: %w", vol, name, err)
}

func cmdSnapshotCreate(g *globals, args []string) error {
	flags := newFlags(g, "snapshot create", "VOL[/BRANCH...] [VOL[/BRANCH...]...] NAME")
	dir, rest, err := poolArgs(g, flags, args, 2, 1<<16)
	if err != nil {
		return err
	}
	if len(rest) > 2 {
		for _, ds := range rest[:len(rest)-1] {
			if err := checkDataset(ds); err != nil {
				return err
			}
		}
		return createMany(dir, rest[:len(rest)-1], rest[len(rest)-1])
	}
	vol, name := rest[0], rest[1]
	if err := checkDataset(vol); err != nil {
		return err
	}
	if err := snap.ValidName(name); err != nil {
		return snapError(dir, vol, name, err)
	}
	var pause time.Duration
	err = onPool(dir, vol, func(c *client.Client) error {
		s, err := c.CreateSnapshot(vol, name)
		if err != nil {
			return daemonSnapError(c, dir, vol, name, err)
		}
		pause = s.Pause
		return nil
	}, func(m *snap.Manager) error {
		s, err := m.Create(vol, name)
		pause = s.Pause
		return directSnapError(m, dir, vol, name, err)
	})
	if err != nil {
		return err
	}
	fmt.Printf("created snapshot %s@%s in %v\n", vol, name, pause.Round(time.Microsecond))
	return nil
}

// createMany takes snapshot name of several datasets (volumes or
// branches) atomically.
func createMany(dir string, vols []string, name string) error {
	all := strings.Join(vols, ", ")
	if err := snap.ValidName(name); err != nil {
		return snapError(dir, vols[0], name, err)
	}
	// One error names the first volume it can be pinned on.
	manyError := func(err error) error {
		switch {
		case err == nil:
			return nil
		case errors.Is(err, snap.ErrSnapshotExists), errors.Is(err, client.ErrExists):
			return fmt.Errorf("snapshot %s already exists in one of %s: no snapshot taken", name, all)
		case errors.Is(err, store.ErrInvalid), errors.Is(err, client.ErrInvalid):
			return fmt.Errorf("a volume is named twice in %s: no snapshot taken", all)
		case errors.Is(err, store.ErrNoVolume):
			return fmt.Errorf("%s: no snapshot taken", oneLine(err))
		}
		return fmt.Errorf("snapshot %s of %s: %w", name, all, err)
	}
	var pause time.Duration
	err := onPool(dir, vols[0], func(c *client.Client) error {
		l, err := c.CreateSnapshots(vols, name)
		if errors.Is(err, client.ErrNotFound) || errors.Is(err, client.ErrInvalid) {
			if have, lerr := c.ListVolumes(); lerr == nil {
				for _, v := range vols {
					if !hasVolume(have, snap.VolumeOf(v)) {
						return volumeError(dir, snap.VolumeOf(v), store.ErrNoVolume)
					}
				}
			}
			list := func(p string) error { _, err := c.ListSnapshots(p); return asErrno(err) }
			for _, v := range vols {
				if perr := missingBranch(v, list); perr != nil {
					return perr
				}
			}
		}
		if len(l) > 0 {
			pause = l[0].Pause
		}
		return manyError(err)
	}, func(m *snap.Manager) error {
		l, err := m.CreateMany(vols, name)
		if errors.Is(err, store.ErrNoVolume) {
			for _, v := range vols {
				if _, verr := m.List(v); errors.Is(verr, store.ErrNoVolume) {
					return volumeError(dir, snap.VolumeOf(v), verr)
				}
			}
		}
		if isPathError(err) {
			list := func(p string) error { _, err := m.List(p); return err }
			for _, v := range vols {
				if perr := missingBranch(v, list); perr != nil {
					return perr
				}
			}
		}
		if len(l) > 0 {
			pause = l[0].Pause
		}
		return manyError(err)
	})
	if err != nil {
		return err
	}
	fmt.Printf("created snapshot %s of %s atomically in %v\n", name, all, pause.Round(time.Microsecond))
	return nil
}

// namedTarget parses the one argument of a command on a named snapshot or
// branch: the pool directory, the dataset and a valid name, split by split.
func namedTarget(g *globals, flags *pflag.FlagSet, args []string, split func(string) (string, string, error)) (dir, vol, name string, err error) {
	dir, rest, err := poolArgs(g, flags, args, 1, 1)
	if err != nil {
		return "", "", "", err
	}
	if vol, name, err = split(rest[0]); err != nil {
		return "", "", "", err
	}
	if err := snap.ValidName(name); err != nil {
		return "", "", "", snapError(dir, vol, name, err)
	}
	return dir, vol, name, nil
}

func cmdSnapshotDestroy(g *globals, args []string) error {
	flags := newFlags(g, "snapshot destroy", "VOL[/BRANCH...]@NAME")
	dir, vol, name, err := namedTarget(g, flags, args, splitAt)
	if err != nil {
		return err
	}
	err = onPool(dir, vol, func(c *client.Client) error {
		return daemonSnapError(c, dir, vol, name, c.DestroySnapshot(vol, name))
	}, func(m *snap.Manager) error {
		return directSnapError(m, dir, vol, name, m.Destroy(vol, name))
	})
	if err != nil {
		return err
	}
	fmt.Printf("destroyed snapshot %s@%s\n", vol, name)
	return nil
}

func cmdSnapshotRename(g *globals, args []string) error {
	flags := newFlags(g, "snapshot rename", "VOL[/BRANCH...]@OLD NEW")
	dir, rest, err := poolArgs(g, flags, args, 2, 2)
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
	// EEXIST names the new name, every other error the old one.
	renameError := func(err error) (string, error) {
		if errors.Is(err, snap.ErrSnapshotExists) || errors.Is(err, client.ErrExists) {
			return newName, err
		}
		return old, err
	}
	err = onPool(dir, vol, func(c *client.Client) error {
		n, err := renameError(c.RenameSnapshot(vol, old, newName))
		return daemonSnapError(c, dir, vol, n, err)
	}, func(m *snap.Manager) error {
		n, err := renameError(m.Rename(vol, old, newName))
		return directSnapError(m, dir, vol, n, err)
	})
	if err != nil {
		return err
	}
	fmt.Printf("renamed %s@%s to %s@%s\n", vol, old, vol, newName)
	return nil
}

// cmdSnapshotRollback returns a volume to one of its snapshots.
func cmdSnapshotRollback(g *globals, args []string) error {
	flags := newFlags(g, "snapshot rollback", "VOL[/BRANCH...]@NAME [-r|--recursive]")
	recursive := flags.BoolP("recursive", "r", false, "destroy snapshots newer than NAME first")
	dir, vol, name, err := namedTarget(g, flags, args, splitAt)
	if err != nil {
		return err
	}
	var versions int64
	var took time.Duration
	err = onPool(dir, vol, func(c *client.Client) error {
		r, err := c.Rollback(vol, name, *recursive)
		versions, took = r.Versions, r.Took
		if err != nil && isPathError(asErrno(err)) {
			list := func(p string) error { _, err := c.ListSnapshots(p); return asErrno(err) }
			if perr := missingBranch(vol, list); perr != nil {
				return perr
			}
		}
		if errors.Is(err, client.ErrBusy) || errors.Is(err, client.ErrInvalid) {
			return rollbackError(dir, vol, name, err)
		}
		return daemonSnapError(c, dir, vol, name, err)
	}, func(m *snap.Manager) error {
		st, err := m.Rollback(vol, name, *recursive)
		versions, took = st.Versions, st.Took
		if err != nil && isPathError(err) {
			list := func(p string) error { _, err := m.List(p); return err }
			if perr := missingBranch(vol, list); perr != nil {
				return perr
			}
		}
		return rollbackError(dir, vol, name, err)
	})
	if err != nil {
		return err
	}
	fmt.Printf("rolled %s back to %s: %d versions discarded in %v\n", vol, name, versions, took.Round(time.Microsecond))
	return nil
}

// rollbackError is snapError for a rollback, whose EBUSY means newer
// snapshots or a snapshot still open.
func rollbackError(dir, vol, name string, err error) error {
	switch {
	case errors.Is(err, store.ErrBusy), errors.Is(err, client.ErrBusy):
		return fmt.Errorf("%s", err.Error())
	case errors.Is(err, store.ErrInvalid), errors.Is(err, client.ErrInvalid):
		return fmt.Errorf("%s@%s is a branch, not a snapshot: only a snapshot can be rolled back to", vol, name)
	}
	return snapError(dir, vol, name, err)
}

// snapshotJSON is one entry of snapshot list --json. Space figures are
// logical bytes (see snap.Space).
type snapshotJSON struct {
	Name       string     `json:"name"`
	Kind       string     `json:"kind"`
	Created    *time.Time `json:"created,omitempty"`
	PauseNs    int64      `json:"pause_ns,omitempty"`
	Parent     string     `json:"parent,omitempty"`
	Referenced int64      `json:"referenced"`
	Written    int64      `json:"written"`
	Unique     int64      `json:"unique"`
	HeldBy     []string   `json:"held_by,omitempty"`
	Holds      []string   `json:"holds,omitempty"` // tags of its holds
	Auto       []string   `json:"auto,omitempty"`  // schedule tiers an automatic snapshot served
}

func cmdSnapshotList(g *globals, args []string) error {
	flags := newFlags(g, "snapshot list", "VOL[/BRANCH...] [--json]")
	asJSON := flags.Bool("json", false, "print JSON")
	dir, rest, err := poolArgs(g, flags, args, 1, 1)
	if err != nil {
		return err
	}
	vol := rest[0]
	if err := checkDataset(vol); err != nil {
		return err
	}
	var out []snapshotJSON
	err = onPool(dir, vol, func(c *client.Client) error {
		l, err := c.ListSnapshots(vol)
		if err != nil {
			return daemonSnapError(c, dir, vol, "", err)
		}
		for _, s := range l {
			c := s.Created
			out = append(out, snapshotJSON{Name: s.Name, Kind: s.Kind, Created: &c,
				PauseNs: int64(s.Pause), Parent: s.Parent,
				Referenced: s.Referenced, Written: s.Written, Unique: s.Unique, HeldBy: s.HeldBy,
				Holds: s.Holds, Auto: s.Auto})
		}
		return nil
	}, func(m *snap.Manager) error {
		l, err := m.List(vol)
		for _, s := range l {
			c := s.Created
			out = append(out, snapshotJSON{Name: s.Name, Kind: s.Kind.String(), Created: &c,
				PauseNs: int64(s.Pause), Parent: s.Parent,
				Referenced: s.Referenced, Written: s.Written, Unique: s.Unique, HeldBy: s.HeldBy,
				Holds: control.HoldTags(s.Holds), Auto: s.Auto})
		}
		return directSnapError(m, dir, vol, "", err)
	})
	if err != nil {
		return err
	}
	if *asJSON {
		if out == nil {
			out = []snapshotJSON{}
		}
		return printJSON(out)
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "NAME\tKIND\tCREATED\tREFERENCED\tWRITTEN\tUNIQUE\tPAUSE\tPARENT\n")
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
		unique := ibytes(s.Unique)
		if len(s.HeldBy) > 0 {
			unique += " (held by " + strings.Join(s.HeldBy, ", ") + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.Name, s.Kind, created,
			ibytes(s.Referenced), ibytes(s.Written), unique, pause, parent)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	return printPartials(dir, vol)
}

func cmdBranchCreate(g *globals, args []string) error {
	flags := newFlags(g, "branch create", "VOL[/BRANCH...]@SNAP NAME")
	dir, rest, err := poolArgs(g, flags, args, 2, 2)
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
	// EEXIST names the branch, every other error the snapshot.
	branchError := func(err error) (string, error) {
		if errors.Is(err, snap.ErrSnapshotExists) || errors.Is(err, client.ErrExists) {
			return name, err
		}
		return from, err
	}
	err = onPool(dir, vol, func(c *client.Client) error {
		_, err := c.CreateBranch(vol, from, name)
		n, err := branchError(err)
		return daemonSnapError(c, dir, vol, n, err)
	}, func(m *snap.Manager) error {
		_, err := m.CreateBranch(vol, from, name)
		n, err := branchError(err)
		return directSnapError(m, dir, vol, n, err)
	})
	if err != nil {
		return err
	}
	fmt.Printf("created branch %s/%s from %s@%s\n", vol, name, vol, from)
	return nil
}

// cmdBranchDestroy destroys a branch: rmdir in .snapshots refuses (a branch
// is a writable tree), this command does it. A branch with snapshots or
// branches of its own needs --recursive, which destroys them all first.
func cmdBranchDestroy(g *globals, args []string) error {
	flags := newFlags(g, "branch destroy", "VOL/BRANCH[/...] [--recursive]  (or VOL[/BRANCH...]@BRANCH)")
	recursive := flags.BoolP("recursive", "r", false, "also destroy the branch's snapshots and branches, at every depth")
	dir, vol, name, err := namedTarget(g, flags, args, splitBranch)
	if err != nil {
		return err
	}
	// Errors about the name itself, once the parent dataset resolves.
	nameError := func(err error, list func(string) error) error {
		if !isPathError(err) || missingBranch(vol, list) != nil {
			return nil
		}
		if isNotBranch(err) {
			return fmt.Errorf("%s@%s is a snapshot, not a branch (use snapfs snapshot destroy %s@%s)", vol, name, vol, name)
		}
		return fmt.Errorf("no branch %s/%s (see snapfs snapshot list %s)", vol, name, vol)
	}
	err = onPool(dir, vol, func(c *client.Client) error {
		destroy := c.DestroyBranch
		if *recursive {
			destroy = c.DestroyBranchRecursive
		}
		err := asErrno(destroy(vol, name))
		list := func(p string) error { _, err := c.ListSnapshots(p); return asErrno(err) }
		if vols, lerr := c.ListVolumes(); err != nil && lerr == nil && hasVolume(vols, snap.VolumeOf(vol)) {
			if nerr := nameError(err, list); nerr != nil {
				return nerr
			}
		}
		if errors.Is(err, client.ErrBusy) {
			return daemonBusyBranch(c, vol+"/"+name, *recursive, err)
		}
		return daemonSnapError(c, dir, vol, name, err)
	}, func(m *snap.Manager) error {
		destroy := m.DestroyBranch
		if *recursive {
			destroy = m.DestroyBranchRecursive
		}
		err := destroy(vol, name)
		list := func(p string) error { _, err := m.List(p); return err }
		if nerr := nameError(err, list); nerr != nil && !errors.Is(err, store.ErrNoVolume) {
			return nerr
		}
		return directSnapError(m, dir, vol, name, err)
	})
	if err != nil {
		return err
	}
	fmt.Printf("destroyed branch %s/%s\n", vol, name)
	return nil
}

// daemonBusyBranch names what keeps branch ds from being destroyed, as
// the engine's *snap.DatasetBusyError would, from the daemon's listing.
// A recursive destroy, or a branch with nothing below it, is busy because
// it (or a branch below) is mounted: the daemon's message says where.
func daemonBusyBranch(c *client.Client, ds string, recursive bool, err error) error {
	l, lerr := c.ListSnapshots(ds)
	if lerr != nil || recursive || len(l) == 0 {
		return fmt.Errorf("%s", oneLine(err))
	}
	e := &snap.DatasetBusyError{Dataset: ds}
	for _, s := range l {
		if s.Kind == snap.KindBranch.String() {
			e.Branches = append(e.Branches, s.Name)
		} else {
			e.Snapshots = append(e.Snapshots, s.Name)
		}
	}
	return busyBranchError(e)
}

// isNotBranch reports DestroyBranch's refusal of a snapshot.
func isNotBranch(err error) bool {
	return err != nil && (errors.Is(err, store.ErrInvalid) || errors.Is(err, client.ErrInvalid))
}

// onPool runs viaDaemon through the daemon when one serves the pool in dir,
// and direct on the pool opened here otherwise.
func onPool(dir, vol string, viaDaemon func(c *client.Client) error, direct func(m *snap.Manager) error) error {
	served, err := withDaemon(dir, viaDaemon)
	if !served && err == nil {
		err = withManager(dir, vol, direct)
	}
	return err
}
