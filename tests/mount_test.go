package tests

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestQuota fills a volume created with --quota 4MiB: writing 8 MiB fails
// with EDQUOT, what was accepted before stays readable, and deleting it
// gives the space back.
func TestQuota(t *testing.T) {
	mnt, pool := mountVolume(t, mountOpts{Quota: "4MiB"})
	p := filepath.Join(mnt, "big")
	f, err := os.Create(p)
	check(t, err)
	data := pattern(8<<20, 13)
	var written int
	var werr error
	for written < len(data) {
		n, err := f.Write(data[written:min(written+256<<10, len(data))])
		written += n
		if err != nil {
			werr = err
			break
		}
	}
	cerr := f.Close()
	if !errors.Is(werr, syscall.EDQUOT) {
		t.Fatalf("writing 8 MiB into a 4 MiB volume: %d bytes written, error %v; want EDQUOT", written, werr)
	}
	if written > 4<<20 || written < 3<<20 {
		t.Errorf("quota 4 MiB accepted %d bytes before EDQUOT; want between 3 MiB and 4 MiB", written)
	}
	if cerr != nil {
		t.Errorf("close after EDQUOT: %v (what was accepted must be kept)", cerr)
	}
	wantContent(t, p, data[:written])

	// A tool sees "Disk quota exceeded".
	src := filepath.Join(t.TempDir(), "src")
	writeFile(t, src, pattern(2<<20, 14))
	r := run(t, "", nil, "cp", src, filepath.Join(mnt, "more"))
	if r.err == nil || !strings.Contains(r.stderr, "Disk quota exceeded") {
		t.Errorf("cp of 2 MiB into a full volume: err %v, stderr %q; want failure with \"Disk quota exceeded\"", r.err, r.stderr)
	}
	os.Remove(filepath.Join(mnt, "more"))
	wantContent(t, p, data[:written])

	// Truncating up past the quota fails too.
	err = os.Truncate(filepath.Join(mnt, "big"), 64<<20)
	if !errors.Is(err, syscall.EDQUOT) {
		t.Errorf("truncate past the quota: %v, want EDQUOT", err)
	}

	// Deleting gives the space back, and the accounting survives a remount.
	check(t, os.Remove(p))
	writeFile(t, filepath.Join(mnt, "after"), pattern(3<<20, 15))
	remount(t, pool, "vol", mnt)
	wantContent(t, filepath.Join(mnt, "after"), pattern(3<<20, 15))
	err = os.WriteFile(filepath.Join(mnt, "over"), pattern(2<<20, 16), 0o644)
	if !errors.Is(err, syscall.EDQUOT) {
		t.Errorf("after remount, 3 MiB used, writing 2 more MiB: %v, want EDQUOT", err)
	}
}

