package snap

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/snapfs/snapfs/store"
)

// ErrDifferentVolumes is a diff of two views that are not of one volume
// (a volume, its branches and their snapshots).
var ErrDifferentVolumes = &snapError{"snap: views of different volumes", store.ErrInvalid}

// ErrNotDatasetView is a view id that is no dataset's live view and no
// snapshot's (Versions of a file that is not in a volume, branch or
// snapshot of this pool).
var ErrNotDatasetView = &snapError{"snap: view is no dataset's or snapshot's", store.ErrNotFound}

// ParseSide splits one side of a diff: "DATASET@NAME" (a snapshot or a
// branch in DATASET's .snapshots) or "DATASET" (its live view).
func ParseSide(spec string) (dataset, name string, err error) {
	ds, name, at := strings.Cut(spec, "@")
	if _, _, err := ParseDataset(ds); err != nil {
		return "", "", err
	}
	if at {
		if err := ValidName(name); err != nil {
			return "", "", err
		}
	}
	return ds, name, nil
}

// SideView resolves one side of a diff (ParseSide) to its view.
func (m *Manager) SideView(spec string) (store.View, error) {
	ds, name, err := ParseSide(spec)
	if err != nil {
		return store.View{}, err
	}
	if name == "" {
		return m.LiveView(ds)
	}
	return m.View(ds, name)
}

// Diff lists what changed from view from to view to (each "DATASET@NAME"
// or "DATASET"; to "" is from's dataset's live view), by the rules of
// store.Diff. Both must be of one volume (ErrDifferentVolumes).
func (m *Manager) Diff(from, to string) ([]store.DiffLine, error) {
	fds, _, err := ParseSide(from)
	if err != nil {
		return nil, err
	}
	if to == "" {
		to = fds
	}
	tds, _, err := ParseSide(to)
	if err != nil {
		return nil, err
	}
	if VolumeOf(fds) != VolumeOf(tds) {
		return nil, fmt.Errorf("diff %s %s: %w", from, to, ErrDifferentVolumes)
	}
	fv, err := m.SideView(from)
	if err != nil {
		return nil, err
	}
	tv, err := m.SideView(to)
	if err != nil {
		return nil, err
	}
	return m.st.Diff(fv, tv)
}

// FileVersion is one distinct version of a file (Versions): the run of
// consecutive snapshots, oldest first, that see the same version, and
// whether the live file is it too.
type FileVersion struct {
	// Snapshots are the names of the run, oldest first; empty for a
	// version only the live file has.
	Snapshots []string
	// Taken is when the run's first snapshot was taken.
	Taken time.Time
	// Live says the live file is this version.
	Live  bool
	Size  uint64
	Mtime time.Time
	Mode  uint32
	// Path is the file's path in the run's first snapshot (or the live
	// view), from the dataset's root: where to copy it back from, below
	// .snapshots/<first snapshot>.
	Path string
}

// VersionsResult is what Versions found.
type VersionsResult struct {
	Dataset string // the dataset whose snapshots were read
	Ino     uint64
	// Path is the file's path in the view it was named in.
	Path     string
	Versions []FileVersion
}

// Versions lists the distinct versions of inode ino, named in view
// viewID (a dataset's live view or a snapshot of it), across the
// snapshots of that dataset and its live view, oldest first. It follows
// the inode, not the name: a version whose path differs from Path was
// renamed. Snapshots where the file did not change fold into one
// FileVersion; snapshots without the file are left out.
func (m *Manager) Versions(viewID uint32, ino uint64) (VersionsResult, error) {
	ds, named, err := m.viewDataset(viewID)
	if err != nil {
		return VersionsResult{}, err
	}
	live, err := m.LiveView(ds)
	if err != nil {
		return VersionsResult{}, err
	}
	if named.ID == 0 {
		named = live
	}
	res := VersionsResult{Dataset: ds, Ino: ino}
	if res.Path, err = m.st.PathOf(named, ino); err != nil {
		return res, err
	}
	entries, err := m.list(ds)
	if err != nil {
		return res, err
	}
	var snaps []Snapshot
	for _, e := range entries {
		if e.Kind == KindSnapshot {
			snaps = append(snaps, e)
		}
	}
	views := make([]store.View, 0, len(snaps)+1)
	for _, s := range snaps {
		views = append(views, s.View())
	}
	views = append(views, live)
	vs, err := m.st.InodeVersions(views, ino)
	if err != nil {
		return res, err
	}
	type key struct {
		lin  uint32
		born uint64
	}
	var prev key
	var firstView store.View
	for i, v := range vs {
		if !v.Exists {
			prev = key{}
			continue
		}
		k := key{v.Lineage, v.Born}
		isLive := i == len(snaps)
		if k == prev && len(res.Versions) > 0 {
			cur := &res.Versions[len(res.Versions)-1]
			if isLive {
				cur.Live = true
			} else {
				cur.Snapshots = append(cur.Snapshots, snaps[i].Name)
			}
			continue
		}
		prev = k
		fv := FileVersion{Size: v.Attr.Size, Mtime: time.Unix(0, v.Attr.Mtime), Mode: v.Attr.Mode}
		if isLive {
			fv.Live = true
			firstView = live
		} else {
			fv.Snapshots = []string{snaps[i].Name}
			fv.Taken = snaps[i].Created
			firstView = views[i]
		}
		if fv.Path, err = m.pathIn(firstView, ino, res.Path); err != nil {
			return res, err
		}
		res.Versions = append(res.Versions, fv)
	}
	return res, nil
}

// viewDataset finds the dataset of view id: a dataset's live view, or a
// snapshot of one (returned as named; zero for a live view).
func (m *Manager) viewDataset(id uint32) (string, store.View, error) {
	ds, err := m.DatasetOf(id)
	if err == nil {
		return ds, store.View{}, nil
	}
	if !errors.Is(err, ErrNoBranch) {
		return "", store.View{}, err
	}
	var named store.View
	var bad error
	err = m.st.ListMeta("snap/", func(key string, value []byte) bool {
		var r record
		if err := json.Unmarshal(value, &r); err != nil {
			bad = fmt.Errorf("snap: record %q: %w", key, store.ErrIO)
			return false
		}
		if r.ViewID == id {
			rest := strings.TrimPrefix(key, "snap/")
			ds = rest[:strings.LastIndex(rest, "/")]
			named = store.View{ID: r.ViewID, Lineage: r.Lineage, Epoch: r.Epoch, ReadOnly: true}
			return false
		}
		return true
	})
	if err == nil {
		err = bad
	}
	if err != nil {
		return "", store.View{}, err
	}
	if named.ID == 0 {
		return "", store.View{}, fmt.Errorf("view %d: %w", id, ErrNotDatasetView)
	}
	return ds, named, nil
}

// pathIn returns a path of ino in view v: prefer, when it names ino there
// too, the path the caller knows (a hard-linked file has several; the
// one the user named is the least surprising), else store.PathOf's.
func (m *Manager) pathIn(v store.View, ino uint64, prefer string) (string, error) {
	cur := store.RootIno
	for _, c := range strings.Split(strings.Trim(prefer, "/"), "/") {
		if c == "" {
			continue
		}
		a, err := m.st.Lookup(v, cur, c)
		if err != nil {
			cur = 0
			break
		}
		cur = a.Ino
	}
	if cur == ino {
		return prefer, nil
	}
	return m.st.PathOf(v, ino)
}
