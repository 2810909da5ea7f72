package main

import (
	"errors"
	"fmt"
	"strings"
	"syscall"

	"github.com/snapfs/snapfs/client"
	"github.com/snapfs/snapfs/snap"
	"github.com/snapfs/snapfs/store"
)

// Pool commands first ask the daemon that has the pool open, through its
// control socket; when none answers (no socket, or a stale one left by a
// killed daemon) they open the pool directly.

// withDaemon runs fn on a client of the daemon of the pool in dir and
// reports whether a daemon answered; when none does, fn is not run.
func withDaemon(dir string, fn func(c *client.Client) error) (served bool, err error) {
	c, err := client.Dial(dir)
	if errors.Is(err, client.ErrNoDaemon) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("control socket of pool %s: %w", dir, err)
	}
	defer c.Close()
	return true, fn(c)
}

// errnos maps the control API's codes to errnos, so the CLI's messages
// are the same whichever way the command ran.
var errnos = map[string]syscall.Errno{
	"EEXIST": syscall.EEXIST, "ENOENT": syscall.ENOENT, "EINVAL": syscall.EINVAL,
	"EPERM": syscall.EPERM, "EBUSY": syscall.EBUSY, "ENOTEMPTY": syscall.ENOTEMPTY,
	"ENOSPC": syscall.ENOSPC, "EDQUOT": syscall.EDQUOT, "ENAMETOOLONG": syscall.ENAMETOOLONG,
}

// apiError is a daemon's error that also matches its errno.
type apiError struct {
	ce    *client.Error
	errno syscall.Errno
}

func (e apiError) Error() string   { return e.ce.Error() }
func (e apiError) Unwrap() []error { return []error{e.ce, e.errno} }

// asErrno makes a *client.Error match its errno with errors.Is.
func asErrno(err error) error {
	var ce *client.Error
	if errors.As(err, &ce) {
		if n, ok := errnos[ce.Code]; ok {
			return apiError{ce, n}
		}
	}
	return err
}

// daemonSnapError is snapError for an error of the daemon: ENOENT may
// mean the volume, a branch of the dataset's path or the snapshot, which
// the volume list and the listing of each branch path tell apart.
func daemonSnapError(c *client.Client, dir, vol, name string, err error) error {
	if errors.Is(err, client.ErrNotFound) {
		if vols, lerr := c.ListVolumes(); lerr == nil && !hasVolume(vols, snap.VolumeOf(vol)) {
			return volumeError(dir, snap.VolumeOf(vol), store.ErrNoVolume)
		}
	}
	if err != nil && isPathError(asErrno(err)) && strings.Contains(vol, "/") {
		list := func(p string) error { _, err := c.ListSnapshots(p); return asErrno(err) }
		if perr := missingBranch(vol, list); perr != nil {
			return perr
		}
	}
	var ce *client.Error
	if errors.As(err, &ce) && ce.Code == "EBUSY" {
		return fmt.Errorf("%s", ce.Message)
	}
	return snapError(dir, vol, name, asErrno(err))
}

func hasVolume(vols []client.Volume, vol string) bool {
	for _, v := range vols {
		if v.Name == vol {
			return true
		}
	}
	return false
}
