package snap

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/snapfs/snapfs/store"
)

// Datasets: a volume is a dataset, and so is each branch of a dataset. The
// path of a branch is its parent dataset's path, '/', its name, so
// "home/test/fix" is branch fix of branch test of volume home. Every
// dataset has its own namespace of snapshots and branches: the entries of
// its .snapshots directory.

// Errors of dataset paths. Each wraps the store sentinel whose errno it
// should become, as the errors of snap.go do.
var (
	// ErrBadDataset: the path is empty, has an empty component, or a
	// component that is not a valid name (EINVAL).
	ErrBadDataset = &snapError{"snap: invalid dataset path", store.ErrBadName}
	// ErrNoBranch: a component after the volume names no branch (ENOENT).
	ErrNoBranch = &snapError{"snap: no such branch", store.ErrNotFound}
	// ErrNotBranch: a component after the volume names a snapshot, which
	// is read-only and has no snapshots or branches of its own (EINVAL).
	ErrNotBranch = &snapError{"snap: a snapshot, not a branch", store.ErrInvalid}
	// ErrDatasetBusy: a branch still has snapshots or branches of its own
	// (EBUSY). The error returned is a *DatasetBusyError naming them.
	ErrDatasetBusy = &snapError{"snap: branch has snapshots or branches", store.ErrBusy}
)

// DatasetBusyError is returned by DestroyBranch of a branch that has
// snapshots or branches of its own; errors.Is(err, ErrDatasetBusy) holds.
type DatasetBusyError struct {
	Dataset   string   // the branch's path
	Snapshots []string // its snapshots, oldest first
	Branches  []string // its branches, oldest first
}

func (e *DatasetBusyError) Error() string {
	return fmt.Sprintf("branch %s has %s: destroy them first, or the whole tree recursively", e.Dataset, e.Holders())
}

// Holders names what keeps the dataset, e.g. "snapshots a, b and
// branches c".
func (e *DatasetBusyError) Holders() string {
	var parts []string
	if len(e.Snapshots) > 0 {
		parts = append(parts, "snapshots "+strings.Join(e.Snapshots, ", "))
	}
	if len(e.Branches) > 0 {
		parts = append(parts, "branches "+strings.Join(e.Branches, ", "))
	}
	return strings.Join(parts, " and ")
}

func (e *DatasetBusyError) Is(target error) bool { return target == ErrDatasetBusy }

func (e *DatasetBusyError) Unwrap() error { return store.ErrBusy }

// ParseDataset splits a dataset path VOL[/BRANCH...] into the volume and
// the branch names below it. It checks only the syntax: every component
// non-empty, branch names valid names (ValidName); whether they exist is
// LiveView's business.
func ParseDataset(dataset string) (vol string, branches []string, err error) {
	parts := strings.Split(dataset, "/")
	for i, p := range parts {
		switch {
		case p == "" && dataset == "":
			return "", nil, fmt.Errorf("empty dataset path: %w", ErrBadDataset)
		case p == "":
			return "", nil, fmt.Errorf("dataset %q: empty component: %w", dataset, ErrBadDataset)
		case i == 0 && strings.ContainsAny(p, "@\x00"):
			return "", nil, fmt.Errorf("dataset %q: volume name holds '@' or NUL: %w", dataset, ErrBadDataset)
		case i > 0:
			if err := ValidName(p); err != nil {
				return "", nil, fmt.Errorf("dataset %q: branch name %q: %w", dataset, p, ErrBadDataset)
			}
		}
	}
	return parts[0], parts[1:], nil
}

// VolumeOf returns the volume a dataset path belongs to: its first
// component (the owner of the volume owns every branch below it).
func VolumeOf(dataset string) string {
	vol, _, _ := strings.Cut(dataset, "/")
	return vol
}

// LiveView resolves a dataset path to its live, writable view: the
// volume's lineage for "VOL", the branch's own lineage for
// "VOL/BRANCH[/...]". Every operation of the Manager starts here. It takes
// no lock: it reads committed records, as List and Get do.
func (m *Manager) LiveView(dataset string) (store.View, error) {
	vol, branches, err := ParseDataset(dataset)
	if err != nil {
		return store.View{}, err
	}
	v, err := m.st.LiveView(vol)
	if err != nil {
		return store.View{}, err
	}
	path := vol
	for _, b := range branches {
		r, err := m.branchRec(path, b)
		if err != nil {
			return store.View{}, err
		}
		v = store.View{ID: r.ViewID, Lineage: r.Lineage, Epoch: store.LiveEpoch}
		path += "/" + b
	}
	return v, nil
}

// branchRec reads the record of branch name of dataset d, telling a
// missing branch from a snapshot of that name.
func (m *Manager) branchRec(d, name string) (record, error) {
	var r record
	v, err := m.st.GetMeta(branchKey(d, name))
	if errors.Is(err, store.ErrNotFound) {
		if _, serr := m.st.GetMeta(snapKey(d, name)); serr == nil {
			return r, fmt.Errorf("dataset %s/%s: %s@%s is a snapshot: %w", d, name, d, name, ErrNotBranch)
		}
		return r, fmt.Errorf("dataset %s/%s: %w", d, name, ErrNoBranch)
	}
	if err != nil {
		return r, err
	}
	if err := json.Unmarshal(v, &r); err != nil {
		return r, fmt.Errorf("snap: record %q: %w", branchKey(d, name), store.ErrIO)
	}
	return r, nil
}

