// Package control is the server side of the snapfs control API: a small
// JSON protocol over a Unix socket that the daemon owning a pool serves, so
// that the CLI and other programs can take snapshots, create volumes and
// mount more volumes while the pool is open.
//
// The wire format is one JSON request per line,
//
//	{"op": "snapshot.create", "args": {"vol": "home", "name": "nightly"}}
//
// answered by one JSON response per line,
//
//	{"ok": {...}}  or  {"error": {"code": "EEXIST", "message": "..."}}
//
// Programs should not speak it by hand: package client is the documented
// Go API. The types below are the arguments and results of each op.
package control

import (
	"encoding/json"
	"time"

	"github.com/snapfs/snapfs/objstore"
	"github.com/snapfs/snapfs/store"
)

// Ops of the protocol.
const (
	OpVolumeCreate    = "volume.create"
	OpVolumeList      = "volume.list"
	OpSnapshotCreate  = "snapshot.create"
	OpSnapshotList    = "snapshot.list"
	OpSnapshotDestroy = "snapshot.destroy"
	OpSnapshotRename  = "snapshot.rename"
	OpBranchCreate    = "branch.create"
	OpBranchDestroy   = "branch.destroy"
	OpPoolStatus      = "pool.status"
	OpSync            = "sync"
	OpMount           = "mount"
	OpFsck            = "fsck"
	OpScrub           = "pool.scrub"
	OpAddMember       = "pool.add-member"
	OpRollback        = "snapshot.rollback"
	OpSnapshotMany    = "snapshot.create-many"
	OpRemoveMember    = "pool.remove-member"
	OpPoolProgress    = "pool.progress"
	OpSetCopies       = "pool.set-copies"
	OpRepack          = "pool.repack"
	// OpDebugStacks writes every goroutine's stack to the daemon's log
	// (to see a hang without killing the daemon); it answers DebugStacks.
	OpDebugStacks = "debug.stacks"

	// Schedules, holds and a volume's whole life (life.go).
	OpScheduleSet     = "schedule.set"
	OpScheduleList    = "schedule.list"
	OpScheduleClear   = "schedule.clear"
	OpSnapshotHold    = "snapshot.hold"
	OpSnapshotRelease = "snapshot.release"
	OpSnapshotHolds   = "snapshot.holds"
	OpVolumeDestroy   = "volume.destroy"
	OpVolumeRename    = "volume.rename"
	OpVolumeSet       = "volume.set"
	OpVolumeGet       = "volume.get"
	// OpStreamSend writes a replication stream into a FIFO (StreamSendArgs).
	OpStreamSend = "stream.send"
	// OpStreamReceive reads replication streams from a FIFO (StreamReceiveArgs).
	OpStreamReceive = "stream.receive"
	// OpStreamAbort drops a dataset's partial receive (StreamAbortArgs).
	OpStreamAbort = "stream.abort"
	// OpDiff lists what changed between two views of one volume (DiffArgs,
	// answered by []DiffChange).
	OpDiff = "diff"
	// OpVersions lists the versions of one file (VersionsArgs, answered by
	// VersionsResult).
	OpVersions = "versions"
)

// MaxRequest is the largest request line the server reads; a longer one
// is answered with EINVAL and the connection is closed.
const MaxRequest = 64 << 10

// Request is one request line.
type Request struct {
	Op   string          `json:"op"`
	Args json.RawMessage `json:"args,omitempty"`
}

// Response is one response line: OK holds the op's result, or Error says
// why it failed.
type Response struct {
	OK    json.RawMessage `json:"ok,omitempty"`
	Error *ErrorBody      `json:"error,omitempty"`
}

// ErrorBody is a failed op: Code is an errno name (EEXIST, ENOENT,
// EINVAL, EPERM, EBUSY, ENOTEMPTY, ENOSPC, EDQUOT, ENAMETOOLONG, EIO,
// EOPNOTSUPP) and Message one line for a human.
type ErrorBody struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// Wherever an op takes "vol" naming whose snapshots or branches it
// changes or lists (snapshot.*, branch.*, mount), it is a dataset path: a
// volume "VOL", or a branch "VOL/BRANCH[/SUBBRANCH...]", which has
// snapshots and branches of its own.

// VolumeArgs names a dataset (snapshot.list).
type VolumeArgs struct {
	Vol string `json:"vol"`
}

// VolumeCreateArgs are the arguments of volume.create. Uid and Gid
// default to the caller's; only root may give others.
type VolumeCreateArgs struct {
	Vol       string  `json:"vol"`
	Quota     int64   `json:"quota,omitempty"`
	ChunkSize int     `json:"chunk_size,omitempty"`
	Uid       *uint32 `json:"uid,omitempty"`
	Gid       *uint32 `json:"gid,omitempty"`
}

