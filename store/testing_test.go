package store

import (
	"testing"

	"github.com/snapfs/snapfs/pool/pooltest"
)

// NewTestStore opens a store on a fresh pool of the given number of members
// with one volume "vol", and returns it with the volume's live view. At
// cleanup it runs Check (failing the test on any inconsistency) and closes.
// It is storetest.New for the package's own tests, which cannot import
// storetest (an import cycle); keep the two in step.
func NewTestStore(t testing.TB, members int, opts Options) (*Store, View) {
	t.Helper()
	p := pooltest.New(t, members)
	s, err := Open(p, opts)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateVolume("vol", VolumeOptions{}); err != nil {
		t.Fatal(err)
	}
	v, err := s.LiveView("vol")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s.closing.Load() {
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
