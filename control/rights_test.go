package control_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/snapfs/snapfs/client"
	"github.com/snapfs/snapfs/control"
	"github.com/snapfs/snapfs/stream"
)

// nonblocking reports whether f's descriptor is in non-blocking mode.
func nonblocking(t *testing.T, f *os.File) bool {
	t.Helper()
	rc, err := f.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var fl int
	var ferr error
	if err := rc.Control(func(fd uintptr) { fl, ferr = unix.FcntlInt(fd, unix.F_GETFL, 0) }); err != nil || ferr != nil {
		t.Error(err, ferr) // Error: called from the sending goroutine too
	}
	return fl&unix.O_NONBLOCK != 0
}

// sentStream returns a full stream of vol@s from the server in dir (a
// snapshot of its empty volume), taken through a buffer (the FIFO path).
func sentStream(t *testing.T, dir string) []byte {
	t.Helper()
	c := dial(t, dir)
	if _, err := c.CreateSnapshot("vol", "s"); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := c.Send(client.SendArgs{Dataset: "vol", Snapshot: "s"}, &buf); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestStreamByDescriptor sends between two daemons through one pipe
// whose ends the clients pass with their requests: the source daemon
// writes the pipe and the target daemon reads it, no client copies a
// byte, the result is the stream the FIFO path gives, and both ends are
// back in blocking mode afterwards (the clients' processes share them).
func TestStreamByDescriptor(t *testing.T) {
	src, _ := newServer(t, nil)
	dst, _ := newServer(t, nil)
	want := sentStream(t, src)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	sent := make(chan error, 1)
	var st stream.Stats
	var pwNonblocking bool
	go func() {
		var err error
		st, err = dial(t, src).Send(client.SendArgs{Dataset: "vol", Snapshot: "s"}, pw)
		pwNonblocking = nonblocking(t, pw)
		pw.Close()
		sent <- err
	}()
	res, err := dial(t, dst).Receive(client.ReceiveArgs{Dataset: "copy"}, pr)
	if serr := <-sent; serr != nil || err != nil {
		t.Fatalf("send %v, receive %v", serr, err)
	}
	if len(res.Received) != 1 || res.Received[0].Snapshot != "s" || res.Stats.Bytes != int64(len(want)) || st.Bytes != int64(len(want)) {
		t.Fatalf("received %+v (%d bytes), sent %d bytes, want %d", res.Received, res.Stats.Bytes, st.Bytes, len(want))
	}
	if nonblocking(t, pr) || pwNonblocking {
		t.Error("a passed pipe end was left in non-blocking mode")
	}
	// A regular file goes through a FIFO (it may be on a mount the daemon
	// serves).
	f, err := os.CreateTemp(t.TempDir(), "stream")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.Write(want)
	f.Seek(0, 0)
	if _, err := dial(t, dst).Receive(client.ReceiveArgs{Dataset: "copy2"}, f); err != nil {
		t.Fatalf("receive from a regular file: %v", err)
	}
	// A refusal through a descriptor is typed as through a FIFO.
	pr2, pw2, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr2.Close()
	go func() { pw2.Write(want); pw2.Close() }()
	if _, err := dial(t, dst).Receive(client.ReceiveArgs{Dataset: "copy2"}, pr2); !errors.Is(err, stream.ErrTargetExists) {
		t.Fatalf("receive into an existing name: %v", err)
	}
}

// TestPassedStreamHangup: a client that passed its pipe and hangs up half
// way ends the receive as a FIFO's writer would: the daemon stops reading
// (the pipe is still open at the test's end, so only the hang-up can stop
// it), keeps what it verified as a partial receive, and lets go of the
// dataset.
func TestPassedStreamHangup(t *testing.T) {
	src, _ := newServer(t, nil)
	dst, _ := newServer(t, nil)
	data := sentStream(t, src)
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	defer pw.Close()
	c, err := client.Dial(dst)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Receive(client.ReceiveArgs{Dataset: "copy"}, pr)
		done <- err
	}()
	if _, err := pw.Write(data[:len(data)-20]); err != nil { // the end record stays out
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the daemon reads what there is
	c.Close()
	if err := <-done; err == nil {
		t.Fatal("a receive whose client hung up succeeded")
	}
	other := dial(t, dst)
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		err := other.AbortReceive("copy")
		if err == nil {
			break // the partial receive was kept, and the daemon let go of it
		}
		if time.Now().After(deadline) {
			t.Fatalf("the daemon still receives 20 s after its client hung up: %v", err)
		}
	}
}

// TestBadPassedStream: a request that says it passes a descriptor and
// passes none, or passes one the daemon cannot stream through (a
// directory), is refused with EINVAL, and the connection serves on.
func TestBadPassedStream(t *testing.T) {
	dir, _ := newServer(t, nil)
	d, err := os.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	reg, err := os.CreateTemp(t.TempDir(), "file")
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	conn, err := net.Dial("unix", control.SocketPath(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	uc := conn.(*net.UnixConn)
	r := bufio.NewReader(conn)
	ask := func(line string, fd int) control.Response {
		t.Helper()
		var oob []byte
		if fd >= 0 {
			oob = syscall.UnixRights(fd)
		}
		if _, _, err := uc.WriteMsgUnix([]byte(line+"\n"), oob, nil); err != nil {
			t.Fatal(err)
		}
		b, err := r.ReadBytes('\n')
		if err != nil {
			t.Fatal(err)
		}
		var resp control.Response
		if err := json.Unmarshal(b, &resp); err != nil {
			t.Fatal(err)
		}
		return resp
	}
	for _, c := range []struct {
		line string
		fd   int
		msg  string
	}{
		{`{"op": "stream.receive", "args": {"vol": "copy", "fd": true}}`, -1, "0 came with it"},
		{`{"op": "stream.send", "args": {"vol": "vol", "name": "s", "fd": true}}`, -1, "0 came with it"},
		{`{"op": "stream.receive", "args": {"vol": "copy", "fd": true}}`, int(d.Fd()), "not a pipe or socket"},
		{`{"op": "stream.send", "args": {"vol": "vol", "name": "s", "fd": true}}`, int(reg.Fd()), "not a pipe or socket"},
		{`{"op": "stream.receive", "args": {"vol": "copy"}}`, -1, `"fifo"`},
	} {
		resp := ask(c.line, c.fd)
		if resp.Error == nil || resp.Error.Code != "EINVAL" || !strings.Contains(resp.Error.Message, c.msg) {
			t.Errorf("%s: %+v", c.line, resp.Error)
		}
	}
	// A descriptor sent with a request that takes none is closed, and
	// the connection serves on.
	if resp := ask(`{"op": "volume.list"}`, int(d.Fd())); resp.Error != nil || !strings.Contains(string(resp.OK), `"vol"`) {
		t.Errorf("volume.list with a stray descriptor: %+v", resp)
	}
}
