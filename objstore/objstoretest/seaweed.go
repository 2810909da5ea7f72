package objstoretest

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
	"testing"
	"time"
)

// Seaweed is a SeaweedFS server (master, volume server, filer and S3
// gateway in one `weed server` process) listening on 127.0.0.1 only, on
// ports chosen free, with its data in a temporary directory. Stop and
// Start take it down and bring it back on the same ports and data, for
// fault tests; it is stopped when the test ends.
type Seaweed struct {
	// Endpoint is the S3 gateway's base URL: http://127.0.0.1:PORT.
	Endpoint string

	t       testing.TB
	bin     string
	dir     string
	log     string
	args    []string
	master  int // master HTTP port (readiness: /dir/assign)
	filer   int // filer HTTP port (readiness: GET /)
	s3      int
	started time.Duration // how long the last Start took, for messages

	// mu guards cmd and done: the running process, or nil when stopped.
	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
}

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

// SeaweedOptions configures NewSeaweed.
type SeaweedOptions struct {
	// Identities, when not empty, turns authentication on.
	Identities []Identity
	// DomainName, when set, makes the gateway serve virtual-host-style
	// requests to BUCKET.DomainName as well as path-style ones.
	DomainName string
}

// StartSeaweed starts a SeaweedFS server for the test and returns its S3
// endpoint; see NewSeaweed.
func StartSeaweed(t testing.TB) string {
	return NewSeaweed(t, SeaweedOptions{}).Endpoint
}

// NewSeaweed starts a SeaweedFS server for the test and waits until it
// stores objects. The weed binary is $SNAPFS_WEED or the one
// scripts/build-weed.sh caches (`make weed` builds it); when it is
// missing the test fails under SNAPFS_REQUIRE_FUSE=1 or CI=true and is
// skipped otherwise.
func NewSeaweed(t testing.TB, opt SeaweedOptions) *Seaweed {
	t.Helper()
	bin, err := WeedBinary()
	if err != nil {
		if Required() {
			t.Fatalf("SeaweedFS is required (SNAPFS_REQUIRE_FUSE=1 or CI=true): %v", err)
		}
		t.Skipf("skipping, no SeaweedFS: %v (run make weed, or set SNAPFS_REQUIRE_FUSE=1 to fail instead)", err)
	}
	dir := t.TempDir()
	ports, err := freePorts(8)
	if err != nil {
		t.Fatalf("seaweed: %v", err)
	}
	w := &Seaweed{
		t: t, bin: bin, dir: dir, log: filepath.Join(dir, "weed.log"),
		master: ports[0], filer: ports[2], s3: ports[3],
		Endpoint: fmt.Sprintf("http://127.0.0.1:%d", ports[3]),
	}
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		t.Fatal(err)
	}
	w.args = []string{"server",
		"-dir=" + data, "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
		"-master.port=" + strconv.Itoa(ports[0]), "-master.port.grpc=" + strconv.Itoa(ports[4]),
		"-volume.port=" + strconv.Itoa(ports[1]), "-volume.port.grpc=" + strconv.Itoa(ports[5]),
		"-filer.port=" + strconv.Itoa(ports[2]), "-filer.port.grpc=" + strconv.Itoa(ports[6]),
		"-s3", "-s3.port=" + strconv.Itoa(ports[3]), "-s3.port.grpc=" + strconv.Itoa(ports[7]),
		// Small volumes: the default 30 GB limit is far more than a test
		// writes and a few volumes are grown up front.
		"-master.volumeSizeLimitMB=256", "-volume.max=32",
	}
	if len(opt.Identities) > 0 {
		cfg := filepath.Join(dir, "s3.json")
		if err := writeS3Config(cfg, opt.Identities); err != nil {
			t.Fatal(err)
		}
		w.args = append(w.args, "-s3.config="+cfg)
	}
	if opt.DomainName != "" {
		w.args = append(w.args, "-s3.domainName="+opt.DomainName)
	}
	t.Cleanup(func() { w.stop(false) })
	w.Start()
	return w
}

// Required reports whether tests that need a real part must fail rather
// than skip without it (SNAPFS_REQUIRE_FUSE=1 or CI=true, as for FUSE).
func Required() bool {
	return os.Getenv("SNAPFS_REQUIRE_FUSE") == "1" || os.Getenv("CI") == "true"
}

// WeedBinary returns the path of the weed binary: $SNAPFS_WEED, or the
// one scripts/build-weed.sh has cached. It never builds one.
func WeedBinary() (string, error) {
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

// Start runs the server (again, after Stop) and waits until it stores
// objects: the S3 gateway answers and the master assigns file ids.
func (w *Seaweed) Start() {
	w.t.Helper()
	w.mu.Lock()
	if w.cmd != nil {
		w.mu.Unlock()
		w.t.Fatalf("seaweed: Start while running")
	}
	logf, err := os.OpenFile(w.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		w.mu.Unlock()
		w.t.Fatal(err)
	}
	cmd := exec.Command(w.bin, w.args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = w.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		logf.Close()
		w.mu.Unlock()
		w.t.Fatalf("seaweed: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	w.cmd, w.done = cmd, done
	w.mu.Unlock()

	if err := w.waitReady(done, 120*time.Second); err != nil {
		w.stop(false)
		w.t.Fatalf("seaweed did not become ready: %v\n%s", err, w.LogTail(4000))
	}
	w.started = time.Since(start)
}

// Stop ends the server (SIGTERM, then SIGKILL after 10 s) and waits for
// it; the data directory and ports stay for Start.
func (w *Seaweed) Stop() { w.stop(false) }

// Kill ends the server with SIGKILL at once, like a crash.
func (w *Seaweed) Kill() { w.stop(true) }

func (w *Seaweed) stop(kill bool) {
	w.mu.Lock()
	cmd, done := w.cmd, w.done
	w.cmd, w.done = nil, nil
	w.mu.Unlock()
	if cmd == nil {
		return
	}
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	syscall.Kill(-cmd.Process.Pid, sig)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	// Children left in the group (none expected) go too.
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}

// LogTail returns the last n bytes of the server's log.
func (w *Seaweed) LogTail(n int) string {
	b, _ := os.ReadFile(w.log)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

func (w *Seaweed) waitReady(done chan struct{}, limit time.Duration) error {
	client := &http.Client{Timeout: 5 * time.Second}
	deadline := time.Now().Add(limit)
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-done:
			return errors.New("weed exited")
		case <-time.After(200 * time.Millisecond):
		}
		if last = w.probe(client); last == nil {
			return nil
		}
	}
	return fmt.Errorf("not ready after %v: %w", limit, last)
}

// probe checks that the S3 gateway answers HTTP and that the master can
// place a write on a volume server (the filer's writes need that).
func (w *Seaweed) probe(client *http.Client) error {
	resp, err := client.Get(w.Endpoint + "/")
	if err != nil {
		return err
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	resp, err = client.Get(fmt.Sprintf("http://127.0.0.1:%d/dir/assign", w.master))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	var a struct {
		Fid   string `json:"fid"`
		Error string `json:"error"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		return fmt.Errorf("master /dir/assign: %w", err)
	}
	if a.Fid == "" {
		return fmt.Errorf("master /dir/assign: %s", a.Error)
	}
	resp, err = client.Get(fmt.Sprintf("http://127.0.0.1:%d/", w.filer))
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
