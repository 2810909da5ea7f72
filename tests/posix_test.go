package tests

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// posixSuite holds the POSIX behaviours every writable view must have, as
// ext4 has them. Each test gets a fresh, empty directory inside the mount,
// so the same suite can run against the live volume and, later, a branch.
var posixSuite = map[string]func(t *testing.T, dir string){
	"WriteAtOffsets":     testWriteAtOffsets,
	"LargeFile":          testLargeFile,
	"SparseSeekHoleData": testSparseSeek,
	"TruncateShrinkGrow": testTruncateShrinkGrow,
	"PunchHole":          testPunchHole,
	"AppendTwoFds":       testAppendTwoFds,
	"OTrunc":             testOTrunc,
	"Mmap":               testMmap,
	"RenameOverFile":     testRenameOverFile,
	"RenameOverEmptyDir": testRenameOverEmptyDir,
	"RenameErrors":       testRenameErrors,
	"RenameNoreplace":    testRenameNoreplace,
	"RenameExchange":     testRenameExchange,
	"HardLinks":          testHardLinks,
	"Symlinks":           testSymlinks,
	"FifoSocketDevice":   testFifoSocketDevice,
	"ChmodChownUtimes":   testChmodChownUtimes,
	"TimesUpdated":       testTimesUpdated,
	"XattrTools":         testXattrTools,
	"XattrSyscalls":      testXattrSyscalls,
	"Statfs":             testStatfs,
	"Fsync":              testFsync,
	"UnlinkOpenFile":     testUnlinkOpenFile,
	"Noatime":            testNoatime,
	"ErrnoNameTooLong":   testErrnoNameTooLong,
	"ErrnoNotEmpty":      testErrnoNotEmpty,
	"ErrnoIsDir":         testErrnoIsDir,
	"ErrnoNotDir":        testErrnoNotDir,
	"ErrnoExist":         testErrnoExist,
	"ErrnoNoEnt":         testErrnoNoEnt,
	"OddNames":           testOddNames,
	"DirNlink":           testDirNlink,
	"ReaddirMany":        testReaddirMany,
	"ReaddirSeek":        testReaddirSeek,
	"DefaultPermissions": testDefaultPermissions,
	"KillSuidgid":        testKillSuidgid,
	"MinimalACL":         testMinimalACL,
	"WriteOnlyCoherence": testWriteOnlyCoherence,
	"WriteDropsCap":      testWriteDropsCapability,
}

// mountMatrix lists the mount option sets the POSIX suite runs under.
var mountMatrix = map[string][]string{
	"default":     nil,
	"allow_other": {"--allow-other"},
	// The kernel writeback cache (writeback_test.go has its own tests).
	"writeback_cache": {"--writeback-cache"},
}

// TestPOSIX runs the POSIX suite on the live volume, once per option set.
func TestPOSIX(t *testing.T) {
	for _, opts := range sortedKeys(mountMatrix) {
		t.Run(opts, func(t *testing.T) {
			mnt, _ := mountVolume(t, mountOpts{MountArgs: mountMatrix[opts]})
			runSuite(t, mnt, posixSuite)
		})
	}
}

