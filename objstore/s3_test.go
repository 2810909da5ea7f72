package objstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/snapfs/snapfs/objstore"
	"github.com/snapfs/snapfs/objstore/objstoretest"
)

func open(t *testing.T, cfg objstore.Config, opts ...objstore.Option) objstore.Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := objstore.Open(ctx, cfg, opts...)
	if err != nil {
		t.Fatalf("Open %+v: %v", cfg, err)
	}
	return s
}

// prefixFor makes a prefix of its own for each test and subtest.
func prefixFor(t *testing.T) string {
	r := strings.NewReplacer("/", "-", " ", "-", "#", "-")
	return fmt.Sprintf("%s-%d", r.Replace(t.Name()), time.Now().UnixNano())
}

func TestMemContract(t *testing.T) {
	objstoretest.RunContract(t, func(t *testing.T) objstore.Store { return objstore.NewMem(t.Name()) })
}

// TestS3OnSeaweed runs the tests that share one SeaweedFS server
// (starting one takes seconds): the contract with and without a key
// prefix, virtual-host addressing, two services in one process, and
// retries through the fault proxy.
func TestS3OnSeaweed(t *testing.T) {
	w := objstoretest.NewSeaweed(t, objstoretest.SeaweedOptions{DomainName: "s3.snapfs.test"})
	objstoretest.IsolateCredentials(t, "any-key", "any-secret")
	t.Run("Contract", func(t *testing.T) {
		objstoretest.RunContract(t, func(t *testing.T) objstore.Store {
			return open(t, objstore.Config{URL: "s3://snapfs-contract/" + prefixFor(t), Endpoint: w.Endpoint})
		})
	})
	// Keys at the bucket's root, a bucket per case.
	t.Run("ContractNoPrefix", func(t *testing.T) {
		n := 0
		objstoretest.RunContract(t, func(t *testing.T) objstore.Store {
			n++
			return open(t, objstore.Config{URL: fmt.Sprintf("s3://snapfs-root-%d-%d", time.Now().Unix(), n), Endpoint: w.Endpoint})
		})
	})
	t.Run("VirtualHostAddressing", func(t *testing.T) { testVirtualHost(t, w) })
	t.Run("TwoServices", func(t *testing.T) { testTwoServices(t, w) })
	t.Run("Retries", func(t *testing.T) { testRetries(t, w) })
}

// testVirtualHost reaches the server as BUCKET.s3.snapfs.test
// (a name only this test resolves, to 127.0.0.1) with virtual-host
// addressing, which SeaweedFS serves for its -s3.domainName.
func testVirtualHost(t *testing.T, w *objstoretest.Seaweed) {
	port := w.Endpoint[strings.LastIndex(w.Endpoint, ":")+1:]
	var hosts sync.Map
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		host, _, _ := net.SplitHostPort(addr)
		hosts.Store(host, true)
		if !strings.HasSuffix(host, ".snapfs.test") {
			return nil, fmt.Errorf("test dialer: unexpected host %s", host)
		}
		var d net.Dialer
		return d.DialContext(ctx, network, "127.0.0.1:"+port)
	}
	s := open(t, objstore.Config{URL: "s3://vhbucket/p", Endpoint: "http://s3.snapfs.test:" + port, Addressing: "virtual-host"}, objstore.WithDialer(dial))
	ctx := context.Background()
	if err := s.Put(ctx, "k", []byte("virtual")); err != nil {
		t.Fatal(err)
	}
	if b, err := s.Get(ctx, "k", 0, -1); err != nil || string(b) != "virtual" {
		t.Fatalf("Get = %q, %v", b, err)
	}
	if _, ok := hosts.Load("vhbucket.s3.snapfs.test"); !ok {
		var seen []string
		hosts.Range(func(k, _ any) bool { seen = append(seen, k.(string)); return true })
		t.Errorf("no request went to vhbucket.s3.snapfs.test (hosts dialed: %v)", seen)
	}
	// The same object through path-style addressing on the same server.
	p := open(t, objstore.Config{URL: "s3://vhbucket/p", Endpoint: w.Endpoint})
	if b, err := p.Get(ctx, "k", 0, -1); err != nil || string(b) != "virtual" {
		t.Fatalf("path-style Get = %q, %v", b, err)
	}
}

