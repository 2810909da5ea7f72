package control_test

import (
	"bufio"
	"encoding/json"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snapfs/snapfs/client"
	"github.com/snapfs/snapfs/control"
	"github.com/snapfs/snapfs/pool"
	"github.com/snapfs/snapfs/store"
)

// newServer serves a fresh pool (volume "vol") in this process.
func newServer(t *testing.T, setup func(*control.Server)) (dir string, srv *control.Server) {
	t.Helper()
	base := t.TempDir()
	dir = filepath.Join(base, "pool")
	member := filepath.Join(base, "disk")
	if err := os.Mkdir(member, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := pool.Create(dir, pool.CreateOptions{Members: []string{member}}); err != nil {
		t.Fatal(err)
	}
	p, err := pool.Open(dir, pool.OpenOptions{})
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(p, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CreateVolume("vol", store.VolumeOptions{Uid: uint32(os.Getuid())}); err != nil {
		t.Fatal(err)
	}
	srv, err = control.Start(dir, p, st, setup)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srv.Close()
		if err := st.Close(); err != nil {
			t.Error(err)
		}
		p.Close()
	})
	return dir, srv
}

func dial(t *testing.T, dir string) *client.Client {
	t.Helper()
	c, err := client.Dial(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestEveryOp(t *testing.T) {
	var mounted []control.MountArgs
	dir, _ := newServer(t, func(s *control.Server) {
		s.Mount = func(a control.MountArgs) error { mounted = append(mounted, a); return nil }
	})
	fi, err := os.Stat(filepath.Join(dir, control.SocketName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket: %v, %v", fi, err)
	}
	c := dial(t, dir)
	v, err := c.CreateVolume("v2", client.VolumeOptions{Quota: 1 << 20})
	if err != nil || v.Name != "v2" || v.Quota != 1<<20 || v.Uid != uint32(os.Getuid()) {
		t.Fatalf("CreateVolume: %+v, %v", v, err)
	}
	if _, err := c.CreateVolume("v2", client.VolumeOptions{}); !errors.Is(err, client.ErrExists) {
		t.Errorf("CreateVolume again: %v", err)
	}
	if _, err := c.CreateVolume("a/b", client.VolumeOptions{}); !errors.Is(err, client.ErrInvalid) {
		t.Errorf("CreateVolume a/b: %v", err)
	}
	vols, err := c.ListVolumes()
	if err != nil || len(vols) != 2 || vols[0].Name != "v2" && vols[1].Name != "v2" {
		t.Errorf("ListVolumes: %+v, %v", vols, err)
	}
	s, err := c.CreateSnapshot("vol", "s1")
	if err != nil || s.Name != "s1" || s.Kind != "snapshot" || s.Created.IsZero() || s.ViewID == 0 {
		t.Fatalf("CreateSnapshot: %+v, %v", s, err)
	}
	if _, err := c.CreateSnapshot("vol", "s1"); !errors.Is(err, client.ErrExists) {
		t.Errorf("CreateSnapshot again: %v", err)
	}
	if _, err := c.CreateSnapshot("nosuch", "s1"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("CreateSnapshot of a missing volume: %v", err)
	}
	if _, err := c.CreateSnapshot("vol", "a@b"); !errors.Is(err, client.ErrInvalid) {
		t.Errorf("CreateSnapshot a@b: %v", err)
	}
	if _, err := c.CreateSnapshot("vol", strings.Repeat("x", 256)); err == nil {
		t.Errorf("CreateSnapshot of a 256-byte name succeeded")
	}
	if err := c.RenameSnapshot("vol", "s1", "s2"); err != nil {
		t.Fatal(err)
	}
	if err := c.RenameSnapshot("vol", "s1", "s3"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("RenameSnapshot missing: %v", err)
	}
	b, err := c.CreateBranch("vol", "s2", "br")
	if err != nil || b.Kind != "branch" || b.Parent != "s2" {
		t.Fatalf("CreateBranch: %+v, %v", b, err)
	}
	if err := c.RenameSnapshot("vol", "s2", "br"); !errors.Is(err, client.ErrExists) {
		t.Errorf("RenameSnapshot onto a branch: %v", err)
	}
	if err := c.DestroySnapshot("vol", "s2"); !errors.Is(err, client.ErrBusy) || !strings.Contains(err.Error(), "br") {
		t.Errorf("DestroySnapshot with a branch: %v", err)
	}
	l, err := c.ListSnapshots("vol")
	if err != nil || len(l) != 2 {
		t.Fatalf("ListSnapshots: %+v, %v", l, err)
	}
	// Branches are not destroyed through DestroySnapshot (as rmdir).
	if err := c.DestroySnapshot("vol", "br"); !errors.Is(err, client.ErrNotEmpty) {
		t.Errorf("DestroySnapshot of a branch: %v", err)
	}
	if _, err := c.CreateSnapshot("vol", "s4"); err != nil {
		t.Fatal(err)
	}
	if err := c.DestroySnapshot("vol", "s4"); err != nil {
		t.Errorf("DestroySnapshot: %v", err)
	}
	if err := c.DestroySnapshot("vol", "s4"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("DestroySnapshot again: %v", err)
	}
	ps, err := c.PoolStatus()
	if err != nil || len(ps.Members) != 1 || ps.Pool != dir || ps.ID == "" {
		t.Errorf("PoolStatus: %+v, %v", ps, err)
	}
	if err := c.Sync(); err != nil {
		t.Errorf("Sync: %v", err)
	}
	if err := c.Mount("v2", "/mnt/x", client.MountOptions{SnapdirVisible: true}); err != nil || len(mounted) != 1 ||
		mounted[0].Vol != "v2" || !mounted[0].Options.SnapdirVisible {
		t.Errorf("Mount: %v, %+v", err, mounted)
	}
	if err := c.Mount("v2", "rel", client.MountOptions{}); !errors.Is(err, client.ErrInvalid) {
		t.Errorf("Mount of a relative path: %v", err)
	}
	if err := c.Mount("nosuch", "/mnt/x", client.MountOptions{}); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("Mount of a missing volume: %v", err)
	}
}

func TestMountUnsupported(t *testing.T) {
	dir, _ := newServer(t, nil)
	err := dial(t, dir).Mount("vol", "/mnt/x", client.MountOptions{})
	if !errors.Is(err, client.ErrNotSupported) {
		t.Errorf("Mount without a mounter: %v", err)
	}
}

// raw sends lines on a raw connection and returns the response lines.
func raw(t *testing.T, dir string, lines ...string) []control.Response {
	t.Helper()
	c, err := net.Dial("unix", control.SocketPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	var out []control.Response
	for _, l := range lines {
		if _, err := c.Write([]byte(l + "\n")); err != nil {
			break
		}
		line, err := r.ReadBytes('\n')
		if err != nil {
			break
		}
		var resp control.Response
		if err := json.Unmarshal(line, &resp); err != nil {
			t.Fatalf("response %q: %v", line, err)
		}
		out = append(out, resp)
	}
	return out
}

func TestBadRequests(t *testing.T) {
	dir, _ := newServer(t, nil)
	for _, req := range []string{
		`not json`,
		`{"op": "nosuch.op"}`,
		`{"op": "snapshot.create", "args": {"vol": "vol"}}`,
		`{"op": "snapshot.create", "args": {"vol": "vol", "name": "x", "extra": 1}}`,
		`{"op": "snapshot.create", "args": [1, 2]}`,
		`{"op": "volume.list", "args": {"x": 1}}`,
	} {
		resp := raw(t, dir, req)
		if len(resp) != 1 || resp[0].Error == nil || resp[0].Error.Code != "EINVAL" {
			t.Errorf("%s: %+v", req, resp)
		}
	}
	// The connection survives a bad request.
	resp := raw(t, dir, `{"op": "nosuch"}`, `{"op": "volume.list"}`)
	if len(resp) != 2 || resp[1].Error != nil || !strings.Contains(string(resp[1].OK), `"vol"`) {
		t.Errorf("request after a bad one: %+v", resp)
	}
}

func TestOversizedRequest(t *testing.T) {
	dir, _ := newServer(t, nil)
	big := `{"op": "volume.list", "args": {"pad": "` + strings.Repeat("x", control.MaxRequest) + `"}}`
	resp := raw(t, dir, big)
	if len(resp) != 1 || resp[0].Error == nil || resp[0].Error.Code != "EINVAL" {
		t.Fatalf("oversized request: %+v", resp)
	}
	// The server still serves others.
	if _, err := dial(t, dir).ListVolumes(); err != nil {
		t.Errorf("after an oversized request: %v", err)
	}
}

func TestPeerRefused(t *testing.T) {
	dir, _ := newServer(t, func(s *control.Server) {
		s.Allow = func(uid uint32) bool { return false }
	})
	c := dial(t, dir)
	_, err := c.ListVolumes()
	var ce *client.Error
	if !errors.Is(err, client.ErrPermission) || !errors.As(err, &ce) || !strings.Contains(ce.Message, "permission denied") {
		t.Errorf("refused peer: %v", err)
	}
}

func TestStaleSocket(t *testing.T) {
	dir, srv := newServer(t, nil)
	path := srv.Path()
	srv.Close()
	if _, err := client.Dial(dir); !errors.Is(err, client.ErrNoDaemon) {
		t.Errorf("Dial after Close: %v", err)
	}
	// A socket file nobody listens on, as a killed daemon leaves.
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	ln.SetUnlinkOnClose(false)
	ln.Close()
	if _, err := os.Stat(path); err != nil {
		t.Fatal(err)
	}
	if _, err := client.Dial(dir); !errors.Is(err, client.ErrNoDaemon) {
		t.Errorf("Dial of a stale socket: %v", err)
	}
}

func TestLongPoolPath(t *testing.T) {
	dir := filepath.Join(t.TempDir(), strings.Repeat("d", 120))
	p := control.ListenPath(dir)
	if len(p) > 107 || strings.HasPrefix(p, dir) {
		t.Errorf("ListenPath of a %d-byte dir: %q", len(dir), p)
	}
	if p != control.ListenPath(dir) {
		t.Errorf("ListenPath is not stable")
	}
}

// TestBranchDatasets drives snapshots and branches of branches through the
// socket: every op takes a dataset path, a branch with children is EBUSY
// until destroyed recursively, and bad paths are typed errors.
func TestBranchDatasets(t *testing.T) {
	var mounted []control.MountArgs
	var mountedView uint32 // the live view id the fake daemon serves at /mnt/x
	dir, _ := newServer(t, func(s *control.Server) {
		s.Mount = func(a control.MountArgs) error { mounted = append(mounted, a); return nil }
		s.MountedAt = func(id uint32) (string, bool) { return "/mnt/x", id != 0 && id == mountedView }
	})
	c := dial(t, dir)
	must := func(what string, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
	}
	_, err := c.CreateSnapshot("vol", "s1")
	must("snapshot vol@s1", err)
	_, err = c.CreateBranch("vol", "s1", "b")
	must("branch vol/b", err)
	t1, err := c.CreateSnapshot("vol/b", "t1")
	must("snapshot vol/b@t1", err)
	if t1.Volume != "vol/b" || t1.Kind != "snapshot" {
		t.Errorf("snapshot of a branch: %+v", t1)
	}
	c1, err := c.CreateBranch("vol/b", "t1", "c")
	must("branch vol/b/c", err)
	if c1.Volume != "vol/b" || c1.Parent != "t1" {
		t.Errorf("branch of a branch: %+v", c1)
	}
	_, err = c.CreateSnapshot("vol/b/c", "u1")
	must("snapshot vol/b/c@u1", err)
	for ds, want := range map[string]string{"vol": "s1,b", "vol/b": "t1,c", "vol/b/c": "u1"} {
		l, err := c.ListSnapshots(ds)
		var names []string
		for _, s := range l {
			names = append(names, s.Name)
		}
		if err != nil || strings.Join(names, ",") != want {
			t.Errorf("ListSnapshots(%s) = %v, %v; want %s", ds, names, err, want)
		}
	}
	must("rename vol/b/c@u1", c.RenameSnapshot("vol/b/c", "u1", "u2"))
	if err := c.DestroySnapshot("vol/b", "t1"); !errors.Is(err, client.ErrBusy) {
		t.Errorf("DestroySnapshot of vol/b@t1 with a branch: %v", err)
	}
	err = c.DestroyBranch("vol", "b")
	if !errors.Is(err, client.ErrBusy) || !strings.Contains(err.Error(), "t1") || !strings.Contains(err.Error(), "c") {
		t.Errorf("DestroyBranch of vol/b with children: %v", err)
	}
	if _, err := c.CreateSnapshot("vol/nope", "x"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("snapshot of a missing branch: %v", err)
	}
	if _, err := c.CreateSnapshot("vol/s1", "x"); !errors.Is(err, client.ErrInvalid) {
		t.Errorf("snapshot of a snapshot: %v", err)
	}
	if _, err := c.ListSnapshots("vol//b"); !errors.Is(err, client.ErrInvalid) {
		t.Errorf("list of a path with an empty component: %v", err)
	}
	must("mount vol/b/c", c.Mount("vol/b/c", "/mnt/x", client.MountOptions{}))
	if len(mounted) != 1 || mounted[0].Vol != "vol/b/c" {
		t.Errorf("Mount of a branch: %+v", mounted)
	}
	if err := c.Mount("vol/b/nope", "/mnt/x", client.MountOptions{}); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("Mount of a missing branch: %v", err)
	}
	// A branch mounted on its own is not destroyed, alone or in a tree.
	mountedView = c1.ViewID
	if err := c.DestroyBranch("vol/b", "c"); !errors.Is(err, client.ErrBusy) || !strings.Contains(err.Error(), "u2") {
		t.Errorf("DestroyBranch of a mounted branch with a snapshot: %v (want its snapshot named)", err)
	}
	if err := c.DestroyBranchRecursive("vol/b", "c"); !errors.Is(err, client.ErrBusy) || !strings.Contains(err.Error(), "/mnt/x") {
		t.Errorf("DestroyBranchRecursive of a mounted branch: %v", err)
	}
	must("destroy vol/b/c@u2", c.DestroySnapshot("vol/b/c", "u2"))
	if err := c.DestroyBranch("vol/b", "c"); !errors.Is(err, client.ErrBusy) || !strings.Contains(err.Error(), "/mnt/x") {
		t.Errorf("DestroyBranch of a mounted branch: %v", err)
	}
	if err := c.DestroyBranchRecursive("vol", "b"); !errors.Is(err, client.ErrBusy) || !strings.Contains(err.Error(), "vol/b/c") {
		t.Errorf("DestroyBranchRecursive above a mounted branch: %v", err)
	}
	mountedView = 0
	must("destroy vol/b recursively", c.DestroyBranchRecursive("vol", "b"))
	if _, err := c.ListSnapshots("vol/b"); !errors.Is(err, client.ErrNotFound) {
		t.Errorf("list of a destroyed branch: %v", err)
	}
	must("destroy vol@s1", c.DestroySnapshot("vol", "s1"))
}