// runSuite runs every test of suite in its own new directory under root.
func runSuite(t *testing.T, root string, suite map[string]func(*testing.T, string)) {
	for _, name := range sortedKeys(suite) {
		t.Run(name, func(t *testing.T) {
			dir := filepath.Join(root, name)
			if err := os.Mkdir(dir, 0o755); err != nil {
				t.Fatal(err)
			}
			suite[name](t, dir)
		})
	}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// stat lstats p and fails the test if it cannot.
func stat(t testing.TB, p string) *unix.Stat_t {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Lstat(p, &st); err != nil {
		t.Fatalf("lstat %s: %v", p, err)
	}
	return &st
}

// wantErrno fails the test unless err is errno.
func wantErrno(t testing.TB, what string, err error, errno syscall.Errno) {
	t.Helper()
	if !errors.Is(err, errno) {
		t.Errorf("%s: got error %v, want %v (%s)", what, err, errno, unix.ErrnoName(errno))
	}
}

func check(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// writeFile writes b to p and fails the test if it cannot.
func writeFile(t testing.TB, p string, b []byte) {
	t.Helper()
	check(t, os.WriteFile(p, b, 0o644))
}

// wantContent fails the test unless p holds exactly want.
func wantContent(t testing.TB, p string, want []byte) {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("%s: content differs: %s", p, describeDiff(want, got))
	}
}

// describeDiff says where got first differs from want.
func describeDiff(want, got []byte) string {
	n := min(len(want), len(got))
	for i := 0; i < n; i++ {
		if want[i] != got[i] {
			end := min(i+16, n)
			return fmt.Sprintf("first difference at offset %d (want % x, got % x); lengths %d and %d",
				i, want[i:end], got[i:end], len(want), len(got))
		}
	}
	return fmt.Sprintf("want %d bytes, got %d (common prefix equal)", len(want), len(got))
}

func testWriteAtOffsets(t *testing.T, dir string) {
	p := filepath.Join(dir, "f")
	f, err := os.Create(p)
	check(t, err)
	defer f.Close()
	var model []byte
	writeAt := func(off int, b []byte) {
		t.Helper()
		if _, err := f.WriteAt(b, int64(off)); err != nil {
			t.Fatalf("pwrite at %d: %v", off, err)
		}
		if end := off + len(b); end > len(model) {
			model = append(model, make([]byte, end-len(model))...)
		}
		copy(model[off:], b)
	}
	writeAt(0, []byte("start"))
	writeAt(100_000, pattern(70_000, 1)) // across the first chunk boundary (128 KiB)
	writeAt(300_000, pattern(10, 2))     // beyond EOF: a gap of zeros
	writeAt(131_070, []byte("boundary")) // overwrite straddling a boundary
	writeAt(3, pattern(200_000, 3))      // overwrite of several chunks from an odd offset
	writeAt(1<<20+7, []byte("far"))      // far past EOF
	buf := make([]byte, len(model))
	if _, err := f.ReadAt(buf, 0); err != nil && err != io.EOF {
		t.Fatalf("pread: %v", err)
	}
	if !bytes.Equal(buf, model) {
		t.Errorf("read through the open fd: %s", describeDiff(model, buf))
	}
	check(t, f.Close())
	wantContent(t, p, model)
	if fi, err := os.Stat(p); err != nil || fi.Size() != int64(len(model)) {
		t.Errorf("size %v (%v), want %d", fi.Size(), err, len(model))
	}
}

func testLargeFile(t *testing.T, dir string) {
	data := pattern(5<<20+123, 4)
	p := filepath.Join(dir, "big")
	writeFile(t, p, data)
	wantContent(t, p, data)
	// Reads at odd offsets and lengths.
	f, err := os.Open(p)
	check(t, err)
	defer f.Close()
	for _, r := range [][2]int{{0, 1}, {131071, 2}, {1 << 20, 1 << 20}, {len(data) - 10, 10}, {12345, 300000}} {
		buf := make([]byte, r[1])
		n, err := f.ReadAt(buf, int64(r[0]))
		if err != nil || n != r[1] || !bytes.Equal(buf, data[r[0]:r[0]+r[1]]) {
			t.Errorf("pread %d bytes at %d: n=%d err=%v, content equal %v", r[1], r[0], n, err, bytes.Equal(buf[:n], data[r[0]:r[0]+n]))
		}
	}
	buf := make([]byte, 10)
	if n, err := f.ReadAt(buf, int64(len(data))); n != 0 || err != io.EOF {
		t.Errorf("pread at EOF: n=%d err=%v, want 0, EOF", n, err)
	}
	// cmp(1) against a copy outside the mount.
	out := filepath.Join(t.TempDir(), "big")
	writeFile(t, out, data)
	mustRun(t, "", nil, "cmp", p, out)
}

func testSparseSeek(t *testing.T, dir string) {
	const size, dataOff, dataLen = 4 << 20, 1 << 20, 4096
	p := filepath.Join(dir, "sparse")
	f, err := os.Create(p)
	check(t, err)
	defer f.Close()
	check(t, f.Truncate(size))
	data := pattern(dataLen, 5)
	_, err = f.WriteAt(data, dataOff)
	check(t, err)

	probe := func(when string) {
		t.Helper()
		fd := int(f.Fd())
		if off, err := unix.Seek(fd, 0, unix.SEEK_DATA); err != nil || off != dataOff {
			t.Errorf("%s: SEEK_DATA from 0 = %d, %v; want %d", when, off, err, dataOff)
		}
		if off, err := unix.Seek(fd, 0, unix.SEEK_HOLE); err != nil || off != 0 {
			t.Errorf("%s: SEEK_HOLE from 0 = %d, %v; want 0", when, off, err)
		}
		if off, err := unix.Seek(fd, dataOff, unix.SEEK_HOLE); err != nil || off < dataOff+dataLen || off > size {
			t.Errorf("%s: SEEK_HOLE from %d = %d, %v; want in [%d, %d]", when, dataOff, off, err, dataOff+dataLen, size)
		}
		if off, err := unix.Seek(fd, dataOff+dataLen-1, unix.SEEK_DATA); err != nil || off != dataOff+dataLen-1 {
			t.Errorf("%s: SEEK_DATA from inside the data = %d, %v; want %d", when, off, err, dataOff+dataLen-1)
		}
		if _, err := unix.Seek(fd, 2<<20, unix.SEEK_DATA); !errors.Is(err, unix.ENXIO) {
			t.Errorf("%s: SEEK_DATA in the trailing hole: %v, want ENXIO", when, err)
		}
		if _, err := unix.Seek(fd, size, unix.SEEK_DATA); !errors.Is(err, unix.ENXIO) {
			t.Errorf("%s: SEEK_DATA at EOF: %v, want ENXIO", when, err)
		}
		if _, err := unix.Seek(fd, size+1, unix.SEEK_HOLE); !errors.Is(err, unix.ENXIO) {
			t.Errorf("%s: SEEK_HOLE past EOF: %v, want ENXIO", when, err)
		}
	}
	probe("before fsync")
	check(t, f.Sync())
	probe("after fsync")

	want := make([]byte, size)
	copy(want[dataOff:], data)
	wantContent(t, p, want)
	if st := stat(t, p); st.Blocks*512 > 1<<20 {
		t.Errorf("sparse file of %d bytes with %d bytes of data uses %d blocks (%d bytes)", size, dataLen, st.Blocks, st.Blocks*512)
	}
}

func testTruncateShrinkGrow(t *testing.T, dir string) {
	for _, c := range []struct {
		name         string
		size, shrink int
	}{
		{"inside-chunk", 300_000, 1000},
		{"at-boundary", 300_000, 131072},
		{"past-boundary", 300_000, 131072 + 5},
		{"to-zero", 300_000, 0},
		{"small", 100, 10},
	} {
		p := filepath.Join(dir, c.name)
		data := bytes.Repeat([]byte{0xab}, c.size)
		writeFile(t, p, data)
		check(t, os.Truncate(p, int64(c.shrink)))
		check(t, os.Truncate(p, int64(c.size)))
		want := make([]byte, c.size)
		copy(want, data[:c.shrink])
		wantContent(t, p, want)

		// The same through ftruncate on an open descriptor.
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		check(t, err)
		_, err = f.WriteAt(data, 0)
		check(t, err)
		check(t, f.Truncate(int64(c.shrink)))
		check(t, f.Truncate(int64(c.size)))
		buf := make([]byte, c.size)
		_, err = f.ReadAt(buf, 0)
		check(t, err)
		check(t, f.Close())
		if !bytes.Equal(buf, want) {
			t.Errorf("%s: ftruncate shrink and grow: %s", c.name, describeDiff(want, buf))
		}
		wantContent(t, p, want)
	}
}

func testPunchHole(t *testing.T, dir string) {
	p := filepath.Join(dir, "f")
	data := pattern(600_000, 6)
	writeFile(t, p, data)
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	check(t, err)
	defer f.Close()
	want := append([]byte(nil), data...)
	for _, r := range [][2]int64{{100_000, 200_000}, {131072 * 3, 131072}, {599_990, 100}} {
		err := unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, r[0], r[1])
		if err != nil {
			t.Fatalf("fallocate PUNCH_HOLE|KEEP_SIZE off %d len %d: %v", r[0], r[1], err)
		}
		clear(want[r[0]:min(r[0]+r[1], int64(len(want)))])
	}
	buf := make([]byte, len(data))
	_, err = f.ReadAt(buf, 0)
	check(t, err)
	if !bytes.Equal(buf, want) {
		t.Errorf("after punching holes: %s", describeDiff(want, buf))
	}
	check(t, f.Close())
	wantContent(t, p, want)
	if fi, err := os.Stat(p); err != nil || fi.Size() != int64(len(data)) {
		t.Errorf("KEEP_SIZE: size %d (%v), want %d", fi.Size(), err, len(data))
	}
}

func testAppendTwoFds(t *testing.T, dir string) {
	p := filepath.Join(dir, "log")
	writeFile(t, p, []byte("head\n"))
	open := func() *os.File {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		check(t, err)
		return f
	}
	a, b := open(), open()
	want := []byte("head\n")
	for i := 0; i < 200; i++ {
		la, lb := fmt.Sprintf("a%04d\n", i), fmt.Sprintf("b%04d\n", i)
		_, err := a.WriteString(la)
		check(t, err)
		_, err = b.WriteString(lb)
		check(t, err)
		want = append(want, la+lb...)
	}
	check(t, a.Close())
	check(t, b.Close())
	wantContent(t, p, want)
}

func testOTrunc(t *testing.T, dir string) {
	p := filepath.Join(dir, "f")
	writeFile(t, p, pattern(1<<20, 7))
	f, err := os.OpenFile(p, os.O_WRONLY|os.O_TRUNC, 0)
	check(t, err)
	fi, err := f.Stat()
	check(t, err)
	if fi.Size() != 0 {
		t.Errorf("size after O_TRUNC open: %d", fi.Size())
	}
	_, err = f.WriteString("short")
	check(t, err)
	check(t, f.Close())
	wantContent(t, p, []byte("short"))
}

func testMmap(t *testing.T, dir string) {
	p := filepath.Join(dir, "m")
	const size = 300_000
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	check(t, err)
	defer f.Close()
	check(t, f.Truncate(size))
	m, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatalf("mmap shared rw: %v", err)
	}
	data := pattern(size, 8)
	copy(m, data)
	check(t, unix.Msync(m, unix.MS_SYNC))
	check(t, unix.Munmap(m))
	check(t, f.Close())
	wantContent(t, p, data)

	f2, err := os.Open(p)
	check(t, err)
	defer f2.Close()
	r, err := unix.Mmap(int(f2.Fd()), 0, size, unix.PROT_READ, unix.MAP_SHARED)
	check(t, err)
	if !bytes.Equal(r, data) {
		t.Errorf("mmap read: %s", describeDiff(data, r))
	}
	check(t, unix.Munmap(r))
}