// testTwoServices opens stores on two servers with different regions
// in one process: each object lands on its own server only.
func testTwoServices(t *testing.T, a *objstoretest.Seaweed) {
	b := objstoretest.NewSeaweed(t, objstoretest.SeaweedOptions{})
	ctx := context.Background()
	sa := open(t, objstore.Config{URL: "s3://two/p", Endpoint: a.Endpoint, Region: "eu-west-1"})
	sb := open(t, objstore.Config{URL: "s3://two/p", Endpoint: b.Endpoint, Region: "us-west-2"})
	if err := sa.Put(ctx, "only-a", []byte("a")); err != nil {
		t.Fatal(err)
	}
	if err := sb.Put(ctx, "only-b", []byte("bb")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		s        objstore.Store
		has, not string
	}{{sa, "only-a", "only-b"}, {sb, "only-b", "only-a"}} {
		if _, err := c.s.Head(ctx, c.has); err != nil {
			t.Errorf("%s: Head %s: %v", c.s, c.has, err)
		}
		if _, err := c.s.Head(ctx, c.not); !errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("%s: Head %s = %v, want ErrNotFound (it was put on the other server)", c.s, c.not, err)
		}
	}
}

// testRetries puts the fault proxy between the store and the server:
// throttling, 5xx, resets and cut bodies are retried until they pass;
// 403 is not retried; a store that stays throttled gives up within the
// policy's bound.
func testRetries(t *testing.T, w *objstoretest.Seaweed) {
	px := objstoretest.NewProxy(t, w.Endpoint)
	policy := objstore.RetryPolicy{Attempt: 10 * time.Second, Total: 40 * time.Second, BaseDelay: 10 * time.Millisecond, MaxDelay: 200 * time.Millisecond}
	s := open(t, objstore.Config{URL: "s3://snapfs-retry/" + prefixFor(t), Endpoint: px.URL()}, objstore.WithRetry(policy))
	ctx := context.Background()
	data := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB

	for _, c := range []struct {
		name   string
		fault  objstoretest.Fault
		n      int
		method string
		op     string
	}{
		{"503 SlowDown burst on PUT", objstoretest.SlowDown, 6, "PUT", "put"},
		{"500 on GET", objstoretest.InternalError, 3, "GET", "get"},
		{"resets on PUT", objstoretest.Reset, 3, "PUT", "put"},
		{"resets on GET", objstoretest.Reset, 3, "GET", "get"},
		{"bodies cut on GET", objstoretest.ResetMidBody, 3, "GET", "get"},
		{"503 on HEAD", objstoretest.SlowDown, 2, "HEAD", "head"},
		{"resets on LIST", objstoretest.Reset, 2, "GET", "list"},
	} {
		t.Run(c.name, func(t *testing.T) {
			key := strings.ReplaceAll(c.name, " ", "-")
			if c.op != "put" {
				if err := s.Put(ctx, key, data); err != nil {
					t.Fatal(err)
				}
			}
			before := px.Requests()
			px.FailNext(c.n, c.fault, c.method)
			var err error
			switch c.op {
			case "put":
				err = s.Put(ctx, key, data)
			case "get":
				var b []byte
				b, err = s.Get(ctx, key, 0, -1)
				if err == nil && !bytes.Equal(b, data) {
					t.Fatalf("Get through %s gave %d bytes, differ", c.fault, len(b))
				}
			case "head":
				_, err = s.Head(ctx, key)
			case "list":
				var l []objstore.Info
				l, err = s.List(ctx, key)
				if err == nil && len(l) != 1 {
					t.Fatalf("List gave %d objects, want 1", len(l))
				}
			}
			if err != nil {
				t.Fatalf("%s with %d × %s: %v", c.op, c.n, c.fault, err)
			}
			if p := px.Pending(); p != 0 {
				t.Errorf("%d faults not applied", p)
			}
			// Each fault costs one attempt more; a loaded machine may
			// add an attempt that timed out, never fewer.
			if got := px.Requests() - before; got < c.n+1 || got > c.n+3 {
				t.Errorf("%d requests, want %d (each fault retried once more)", got, c.n+1)
			}
			if c.op == "put" {
				if b, err := s.Get(ctx, key, 0, -1); err != nil || !bytes.Equal(b, data) {
					t.Errorf("object after retried Put: %d bytes, %v", len(b), err)
				}
			}
		})
	}

	t.Run("403 is not retried", func(t *testing.T) {
		before := px.Requests()
		px.FailNext(1, objstoretest.Forbidden, "PUT")
		err := s.Put(ctx, "forbidden", data)
		if !errors.Is(err, objstore.ErrAccessDenied) || objstore.Transient(err) {
			t.Fatalf("Put = %v (transient %v), want ErrAccessDenied, not transient", err, objstore.Transient(err))
		}
		if got := px.Requests() - before; got != 1 {
			t.Errorf("%d requests, want 1", got)
		}
		checkOneLine(t, err)
	})

	t.Run("wrong length is ErrShort, not retried", func(t *testing.T) {
		if err := s.Put(ctx, "short", data); err != nil {
			t.Fatal(err)
		}
		for _, rng := range [][2]int64{{0, -1}, {4096, 128 << 10}} {
			before := px.Requests()
			px.FailNext(1, objstoretest.ShortBody, "GET")
			b, err := s.Get(ctx, "short", rng[0], rng[1])
			if !errors.Is(err, objstore.ErrShort) || b != nil {
				t.Fatalf("Get %v of a body of the wrong length = %d bytes, %v; want ErrShort", rng, len(b), err)
			}
			if got := px.Requests() - before; got != 1 {
				t.Errorf("%d requests, want 1", got)
			}
			checkOneLine(t, err)
		}
	})

	t.Run("throttled for ever gives up within the bound", func(t *testing.T) {
		short := open(t, objstore.Config{URL: "s3://snapfs-retry/" + prefixFor(t), Endpoint: px.URL()},
			objstore.WithRetry(objstore.RetryPolicy{Attempt: time.Second, Total: 2 * time.Second, BaseDelay: 10 * time.Millisecond, MaxDelay: 300 * time.Millisecond}))
		px.FailNext(100000, objstoretest.SlowDown, "PUT")
		start := time.Now()
		err := short.Put(ctx, "throttled", data)
		took := time.Since(start)
		px.ClearFaults()
		if err == nil || !strings.Contains(err.Error(), "SlowDown") || !strings.Contains(err.Error(), "gave up after") {
			t.Fatalf("Put = %v, want a SlowDown error after retries", err)
		}
		if took > 4*time.Second {
			t.Errorf("gave up after %v, past the 2 s bound", took)
		}
		if !objstore.Transient(err) {
			t.Errorf("a store throttled past the bound is not Transient: %v", err)
		}
		checkOneLine(t, err)
	})

	t.Run("delay past the attempt timeout", func(t *testing.T) {
		short := open(t, objstore.Config{URL: "s3://snapfs-retry/" + prefixFor(t), Endpoint: px.URL()},
			objstore.WithRetry(objstore.RetryPolicy{Attempt: 300 * time.Millisecond, Total: 20 * time.Second, BaseDelay: 10 * time.Millisecond, MaxDelay: 100 * time.Millisecond}))
		px.SetDelay(time.Second)
		done := make(chan error, 1)
		go func() { done <- short.Put(ctx, "slow", []byte("slow")) }()
		time.Sleep(1500 * time.Millisecond)
		before := px.Requests()
		px.SetDelay(0)
		if err := <-done; err != nil {
			t.Fatalf("Put once the delay went: %v", err)
		}
		if before < 2 {
			t.Errorf("only %d requests during the delay, want attempts timed out and retried", before)
		}
		// With the delay for good, an operation ends within Total.
		defer px.SetDelay(0)
		tiny := objstore.RetryPolicy{Attempt: 300 * time.Millisecond, Total: 1500 * time.Millisecond, BaseDelay: 10 * time.Millisecond, MaxDelay: 100 * time.Millisecond, OpenTotal: 30 * time.Second}
		st := open(t, objstore.Config{URL: "s3://snapfs-retry/" + prefixFor(t), Endpoint: px.URL()}, objstore.WithRetry(tiny))
		px.SetDelay(time.Second)
		start := time.Now()
		_, err := st.Get(ctx, "slow", 0, -1)
		if err == nil || !strings.Contains(err.Error(), "no answer within") {
			t.Fatalf("Get through a 1 s delay with 300 ms attempts = %v, want a timeout", err)
		}
		if took := time.Since(start); took > 4*time.Second {
			t.Errorf("timed-out Get took %v, past its 1.5 s bound", took)
		}
		checkOneLine(t, err)
	})
}

