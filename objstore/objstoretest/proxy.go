package objstoretest

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Fault is what the proxy does to one request instead of, or on its way
// to, forwarding it.
type Fault int

const (
	// Pass forwards the request and its answer untouched.
	Pass Fault = iota
	// SlowDown answers 503 with S3's SlowDown error, as a throttling
	// service does, without forwarding.
	SlowDown
	// InternalError answers 500 InternalError without forwarding.
	InternalError
	// Reset closes the client's connection with a TCP reset before
	// forwarding (the request is lost).
	Reset
	// ResetMidBody forwards the request, then sends the client the
	// answer's headers and half its body and resets the connection.
	ResetMidBody
	// Forbidden answers 403 AccessDenied without forwarding: an error
	// that will not go away.
	Forbidden
	// ShortBody forwards the request and answers with the first half of
	// the server's body under a Content-Length that says so: a service
	// returning an object of the wrong length.
	ShortBody
)

func (f Fault) String() string {
	return [...]string{"pass", "slowdown", "internal-error", "reset", "reset-mid-body", "forbidden", "short-body"}[f]
}

// Proxy is an HTTP/1.1 proxy of our own between an S3 client and a
// server, on 127.0.0.1 with a free port. Each request is matched against
// the queued faults (FailNext) and delayed (SetDelay) before it is
// forwarded on a connection of its own to the server. Tests point the
// client at URL().
type Proxy struct {
	upstream string // host:port of the server
	ln       net.Listener

	// mu guards the fields below.
	mu       sync.Mutex
	queue    []queued
	delay    time.Duration
	requests int
	faults   map[Fault]int
	conns    map[net.Conn]bool
	closed   bool
}

type queued struct {
	fault  Fault
	method string // "" matches any
}

// NewProxy starts a proxy to upstream (http://host:port or host:port),
// closed when the test ends.
func NewProxy(t testing.TB, upstream string) *Proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxy: %v", err)
	}
	p := &Proxy{
		upstream: strings.TrimPrefix(strings.TrimPrefix(upstream, "http://"), "/"),
		ln:       ln, faults: map[Fault]int{}, conns: map[net.Conn]bool{},
	}
	go p.serve()
	t.Cleanup(p.Close)
	return p
}

// URL is the proxy's base URL, to use as the client's endpoint.
func (p *Proxy) URL() string { return "http://" + p.ln.Addr().String() }

// FailNext queues fault for the next n requests (of method, when not
// empty: "PUT", "GET", "HEAD", "DELETE").
func (p *Proxy) FailNext(n int, fault Fault, method string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for i := 0; i < n; i++ {
		p.queue = append(p.queue, queued{fault, method})
	}
}

// ClearFaults drops the queued faults not applied yet.
func (p *Proxy) ClearFaults() {
	p.mu.Lock()
	p.queue = nil
	p.mu.Unlock()
}

// SetDelay holds every request for d before forwarding it (0: none).
func (p *Proxy) SetDelay(d time.Duration) {
	p.mu.Lock()
	p.delay = d
	p.mu.Unlock()
}

// Requests returns how many requests reached the proxy.
func (p *Proxy) Requests() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.requests
}

// Injected returns how many times fault was applied.
func (p *Proxy) Injected(fault Fault) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.faults[fault]
}

// Pending returns how many queued faults have not been applied yet.
func (p *Proxy) Pending() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.queue)
}

// Close stops the proxy and closes every connection it holds.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.ln.Close()
}

func (p *Proxy) track(c net.Conn, on bool) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if on && p.closed {
		return false
	}
	if on {
		p.conns[c] = true
	} else {
		delete(p.conns, c)
	}
	return true
}

func (p *Proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if !p.track(c, true) {
			c.Close()
			return
		}
		go p.handle(c)
	}
}

// next takes the fault for a request and the delay to apply.
func (p *Proxy) next(method string) (Fault, time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests++
	for i, q := range p.queue {
		if q.method == "" || q.method == method {
			p.queue = append(p.queue[:i], p.queue[i+1:]...)
			p.faults[q.fault]++
			return q.fault, p.delay
		}
	}
	return Pass, p.delay
}