func testRenameOverFile(t *testing.T, dir string) {
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	writeFile(t, a, []byte("A"))
	writeFile(t, b, []byte("B"))
	inoA := stat(t, a).Ino
	old, err := os.Open(b) // the replaced file stays readable through an open fd
	check(t, err)
	defer old.Close()
	check(t, os.Rename(a, b))
	wantContent(t, b, []byte("A"))
	if ino := stat(t, b).Ino; ino != inoA {
		t.Errorf("renamed file has inode %d, want %d", ino, inoA)
	}
	_, err = os.Lstat(a)
	wantErrno(t, "lstat of the old name", err, unix.ENOENT)
	got, err := io.ReadAll(old)
	if err != nil || string(got) != "B" {
		t.Errorf("replaced file through its open fd: %q, %v; want %q", got, err, "B")
	}
	// Rename into another directory.
	sub := filepath.Join(dir, "sub")
	check(t, os.Mkdir(sub, 0o755))
	check(t, os.Rename(b, filepath.Join(sub, "c")))
	wantContent(t, filepath.Join(sub, "c"), []byte("A"))
	names := readNames(t, dir)
	if strings.Join(names, ",") != "sub" {
		t.Errorf("directory after renames lists %q, want [sub]", names)
	}
}

func testRenameOverEmptyDir(t *testing.T, dir string) {
	d1, d2 := filepath.Join(dir, "d1"), filepath.Join(dir, "d2")
	check(t, os.Mkdir(d1, 0o755))
	check(t, os.Mkdir(d2, 0o755))
	writeFile(t, filepath.Join(d1, "f"), []byte("x"))
	// Not os.Rename: it refuses an existing directory as target itself.
	check(t, unix.Rename(d1, d2))
	wantContent(t, filepath.Join(d2, "f"), []byte("x"))
	_, err := os.Lstat(d1)
	wantErrno(t, "lstat of the old dir", err, unix.ENOENT)
	if n := stat(t, dir).Nlink; n != 3 {
		t.Errorf("parent nlink after renaming a dir over another: %d, want 3", n)
	}
}

func testRenameErrors(t *testing.T, dir string) {
	d1, d2, f := filepath.Join(dir, "d1"), filepath.Join(dir, "d2"), filepath.Join(dir, "f")
	check(t, os.Mkdir(d1, 0o755))
	check(t, os.Mkdir(d2, 0o755))
	writeFile(t, filepath.Join(d2, "x"), nil)
	writeFile(t, f, nil)
	// unix.Rename, not os.Rename, which answers EEXIST itself when the
	// target is a directory.
	wantErrno(t, "rename dir over non-empty dir", unix.Rename(d1, d2), unix.ENOTEMPTY)
	wantErrno(t, "rename file over dir", unix.Rename(f, d1), unix.EISDIR)
	wantErrno(t, "rename dir over file", unix.Rename(d1, f), unix.ENOTDIR)
	wantErrno(t, "rename dir into itself", unix.Rename(d2, filepath.Join(d2, "in")), unix.EINVAL)
	wantErrno(t, "rename missing", unix.Rename(filepath.Join(dir, "nope"), filepath.Join(dir, "n2")), unix.ENOENT)
	// Nothing changed.
	if names := readNames(t, dir); strings.Join(names, ",") != "d1,d2,f" {
		t.Errorf("after failed renames the directory lists %q", names)
	}
	wantContent(t, filepath.Join(d2, "x"), nil)
}

func testRenameNoreplace(t *testing.T, dir string) {
	a, b, c := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "c")
	writeFile(t, a, []byte("A"))
	writeFile(t, b, []byte("B"))
	err := unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_NOREPLACE)
	wantErrno(t, "renameat2 NOREPLACE over an existing name", err, unix.EEXIST)
	wantContent(t, a, []byte("A"))
	wantContent(t, b, []byte("B"))
	check(t, unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, c, unix.RENAME_NOREPLACE))
	wantContent(t, c, []byte("A"))
	err = unix.Renameat2(unix.AT_FDCWD, b, unix.AT_FDCWD, c, unix.RENAME_WHITEOUT)
	if err == nil {
		t.Errorf("renameat2 WHITEOUT succeeded; want an error (EINVAL)")
	}
}

func testRenameExchange(t *testing.T, dir string) {
	a, b, d := filepath.Join(dir, "a"), filepath.Join(dir, "b"), filepath.Join(dir, "d")
	writeFile(t, a, []byte("A"))
	writeFile(t, b, []byte("B"))
	inoA, inoB := stat(t, a).Ino, stat(t, b).Ino
	check(t, unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE))
	wantContent(t, a, []byte("B"))
	wantContent(t, b, []byte("A"))
	if stat(t, a).Ino != inoB || stat(t, b).Ino != inoA {
		t.Errorf("RENAME_EXCHANGE did not swap inodes")
	}
	// A file and a directory swap too.
	check(t, os.Mkdir(d, 0o755))
	writeFile(t, filepath.Join(d, "in"), []byte("in"))
	check(t, unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, d, unix.RENAME_EXCHANGE))
	wantContent(t, a+"/in", []byte("in"))
	wantContent(t, d, []byte("B"))
	err := unix.Renameat2(unix.AT_FDCWD, b, unix.AT_FDCWD, filepath.Join(dir, "missing"), unix.RENAME_EXCHANGE)
	wantErrno(t, "RENAME_EXCHANGE with a missing target", err, unix.ENOENT)
	err = unix.Renameat2(unix.AT_FDCWD, b, unix.AT_FDCWD, d, unix.RENAME_EXCHANGE|unix.RENAME_NOREPLACE)
	wantErrno(t, "RENAME_EXCHANGE|RENAME_NOREPLACE", err, unix.EINVAL)
}

func testHardLinks(t *testing.T, dir string) {
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	writeFile(t, a, []byte("one"))
	check(t, os.Link(a, b))
	sa, sb := stat(t, a), stat(t, b)
	if sa.Ino != sb.Ino || sa.Nlink != 2 || sb.Nlink != 2 {
		t.Errorf("hard link: inodes %d, %d and nlink %d, %d; want one inode, nlink 2", sa.Ino, sb.Ino, sa.Nlink, sb.Nlink)
	}
	writeFile(t, b, []byte("two"))
	wantContent(t, a, []byte("two"))
	wantErrno(t, "link to a directory", os.Link(dir, filepath.Join(dir, "dirlink")), unix.EPERM)
	check(t, os.Remove(a))
	if n := stat(t, b).Nlink; n != 1 {
		t.Errorf("nlink after unlinking one name: %d, want 1", n)
	}
	wantContent(t, b, []byte("two"))
}

func testSymlinks(t *testing.T, dir string) {
	f, l := filepath.Join(dir, "f"), filepath.Join(dir, "l")
	writeFile(t, f, []byte("target content"))
	check(t, os.Symlink("f", l))
	if got, err := os.Readlink(l); err != nil || got != "f" {
		t.Errorf("readlink: %q, %v", got, err)
	}
	st := stat(t, l)
	if st.Mode&unix.S_IFMT != unix.S_IFLNK || st.Size != 1 {
		t.Errorf("lstat of symlink: mode %o size %d; want a symlink of size 1", st.Mode, st.Size)
	}
	wantContent(t, l, []byte("target content"))
	long := strings.Repeat("long/", 800) + "end"
	dl := filepath.Join(dir, "dangling")
	check(t, os.Symlink(long, dl))
	if got, err := os.Readlink(dl); err != nil || got != long {
		t.Errorf("readlink of a %d-byte target: %d bytes, %v", len(long), len(got), err)
	}
	_, err := os.Stat(dl)
	wantErrno(t, "stat through a dangling symlink", err, unix.ENOENT)
	out := mustRun(t, dir, nil, "readlink", "l")
	if out != "f\n" {
		t.Errorf("readlink(1): %q", out)
	}
}

