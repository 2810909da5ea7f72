// Package store is the filesystem engine of snapfs: it keeps every inode,
// directory entry, xattr and chunk map of a pool's volumes in one Pebble
// database (POOL/meta/), versioned by epoch, and reads and writes chunk
// bytes through package pool. Snapshots, branches and rollback are
// operations on these versions; package snap names them, package fs serves
// them over FUSE. The design of record is docs/design.md; the rule for each
// hard case is cited in comments as DESIGN-NOTES n.
//
// # Lineages, epochs, views and pins
//
// A lineage is a writable line of history: each volume is one (its root
// lineage), and so is each branch. A lineage has a current epoch, starting
// at 1, and a branch has a parent point (parent lineage, epoch).
//
// A view is what a reader sees: the live view of a lineage (epoch
// LiveEpoch, "infinity"), or a snapshot (L, E), which sees, for every key,
// the newest version of L born at or before E. A branch's view falls
// through to its parent point for keys it never wrote; a tombstone version
// stops the fall-through, as does an opaque directory (view.go: chain,
// resolve). View ids are never reused, and the live view keeps its id
// across rollback, so st_ino (view << 40 | ino) stays stable.
//
// A pin is a catalog record pin(L, E) -> holders: snapshot names, branch
// points, open handles of destroyed views ("open:" holders, viewopen.go).
// Taking a snapshot is PinEpoch (lineage.go): flush the lineage's buffered
// writes, pin the current epoch E and move the lineage to E+1, in one batch
// under the lineage's epoch lock held exclusively. That is one small write,
// whatever the size of the volume. A pin goes when its last holder goes.
// Mutations hold the epoch lock shared from reading the epoch to commit
// (txn.go), so the epoch and the newest pin cannot change under them.
//
// # Keys
//
// keys.go is the format. Every key is
//
//	tag | fixed-width big-endian fields | at most one variable field | 0x00 | suffix
//
// and a versioned key's suffix is ^epoch (8 bytes) plus a length byte (9),
// so byte order puts the newest version of a key first and Comparer.Split
// cuts the suffix off for bloom filters and SeekPrefixGE. Tags:
//
//	0x01 catalog   (kind, name)                  volumes 'V', lineages 'L', pins 'P',
//	                                             pin counters 'C', meta 'M', reclaim
//	                                             intents 'R', scrub state 'S', checkpoint 'K',
//	                                             volume drop intents 'D' (volume.go)
//	0x02 counter   (name)                        id counters
//	0x10 inode     (lineage, ino, ^epoch)        attributes, cgen, inline data
//	0x11 dirent    (lineage, parent, h63, name, ^epoch)  child, or tombstone
//	0x12 xattr     (lineage, ino, name, ^epoch)
//	0x13 chunk     (lineage, ino, cgen, index, ^epoch)   (hash, length) or hole
//	0x20 chunkref  (hash)                        count, locations of the copies
//	0x21 freeq     (seq)                         pack records waiting to be punched
//	0x26 parked    (member, seq)                 frees waiting for a gone member
//	0x27 damaged   (hash)                        chunks with no good copy known
//	0x28 staged    (stage, hash)                 chunks a receive stored before any file
//	                                             names them, one reference each (staged.go)
//	0x30 deadlist  (lineage, killed-at, born-at, seq)    superseded pinned versions
//	0x31 space     (lineage, epoch, kind, born-at)       space counters (space.go)
//	0x40 orphan    (lineage, ino)                unlinked files still open
//
// The name hash h63 (nameHash) is a directory's order and its readdir
// cookie. The comparer name "snapfs.keys.v1", the merger and the epoch
// block property (epochprop.go) are part of the format too.
//
// # How a write becomes a version
//
// A write(2) lands in the inode's chunk buffers (file.go; a small write
// into a stored chunk is an overlay of 4 KiB pages, overlay.go). A flush
// (flush.go) seals the dirty chunks it is asked for (sealMode: fsync,
// close(2) and snapshots take them all; the timer and dirty pressure take
// full and old chunks and the densest overlays, since flushing an overlay
// rewrites its whole chunk), hashes each with BLAKE3, appends the
// new ones to pack files through the pool (a chunk whose hash is already
// stored is a dedup hit: its chunkref count goes up instead), and commits
// one txn per inode: a chunk version per chunk, the reference changes and
// the inode record. A txn (txn.go) touches only its own lineage and applies
// the in-place rule: if the newest own version of a key was born after the
// lineage's newest pin, it is overwritten in place; otherwise a new version
// is born at the current epoch and the one it supersedes goes on the
// deadlist, keyed by when it was killed and born. A version inherited
// through a parent point is never changed or freed by the child.
// Truncate to 0 bumps the inode's chunk generation, hiding every older
// chunk at once (trunc.go).
//
// # The order in which a flush makes bytes durable
//
//  1. appendChunks: every new record is written to its members' packs
//     (in parallel); nothing is durable yet.
//  2. syncChunks: pool.SyncEach fdatasyncs each member once for the whole
//     group (group commit); a chunk that lost every copy to a failed sync
//     fails the flush, one that kept a copy commits degraded.
//  3. commitFlush: one Pebble batch per inode, in order, referencing only
//     records that are durable; it is committed without a WAL sync.
//  4. The WAL is synced: at once by fsync(2) (Handle.Fsync: syncWAL), by
//     Store.Sync (snapfs sync) and at Close, and every SyncInterval by the
//     background timer (durableCommit), which then lets the pool move each
//     member's accounted position (pool.MarkAccounted).
//
// So metadata never names a pack record that is not durable, and a crash
// loses at most what was not fsync'd. Records appended by a flush that
// never committed lie past the accounted position and are freed at the
// next Open (recover.go).
//
// # Snapshot, destroy, rollback: what happens to the keys
//
//   - Snapshot (PinEpochs): one batch writes pin(L, E), its pin counters
//     and the snapshot's name (meta record), and moves L to E+1. No version
//     is copied; later writes to L stop overwriting in place.
//   - Destroy (UnpinEpoch, reclaim.go): the pin goes in one batch with a
//     reclaim intent; with P the previous pin and N the next (or the
//     current epoch), every deadlist entry killed in (E, N] and born after
//     P was seen by E alone, and is deleted, releasing its chunk
//     references. The walk costs what changed, not the volume's size, and
//     resumes from the intent after a crash. A branch is destroyed by
//     DestroyLineage (destroy.go): every version it stored goes.
//   - Rollback (rollback.go) to (L, R) with no newer pin: one batch deletes
//     every version of L born after R (releasing its references), deletes
//     without freeing every deadlist entry killed after R (those versions
//     are live again), resets the counters, and bumps the epoch. No read
//     path knows about rollback. This deviates from the first design's mask
//     record; rollback.go says why.
//
// # The free queue and the punch rule
//
// A chunkref whose count reaches zero is deleted and its locations are put
// on the free queue (freeq, keyed by a sequence number) in the same batch.
// Reclaim (reclaim.go, in the background) punches queued records out of the
// packs, after a grace period for reads in flight (refs.go), and parks the
// frees of members that are gone or degraded (parked) until they return.
// The punch rule (checkpoint.go): the metadata checkpoint shipped to
// members still references records freed after it was taken, so reclaim
// punches only entries at or below the punch mark of the newest checkpoint
// that reached all its members; freed space comes back one checkpoint
// later. A pool that never had a checkpoint punches at once.
//
// # Files by part
//
// The package is one flat package; the file names say which part a file
// belongs to:
//
//	core        store.go (Open, Close, Sync, timers), options.go, errors.go,
//	            types.go, values.go (value encodings), keys.go, epochprop.go
//	namespace   ns.go (lookup, create, unlink, readdir), rename.go, attr.go,
//	            inodes.go, meta.go (records for snap), metaspace.go (ENOSPC
//	            before Pebble's disk fills)
//	read path   view.go (resolving versions), cache.go (chunk cache,
//	            read-ahead hints), file.go (readRange; readChunkInto: a
//	            request holding a chunk from its start gets the record
//	            straight into its buffer; readChunkPart: a random read of
//	            a chunk not in memory reads only its pages)
//	write path  txn.go, file.go (handles, buffers), overlay.go, flush.go,
//	            trunc.go, refs.go (chunkref locks and counts)
//	snapshots   lineage.go (pins, forks), viewopen.go, destroy.go,
//	            rollback.go, space.go (space counters)
//	volumes     volume.go (destroy with its background drop, rename,
//	            settings)
//	reclaim     reclaim.go (deadlist walks, free queue, punching),
//	            recover.go (at Open)
//	maintenance scrub.go, scrubahead.go (disk order), scrubpace.go (yielding
//	            to the volumes), scrubstate.go (resume), readrepair.go,
//	            evacuate.go (remove-member), repack.go, health.go (members
//	            coming and going), damaged.go (damaged chunks, pool status -v)
//	checkpoints checkpoint.go (checkpoints and the punch rule), import.go
//	            (reconciling a restored checkpoint with the packs)
//	checking    check.go (Check, the invariants the tests assert),
//	            space_check.go, fsck.go (snapfs fsck)
//
// Test helpers live in testing_test.go (this package's tests) and in
// package store/storetest (other packages' tests), never in the binary.
//
// # Why maintenance stays in this package
//
// Scrub, read repair, evacuation, repack, health and damage reports are a
// third of the package, and were weighed as a package of their own over a
// narrow interface. They stay, grouped by file, because the interface
// would not be narrow: they take the flush gate (flushGate) to order their
// commits with flushes and durable commits, the per-hash chunkref locks
// and in-flight table (refs), the free queue's sequence and the punch
// rule (shipBeforeDropping), and the Pebble batches of the write path; and
// the read path calls into them (a read that went around a bad copy queues
// a read repair and records damage). A split would export those internals
// or duplicate them, and move locking rules across a package boundary,
// for no gain to callers: the exported surface (Scrub, RemoveMember,
// Repack, Health, DamagedFiles) is already small. docs/design.md records the
// decision.
package store
