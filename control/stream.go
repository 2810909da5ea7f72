package control

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/snapfs/snapfs/snap"
	"github.com/snapfs/snapfs/stream"
)

// Replication through the daemon: the client passes the stream's file
// descriptor with the request (FD, rights.go), or makes a FIFO, names it
// in the request and copies between it and its own reader or writer
// while the op runs; the daemon reads or writes the stream through the
// descriptor or the FIFO. So the bytes never pass through the JSON
// protocol, and the daemon's open store does the work (docs/stream.md).

// StreamSendArgs are the arguments of OpStreamSend: Dataset@Snapshot,
// from Base (Chain: every snapshot after it), or the rest of a stream
// (Resume, a token), written into the FIFO at Fifo, or (FD) into the
// file descriptor sent with the request.
type StreamSendArgs struct {
	Dataset  string `json:"vol,omitempty"`
	Snapshot string `json:"name,omitempty"`
	Base     string `json:"base,omitempty"`
	Chain    bool   `json:"chain,omitempty"`
	Resume   string `json:"resume,omitempty"`
	Fifo     string `json:"fifo"`
	FD       bool   `json:"fd,omitempty"`
}

// StreamReceiveArgs are the arguments of OpStreamReceive: the stream is
// read from the FIFO at Fifo or (FD) from the file descriptor sent with
// the request.
type StreamReceiveArgs struct {
	Dataset string `json:"vol"`
	Force   bool   `json:"force,omitempty"`
	Fifo    string `json:"fifo"`
	FD      bool   `json:"fd,omitempty"`
}

// StreamReceiveResult is what OpStreamReceive returns.
type StreamReceiveResult struct {
	Received []stream.Received `json:"received"`
	Stats    stream.Stats      `json:"stats"`
}

// StreamAbortArgs are the arguments of OpStreamAbort.
type StreamAbortArgs struct {
	Dataset string `json:"vol"`
}

// openFifo opens the FIFO at path (which must be one) for reading or
// writing, giving up when ctx is done (the client hung up) or after a
// minute without the other end.
func openFifo(ctx context.Context, path string, write bool) (*os.File, error) {
	if !filepath.IsAbs(path) {
		return nil, Errorf("EINVAL", "fifo %q is not an absolute path", path)
	}
	fi, err := os.Lstat(path)
	if err != nil || fi.Mode()&os.ModeNamedPipe == 0 {
		return nil, Errorf("EINVAL", "%s is not a FIFO", path)
	}
	flag := os.O_RDONLY
	if write {
		flag = os.O_WRONLY
	}
	type res struct {
		f   *os.File
		err error
	}
	ch := make(chan res, 1)
	go func() {
		f, err := os.OpenFile(path, flag, 0)
		ch <- res{f, err}
	}()
	unblock := func() {
		// Open the other end ourselves so the blocked open returns.
		other := os.O_WRONLY | syscall.O_NONBLOCK
		if write {
			other = os.O_RDONLY | syscall.O_NONBLOCK
		}
		if f, err := os.OpenFile(path, other, 0); err == nil {
			f.Close()
		}
		if r := <-ch; r.f != nil {
			r.f.Close()
		}
	}
	select {
	case r := <-ch:
		return r.f, r.err
	case <-ctx.Done():
		unblock()
		return nil, fmt.Errorf("open %s: %w", path, context.Cause(ctx))
	case <-time.After(time.Minute):
		unblock()
		return nil, Errorf("EIO", "nobody opened the other end of %s", path)
	}
}

// streamFile opens the stream of a request: the descriptor the client
// passed (fd), or the FIFO at fifo. A hang-up of the client ends the
// stream as the FIFO's does (the client holds its other end): the next
// read or write fails, and one waiting on a passed pipe is interrupted
// (a deadline). done closes it.
func streamFile(p peer, fd bool, fifo string, write bool) (rw io.ReadWriter, done func(), err error) {
	if !fd {
		f, err := openFifo(p.ctx, fifo, write)
		if err != nil {
			return nil, nil, err
		}
		return f, func() { f.Close() }, nil
	}
	f, closeFile, err := p.passedFile("stream")
	if err != nil {
		return nil, nil, err
	}
	stop := context.AfterFunc(p.ctx, func() { _ = f.SetDeadline(time.Now()) })
	return &hangupFile{ctx: p.ctx, f: f}, func() { stop(); closeFile() }, nil
}