func testFifoSocketDevice(t *testing.T, dir string) {
	fifo := filepath.Join(dir, "fifo")
	check(t, unix.Mkfifo(fifo, 0o644))
	if m := stat(t, fifo).Mode; m&unix.S_IFMT != unix.S_IFIFO {
		t.Errorf("mkfifo: mode %o", m)
	}
	done := make(chan error, 1)
	go func() {
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err == nil {
			_, err = w.WriteString("through the fifo")
			if cerr := w.Close(); err == nil {
				err = cerr
			}
		}
		done <- err
	}()
	r, err := os.Open(fifo)
	check(t, err)
	got, err := io.ReadAll(r)
	r.Close()
	if err != nil || string(got) != "through the fifo" {
		t.Errorf("read from fifo: %q, %v", got, err)
	}
	check(t, <-done)

	sock := filepath.Join(dir, "sock")
	check(t, unix.Mknod(sock, unix.S_IFSOCK|0o644, 0))
	if m := stat(t, sock).Mode; m&unix.S_IFMT != unix.S_IFSOCK {
		t.Errorf("mknod socket: mode %o", m)
	}
	if os.Geteuid() != 0 {
		t.Skip("mknod of devices needs root")
	}
	for _, c := range []struct {
		name string
		typ  uint32
		dev  uint64
	}{{"null", unix.S_IFCHR, unix.Mkdev(1, 3)}, {"blk", unix.S_IFBLK, unix.Mkdev(7, 200)}} {
		p := filepath.Join(dir, c.name)
		check(t, unix.Mknod(p, c.typ|0o600, int(c.dev)))
		st := stat(t, p)
		if st.Mode&unix.S_IFMT != c.typ || st.Rdev != c.dev {
			t.Errorf("mknod %s: mode %o rdev %#x; want type %o rdev %#x", c.name, st.Mode, st.Rdev, c.typ, c.dev)
		}
	}
}

func testChmodChownUtimes(t *testing.T, dir string) {
	p := filepath.Join(dir, "f")
	writeFile(t, p, []byte("x"))
	before := stat(t, p).Ctim
	time.Sleep(10 * time.Millisecond)
	check(t, os.Chmod(p, 0o751))
	st := stat(t, p)
	if st.Mode&0o7777 != 0o751 {
		t.Errorf("chmod 0751: mode %o", st.Mode&0o7777)
	}
	if !tsAfter(st.Ctim, before) {
		t.Errorf("chmod did not advance ctime (%v -> %v)", before, st.Ctim)
	}
	if os.Geteuid() == 0 {
		check(t, os.Chown(p, 1234, 5678))
		if st := stat(t, p); st.Uid != 1234 || st.Gid != 5678 {
			t.Errorf("chown 1234:5678: owner %d:%d", st.Uid, st.Gid)
		}
		check(t, os.Lchown(p, -1, 42))
		if st := stat(t, p); st.Uid != 1234 || st.Gid != 42 {
			t.Errorf("chown -1:42: owner %d:%d", st.Uid, st.Gid)
		}
	}
	check(t, unix.Chmod(p, 0o4755))
	if m := stat(t, p).Mode & 0o7777; m != 0o4755 {
		t.Errorf("chmod 04755: mode %o", m)
	}
	atime := unix.Timespec{Sec: 1_500_000_000, Nsec: 123_456_789}
	mtime := unix.Timespec{Sec: 1_600_000_000, Nsec: 987_654_321}
	check(t, unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{atime, mtime}, 0))
	st = stat(t, p)
	if st.Atim != atime || st.Mtim != mtime {
		t.Errorf("utimensat: atime %v mtime %v; want %v %v", st.Atim, st.Mtim, atime, mtime)
	}
	// UTIME_OMIT keeps one, and a symlink's own times change with AT_SYMLINK_NOFOLLOW.
	mtime2 := unix.Timespec{Sec: 1_700_000_000, Nsec: 1}
	check(t, unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{{Nsec: unix.UTIME_OMIT}, mtime2}, 0))
	if st := stat(t, p); st.Atim != atime || st.Mtim != mtime2 {
		t.Errorf("utimensat with UTIME_OMIT atime: atime %v mtime %v; want %v %v", st.Atim, st.Mtim, atime, mtime2)
	}
	l := filepath.Join(dir, "l")
	check(t, os.Symlink("f", l))
	check(t, unix.UtimesNanoAt(unix.AT_FDCWD, l, []unix.Timespec{atime, mtime}, unix.AT_SYMLINK_NOFOLLOW))
	if st := stat(t, l); st.Mtim != mtime {
		t.Errorf("lutimes on a symlink: mtime %v, want %v", st.Mtim, mtime)
	}
	if st := stat(t, p); st.Mtim != mtime2 {
		t.Errorf("lutimes on a symlink changed its target's mtime to %v", st.Mtim)
	}
	// touch -d with nanoseconds, compared through stat(1).
	mustRun(t, dir, nil, "touch", "-m", "-d", "2021-02-03 04:05:06.123456789 UTC", "f")
	if out := strings.TrimSpace(mustRun(t, dir, []string{"TZ=UTC"}, "stat", "-c", "%y", "f")); out != "2021-02-03 04:05:06.123456789 +0000" {
		t.Errorf("stat -c %%y after touch -d: %q", out)
	}
}

func tsAfter(a, b unix.Timespec) bool {
	return a.Sec > b.Sec || (a.Sec == b.Sec && a.Nsec > b.Nsec)
}

func testTimesUpdated(t *testing.T, dir string) {
	old := []unix.Timespec{{Sec: 1_000_000_000}, {Sec: 1_000_000_000}}
	p := filepath.Join(dir, "f")
	writeFile(t, p, []byte("x"))
	check(t, unix.UtimesNanoAt(unix.AT_FDCWD, p, old, 0))
	check(t, unix.UtimesNanoAt(unix.AT_FDCWD, dir, old, 0))
	oldSec := old[0].Sec

	f, err := os.OpenFile(p, os.O_WRONLY, 0)
	check(t, err)
	_, err = f.WriteString("more")
	check(t, err)
	check(t, f.Close())
	if st := stat(t, p); st.Mtim.Sec == oldSec {
		t.Errorf("write did not update mtime")
	}
	check(t, unix.UtimesNanoAt(unix.AT_FDCWD, p, old, 0))
	check(t, os.Truncate(p, 1))
	if st := stat(t, p); st.Mtim.Sec == oldSec {
		t.Errorf("truncate did not update mtime")
	}
	for _, op := range []struct {
		name string
		do   func() error
	}{
		{"create", func() error { return os.WriteFile(filepath.Join(dir, "g"), nil, 0o644) }},
		{"rename", func() error { return os.Rename(filepath.Join(dir, "g"), filepath.Join(dir, "h")) }},
		{"unlink", func() error { return os.Remove(filepath.Join(dir, "h")) }},
		{"mkdir", func() error { return os.Mkdir(filepath.Join(dir, "d"), 0o755) }},
	} {
		check(t, unix.UtimesNanoAt(unix.AT_FDCWD, dir, old, 0))
		check(t, op.do())
		if st := stat(t, dir); st.Mtim.Sec == oldSec || st.Ctim.Sec == oldSec {
			t.Errorf("%s in a directory did not update its mtime/ctime (mtime %v)", op.name, st.Mtim)
		}
	}
}

