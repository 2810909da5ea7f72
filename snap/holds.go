package snap

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/snapfs/snapfs/store"
)

// Holds: named holds on a snapshot, as zfs hold has them. A held snapshot
// cannot be destroyed by anyone (snapshot destroy, rmdir in .snapshots,
// a recursive destroy of its dataset or volume, a recursive rollback,
// retention) until every hold is released. Holds live in the snapshot's
// own meta record (record.Holds: tag -> when it was placed), so they move
// with a rename of the snapshot, of a branch above it and of its volume,
// and go only with the snapshot. Hold, Release and every destroy take the
// Manager's mu, so a destroy that checked for holds cannot race a new one.

// MaxHoldTag is the longest hold tag, in bytes (as a file name).
const MaxHoldTag = store.MaxNameLen

// Errors of holds; each wraps the store sentinel whose errno it becomes.
var (
	// ErrHeld: the snapshot has holds (EBUSY). The error returned is a
	// *HeldError naming them.
	ErrHeld = &snapError{"snap: snapshot is held", store.ErrBusy}
	// ErrHoldExists: the snapshot already has a hold with that tag (EEXIST).
	ErrHoldExists = &snapError{"snap: hold exists", store.ErrExists}
	// ErrNoHold: the snapshot has no hold with that tag (ENOENT).
	ErrNoHold = &snapError{"snap: no such hold", store.ErrNotFound}
	// ErrBadTag: the tag is empty or holds NUL or control characters
	// (EINVAL); a tag over MaxHoldTag bytes also matches ErrNameTooLong.
	ErrBadTag = &snapError{"snap: invalid hold tag", store.ErrBadName}
)

// HeldError is the refusal to destroy a held snapshot; errors.Is(err,
// ErrHeld) and errors.Is(err, store.ErrBusy) hold.
type HeldError struct {
	Dataset, Snapshot string
	Tags              []string // sorted
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("snapshot %s@%s is held by %s: release it first (snapfs snapshot release %s@%s %s)",
		e.Dataset, e.Snapshot, strings.Join(quoteTags(e.Tags), ", "), e.Dataset, e.Snapshot, e.Tags[0])
}

func (e *HeldError) Is(target error) bool { return target == ErrHeld }
func (e *HeldError) Unwrap() error        { return store.ErrBusy }

func quoteTags(tags []string) []string {
	out := make([]string, len(tags))
	for i, t := range tags {
		out[i] = fmt.Sprintf("%q", t)
	}
	return out
}

// Hold is one hold on a snapshot.
type Hold struct {
	Tag     string
	Created time.Time
}

// ValidTag reports why tag cannot name a hold, if it cannot.
func ValidTag(tag string) error {
	switch {
	case tag == "":
		return fmt.Errorf("empty hold tag: %w", ErrBadTag)
	case len(tag) > MaxHoldTag:
		return fmt.Errorf("hold tag of %d bytes (at most %d): %w: %w", len(tag), MaxHoldTag, ErrBadTag, store.ErrNameTooLong)
	}
	for _, c := range []byte(tag) {
		if c < 0x20 || c == 0x7f {
			return fmt.Errorf("hold tag %q holds a control character: %w", tag, ErrBadTag)
		}
	}
	return nil
}

// snapRecordLocked reads the record of snapshot name of dataset ds,
// refusing a branch. Callers hold m.mu when they write it back.
func (m *Manager) snapRecordLocked(ds, name string) (record, error) {
	s, err := m.get(ds, name)
	if err != nil {
		return record{}, err
	}
	if s.Kind != KindSnapshot {
		return record{}, fmt.Errorf("%s@%s is a branch: only snapshots are held: %w", ds, name, store.ErrInvalid)
	}
	v, err := m.st.GetMeta(snapKey(ds, name))
	if err != nil {
		return record{}, err
	}
	var r record
	if err := json.Unmarshal(v, &r); err != nil {
		return record{}, fmt.Errorf("snap: record %q: %w", snapKey(ds, name), store.ErrIO)
	}
	return r, nil
}

// Hold places hold tag on snapshot name of dataset ds.
func (m *Manager) Hold(ds, name, tag string) error {
	if err := ValidTag(tag); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, err := m.snapRecordLocked(ds, name)
	if err != nil {
		return err
	}
	if _, ok := r.Holds[tag]; ok {
		return fmt.Errorf("snapshot %s@%s already has hold %q: %w", ds, name, tag, ErrHoldExists)
	}
	if r.Holds == nil {
		r.Holds = map[string]int64{}
	}
	r.Holds[tag] = time.Now().UnixNano()
	rj, _ := json.Marshal(r)
	if err := m.st.UpdateMeta(store.MetaOp{Key: snapKey(ds, name), Value: rj}); err != nil {
		return fmt.Errorf("hold %s@%s %q: %w", ds, name, tag, err)
	}
	m.st.RequestCheckpoint(fmt.Sprintf("after hold %s@%s", ds, name))
	return nil
}

// Release removes hold tag from snapshot name of dataset ds.
func (m *Manager) Release(ds, name, tag string) error {
	if err := ValidTag(tag); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	r, err := m.snapRecordLocked(ds, name)
	if err != nil {
		return err
	}
	if _, ok := r.Holds[tag]; !ok {
		return fmt.Errorf("snapshot %s@%s has no hold %q: %w", ds, name, tag, ErrNoHold)
	}
	delete(r.Holds, tag)
	if len(r.Holds) == 0 {
		r.Holds = nil
	}
	rj, _ := json.Marshal(r)
	if err := m.st.UpdateMeta(store.MetaOp{Key: snapKey(ds, name), Value: rj}); err != nil {
		return fmt.Errorf("release %s@%s %q: %w", ds, name, tag, err)
	}
	m.st.RequestCheckpoint(fmt.Sprintf("after release %s@%s", ds, name))
	return nil
}

// Holds lists the holds on snapshot name of dataset ds, by tag.
func (m *Manager) Holds(ds, name string) ([]Hold, error) {
	r, err := m.snapRecordLocked(ds, name)
	if err != nil {
		return nil, err
	}
	return holdsOf(r), nil
}

func holdsOf(r record) []Hold {
	out := make([]Hold, 0, len(r.Holds))
	for t, c := range r.Holds {
		out = append(out, Hold{Tag: t, Created: time.Unix(0, c)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Tag < out[j].Tag })
	return out
}

// heldError returns the *HeldError of snapshot s of dataset ds if it has
// holds, else nil.
func heldError(ds string, s Snapshot) error {
	if len(s.Holds) == 0 {
		return nil
	}
	e := &HeldError{Dataset: ds, Snapshot: s.Name}
	for _, h := range s.Holds {
		e.Tags = append(e.Tags, h.Tag)
	}
	return e
}

// heldBelowLocked returns the *HeldError of the first held snapshot of
// dataset ds or of any dataset below it (its branches, at any depth), so
// that a recursive destroy refuses before destroying anything.
func (m *Manager) heldBelowLocked(ds string, depth int) error {
	l, err := m.list(ds)
	if err != nil {
		return err
	}
	for _, s := range l {
		if s.Kind == KindSnapshot {
			if err := heldError(ds, s); err != nil {
				return err
			}
			continue
		}
		if depth > 4096 {
			return fmt.Errorf("dataset %s: branches nested too deep", ds)
		}
		if err := m.heldBelowLocked(ds+"/"+s.Name, depth+1); err != nil {
			return err
		}
	}
	return nil
}