func checkOneLine(t *testing.T, err error) {
	t.Helper()
	if strings.Contains(err.Error(), "\n") {
		t.Errorf("error is not one line: %q", err)
	}
}

// TestS3ServerStopStart stops the server while a loop of Puts runs and
// starts it again, then kills it (SIGKILL) and starts it again: the Puts
// wait (retrying) and go on, and every Put that returned nil is read back
// whole afterwards.
func TestS3ServerStopStart(t *testing.T) {
	w := objstoretest.NewSeaweed(t, objstoretest.SeaweedOptions{})
	objstoretest.IsolateCredentials(t, "restart", "restart-secret")
	s := open(t, objstore.Config{URL: "s3://restart/p", Endpoint: w.Endpoint},
		objstore.WithRetry(objstore.RetryPolicy{Attempt: 10 * time.Second, Total: 3 * time.Minute, MaxDelay: time.Second}))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type put struct {
		key  string
		data []byte
	}
	var (
		mu    sync.Mutex
		acked []put
		fails []error
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ctx.Err() == nil; i++ {
			p := put{fmt.Sprintf("obj-%05d", i), bytes.Repeat([]byte{byte(i)}, 64<<10+i)}
			err := s.Put(ctx, p.key, p.data)
			mu.Lock()
			if err == nil {
				acked = append(acked, p)
			} else if ctx.Err() == nil {
				fails = append(fails, err)
			}
			mu.Unlock()
		}
	}()
	count := func() int { mu.Lock(); defer mu.Unlock(); return len(acked) }
	waitFor := func(n int) {
		deadline := time.Now().Add(2 * time.Minute)
		for count() < n && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if count() < n {
			t.Fatalf("only %d Puts acknowledged, want %d", count(), n)
		}
	}
	waitFor(20)
	var stopped int
	// First a clean stop (SIGTERM), then a crash (SIGKILL): either way
	// the Puts wait, and what was acknowledged is there after.
	for _, down := range []struct {
		name string
		stop func()
	}{{"stop", w.Stop}, {"kill", w.Kill}} {
		down.stop()
		stopped = count()
		time.Sleep(2 * time.Second)
		if got := count(); got > stopped+1 {
			t.Errorf("%s: %d Puts acknowledged while the server was down", down.name, got-stopped)
		}
		w.Start()
		waitFor(stopped + 20)
	}
	cancel()
	<-done
	mu.Lock()
	defer mu.Unlock()
	for _, err := range fails {
		t.Errorf("a Put failed across the restart: %v", err)
	}
	for _, p := range acked {
		b, err := s.Get(context.Background(), p.key, 0, -1)
		if err != nil || !bytes.Equal(b, p.data) {
			t.Errorf("acknowledged %s: read back %d bytes, %v", p.key, len(b), err)
		}
	}
	t.Logf("%d Puts acknowledged, %d before the last stop", len(acked), stopped)
}

