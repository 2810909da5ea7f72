// Package seaweed runs a SeaweedFS server, the S3-compatible object store
// that snapfs's object-store tests and benchmarks use, on 127.0.0.1 only.
//
// One `weed server` process holds a master, a volume server, a filer and
// the S3 gateway, each on a port chosen free (gRPC ports too), with its
// data in a directory the caller gives. Stop and Start take it down and
// bring it back on the same ports and data, which is how fault tests
// model an object store that goes away and returns.
//
// The weed binary is not part of snapfs: scripts/build-weed.sh builds it
// once per machine from the tools module in tools/seaweedfs into a cache
// directory (`make weed`); Binary finds it there, or in $SNAPFS_WEED.
// The test-only wrapper is objstore/objstoretest.
package seaweed

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Identity is an S3 identity configured on the server. With none
// configured, SeaweedFS accepts any credentials (and none); with some,
// only these, each allowed Actions ("Admin", "Read", "Write", "List",
// "Tagging"; "Read:BUCKET" limits one to a bucket).
type Identity struct {
	Name      string
	AccessKey string
	SecretKey string
	Actions   []string
}

// Options configures Start.
type Options struct {
	// Dir holds the server's data and log (weed.log); it must exist.
	Dir string
	// Identities, when not empty, turns authentication on.
	Identities []Identity
	// DomainName, when set, makes the gateway serve virtual-host-style
	// requests to BUCKET.DomainName as well as path-style ones.
	DomainName string
	// Ready bounds the wait for the server to store objects (default
	// 120 s: it starts in seconds, longer on a loaded machine).
	Ready time.Duration
}

// Server is a running (or stopped) SeaweedFS server.
type Server struct {
	// Endpoint is the S3 gateway's base URL: http://127.0.0.1:PORT.
	Endpoint string
	// Log is the path of the server's output, appended to by each Start.
	Log string

	bin    string
	dir    string
	args   []string
	ports  []int
	master int // master HTTP port (readiness: /dir/assign)
	filer  int // filer HTTP port (readiness: GET /)
	ready  time.Duration

	// mu guards cmd and done: the running process, or nil when stopped.
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

// Binary returns the path of the weed binary: $SNAPFS_WEED, or the one
// scripts/build-weed.sh has cached. It never builds one.
func Binary() (string, error) {
	if p := os.Getenv("SNAPFS_WEED"); p != "" {
		if _, err := exec.LookPath(p); err != nil {
			return "", fmt.Errorf("SNAPFS_WEED=%s: %w", p, err)
		}
		return p, nil
	}
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", errors.New("cannot find the repository (runtime.Caller)")
	}
	root := filepath.Join(filepath.Dir(file), "..", "..")
	out, err := exec.Command("bash", filepath.Join(root, "scripts", "build-weed.sh"), "--print-path").Output()
	if err != nil {
		return "", fmt.Errorf("scripts/build-weed.sh --print-path: %w", err)
	}
	p := strings.TrimSpace(string(out))
	if _, err := os.Stat(p); err != nil {
		return "", fmt.Errorf("weed is not built (%s missing; make weed builds it once per machine)", p)
	}
	return p, nil
}

// New prepares a server (binary, ports, arguments) without starting it.
func New(opt Options) (*Server, error) {
	bin, err := Binary()
	if err != nil {
		return nil, err
	}
	ports, err := freePorts(8)
	if err != nil {
		return nil, err
	}
	s := &Server{
		bin: bin, dir: opt.Dir, Log: filepath.Join(opt.Dir, "weed.log"),
		master: ports[0], filer: ports[2], ready: opt.Ready,
		Endpoint: fmt.Sprintf("http://127.0.0.1:%d", ports[3]),
	}
	if s.ready <= 0 {
		s.ready = 120 * time.Second
	}
	data := filepath.Join(opt.Dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, err
	}
	s.args = []string{"server",
		"-dir=" + data, "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		"-master.port=" + strconv.Itoa(ports[0]), "-master.port.grpc=" + strconv.Itoa(ports[4]),
		"-volume.port=" + strconv.Itoa(ports[1]), "-volume.port.grpc=" + strconv.Itoa(ports[5]),
		"-filer.port=" + strconv.Itoa(ports[2]), "-filer.port.grpc=" + strconv.Itoa(ports[6]),
		"-s3", "-s3.port=" + strconv.Itoa(ports[3]), "-s3.port.grpc=" + strconv.Itoa(ports[7]),
		// The gateway's extra servers default to fixed ports that two
		// servers on one machine would share: off.
		"-s3.port.iceberg=0", "-s3.port.lance=0",
		// Each bucket is a collection that grows volumes of its own
		// (several at once): small volumes, and as many as the disk's
		// free space allows (volume.max=0), so that tests making many
		// buckets do not run out ("no writable volumes"). Volumes are
		// not preallocated, so an idle one costs little.
		"-master.volumeSizeLimitMB=64", "-volume.max=0",
	}
	// The local sockets default to /tmp/seaweedfs-*-PORT.sock; those that
	// can be moved go in the data directory, the others are removed at
	// Stop (removeSockets).
	if len(opt.Dir) < 90 { // a socket's path has at most 107 bytes
		s.args = append(s.args, "-filer.localSocket="+filepath.Join(opt.Dir, "filer.sock"), "-s3.localSocket="+filepath.Join(opt.Dir, "s3.sock"))
	}
	s.ports = ports
	if len(opt.Identities) > 0 {
		cfg := filepath.Join(opt.Dir, "s3.json")
		if err := writeS3Config(cfg, opt.Identities); err != nil {
			return nil, err
		}
		s.args = append(s.args, "-s3.config="+cfg)
	}
	if opt.DomainName != "" {
		s.args = append(s.args, "-s3.domainName="+opt.DomainName)
	}
	return s, nil
}

