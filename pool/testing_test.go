package pool

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// NewTestPool creates and opens a pool with the given number of members,
// all on the OS file system under t.TempDir(), and closes it at cleanup.
// The members share one device, so each gets its own domain label and
// copies up to members are allowed (Copies is 1; use NewTestPoolOptions
// for more).
//
// These helpers are pooltest's for the package's own tests, which cannot
// import pooltest (an import cycle); keep the two in step.
func NewTestPool(t testing.TB, members int) *Pool {
	t.Helper()
	return NewTestPoolOptions(t, members, CreateOptions{}, OpenOptions{})
}

// NewTestPoolOptions is NewTestPool with options. Members, Domains and
// the FS (shared by create and open) are filled in when empty; with a
// non-OS FS the paths are still taken from t.TempDir() but live in that FS.
func NewTestPoolOptions(t testing.TB, members int, co CreateOptions, oo OpenOptions) *Pool {
	t.Helper()
	root := t.TempDir()
	if co.FS == nil {
		co.FS = oo.FS
	}
	if co.FS == nil {
		co.FS = OSFS{}
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
	if err := Create(dir, co); err != nil {
		t.Fatal(err)
	}
	p, err := Open(dir, oo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if !p.closed.Load() {
			p.Close()
		}
	})
	return p
}

// UnmountTestMember makes member i's directory look like an empty mount
// point (its disk unmounted) and returns the function that mounts it back:
// for tests of members that vanish.
func UnmountTestMember(t testing.TB, p *Pool, i int) (remount func()) {
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
