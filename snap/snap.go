package snap

import (
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/snapfs/snapfs/store"
)

// Errors of the snapshot namespace. Each wraps the store sentinel whose
// errno it should become at the fs boundary, so errors.Is works with both.
var (
	// ErrSnapshotExists: the name is taken by a snapshot or branch (EEXIST).
	ErrSnapshotExists = &snapError{"snap: snapshot or branch exists", store.ErrExists}
	// ErrNoSnapshot: no snapshot or branch has that name (ENOENT).
	ErrNoSnapshot = &snapError{"snap: no such snapshot", store.ErrNotFound}
	// ErrBadName: the name is empty, ".", "..", or holds '/', '@' or NUL (EINVAL).
	ErrBadName = &snapError{"snap: invalid snapshot name", store.ErrBadName}
	// ErrHasBranches: a branch was forked from the snapshot (EBUSY in fs).
	// The error returned is a *BranchesError naming them.
	ErrHasBranches = &snapError{"snap: snapshot has branches", nil}
	// ErrIsBranch: Destroy was asked to destroy a branch, a writable tree
	// (ENOTEMPTY, as rmdir of a non-empty directory).
	ErrIsBranch = &snapError{"snap: is a branch", store.ErrNotEmpty}
)

// snapError is a sentinel that also matches the store sentinel it wraps.
type snapError struct {
	msg  string
	errn error
}

func (e *snapError) Error() string { return e.msg }
func (e *snapError) Unwrap() error { return e.errn }

// BranchesError is returned by Destroy of a snapshot that branches were
// forked from; errors.Is(err, ErrHasBranches) holds.
type BranchesError struct {
	Volume, Snapshot string
	Branches         []string
}

func (e *BranchesError) Error() string {
	return fmt.Sprintf("snapshot %s@%s has branches %s: destroy them first",
		e.Volume, e.Snapshot, strings.Join(e.Branches, ", "))
}

func (e *BranchesError) Is(target error) bool { return target == ErrHasBranches }

// Kind tells snapshots and branches apart.
type Kind int

const (
	// KindSnapshot is a read-only pinned epoch of the volume.
	KindSnapshot Kind = iota
	// KindBranch is a writable lineage forked from a snapshot.
	KindBranch
)

func (k Kind) String() string {
	if k == KindBranch {
		return "branch"
	}
	return "snapshot"
}

// Snapshot describes one entry of a dataset's .snapshots namespace.
type Snapshot struct {
	Volume  string // the dataset: a volume, or a branch's VOL/BRANCH[/...] path
	Name    string
	Kind    Kind
	Lineage uint32 // snapshot: the volume's lineage; branch: the branch's own
	Epoch   uint64 // snapshot: the pinned epoch; branch: store.LiveEpoch
	ViewID  uint32
	Created time.Time
	// Pause is how long taking the snapshot took (an upper bound of the
	// time writers of the volume were held); 0 for branches.
	Pause time.Duration
	// Parent is the snapshot a branch was forked from ("" for snapshots).
	Parent      string
	ParentLin   uint32
	ParentEpoch uint64
	// Holds are a snapshot's named holds, by tag (holds.go).
	Holds []Hold
	// Auto names the schedule tiers that took an automatic snapshot
	// (schedule.go); nil for one taken by hand.
	Auto []string
	// Space is its space figures (space.go), filled by List and Get.
	Space
}

// View returns the store view of s: read-only for a snapshot, the
// writable live view of a branch.
func (s Snapshot) View() store.View {
	if s.Kind == KindBranch {
		return store.View{ID: s.ViewID, Lineage: s.Lineage, Epoch: store.LiveEpoch}
	}
	return store.View{ID: s.ViewID, Lineage: s.Lineage, Epoch: s.Epoch, ReadOnly: true}
}

// record is the JSON of a snap/ or branch/ meta record.
type record struct {
	Lineage     uint32 `json:"lineage"`
	Epoch       uint64 `json:"epoch,omitempty"`
	ViewID      uint32 `json:"view_id"`
	Created     int64  `json:"created"`
	PauseNs     int64  `json:"pause_ns,omitempty"`
	Holder      string `json:"holder,omitempty"` // a branch's pin holder on its parent point
	Parent      string `json:"parent,omitempty"`
	ParentLin   uint32 `json:"parent_lineage,omitempty"`
	ParentEpoch uint64 `json:"parent_epoch,omitempty"`
	// Holds are a snapshot's named holds: tag -> when placed (holds.go).
	Holds map[string]int64 `json:"holds,omitempty"`
	// Auto names the schedule tiers an automatic snapshot served
	// (schedule.go); empty for a snapshot taken by hand.
	Auto []string `json:"auto,omitempty"`
}

