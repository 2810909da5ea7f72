package client

import (
	"time"

	"github.com/snapfs/snapfs/control"
	"github.com/snapfs/snapfs/objstore"
)

// Datasets: every method below that takes vol (the snapshot, branch and
// mount calls) accepts a dataset path, a volume "VOL" or a branch
// "VOL/BRANCH[/SUBBRANCH...]". A branch has snapshots and branches of its
// own, so c.CreateSnapshot("home/test", "t1") snapshots branch test of
// volume home and c.CreateBranch("home/test", "t1", "fix") makes the
// dataset "home/test/fix".

// Snapshot is one entry of a dataset's .snapshots namespace: a read-only
// snapshot or a writable branch.
type Snapshot struct {
	Volume  string // the dataset: VOL or VOL/BRANCH[/...]
	Name    string
	Kind    string // "snapshot" or "branch"
	Epoch   uint64 // the pinned epoch of a snapshot
	ViewID  uint32 // the view id, the high bits of st_ino in the mount
	Created time.Time
	// Pause is how long taking the snapshot held the volume's writers
	// (an upper bound); 0 for branches.
	Pause  time.Duration
	Parent string // the snapshot a branch was forked from
	// Space figures, in logical bytes of file data (metadata is not
	// counted), kept incrementally by the pool: reading them never rescans.
	//
	// Referenced is what the snapshot's (or branch's) tree holds. Written
	// is what was written between the previous snapshot and this one (for
	// a branch: since its newest snapshot or its creation). Unique is what
	// destroying it would free now; it is 0 while branches forked from the
	// snapshot hold it (HeldBy names them). Where chunks are deduplicated
	// the pool frees fewer physical bytes than Unique says.
	Referenced int64
	Written    int64
	Unique     int64
	HeldBy     []string
	// Holds are the tags of the snapshot's holds (HoldSnapshot); Auto the
	// schedule tiers an automatic snapshot served, empty for one taken by
	// hand.
	Holds []string
	Auto  []string
}

func snapshotOf(s control.Snapshot) Snapshot {
	return Snapshot{Volume: s.Volume, Name: s.Name, Kind: s.Kind, Epoch: s.Epoch, ViewID: s.ViewID,
		Created: s.Created, Pause: time.Duration(s.PauseNs), Parent: s.Parent,
		Referenced: s.Referenced, Written: s.Written, Unique: s.Unique, HeldBy: s.HeldBy,
		Holds: s.Holds, Auto: s.Auto}
}

// Volume describes one volume of the pool.
type Volume = control.Volume

// PoolStatus is the pool's configuration and space usage.
type PoolStatus = control.PoolStatus

// MemberStatus is one member directory of the pool.
type MemberStatus = control.MemberStatus

// VolumeOptions are the optional settings of CreateVolume; the zero
// value means no quota and the pool's chunk size.
type VolumeOptions struct {
	Quota     int64 // most logical bytes; 0 means none
	ChunkSize int   // chunk size of new files; 0 means the pool's
}

// CreateSnapshot takes snapshot name of volume vol. Every write that
// returned before the call is in it.
func (c *Client) CreateSnapshot(vol, name string) (Snapshot, error) {
	var s control.Snapshot
	err := c.call(control.OpSnapshotCreate, control.SnapshotArgs{Vol: vol, Name: name}, &s)
	return snapshotOf(s), err
}

// CreateSnapshots takes snapshot name of every volume of vols atomically:
// all or none, with no write to any of them between the cuts.
func (c *Client) CreateSnapshots(vols []string, name string) ([]Snapshot, error) {
	var l []control.Snapshot
	if err := c.call(control.OpSnapshotMany, control.CreateManyArgs{Vols: vols, Name: name}, &l); err != nil {
		return nil, err
	}
	out := make([]Snapshot, 0, len(l))
	for _, s := range l {
		out = append(out, snapshotOf(s))
	}
	return out, nil
}