// TestKillDaemon kills the daemon with SIGKILL after fsyncs and checks
// that every fsync'd file comes back with its exact content.
func TestKillDaemon(t *testing.T) {
	mnt, pool := mountVolume(t, mountOpts{})
	dir := filepath.Join(mnt, "d")
	check(t, os.Mkdir(dir, 0o755))
	sizes := []int{0, 1, 2047, 2048, 2049, 4096, 131071, 131072, 131073, 1 << 20, 3<<20 + 17}
	want := map[string]string{} // path -> sha256
	for i, size := range sizes {
		p := filepath.Join(dir, fmt.Sprintf("f%02d", i))
		data := pattern(size, byte(20+i))
		f, err := os.Create(p)
		check(t, err)
		_, err = f.Write(data)
		check(t, err)
		check(t, f.Sync())
		check(t, f.Close())
		want[p] = sha256Hex(data)
	}
	// An overwrite in place, fsync'd.
	over := filepath.Join(dir, "f10")
	f, err := os.OpenFile(over, os.O_WRONLY, 0)
	check(t, err)
	patch := pattern(5000, 99)
	_, err = f.WriteAt(patch, 200_000)
	check(t, err)
	check(t, unix.Fdatasync(int(f.Fd())))
	check(t, f.Close())
	data := pattern(sizes[10], 30)
	copy(data[200_000:], patch)
	want[over] = sha256Hex(data)
	// Written and fsync'd by a tool.
	ddOut := filepath.Join(dir, "dd")
	src := filepath.Join(t.TempDir(), "src")
	writeFile(t, src, pattern(700_000, 40))
	mustRun(t, "", nil, "dd", "if="+src, "of="+ddOut, "bs=64k", "conv=fsync", "status=none")
	want[ddOut] = sha256Hex(pattern(700_000, 40))
	d, err := os.Open(dir)
	check(t, err)
	check(t, d.Sync())
	check(t, d.Close())
	// Not fsync'd: may be lost, must not break anything.
	writeFile(t, filepath.Join(dir, "unsynced"), pattern(300_000, 50))

	pid := daemonPid(t, pool)
	check(t, syscall.Kill(pid, syscall.SIGKILL))
	deadline := time.Now().Add(10 * time.Second)
	for syscall.Kill(pid, 0) == nil && !isZombie(pid) {
		if time.Now().After(deadline) {
			t.Fatalf("daemon pid %d still alive 10s after SIGKILL", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The kernel answers ENOTCONN once the connection is gone, or
	// ECONNABORTED for a request it aborted as the daemon died.
	if _, err := os.Stat(filepath.Join(mnt, "d")); !errors.Is(err, syscall.ENOTCONN) && !errors.Is(err, syscall.ECONNABORTED) {
		t.Errorf("stat in the dead mount: %v, want ENOTCONN or ECONNABORTED", err)
	}
	mustRun(t, "", nil, "fusermount3", "-u", "-z", mnt)
	if isMounted(mnt) {
		t.Fatalf("%s still mounted after fusermount3 -u -z", mnt)
	}
	mountAt(t, pool, "vol", mnt)
	for p, sum := range want {
		got, err := fileSum(p)
		if err != nil || got != sum {
			t.Errorf("after kill -9 and remount, %s: sha256 %.12s (%v), want %.12s", p, got, err, sum)
		}
	}
	// The tree stays usable: the unsynced file is either absent or readable,
	// and new writes work.
	if _, err := os.ReadFile(filepath.Join(dir, "unsynced")); err != nil && !errors.Is(err, os.ErrNotExist) {
		t.Errorf("unsynced file after the crash: %v", err)
	}
	writeFile(t, filepath.Join(dir, "new"), []byte("after the crash"))
	remount(t, pool, "vol", mnt)
	wantContent(t, filepath.Join(dir, "new"), []byte("after the crash"))
}

func isZombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	i := strings.LastIndexByte(string(b), ')')
	return i >= 0 && i+2 < len(b) && b[i+2] == 'Z'
}

// TestMountCycle mounts and unmounts the same volume several times with
// data in between, and checks the lock file names the running daemon.
func TestMountCycle(t *testing.T) {
	mnt, pool := mountVolume(t, mountOpts{})
	for i := 0; i < 5; i++ {
		pid := daemonPid(t, pool)
		if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); err != nil {
			t.Errorf("cycle %d: lock names pid %d, which does not run", i, pid)
		}
		writeFile(t, filepath.Join(mnt, fmt.Sprint(i)), pattern(100_000*i, byte(i)))
		remount(t, pool, "vol", mnt)
		for j := 0; j <= i; j++ {
			wantContent(t, filepath.Join(mnt, fmt.Sprint(j)), pattern(100_000*j, byte(j)))
		}
	}
	// volume list and pool status work once unmounted.
	umount(t, pool, mnt)
	out := snapfsOK(t, "-p", pool, "volume", "list")
	if !strings.Contains(out, "vol") {
		t.Errorf("volume list does not list vol:\n%s", out)
	}
	snapfsOK(t, "-p", pool, "pool", "status")
	if out := snapfsOK(t, "-p", pool, "pool", "status", "--json"); !strings.Contains(out, `"members"`) {
		t.Errorf("pool status --json:\n%s", out)
	}
}

// TestBusyUnmount checks that umount of a mount with an open file fails
// with a clear message and leaves the mount working.
func TestBusyUnmount(t *testing.T) {
	mnt, _ := mountVolume(t, mountOpts{})
	p := filepath.Join(mnt, "open")
	writeFile(t, p, []byte("busy"))
	f, err := os.Open(p)
	check(t, err)
	r := snapfs(t, "umount", mnt)
	if r.err == nil {
		f.Close()
		t.Fatalf("snapfs umount of a mount with an open file succeeded")
	}
	if !strings.Contains(r.stderr, "busy") {
		t.Errorf("snapfs umount of a busy mount: stderr %q, want it to say busy", r.stderr)
	}
	b := make([]byte, 4)
	if _, err := f.ReadAt(b, 0); err != nil || string(b) != "busy" {
		t.Errorf("read after a refused umount: %q, %v", b, err)
	}
	check(t, f.Close())
}

// TestReaddirSeekRemount checks readdir cookies once the entries have been
// through a remount (the metadata then comes from disk, not memory).
func TestReaddirSeekRemount(t *testing.T) {
	mnt, pool := mountVolume(t, mountOpts{})
	dir := filepath.Join(mnt, "d")
	check(t, os.Mkdir(dir, 0o755))
	fillForSeeks(t, dir)
	remount(t, pool, "vol", mnt)
	checkSeeks(t, dir)
	// ls and os.ReadDir list every name once.
	if out := mustRun(t, dir, nil, "sh", "-c", "ls -f | sort | uniq -d"); out != "" {
		t.Errorf("ls -f lists names twice:\n%s", truncate(out, 2000))
	}
}