// Volume is one volume, the result of volume.create and an entry of
// volume.list.
type Volume struct {
	Name      string    `json:"name"`
	Used      int64     `json:"used"`
	Files     int64     `json:"files"`
	Quota     int64     `json:"quota"`
	ChunkSize int       `json:"chunk_size"`
	Uid       uint32    `json:"uid"`
	Gid       uint32    `json:"gid"`
	Created   time.Time `json:"created"`
	// UsedBySnapshots is the logical bytes only the volume's snapshots
	// hold (what destroying all of them would free); UsedByBranches what
	// its branches store themselves.
	UsedBySnapshots int64 `json:"used_by_snapshots"`
	UsedByBranches  int64 `json:"used_by_branches"`
}

// SnapshotArgs name a snapshot of dataset Vol: snapshot.create and
// snapshot.destroy.
type SnapshotArgs struct {
	Vol  string `json:"vol"`
	Name string `json:"name"`
}

// CreateManyArgs are the arguments of snapshot.create-many: one snapshot
// Name of every volume of Vols, taken atomically.
type CreateManyArgs struct {
	Vols []string `json:"vols"`
	Name string   `json:"name"`
}

// RollbackArgs are the arguments of snapshot.rollback: roll volume Vol
// back to its snapshot Name; Recursive destroys newer snapshots first.
type RollbackArgs struct {
	Vol       string `json:"vol"`
	Name      string `json:"name"`
	Recursive bool   `json:"recursive,omitempty"`
}

// RollbackResult is what snapshot.rollback discarded.
type RollbackResult struct {
	Versions int64 `json:"versions"` // versions written after the snapshot, deleted
	Chunks   int64 `json:"chunks"`   // chunk references released
	TookNs   int64 `json:"took_ns"`  // how long the volume's writers were held
}

// RenameArgs are the arguments of snapshot.rename.
type RenameArgs struct {
	Vol string `json:"vol"`
	Old string `json:"old"`
	New string `json:"new"`
}

// BranchArgs are the arguments of branch.create: branch Name of dataset
// Vol (which becomes the dataset Vol/Name) forked from its snapshot From.
type BranchArgs struct {
	Vol  string `json:"vol"`
	From string `json:"from"`
	Name string `json:"name"`
}

// BranchDestroyArgs are the arguments of branch.destroy: branch Name of
// dataset Vol. A branch with snapshots or branches of its own is EBUSY
// unless Recursive, which destroys them all, depth first.
type BranchDestroyArgs struct {
	Vol       string `json:"vol"`
	Name      string `json:"name"`
	Recursive bool   `json:"recursive,omitempty"`
}

// Snapshot is one entry of a dataset's .snapshots namespace: the result of
// snapshot.create and branch.create, an entry of snapshot.list.
type Snapshot struct {
	Volume  string    `json:"volume"` // the dataset: VOL or VOL/BRANCH[/...]
	Name    string    `json:"name"`
	Kind    string    `json:"kind"` // "snapshot" or "branch"
	Epoch   uint64    `json:"epoch"`
	ViewID  uint32    `json:"view_id"`
	Created time.Time `json:"created"`
	PauseNs int64     `json:"pause_ns"`
	Parent  string    `json:"parent,omitempty"` // a branch's snapshot
	// Space figures in logical bytes (snap.Space): what the view holds,
	// what was written since the previous snapshot, and what destroying
	// it would free (0 while the branches in HeldBy hold it).
	Referenced int64    `json:"referenced"`
	Written    int64    `json:"written"`
	Unique     int64    `json:"unique"`
	HeldBy     []string `json:"held_by,omitempty"`
	// Holds are the tags of the snapshot's holds; Auto the schedule
	// tiers an automatic snapshot served (empty: taken by hand).
	Holds []string `json:"holds,omitempty"`
	Auto  []string `json:"auto,omitempty"`
}

// PoolStatus is the result of pool.status.
type PoolStatus struct {
	Pool      string         `json:"pool"`
	ID        string         `json:"id"`
	Copies    int            `json:"copies"`
	ChunkSize int            `json:"chunk_size"`
	Members   []MemberStatus `json:"members"`
	Used      int64          `json:"used"`
	Free      int64          `json:"free"`
	Total     int64          `json:"total"`
	Logical   int64          `json:"logical"`
	Stored    int64          `json:"stored"`
	Chunks    int64          `json:"chunks"`
	// State is the pool's health: ok, degraded or failed (pool.State*).
	State string `json:"state"`
	// UnderReplicated counts chunks written with fewer copies than asked
	// since the last complete scrub.
	UnderReplicated int64 `json:"under_replicated"`
	// Damaged lists the chunks with no good copy known, with the files
	// that reference them when asked (Verbose).
	Damaged []store.DamagedChunk `json:"damaged"`
	// ReadRepairs counts the bad copies reads found since the pool was
	// opened (by the daemon, or by this command), and their rewrites.
	ReadRepairs store.ReadRepairs `json:"read_repairs"`
	// InternalErrors counts the bugs the daemon caught since it opened the
	// pool (panics in FUSE handlers, answered with EIO); its log has the
	// stacks.
	InternalErrors int64 `json:"internal_errors"`
}

// DebugStacks is the answer of debug.stacks: how many goroutines'
// stacks went to the daemon's log.
type DebugStacks struct {
	Goroutines int `json:"goroutines"`
	Bytes      int `json:"bytes"`
}

