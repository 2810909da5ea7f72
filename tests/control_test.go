package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestControl drives the daemon's control socket through the CLI: snapshot
// commands while mounted, a second mount served by the same daemon, pool
// status, and a stale socket after the daemon is killed.
func TestControl(t *testing.T) {
	mnt, pool := mountVolume(t, mountOpts{})
	sock := filepath.Join(pool, "control.sock")
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatalf("control socket: %v", err)
	}
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o600 {
		t.Fatalf("control socket mode %v, want socket 0600", fi.Mode())
	}
	if err := os.WriteFile(filepath.Join(mnt, "f"), []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}

	out := snapfsOK(t, "-p", pool, "snapshot", "create", "vol", "s1")
	if !strings.Contains(out, "created snapshot vol@s1") {
		t.Errorf("snapshot create: %q", out)
	}
	if r := snapfs(t, "-p", pool, "snapshot", "create", "vol", "s1"); r.err == nil ||
		!strings.Contains(r.stderr, "already exists") || strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
		t.Errorf("duplicate snapshot create: err %v, stderr %q", r.err, r.stderr)
	}
	var list []struct {
		Name    string     `json:"name"`
		Kind    string     `json:"kind"`
		Created *time.Time `json:"created"`
		PauseNs int64      `json:"pause_ns"`
	}
	if err := json.Unmarshal([]byte(snapfsOK(t, "-p", pool, "snapshot", "list", "vol", "--json")), &list); err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].Name != "s1" || list[0].Kind != "snapshot" || list[0].Created == nil ||
		list[0].Created.IsZero() {
		t.Errorf("snapshot list --json while mounted: %+v", list)
	}
	if b, err := os.ReadFile(filepath.Join(mnt, ".snapshots", "s1", "f")); err != nil || string(b) != "hello" {
		t.Errorf("read vol@s1/f through the mount: %q, %v", b, err)
	}
	snapfsOK(t, "-p", pool, "snapshot", "rename", "vol@s1", "s2")
	snapfsOK(t, "-p", pool, "snapshot", "destroy", "vol@s2")
	if r := snapfs(t, "-p", pool, "snapshot", "destroy", "vol@s2"); r.err == nil || !strings.Contains(r.stderr, "no snapshot vol@s2") {
		t.Errorf("destroy missing snapshot: err %v, stderr %q", r.err, r.stderr)
	}
	if r := snapfs(t, "-p", pool, "snapshot", "list", "nosuch"); r.err == nil || !strings.Contains(r.stderr, "does not exist") {
		t.Errorf("snapshot list of a missing volume: err %v, stderr %q", r.err, r.stderr)
	}

	// A second volume, mounted by the running daemon.
	snapfsOK(t, "-p", pool, "volume", "create", "vol2")
	mnt2 := filepath.Join(filepath.Dir(mnt), "mnt2")
	if err := os.Mkdir(mnt2, 0o755); err != nil {
		t.Fatal(err)
	}
	pid := daemonPid(t, pool)
	mountAt(t, pool, "vol2", mnt2)
	if got := daemonPid(t, pool); got != pid {
		t.Errorf("second mount: pool lock pid %d, want the first daemon's %d", got, pid)
	}
	if err := os.WriteFile(filepath.Join(mnt2, "g"), []byte("two"), 0o644); err != nil {
		t.Fatal(err)
	}
	vols := snapfsOK(t, "-p", pool, "volume", "list")
	if !strings.Contains(vols, "vol2") {
		t.Errorf("volume list: %q", vols)
	}
	var st struct {
		Members []json.RawMessage `json:"members"`
		Logical int64             `json:"logical"`
	}
	if err := json.Unmarshal([]byte(snapfsOK(t, "-p", pool, "pool", "status", "--json")), &st); err != nil {
		t.Fatal(err)
	}
	if len(st.Members) != 2 || st.Logical < 8 {
		t.Errorf("pool status while mounted: %+v", st)
	}
	snapfsOK(t, "-p", pool, "sync")

	// Unmounting one mount leaves the daemon serving the other.
	umount(t, pool, mnt2)
	if !isMounted(mnt) {
		t.Fatalf("%s gone after unmounting %s", mnt, mnt2)
	}
	snapfsOK(t, "-p", pool, "snapshot", "create", "vol", "s3")

	// A killed daemon leaves a stale socket: commands open the pool directly.
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 100 && processAlive(pid); i++ {
		time.Sleep(20 * time.Millisecond)
	}
	if _, err := os.Stat(sock); err != nil {
		t.Fatalf("expected a stale socket after kill -9: %v", err)
	}
	snapfsOK(t, "umount", mnt)
	vols = snapfsOK(t, "-p", pool, "volume", "list")
	if !strings.Contains(vols, "vol2") {
		t.Errorf("volume list after kill -9: %q", vols)
	}
	out = snapfsOK(t, "-p", pool, "snapshot", "list", "vol")
	if !strings.Contains(out, "s3") {
		t.Errorf("snapshot list after kill -9: %q", out)
	}
	// The next daemon replaces the stale socket.
	mountAt(t, pool, "vol", mnt)
	snapfsOK(t, "-p", pool, "snapshot", "create", "vol", "s4")
	umount(t, pool, mnt)
	if _, err := os.Stat(sock); !os.IsNotExist(err) {
		t.Errorf("socket left after the daemon exited: %v", err)
	}
}

// processAlive reports whether pid exists and is not a zombie.
func processAlive(pid int) bool {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}