func snapKey(vol, name string) string   { return "snap/" + vol + "/" + name }
func branchKey(vol, name string) string { return "branch/" + vol + "/" + name }

// Manager is the snapshot namespace of every dataset (volume or branch)
// of one store. Every method taking a dataset vol accepts a volume name or
// a branch path VOL/BRANCH[/...] and resolves it with LiveView.
type Manager struct {
	st *store.Store
	// mu serializes namespace changes (create, rename, destroy, branch)
	// from the check that a name is free to the commit that takes it.
	mu sync.Mutex
	// paths caches DatasetOf; it has its own lock (see datasetPaths).
	paths datasetPaths
	// kick wakes the running Scheduler when a policy changes.
	kick schedKick
	// caches are the write caches outside the store (the kernel's, for
	// mounts with the writeback cache) flushed before every snapshot and
	// rollback; they have their own lock (caches.go).
	caches writeCaches
	// sums caches each dataset's entry count and newest creation time
	// for the .snapshots directory's attributes (summary.go); own lock.
	sums summaries
	// Logf, if set (once, before use), logs every snapshot taken with the
	// writers' pause, and every rollback.
	Logf func(format string, args ...any)
}

func (m *Manager) logf(format string, args ...any) {
	if m.Logf != nil {
		m.Logf(format, args...)
	}
}

// managers holds the one Manager of each store, so that every mount and
// API call of a daemon serializes on the same lock.
var managers sync.Map // *store.Store -> *Manager

// ManagerFor returns the Manager of st, creating it on first use.
func ManagerFor(st *store.Store) *Manager {
	if m, ok := managers.Load(st); ok {
		return m.(*Manager)
	}
	m, _ := managers.LoadOrStore(st, &Manager{st: st})
	return m.(*Manager)
}

// Release forgets the Manager of st; call it when closing st.
func Release(st *store.Store) { managers.Delete(st) }

// ValidName reports why name cannot name a snapshot, if it cannot.
func ValidName(name string) error {
	switch {
	case name == "" || name == "." || name == "..":
		return fmt.Errorf("snapshot name %q: %w", name, ErrBadName)
	case len(name) > store.MaxNameLen:
		return fmt.Errorf("snapshot name of %d bytes: %w: %w", len(name), ErrBadName, store.ErrNameTooLong)
	case strings.ContainsAny(name, "/@\x00"):
		return fmt.Errorf("snapshot name %q holds '/', '@' or NUL: %w", name, ErrBadName)
	}
	return nil
}

// Create takes a snapshot of dataset vol named name and returns it with the
// time taking it took. Every write that returned before the call is in it.
func (m *Manager) Create(vol, name string) (Snapshot, error) {
	if err := ValidName(name); err != nil {
		return Snapshot{}, err
	}
	// mu makes the name check and the pin one step (one create per name wins).
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.createLocked(vol, name, time.Now(), nil, nil)
}

// createLocked takes snapshot name of dataset vol, recording created as
// its creation time and auto as the schedule tiers it serves (nil: by
// hand); extra, if set, gives more meta operations for the pin's batch.
func (m *Manager) createLocked(vol, name string, created time.Time, auto []string, extra []store.MetaOp) (Snapshot, error) {
	live, err := m.LiveView(vol)
	if err != nil {
		return Snapshot{}, err
	}
	if err := m.checkFreeLocked(vol, name); err != nil {
		return Snapshot{}, err
	}
	// Writes held in a kernel writeback cache returned to their writers:
	// the store must have them before the pin (caches.go).
	if err := m.FlushWriteCaches(live.Lineage); err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %s@%s: %w", vol, name, err)
	}
	id, err := m.st.AllocViewID()
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %s@%s: %w", vol, name, err)
	}
	// The name record is written in the pin's own batch, with the epoch
	// the store is about to pin: a snapshot and its name exist together.
	rec := record{Lineage: live.Lineage, ViewID: id, Created: created.UnixNano(), Auto: auto}
	_, pause, err := m.st.PinEpoch(live.Lineage, holderSnap(id), func(e uint64) []store.MetaOp {
		rec.Epoch = e
		rj, _ := json.Marshal(rec)
		return append([]store.MetaOp{{Key: snapKey(vol, name), Value: rj}}, extra...)
	})
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %s@%s: %w", vol, name, err)
	}
	m.sums.added(vol, name, rec.Created)
	m.logf("snapshot %s@%s: epoch %d pinned, writers paused %v", vol, name, rec.Epoch, pause)
	m.st.RequestCheckpoint(fmt.Sprintf("after snapshot %s@%s", vol, name))
	// The pause is known only now; it is informational, so it is recorded
	// in a second write (lost with a crash in between: listed as unknown).
	rec.PauseNs = int64(pause)
	if rj, err := json.Marshal(rec); err == nil {
		if err := m.st.UpdateMeta(store.MetaOp{Key: snapKey(vol, name), Value: rj}); err != nil {
			return Snapshot{}, fmt.Errorf("snapshot %s@%s: record pause: %w", vol, name, err)
		}
	}
	return fromRecord(vol, name, KindSnapshot, rec), nil
}

