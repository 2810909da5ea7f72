package tests

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/snapfs/snapfs/client"
)

// The kernel writeback cache (snapfs mount --writeback-cache): the mount
// tests of the promises it must keep. The POSIX suite runs with it too
// (mountMatrix), and so does the crash harness
// (TestCrashKill9RoundsWritebackCache).

// wbBlock is the unit the writer writes: one page.
const wbBlock = 4096

// wbBlocks is the size of the writer's file in blocks (16 MiB): small
// enough that the kernel keeps it dirty (it writes back on its own only
// past dirty_background_bytes or after dirty_expire_centisecs, 30 s).
const wbBlocks = 4096

// wbContent is block b of generation gen: a header naming both, then
// bytes that depend on both, so that a block of the wrong place or
// generation, or torn, is told apart.
func wbContent(b, gen uint32) []byte {
	p := make([]byte, wbBlock)
	copy(p, "WBT1")
	binary.LittleEndian.PutUint32(p[4:], b)
	binary.LittleEndian.PutUint32(p[8:], gen)
	x := b*2654435761 ^ gen*40503 ^ 0x9e3779b9
	for i := 12; i < wbBlock; i++ {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		p[i] = byte(x)
	}
	return p
}

// wbWriter writes generations of its file through the page cache, one
// random block at a time with pwrite(2) and never an fsync, and records
// when each write returned.
type wbWriter struct {
	f    *os.File
	mu   sync.Mutex
	done [][]wbWrite // per block, the writes that returned, in order
	max  []uint32    // per block, the highest generation begun
	stop chan struct{}
	err  chan error
}

type wbWrite struct {
	gen uint32
	at  time.Time // when pwrite returned
}

func startWBWriter(t *testing.T, p string) *wbWriter {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	w := &wbWriter{f: f, done: make([][]wbWrite, wbBlocks), max: make([]uint32, wbBlocks),
		stop: make(chan struct{}), err: make(chan error, 1)}
	go func() {
		x := uint32(time.Now().UnixNano()) | 1
		for gen := uint32(1); ; gen++ {
			for i := 0; i < wbBlocks; i++ {
				select {
				case <-w.stop:
					w.err <- nil
					return
				default:
				}
				x ^= x << 13
				x ^= x >> 17
				x ^= x << 5
				b := x % wbBlocks
				w.mu.Lock()
				w.max[b] = gen
				w.mu.Unlock()
				if _, err := f.WriteAt(wbContent(b, gen), int64(b)*wbBlock); err != nil {
					w.err <- err
					return
				}
				now := time.Now()
				w.mu.Lock()
				w.done[b] = append(w.done[b], wbWrite{gen, now})
				w.mu.Unlock()
			}
		}
	}()
	return w
}

// finish stops the writer and closes its file.
func (w *wbWriter) finish(t *testing.T) {
	t.Helper()
	close(w.stop)
	if err := <-w.err; err != nil {
		t.Errorf("writer: %v", err)
	}
	if err := w.f.Close(); err != nil {
		t.Errorf("writer close: %v", err)
	}
}

