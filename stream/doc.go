// Package stream is snapfs replication: it writes a snapshot of a
// dataset as a stream (Send, SendNamed, SendResume) and receives streams
// into a volume of another store (Receive), whole or as the changes from
// a base snapshot the target already holds. The format and the receive
// procedure are documented in docs/stream.md.
//
// # Sending
//
// A full sender walks the snapshot breadth first from the root, in
// directory order; an incremental one asks the store's change iterator
// (store.Changes, the iterator of diff) what differs from the base and
// writes that alone, in inode number order: attributes, xattrs, the
// layout of a file whose chunks changed, a changed directory's listing.
// Either way the same snapshots always give the same bytes (a resume
// regenerates the stream and skips to an offset). Chunk bytes travel once
// per hash per stream, and never when the base references the hash
// (sender.needChunk says how that is decided without walking the base in
// the common case).
//
// # Receiving
//
// A receiver checks the header against the target, then verifies every
// record (CRC over sequence, type and payload; BLAKE3 of chunk bytes; the
// end record's count, length and BLAKE3 of the whole) while copying it to
// a spool file in the pool directory, which it makes durable every few
// MiB with a state file saying how much it holds. Only when the whole
// stream verified does it touch the target: it builds the tree in the
// volume's live view with the store's ordinary operations (applier), then
// syncs and takes the snapshot, with the source's creation time and the
// map of source to target inode numbers in the pin's batch. So a damaged,
// truncated or foreign stream leaves the target untouched, and an
// interrupted one resumes from the spool (ResumeToken, SendResume).
//
// # Locks
//
// One receive per dataset at a time: an flock on POOL/recv/<dataset>.lock,
// held for the whole Receive or Abort and released on every return (a
// deferred close). The package holds no other lock: the store and the
// snapshot manager guard their own data.
//
// # Errors
//
// Every refusal wraps one of the Err* values, and Code / ErrorOfCode name
// them in the control protocol, so that a client of a daemon gets the
// same typed errors (package client, StreamError).
package stream
