// Package pooltest creates pools for the tests of other packages (store,
// snap, fs): a test-only package, so that the snapfs binary never links
// the testing package.
//
// The pool package's own tests cannot import it (the import would run in
// a cycle) and use the same helpers from pool/testing_test.go; keep the two
// in step.
package pooltest

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/snapfs/snapfs/pool"
)

// New creates and opens a pool with the given number of members, all on
// the OS file system under t.TempDir(), and closes it at cleanup. The
// members share one device, so each gets its own domain label and copies
// up to members are allowed (Copies is 1; use NewOptions for more).
func New(t testing.TB, members int) *pool.Pool {
	t.Helper()
	return NewOptions(t, members, pool.CreateOptions{}, pool.OpenOptions{})
}

// NewOptions is New with options. Members, Domains and the FS (shared by
// create and open) are filled in when empty; with a non-OS FS the paths
// are still taken from t.TempDir() but live in that FS.
func NewOptions(t testing.TB, members int, co pool.CreateOptions, oo pool.OpenOptions) *pool.Pool {
	t.Helper()
	root := t.TempDir()
	if co.FS == nil {
		co.FS = oo.FS
	}
	if co.FS == nil {
		co.FS = pool.OSFS{}
	}
	oo.FS = co.FS
	dir := filepath.Join(root, "pool")
	if co.Members == nil {
		for i := 0; i < members; i++ {
			co.Members = append(co.Members, filepath.Join(root, fmt.Sprintf("m%d", i)))
		}
	}
	for i := range co.Members {
		if err := co.FS.MkdirAll(co.Members[i], 0o755); err != nil {
			t.Fatal(err)
		}
		if len(co.Domains) < len(co.Members) {
			co.Domains = append(co.Domains, fmt.Sprintf("d%d", i))
		}
	}
	if err := pool.Create(dir, co); err != nil {
		t.Fatal(err)
	}
	p, err := pool.Open(dir, oo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close() // ErrClosed when the test closed it: nothing to do
	})
	return p
}

// UnmountMember makes member i's directory look like an empty mount point
// (its disk unmounted) and returns the function that mounts it back: for
// tests of members that vanish.
func UnmountMember(t testing.TB, p *pool.Pool, i int) (remount func()) {
	t.Helper()
	dir := p.Config().Members[i].Path
	if err := os.Rename(dir, dir+".away"); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := os.Remove(dir); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(dir+".away", dir); err != nil {
			t.Fatal(err)
		}
	}
}