func testXattrTools(t *testing.T, dir string) {
	needTool(t, "setfattr", "attr")
	needTool(t, "getfattr", "attr")
	writeFile(t, filepath.Join(dir, "f"), nil)
	mustRun(t, dir, nil, "setfattr", "-n", "user.color", "-v", "blue", "f")
	mustRun(t, dir, nil, "setfattr", "-n", "user.empty", "f")
	if out := mustRun(t, dir, nil, "getfattr", "--only-values", "-n", "user.color", "f"); out != "blue" {
		t.Errorf("getfattr --only-values: %q, want %q", out, "blue")
	}
	dump := mustRun(t, dir, nil, "getfattr", "-d", "f")
	if !strings.Contains(dump, `user.color="blue"`) || !strings.Contains(dump, "user.empty") {
		t.Errorf("getfattr -d lacks user.color or user.empty:\n%s", dump)
	}
	mustRun(t, dir, nil, "setfattr", "-x", "user.color", "f")
	r := run(t, dir, nil, "getfattr", "-n", "user.color", "f")
	if r.err == nil || !strings.Contains(r.stderr, "No such attribute") {
		t.Errorf("getfattr of a removed xattr: err %v, stderr %q; want failure with \"No such attribute\"", r.err, r.stderr)
	}
	// On a directory.
	mustRun(t, dir, nil, "setfattr", "-n", "user.dir", "-v", "0x00ff", ".")
	if out := mustRun(t, dir, nil, "getfattr", "-e", "hex", "--only-values", "-n", "user.dir", "."); !bytes.Equal([]byte(out), []byte{0x00, 0xff}) {
		t.Errorf("binary xattr on a directory: % x", out)
	}
}

func testXattrSyscalls(t *testing.T, dir string) {
	p := filepath.Join(dir, "f")
	writeFile(t, p, nil)
	val := []byte{0, 1, 2, 0xff, 0}
	check(t, unix.Setxattr(p, "user.bin", val, 0))
	big := pattern(3000, 9)
	check(t, unix.Setxattr(p, "user.big", big, 0))

	if n, err := unix.Getxattr(p, "user.bin", nil); err != nil || n != len(val) {
		t.Errorf("getxattr size query: %d, %v; want %d", n, err, len(val))
	}
	buf := make([]byte, 4096)
	n, err := unix.Getxattr(p, "user.bin", buf)
	if err != nil || !bytes.Equal(buf[:n], val) {
		t.Errorf("getxattr user.bin: % x, %v; want % x", buf[:n], err, val)
	}
	n, err = unix.Getxattr(p, "user.big", buf)
	if err != nil || !bytes.Equal(buf[:n], big) {
		t.Errorf("getxattr user.big: %d bytes, %v; want %d bytes", n, err, len(big))
	}
	_, err = unix.Getxattr(p, "user.bin", make([]byte, 2))
	wantErrno(t, "getxattr into a small buffer", err, unix.ERANGE)
	_, err = unix.Getxattr(p, "user.missing", buf)
	wantErrno(t, "getxattr of a missing name", err, unix.ENODATA)
	wantErrno(t, "setxattr XATTR_CREATE on an existing name", unix.Setxattr(p, "user.bin", val, unix.XATTR_CREATE), unix.EEXIST)
	wantErrno(t, "setxattr XATTR_REPLACE on a missing name", unix.Setxattr(p, "user.new", val, unix.XATTR_REPLACE), unix.ENODATA)
	check(t, unix.Setxattr(p, "user.bin", []byte("replaced"), unix.XATTR_REPLACE))
	n, _ = unix.Getxattr(p, "user.bin", buf)
	if string(buf[:n]) != "replaced" {
		t.Errorf("after XATTR_REPLACE: %q", buf[:n])
	}

	n, err = unix.Listxattr(p, buf)
	check(t, err)
	var names []string
	for _, s := range strings.Split(string(buf[:n]), "\x00") {
		if s != "" {
			names = append(names, s)
		}
	}
	sort.Strings(names)
	if strings.Join(names, ",") != "user.big,user.bin" {
		t.Errorf("listxattr: %q, want [user.big user.bin]", names)
	}
	check(t, unix.Removexattr(p, "user.big"))
	wantErrno(t, "removexattr of a missing name", unix.Removexattr(p, "user.big"), unix.ENODATA)
	_, err = unix.Getxattr(p, "user.big", buf)
	wantErrno(t, "getxattr after removexattr", err, unix.ENODATA)
	// Hard links share xattrs; symlinks have their own (user.* is not allowed on them).
	check(t, os.Link(p, p+".link"))
	n, err = unix.Getxattr(p+".link", "user.bin", buf)
	if err != nil || string(buf[:n]) != "replaced" {
		t.Errorf("xattr through a hard link: %q, %v", buf[:n], err)
	}
}

func testStatfs(t *testing.T, dir string) {
	var st unix.Statfs_t
	check(t, unix.Statfs(dir, &st))
	if st.Bsize <= 0 || st.Blocks == 0 || st.Bfree > st.Blocks || st.Bavail > st.Bfree || st.Namelen != 255 {
		t.Errorf("statfs: bsize %d blocks %d bfree %d bavail %d namelen %d", st.Bsize, st.Blocks, st.Bfree, st.Bavail, st.Namelen)
	}
	mustRun(t, "", nil, "df", "-P", dir)
	mustRun(t, "", nil, "stat", "-f", dir)
}

func testFsync(t *testing.T, dir string) {
	p := filepath.Join(dir, "f")
	f, err := os.Create(p)
	check(t, err)
	defer f.Close()
	_, err = f.Write(pattern(200_000, 10))
	check(t, err)
	check(t, f.Sync())
	_, err = f.Write([]byte("more"))
	check(t, err)
	check(t, unix.Fdatasync(int(f.Fd())))
	check(t, f.Sync()) // nothing dirty
	check(t, f.Close())
	d, err := os.Open(dir)
	check(t, err)
	check(t, d.Sync())
	check(t, d.Close())
	for _, flag := range []int{unix.O_SYNC, unix.O_DSYNC} {
		g, err := os.OpenFile(filepath.Join(dir, fmt.Sprintf("sync%d", flag)), os.O_CREATE|os.O_WRONLY|flag, 0o644)
		check(t, err)
		_, err = g.Write([]byte("synchronous"))
		check(t, err)
		check(t, g.Close())
		wantContent(t, g.Name(), []byte("synchronous"))
	}
	mustRun(t, dir, nil, "dd", "if=/dev/zero", "of=dd", "bs=64k", "count=4", "conv=fsync", "status=none")
	mustRun(t, dir, nil, "sync", "f")
}

func testUnlinkOpenFile(t *testing.T, dir string) {
	p := filepath.Join(dir, "f")
	writeFile(t, p, []byte("keep me"))
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	check(t, err)
	defer f.Close()
	check(t, os.Remove(p))
	_, err = os.Lstat(p)
	wantErrno(t, "lstat of the unlinked name", err, unix.ENOENT)
	if names := readNames(t, dir); len(names) != 0 {
		t.Errorf("directory still lists %q after unlink", names)
	}
	buf := make([]byte, 7)
	if _, err := f.ReadAt(buf, 0); err != nil || string(buf) != "keep me" {
		t.Errorf("read of the unlinked open file: %q, %v", buf, err)
	}
	var st unix.Stat_t
	check(t, unix.Fstat(int(f.Fd()), &st))
	if st.Nlink != 0 {
		t.Errorf("fstat of an unlinked file: nlink %d, want 0", st.Nlink)
	}
	_, err = f.WriteAt(pattern(300_000, 11), 7)
	check(t, err)
	got := make([]byte, 300_007)
	_, err = f.ReadAt(got, 0)
	check(t, err)
	if !bytes.Equal(got[7:], pattern(300_000, 11)) {
		t.Errorf("write then read of an unlinked open file: %s", describeDiff(pattern(300_000, 11), got[7:]))
	}
	// A new file may take the name meanwhile.
	writeFile(t, p, []byte("new"))
	check(t, f.Close())
	wantContent(t, p, []byte("new"))
}

