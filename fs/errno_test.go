package fs

import (
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/snapfs/snapfs/pool"
	"github.com/snapfs/snapfs/store"
)

func TestToErrno(t *testing.T) {
	wrap := func(err error) error { return fmt.Errorf("store: lookup 7/foo: %w", err) }
	for _, tc := range []struct {
		err  error
		want syscall.Errno
	}{
		{nil, 0},
		{store.ErrNotFound, syscall.ENOENT},
		{wrap(store.ErrNotFound), syscall.ENOENT},
		{wrap(store.ErrExists), syscall.EEXIST},
		{wrap(store.ErrNotEmpty), syscall.ENOTEMPTY},
		{wrap(store.ErrNotDir), syscall.ENOTDIR},
		{wrap(store.ErrIsDir), syscall.EISDIR},
		{wrap(store.ErrReadOnly), syscall.EROFS},
		{wrap(store.ErrCrossView), syscall.EXDEV},
		{wrap(store.ErrNameTooLong), syscall.ENAMETOOLONG},
		{wrap(store.ErrInvalid), syscall.EINVAL},
		{wrap(store.ErrBadName), syscall.EINVAL},
		{wrap(store.ErrNotSymlink), syscall.EINVAL},
		{wrap(store.ErrNoSpace), syscall.ENOSPC},
		{wrap(pool.ErrNoSpace), syscall.ENOSPC},
		{wrap(store.ErrQuota), syscall.EDQUOT},
		{wrap(store.ErrNoData), syscall.ENODATA},
		{wrap(store.ErrNXIO), syscall.ENXIO},
		{wrap(store.ErrTooManyLinks), syscall.EMLINK},
		{wrap(store.ErrNotSupported), syscall.EOPNOTSUPP},
		{wrap(store.ErrStale), syscall.ESTALE},
		{wrap(store.ErrFileTooBig), syscall.EFBIG},
		{wrap(store.ErrNoXattrSpace), syscall.E2BIG},
		{wrap(store.ErrIO), syscall.EIO},
		{wrap(store.ErrClosed), syscall.EIO},
		{wrap(pool.ErrChecksum), syscall.EIO},
		{wrap(pool.ErrMemberGone), syscall.EIO},
		{wrap(pool.ErrReadOnly), syscall.EROFS},
		// An errno from the OS, wrapped, passes through.
		{fmt.Errorf("pool: append: %w", syscall.ENOSPC), syscall.ENOSPC},
		{errors.New("something new"), syscall.EIO},
	} {
		if got := toErrno(tc.err); got != tc.want {
			t.Errorf("toErrno(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

// TestToErrnoCoversSentinels checks that every store sentinel meant for the
// kernel has a row, so a new sentinel is not silently EIO.
func TestToErrnoCoversSentinels(t *testing.T) {
	for _, err := range []error{
		store.ErrNotFound, store.ErrExists, store.ErrNotEmpty, store.ErrNotDir,
		store.ErrIsDir, store.ErrReadOnly, store.ErrCrossView, store.ErrNameTooLong,
		store.ErrInvalid, store.ErrNoSpace, store.ErrQuota, store.ErrNoData,
		store.ErrTooManyLinks, store.ErrNotSupported, store.ErrStale,
		store.ErrFileTooBig, store.ErrIO, store.ErrNotSymlink, store.ErrNoXattrSpace,
		store.ErrClosed, store.ErrBadName, store.ErrVolumeExists, store.ErrNoVolume,
		store.ErrNXIO,
	} {
		found := false
		for _, e := range errnoTable {
			if e.err == err {
				found = true
			}
		}
		if !found {
			t.Errorf("%v has no row in errnoTable", err)
		}
	}
}