// ListSnapshots lists the snapshots and branches of vol, oldest first.
func (c *Client) ListSnapshots(vol string) ([]Snapshot, error) {
	var l []control.Snapshot
	if err := c.call(control.OpSnapshotList, control.VolumeArgs{Vol: vol}, &l); err != nil {
		return nil, err
	}
	out := make([]Snapshot, 0, len(l))
	for _, s := range l {
		out = append(out, snapshotOf(s))
	}
	return out, nil
}

// DestroySnapshot destroys snapshot or branch name of vol. A snapshot
// with branches fails with ErrBusy.
func (c *Client) DestroySnapshot(vol, name string) error {
	return c.call(control.OpSnapshotDestroy, control.SnapshotArgs{Vol: vol, Name: name}, nil)
}

// RenameSnapshot renames snapshot old of vol to new; it never replaces
// (ErrExists).
func (c *Client) RenameSnapshot(vol, old, new string) error {
	return c.call(control.OpSnapshotRename, control.RenameArgs{Vol: vol, Old: old, New: new}, nil)
}

// RollbackResult is what a rollback discarded.
type RollbackResult struct {
	Versions int64         // versions written after the snapshot, deleted
	Chunks   int64         // chunk references released
	Took     time.Duration // how long the volume's writers were held
}

// Rollback returns volume vol to its snapshot name, discarding every change
// made since. Newer snapshots make it fail with ErrBusy unless recursive,
// which destroys them first; branches forked from them always do.
func (c *Client) Rollback(vol, name string, recursive bool) (RollbackResult, error) {
	var r control.RollbackResult
	err := c.call(control.OpRollback, control.RollbackArgs{Vol: vol, Name: name, Recursive: recursive}, &r)
	return RollbackResult{Versions: r.Versions, Chunks: r.Chunks, Took: time.Duration(r.TookNs)}, err
}

// CreateBranch forks writable branch name of vol from its snapshot from.
func (c *Client) CreateBranch(vol, from, name string) (Snapshot, error) {
	var s control.Snapshot
	err := c.call(control.OpBranchCreate, control.BranchArgs{Vol: vol, From: from, Name: name}, &s)
	return snapshotOf(s), err
}

// DestroyBranch destroys branch name of vol with everything only it wrote.
// A branch with snapshots or branches of its own fails with ErrBusy.
func (c *Client) DestroyBranch(vol, name string) error {
	return c.call(control.OpBranchDestroy, control.BranchDestroyArgs{Vol: vol, Name: name}, nil)
}

// DestroyBranchRecursive destroys branch name of vol and every snapshot
// and branch below it, depth first.
func (c *Client) DestroyBranchRecursive(vol, name string) error {
	return c.call(control.OpBranchDestroy, control.BranchDestroyArgs{Vol: vol, Name: name, Recursive: true}, nil)
}

// CreateVolume creates volume name, owned by the caller.
func (c *Client) CreateVolume(name string, o VolumeOptions) (Volume, error) {
	var v Volume
	err := c.call(control.OpVolumeCreate, control.VolumeCreateArgs{Vol: name, Quota: o.Quota, ChunkSize: o.ChunkSize}, &v)
	return v, err
}

// ListVolumes lists the volumes of the pool by name.
func (c *Client) ListVolumes() ([]Volume, error) {
	var l []Volume
	err := c.call(control.OpVolumeList, struct{}{}, &l)
	return l, err
}

// PoolStatus returns the pool's members, space, dedup usage and health.
func (c *Client) PoolStatus() (PoolStatus, error) {
	return c.PoolStatusVerbose(false)
}

// PoolStatusVerbose is PoolStatus; with verbose it also names the files
// that reference each damaged chunk, in every view (a metadata scan).
func (c *Client) PoolStatusVerbose(verbose bool) (PoolStatus, error) {
	var s PoolStatus
	err := c.call(control.OpPoolStatus, control.PoolStatusArgs{Verbose: verbose}, &s)
	return s, err
}

// Sync makes everything written to the pool so far durable.
func (c *Client) Sync() error {
	return c.call(control.OpSync, struct{}{}, nil)
}

// DebugStacks is the daemon's answer to DebugStacks.
type DebugStacks = control.DebugStacks

