package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// spaceEntry is what the test reads of snapshot list --json.
type spaceEntry struct {
	Name       string   `json:"name"`
	Referenced int64    `json:"referenced"`
	Written    int64    `json:"written"`
	Unique     int64    `json:"unique"`
	HeldBy     []string `json:"held_by"`
}

func listSpace(t *testing.T, pool string) string {
	t.Helper()
	var l []spaceEntry
	out := snapfsOK(t, "-p", pool, "snapshot", "list", "vol", "--json")
	if err := json.Unmarshal([]byte(out), &l); err != nil {
		t.Fatalf("snapshot list --json: %v\n%s", err, out)
	}
	var b strings.Builder
	for _, e := range l {
		fmt.Fprintf(&b, "%s ref=%d written=%d unique=%d", e.Name, e.Referenced, e.Written, e.Unique)
		if len(e.HeldBy) > 0 {
			fmt.Fprintf(&b, " held-by=%s", strings.Join(e.HeldBy, ","))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// noZeros returns pattern bytes with no zero byte, so that no chunk ends
// in zeros (trailing zeros are not stored) and every figure is exact.
func noZeros(n int, seed byte) []byte {
	b := pattern(n, seed)
	for i := range b {
		if b[i] == 0 {
			b[i] = 'z'
		}
	}
	return b
}

// TestSnapshotSpace writes files through the mount with cp and dd, takes
// snapshots with mkdir and the CLI, overwrites and removes, and checks the
// referenced, written and unique bytes snapshot list --json reports (while
// mounted, through the daemon, and after unmount, on the pool), what
// volume list says the snapshots use, and that destroying a snapshot
// frees exactly its unique bytes from the pool's stored bytes. Chunks are
// 128 KiB.
func TestSnapshotSpace(t *testing.T) {
	mnt, pool := mountVolume(t, mountOpts{})
	src := t.TempDir()
	const chunk = 131072
	check(t, os.WriteFile(filepath.Join(src, "a"), noZeros(8*chunk, 1), 0o644))
	check(t, os.WriteFile(filepath.Join(src, "b"), noZeros(300_000, 2), 0o644))
	check(t, os.WriteFile(filepath.Join(src, "patch"), noZeros(2*chunk, 3), 0o644))
	check(t, os.WriteFile(filepath.Join(src, "c"), noZeros(500_000, 4), 0o644))
	mustRun(t, "", nil, "cp", filepath.Join(src, "a"), filepath.Join(src, "b"), mnt)
	check(t, os.Mkdir(filepath.Join(mnt, ".snapshots", "s1"), 0o755))

	// Overwrite two chunks of a in place and remove b: s1 alone keeps the
	// old chunks of a and all of b.
	mustRun(t, "", nil, "dd", "if="+filepath.Join(src, "patch"), "of="+filepath.Join(mnt, "a"),
		"bs=128K", "seek=3", "conv=notrunc", "status=none")
	check(t, os.Remove(filepath.Join(mnt, "b")))
	snapfsOK(t, "-p", pool, "snapshot", "create", "vol", "s2")
	mustRun(t, "", nil, "cp", filepath.Join(src, "c"), mnt)

	want := fmt.Sprintf("s1 ref=%d written=%d unique=%d\ns2 ref=%d written=%d unique=0\n",
		8*chunk+300_000, 8*chunk+300_000, 2*chunk+300_000, 8*chunk, 2*chunk)
	if got := listSpace(t, pool); got != want {
		t.Errorf("snapshot list --json while mounted:\n%s\nwant:\n%s", got, want)
	}
	table := snapfsOK(t, "-p", pool, "snapshot", "list", "vol")
	if !strings.Contains(table, "REFERENCED") || !strings.Contains(table, "1.3 MiB") || !strings.Contains(table, "549 KiB") {
		t.Errorf("snapshot list table lacks the human sizes of s1 (1.3 MiB referenced, 549 KiB unique):\n%s", table)
	}
	var vols []struct {
		Name      string `json:"name"`
		Snapshots int64  `json:"used_by_snapshots"`
	}
	check(t, json.Unmarshal([]byte(snapfsOK(t, "-p", pool, "volume", "list", "--json")), &vols))
	if len(vols) != 1 || vols[0].Snapshots != 2*chunk+300_000 {
		t.Errorf("volume list --json: %+v, want used_by_snapshots %d", vols, 2*chunk+300_000)
	}

	// Destroying s1 frees its unique bytes from the pool (no chunk is
	// shared: every file's bytes differ).
	stored := func() int64 {
		snapfsOK(t, "-p", pool, "sync") // waits for background reclaim
		var st struct {
			Stored int64 `json:"stored"`
		}
		check(t, json.Unmarshal([]byte(snapfsOK(t, "-p", pool, "pool", "status", "--json")), &st))
		return st.Stored
	}
	before := stored()
	check(t, unix.Rmdir(filepath.Join(mnt, ".snapshots", "s1")))
	if freed := before - stored(); freed != 2*chunk+300_000 {
		t.Errorf("destroying s1 freed %d stored bytes, want its unique %d", freed, 2*chunk+300_000)
	}
	// s2 now reaches back to the start: written covers (0, s2].
	want = fmt.Sprintf("s2 ref=%d written=%d unique=0\n", 8*chunk, 8*chunk)
	if got := listSpace(t, pool); got != want {
		t.Errorf("after destroying s1:\n%s\nwant:\n%s", got, want)
	}

	// A branch holds its snapshot: unique reads 0, held by the branch.
	check(t, os.Truncate(filepath.Join(mnt, "c"), 0))
	snapfsOK(t, "-p", pool, "branch", "create", "vol@s2", "try")
	mustRun(t, "", nil, "cp", filepath.Join(src, "b"), filepath.Join(mnt, ".snapshots", "try", "b"))
	umount(t, pool, mnt)
	want = fmt.Sprintf("s2 ref=%d written=%d unique=0 held-by=try\ntry ref=%d written=300000 unique=300000\n",
		8*chunk, 8*chunk, 8*chunk+300_000)
	if got := listSpace(t, pool); got != want {
		t.Errorf("with a branch, unmounted:\n%s\nwant:\n%s", got, want)
	}
	if table := snapfsOK(t, "-p", pool, "snapshot", "list", "vol"); !strings.Contains(table, "0 B (held by try)") {
		t.Errorf("snapshot list table does not say s2 is held by its branch:\n%s", table)
	}
}
