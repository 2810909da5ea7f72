package snap

import (
	"fmt"

	"github.com/snapfs/snapfs/store"
)

// Space is the space accounting of one snapshot or branch, in logical
// bytes of file data (a chunk's stored length, an inline file's length;
// metadata is not counted). The figures come from counters the store keeps
// as it writes (store/space.go): reading them never rescans the volume.
//
// For a snapshot (L, E) with P and N the neighbouring snapshots or branch
// points of L (N the current epoch when E is the newest):
//   - Referenced is what the snapshot's tree holds;
//   - Written is what was written in (P, E]: new since the previous one;
//   - Unique is what destroying it would free now: versions only it sees.
//     It is 0 while branches were forked from it (HeldBy names them):
//     their parent point keeps everything, and destroying it is refused.
//
// For a branch, Referenced is what its live tree holds (inherited data
// counts until the branch shadows it), Written is what it wrote since its
// newest snapshot (or since it was forked), and Unique is everything the
// branch stores itself: what destroying it would free.
//
// Unique counts logical bytes: where chunks are deduplicated the pool frees
// less. Data still buffered (not yet flushed) is not counted.
type Space struct {
	Referenced int64
	Written    int64
	Unique     int64
	// HeldBy names the branches forked from a snapshot.
	HeldBy []string
}

// List returns the snapshots and branches of dataset vol, oldest first:
// its own, not those of its branches, with their space figures (one read
// of each lineage's counters).
func (m *Manager) List(vol string) ([]Snapshot, error) {
	l, err := m.list(vol)
	if err != nil {
		return nil, err
	}
	if err := m.fillSpace(l, l); err != nil {
		return nil, fmt.Errorf("space of %s: %w", vol, err)
	}
	return l, nil
}

// Get returns the snapshot or branch name of vol with its space figures.
// A snapshot's figures cost reads of the counters between it and its
// neighbours only.
func (m *Manager) Get(vol, name string) (Snapshot, error) {
	s, err := m.get(vol, name)
	if err != nil {
		return Snapshot{}, err
	}
	if s.Kind == KindBranch {
		one := []Snapshot{s}
		if err := m.fillSpace(one, nil); err != nil {
			return Snapshot{}, fmt.Errorf("space of %s@%s: %w", vol, name, err)
		}
		return one[0], nil
	}
	p, err := m.st.SnapshotSpace(s.Lineage, s.Epoch)
	if err != nil {
		return Snapshot{}, fmt.Errorf("space of %s@%s: %w", vol, name, err)
	}
	s.Space = Space{Referenced: p.Referenced, Written: p.Written, Unique: p.Unique}
	if len(p.Holders) > 1 {
		// Held: only then list the namespace, to name the branches.
		s.Unique = 0
		brs, err := m.branchesOf(vol, s)
		if err != nil {
			return Snapshot{}, err
		}
		for _, b := range brs {
			s.HeldBy = append(s.HeldBy, b.Name)
		}
	}
	return s, nil
}

// fillSpace sets the figures of every entry of l; branches holds (at
// least) the branches forked from the snapshots in l.
func (m *Manager) fillSpace(l, branches []Snapshot) error {
	type point struct {
		lin   uint32
		epoch uint64
	}
	heldBy := map[point][]string{}
	for _, b := range branches {
		if b.Kind == KindBranch {
			p := point{b.ParentLin, b.ParentEpoch}
			heldBy[p] = append(heldBy[p], b.Name)
		}
	}
	spaces := map[uint32]store.LineageSpace{}
	for i := range l {
		s := &l[i]
		ls, ok := spaces[s.Lineage]
		if !ok {
			var err error
			if ls, err = m.st.Space(s.Lineage); err != nil {
				return err
			}
			spaces[s.Lineage] = ls
		}
		if s.Kind == KindBranch {
			s.Space = Space{Referenced: ls.Live.Referenced, Written: ls.Live.Written, Unique: ls.Live.Unique}
			continue
		}
		p, ok := ls.Pin(s.Epoch)
		if !ok {
			return fmt.Errorf("snapshot %s@%s: no pin at epoch %d: %w", s.Volume, s.Name, s.Epoch, store.ErrIO)
		}
		s.Space = Space{Referenced: p.Referenced, Written: p.Written, Unique: p.Unique}
		s.HeldBy = heldBy[point{s.Lineage, s.Epoch}]
		if len(s.HeldBy) > 0 || len(p.Holders) > 1 {
			s.Unique = 0 // the other holders keep it all
		}
	}
	return nil
}

// VolumeSpace is the space a dataset's snapshots and branches take, in
// logical bytes.
type VolumeSpace struct {
	// Snapshots is what the dataset's own snapshots alone hold: what
	// destroying all of them would free.
	Snapshots int64
	// Branches is what the branches below the dataset (at any depth, with
	// their snapshots) store themselves: what destroying them all would
	// free.
	Branches int64
}

// VolumeSpace returns the space used by the snapshots and the branches of
// dataset d (a volume or a branch path).
func (m *Manager) VolumeSpace(d string) (VolumeSpace, error) {
	live, err := m.LiveView(d)
	if err != nil {
		return VolumeSpace{}, err
	}
	ls, err := m.st.Space(live.Lineage)
	if err != nil {
		return VolumeSpace{}, fmt.Errorf("space of %s: %w", d, err)
	}
	out := VolumeSpace{Snapshots: ls.Snapshots}
	var walk func(d string) error
	walk = func(d string) error {
		l, err := m.list(d)
		if err != nil {
			return err
		}
		for _, b := range l {
			if b.Kind != KindBranch {
				continue
			}
			bs, err := m.st.Space(b.Lineage)
			if err != nil {
				return fmt.Errorf("space of %s/%s: %w", d, b.Name, err)
			}
			out.Branches += bs.Live.Unique
			if err := walk(d + "/" + b.Name); err != nil {
				return err
			}
		}
		return nil
	}
	if err := walk(d); err != nil {
		return VolumeSpace{}, err
	}
	return out, nil
}
