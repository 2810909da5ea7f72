// Package client is the Go API of snapfs for other programs: it takes,
// lists, renames and destroys snapshots, creates branches and volumes, and
// reads pool status, by talking to the daemon that has the pool open.
//
// Dial the pool directory, call methods, Close:
//
//	c, err := client.Dial("/srv/pool")
//	if errors.Is(err, client.ErrNoDaemon) {
//		// No daemon has the pool open: mount a volume first, or use
//		// the snapfs CLI, which opens the pool directly.
//	}
//	defer c.Close()
//	s, err := c.CreateSnapshot("home", "nightly")
//	switch {
//	case errors.Is(err, client.ErrExists):
//		// the name is taken
//	case err != nil:
//		// other failure; err is a *client.Error with Code and Message
//	}
//	fmt.Println(s.Name, s.Created, s.Pause)
//
// Every error the daemon returns is a *Error whose Code is an errno name
// ("EEXIST", "ENOENT", ...); compare it with errors.Is against ErrExists,
// ErrNotFound, ErrPermission and the other sentinels instead of parsing
// messages. Only root and the owner of the pool directory may connect.
//
// A Client is safe for concurrent use; calls are serialized on its one
// connection. A call runs to completion in the daemon even if the caller
// gives up: a snapshot whose commit started is taken.
package client

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/snapfs/snapfs/control"
)

// Error is a failed call: Code is an errno name, Message one line.
type Error struct {
	Code    string
	Message string
}

func (e *Error) Error() string {
	if e.Message == "" {
		return e.Code
	}
	return e.Message
}

// Is matches any *Error with the same Code, so errors.Is(err, ErrExists)
// holds for every EEXIST.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Code == e.Code
}

// Sentinels to compare errors with, through errors.Is.
var (
	ErrExists       = &Error{Code: "EEXIST", Message: "already exists"}
	ErrNotFound     = &Error{Code: "ENOENT", Message: "not found"}
	ErrInvalid      = &Error{Code: "EINVAL", Message: "invalid argument"}
	ErrPermission   = &Error{Code: "EPERM", Message: "permission denied"}
	ErrBusy         = &Error{Code: "EBUSY", Message: "busy (the snapshot has branches)"}
	ErrNotEmpty     = &Error{Code: "ENOTEMPTY", Message: "is a branch"}
	ErrNoSpace      = &Error{Code: "ENOSPC", Message: "no space left in pool"}
	ErrQuota        = &Error{Code: "EDQUOT", Message: "volume quota exceeded"}
	ErrNameTooLong  = &Error{Code: "ENAMETOOLONG", Message: "name too long"}
	ErrNotSupported = &Error{Code: "EOPNOTSUPP", Message: "not supported"}
	ErrIO           = &Error{Code: "EIO", Message: "I/O error"}
	// ErrNoDaemon is returned by Dial when no daemon serves the pool:
	// there is no socket, or it is stale (left by a killed daemon).
	ErrNoDaemon = &Error{Code: "ENODAEMON", Message: "no daemon serves the pool"}
)

// Client is a connection to the daemon of one pool.
type Client struct {
	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
}

// Dial connects to the daemon serving the pool in dir. When none does it
// returns an error matching ErrNoDaemon.
func Dial(dir string) (*Client, error) {
	path := control.SocketPath(dir)
	conn, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, os.ErrNotExist) {
			return nil, &Error{Code: ErrNoDaemon.Code, Message: fmt.Sprintf("no daemon serves pool %s", dir)}
		}
		if errors.Is(err, syscall.EACCES) {
			return nil, &Error{Code: ErrPermission.Code, Message: fmt.Sprintf("permission denied: socket %s of pool %s", path, dir)}
		}
		return nil, fmt.Errorf("client: dial %s: %w", path, err)
	}
	return &Client{conn: conn, r: bufio.NewReader(conn)}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

// call sends op with args and decodes the result into res (if not nil).
func (c *Client) call(op string, args, res any) error {
	return c.callWith(op, args, res, nil)
}

// callWith is call that sends the file descriptor of f (if not nil) with
// the request line (SCM_RIGHTS): the daemon reads or writes it directly.
func (c *Client) callWith(op string, args, res any, f *os.File) error {
	raw, err := json.Marshal(args)
	if err != nil {
		return err
	}
	line, err := json.Marshal(control.Request{Op: op, Args: raw})
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if err := c.send(append(line, '\n'), f); err != nil {
		return c.readRefusal(fmt.Errorf("client: %s: %w", op, err))
	}
	reply, err := c.r.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("client: %s: %w", op, err)
	}
	var resp control.Response
	if err := json.Unmarshal(reply, &resp); err != nil {
		return fmt.Errorf("client: %s: bad response: %w", op, err)
	}
	if resp.Error != nil {
		return &Error{Code: resp.Error.Code, Message: resp.Error.Message}
	}
	if res == nil {
		return nil
	}
	if err := json.Unmarshal(resp.OK, res); err != nil {
		return fmt.Errorf("client: %s: bad result: %w", op, err)
	}
	return nil
}

// send writes one request line, with f's descriptor if f is not nil.
func (c *Client) send(line []byte, f *os.File) error {
	if f == nil {
		_, err := c.conn.Write(line)
		return err
	}
	uc, ok := c.conn.(*net.UnixConn)
	if !ok {
		return errors.New("the connection cannot pass a file descriptor")
	}
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var n int
	var werr error
	// Control keeps the descriptor open (and its mode as it is) while
	// it is sent.
	if err := rc.Control(func(fd uintptr) {
		n, _, werr = uc.WriteMsgUnix(line, syscall.UnixRights(int(fd)), nil)
	}); err != nil {
		return err
	}
	if werr == nil && n < len(line) {
		_, werr = c.conn.Write(line[n:])
	}
	return werr
}

// readRefusal returns the error line a server that refused us wrote
// before closing, if any, else err.
func (c *Client) readRefusal(err error) error {
	c.conn.SetReadDeadline(time.Now().Add(time.Second))
	line, rerr := c.r.ReadBytes('\n')
	if rerr != nil && len(line) == 0 {
		return err
	}
	var resp control.Response
	if json.Unmarshal(line, &resp) == nil && resp.Error != nil {
		return &Error{Code: resp.Error.Code, Message: resp.Error.Message}
	}
	return err
}
