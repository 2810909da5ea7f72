package snap

import (
	"errors"
	"fmt"
	"strings"

	"github.com/snapfs/snapfs/store"
)

// A volume's whole life, on the namespace side: DestroyVolume and
// RenameVolume move or drop the meta records this package keeps under the
// volume's name (snap/VOL/..., branch/VOL/..., sched/VOL...) in the same
// batch as the store's catalog change. Refusing a volume that is mounted
// is the daemon's business (it knows its mounts); the store discards the
// buffered writes of a destroyed volume.

// ErrVolumeBusy: the volume has snapshots or branches and the destroy was
// not recursive (EBUSY). The error returned is a *VolumeBusyError.
var ErrVolumeBusy = &snapError{"snap: volume has snapshots or branches", store.ErrBusy}

// VolumeBusyError names what keeps a volume from a non-recursive destroy.
type VolumeBusyError struct {
	Volume    string
	Snapshots []string // oldest first
	Branches  []string
}

func (e *VolumeBusyError) Error() string {
	var parts []string
	if len(e.Snapshots) > 0 {
		parts = append(parts, "snapshots "+strings.Join(e.Snapshots, ", "))
	}
	if len(e.Branches) > 0 {
		parts = append(parts, "branches "+strings.Join(e.Branches, ", "))
	}
	return fmt.Sprintf("volume %s has %s: destroy them first, or destroy the volume with -r", e.Volume, strings.Join(parts, " and "))
}

func (e *VolumeBusyError) Is(target error) bool { return target == ErrVolumeBusy }
func (e *VolumeBusyError) Unwrap() error        { return store.ErrBusy }

// DestroyVolume destroys volume vol. A volume with snapshots or branches
// is refused (*VolumeBusyError) unless recursive, which destroys its
// branches at every depth and its snapshots first; a held snapshot
// anywhere in the tree refuses the whole destroy (*HeldError) before
// anything goes. The name is free when it returns; the space comes back
// in the background (store.DestroyVolume). ops are committed with the
// catalog change (a receive drops its mark of the volume so).
func (m *Manager) DestroyVolume(vol string, recursive bool, ops ...store.MetaOp) error {
	if _, err := m.st.Volume(vol); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	defer m.sums.forget() // the namespace may have changed (summary.go)
	kids, err := m.list(vol)
	if err != nil {
		return err
	}
	if len(kids) > 0 && !recursive {
		e := &VolumeBusyError{Volume: vol}
		e.Snapshots, e.Branches = namesByKind(kids)
		return e
	}
	if err := m.heldBelowLocked(vol, 0); err != nil {
		return err
	}
	for _, k := range kids {
		if k.Kind == KindBranch {
			if err := m.destroyBranchLocked(vol, k.Name, true); err != nil {
				return err
			}
		}
	}
	for _, k := range kids {
		if k.Kind == KindSnapshot {
			if err := m.destroyLocked(vol, k.Name); err != nil {
				return err
			}
		}
	}
	recOps, err := m.volumeRecordOps(vol, "")
	if err != nil {
		return err
	}
	err = m.st.DestroyVolume(vol, append(recOps, ops...)...)
	m.paths.forget()
	if err != nil {
		return fmt.Errorf("destroy volume %s: %w", vol, err)
	}
	m.st.RequestCheckpoint("after volume destroy " + vol)
	return nil
}

// RenameVolume renames volume old to new with its snapshots, branches
// and schedules, in one batch.
func (m *Manager) RenameVolume(old, new string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	defer m.sums.forget() // the namespace may have changed (summary.go)
	if _, err := m.st.Volume(old); err != nil {
		return err
	}
	ops, err := m.volumeRecordOps(old, new)
	if err != nil {
		return err
	}
	err = m.st.RenameVolume(old, new, ops...)
	m.paths.forget()
	if err != nil {
		return fmt.Errorf("rename volume %s to %s: %w", old, new, err)
	}
	m.st.RequestCheckpoint(fmt.Sprintf("after volume rename %s to %s", old, new))
	return nil
}

// volumeRecordOps returns the meta operations that move every record of
// volume vol (its snapshots', branches' and schedules', at any depth) to
// volume to, or delete them when to is "".
func (m *Manager) volumeRecordOps(vol, to string) ([]store.MetaOp, error) {
	var ops []store.MetaOp
	move := func(key, rest string, value []byte, kind string) {
		ops = append(ops, store.MetaOp{Key: key, Delete: true})
		if to != "" {
			ops = append(ops, store.MetaOp{Key: kind + to + rest, Value: value})
		}
	}
	for _, kind := range []string{"snap/", "branch/", schedPrefix} {
		prefix := kind + vol + "/"
		err := m.st.ListMeta(prefix, func(key string, value []byte) bool {
			move(key, key[len(kind+vol):], value, kind)
			return true
		})
		if err != nil {
			return nil, fmt.Errorf("records of volume %s: %w", vol, err)
		}
	}
	v, err := m.st.GetMeta(schedKey(vol))
	switch {
	case err == nil:
		move(schedKey(vol), "", v, schedPrefix)
	case !errors.Is(err, store.ErrNotFound):
		return nil, fmt.Errorf("schedule of volume %s: %w", vol, err)
	}
	return ops, nil
}
