package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fallocate(1) through the mount: mode 0 and --keep-size preallocate
// (store/prealloc.go); past the quota it is EDQUOT and past the pool's
// space ENOSPC, with nothing allocated.

// sizeOf returns the size of p.
func sizeOf(t *testing.T, p string) int64 {
	t.Helper()
	fi, err := os.Stat(p)
	check(t, err)
	return fi.Size()
}

// TestFallocateQuota: on a volume with a 4 MiB quota, fallocate of 8 MiB
// is "Disk quota exceeded" and leaves the file empty; 2 MiB in mode 0 sets
// the size; 1.5 MiB with --keep-size keeps it, and holds the quota: a
// write of another file that would take it is refused, the write into the
// range is not.
func TestFallocateQuota(t *testing.T) {
	needTool(t, "fallocate", "util-linux")
	mnt, _ := mountVolume(t, mountOpts{Quota: "4MiB"})
	a, b, c := filepath.Join(mnt, "a"), filepath.Join(mnt, "b"), filepath.Join(mnt, "c")
	r := run(t, "", nil, "fallocate", "-l", "8MiB", a)
	if r.err == nil || !strings.Contains(r.stderr, "Disk quota exceeded") {
		t.Fatalf("fallocate -l 8MiB under a 4 MiB quota: %v %q, want Disk quota exceeded", r.err, r.stderr)
	}
	if n := sizeOf(t, a); n != 0 {
		t.Errorf("size after the refused fallocate: %d, want 0", n)
	}
	mustRun(t, "", nil, "fallocate", "-l", "2MiB", a)
	if n := sizeOf(t, a); n != 2<<20 {
		t.Errorf("size after fallocate -l 2MiB: %d", n)
	}
	writeFile(t, b, nil) // --keep-size opens without O_CREAT
	mustRun(t, "", nil, "fallocate", "--keep-size", "-l", "1536KiB", b)
	if n := sizeOf(t, b); n != 0 {
		t.Errorf("size after fallocate --keep-size: %d, want 0", n)
	}
	r = run(t, "", nil, "dd", "if=/dev/urandom", "of="+c, "bs=1M", "count=1", "conv=fsync")
	if r.err == nil || !strings.Contains(r.stderr, "Disk quota exceeded") {
		t.Errorf("dd of 1 MiB with 3.5 MiB of 4 preallocated: %v %q, want Disk quota exceeded", r.err, r.stderr)
	}
	data := randomFile(t, b, 1536<<10)
	wantContent(t, b, data)
	mustRun(t, "", nil, "dd", "if=/dev/urandom", "of="+a, "bs=1M", "count=2", "conv=notrunc,fsync", "status=none")
	if n := sizeOf(t, a); n != 2<<20 {
		t.Errorf("size after writing the mode-0 range: %d", n)
	}
}

// TestFallocateNoSpace: on members of 48 MiB tmpfs each, fallocate of
// 200 MiB is "No space left on device" with nothing allocated; 16 MiB
// succeeds, survives a snapshot, and once another file has filled the
// pool the first write of the whole range still succeeds and is durable.
func TestFallocateNoSpace(t *testing.T) {
	needTool(t, "fallocate", "util-linux")
	base := t.TempDir()
	d1, d2 := filepath.Join(base, "disk1"), filepath.Join(base, "disk2")
	mountTmpfs(t, d1, 48<<20)
	mountTmpfs(t, d2, 48<<20)
	pool, mnt := filepath.Join(base, "pool"), filepath.Join(base, "mnt")
	check(t, os.Mkdir(mnt, 0o755))
	snapfsOK(t, "pool", "create", pool, "--member", d1, "--member", d2)
	snapfsOK(t, "-p", pool, "volume", "create", "vol")
	mountAt(t, pool, "vol", mnt)

	f := filepath.Join(mnt, "f")
	r := run(t, "", nil, "fallocate", "-l", "200MiB", f)
	if r.err == nil || !strings.Contains(r.stderr, "No space left on device") {
		t.Fatalf("fallocate -l 200MiB on 96 MiB of members: %v %q, want No space left on device", r.err, r.stderr)
	}
	if n := sizeOf(t, f); n != 0 {
		t.Errorf("size after the refused fallocate: %d, want 0", n)
	}
	mustRun(t, "", nil, "fallocate", "-l", "16MiB", f)
	check(t, os.Mkdir(filepath.Join(mnt, ".snapshots", "s1"), 0o755))
	r = run(t, "", nil, "dd", "if=/dev/urandom", "of="+filepath.Join(mnt, "fill"), "bs=1M", "count=200", "conv=fsync")
	if r.err == nil || !strings.Contains(r.stderr, "No space left on device") {
		t.Fatalf("filling the pool: %v %q, want No space left on device", r.err, r.stderr)
	}
	src := filepath.Join(base, "src")
	data := randomFile(t, src, 16<<20)
	mustRun(t, "", nil, "dd", "if="+src, "of="+f, "bs=1M", "conv=notrunc,fsync", "status=none")
	wantContent(t, f, data)
	if n := sizeOf(t, filepath.Join(mnt, ".snapshots", "s1", "f")); n != 16<<20 {
		t.Errorf("the snapshot's file: %d bytes, want 16 MiB (of zeros)", n)
	}
}
