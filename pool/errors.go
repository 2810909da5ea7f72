package pool

import "errors"

// Sentinel errors. Every error the package returns that falls in one of these
// classes wraps the sentinel, so callers test with errors.Is.
var (
	// ErrChecksum: a record failed verification (magic, pool id, hash,
	// length, header or payload CRC). The bytes are never returned.
	ErrChecksum = errors.New("pool: checksum mismatch")
	// ErrNoSpace: a reservation or a write did not fit on the members.
	ErrNoSpace = errors.New("pool: no space left")
	// ErrNotPool: the directory holds no pool.json.
	ErrNotPool = errors.New("pool: not a snapfs pool")
	// ErrInUse: another process holds the pool lock.
	ErrInUse = errors.New("pool: in use")
	// ErrMemberGone: the member directory or its member.json is missing
	// (a failed disk, or an unmounted mount point).
	ErrMemberGone = errors.New("pool: member gone")
	// ErrCorrupt: pool.json or member.json cannot be parsed or is
	// inconsistent with the pool.
	ErrCorrupt = errors.New("pool: corrupt configuration")
	// ErrExists: Create found an existing pool or member.
	ErrExists = errors.New("pool: already exists")
	// ErrReadOnly: a write on a pool opened with OpenOptions.ReadOnly.
	ErrReadOnly = errors.New("pool: opened read-only")
	// ErrNoMeta: the pool directory has no meta/ (its metadata is lost;
	// snapfs pool import rebuilds it from a checkpoint on the members).
	ErrNoMeta = errors.New("pool: metadata missing")
	// ErrNoCheckpoint: no member holds a metadata checkpoint to import.
	ErrNoCheckpoint = errors.New("pool: no metadata checkpoint")
	// ErrReadFaults: a member was degraded because reads of several of
	// its records failed with I/O errors (readfaults.go).
	ErrReadFaults = errors.New("pool: member fails reads")
	// ErrClosed: the pool was closed.
	ErrClosed = errors.New("pool: closed")
)