// PoolStatusArgs are the arguments of pool.status.
type PoolStatusArgs struct {
	// Verbose names the files that reference each damaged chunk, in every
	// view (costs a scan of the metadata).
	Verbose bool `json:"verbose,omitempty"`
}

// MemberStatus is one member directory in PoolStatus.
type MemberStatus struct {
	Path    string `json:"path"`
	Domain  string `json:"domain,omitempty"`
	State   string `json:"state"`             // ok, degraded (read-only, writes failed) or failed (missing)
	Problem string `json:"problem,omitempty"` // why it is not ok
	// ReadErrors counts its reads that failed with I/O errors since the
	// pool was opened; FailsReads is set when they degraded it.
	ReadErrors int64 `json:"read_errors,omitempty"`
	FailsReads bool  `json:"fails_reads,omitempty"`
	Used       int64 `json:"used"`
	Free       int64 `json:"free"`
	Total      int64 `json:"total"`
	Packs      int   `json:"packs"`
	// Kind is "s3" for an object-store member (Path is its URL), empty
	// for a directory. Objects counts its sealed objects; BacklogBytes is
	// what it staged and has not Put yet, BacklogAgeSeconds how long the
	// oldest of that waited (both 0 for members without a backlog).
	Kind              string  `json:"kind,omitempty"`
	Objects           int     `json:"objects,omitempty"`
	BacklogBytes      int64   `json:"backlog_bytes"`
	BacklogAgeSeconds float64 `json:"backlog_age_seconds"`
	// Async is set for an asynchronous replica (its backlog also counts
	// a metadata checkpoint staged and not yet shipped).
	Async bool `json:"async,omitempty"`
	// ReplicaComplete is set once an asynchronous replica holds every
	// chunk (its backfill found none missing since the pool opened).
	ReplicaComplete bool `json:"replica_complete,omitempty"`
}

// MountArgs are the arguments of mount: serve dataset Vol (a volume or a
// branch path) at Mountpoint (absolute) from the daemon.
type MountArgs struct {
	Vol        string       `json:"vol"`
	Mountpoint string       `json:"mountpoint"`
	Options    MountOptions `json:"options"`
}

// MountOptions are the mount options a client may set.
type MountOptions struct {
	FsName         string   `json:"fsname,omitempty"`
	AllowOther     bool     `json:"allow_other,omitempty"`
	Debug          bool     `json:"debug,omitempty"`
	SnapdirVisible bool     `json:"snapdir_visible,omitempty"`
	WritebackCache bool     `json:"writeback_cache,omitempty"` // the kernel writeback cache
	Kernel         []string `json:"kernel,omitempty"`          // passed to the kernel
}

// Empty is the result of ops that return nothing (destroy, rename, sync,
// mount).
type Empty struct{}

// FsckArgs are the arguments of fsck.
type FsckArgs struct {
	Repair bool `json:"repair,omitempty"`
}

// FsckReport is the result of fsck.
type FsckReport = store.FsckReport

// ScrubArgs are the arguments of pool.scrub.
type ScrubArgs struct {
	NoRepair bool `json:"no_repair,omitempty"`
	// Restart starts over instead of resuming an interrupted scrub.
	Restart bool `json:"restart,omitempty"`
	// Rate caps the scrub's reads, in bytes per second (0: no cap; it
	// still yields to the volumes' I/O).
	Rate int64 `json:"rate,omitempty"`
}

// ScrubReport is the result of pool.scrub.
type ScrubReport = store.ScrubReport

// AddMemberArgs are the arguments of pool.add-member.
type AddMemberArgs struct {
	Dir    string `json:"dir"` // absolute, or the s3:// URL of an object-store member
	Domain string `json:"domain,omitempty"`
	// Object configures an object-store member (endpoint, region,
	// addressing; never credentials).
	Object *objstore.Config `json:"object,omitempty"`
	// Async adds the object-store member as an asynchronous replica.
	Async bool `json:"async,omitempty"`
}

// RemoveMemberArgs are the arguments of pool.remove-member.
type RemoveMemberArgs struct {
	Dir string `json:"dir"` // absolute
}

// RemoveReport is the result of pool.remove-member.
type RemoveReport = store.RemoveReport

// Progress is the result of pool.progress: the long pool operation in
// progress, if any ("" when none), with its running totals.
type Progress struct {
	Task   string        `json:"task"` // "remove-member", "repack", "scrub", "fsck" or ""
	Remove *RemoveReport `json:"remove,omitempty"`
	Repack *RepackReport `json:"repack,omitempty"`
	Scrub  *ScrubReport  `json:"scrub,omitempty"`
	// Fsck is the pack scan of a running fsck.
	Fsck *store.ScanProgress `json:"fsck,omitempty"`
}

// RepackReport is the result of pool.repack.
type RepackReport = store.RepackReport

// SetCopiesArgs are the arguments of pool.set-copies.
type SetCopiesArgs struct {
	Copies int `json:"copies"`
}