func testNoatime(t *testing.T, dir string) {
	p := filepath.Join(dir, "f")
	writeFile(t, p, pattern(10_000, 12))
	old := unix.Timespec{Sec: 1_000_000_000, Nsec: 5}
	check(t, unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{old, old}, 0))
	for i := 0; i < 3; i++ {
		if _, err := os.ReadFile(p); err != nil {
			t.Fatal(err)
		}
		mustRun(t, dir, nil, "cat", "f")
	}
	if st := stat(t, p); st.Atim != old {
		t.Errorf("reading changed atime from %v to %v (want noatime)", old, st.Atim)
	}
	check(t, unix.UtimesNanoAt(unix.AT_FDCWD, dir, []unix.Timespec{old, old}, 0))
	readNames(t, dir)
	if st := stat(t, dir); st.Atim != old {
		t.Errorf("listing changed the directory's atime from %v to %v", old, st.Atim)
	}
}

func testErrnoNameTooLong(t *testing.T, dir string) {
	long := filepath.Join(dir, strings.Repeat("n", 256))
	_, err := os.Create(long)
	wantErrno(t, "create with a 256-byte name", err, unix.ENAMETOOLONG)
	wantErrno(t, "mkdir with a 256-byte name", os.Mkdir(long, 0o755), unix.ENAMETOOLONG)
	wantErrno(t, "symlink with a 256-byte name", os.Symlink("x", long), unix.ENAMETOOLONG)
	_, err = os.Lstat(long)
	wantErrno(t, "lstat of a 256-byte name", err, unix.ENAMETOOLONG)
	ok := filepath.Join(dir, strings.Repeat("n", 255))
	writeFile(t, ok, []byte("255"))
	wantContent(t, ok, []byte("255"))
	wantErrno(t, "rename to a 256-byte name", os.Rename(ok, long), unix.ENAMETOOLONG)
	wantErrno(t, "link to a 256-byte name", os.Link(ok, long), unix.ENAMETOOLONG)
	wantErrno(t, "setxattr with a 256-byte name", unix.Setxattr(ok, "user."+strings.Repeat("x", 251), []byte("v"), 0), unix.ERANGE)
}

func testErrnoNotEmpty(t *testing.T, dir string) {
	d := filepath.Join(dir, "d")
	check(t, os.Mkdir(d, 0o755))
	writeFile(t, filepath.Join(d, "f"), nil)
	wantErrno(t, "rmdir of a non-empty dir", unix.Rmdir(d), unix.ENOTEMPTY)
	check(t, os.Remove(filepath.Join(d, "f")))
	check(t, unix.Rmdir(d))
}

func testErrnoIsDir(t *testing.T, dir string) {
	_, err := os.OpenFile(dir, os.O_WRONLY, 0)
	wantErrno(t, "open dir O_WRONLY", err, unix.EISDIR)
	_, err = os.OpenFile(dir, os.O_RDWR, 0)
	wantErrno(t, "open dir O_RDWR", err, unix.EISDIR)
	d := filepath.Join(dir, "d")
	check(t, os.Mkdir(d, 0o755))
	wantErrno(t, "unlink of a dir", unix.Unlink(d), unix.EISDIR)
	_, err = os.ReadFile(d)
	wantErrno(t, "read of a dir", err, unix.EISDIR)
}