// datasetPaths caches the path of each dataset's live view id, for
// DatasetOf. Paths change only when a branch is renamed or destroyed;
// both bump gen and clear the map after their commit, and a lookup that
// raced with one (gen moved while it read the records) is not cached.
type datasetPaths struct {
	mu     sync.Mutex
	gen    uint64
	byView map[uint32]string
}

// forget drops every cached path; call it after a commit that renames or
// destroys a branch.
func (c *datasetPaths) forget() {
	c.mu.Lock()
	c.gen++
	c.byView = nil
	c.mu.Unlock()
}

func (c *datasetPaths) get(id uint32) (string, uint64, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	p, ok := c.byView[id]
	return p, c.gen, ok
}

func (c *datasetPaths) put(id uint32, path string, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if c.byView == nil {
		c.byView = map[uint32]string{}
	}
	c.byView[id] = path
}

// DatasetOf returns the path of the dataset whose live view has id viewID:
// a volume's name or a branch's VOL/BRANCH[/...] path. It follows renames,
// so a mount that keeps a view id always finds its current path. A view
// that is no dataset's live view (a snapshot, a destroyed branch) is
// ErrNoBranch.
func (m *Manager) DatasetOf(viewID uint32) (string, error) {
	p, gen, ok := m.paths.get(viewID)
	if ok {
		return p, nil
	}
	vols, err := m.st.Volumes()
	if err != nil {
		return "", err
	}
	for _, v := range vols {
		if v.ViewID == viewID {
			return v.Name, nil
		}
	}
	var found string
	var bad error
	err = m.st.ListMeta("branch/", func(key string, value []byte) bool {
		var r record
		if err := json.Unmarshal(value, &r); err != nil {
			bad = fmt.Errorf("snap: record %q: %w", key, store.ErrIO)
			return false
		}
		if r.ViewID == viewID {
			found = strings.TrimPrefix(key, "branch/")
			return false
		}
		return true
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return "", fmt.Errorf("dataset of view %d: %w", viewID, err)
	}
	if found == "" {
		return "", fmt.Errorf("view %d is no dataset's live view: %w", viewID, ErrNoBranch)
	}
	m.paths.put(viewID, found, gen)
	return found, nil
}

// DestroyBranchRecursive destroys branch name of dataset d and everything
// below it, depth first: the branches of each of its snapshots (and theirs),
// then its snapshots, then the branch itself. Each step commits on its
// own, so a crash part way leaves a smaller tree, never a broken one.
func (m *Manager) DestroyBranchRecursive(d, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	defer m.sums.forget() // the namespace may have changed (summary.go)
	if _, err := m.branchRec(d, name); err == nil {
		// A held snapshot anywhere below refuses the whole destroy.
		if err := m.heldBelowLocked(d+"/"+name, 0); err != nil {
			return err
		}
	}
	return m.destroyBranchLocked(d, name, true)
}

// destroyBranchLocked destroys branch name of d; with recursive false a
// branch with snapshots or branches of its own is a *DatasetBusyError.
func (m *Manager) destroyBranchLocked(d, name string, recursive bool) error {
	b, err := m.get(d, name)
	if err != nil {
		return err
	}
	if b.Kind != KindBranch {
		return fmt.Errorf("destroy branch %s@%s: a snapshot, not a branch: %w", d, name, store.ErrInvalid)
	}
	sub := d + "/" + name
	kids, err := m.list(sub)
	if err != nil {
		return err
	}
	if len(kids) > 0 && !recursive {
		e := &DatasetBusyError{Dataset: sub}
		e.Snapshots, e.Branches = namesByKind(kids)
		return e
	}
	// Branches first: each holds a pin on one of sub's snapshots.
	for _, k := range kids {
		if k.Kind == KindBranch {
			if err := m.destroyBranchLocked(sub, k.Name, true); err != nil {
				return err
			}
		}
	}
	for _, k := range kids {
		if k.Kind == KindSnapshot {
			if err := m.destroyLocked(sub, k.Name); err != nil {
				return err
			}
		}
	}
	rec, err := m.rawRecord(d, name)
	if err != nil {
		return err
	}
	ops, err := m.scheduleDeleteOps(sub)
	if err != nil {
		return err
	}
	err = m.st.DestroyLineage(b.Lineage, rec.Holder, append(ops, store.MetaOp{Key: branchKey(d, name), Delete: true})...)
	m.paths.forget()
	if err != nil {
		return fmt.Errorf("destroy branch %s@%s: %w", d, name, err)
	}
	return nil
}

// subtreeRenameOps returns the meta operations that move every record
// below dataset from to dataset to (the snapshots and branches of the
// renamed branch, and theirs, at any depth).
func (m *Manager) subtreeRenameOps(from, to string) ([]store.MetaOp, error) {
	var ops []store.MetaOp
	for _, kind := range []string{"snap/", "branch/", schedPrefix} {
		prefix := kind + from + "/"
		err := m.st.ListMeta(prefix, func(key string, value []byte) bool {
			ops = append(ops, store.MetaOp{Key: key, Delete: true},
				store.MetaOp{Key: kind + to + "/" + key[len(prefix):], Value: value})
			return true
		})
		if err != nil {
			return nil, fmt.Errorf("rename records below %s: %w", from, err)
		}
	}
	return ops, nil
}

// namesByKind splits a dataset's children, in their order, into the names
// of its snapshots and of its branches.
func namesByKind(kids []Snapshot) (snapshots, branches []string) {
	for _, k := range kids {
		if k.Kind == KindBranch {
			branches = append(branches, k.Name)
		} else {
			snapshots = append(snapshots, k.Name)
		}
	}
	return snapshots, branches
}