// TestS3BadInput: each failure Open or a write can meet says what is
// wrong in one line, and is the right kind.
func TestS3BadInput(t *testing.T) {
	w := objstoretest.NewSeaweed(t, objstoretest.SeaweedOptions{Identities: []objstoretest.Identity{
		{Name: "admin", AccessKey: "admin-key", SecretKey: "admin-secret", Actions: []string{"Admin", "Read", "Write", "List", "Tagging"}},
		{Name: "reader", AccessKey: "reader-key", SecretKey: "reader-secret", Actions: []string{"Read", "List"}},
	}})
	ctx := context.Background()
	quick := objstore.WithRetry(objstore.RetryPolicy{Attempt: time.Second, Total: 3 * time.Second, OpenTotal: 3 * time.Second, BaseDelay: 10 * time.Millisecond, MaxDelay: 200 * time.Millisecond})

	// The admin makes a bucket with an object for the reader.
	objstoretest.IsolateCredentials(t, "admin-key", "admin-secret")
	admin := open(t, objstore.Config{URL: "s3://guarded/p", Endpoint: w.Endpoint})
	if err := admin.Put(ctx, "readable", []byte("r")); err != nil {
		t.Fatalf("admin Put: %v", err)
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadEndpoint := "http://" + ln.Addr().String()
	ln.Close()

	for _, c := range []struct {
		name     string
		env      func(t *testing.T)
		cfg      objstore.Config
		write    bool // Open must succeed; the failure comes with a Put
		kind     error
		contains string
	}{
		{name: "no credentials", env: func(t *testing.T) { objstoretest.IsolateCredentials(t, "", "") },
			cfg: objstore.Config{URL: "s3://guarded/p", Endpoint: w.Endpoint}, kind: objstore.ErrNoCredentials, contains: "AWS_ACCESS_KEY_ID"},
		{name: "profile that does not exist", env: func(t *testing.T) {
			objstoretest.IsolateCredentials(t, "", "")
			t.Setenv("AWS_PROFILE", "nosuchprofile")
		},
			cfg: objstore.Config{URL: "s3://guarded/p", Endpoint: w.Endpoint}, kind: objstore.ErrNoCredentials, contains: "nosuchprofile"},
		{name: "unknown access key", env: func(t *testing.T) { objstoretest.IsolateCredentials(t, "nobody-key", "whatever") },
			cfg: objstore.Config{URL: "s3://guarded/p", Endpoint: w.Endpoint}, kind: objstore.ErrCredentialsRefused, contains: "credentials refused"},
		{name: "wrong secret", env: func(t *testing.T) { objstoretest.IsolateCredentials(t, "admin-key", "not-the-secret") },
			cfg: objstore.Config{URL: "s3://guarded/p", Endpoint: w.Endpoint}, kind: objstore.ErrCredentialsRefused, contains: "credentials refused"},
		{name: "endpoint that does not answer", env: func(t *testing.T) { objstoretest.IsolateCredentials(t, "admin-key", "admin-secret") },
			cfg: objstore.Config{URL: "s3://guarded/p", Endpoint: deadEndpoint}, kind: objstore.ErrUnreachable, contains: "connection refused"},
		{name: "bucket without write permission", env: func(t *testing.T) { objstoretest.IsolateCredentials(t, "reader-key", "reader-secret") },
			cfg: objstore.Config{URL: "s3://guarded/p", Endpoint: w.Endpoint}, write: true, kind: objstore.ErrAccessDenied, contains: "access denied"},
		{name: "missing bucket the credentials may not create", env: func(t *testing.T) { objstoretest.IsolateCredentials(t, "reader-key", "reader-secret") },
			cfg: objstore.Config{URL: "s3://not-there-yet/p", Endpoint: w.Endpoint}, kind: objstore.ErrAccessDenied, contains: "may not create it"},
		{name: "addressing unknown", env: func(t *testing.T) { objstoretest.IsolateCredentials(t, "admin-key", "admin-secret") },
			cfg: objstore.Config{URL: "s3://guarded/p", Endpoint: w.Endpoint, Addressing: "dns"}, contains: "want path or virtual-host"},
		{name: "endpoint not a URL", env: func(t *testing.T) { objstoretest.IsolateCredentials(t, "admin-key", "admin-secret") },
			cfg: objstore.Config{URL: "s3://guarded/p", Endpoint: "127.0.0.1:8333"}, contains: "want http://HOST[:PORT]"},
	} {
		t.Run(c.name, func(t *testing.T) {
			c.env(t)
			start := time.Now()
			s, err := objstore.Open(ctx, c.cfg, quick)
			if c.write {
				if err != nil {
					t.Fatalf("Open: %v", err)
				}
				if _, err := s.Get(ctx, "readable", 0, -1); err != nil {
					t.Fatalf("Get with read permission: %v", err)
				}
				err = s.Put(ctx, "denied", []byte("x"))
			}
			if err == nil {
				t.Fatal("no error")
			}
			t.Logf("%v (after %v)", err, time.Since(start).Round(time.Millisecond))
			if c.kind != nil && !errors.Is(err, c.kind) {
				t.Errorf("error is not %v", c.kind)
			}
			if want := c.kind == objstore.ErrUnreachable; objstore.Transient(err) != want {
				t.Errorf("Transient = %v, want %v", !want, want)
			}
			if !strings.Contains(err.Error(), c.contains) {
				t.Errorf("error does not say %q", c.contains)
			}
			checkOneLine(t, err)
			if time.Since(start) > 15*time.Second {
				t.Errorf("took %v to fail", time.Since(start))
			}
		})
	}
	// Nothing stored was lost on the way.
	objstoretest.IsolateCredentials(t, "admin-key", "admin-secret")
	if b, err := admin.Get(ctx, "readable", 0, -1); err != nil || string(b) != "r" {
		t.Errorf("the admin's object after the refusals: %q, %v", b, err)
	}
	if _, err := admin.Head(ctx, "denied"); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("the refused Put left an object: %v", err)
	}
}