// Start runs the server (again, after Stop) and waits until it stores
// objects: the S3 gateway answers, the master assigns file ids and the
// filer answers.
func (s *Server) Start() error {
	s.mu.Lock()
	if s.cmd != nil {
		s.mu.Unlock()
		return errors.New("seaweed: Start while running")
	}
	logf, err := os.OpenFile(s.Log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		s.mu.Unlock()
		return err
	}
	cmd := exec.Command(s.bin, s.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = s.dir
	// Its own process group, so Stop ends every process it started; and
	// killed with us if we die first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logf.Close()
		s.mu.Unlock()
		return fmt.Errorf("seaweed: %w", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	s.cmd, s.done = cmd, done
	s.mu.Unlock()

	if err := s.waitReady(done); err != nil {
		s.Stop()
		return fmt.Errorf("seaweed did not become ready: %w\n%s", err, s.LogTail(4000))
	}
	return nil
}

// Stop ends the server (SIGTERM, then SIGKILL after 10 s) and waits for
// it; the data directory and ports stay for Start. Stopping a stopped
// server does nothing.
func (s *Server) Stop() { s.stop(syscall.SIGTERM) }

// Kill ends the server with SIGKILL at once, like a crash.
func (s *Server) Kill() { s.stop(syscall.SIGKILL) }

func (s *Server) stop(sig syscall.Signal) {
	s.mu.Lock()
	cmd, done := s.cmd, s.done
	s.cmd, s.done = nil, nil
	s.mu.Unlock()
	if cmd == nil {
		return
	}
	syscall.Kill(-cmd.Process.Pid, sig)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	// Any child left in the group (none expected) goes too.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	s.removeSockets()
}

// removeSockets removes the unix sockets weed makes in /tmp under names
// with this server's ports (/tmp/seaweedfs-master-grpc-PORT.sock, ...),
// which it leaves behind when it stops. Once this server has exited its
// ports are free, and another server (a test running beside this one, in
// this process or another) may already have taken one and made its socket
// under the same name: a socket that accepts a connection is live and
// stays.
func (s *Server) removeSockets() {
	for _, p := range s.ports {
		matches, _ := filepath.Glob(fmt.Sprintf("/tmp/seaweedfs-*-%d.sock", p))
		for _, m := range matches {
			if c, err := net.DialTimeout("unix", m, time.Second); err == nil {
				c.Close()
				continue
			}
			os.Remove(m)
		}
	}
}

// LogTail returns the last n bytes of the server's log.
func (s *Server) LogTail(n int) string {
	b, _ := os.ReadFile(s.Log)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func (s *Server) waitReady(done chan struct{}) error {
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(s.ready)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return errors.New("weed exited")
		case <-time.After(200 * time.Millisecond):
		}
		if last = s.probe(client); last == nil {
			return nil
		}
	}
	return fmt.Errorf("not ready after %v: %w", s.ready, last)
}

// probe checks that the S3 gateway answers HTTP, that the master can
// place a write on a volume server, and that the filer answers.
func (s *Server) probe(client *http.Client) error {
	resp, err := client.Get(s.Endpoint + "/")
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	resp, err = client.Get(fmt.Sprintf("http://127.0.0.1:%d/dir/assign", s.master))
	if err != nil {
		return err
	}
	var a struct {
		Fid   string `json:"fid"`
		Error string `json:"error"`
	}
	err = json.NewDecoder(resp.Body).Decode(&a)
	resp.Body.Close()
	if err != nil {
		return fmt.Errorf("master /dir/assign: %w", err)
	}
	if a.Fid == "" {
		return fmt.Errorf("master /dir/assign: %s", a.Error)
	}
	resp, err = client.Get(fmt.Sprintf("http://127.0.0.1:%d/", s.filer))
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode >= 500 {
		return fmt.Errorf("filer: %s", resp.Status)
	}
	return nil
}

func writeS3Config(path string, ids []Identity) error {
	type cred struct {
		AccessKey string `json:"accessKey"`
		SecretKey string `json:"secretKey"`
	}
	type ident struct {
		Name        string   `json:"name"`
		Credentials []cred   `json:"credentials"`
		Actions     []string `json:"actions"`
	}
	var cfg struct {
		Identities []ident `json:"identities"`
	}
	for _, id := range ids {
		cfg.Identities = append(cfg.Identities, ident{id.Name, []cred{{id.AccessKey, id.SecretKey}}, id.Actions})
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetIndent("", "  ")
	if err := enc.Encode(cfg); err != nil {
		return err
	}
	return os.WriteFile(path, buf.Bytes(), 0o600)
}

// freePorts returns n distinct TCP ports free on 127.0.0.1 at the time
// of the call (held open together while they are chosen).
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for len(ports) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}
