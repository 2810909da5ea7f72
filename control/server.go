package control

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"

	"github.com/snapfs/snapfs/pool"
	"github.com/snapfs/snapfs/snap"
	"github.com/snapfs/snapfs/store"
)

// Server serves the control API of one open pool.
type Server struct {
	dir   string
	st    *store.Store
	pool  *pool.Pool
	snaps *snap.Manager

	// Mount serves dataset a.Vol at a.Mountpoint from this process; nil
	// makes the mount op fail with EOPNOTSUPP. It returns once the mount
	// answers.
	Mount func(a MountArgs) error
	// MountedAt returns where this process serves the dataset whose live
	// view has id viewID, if it does: branch.destroy refuses a branch
	// mounted on its own (EBUSY). nil means nothing is mounted.
	MountedAt func(viewID uint32) (point string, ok bool)
	// Allow reports whether a peer of uid may use the API. The default
	// allows root and the owner of the pool directory; tests replace it.
	Allow func(uid uint32) bool
	// Logf logs refused peers and failed writes; nil discards.
	Logf func(format string, args ...any)

	// closing is set once Close begins: requests cancelled by it say so.
	closing atomic.Bool

	// progressMu guards progress, the long operation running now.
	progressMu sync.Mutex
	progress   Progress

	mu    sync.Mutex
	ln    *net.UnixListener
	path  string
	conns map[net.Conn]struct{}
	wg    sync.WaitGroup
}

// NewServer returns the server of the pool in dir, opened as p and st.
// Call Listen, then Serve.
func NewServer(dir string, p *pool.Pool, st *store.Store) *Server {
	s := &Server{dir: dir, st: st, pool: p, snaps: snap.ManagerFor(st), conns: map[net.Conn]struct{}{}}
	s.Allow = s.ownerOrRoot
	return s
}

// ownerOrRoot allows root and the uid owning the pool directory.
func (s *Server) ownerOrRoot(uid uint32) bool {
	if uid == 0 {
		return true
	}
	fi, err := os.Stat(s.dir)
	if err != nil {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Uid == uid
}

// Listen creates the socket (mode 0600) at ListenPath(dir) and records
// its path for clients. Any socket already there is stale: the caller
// holds the pool lock, so no other daemon of this pool runs.
func (s *Server) Listen() error {
	p := ListenPath(s.dir)
	if err := os.Remove(p); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("control: remove stale socket: %w", err)
	}
	old := syscall.Umask(0o177)
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: p, Net: "unix"})
	syscall.Umask(old)
	if err != nil {
		return fmt.Errorf("control: listen: %w", err)
	}
	ln.SetUnlinkOnClose(false)
	if err := os.Chmod(p, 0o600); err != nil {
		ln.Close()
		return fmt.Errorf("control: %w", err)
	}
	if err := recordPath(s.dir, p); err != nil {
		ln.Close()
		os.Remove(p)
		return err
	}
	s.mu.Lock()
	s.ln, s.path = ln, p
	s.mu.Unlock()
	return nil
}

// Path is the socket's path, once Listen succeeded.
func (s *Server) Path() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.path
}

// Serve accepts connections until Close; each is served in its own
// goroutine. It returns nil after Close.
func (s *Server) Serve() error {
	s.mu.Lock()
	ln := s.ln
	s.mu.Unlock()
	if ln == nil {
		return errors.New("control: Serve before Listen")
	}
	for {
		c, err := ln.AcceptUnix()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			return fmt.Errorf("control: accept: %w", err)
		}
		s.mu.Lock()
		if s.ln == nil {
			s.mu.Unlock()
			c.Close()
			return nil
		}
		s.conns[c] = struct{}{}
		s.wg.Add(1)
		s.mu.Unlock()
		go s.serveConn(c)
	}
}

// Close stops listening, removes the socket and its recorded path, and
// waits for the requests in progress to finish (a request past its
// commit point completes).
func (s *Server) Close() error {
	s.closing.Store(true)
	s.mu.Lock()
	ln, p := s.ln, s.path
	s.ln = nil
	for c := range s.conns {
		c.(*net.UnixConn).CloseRead()
	}
	s.mu.Unlock()
	if ln == nil {
		return nil
	}
	err := ln.Close()
	os.Remove(p)
	if p != filepath.Join(s.dir, SocketName) {
		os.Remove(filepath.Join(s.dir, PathFile))
	}
	s.wg.Wait()
	return err
}

func (s *Server) logf(format string, args ...any) {
	if s.Logf != nil {
		s.Logf(format, args...)
	}
}