// verify checks that file p (a snapshot of the writer's file begun at
// began) holds, in every block, a write that returned before began or a
// later one, and never a torn or foreign block. It returns how many
// blocks had been written by then.
func (w *wbWriter) verify(t *testing.T, p string, began time.Time) int {
	t.Helper()
	got, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("read %s: %v", p, err)
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	written, bad := 0, 0
	for b := uint32(0); b < wbBlocks; b++ {
		var want uint32 // the last generation that returned before began
		for _, wr := range w.done[b] {
			if wr.at.Before(began) {
				want = wr.gen
			}
		}
		if want > 0 {
			written++
		}
		var blk []byte
		if off := int(b) * wbBlock; off < len(got) {
			blk = got[off:min(off+wbBlock, len(got))]
		}
		var gen uint32
		switch {
		case len(blk) == wbBlock && bytes.Equal(blk, make([]byte, wbBlock)):
		case len(blk) == wbBlock && string(blk[:4]) == "WBT1":
			gen = binary.LittleEndian.Uint32(blk[8:])
			if binary.LittleEndian.Uint32(blk[4:]) != b || gen > w.max[b] || !bytes.Equal(blk, wbContent(b, gen)) {
				gen, bad = 0, bad+1
				if bad <= 3 {
					t.Errorf("%s: block %d is torn or foreign (header gen %d)", p, b, binary.LittleEndian.Uint32(blk[8:]))
				}
				continue
			}
		case len(blk) == 0:
		default:
			bad++
			if bad <= 3 {
				t.Errorf("%s: block %d: %d bytes of something else", p, b, len(blk))
			}
			continue
		}
		if gen < want {
			bad++
			if bad <= 3 {
				t.Errorf("%s: block %d holds generation %d, but generation %d returned before the snapshot began",
					p, b, gen, want)
			}
		}
	}
	if bad > 0 {
		t.Errorf("%s: %d of %d blocks miss a write that returned before the snapshot", p, bad, wbBlocks)
	}
	return written
}

// TestWritebackSnapshotHoldsWrites: with the writeback cache on, a writer
// keeps writing random 4 KiB blocks through the page cache (no fsync)
// while snapshots are taken in every way one can be: mkdir in
// .snapshots (a FUSE request of the mount itself), the CLI, the control
// API (one volume, and several at once), and a schedule. Each snapshot
// holds every write that returned before it began.
func TestWritebackSnapshotHoldsWrites(t *testing.T) {
	mnt, pool := mountVolume(t, mountOpts{MountArgs: []string{"--writeback-cache"}})
	w := startWBWriter(t, filepath.Join(mnt, "f"))
	defer w.finish(t)
	settle := func() { time.Sleep(150 * time.Millisecond) } // dirty pages pile up

	ways := []struct {
		name string
		take func(name string) error
	}{
		{"mkdir", func(name string) error { return os.Mkdir(filepath.Join(mnt, ".snapshots", name), 0o755) }},
		{"cli", func(name string) error {
			if r := snapfs(t, "-p", pool, "snapshot", "create", "vol", name); r.err != nil {
				return fmt.Errorf("%v: %s", r.err, r.stderr)
			}
			return nil
		}},
		{"api", func(name string) error {
			c, err := client.Dial(pool)
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.CreateSnapshot("vol", name)
			return err
		}},
		{"api-many", func(name string) error {
			c, err := client.Dial(pool)
			if err != nil {
				return err
			}
			defer c.Close()
			_, err = c.CreateSnapshots([]string{"vol"}, name)
			return err
		}},
	}
	for _, way := range ways {
		settle()
		name := "wb-" + way.name
		began := time.Now()
		if err := way.take(name); err != nil {
			t.Fatalf("snapshot by %s: %v", way.name, err)
		}
		n := w.verify(t, filepath.Join(mnt, ".snapshots", name, "f"), began)
		t.Logf("snapshot by %s took %v; %d blocks written before it", way.name, time.Since(began), n)
		if n == 0 {
			t.Errorf("snapshot by %s: the writer had written nothing: the test proved nothing", way.name)
		}
	}

	// A schedule: the snapshot's creation time is the moment the
	// scheduler began it.
	// A count far above what the test's seconds can take: retention must
	// not prune the snapshot checked below (with 1s=2, a loaded machine's
	// scheduler took and pruned it before the test could hold it).
	snapfsOK(t, "-p", pool, "schedule", "set", "vol", "1s=1000")
	var auto []string
	if !waitFor(5*time.Second, func() bool { auto = autoSnapshots(t, pool, "vol"); return len(auto) > 0 }) {
		logDaemon(t, pool)
		t.Fatal("no automatic snapshot 5 s after schedule set")
	}
	snapfsOK(t, "-p", pool, "schedule", "clear", "vol")
	var list []struct {
		Name    string    `json:"name"`
		Created time.Time `json:"created"`
	}
	if err := json.Unmarshal([]byte(snapfsOK(t, "-p", pool, "snapshot", "list", "vol", "--json")), &list); err != nil {
		t.Fatal(err)
	}
	for _, s := range list {
		if s.Name == auto[0] {
			n := w.verify(t, filepath.Join(mnt, ".snapshots", s.Name, "f"), s.Created)
			t.Logf("scheduled snapshot %s: %d blocks written before it", s.Name, n)
			if n == 0 {
				t.Error("scheduled snapshot: the writer had written nothing")
			}
			return
		}
	}
	t.Fatalf("scheduled snapshot %s not listed", auto[0])
}

