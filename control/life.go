package control

import (
	"encoding/json"
	"errors"
	"strings"
	"time"

	"github.com/snapfs/snapfs/snap"
	"github.com/snapfs/snapfs/store"
)

// Schedules, holds and a volume's whole life: the arguments and results
// of their ops, and their handlers. Every op here that changes something
// checks, as the snapshot ops do, that the peer is root or the owner of
// the volume (mayChange); destroying or renaming a volume is refused
// (EBUSY) while this daemon serves it or one of its branches.

// ScheduleArgs are the arguments of schedule.set (Tiers such as
// "hourly=24", "15m=4"), schedule.clear and schedule.list (Vol "" lists
// every dataset's).
type ScheduleArgs struct {
	Vol   string   `json:"vol"`
	Tiers []string `json:"tiers,omitempty"`
}

// Tier is one tier of a schedule.
type Tier struct {
	Name    string    `json:"name"` // hourly, daily, weekly, monthly or an interval such as 15m
	Keep    int       `json:"keep"`
	LastRun time.Time `json:"last_run,omitzero"`
	NextRun time.Time `json:"next_run"` // the start of its next period, or now if due
}

// Schedule is a dataset's policy: the result of schedule.set, an entry
// of schedule.list.
type Schedule struct {
	Dataset string    `json:"dataset"`
	Tiers   []Tier    `json:"tiers"`
	LastRun time.Time `json:"last_run,omitzero"` // the newest automatic snapshot's time
	NextRun time.Time `json:"next_run"`
}

// ScheduleOf describes policy p seen at now.
func ScheduleOf(p snap.Policy, now time.Time) Schedule {
	out := Schedule{Dataset: p.Dataset, Tiers: []Tier{}, LastRun: p.LastRun(), NextRun: p.Next(now)}
	due := map[string]bool{}
	for _, t := range p.Due(now) {
		due[t.Name] = true
	}
	for _, t := range p.Tiers {
		x := Tier{Name: t.Name, Keep: t.Keep, LastRun: p.Last[t.Name]}
		x.NextRun = snap.Policy{Tiers: []snap.Tier{t}, Last: p.Last}.Next(now)
		out.Tiers = append(out.Tiers, x)
	}
	return out
}

// HoldArgs are the arguments of snapshot.hold and snapshot.release (and
// of snapshot.holds, without Tag).
type HoldArgs struct {
	Vol  string `json:"vol"`
	Name string `json:"name"`
	Tag  string `json:"tag,omitempty"`
}

// Hold is one hold, an entry of snapshot.holds.
type Hold struct {
	Tag     string    `json:"tag"`
	Created time.Time `json:"created"`
}

// VolumeDestroyArgs are the arguments of volume.destroy.
type VolumeDestroyArgs struct {
	Vol       string `json:"vol"`
	Recursive bool   `json:"recursive,omitempty"`
}

// VolumeRenameArgs are the arguments of volume.rename.
type VolumeRenameArgs struct {
	Vol string `json:"vol"`
	New string `json:"new"`
}

// VolumeSetArgs are the arguments of volume.set; a nil field is left as
// it is. Quota 0 removes the quota.
type VolumeSetArgs struct {
	Vol       string `json:"vol"`
	Quota     *int64 `json:"quota,omitempty"`
	ChunkSize *int   `json:"chunk_size,omitempty"`
}

// VolumeProps is the result of volume.get and volume.set: the volume
// with its schedule, if it has one.
type VolumeProps struct {
	Volume
	Schedule *Schedule `json:"schedule,omitempty"`
}

func (s *Server) scheduleSet(p peer, raw json.RawMessage) (any, error) {
	var a ScheduleArgs
	if err := s.decodeChange(p, raw, &a, func() (string, []string) { return a.Vol, []string{"vol", a.Vol} }); err != nil {
		return nil, err
	}
	tiers, err := snap.ParseTiers(a.Tiers)
	if err != nil {
		return nil, err
	}
	pol, err := s.snaps.SetSchedule(a.Vol, tiers)
	if err != nil {
		return nil, err
	}
	return ScheduleOf(pol, time.Now()), nil
}

func (s *Server) scheduleClear(p peer, raw json.RawMessage) (any, error) {
	var a ScheduleArgs
	if err := s.decodeChange(p, raw, &a, func() (string, []string) { return a.Vol, []string{"vol", a.Vol} }); err != nil {
		return nil, err
	}
	return Empty{}, s.snaps.ClearSchedule(a.Vol)
}

func (s *Server) scheduleList(p peer, raw json.RawMessage) (any, error) {
	var a ScheduleArgs
	if err := decode(raw, &a); err != nil {
		return nil, err
	}
	return ListSchedules(s.snaps, a.Vol)
}

// ListSchedules lists the policy of dataset ds, or of every dataset when
// ds is "" (the daemon's and the CLI's when no daemon runs).
func ListSchedules(m *snap.Manager, ds string) ([]Schedule, error) {
	now := time.Now()
	out := []Schedule{}
	if ds != "" {
		pol, err := m.Schedule(ds)
		if err != nil {
			return nil, err
		}
		return append(out, ScheduleOf(pol, now)), nil
	}
	ps, err := m.Schedules()
	if err != nil {
		return nil, err
	}
	for _, pol := range ps {
		out = append(out, ScheduleOf(pol, now))
	}
	return out, nil
}

