package pool

import (
	"errors"
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// vectorReader is a File that reads one extent into several buffers in
// one call (preadv(2)). Pack files on a local file system are; files that
// are not (object-store packs, test file systems) are read by ReadInto
// through Read and a copy.
type vectorReader interface {
	ReadvAt(bufs [][]byte, off int64) (int, error)
}

// ReadvAt fills bufs in turn from the file's bytes at off, with preadv(2)
// (repeated after a short count, as ReadAt does), and returns io.EOF when
// the file ends first. The descriptor is held through the os.File's
// RawConn Control, which takes a reference as ReadAt does (a concurrent
// Close cannot hand the number to another file meanwhile) but not the
// read lock RawConn.Read takes, which would serialize the reads of a
// pack as it does a stream's.
func (f osFile) ReadvAt(bufs [][]byte, off int64) (int, error) {
	rc, err := f.SyscallConn()
	if err != nil {
		return 0, &os.PathError{Op: "preadv", Path: f.Name(), Err: err}
	}
	total := 0
	var rerr error
	cerr := rc.Control(func(fd uintptr) {
		for len(bufs) > 0 {
			n, err := unix.Preadv(int(fd), bufs, off+int64(total))
			if err == unix.EINTR {
				continue
			}
			if err != nil {
				rerr = &os.PathError{Op: "preadv", Path: f.Name(), Err: err}
				return
			}
			if n == 0 {
				rerr = io.EOF
				return
			}
			total += n
			for len(bufs) > 0 && n >= len(bufs[0]) {
				n -= len(bufs[0])
				bufs = bufs[1:]
			}
			if len(bufs) > 0 {
				// A short read: go on from inside the buffer it stopped in
				// (the caller's slice of buffers is not changed).
				bufs = append([][]byte{bufs[0][n:]}, bufs[1:]...)
			}
		}
	})
	if cerr != nil {
		return total, &os.PathError{Op: "preadv", Path: f.Name(), Err: cerr}
	}
	return total, rerr
}

// ReadInto reads the record at loc whole, as Read does, but with its
// logical bytes landing in dst (exactly loc.Length bytes long) and only
// its header and page trailer in a small buffer of its own: one preadv
// for a pack file, so a caller that owns the destination (the FUSE
// reply's buffer) gets the bytes without a copy or a fresh buffer. The
// checks are Read's: header (magic, CRC, pool id), hash h, length, the
// CRC32C of the stored bytes and the trailer's CRC. On an error dst holds
// bytes that were not verified, which the caller must not use. Packs that
// cannot be read so (in an object store, behind the read cache and its
// read-ahead, or on a test file system) are read by Read and copied.
func (p *Pool) ReadInto(loc Location, h Hash, dst []byte) error {
	if len(dst) != int(loc.Length) {
		return fmt.Errorf("pool: read %v into %d bytes: the buffer must hold the record's length", loc, len(dst))
	}
	m, pk, err := p.readTarget(loc)
	if err != nil {
		return err
	}
	vr, ok := pk.f.(vectorReader)
	if !ok {
		data, err := p.Read(loc, h, nil)
		if err != nil {
			return err
		}
		if len(data) != len(dst) {
			return fmt.Errorf("pool: read %v: %d bytes: %w", loc, len(data), ErrChecksum)
		}
		copy(dst, data)
		return nil
	}
	// Sized for version 2; a version 1 record ends before the trailer
	// would, and may be the pack's last (then the read ends at EOF).
	small := make([]byte, HeaderSize+trailerSize(loc.Length))
	hdr, trail := small[:HeaderSize], small[HeaderSize:]
	got, err := vr.ReadvAt([][]byte{hdr, dst, trail}, loc.Offset)
	if err != nil && errors.Is(err, io.EOF) && got >= HeaderSize+len(dst) {
		trail, err = trail[:got-HeaderSize-len(dst)], nil
	}
	if err != nil {
		return p.readError(m, loc, err)
	}
	if err := verifyParts(hdr, dst, trail, loc, h, p.id); err != nil {
		return fmt.Errorf("pool: read %v: %w", loc, err)
	}
	return nil
}

// verifyParts is verify for a record read in three parts: its header,
// its stored bytes and what follows them (the page trailer in version 2).
// decodeHeader accepts only uncompressed records, whose stored length is
// their logical length, loc.Length, which is len(stored).
func verifyParts(hdr, stored, trail []byte, loc Location, h Hash, poolID [16]byte) error {
	hd, err := decodeHeader(hdr, poolID)
	switch {
	case err != nil:
		return err
	case hd.hash != h:
		return fmt.Errorf("record holds hash %v, want %v: %w", hd.hash, h, ErrChecksum)
	case hd.logical != loc.Length:
		return fmt.Errorf("record length %d, want %d: %w", hd.logical, loc.Length, ErrChecksum)
	}
	if crc32c(stored) != hd.storedCRC {
		return fmt.Errorf("payload crc mismatch: %w", ErrChecksum)
	}
	if hd.version >= recordV2 {
		if _, err := checkTrailer(trail, hd.stored); err != nil {
			return err
		}
	}
	return nil
}

// ReadAnyIntoReport is ReadAnyReport reading into dst (ReadInto): the
// first good copy among locs, and the bad copies read before it (or all
// of them, with the error). On an error dst holds unverified bytes.
func (p *Pool) ReadAnyIntoReport(locs []Location, h Hash, dst []byte) ([]BadCopy, error) {
	_, bad, err := p.readAny(locs, func(loc Location) ([]byte, error) {
		return dst, p.ReadInto(loc, h, dst)
	})
	return bad, err
}