// handle serves one client connection, request by request (keep-alive).
func (p *Proxy) handle(c net.Conn) {
	defer p.track(c, false)
	defer c.Close()
	br := bufio.NewReader(c)
	for {
		req, err := http.ReadRequest(br)
		if err != nil {
			return
		}
		fault, delay := p.next(req.Method)
		if delay > 0 {
			time.Sleep(delay)
		}
		switch fault {
		case Reset:
			reset(c)
			return
		case SlowDown, InternalError, Forbidden:
			io.Copy(io.Discard, req.Body)
			if writeError(c, fault, req.Method == http.MethodHead) != nil {
				return
			}
			continue
		}
		if !p.forward(c, req, fault) {
			return
		}
	}
}

// forward sends req to the server on a connection of its own and copies
// the answer back; false means the client connection is done.
func (p *Proxy) forward(c net.Conn, req *http.Request, fault Fault) bool {
	up, err := net.DialTimeout("tcp", p.upstream, 5*time.Second)
	if err != nil {
		reset(c)
		return false
	}
	defer up.Close()
	if strings.EqualFold(req.Header.Get("Expect"), "100-continue") {
		// Answer the client's wait ourselves: the request is forwarded
		// whole, body included, without the header.
		req.Header.Del("Expect")
		if _, err := io.WriteString(c, "HTTP/1.1 100 Continue\r\n\r\n"); err != nil {
			return false
		}
	}
	if err := req.Write(up); err != nil {
		reset(c)
		return false
	}
	ubr := bufio.NewReader(up)
	resp, err := http.ReadResponse(ubr, req)
	for err == nil && resp.StatusCode == http.StatusContinue {
		resp, err = http.ReadResponse(ubr, req)
	}
	if err != nil {
		reset(c)
		return false
	}
	defer resp.Body.Close()
	if fault == ShortBody && resp.ContentLength > 0 {
		resp.ContentLength /= 2
		resp.Body = io.NopCloser(io.LimitReader(resp.Body, resp.ContentLength))
		resp.Header.Del("Content-Length")
		// Content-Range stays as the server said: the length is what lies.
	}
	if fault == ResetMidBody {
		// Headers as sent, then half the body, then a reset.
		n := resp.ContentLength
		resp.Body = io.NopCloser(io.LimitReader(resp.Body, n/2))
		bw := bufio.NewWriter(c)
		fmt.Fprintf(bw, "HTTP/1.1 %s\r\n", resp.Status)
		resp.Header.Set("Content-Length", strconv.FormatInt(n, 10))
		resp.Header.Write(bw)
		bw.WriteString("\r\n")
		io.Copy(bw, resp.Body)
		bw.Flush()
		reset(c)
		return false
	}
	if err := resp.Write(c); err != nil {
		return false
	}
	return !resp.Close && !req.Close
}

// reset closes c with a TCP RST rather than a FIN.
func reset(c net.Conn) {
	if tc, ok := c.(*net.TCPConn); ok {
		tc.SetLinger(0)
	}
	c.Close()
}

func writeError(c net.Conn, f Fault, head bool) error {
	status, code, msg := 503, "SlowDown", "Please reduce your request rate."
	switch f {
	case InternalError:
		status, code, msg = 500, "InternalError", "We encountered an internal error. Please try again."
	case Forbidden:
		status, code, msg = 403, "AccessDenied", "Access Denied"
	}
	body := fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>`+"\n"+
		`<Error><Code>%s</Code><Message>%s</Message><RequestId>proxy</RequestId></Error>`, code, msg)
	n := len(body)
	if head {
		body = "" // a HEAD answer has headers only
	}
	_, err := fmt.Fprintf(c, "HTTP/1.1 %d %s\r\nContent-Type: application/xml\r\nContent-Length: %d\r\n\r\n%s",
		status, http.StatusText(status), n, body)
	return err
}
