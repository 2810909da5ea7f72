package client

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/snapfs/snapfs/control"
	"github.com/snapfs/snapfs/stream"
)

// StreamError is a daemon's refusal of a send or receive: it matches
// both *Error (its code and message) and the stream package's error
// (errors.Is(err, stream.ErrCorrupt) and the others), as a local call
// would.
type StreamError struct {
	Daemon *Error
	Kind   error
}

func (e *StreamError) Error() string { return e.Daemon.Error() }

// Unwrap gives the protocol error and the stream error.
func (e *StreamError) Unwrap() []error { return []error{e.Daemon, e.Kind} }

// streamErr types a daemon's error by its code.
func streamErr(err error) error {
	var ce *Error
	if errors.As(err, &ce) {
		if k := stream.ErrorOfCode(ce.Code); k != nil {
			return &StreamError{Daemon: ce, Kind: k}
		}
	}
	return err
}

// fifo makes a FIFO in a private temporary directory; clean removes both.
func fifo() (path string, clean func(), err error) {
	dir, err := os.MkdirTemp("", "snapfs-stream-")
	if err != nil {
		return "", nil, fmt.Errorf("client: %w", err)
	}
	path = filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("client: mkfifo: %w", err)
	}
	return path, func() { os.RemoveAll(dir) }, nil
}

// SendArgs say what Send sends: Dataset@Snapshot, whole or from Base
// (Chain: every snapshot after Base up to Snapshot); or, with Resume (a
// token), the rest of an interrupted stream.
type SendArgs struct {
	Dataset, Snapshot, Base string
	Chain                   bool
	Resume                  string
}

// passable returns x as a file whose descriptor the daemon reads or
// writes directly, a pipe or a socket, or nil. A regular file is copied
// through a FIFO: it may be on a mount that the daemon itself serves,
// whose requests its own write or read would then wait on.
func passable(x any) *os.File {
	f, ok := x.(*os.File)
	if !ok || f == nil {
		return nil
	}
	fi, err := f.Stat()
	if err != nil {
		return nil
	}
	if fi.Mode()&(os.ModeNamedPipe|os.ModeSocket) != 0 {
		return f
	}
	return nil
}

// olderDaemon reports whether err is the refusal of a daemon that takes
// streams through a FIFO only: it knows no argument "fd" (or wants
// "fifo"), and refused before it read or wrote anything.
func olderDaemon(err error) bool {
	var ce *Error
	return errors.As(err, &ce) && ce.Code == ErrInvalid.Code &&
		(strings.Contains(ce.Message, `unknown field "fd"`) || strings.Contains(ce.Message, `"fifo"`))
}

// Send has the daemon write a replication stream (docs/stream.md) to w.
// When w is an *os.File on a pipe or socket (a program's stdout in
// `snapfs send | ...`), the daemon writes into it directly;
// otherwise the bytes come through a FIFO and this process copies them.
func (c *Client) Send(a SendArgs, w io.Writer) (stream.Stats, error) {
	args := control.StreamSendArgs{Dataset: a.Dataset, Snapshot: a.Snapshot,
		Base: a.Base, Chain: a.Chain, Resume: a.Resume}
	if f := passable(w); f != nil {
		var st stream.Stats
		args.FD = true
		err := c.callWith(control.OpStreamSend, args, &st, f)
		if !olderDaemon(err) {
			return st, streamErr(err)
		}
		args.FD = false
	}
	path, clean, err := fifo()
	if err != nil {
		return stream.Stats{}, err
	}
	defer clean()
	copied := make(chan error, 1)
	go func() {
		f, err := os.Open(path) // blocks until the daemon opens its end
		if err != nil {
			copied <- err
			return
		}
		defer f.Close()
		_, err = io.Copy(w, f)
		copied <- err
	}()
	var st stream.Stats
	args.Fifo = path
	err = c.call(control.OpStreamSend, args, &st)
	if err != nil {
		// The daemon may never have opened the FIFO: release the reader.
		if f, oerr := os.OpenFile(path, os.O_WRONLY|syscall.O_NONBLOCK, 0); oerr == nil {
			f.Close()
		}
		<-copied
		return st, streamErr(err)
	}
	if err := <-copied; err != nil {
		return st, fmt.Errorf("client: send: %w", err)
	}
	return st, nil
}

// ReceiveArgs say where Receive goes: volume Dataset; Force rolls it back
// to its newest snapshot first if it changed since.
type ReceiveArgs struct {
	Dataset string
	Force   bool
}

// Receive has the daemon read replication streams from r into a volume.
// When r is an *os.File on a pipe or socket (a program's stdin in `... |
// snapfs receive`), the daemon reads it directly;
// otherwise this process copies the bytes into a FIFO the daemon reads.
func (c *Client) Receive(a ReceiveArgs, r io.Reader) (control.StreamReceiveResult, error) {
	var res control.StreamReceiveResult
	if f := passable(r); f != nil {
		err := c.callWith(control.OpStreamReceive, control.StreamReceiveArgs{Dataset: a.Dataset, Force: a.Force, FD: true}, &res, f)
		if !olderDaemon(err) {
			return res, streamErr(err)
		}
	}
	path, clean, err := fifo()
	if err != nil {
		return res, err
	}
	defer clean()
	copied := make(chan error, 1)
	go func() {
		f, err := os.OpenFile(path, os.O_WRONLY, 0) // blocks until the daemon opens its end
		if err != nil {
			copied <- err
			return
		}
		_, err = io.Copy(f, r)
		f.Close()
		copied <- err
	}()
	err = c.call(control.OpStreamReceive, control.StreamReceiveArgs{Dataset: a.Dataset, Force: a.Force, Fifo: path}, &res)
	// The daemon closed its end (done or refused): release the writer if
	// it still waits for the daemon to open it; with no reader left, its
	// writes fail (EPIPE) and it returns. The writer may reach its open
	// only after one open and close of a read end (a refused receive
	// returns at once), and would then wait for a reader for ever: so
	// open and close one until the writer is done.
	var cerr error
	for done := false; !done; {
		if f, oerr := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0); oerr == nil {
			f.Close()
		}
		select {
		case cerr = <-copied:
			done = true
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err != nil {
		return res, streamErr(err)
	}
	if cerr != nil && !errors.Is(cerr, syscall.EPIPE) {
		return res, fmt.Errorf("client: receive: %w", cerr)
	}
	return res, nil
}

// AbortReceive has the daemon drop a volume's partial receive.
func (c *Client) AbortReceive(dataset string) error {
	return streamErr(c.call(control.OpStreamAbort, control.StreamAbortArgs{Dataset: dataset}, nil))
}
