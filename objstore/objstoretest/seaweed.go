package objstoretest

import (
	"os"
	"testing"

	"github.com/snapfs/snapfs/internal/seaweed"
)

// Seaweed is a SeaweedFS server for one test (internal/seaweed): master,
// volume server, filer and S3 gateway on 127.0.0.1 only, on free ports,
// with its data in the test's temporary directory. Stop and Start take it
// down and bring it back on the same ports and data, for fault tests; it
// is stopped when the test ends.
type Seaweed struct {
	// Endpoint is the S3 gateway's base URL: http://127.0.0.1:PORT.
	Endpoint string

	t   testing.TB
	srv *seaweed.Server
}

// Identity is an S3 identity configured on the server (see
// seaweed.Identity).
type Identity = seaweed.Identity

// SeaweedOptions configures NewSeaweed.
type SeaweedOptions struct {
	// Identities, when not empty, turns authentication on: only these
	// credentials are accepted, each for its actions.
	Identities []Identity
	// DomainName, when set, makes the gateway serve virtual-host-style
	// requests to BUCKET.DomainName as well as path-style ones.
	DomainName string
}

// StartSeaweed starts a SeaweedFS server for the test and returns its S3
// endpoint; see NewSeaweed.
func StartSeaweed(t testing.TB) string {
	t.Helper()
	return NewSeaweed(t, SeaweedOptions{}).Endpoint
}

// NewSeaweed starts a SeaweedFS server for the test and waits until it
// stores objects. The weed binary is $SNAPFS_WEED or the one
// scripts/build-weed.sh caches (`make weed` builds it); when it is
// missing the test fails under SNAPFS_REQUIRE_FUSE=1 or CI=true and is
// skipped otherwise.
func NewSeaweed(t testing.TB, opt SeaweedOptions) *Seaweed {
	t.Helper()
	RequireWeed(t)
	// Free ports are found by listening on port 0 and closing, so another
	// process may take one before weed binds it: a server that does not
	// come up is tried once more, on other ports and a fresh directory.
	start := func() (*seaweed.Server, error) {
		srv, err := seaweed.New(seaweed.Options{Dir: t.TempDir(), Identities: opt.Identities, DomainName: opt.DomainName})
		if err != nil {
			t.Fatalf("seaweed: %v", err)
		}
		t.Cleanup(srv.Stop)
		return srv, srv.Start()
	}
	srv, err := start()
	if err != nil {
		t.Logf("seaweed did not start; trying again on other ports: %v", err)
		var again error
		if srv, again = start(); again != nil {
			t.Fatalf("seaweed did not start twice; first: %v\nthen: %v", err, again)
		}
	}
	return &Seaweed{Endpoint: srv.Endpoint, t: t, srv: srv}
}

// RequireWeed fails the test under SNAPFS_REQUIRE_FUSE=1 or CI=true, and
// skips it otherwise, when the weed binary is missing.
func RequireWeed(t testing.TB) {
	t.Helper()
	if _, err := seaweed.Binary(); err != nil {
		if Required() {
			t.Fatalf("SeaweedFS is required (SNAPFS_REQUIRE_FUSE=1 or CI=true): %v", err)
		}
		t.Skipf("skipping, no SeaweedFS: %v (run make weed, or set SNAPFS_REQUIRE_FUSE=1 to fail instead)", err)
	}
}

// Required reports whether tests that need a real part must fail rather
// than skip without it (SNAPFS_REQUIRE_FUSE=1 or CI=true, as for FUSE).
func Required() bool {
	return os.Getenv("SNAPFS_REQUIRE_FUSE") == "1" || os.Getenv("CI") == "true"
}

// Start brings the server back after Stop or Kill, on the same ports and
// data, and waits until it stores objects.
func (w *Seaweed) Start() {
	w.t.Helper()
	if err := w.srv.Start(); err != nil {
		w.t.Fatal(err)
	}
}

// Stop ends the server (SIGTERM, SIGKILL after 10 s) and waits for it.
func (w *Seaweed) Stop() { w.srv.Stop() }

// Kill ends the server with SIGKILL at once, like a crash.
func (w *Seaweed) Kill() { w.srv.Kill() }

// LogTail returns the last n bytes of the server's log.
func (w *Seaweed) LogTail(n int) string { return w.srv.LogTail(n) }
