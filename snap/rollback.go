package snap

import (
	"errors"
	"fmt"
	"strings"

	"github.com/snapfs/snapfs/store"
)

// ErrNewerSnapshots: a rollback would destroy snapshots taken after its
// target and was not asked to (EBUSY). The error returned is a
// *NewerSnapshotsError naming them.
var ErrNewerSnapshots = &snapError{"snap: newer snapshots exist", store.ErrBusy}

// NewerSnapshotsError is returned by Rollback when snapshots newer than the
// target exist (and recursive was not asked) or when branches were forked
// from them (always: a rollback never destroys a writable tree).
type NewerSnapshotsError struct {
	Volume, Snapshot string
	Snapshots        []string // newer snapshots, which recursive destroys
	Branches         []string // branches forked after the target, which block it
}

func (e *NewerSnapshotsError) Error() string {
	if len(e.Branches) > 0 {
		return fmt.Sprintf("cannot roll %s back to %s: branches %s were forked from newer snapshots: destroy them first",
			e.Volume, e.Snapshot, strings.Join(e.Branches, ", "))
	}
	return fmt.Sprintf("cannot roll %s back to %s: newer snapshots %s exist: destroy them, or roll back recursively",
		e.Volume, e.Snapshot, strings.Join(e.Snapshots, ", "))
}

// Unwrap makes errors.Is match ErrNewerSnapshots and store.ErrBusy.
func (e *NewerSnapshotsError) Unwrap() error { return ErrNewerSnapshots }

// Rollback returns the volume vol to snapshot name: every change made
// after it is discarded, as ZFS's rollback does. Snapshots newer than the
// target are refused (*NewerSnapshotsError) unless recursive, which
// destroys them first; branches forked from them always refuse it. Files
// open in the volume stay open: those that exist in the snapshot read its
// content, the others answer ESTALE. The snapshot itself stays.
func (m *Manager) Rollback(vol, name string, recursive bool) (store.RollbackStats, error) {
	newer, err := m.newerThan(vol, name, recursive)
	if err != nil {
		return store.RollbackStats{}, err
	}
	// A held snapshot among them refuses the rollback before anything
	// is destroyed.
	for _, n := range newer {
		s, err := m.get(vol, n)
		if err != nil {
			return store.RollbackStats{}, err
		}
		if err := heldError(vol, s); err != nil {
			return store.RollbackStats{}, err
		}
	}
	// Destroying takes the namespace lock itself; a snapshot taken after
	// this check makes the store refuse the rollback (ErrBusy).
	for _, n := range newer {
		if err := m.Destroy(vol, n); err != nil {
			return store.RollbackStats{}, fmt.Errorf("roll %s back to %s: destroy %s: %w", vol, name, n, err)
		}
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	defer m.sums.forget() // the namespace may have changed (summary.go)
	s, err := m.get(vol, name)
	if err != nil {
		return store.RollbackStats{}, err
	}
	// Pages a kernel writeback cache holds were written before the
	// rollback: written back after it, they would land in the rolled-back
	// volume (caches.go).
	if err := m.FlushWriteCaches(s.Lineage); err != nil {
		return store.RollbackStats{}, fmt.Errorf("roll %s back to %s: %w", vol, name, err)
	}
	stats, err := m.st.RollbackLineage(s.Lineage, s.Epoch)
	if errors.Is(err, store.ErrBusy) {
		// A newer pin the namespace does not list: a snapshot destroyed
		// while a file of it is open, or one taken since the check.
		return stats, &snapError{fmt.Sprintf("cannot roll %s back to %s: a newer snapshot is still held "+
			"(destroyed while a file of it is open, or just taken)", vol, name), store.ErrBusy}
	}
	if err != nil {
		return stats, fmt.Errorf("roll %s back to %s: %w", vol, name, err)
	}
	m.logf("rolled %s back to %s: %d versions and %d deadlist entries discarded, writers held %v",
		vol, name, stats.Versions, stats.Deadlist, stats.Took)
	return stats, nil
}

// newerThan checks that vol can be rolled back to snapshot name and returns
// the snapshots to destroy first (only when recursive).
func (m *Manager) newerThan(vol, name string, recursive bool) ([]string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.get(vol, name)
	if err != nil {
		return nil, err
	}
	if s.Kind != KindSnapshot {
		return nil, fmt.Errorf("roll %s back to %s: a branch, not a snapshot: %w", vol, name, store.ErrInvalid)
	}
	all, err := m.list(vol)
	if err != nil {
		return nil, err
	}
	e := &NewerSnapshotsError{Volume: vol, Snapshot: name}
	for _, x := range all {
		switch {
		case x.Kind == KindSnapshot && x.Lineage == s.Lineage && x.Epoch > s.Epoch:
			e.Snapshots = append(e.Snapshots, x.Name)
		case x.Kind == KindBranch && x.ParentLin == s.Lineage && x.ParentEpoch > s.Epoch:
			e.Branches = append(e.Branches, x.Name)
		}
	}
	if len(e.Branches) > 0 || len(e.Snapshots) > 0 && !recursive {
		return nil, e
	}
	return e.Snapshots, nil
}
