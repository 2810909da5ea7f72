// Package storetest opens stores for the tests of other packages (snap,
// fs): a test-only package, so that the snapfs binary never links the
// testing package.
//
// The store package's own tests cannot import it (the import would run in
// a cycle) and use NewTestStore from store/testing_test.go; keep the two in
// step.
package storetest

import (
	"testing"

	"github.com/snapfs/snapfs/pool/pooltest"
	"github.com/snapfs/snapfs/store"
)

// New opens a store on a fresh pool of the given number of members with
// one volume "vol", and returns it with the volume's live view. At cleanup
// it runs Check (failing the test on any inconsistency) and closes, unless
// the test closed the store itself.
func New(t testing.TB, members int, opts store.Options) (*store.Store, store.View) {
	t.Helper()
	p := pooltest.New(t, members)
	s, err := store.Open(p, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateVolume("vol", store.VolumeOptions{}); err != nil {
		t.Fatal(err)
	}
	v, err := s.LiveView("vol")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s.Closed() {
			return
		}
		if err := s.Check(); err != nil {
			t.Error(err)
		}
		if err := s.Close(); err != nil {
			t.Error(err)
		}
	})
	return s, v
}