func holderSnap(viewID uint32) string { return fmt.Sprintf("snap:%d", viewID) }

// checkFreeLocked returns ErrSnapshotExists if name is taken in vol.
func (m *Manager) checkFreeLocked(vol, name string) error {
	for _, k := range []string{snapKey(vol, name), branchKey(vol, name)} {
		_, err := m.st.GetMeta(k)
		switch {
		case err == nil:
			return fmt.Errorf("%s@%s: %w", vol, name, ErrSnapshotExists)
		case !errors.Is(err, store.ErrNotFound):
			return err
		}
	}
	return nil
}

func fromRecord(vol, name string, k Kind, r record) Snapshot {
	s := Snapshot{Volume: vol, Name: name, Kind: k, Lineage: r.Lineage, Epoch: r.Epoch,
		ViewID: r.ViewID, Created: time.Unix(0, r.Created), Pause: time.Duration(r.PauseNs),
		Parent: r.Parent, ParentLin: r.ParentLin, ParentEpoch: r.ParentEpoch, Auto: r.Auto}
	if len(r.Holds) > 0 {
		s.Holds = holdsOf(r)
	}
	if k == KindBranch {
		s.Epoch = store.LiveEpoch
	}
	return s
}

// list returns the snapshots and branches of dataset vol, oldest first:
// its own, not those of its branches; without their space figures.
func (m *Manager) list(vol string) ([]Snapshot, error) {
	return m.listKinds(vol, KindSnapshot, KindBranch)
}

