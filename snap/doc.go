// Package snap names, lists and destroys the snapshots and branches of
// snapfs volumes. It is the engine behind the .snapshots directory of a
// mount, the snapshot CLI and (later) the control API; it knows nothing of
// FUSE and is tested without a mount.
//
// # Model
//
// A snapshot of volume VOL is a pinned epoch (L, E) of the volume's lineage
// (store.PinEpoch) plus a name. A branch is a writable lineage forked from a
// snapshot (store.ForkLineage). Snapshots and branches of one volume share
// one namespace: the names in VOL's .snapshots directory.
//
// # Catalog records
//
// Names live in store meta records, written in the same batch as the pin
// they describe, so a name and its pin appear and disappear together:
//
//	snap/<vol>/<name>   -> {"lineage","epoch","view_id","created","pause_ns"}
//	branch/<vol>/<name> -> {"lineage","view_id","parent_lineage","parent_epoch","parent","holder","created"}
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
// namespace change of every volume, from the check that a name is free to
// the commit that takes it, so of two concurrent creates of one name
// exactly one wins. Reads (List, Get) take no lock: they read committed
// meta records.
package snap
