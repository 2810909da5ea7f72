package main

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/snapfs/snapfs/snap"
	"github.com/snapfs/snapfs/store"
)

// Datasets on the command line: a volume VOL, or a branch VOL/BRANCH[/...]
// (a branch of dataset D named B is D/B). Snapshot commands take a dataset
// where they used to take a volume, and DATASET@NAME where they took
// VOL@NAME.

// datasetUsage is how messages spell a dataset argument.
const datasetUsage = "VOL or VOL/BRANCH[/BRANCH...]"

// checkDataset reports, in one line, why arg cannot name a dataset.
func checkDataset(arg string) error {
	if _, _, err := snap.ParseDataset(arg); err == nil {
		return nil
	}
	if strings.Contains(arg, "@") {
		return fmt.Errorf("%q names a snapshot, not a volume or branch (expected %s)", arg, datasetUsage)
	}
	parts := strings.Split(arg, "/")
	for _, p := range parts {
		if p == "" {
			return fmt.Errorf("%q has an empty path component (expected %s)", arg, datasetUsage)
		}
	}
	for _, p := range parts[1:] {
		if snap.ValidName(p) != nil {
			return fmt.Errorf("%q: invalid branch name %q in the path (expected %s)", arg, p, datasetUsage)
		}
	}
	return fmt.Errorf("%q: invalid dataset (expected %s)", arg, datasetUsage)
}

// splitAt splits DATASET@NAME, checking the dataset's syntax.
func splitAt(arg string) (ds, name string, err error) {
	ds, name, ok := strings.Cut(arg, "@")
	if !ok || ds == "" || name == "" {
		return "", "", fmt.Errorf("%q: expected VOL@NAME or VOL/BRANCH@NAME", arg)
	}
	if strings.Contains(name, "/") { // a path after the '@': the name is bad
		return "", "", snapError("", ds, name, snap.ValidName(name))
	}
	return ds, name, checkDataset(ds)
}

// splitBranch splits the argument of branch destroy: VOL/BRANCH[/...]
// (the branch's own path) or DATASET@BRANCH, into the parent dataset and
// the branch's name.
func splitBranch(arg string) (parent, name string, err error) {
	if strings.Contains(arg, "@") {
		return splitAt(arg)
	}
	if err := checkDataset(arg); err != nil {
		return "", "", err
	}
	i := strings.LastIndex(arg, "/")
	if i < 0 {
		return "", "", fmt.Errorf("%q is a volume, not a branch (expected VOL/BRANCH or VOL@BRANCH)", arg)
	}
	return arg[:i], arg[i+1:], nil
}

// missingBranch finds which component of dataset ds does not resolve, by
// listing each branch path from the volume down with list, and says so in
// one line; nil when every component resolves (the error lies elsewhere).
// list is the daemon's or the engine's snapshot list.
func missingBranch(ds string, list func(ds string) error) error {
	vol, branches, err := snap.ParseDataset(ds)
	if err != nil {
		return checkDataset(ds)
	}
	path := vol
	for _, b := range branches {
		parent := path
		path += "/" + b
		err := list(path)
		switch {
		case err == nil:
			continue
		case errors.Is(err, store.ErrNotFound), errors.Is(err, syscall.ENOENT):
			return fmt.Errorf("no branch %s (see snapfs snapshot list %s)", path, parent)
		case errors.Is(err, store.ErrInvalid), errors.Is(err, syscall.EINVAL):
			return fmt.Errorf("%s@%s is a snapshot, not a branch: only volumes and branches have snapshots and branches", parent, b)
		}
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}

// isPathError reports errors that may come from resolving a dataset path
// rather than from the snapshot named in it.
func isPathError(err error) bool {
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, syscall.ENOENT) ||
		errors.Is(err, store.ErrInvalid) || errors.Is(err, syscall.EINVAL)
}

// directSnapError is snapError for the engine opened here: a dataset
// path that does not resolve is named first.
func directSnapError(m *snap.Manager, dir, ds, name string, err error) error {
	if err != nil && isPathError(err) && strings.Contains(ds, "/") {
		if perr := missingBranch(ds, func(p string) error { _, err := m.List(p); return err }); perr != nil {
			return perr
		}
	}
	return snapError(dir, ds, name, err)
}

// busyBranchError says which snapshots and branches keep a branch from
// being destroyed.
func busyBranchError(e *snap.DatasetBusyError) error {
	return fmt.Errorf("branch %s has %s: destroy them first, or use snapfs branch destroy --recursive",
		e.Dataset, e.Holders())
}

// datasetNoun names a dataset for messages: "volume home", "branch home/test".
func datasetNoun(ds string) string {
	if strings.Contains(ds, "/") {
		return "branch " + ds
	}
	return "volume " + ds
}