// listKinds lists the entries of vol of the given kinds, oldest first.
// Listing only the branches reads no snapshot record: what destroying a
// snapshot needs, at a cost that does not grow with the snapshot count.
func (m *Manager) listKinds(vol string, kinds ...Kind) ([]Snapshot, error) {
	if _, err := m.LiveView(vol); err != nil {
		return nil, err
	}
	var out []Snapshot
	var bad error
	for _, k := range kinds {
		prefix := snapKey(vol, "")
		if k == KindBranch {
			prefix = branchKey(vol, "")
		}
		err := m.st.ListMeta(prefix, func(key string, value []byte) bool {
			var r record
			if err := json.Unmarshal(value, &r); err != nil {
				bad = fmt.Errorf("snap: record %q: %w", key, store.ErrIO)
				return false
			}
			if name := key[len(prefix):]; !strings.Contains(name, "/") { // not a branch's own
				out = append(out, fromRecord(vol, name, k, r))
			}
			return true
		})
		if err == nil {
			err = bad
		}
		if err != nil {
			return nil, fmt.Errorf("list snapshots of %s: %w", vol, err)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Created.Equal(out[j].Created) {
			return out[i].Created.Before(out[j].Created)
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

// get returns the snapshot or branch name of vol without its space figures.
func (m *Manager) get(vol, name string) (Snapshot, error) {
	if err := ValidName(name); err != nil {
		return Snapshot{}, err
	}
	for _, k := range []Kind{KindSnapshot, KindBranch} {
		key := snapKey(vol, name)
		if k == KindBranch {
			key = branchKey(vol, name)
		}
		v, err := m.st.GetMeta(key)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return Snapshot{}, err
		}
		var r record
		if err := json.Unmarshal(v, &r); err != nil {
			return Snapshot{}, fmt.Errorf("snap: record %q: %w", key, store.ErrIO)
		}
		return fromRecord(vol, name, k, r), nil
	}
	if _, err := m.LiveView(vol); err != nil {
		return Snapshot{}, err
	}
	return Snapshot{}, fmt.Errorf("%s@%s: %w", vol, name, ErrNoSnapshot)
}

// Entry returns snapshot or branch name of vol as Get does, without its
// space figures (reading them costs counters; a directory lookup needs
// none).
func (m *Manager) Entry(vol, name string) (Snapshot, error) { return m.get(vol, name) }

// Entries lists vol's snapshots and branches as List does, without space
// figures: what a listing of .snapshots needs.
func (m *Manager) Entries(vol string) ([]Snapshot, error) { return m.list(vol) }

// View returns the store view of snapshot or branch name of vol.
func (m *Manager) View(vol, name string) (store.View, error) {
	s, err := m.get(vol, name)
	if err != nil {
		return store.View{}, err
	}
	return s.View(), nil
}

// Rename renames snapshot or branch old of vol to new, in one batch. A
// branch's snapshots and branches, at any depth, move with it.
func (m *Manager) Rename(vol, old, new string) error {
	if err := ValidName(new); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	s, err := m.get(vol, old)
	if err != nil {
		return err
	}
	if old == new {
		return nil
	}
	if err := m.checkFreeLocked(vol, new); err != nil {
		return err
	}
	kf := snapKey
	if s.Kind == KindBranch {
		kf = branchKey
	}
	v, err := m.st.GetMeta(kf(vol, old))
	if err != nil {
		return err
	}
	if s.Kind == KindSnapshot && len(s.Auto) > 0 {
		// A renamed automatic snapshot is the user's now: retention
		// leaves it alone, as it leaves every hand-made one.
		var r record
		if err := json.Unmarshal(v, &r); err != nil {
			return fmt.Errorf("snap: record %q: %w", kf(vol, old), store.ErrIO)
		}
		r.Auto = nil
		v, _ = json.Marshal(r)
	}
	ops := []store.MetaOp{{Key: kf(vol, old), Delete: true}, {Key: kf(vol, new), Value: v}}
	if s.Kind == KindBranch {
		sched, err := m.scheduleMoveOps(vol+"/"+old, vol+"/"+new)
		if err != nil {
			return err
		}
		ops = append(ops, sched...)
		sub, err := m.subtreeRenameOps(vol+"/"+old, vol+"/"+new)
		if err != nil {
			return err
		}
		ops = append(ops, sub...)
	}
	// Branches name their parent snapshot: keep them pointing at it.
	if s.Kind == KindSnapshot {
		brs, err := m.branchesOf(vol, s)
		if err != nil {
			return err
		}
		for _, b := range brs {
			bv, err := m.st.GetMeta(branchKey(vol, b.Name))
			if err != nil {
				return err
			}
			var r record
			if err := json.Unmarshal(bv, &r); err != nil {
				return fmt.Errorf("snap: branch record %q: %w", b.Name, store.ErrIO)
			}
			r.Parent = new
			rj, _ := json.Marshal(r)
			ops = append(ops, store.MetaOp{Key: branchKey(vol, b.Name), Value: rj})
		}
	}
	err = m.st.UpdateMeta(ops...)
	m.paths.forget()
	m.sums.forget()
	if err != nil {
		return fmt.Errorf("rename %s@%s to %s: %w", vol, old, new, err)
	}
	return nil
}

// branchesOf returns the branches forked from snapshot s. It reads the
// branch records of vol only, not its snapshots'.
func (m *Manager) branchesOf(vol string, s Snapshot) ([]Snapshot, error) {
	all, err := m.listKinds(vol, KindBranch)
	if err != nil {
		return nil, err
	}
	var out []Snapshot
	for _, b := range all {
		if b.Kind == KindBranch && b.ParentLin == s.Lineage && b.ParentEpoch == s.Epoch {
			out = append(out, b)
		}
	}
	return out, nil
}

// DestroyBranch destroys branch name of vol: the writable tree and
// everything only it wrote go, and its hold on the snapshot it was forked
// from is released. It is refused for a snapshot (use Destroy), and for a
// branch with snapshots or branches of its own (*DatasetBusyError; see
// DestroyBranchRecursive).
func (m *Manager) DestroyBranch(vol, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	defer m.sums.forget() // the namespace may have changed (summary.go)
	return m.destroyBranchLocked(vol, name, false)
}

// rawRecord reads the meta record of a branch.
func (m *Manager) rawRecord(vol, name string) (record, error) {
	var rec record
	v, err := m.st.GetMeta(branchKey(vol, name))
	if err != nil {
		return rec, fmt.Errorf("branch %s@%s: %w", vol, name, err)
	}
	if err := json.Unmarshal(v, &rec); err != nil {
		return rec, fmt.Errorf("branch %s@%s: bad record: %w", vol, name, err)
	}
	return rec, nil
}

// Destroy destroys snapshot name of vol: the name goes and the space only
// it held is freed. A snapshot with branches is refused (*BranchesError);
// so is a branch (ErrIsBranch: destroying a writable tree is not rmdir's
// job).
func (m *Manager) Destroy(vol, name string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.destroyLocked(vol, name)
}

func (m *Manager) destroyLocked(vol, name string) error {
	s, err := m.get(vol, name)
	if err != nil {
		return err
	}
	if s.Kind == KindBranch {
		return fmt.Errorf("destroy %s@%s: %w", vol, name, ErrIsBranch)
	}
	if err := heldError(vol, s); err != nil {
		return err
	}
	brs, err := m.branchesOf(vol, s)
	if err != nil {
		return err
	}
	if len(brs) > 0 {
		e := &BranchesError{Volume: vol, Snapshot: name}
		for _, b := range brs {
			e.Branches = append(e.Branches, b.Name)
		}
		return e
	}
	err = m.st.UnpinEpoch(s.Lineage, s.Epoch, holderSnap(s.ViewID), store.MetaOp{Key: snapKey(vol, name), Delete: true})
	if err != nil {
		m.sums.forget() // the record may or may not be gone
		return fmt.Errorf("destroy %s@%s: %w", vol, name, err)
	}
	m.sums.removed(vol, name)
	return nil
}

// CreateBranch makes a writable branch name of dataset vol forked from
// its snapshot snapName. It appears in the same namespace as the
// snapshots, and is itself the dataset vol/name.
func (m *Manager) CreateBranch(vol, snapName, name string) (Snapshot, error) {
	if err := ValidName(name); err != nil {
		return Snapshot{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	defer m.sums.forget() // the namespace may have changed (summary.go)
	from, err := m.get(vol, snapName)
	if err != nil {
		return Snapshot{}, err
	}
	if from.Kind != KindSnapshot {
		return Snapshot{}, fmt.Errorf("branch from %s@%s: not a snapshot: %w", vol, snapName, store.ErrInvalid)
	}
	if err := m.checkFreeLocked(vol, name); err != nil {
		return Snapshot{}, err
	}
	// The branch's view id is allocated by the fork; the holder must be
	// known before, so it names the parent snapshot's view and the name's
	// creation time, which together are unique.
	created := time.Now()
	holder := fmt.Sprintf("branch:%d:%d", from.ViewID, created.UnixNano())
	rec := record{Created: created.UnixNano(), Holder: holder, Parent: snapName, ParentLin: from.Lineage,
		ParentEpoch: from.Epoch}
	_, err = m.st.ForkLineage(from.View(), holder, func(v store.View) []store.MetaOp {
		rec.Lineage, rec.ViewID = v.Lineage, v.ID
		rj, _ := json.Marshal(rec)
		return []store.MetaOp{{Key: branchKey(vol, name), Value: rj}}
	})
	if err != nil {
		return Snapshot{}, fmt.Errorf("branch %s@%s: %w", vol, name, err)
	}
	return fromRecord(vol, name, KindBranch, rec), nil
}

// NamedViews returns every view of every dataset with the name pool
// status -v shows for it: "vol" (or "vol/branch/...") for a dataset's live
// view, "dataset@name" for each of its snapshots; branches are walked to
// any depth.
func (m *Manager) NamedViews() ([]store.NamedView, error) {
	vols, err := m.st.Volumes()
	if err != nil {
		return nil, err
	}
	var out []store.NamedView
	for _, v := range vols {
		lv, err := m.st.LiveView(v.Name)
		if err != nil {
			return nil, err
		}
		if out, err = m.datasetViews(v.Name, lv, out, 0); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// datasetViews appends the views of dataset d (live view live) and of
// the datasets below it to out.
func (m *Manager) datasetViews(d string, live store.View, out []store.NamedView, depth int) ([]store.NamedView, error) {
	out = append(out, store.NamedView{Name: d, View: live})
	l, err := m.list(d)
	if err != nil {
		return nil, err
	}
	for _, s := range l {
		if s.Kind != KindBranch {
			out = append(out, store.NamedView{Name: d + "@" + s.Name, View: s.View()})
			continue
		}
		if depth > 4096 {
			return nil, fmt.Errorf("dataset %s: branches nested too deep", d)
		}
		if out, err = m.datasetViews(d+"/"+s.Name, s.View(), out, depth+1); err != nil {
			return nil, err
		}
	}
	return out, nil
}
