package fs

import (
	"context"
	"errors"
	"log"
	"sync"
	"syscall"

	"github.com/snapfs/snapfs/pool"
	"github.com/snapfs/snapfs/store"
)

// errnoTable maps each sentinel of the engine to the errno ext4 would give.
// The first match in table order wins, so a wrapped error that carries two
// sentinels gets the more specific one listed first. Entries with logIt set
// mean something is wrong below us: the first occurrence of each distinct
// message is logged.
var errnoTable = []struct {
	err   error
	errno syscall.Errno
	logIt bool
}{
	{store.ErrNotFound, syscall.ENOENT, false},
	{store.ErrExists, syscall.EEXIST, false},
	{store.ErrNotEmpty, syscall.ENOTEMPTY, false},
	{store.ErrBusy, syscall.EBUSY, false},
	{store.ErrAccess, syscall.EACCES, false},
	{store.ErrNotDir, syscall.ENOTDIR, false},
	{store.ErrIsDir, syscall.EISDIR, false},
	{store.ErrReadOnly, syscall.EROFS, false},
	{store.ErrCrossView, syscall.EXDEV, false},
	{store.ErrNameTooLong, syscall.ENAMETOOLONG, false},
	{store.ErrBadName, syscall.EINVAL, false},
	{store.ErrNotSymlink, syscall.EINVAL, false},
	{store.ErrInvalid, syscall.EINVAL, false},
	{store.ErrQuota, syscall.EDQUOT, false},
	{store.ErrNoSpace, syscall.ENOSPC, false},
	{pool.ErrNoSpace, syscall.ENOSPC, false},
	{store.ErrNoData, syscall.ENODATA, false},
	{store.ErrNXIO, syscall.ENXIO, false},
	{store.ErrTooManyLinks, syscall.EMLINK, false},
	{store.ErrNotSupported, syscall.EOPNOTSUPP, false},
	{store.ErrStale, syscall.ESTALE, false},
	{store.ErrFileTooBig, syscall.EFBIG, false},
	{store.ErrNoXattrSpace, syscall.E2BIG, false},
	{store.ErrVolumeExists, syscall.EEXIST, false},
	{store.ErrNoVolume, syscall.ENOENT, false},
	{pool.ErrReadOnly, syscall.EROFS, false},
	// A request racing the unmount finds the store closed; nothing to report.
	{store.ErrClosed, syscall.EIO, false},
	{pool.ErrClosed, syscall.EIO, false},
	// A record with no good copy: a warning line and EIO, never the bytes.
	{pool.ErrChecksum, syscall.EIO, true},
	{pool.ErrMemberGone, syscall.EIO, true},
	{store.ErrIO, syscall.EIO, true},
}

// maxLogged bounds the distinct messages errnoLog remembers, so a failing
// disk cannot grow the set without limit.
const maxLogged = 256

// errnoLog remembers which error messages were already logged.
var errnoLog struct {
	sync.Mutex
	seen       map[string]bool
	suppressed bool // the "further errors not logged" line was written
}

// toErrno maps an error from store or pool to the errno the kernel gets.
// It is the only place in snapfs where Go errors become errnos; go-fuse's
// fs.ToErrno must never see a wrapped error (it does not unwrap and returns
// ENOSYS). nil maps to 0, anything unknown is logged once and becomes EIO.
func toErrno(err error) syscall.Errno {
	if err == nil {
		return 0
	}
	for _, e := range errnoTable {
		if errors.Is(err, e.err) {
			if e.logIt {
				logOnce(err)
			}
			return e.errno
		}
	}
	if errors.Is(err, context.Canceled) {
		return syscall.EINTR
	}
	var errno syscall.Errno
	if errors.As(err, &errno) && errno != 0 {
		return errno
	}
	logOnce(err)
	return syscall.EIO
}

// logOnce logs err unless an error with the same message was logged before.
func logOnce(err error) {
	msg := err.Error()
	errnoLog.Lock()
	defer errnoLog.Unlock()
	if errnoLog.seen[msg] {
		return
	}
	if len(errnoLog.seen) >= maxLogged {
		if !errnoLog.suppressed {
			errnoLog.suppressed = true
			log.Printf("snapfs: more than %d distinct I/O errors; not logging further ones", maxLogged)
		}
		return
	}
	if errnoLog.seen == nil {
		errnoLog.seen = make(map[string]bool)
	}
	errnoLog.seen[msg] = true
	log.Printf("snapfs: I/O error returned as EIO: %v", err)
}