func testErrnoNotDir(t *testing.T, dir string) {
	f := filepath.Join(dir, "f")
	writeFile(t, f, nil)
	_, err := os.Stat(filepath.Join(f, "x"))
	wantErrno(t, "stat file/x", err, unix.ENOTDIR)
	wantErrno(t, "mkdir file/x", os.Mkdir(filepath.Join(f, "x"), 0o755), unix.ENOTDIR)
	wantErrno(t, "rmdir of a file", unix.Rmdir(f), unix.ENOTDIR)
	_, err = os.ReadDir(f)
	wantErrno(t, "readdir of a file", err, unix.ENOTDIR)
	_, err = unix.Open(f, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	wantErrno(t, "open O_DIRECTORY of a file", err, unix.ENOTDIR)
}

func testErrnoExist(t *testing.T, dir string) {
	d, f := filepath.Join(dir, "d"), filepath.Join(dir, "f")
	check(t, os.Mkdir(d, 0o755))
	writeFile(t, f, nil)
	wantErrno(t, "mkdir of an existing dir", os.Mkdir(d, 0o755), unix.EEXIST)
	wantErrno(t, "mkdir over a file", os.Mkdir(f, 0o755), unix.EEXIST)
	_, err := os.OpenFile(f, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
	wantErrno(t, "O_CREAT|O_EXCL of an existing file", err, unix.EEXIST)
	wantErrno(t, "symlink over an existing name", os.Symlink("x", f), unix.EEXIST)
	wantErrno(t, "link over an existing name", os.Link(f, d), unix.EEXIST)
	wantErrno(t, "mkfifo over an existing name", unix.Mkfifo(f, 0o644), unix.EEXIST)
}

func testErrnoNoEnt(t *testing.T, dir string) {
	m := filepath.Join(dir, "missing")
	_, err := os.Stat(m)
	wantErrno(t, "stat", err, unix.ENOENT)
	_, err = os.Open(m)
	wantErrno(t, "open", err, unix.ENOENT)
	wantErrno(t, "unlink", unix.Unlink(m), unix.ENOENT)
	wantErrno(t, "rmdir", unix.Rmdir(m), unix.ENOENT)
	wantErrno(t, "chmod", os.Chmod(m, 0o644), unix.ENOENT)
	wantErrno(t, "truncate", os.Truncate(m, 0), unix.ENOENT)
	_, err = os.Create(filepath.Join(m, "f"))
	wantErrno(t, "create in a missing dir", err, unix.ENOENT)
	_, err = os.Readlink(m)
	wantErrno(t, "readlink", err, unix.ENOENT)
	// A name that existed: negative lookups must not be stale.
	p := filepath.Join(dir, "was")
	writeFile(t, p, nil)
	check(t, os.Remove(p))
	_, err = os.Stat(p)
	wantErrno(t, "stat after unlink", err, unix.ENOENT)
	writeFile(t, p, []byte("again"))
	wantContent(t, p, []byte("again"))
}

func testOddNames(t *testing.T, dir string) {
	names := []string{
		"new\nline", "tab\tname", " leading space", "trailing space ", "-dash",
		"non-utf8 \xff\xfe\x80", "latin1 caf\xe9", "emoji 😀", "quote'\"", `back\slash`,
		"*?[glob]", strings.Repeat("x", 255), ".hidden", "..dots",
	}
	for _, n := range names {
		writeFile(t, filepath.Join(dir, n), []byte(n))
	}
	check(t, os.Mkdir(filepath.Join(dir, "dir\nwith\nnewlines"), 0o755))
	names = append(names, "dir\nwith\nnewlines")
	got := readNames(t, dir)
	want := append([]string(nil), names...)
	sort.Strings(want)
	if strings.Join(got, "/") != strings.Join(want, "/") {
		t.Errorf("readdir: got %q\nwant %q", got, want)
	}
	for _, n := range names {
		p := filepath.Join(dir, n)
		st := stat(t, p)
		if st.Mode&unix.S_IFMT == unix.S_IFREG {
			wantContent(t, p, []byte(n))
		}
	}
	// find -print0 sees the same names.
	out := mustRun(t, dir, nil, "find", ".", "-mindepth", "1", "-maxdepth", "1", "-print0")
	var found []string
	for _, s := range strings.Split(strings.TrimSuffix(out, "\x00"), "\x00") {
		found = append(found, strings.TrimPrefix(s, "./"))
	}
	sort.Strings(found)
	if strings.Join(found, "/") != strings.Join(want, "/") {
		t.Errorf("find -print0: got %q", found)
	}
	for _, n := range names[:5] {
		check(t, os.Rename(filepath.Join(dir, n), filepath.Join(dir, n+"\xff")))
	}
}

func testDirNlink(t *testing.T, dir string) {
	d := filepath.Join(dir, "d")
	check(t, os.Mkdir(d, 0o755))
	if n := stat(t, d).Nlink; n != 2 {
		t.Errorf("new dir nlink %d, want 2", n)
	}
	check(t, os.Mkdir(filepath.Join(d, "a"), 0o755))
	check(t, os.Mkdir(filepath.Join(d, "b"), 0o755))
	writeFile(t, filepath.Join(d, "f"), nil)
	if n := stat(t, d).Nlink; n != 4 {
		t.Errorf("dir with 2 subdirs: nlink %d, want 4", n)
	}
	check(t, os.Rename(filepath.Join(d, "a"), filepath.Join(dir, "a")))
	if n := stat(t, d).Nlink; n != 3 {
		t.Errorf("after moving a subdir out: nlink %d, want 3", n)
	}
	if n := stat(t, dir).Nlink; n != 4 {
		t.Errorf("parent after a subdir moved in: nlink %d, want 4", n)
	}
	check(t, unix.Rmdir(filepath.Join(d, "b")))
	if n := stat(t, d).Nlink; n != 2 {
		t.Errorf("after rmdir of the last subdir: nlink %d, want 2", n)
	}
}

func testReaddirMany(t *testing.T, dir string) {
	const n = 1500
	want := make([]string, 0, n)
	for i := 0; i < n; i++ {
		name := fmt.Sprintf("file-%05d", i)
		f, err := os.Create(filepath.Join(dir, name))
		check(t, err)
		check(t, f.Close())
		want = append(want, name)
	}
	if got := readNames(t, dir); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("readdir of %d files returned %d names", n, len(got))
	}
	if out := strings.TrimSpace(mustRun(t, dir, nil, "sh", "-c", "ls -f | wc -l")); out != fmt.Sprint(n+2) {
		t.Errorf("ls -f | wc -l = %s, want %d", out, n+2)
	}
	// Removing while listing in small batches must neither repeat nor skip
	// the names that remain.
	d, err := os.Open(dir)
	check(t, err)
	defer d.Close()
	seen := map[string]int{}
	for {
		batch, err := d.Readdirnames(100)
		for _, name := range batch {
			seen[name]++
			if name[len(name)-1]%2 == 0 {
				os.Remove(filepath.Join(dir, name))
			}
		}
		if err == io.EOF || len(batch) == 0 {
			break
		}
		check(t, err)
	}
	for _, name := range want {
		if seen[name] != 1 {
			t.Errorf("listing while removing saw %q %d times", name, seen[name])
			break
		}
	}
	if got := readNames(t, dir); len(got) != n/2 {
		t.Errorf("after removing every other file %d names remain, want %d", len(got), n/2)
	}
}

// dirent is one entry returned by getdents64: its name and the offset
// (telldir cookie) to resume after it.
type dirent struct {
	name string
	off  int64
}

// getdents reads the directory open as fd from its current offset to the
// end with getdents64, keeping each entry's d_off.
func getdents(t testing.TB, fd int) []dirent {
	t.Helper()
	var out []dirent
	buf := make([]byte, 8192)
	for {
		n, err := unix.Getdents(fd, buf)
		if err != nil {
			t.Fatalf("getdents64: %v", err)
		}
		if n == 0 {
			return out
		}
		for b := buf[:n]; len(b) > 0; {
			// struct linux_dirent64: u64 ino, s64 off, u16 reclen, u8 type, name.
			off := int64(binary.LittleEndian.Uint64(b[8:16]))
			reclen := int(binary.LittleEndian.Uint16(b[16:18]))
			name := b[19:reclen]
			if i := bytes.IndexByte(name, 0); i >= 0 {
				name = name[:i]
			}
			if s := string(name); s != "." && s != ".." {
				out = append(out, dirent{s, off})
			}
			b = b[reclen:]
		}
	}
}

// specialOffs are the low bytes of a cookie that key encodings may treat
// specially (terminators, suffix lengths).
var specialOffs = map[byte]bool{0x00: true, 0x08: true, 0x09: true, 0xff: true}

// testReaddirSeek checks that the d_off of every entry is a stable cookie:
// seeking a directory to it (seekdir, or lseek on the fd) lists exactly the
// entries after it.
func testReaddirSeek(t *testing.T, dir string) {
	fillForSeeks(t, dir)
	checkSeeks(t, dir)
}

// fillForSeeks creates files in dir until some cookies (name hashes) end
// in each of the specialOffs, or 4000 files.
func fillForSeeks(t testing.TB, dir string) {
	t.Helper()
	for n := 0; n < 4000; {
		for end := n + 250; n < end; n++ {
			f, err := os.Create(filepath.Join(dir, fmt.Sprintf("entry-%d", n)))
			check(t, err)
			check(t, f.Close())
		}
		found := map[byte]bool{}
		for _, e := range listDirents(t, dir) {
			if specialOffs[byte(e.off)] {
				found[byte(e.off)] = true
			}
		}
		if len(found) == len(specialOffs) {
			return
		}
	}
}

func listDirents(t testing.TB, dir string) []dirent {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	check(t, err)
	defer unix.Close(fd)
	return getdents(t, fd)
}

// checkSeeks lists dir, then seeks to the cookies ending in specialOffs
// and to every 97th, and checks that exactly the entries after each follow.
func checkSeeks(t testing.TB, dir string) {
	t.Helper()
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY, 0)
	check(t, err)
	defer unix.Close(fd)
	all := getdents(t, fd)
	seen := map[string]bool{}
	for _, e := range all {
		if seen[e.name] {
			t.Errorf("getdents listed %q twice", e.name)
		}
		seen[e.name] = true
	}
	tried := 0
	for i, e := range all {
		if !specialOffs[byte(e.off)] && i%97 != 0 && i != len(all)-1 {
			continue
		}
		tried++
		if _, err := unix.Seek(fd, e.off, io.SeekStart); err != nil {
			t.Fatalf("lseek to d_off %#x of %q: %v", e.off, e.name, err)
		}
		rest := getdents(t, fd)
		want := all[i+1:]
		ok := len(rest) == len(want)
		for j := 0; ok && j < len(rest); j++ {
			ok = rest[j] == want[j]
		}
		if !ok {
			first := "none"
			if len(rest) > 0 {
				first = fmt.Sprintf("%q (d_off %#x)", rest[0].name, rest[0].off)
			}
			t.Errorf("seek to d_off %#016x (after %q, entry %d of %d): %d entries follow, want %d; first %s",
				e.off, e.name, i, len(all), len(rest), len(want), first)
		}
	}
	t.Logf("%d entries, seeks to %d cookies checked", len(all), tried)
}

func testDefaultPermissions(t *testing.T, dir string) {
	needRootUser(t)
	check(t, os.Chmod(dir, 0o755))
	check(t, os.WriteFile(filepath.Join(dir, "secret"), []byte("secret\n"), 0o600))
	check(t, os.WriteFile(filepath.Join(dir, "public"), []byte("public\n"), 0o644))
	check(t, os.Mkdir(filepath.Join(dir, "private"), 0o700))
	check(t, os.WriteFile(filepath.Join(dir, "mine"), []byte("mine\n"), 0o600))
	check(t, os.Chown(filepath.Join(dir, "mine"), 65534, 65534))
	nobody := func(args ...string) result {
		// The working directory is entered as root; the commands then use
		// relative paths, so only dir's own mode matters.
		return run(t, dir, nil, "setpriv", append([]string{"--reuid=65534", "--regid=65534", "--clear-groups"}, args...)...)
	}
	if r := nobody("cat", "secret"); r.err == nil || !strings.Contains(r.stderr, "Permission denied") {
		t.Errorf("uid 65534 reading a 0600 root file: err %v stdout %q stderr %q; want Permission denied", r.err, r.stdout, r.stderr)
	}
	if !mountHasOption(dir, "allow_other") {
		// Without allow_other the kernel lets no other user in at all.
		if r := nobody("cat", "public"); r.err == nil {
			t.Errorf("uid 65534 read a file of a mount without allow_other: %q", r.stdout)
		}
		return
	}
	if r := nobody("cat", "public"); r.err != nil || r.stdout != "public\n" {
		t.Errorf("uid 65534 reading a 0644 file: err %v stdout %q stderr %q", r.err, r.stdout, r.stderr)
	}
	if r := nobody("sh", "-c", "echo x >> public"); r.err == nil {
		t.Errorf("uid 65534 appended to a 0644 root file")
	}
	if r := nobody("ls", "private"); r.err == nil {
		t.Errorf("uid 65534 listed a 0700 root directory: %q", r.stdout)
	}
	if r := nobody("touch", "new"); r.err == nil {
		t.Errorf("uid 65534 created a file in a 0755 root directory")
	}
	if r := nobody("cat", "mine"); r.err != nil || r.stdout != "mine\n" {
		t.Errorf("uid 65534 reading its own 0600 file: err %v stderr %q", r.err, r.stderr)
	}
	wantContent(t, filepath.Join(dir, "public"), []byte("public\n"))
}