// DebugStacks asks the daemon to write every goroutine's stack to its log
// (POOLDIR/daemon.log), to see a hang without killing it.
func (c *Client) DebugStacks() (DebugStacks, error) {
	var out DebugStacks
	err := c.call(control.OpDebugStacks, struct{}{}, &out)
	return out, err
}

// MountOptions are the options of Mount.
type MountOptions = control.MountOptions

// Mount asks the daemon to serve volume or branch vol at mountpoint
// (absolute) as well; it returns once the mount answers.
func (c *Client) Mount(vol, mountpoint string, o MountOptions) error {
	return c.call(control.OpMount, control.MountArgs{Vol: vol, Mountpoint: mountpoint, Options: o}, nil)
}

// FsckReport is what Fsck found and changed.
type FsckReport = control.FsckReport

// ScrubReport counts what Scrub verified and repaired.
type ScrubReport = control.ScrubReport

// Fsck checks the pool's metadata against its packs; with repair it fixes
// reference counts and leaked records.
func (c *Client) Fsck(repair bool) (FsckReport, error) {
	var r FsckReport
	err := c.call(control.OpFsck, control.FsckArgs{Repair: repair}, &r)
	return r, err
}

// ScrubOptions are the options of Scrub.
type ScrubOptions = control.ScrubArgs

// Scrub verifies every copy of every referenced record and, unless
// o.NoRepair, rewrites bad copies from good ones. It yields to the
// volumes' I/O, resumes a scrub that was interrupted (unless o.Restart),
// and stops, saving where it was, if the connection is closed meanwhile;
// Progress, from another Client, reports on it.
func (c *Client) Scrub(o ScrubOptions) (ScrubReport, error) {
	var r ScrubReport
	err := c.call(control.OpScrub, o, &r)
	return r, err
}

// AddMember adds directory dir (absolute) to the open pool, with failure
// domain label domain ("" = by device).
func (c *Client) AddMember(dir, domain string) (MemberStatus, error) {
	return c.AddObjectMember(dir, domain, nil)
}

// AddObjectMember is AddMember for a directory or, with its s3:// URL and
// its store's configuration, an object-store member.
func (c *Client) AddObjectMember(dir, domain string, object *objstore.Config) (MemberStatus, error) {
	var m MemberStatus
	err := c.call(control.OpAddMember, control.AddMemberArgs{Dir: dir, Domain: domain, Object: object}, &m)
	return m, err
}

// AddReplica is AddObjectMember of an asynchronous replica: the pool
// copies the existing chunks up in the background.
func (c *Client) AddReplica(url, domain string, object *objstore.Config) (MemberStatus, error) {
	var m MemberStatus
	err := c.call(control.OpAddMember, control.AddMemberArgs{Dir: url, Domain: domain, Object: object, Async: true}, &m)
	return m, err
}

// RemoveReport is what RemoveMember moved.
type RemoveReport = control.RemoveReport

// Progress is the long pool operation in progress.
type Progress = control.Progress

// RemoveMember evacuates member directory dir (absolute) of the open pool
// to the other members and then removes it from the pool. It returns when
// done; Progress, from another Client, reports on it meanwhile.
func (c *Client) RemoveMember(dir string) (RemoveReport, error) {
	var r RemoveReport
	err := c.call(control.OpRemoveMember, control.RemoveMemberArgs{Dir: dir}, &r)
	return r, err
}

// Progress returns the long pool operation in progress (Task "" if none).
func (c *Client) Progress() (Progress, error) {
	var p Progress
	err := c.call(control.OpPoolProgress, struct{}{}, &p)
	return p, err
}

// SetCopies sets how many copies new records get; it refuses more than
// the members' failure domains.
func (c *Client) SetCopies(n int) error {
	return c.call(control.OpSetCopies, control.SetCopiesArgs{Copies: n}, nil)
}

// RepackReport is what Repack did.
type RepackReport = control.RepackReport

// Repack rewrites the sealed packs that are mostly holes and deletes them.
func (c *Client) Repack() (RepackReport, error) {
	var r RepackReport
	err := c.call(control.OpRepack, struct{}{}, &r)
	return r, err
}
