// Package snap names, lists and destroys the snapshots and branches of
// snapfs volumes and branches. It is the engine behind the .snapshots directory of a
// mount, the snapshot CLI and (later) the control API; it knows nothing of
// FUSE and is tested without a mount.
//
// # Model
//
// A dataset is a volume or a branch, named by its path: "VOL", or
// "VOL/BRANCH[/SUBBRANCH...]" (a branch of dataset D named B is the
// dataset D/B). Each dataset has a live, writable lineage (Manager.LiveView
// resolves a path to it) and its own namespace of snapshots and branches:
// the names in its .snapshots directory.
//
// A snapshot of dataset D is a pinned epoch (L, E) of D's lineage
// (store.PinEpoch) plus a name. A branch is a writable lineage forked from
// one of D's snapshots (store.ForkLineage). So snapshots of branches of
// snapshots form a tree of any depth:
//
//	vol                 volume (lineage 1)
//	vol@s1              snapshot (1, E1)
//	vol/b               branch forked from vol@s1 (lineage 2)
//	vol/b@t1            snapshot (2, E2)
//	vol/b/c             branch forked from vol/b@t1 (lineage 3)
//
// A snapshot with branches cannot be destroyed (*BranchesError), nor can a
// branch with snapshots or branches of its own (*DatasetBusyError) unless
// the whole subtree goes (DestroyBranchRecursive, depth first).
//
// # Catalog records
//
// Names live in store meta records, written in the same batch as the pin
// they describe, so a name and its pin appear and disappear together:
//
//	snap/<dataset>/<name>   -> {"lineage","epoch","view_id","created","pause_ns","holds","auto"}
//	branch/<dataset>/<name> -> {"lineage","view_id","parent_lineage","parent_epoch","parent","holder","created"}
//	sched/<dataset>         -> {"tiers","last","set"}
//
// "holds" (tag -> when placed) are the snapshot's holds (holds.go);
// "auto" names the schedule tiers an automatic snapshot served
// (schedule.go). sched/ records are datasets' snapshot schedules. A
// volume's records move with RenameVolume and go with DestroyVolume
// (volume.go).
//
// Names hold no '/', so the records of dataset D are the keys below
// "snap/D/" and "branch/D/" whose rest has no '/'; the others belong to
// D's branches. Renaming a branch moves the records of its whole subtree
// in the same batch. DatasetOf maps a live view id back to its current
// path, for mounts that keep a view while a branch above them is renamed.
//
// The pin holder of a snapshot is "snap:<view id>"; that of a branch point
// is "branch:<parent view id>:<created ns>", kept in the branch's record.
// Neither changes on rename (view ids are never reused), so renaming
// touches only meta records.
//
// The record of a snapshot (with the epoch it pins) or of a branch (with
// its new lineage) is written in the very batch that pins the epoch or forks
// the lineage: a snapshot and its name exist together or not at all.
//
// # Names
//
// A name is 1 to 255 bytes, not "." or "..", without '/', '@' (it clashes
// with the VOL@SNAP syntax) or NUL.
//
// # Locking
//
// One Manager exists per store (ManagerFor). Its mu serializes every
// namespace change of every dataset, from the check that a name is free to
// the commit that takes it, so of two concurrent creates of one name
// exactly one wins. Reads (List, Get, LiveView, DatasetOf) take no lock:
// they read committed meta records. DatasetOf's cache has its own small
// lock, taken inside mu and never around a store call.
package snap
