package control_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/snapfs/snapfs/control"
	"github.com/snapfs/snapfs/pool"
	"github.com/snapfs/snapfs/store"
)

// FuzzRequest sends arbitrary bytes as request lines to a real server
// (socket, pool, store). Every line gets exactly one well-formed response;
// a line that is not a valid request gets an error; the server never
// panics (a panic in its goroutine kills the test process) and still
// answers a good request afterwards.
//
// Run with: go test -run '^$' -fuzz '^FuzzRequest$' -fuzztime 10s ./control
func FuzzRequest(f *testing.F) {
	for _, s := range []string{
		`{"op": "volume.list"}`,
		`{"op": "pool.status"}`,
		`{"op": "snapshot.create", "args": {"vol": "vol", "name": "s1"}}`,
		`{"op": "snapshot.create", "args": {"vol": "vol", "name": "a/b"}}`,
		`{"op": "snapshot.destroy", "args": {"vol": "vol", "name": "nope"}}`,
		`{"op": "snapshot.rename", "args": {"vol": "vol", "old": "s1", "new": ".."}}`,
		`{"op": "branch.create", "args": {"vol": "vol", "from": "s1", "name": "b1"}}`,
		`{"op": "volume.create", "args": {"vol": "v2", "chunk_size": 3, "uid": 0}}`,
		`{"op": "snapshot.list", "args": {"vol": "missing"}}`,
		`{"op": "mount", "args": {"vol": "vol", "mountpoint": "relative"}}`,
		`{"op": "sync", "args": []}`,
		`{"op": "volume.list", "args": {"unknown": 1}}`,
		`{"op": 5}`,
		`{"op": "nope"}`,
		`{"op": "volume.list"} trailing`,
		`null`,
		`[]`,
		``,
		`{`,
		"\xff\xfe",
		`{"op": "snapshot.create", "args": {"vol": "vol", "name": "` + string(bytes.Repeat([]byte("x"), 300)) + `"}}`,
	} {
		f.Add([]byte(s))
	}
	dir := fuzzServer(f)
	f.Fuzz(func(t *testing.T, line []byte) {
		if bytes.IndexByte(line, '\n') >= 0 || len(line) >= control.MaxRequest {
			return // one request line per input
		}
		c, err := net.Dial("unix", filepath.Join(dir, control.SocketName))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		r := bufio.NewReader(c)
		ask := func(req []byte) control.Response {
			if _, err := c.Write(append(append([]byte(nil), req...), '\n')); err != nil {
				t.Fatalf("write %q: %v", req, err)
			}
			b, err := r.ReadBytes('\n')
			if err != nil {
				t.Fatalf("no response to %q: %v", req, err)
			}
			var resp control.Response
			if err := json.Unmarshal(b, &resp); err != nil {
				t.Fatalf("response to %q is not JSON: %q", req, b)
			}
			if (resp.Error == nil) == (resp.OK == nil) {
				t.Fatalf("response to %q has neither or both of ok and error: %q", req, b)
			}
			if resp.Error != nil && (resp.Error.Code == "" || resp.Error.Message == "") {
				t.Fatalf("error response to %q lacks code or message: %q", req, b)
			}
			return resp
		}
		resp := ask(line)
		var req control.Request
		if json.Unmarshal(line, &req) != nil && resp.Error == nil {
			t.Fatalf("malformed request %q answered ok: %s", line, resp.OK)
		}
		// The same connection and the server still work.
		if resp := ask([]byte(`{"op":"volume.list"}`)); resp.Error != nil {
			t.Fatalf("after %q: volume.list failed: %+v", line, *resp.Error)
		}
	})
}

// fuzzServer serves a fresh pool with volume "vol" for the whole fuzz run.
func fuzzServer(f *testing.F) string {
	base := f.TempDir()
	dir := filepath.Join(base, "pool")
	member := filepath.Join(base, "disk")
	if err := os.Mkdir(member, 0o755); err != nil {
		f.Fatal(err)
	}
	if err := pool.Create(dir, pool.CreateOptions{Members: []string{member}}); err != nil {
		f.Fatal(err)
	}
	p, err := pool.Open(dir, pool.OpenOptions{})
	if err != nil {
		f.Fatal(err)
	}
	st, err := store.Open(p, store.Options{})
	if err != nil {
		f.Fatal(err)
	}
	if _, err := st.CreateVolume("vol", store.VolumeOptions{Uid: uint32(os.Getuid())}); err != nil {
		f.Fatal(err)
	}
	srv, err := control.Start(dir, p, st, func(s *control.Server) {
		s.Mount = func(control.MountArgs) error { return control.Errorf("EOPNOTSUPP", "no mounts in the fuzz test") }
	})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() {
		srv.Close()
		st.Close()
		p.Close()
	})
	return dir
}
