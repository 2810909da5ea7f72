package client

import "github.com/snapfs/snapfs/control"

// Schedules, holds and a volume's whole life. Errors match the sentinels
// of client.go: ErrInvalid for a bad tier or tag, ErrExists for a second
// hold with a tag, ErrNotFound for a missing hold or schedule, ErrBusy for
// a held snapshot, a volume with snapshots (not recursive) or a mounted
// volume, ErrNoSpace for a quota below the volume's usage.

// Schedule is a dataset's policy with its last and next runs.
type Schedule = control.Schedule

// Hold is one hold on a snapshot.
type Hold = control.Hold

// VolumeProps is a volume with its schedule.
type VolumeProps = control.VolumeProps

// SetSchedule sets dataset vol's policy: tiers such as "hourly=24",
// "daily=7", "15m=4".
func (c *Client) SetSchedule(vol string, tiers []string) (Schedule, error) {
	var s Schedule
	err := c.call(control.OpScheduleSet, control.ScheduleArgs{Vol: vol, Tiers: tiers}, &s)
	return s, err
}

// ClearSchedule removes dataset vol's policy.
func (c *Client) ClearSchedule(vol string) error {
	return c.call(control.OpScheduleClear, control.ScheduleArgs{Vol: vol}, nil)
}

// ListSchedules lists dataset vol's policy, or every dataset's when vol
// is "".
func (c *Client) ListSchedules(vol string) ([]Schedule, error) {
	var l []Schedule
	err := c.call(control.OpScheduleList, control.ScheduleArgs{Vol: vol}, &l)
	return l, err
}

// HoldSnapshot places hold tag on snapshot name of vol.
func (c *Client) HoldSnapshot(vol, name, tag string) error {
	return c.call(control.OpSnapshotHold, control.HoldArgs{Vol: vol, Name: name, Tag: tag}, nil)
}

// ReleaseSnapshot removes hold tag from snapshot name of vol.
func (c *Client) ReleaseSnapshot(vol, name, tag string) error {
	return c.call(control.OpSnapshotRelease, control.HoldArgs{Vol: vol, Name: name, Tag: tag}, nil)
}

// SnapshotHolds lists the holds on snapshot name of vol.
func (c *Client) SnapshotHolds(vol, name string) ([]Hold, error) {
	var l []Hold
	err := c.call(control.OpSnapshotHolds, control.HoldArgs{Vol: vol, Name: name}, &l)
	return l, err
}

// DestroyVolume destroys volume vol; recursive destroys its snapshots and
// branches first.
func (c *Client) DestroyVolume(vol string, recursive bool) error {
	return c.call(control.OpVolumeDestroy, control.VolumeDestroyArgs{Vol: vol, Recursive: recursive}, nil)
}

// RenameVolume renames volume vol to new.
func (c *Client) RenameVolume(vol, new string) error {
	return c.call(control.OpVolumeRename, control.VolumeRenameArgs{Vol: vol, New: new}, nil)
}

// SetVolume changes a volume's quota (0: none) and chunk size for new
// files; a nil pointer leaves the setting as it is.
func (c *Client) SetVolume(vol string, quota *int64, chunkSize *int) (VolumeProps, error) {
	var v VolumeProps
	err := c.call(control.OpVolumeSet, control.VolumeSetArgs{Vol: vol, Quota: quota, ChunkSize: chunkSize}, &v)
	return v, err
}

// GetVolume describes volume vol with its schedule.
func (c *Client) GetVolume(vol string) (VolumeProps, error) {
	var v VolumeProps
	err := c.call(control.OpVolumeGet, control.VolumeArgs{Vol: vol}, &v)
	return v, err
}