func (s *Server) holdArgs(p peer, raw json.RawMessage, needTag bool) (HoldArgs, error) {
	var a HoldArgs
	err := s.decodeChange(p, raw, &a, func() (string, []string) { return a.Vol, []string{"vol", a.Vol, "name", a.Name} })
	if err == nil && needTag {
		err = snap.ValidTag(a.Tag)
	}
	return a, err
}

func (s *Server) snapshotHold(p peer, raw json.RawMessage) (any, error) {
	a, err := s.holdArgs(p, raw, true)
	if err != nil {
		return nil, err
	}
	return Empty{}, s.snaps.Hold(a.Vol, a.Name, a.Tag)
}

func (s *Server) snapshotRelease(p peer, raw json.RawMessage) (any, error) {
	a, err := s.holdArgs(p, raw, true)
	if err != nil {
		return nil, err
	}
	return Empty{}, s.snaps.Release(a.Vol, a.Name, a.Tag)
}

func (s *Server) snapshotHolds(p peer, raw json.RawMessage) (any, error) {
	var a HoldArgs
	if err := decode(raw, &a); err != nil {
		return nil, err
	}
	if err := need("vol", a.Vol, "name", a.Name); err != nil {
		return nil, err
	}
	hs, err := s.snaps.Holds(a.Vol, a.Name)
	if err != nil {
		return nil, err
	}
	out := make([]Hold, 0, len(hs))
	for _, h := range hs {
		out = append(out, Hold{Tag: h.Tag, Created: h.Created})
	}
	return out, nil
}

// volumeNotMounted refuses (EBUSY) while this daemon serves volume vol or
// any branch of it.
func (s *Server) volumeNotMounted(vol, doing string) error {
	if s.MountedAt == nil {
		return nil
	}
	views, err := s.snaps.NamedViews()
	if err != nil {
		return err
	}
	for _, v := range views {
		if strings.Contains(v.Name, "@") || (v.Name != vol && !strings.HasPrefix(v.Name, vol+"/")) {
			continue
		}
		if at, ok := s.MountedAt(v.View.ID); ok {
			what := "it"
			if v.Name != vol {
				what = "its branch " + v.Name
			}
			return Errorf("EBUSY", "cannot %s volume %s: %s is mounted at %s (unmount it first)", doing, vol, what, at)
		}
	}
	return nil
}

func (s *Server) volumeDestroy(p peer, raw json.RawMessage) (any, error) {
	var a VolumeDestroyArgs
	if err := s.decodeChange(p, raw, &a, func() (string, []string) { return a.Vol, []string{"vol", a.Vol} }); err != nil {
		return nil, err
	}
	if err := s.volumeNotMounted(a.Vol, "destroy"); err != nil {
		return nil, err
	}
	return Empty{}, s.snaps.DestroyVolume(a.Vol, a.Recursive)
}

func (s *Server) volumeRename(p peer, raw json.RawMessage) (any, error) {
	var a VolumeRenameArgs
	if err := s.decodeChange(p, raw, &a, func() (string, []string) { return a.Vol, []string{"vol", a.Vol, "new", a.New} }); err != nil {
		return nil, err
	}
	if err := s.volumeNotMounted(a.Vol, "rename"); err != nil {
		return nil, err
	}
	return Empty{}, s.snaps.RenameVolume(a.Vol, a.New)
}

func (s *Server) volumeSet(p peer, raw json.RawMessage) (any, error) {
	var a VolumeSetArgs
	if err := s.decodeChange(p, raw, &a, func() (string, []string) { return a.Vol, []string{"vol", a.Vol} }); err != nil {
		return nil, err
	}
	if a.Quota == nil && a.ChunkSize == nil {
		return nil, Errorf("EINVAL", "nothing to set")
	}
	if _, err := s.st.SetVolume(a.Vol, store.VolumeSettings{Quota: a.Quota, ChunkSize: a.ChunkSize}); err != nil {
		return nil, err
	}
	return VolumePropsOf(s.st, s.snaps, a.Vol)
}

func (s *Server) volumeGet(p peer, raw json.RawMessage) (any, error) {
	var a VolumeArgs
	if err := decode(raw, &a); err != nil {
		return nil, err
	}
	if err := need("vol", a.Vol); err != nil {
		return nil, err
	}
	return VolumePropsOf(s.st, s.snaps, a.Vol)
}

// VolumePropsOf describes volume vol with its schedule (the daemon's
// volume.get, and the CLI's when no daemon runs).
func VolumePropsOf(st *store.Store, m *snap.Manager, vol string) (VolumeProps, error) {
	v, err := st.Volume(vol)
	if err != nil {
		return VolumeProps{}, err
	}
	vs, err := m.VolumeSpace(v.Name)
	if err != nil {
		return VolumeProps{}, err
	}
	out := VolumeProps{Volume: Volume{Name: v.Name, Used: v.Used, Files: v.Files, Quota: v.Quota, ChunkSize: v.ChunkSize,
		Uid: v.Uid, Gid: v.Gid, Created: v.Created, UsedBySnapshots: vs.Snapshots, UsedByBranches: vs.Branches}}
	pol, err := m.Schedule(vol)
	switch {
	case err == nil:
		sc := ScheduleOf(pol, time.Now())
		out.Schedule = &sc
	case !isNoSchedule(err):
		return VolumeProps{}, err
	}
	return out, nil
}

func isNoSchedule(err error) bool {
	return err != nil && errors.Is(err, snap.ErrNoSchedule)
}

// HoldTags returns the tags of holds, in their order.
func HoldTags(hs []snap.Hold) []string {
	var out []string
	for _, h := range hs {
		out = append(out, h.Tag)
	}
	return out
}
