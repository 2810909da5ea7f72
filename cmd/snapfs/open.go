package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/snapfs/snapfs/pool"
	"github.com/snapfs/snapfs/store"
)

// poolDir returns the absolute pool directory from -p or $SNAPFS_POOL.
func (g *globals) poolDir() (string, error) {
	if g.pool == "" {
		return "", errors.New("no pool given: use -p POOLDIR or set SNAPFS_POOL")
	}
	return filepath.Abs(g.pool)
}

// openPool opens the pool in dir, turning the common failures into
// messages a user can act on.
func openPool(dir string) (*pool.Pool, error) { return openPoolWith(dir, pool.OpenOptions{}) }

// openPoolWith is openPool with options (the daemon's test knobs: a file
// system injecting faults, small packs).
func openPoolWith(dir string, o pool.OpenOptions) (*pool.Pool, error) {
	p, err := pool.Open(dir, o)
	switch {
	case err == nil:
		return p, nil
	case errors.Is(err, pool.ErrInUse):
		if pid := lockPid(dir); pid > 0 {
			return nil, fmt.Errorf("pool %s is in use by pid %d (is it mounted? snapfs umount it first)", dir, pid)
		}
		return nil, fmt.Errorf("pool %s is in use (is it mounted? snapfs umount it first)", dir)
	case errors.Is(err, pool.ErrNoMeta):
		return nil, fmt.Errorf("pool %s has no meta/: its metadata is gone (rebuild it from the members: snapfs pool import %s --member DIR...)", dir, dir)
	case errors.Is(err, pool.ErrNotPool):
		return nil, fmt.Errorf("%s is not a snapfs pool (create one with snapfs pool create)", dir)
	}
	return nil, fmt.Errorf("open pool %s: %w", dir, err)
}

// engine is an open pool and the store on it.
type engine struct {
	dir string
	p   *pool.Pool
	st  *store.Store
}

// openEngine opens the pool in dir and the store on it.
func openEngine(dir string) (*engine, error) {
	return openEngineWith(dir, store.Options{}, pool.OpenOptions{})
}

// openEngineWith is openEngine with store options (the daemon's logger)
// and pool options (the daemon's test knobs).
func openEngineWith(dir string, o store.Options, po pool.OpenOptions) (*engine, error) {
	p, err := openPoolWith(dir, po)
	if err != nil {
		return nil, err
	}
	st, err := store.Open(p, o)
	if errors.Is(err, pool.ErrNoMeta) {
		p.Close()
		return nil, fmt.Errorf("pool %s: meta/ is empty but the members hold a checkpoint of it (rebuild it: snapfs pool import %s --member DIR...)", dir, dir)
	}
	if err != nil {
		p.Close()
		return nil, fmt.Errorf("open store of pool %s: %w", dir, err)
	}
	return &engine{dir: dir, p: p, st: st}, nil
}

// close flushes and closes the store, then the pool; the first error wins.
func (e *engine) close() error {
	err := e.st.Close()
	if perr := e.p.Close(); err == nil {
		err = perr
	}
	if err != nil {
		return fmt.Errorf("close pool %s: %w", e.dir, err)
	}
	return nil
}

// volumeError turns a missing volume into a clear message.
func volumeError(dir, vol string, err error) error {
	if errors.Is(err, store.ErrNoVolume) {
		return fmt.Errorf("volume %q does not exist in pool %s (see snapfs volume list)", vol, dir)
	}
	return fmt.Errorf("volume %q: %w", vol, err)
}