// hangupFile is a passed stream that fails once the client hung up,
// also where the deadline did not reach (a read that had returned).
type hangupFile struct {
	ctx context.Context
	f   *os.File
}

func (h *hangupFile) Read(b []byte) (int, error) {
	if err := context.Cause(h.ctx); err != nil {
		return 0, fmt.Errorf("read the stream: %w", err)
	}
	return h.f.Read(b)
}

func (h *hangupFile) Write(b []byte) (int, error) {
	if err := context.Cause(h.ctx); err != nil {
		return 0, fmt.Errorf("write the stream: %w", err)
	}
	return h.f.Write(b)
}

func (s *Server) streamSend(p peer, raw json.RawMessage) (any, error) {
	var a StreamSendArgs
	if err := decode(raw, &a); err != nil {
		return nil, err
	}
	if !a.FD {
		if err := need("fifo", a.Fifo); err != nil {
			return nil, err
		}
	}
	if a.Resume == "" {
		if err := need("vol", a.Dataset, "name", a.Snapshot); err != nil {
			return nil, err
		}
		if err := s.mayChange(p, a.Dataset); err != nil {
			return nil, err
		}
	} else if !s.ownerOrRoot(p.uid) {
		return nil, Errorf("EPERM", "only root and the pool's owner may send a resumed stream")
	}
	f, done, err := streamFile(p, a.FD, a.Fifo, true)
	if err != nil {
		return nil, err
	}
	defer done()
	req := &stream.SendRequest{Store: s.st, PoolID: s.pool.Config().ID, Dataset: a.Dataset,
		Snapshot: a.Snapshot, Base: a.Base, Chain: a.Chain}
	if a.Resume != "" {
		return stream.SendResume(req, a.Resume, f)
	}
	return stream.SendNamed(req, f)
}

func (s *Server) streamReceive(p peer, raw json.RawMessage) (any, error) {
	var a StreamReceiveArgs
	if err := decode(raw, &a); err != nil {
		return nil, err
	}
	if err := need("vol", a.Dataset); err != nil {
		return nil, err
	}
	if !a.FD {
		if err := need("fifo", a.Fifo); err != nil {
			return nil, err
		}
	}
	if !s.ownerOrRoot(p.uid) {
		return nil, Errorf("EPERM", "only root and the pool's owner may receive into it")
	}
	if snap.VolumeOf(a.Dataset) != a.Dataset {
		return nil, Errorf("EINVAL", "receive into %s: the target must be a volume, not a branch", a.Dataset)
	}
	f, done, err := streamFile(p, a.FD, a.Fifo, false)
	if err != nil {
		return nil, err
	}
	defer done()
	got, st, err := stream.Receive(&stream.Target{Store: s.st, Dir: s.dir, Dataset: a.Dataset, Force: a.Force}, f)
	if err != nil {
		return nil, err
	}
	return StreamReceiveResult{Received: got, Stats: st}, nil
}

func (s *Server) streamAbort(p peer, raw json.RawMessage) (any, error) {
	var a StreamAbortArgs
	if err := decode(raw, &a); err != nil {
		return nil, err
	}
	if err := need("vol", a.Dataset); err != nil {
		return nil, err
	}
	if !s.ownerOrRoot(p.uid) {
		return nil, Errorf("EPERM", "only root and the pool's owner may abort a receive")
	}
	mounted := func(vol string) bool { return s.volumeNotMounted(vol, "destroy") != nil }
	return struct{}{}, stream.Abort(s.st, s.dir, a.Dataset, mounted)
}