// peerUID returns the uid of the process at the other end of c.
func peerUID(c *net.UnixConn) (uint32, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, err
	}
	var cred *unix.Ucred
	var cerr error
	err = raw.Control(func(fd uintptr) {
		cred, cerr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	})
	if err == nil {
		err = cerr
	}
	if err != nil {
		return 0, err
	}
	return cred.Uid, nil
}

// serveConn answers the requests of one connection, one line each.
func (s *Server) serveConn(c *net.UnixConn) {
	defer func() {
		s.mu.Lock()
		delete(s.conns, c)
		s.mu.Unlock()
		c.Close()
		s.wg.Done()
	}()
	uid, err := peerUID(c)
	if err != nil {
		s.logf("control: peer credentials: %v", err)
		return
	}
	w := bufio.NewWriter(c)
	reply := func(r Response) bool {
		b, _ := json.Marshal(r)
		w.Write(append(b, '\n'))
		if err := w.Flush(); err != nil {
			s.logf("control: reply to uid %d: %v", uid, err)
			return false
		}
		return true
	}
	if !s.Allow(uid) {
		s.logf("control: refused uid %d", uid)
		reply(Response{Error: &ErrorBody{Code: "EPERM", Message: fmt.Sprintf(
			"permission denied: uid %d is neither root nor the owner of pool %s", uid, s.dir)}})
		return
	}
	rights := newRightsReader(c)
	r := bufio.NewReaderSize(rights, MaxRequest+1)
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			reply(Response{Error: &ErrorBody{Code: "EINVAL", Message: fmt.Sprintf(
				"request longer than %d bytes", MaxRequest)}})
			return
		}
		if err != nil && len(line) == 0 {
			return // EOF or closed
		}
		line = append([]byte(nil), line...) // the watch below may refill r's buffer
		ctx, cancel := context.WithCancelCause(context.Background())
		watched := s.watchHangup(r, cancel)
		resp := s.handle(peer{uid: uid, ctx: ctx, rights: rights}, line)
		// Descriptors the request did not take go before the reply:
		// after it, the client's next request (and its descriptors) may
		// arrive.
		rights.closeLeft()
		ok := reply(resp)
		cancel(nil)
		<-watched
		if !ok || err != nil {
			return
		}
	}
}

// watchHangup waits, while a request runs, for the client's next bytes:
// if the connection ends first (the client hung up, or Close shuts its
// read side), it cancels the request's context, so that a long operation
// (scrub) stops. The returned channel is closed once it is done with r,
// which the caller reads next only then. A client that sends its next
// request early cancels nothing.
func (s *Server) watchHangup(r *bufio.Reader, cancel context.CancelCauseFunc) <-chan struct{} {
	done := make(chan struct{})
	go func() {
		defer close(done)
		if _, err := r.Peek(1); err != nil {
			why := errors.New("the client hung up")
			if s.closing.Load() {
				why = errors.New("the daemon is stopping")
			}
			cancel(why)
		}
	}()
	return done
}

// peer is the client a request comes from.
type peer struct {
	uid uint32
	// ctx is done when the client hangs up or the server closes while
	// the request runs (watchHangup).
	ctx context.Context
	// rights holds the file descriptors sent with the request
	// (passedFile); nil in tests that call handlers directly.
	rights *rightsReader
}

// handle decodes one request line and runs its op.
func (s *Server) handle(p peer, line []byte) Response {
	var req Request
	if err := json.Unmarshal(line, &req); err != nil {
		return errResponse(Errorf("EINVAL", "malformed request: %v", err))
	}
	h, ok := handlers[req.Op]
	if !ok {
		return errResponse(Errorf("EINVAL", "unknown op %q", req.Op))
	}
	res, err := h(s, p, req.Args)
	if err != nil {
		return errResponse(err)
	}
	b, err := json.Marshal(res)
	if err != nil {
		return errResponse(err)
	}
	return Response{OK: b}
}

func errResponse(err error) Response {
	code, msg := Code(err), err.Error()
	return Response{Error: &ErrorBody{Code: code, Message: msg}}
}

// Start listens and serves in a goroutine; Close stops it. The daemon
// sets Mount and Logf on the returned server before clients use mount
// (they are read per request).
func Start(dir string, p *pool.Pool, st *store.Store, setup func(*Server)) (*Server, error) {
	s := NewServer(dir, p, st)
	if setup != nil {
		setup(s)
	}
	if err := s.Listen(); err != nil {
		return nil, err
	}
	go func() {
		if err := s.Serve(); err != nil {
			s.logf("%v", err)
		}
	}()
	return s, nil
}
