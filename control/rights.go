package control

import (
	"fmt"
	"io"
	"net"
	"os"
	"sync"

	"golang.org/x/sys/unix"
)

// Streams by descriptor. A client may send, with the line of a
// stream.send or stream.receive request, the file descriptor of the
// stream itself (SCM_RIGHTS over the control socket, args "fd": true):
// its stdout or stdin when it is a pipe or socket, typically one end of
// the pipe between `snapfs send` and `snapfs receive`. The daemon then writes or reads that pipe
// directly, and the bytes are copied once between the two processes that
// have the data (the sending daemon and the receiver) instead of three
// times (into a FIFO, through the client, into the next pipe).

// rightsReader reads a control connection and keeps the file
// descriptors that arrive with its bytes, for the request they came with.
type rightsReader struct {
	c   *net.UnixConn
	oob []byte

	mu  sync.Mutex // guards fds: the hang-up watch reads concurrently
	fds []int
}

func newRightsReader(c *net.UnixConn) *rightsReader {
	return &rightsReader{c: c, oob: make([]byte, unix.CmsgSpace(4*4))}
}

// Read reads bytes like the connection's Read and collects any
// descriptors sent with them. It peeks first (recvmsg with MSG_PEEK,
// which gives copies of the descriptors and stops where they begin),
// then reads the peeked bytes with the connection's own Read: that read
// is what the race detector sees as the synchronization with the
// client's write (a recvmsg is not annotated, a read is), and the kernel
// drops the originals of the descriptors it already gave.
func (r *rightsReader) Read(b []byte) (int, error) {
	rc, err := r.c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var n, oobn int
	var perr error
	err = rc.Read(func(fd uintptr) bool {
		n, oobn, _, _, perr = unix.Recvmsg(int(fd), b, r.oob, unix.MSG_PEEK|unix.MSG_CMSG_CLOEXEC)
		return perr != unix.EAGAIN
	})
	switch {
	case err != nil:
		return 0, err
	case perr != nil:
		return 0, perr
	case n == 0 && len(b) > 0:
		return 0, io.EOF
	}
	if oobn > 0 {
		r.collect(r.oob[:oobn])
	}
	return r.c.Read(b[:n])
}

func (r *rightsReader) collect(oob []byte) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range msgs {
		if fds, err := unix.ParseUnixRights(&m); err == nil {
			r.fds = append(r.fds, fds...)
		}
	}
}

// take returns the descriptors received so far and forgets them.
func (r *rightsReader) take() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	fds := r.fds
	r.fds = nil
	return fds
}

// closeLeft closes descriptors no request took.
func (r *rightsReader) closeLeft() {
	for _, fd := range r.take() {
		unix.Close(fd)
	}
}

// passedFile returns the one file descriptor the client sent with the
// current request, a pipe or socket, as a file in non-blocking mode, so
// that a hang-up of the client can interrupt a read or write waiting on
// it (a deadline). done puts the
// descriptor back in blocking mode (the client's process shares it) and
// closes the daemon's copy.
func (p peer) passedFile(name string) (f *os.File, done func(), err error) {
	var fds []int
	if p.rights != nil {
		fds = p.rights.take()
	}
	if len(fds) != 1 {
		for _, fd := range fds {
			unix.Close(fd)
		}
		return nil, nil, Errorf("EINVAL", "the request says it passes the stream's file descriptor, and %d came with it", len(fds))
	}
	fd := fds[0]
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, nil, fmt.Errorf("passed stream: %w", err)
	}
	// Only pipes and sockets: a regular file may be on a mount this
	// daemon serves, and its own read or write of it would wait on its
	// own FUSE requests.
	if m := st.Mode & unix.S_IFMT; m != unix.S_IFIFO && m != unix.S_IFSOCK {
		unix.Close(fd)
		return nil, nil, Errorf("EINVAL", "the passed stream is not a pipe or socket")
	}
	_ = unix.SetNonblock(fd, true)
	f = os.NewFile(uintptr(fd), name)
	done = func() {
		if rc, err := f.SyscallConn(); err == nil {
			_ = rc.Control(func(fd uintptr) { _ = unix.SetNonblock(int(fd), false) })
		}
		f.Close()
	}
	return f, done, nil
}