// testKillSuidgid: setuid and setgid (with group execute) go as on ext4
// when a user without CAP_FSETID writes, truncates or opens with O_TRUNC,
// and on chown; root's writes keep them. The mount leaves this to snapfs
// (FUSE_HANDLE_KILLPRIV_V2), so the kernel does not ask for
// security.capability before every write.
func testKillSuidgid(t *testing.T, dir string) {
	needRootUser(t)
	check(t, os.Chmod(dir, 0o777))
	p := filepath.Join(dir, "f")
	check(t, os.WriteFile(p, []byte("a"), 0o644))
	mode := func() uint32 { return stat(t, p).Mode & 0o7777 }
	appendAsRoot := func() {
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		check(t, err)
		_, err = f.Write([]byte("r"))
		check(t, err)
		check(t, f.Close())
	}
	check(t, unix.Chmod(p, 0o6777))
	appendAsRoot()
	if m := mode(); m != 0o6777 {
		t.Errorf("root wrote to a 06777 file: mode %o, want 6777 kept", m)
	}
	check(t, os.Chown(p, 0, 0))
	if m := mode(); m != 0o777 {
		t.Errorf("chown of a 06777 file: mode %o, want 777", m)
	}
	if !mountHasOption(dir, "allow_other") {
		return // other users cannot reach the mount
	}
	nobody := func(script string) {
		t.Helper()
		r := run(t, dir, nil, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", "sh", "-c", script)
		if r.err != nil {
			t.Fatalf("uid 65534: %s: %v %s", script, r.err, r.stderr)
		}
	}
	for _, tc := range []struct {
		what   string
		script string
		from   uint32
		want   uint32
	}{
		{"write", "echo w >> f", 0o6777, 0o777},
		{"write to setgid without group execute", "echo w >> f", 0o6767, 0o2767},
		{"truncate", "truncate -s 1 f", 0o6777, 0o777},
		{"open with O_TRUNC", ": > f", 0o6777, 0o777},
		{"write to a file without the bits", "echo w >> f", 0o777, 0o777},
	} {
		check(t, unix.Chmod(p, tc.from))
		if m := mode(); m != tc.from {
			t.Fatalf("chmod %o: mode %o", tc.from, m)
		}
		nobody(tc.script)
		if m := mode(); m != tc.want {
			t.Errorf("%s by uid 65534 of a %o file: mode %o, want %o", tc.what, tc.from, m, tc.want)
		}
	}
	// The mode sticks after the kernel forgets the inode.
	check(t, os.WriteFile("/proc/sys/vm/drop_caches", []byte("2"), 0))
	if m := mode(); m != 0o777 {
		t.Errorf("after dropping caches: mode %o, want 777", m)
	}
}

// aclValue builds a system.posix_acl_access value: version 2, then
// (tag, perm, id) entries.
func aclValue(entries ...[3]uint32) []byte {
	v := binary.LittleEndian.AppendUint32(nil, 2)
	for _, e := range entries {
		v = binary.LittleEndian.AppendUint16(v, uint16(e[0]))
		v = binary.LittleEndian.AppendUint16(v, uint16(e[1]))
		v = binary.LittleEndian.AppendUint32(v, e[2])
	}
	return v
}

// testMinimalACL: an access ACL equivalent to a mode sets the mode and
// stores nothing, as on ext4 (cp -a and tar set one on every file they
// copy); an extended one is stored and read back, a malformed one is
// EINVAL, and only the owner or root may set one. The rest of the ACL
// behaviour is in acl_test.go.
func testMinimalACL(t *testing.T, dir string) {
	const acl = "system.posix_acl_access"
	const none = 0xffffffff
	p := filepath.Join(dir, "f")
	check(t, os.WriteFile(p, []byte("acl\n"), 0o600))
	check(t, unix.Chmod(p, 0o4600))
	minimal := aclValue([3]uint32{1, 7, none}, [3]uint32{4, 5, none}, [3]uint32{0x20, 1, none})
	check(t, unix.Setxattr(p, acl, minimal, 0))
	if m := stat(t, p).Mode & 0o7777; m != 0o4751 {
		t.Errorf("minimal ACL u::rwx,g::r-x,o::--x on a 4600 file: mode %o, want 4751", m)
	}
	for _, target := range []string{dir, p} {
		if _, err := unix.Getxattr(target, acl, make([]byte, 64)); err != unix.ENODATA {
			t.Errorf("getxattr %s of %s after a minimal ACL: %v, want ENODATA (the mode says it all)", acl, target, err)
		}
	}
	// cp -a removes the default ACL of a directory it copies when the
	// source has none: libacl takes ENODATA as done.
	if err := unix.Removexattr(dir, "system.posix_acl_default"); err != unix.ENODATA {
		t.Errorf("removexattr of an absent default ACL: %v, want ENODATA", err)
	}
	extended := aclValue([3]uint32{1, 6, none}, [3]uint32{2, 4, 1000}, [3]uint32{4, 4, none}, [3]uint32{0x10, 4, none}, [3]uint32{0x20, 0, none})
	check(t, unix.Setxattr(p, acl, extended, 0))
	got := make([]byte, 256)
	n, err := unix.Getxattr(p, acl, got)
	if err != nil || !bytes.Equal(got[:n], extended) {
		t.Errorf("extended ACL read back: %x %v, want %x", got[:n], err, extended)
	}
	if m := stat(t, p).Mode & 0o7777; m != 0o4640 {
		t.Errorf("after u::rw-,u:1000:r--,g::r--,m::r--,o::---: mode %o, want 4640", m)
	}
	if err := unix.Setxattr(p, acl, minimal[:10], 0); err != unix.EINVAL {
		t.Errorf("malformed ACL: %v, want EINVAL", err)
	}
	if m := stat(t, p).Mode & 0o7777; m != 0o4640 {
		t.Errorf("after a refused ACL: mode %o, want 4640 unchanged", m)
	}
	wantContent(t, p, []byte("acl\n"))
	if os.Geteuid() != 0 || !mountHasOption(dir, "allow_other") {
		return
	}
	check(t, os.Chmod(dir, 0o777))
	r := run(t, dir, nil, "setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
		"setfattr", "-n", acl, "-v", "0x"+hex.EncodeToString(minimal), "f")
	if r.err == nil || !strings.Contains(r.stderr, "not permitted") {
		t.Errorf("uid 65534 setting an ACL on root's file: err %v stderr %q, want Operation not permitted", r.err, r.stderr)
	}
}

// readNames lists dir with os.ReadDir (sorted).
func readNames(t testing.TB, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("readdir %s: %v", dir, err)
	}
	names := make([]string, len(ents))
	for i, e := range ents {
		names[i] = e.Name()
	}
	return names
}