// TestWritebackMmapInSnapshot: stores through a shared mapping, neither
// msync'd nor unmapped, are in a snapshot taken by mkdir afterwards (the
// snapshot's syncfs writes back mapped dirty pages too), and in the file
// after a remount.
func TestWritebackMmapInSnapshot(t *testing.T) {
	mnt, pool := mountVolume(t, mountOpts{MountArgs: []string{"--writeback-cache"}})
	p := filepath.Join(mnt, "m")
	const size = 1 << 20
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(size); err != nil {
		t.Fatal(err)
	}
	m, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		t.Fatal(err)
	}
	want := pattern(size, 7)
	copy(m, want)
	check(t, os.Mkdir(filepath.Join(mnt, ".snapshots", "s"), 0o755))
	wantContent(t, filepath.Join(mnt, ".snapshots", "s", "m"), want)
	copy(m[size/2:], pattern(4096, 8))
	copy(want[size/2:], pattern(4096, 8))
	check(t, unix.Munmap(m))
	check(t, f.Close())
	remount(t, pool, "vol", mnt, "--writeback-cache")
	wantContent(t, p, want)
}

// TestWritebackTruncateRacesCache: dirty cached pages cut by ftruncate,
// by a hole punched over them and by O_TRUNC, then the file grown again:
// the file reads as a model of it says, through the cache, in a snapshot
// taken with pages still dirty, and after a remount (the store's copy).
func TestWritebackTruncateRacesCache(t *testing.T) {
	mnt, pool := mountVolume(t, mountOpts{MountArgs: []string{"--writeback-cache"}})
	p := filepath.Join(mnt, "t")
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	var model []byte
	put := func(off int, b []byte) {
		if _, err := f.WriteAt(b, int64(off)); err != nil {
			t.Fatal(err)
		}
		if end := off + len(b); end > len(model) {
			model = append(model, make([]byte, end-len(model))...)
		}
		copy(model[off:], b)
	}
	trunc := func(n int) {
		check(t, f.Truncate(int64(n)))
		if n < len(model) {
			model = model[:n]
		} else {
			model = append(model, make([]byte, n-len(model))...)
		}
	}
	put(0, pattern(300_000, 1))
	trunc(70_001) // inside a dirty page
	put(100_000, pattern(5000, 2))
	trunc(200_000) // grown: zeros between, never the old bytes
	put(150_000, pattern(20_000, 3))
	// A hole over dirty pages, partial pages at both ends.
	check(t, unix.Fallocate(int(f.Fd()), unix.FALLOC_FL_PUNCH_HOLE|unix.FALLOC_FL_KEEP_SIZE, 60_123, 100_000))
	clear(model[60_123:160_123])
	put(155_000, pattern(100, 4))
	if got := stat(t, p).Size; got != int64(len(model)) {
		t.Errorf("size through the cache %d, want %d", got, len(model))
	}
	wantContent(t, p, model)
	check(t, os.Mkdir(filepath.Join(mnt, ".snapshots", "s"), 0o755))
	wantContent(t, filepath.Join(mnt, ".snapshots", "s", "t"), model)
	inSnap := append([]byte(nil), model...)
	// O_TRUNC of a file whose pages are dirty in another open.
	put(0, pattern(9000, 5))
	g, err := os.OpenFile(p, os.O_RDWR|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	model = model[:0]
	if _, err := g.WriteAt(pattern(3000, 6), 1000); err != nil {
		t.Fatal(err)
	}
	model = append(make([]byte, 1000), pattern(3000, 6)...)
	check(t, g.Close())
	check(t, f.Close())
	wantContent(t, p, model)
	remount(t, pool, "vol", mnt, "--writeback-cache")
	wantContent(t, p, model)
	wantContent(t, filepath.Join(mnt, ".snapshots", "s", "t"), inSnap)
}

// TestWritebackQuotaSeenByWriter: with the writeback cache, write(2)
// returns once the page cache has the bytes, so a write past the quota
// is refused only when the kernel writes the pages back: fsync(2)
// returns EDQUOT (once, as Linux reports writeback errors per open file
// description), close(2) returns EIO (the kernel's flush reports only
// ENOSPC by name). The file's bytes up to the quota stay; a file fsync'd
// before stays intact; nothing stored is lost.
func TestWritebackQuotaSeenByWriter(t *testing.T) {
	mnt, pool := mountVolume(t, mountOpts{Quota: "4MiB", MountArgs: []string{"--writeback-cache"}})
	keep := pattern(1<<20, 9)
	writeFile(t, filepath.Join(mnt, "keep"), keep)
	f, err := os.OpenFile(filepath.Join(mnt, "big"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	data := pattern(8<<20, 10)
	var werr error
	for off := 0; off < len(data) && werr == nil; off += 1 << 16 {
		_, werr = f.WriteAt(data[off:off+1<<16], int64(off))
	}
	if werr != nil && !errors.Is(werr, syscall.EDQUOT) {
		t.Errorf("write past the quota: %v, want success (cached) or EDQUOT", werr)
	}
	ferr := f.Sync()
	wantErrno(t, "fsync past the quota", ferr, syscall.EDQUOT)
	// The same file, written again past the quota: close reports it.
	if _, err := f.WriteAt(data[:1<<20], 5<<20); err != nil && !errors.Is(err, syscall.EDQUOT) {
		t.Errorf("second write: %v", err)
	}
	cerr := f.Close()
	wantErrno(t, "close after a write past the quota", cerr, syscall.EIO)
	t.Logf("write: %v; fsync: %v; close: %v", werr, ferr, cerr)
	wantContent(t, filepath.Join(mnt, "keep"), keep)
	remount(t, pool, "vol", mnt, "--writeback-cache")
	wantContent(t, filepath.Join(mnt, "keep"), keep)
	got, err := os.ReadFile(filepath.Join(mnt, "big"))
	if err != nil {
		t.Fatal(err)
	}
	// What was stored is a prefix of chunks of what was written, or zeros.
	for off := 0; off < len(got); off += 4096 {
		end := min(off+4096, len(got))
		if !bytes.Equal(got[off:end], data[off:end]) && !bytes.Equal(got[off:end], make([]byte, end-off)) {
			t.Fatalf("big at %d: neither the bytes written nor zeros", off)
		}
	}
	check(t, os.Remove(filepath.Join(mnt, "big")))
	writeFile(t, filepath.Join(mnt, "after"), pattern(1<<20, 11)) // space is back
	f2, err := os.OpenFile(filepath.Join(mnt, "after"), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	check(t, f2.Sync())
	check(t, f2.Close())
}

// TestWritebackRollback: a rollback writes the kernel's dirty pages back
// first, so none lands in the rolled-back volume after it. A file closed
// before the rollback reads the snapshot's content and size at once.
func TestWritebackRollback(t *testing.T) {
	mnt, pool := mountVolume(t, mountOpts{MountArgs: []string{"--writeback-cache"}})
	p := filepath.Join(mnt, "r")
	writeFile(t, p, pattern(10_000, 1))
	check(t, os.Mkdir(filepath.Join(mnt, ".snapshots", "s"), 0o755))
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt(pattern(50_000, 2), 0); err != nil {
		t.Fatal(err)
	}
	check(t, f.Close()) // close writes back; the pages stay cached
	g, err := os.OpenFile(filepath.Join(mnt, "dirty"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := g.WriteAt(pattern(8192, 3), 0); err != nil { // dirty at the rollback
		t.Fatal(err)
	}
	snapfsOK(t, "-p", pool, "snapshot", "rollback", "vol@s")
	wantContent(t, p, pattern(10_000, 1))
	if err := g.Close(); err != nil && !errors.Is(err, syscall.ESTALE) {
		t.Errorf("close of a file the rollback removed: %v", err)
	}
	if _, err := os.Stat(filepath.Join(mnt, "dirty")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a file created after the snapshot exists after the rollback: %v", err)
	}
	remount(t, pool, "vol", mnt, "--writeback-cache")
	wantContent(t, p, pattern(10_000, 1))
	if _, err := os.Stat(filepath.Join(mnt, "dirty")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("after remount, a file created after the snapshot exists: %v", err)
	}
}

// TestWritebackNoSpaceSeenByWriter: on members of 48 MiB tmpfs each, a
// writer with the writeback cache writes 200 MiB through the page cache:
// the pool's ENOSPC reaches it at fsync(2) at the latest (write(2) may
// already fail: the kernel throttles a FUSE mount's dirty pages to a
// small share, so writeback runs while it writes). A 16 MiB fallocate
// made before still gets its first write of the whole range stored, and a
// file fsync'd before is intact.
func TestWritebackNoSpaceSeenByWriter(t *testing.T) {
	base := t.TempDir()
	d1, d2 := filepath.Join(base, "disk1"), filepath.Join(base, "disk2")
	mountTmpfs(t, d1, 48<<20)
	mountTmpfs(t, d2, 48<<20)
	pool, mnt := filepath.Join(base, "pool"), filepath.Join(base, "mnt")
	check(t, os.Mkdir(mnt, 0o755))
	snapfsOK(t, "pool", "create", pool, "--member", d1, "--member", d2)
	snapfsOK(t, "-p", pool, "volume", "create", "vol")
	mountAt(t, pool, "vol", mnt, "--writeback-cache")

	keep := pattern(1<<20, 1)
	writeFile(t, filepath.Join(mnt, "keep"), keep)
	pre, err := os.OpenFile(filepath.Join(mnt, "pre"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	check(t, unix.Fallocate(int(pre.Fd()), 0, 0, 16<<20))

	f, err := os.OpenFile(filepath.Join(mnt, "fill"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	var werr error
	for i := 0; i < 200 && werr == nil; i++ {
		copy(buf, pattern(len(buf), byte(i)))
		_, werr = f.WriteAt(buf, int64(i)<<20)
	}
	ferr := f.Sync()
	cerr := f.Close()
	t.Logf("write: %v; fsync: %v; close: %v", werr, ferr, cerr)
	switch {
	case werr != nil:
		wantErrno(t, "write past the pool's space", werr, syscall.ENOSPC)
	default:
		wantErrno(t, "fsync past the pool's space", ferr, syscall.ENOSPC)
	}

	data := pattern(16<<20, 2)
	if _, err := pre.WriteAt(data, 0); err != nil {
		t.Fatalf("first write of the preallocated range: %v", err)
	}
	check(t, pre.Sync())
	check(t, pre.Close())
	wantContent(t, filepath.Join(mnt, "pre"), data)
	wantContent(t, filepath.Join(mnt, "keep"), keep)
	remount(t, pool, "vol", mnt, "--writeback-cache")
	wantContent(t, filepath.Join(mnt, "pre"), data)
	wantContent(t, filepath.Join(mnt, "keep"), keep)
}

// TestWritebackODirectAndCopy: an O_DIRECT write over a dirty cached page
// and O_DIRECT reads see what buffered writes left in the cache (the
// kernel writes the range back first), and copy_file_range copies dirty
// pages (both ranges are written back first); all of it is stored.
func TestWritebackODirectAndCopy(t *testing.T) {
	mnt, pool := mountVolume(t, mountOpts{MountArgs: []string{"--writeback-cache"}})
	a, b := filepath.Join(mnt, "a"), filepath.Join(mnt, "b")
	f, err := os.OpenFile(a, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	want := pattern(3*4096, 1)
	if _, err := f.WriteAt(want, 0); err != nil { // dirty in the cache
		t.Fatal(err)
	}
	d, err := os.OpenFile(a, os.O_RDWR|syscall.O_DIRECT, 0)
	if err != nil {
		t.Fatal(err)
	}
	// O_DIRECT needs aligned memory: a page of an anonymous mapping.
	page, err := unix.Mmap(-1, 0, 3*4096, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_ANON|unix.MAP_PRIVATE)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Munmap(page)
	copy(page, pattern(4096, 2))
	if _, err := d.WriteAt(page[:4096], 4096); err != nil {
		t.Fatalf("O_DIRECT write: %v", err)
	}
	copy(want[4096:], page[:4096])
	if n, err := d.ReadAt(page, 0); err != nil || n != len(want) || !bytes.Equal(page, want) {
		t.Errorf("O_DIRECT read: %d bytes, %v, equal %v", n, err, bytes.Equal(page[:n], want))
	}
	check(t, d.Close())
	big := pattern(1<<20, 3)
	if _, err := f.WriteAt(big, 0); err != nil { // dirty again, all of it
		t.Fatal(err)
	}
	g, err := os.OpenFile(b, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	var offIn, offOut int64
	for left := len(big); left > 0; {
		n, err := unix.CopyFileRange(int(f.Fd()), &offIn, int(g.Fd()), &offOut, left, 0)
		if err != nil || n == 0 {
			t.Fatalf("copy_file_range: %d, %v", n, err)
		}
		left -= n
	}
	check(t, g.Close())
	check(t, f.Close())
	wantContent(t, b, big)
	remount(t, pool, "vol", mnt, "--writeback-cache")
	wantContent(t, a, big)
	wantContent(t, b, big)
}

// initReply returns the daemon's FUSE INIT reply line from the debug log
// of pool (mounted with -o debug).
func initReply(t *testing.T, pool string) string {
	t.Helper()
	log, err := os.ReadFile(filepath.Join(pool, "daemon.log"))
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(string(log), "\n")
	for i, l := range lines {
		if strings.Contains(l, ": INIT ") && i+1 < len(lines) && strings.Contains(lines[i+1], " tx ") {
			return lines[i+1]
		}
	}
	t.Fatalf("no INIT reply in the daemon log of %s", pool)
	return ""
}

// TestWritebackMountOption: the option reaches the kernel through every
// way a mount is made (snapfs mount --writeback-cache, -o
// writeback_cache, and mount.fuse3 as fstab runs it) and only when asked:
// the INIT reply carries WRITEBACK_CACHE then and never otherwise.
func TestWritebackMountOption(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want bool
	}{
		{"default", []string{"-o", "debug"}, false},
		{"flag", []string{"--writeback-cache", "-o", "debug"}, true},
		{"option", []string{"-o", "writeback_cache,debug"}, true},
		{"undone", []string{"-o", "writeback_cache,debug,no_writeback_cache"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			mnt, pool := mountVolume(t, mountOpts{MountArgs: c.args})
			writeFile(t, filepath.Join(mnt, "f"), []byte("x"))
			if got := strings.Contains(initReply(t, pool), "WRITEBACK_CACHE"); got != c.want {
				t.Errorf("INIT reply has WRITEBACK_CACHE: %v, want %v", got, c.want)
			}
		})
	}
	t.Run("mount.fuse3", func(t *testing.T) {
		checkFuse(t)
		const fuse3 = "/sbin/mount.fuse3"
		if _, err := os.Stat(fuse3); err != nil {
			if fuseRequired() {
				t.Fatalf("%s: %v (apt-get install fuse3)", fuse3, err)
			}
			t.Skipf("%s: %v (apt-get install fuse3)", fuse3, err)
		}
		pool, mnt := newPoolWithVolume(t)
		env := []string{"PATH=" + filepath.Dir(snapfsBin) + ":" + os.Getenv("PATH")}
		r := run(t, "", env, fuse3, pool+"#vol", mnt, "-t", "fuse.snapfs", "-o", "writeback_cache,debug,nofail")
		if r.err != nil {
			logDaemon(t, pool)
			t.Fatalf("%s: %v: %s", fuse3, r.err, r.stderr)
		}
		t.Cleanup(func() { unmountClean(t, pool, mnt) })
		if strings.Contains(r.stderr, "unknown mount option") {
			t.Errorf("stderr %q: writeback_cache taken as unknown", r.stderr)
		}
		writeFile(t, filepath.Join(mnt, "f"), []byte("x"))
		if !strings.Contains(initReply(t, pool), "WRITEBACK_CACHE") {
			t.Error("mount.fuse3 -o writeback_cache: INIT reply without WRITEBACK_CACHE")
		}
		umount(t, pool, mnt)
	})
}

// TestWritebackBranchInSnapdir: a branch written through .snapshots/<b>
// of the volume's mount (whose files the flush reaches by notification,
// not by path) and snapshotted by the CLI and by mkdir in its own
// .snapshots: each snapshot holds every write that returned before it.
func TestWritebackBranchInSnapdir(t *testing.T) {
	mnt, pool := mountVolume(t, mountOpts{MountArgs: []string{"--writeback-cache"}})
	check(t, os.Mkdir(filepath.Join(mnt, ".snapshots", "s"), 0o755))
	snapfsOK(t, "-p", pool, "branch", "create", "vol@s", "b")
	br := filepath.Join(mnt, ".snapshots", "b")
	w := startWBWriter(t, filepath.Join(br, "f"))
	defer w.finish(t)
	time.Sleep(150 * time.Millisecond)
	began := time.Now()
	snapfsOK(t, "-p", pool, "snapshot", "create", "vol/b", "t1")
	if n := w.verify(t, filepath.Join(br, ".snapshots", "t1", "f"), began); n == 0 {
		t.Error("the writer had written nothing before vol/b@t1")
	}
	time.Sleep(150 * time.Millisecond)
	began = time.Now()
	check(t, os.Mkdir(filepath.Join(br, ".snapshots", "t2"), 0o755))
	if n := w.verify(t, filepath.Join(br, ".snapshots", "t2", "f"), began); n == 0 {
		t.Error("the writer had written nothing before vol/b@t2")
	}
}

// TestWritebackSyncThenKill: `snapfs sync` makes durable every write(2)
// that returned before it, although the pages were still in the page
// cache: a writer keeps writing through the cache, sync runs, the daemon
// is killed with SIGKILL right after, and after a remount the file holds
// every write that returned before sync began. It checks the promise more
// than the mechanism: it passed with the flush taken out of sync too (the
// kernel had written the pages back by the time the CLI's request came).
func TestWritebackSyncThenKill(t *testing.T) {
	mnt, pool := mountVolume(t, mountOpts{MountArgs: []string{"--writeback-cache"}})
	p := filepath.Join(mnt, "f")
	w := startWBWriter(t, p)
	time.Sleep(150 * time.Millisecond)
	began := time.Now()
	snapfsOK(t, "-p", pool, "sync")
	killDaemon(t, pool)
	close(w.stop)
	<-w.err     // the writer stops, or fails on the dead mount
	w.f.Close() // ENOTCONN
	mustRun(t, "", nil, "fusermount3", "-u", "-z", mnt)
	mountAt(t, pool, "vol", mnt, "--writeback-cache")
	if n := w.verify(t, p, began); n == 0 {
		t.Error("the writer had written nothing before sync")
	}
}
