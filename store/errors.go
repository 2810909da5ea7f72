package store

import "errors"

// Errors returned by the store. Callers test them with errors.Is; the fs
// package maps each to the errno ext4 would give.
var (
	ErrNotFound     = errors.New("store: no such file or directory") // ENOENT
	ErrExists       = errors.New("store: file exists")               // EEXIST
	ErrNotEmpty     = errors.New("store: directory not empty")       // ENOTEMPTY
	ErrNotDir       = errors.New("store: not a directory")           // ENOTDIR
	ErrIsDir        = errors.New("store: is a directory")            // EISDIR
	ErrReadOnly     = errors.New("store: read-only view")            // EROFS
	ErrCrossView    = errors.New("store: cross-view link or rename") // EXDEV
	ErrNameTooLong  = errors.New("store: file name too long")        // ENAMETOOLONG
	ErrInvalid      = errors.New("store: invalid argument")          // EINVAL
	ErrNoSpace      = errors.New("store: no space left in pool")     // ENOSPC
	ErrQuota        = errors.New("store: volume quota exceeded")     // EDQUOT
	ErrNoData       = errors.New("store: no such attribute")         // ENODATA
	ErrTooManyLinks = errors.New("store: too many links")            // EMLINK
	ErrNotSupported = errors.New("store: operation not supported")   // EOPNOTSUPP
	ErrStale        = errors.New("store: stale view")                // ESTALE
	ErrFileTooBig   = errors.New("store: file too large")            // EFBIG
	ErrIO           = errors.New("store: I/O error")                 // EIO
	ErrNotSymlink   = errors.New("store: not a symbolic link")       // EINVAL (readlink)
	ErrNoXattrSpace = errors.New("store: attribute value too large") // E2BIG / ERANGE
	ErrClosed       = errors.New("store: closed")                    // EIO
	ErrBadName      = errors.New("store: invalid name")              // EINVAL
	ErrVolumeExists = errors.New("store: volume already exists")     // CLI
	ErrNoVolume     = errors.New("store: no such volume")            // CLI
)

// ErrNXIO is returned by Lseek for SEEK_DATA/SEEK_HOLE at or past the end of file (ENXIO).
var ErrNXIO = errors.New("store: offset past end of file")

// ErrPerm is returned for operations POSIX forbids outright, such as a hard
// link to a directory (EPERM).
var ErrPerm = errors.New("store: operation not permitted")

// ErrBusy is returned when something still depends on what a call would
// remove, such as a branch that still has snapshots (EBUSY).
var ErrBusy = errors.New("store: in use")

// ErrAccess is returned where ext4 answers EACCES outside the permission
// checks the kernel makes, such as a default ACL on a file.
var ErrAccess = errors.New("store: permission denied")
