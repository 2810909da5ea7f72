package fs

import (
	"strings"
	"syscall"
	"testing"

	"github.com/snapfs/snapfs/store"
)

// TestCheckWritebackKernel: the writeback cache is refused on kernels
// before 6.16, whatever the release string looks like.
func TestCheckWritebackKernel(t *testing.T) {
	for _, c := range []struct {
		release string
		ok      bool
	}{
		{"6.18.44-fc-v1300", true},
		{"6.16.0", true},
		{"7.0.1-arch1", true},
		{"6.15.9-200.fc42.x86_64", false},
		{"5.10.0-28-amd64", false},
		{"6", false},
		{"unknown", false},
		{"", false},
	} {
		err := checkWritebackKernel(c.release)
		if (err == nil) != c.ok {
			t.Errorf("%q: %v, want ok=%v", c.release, err, c.ok)
		}
		if err != nil && !strings.Contains(err.Error(), c.release) {
			t.Errorf("%q: the error does not name the release: %v", c.release, err)
		}
	}
}

// TestStoreOpenFlagsWriteback: O_APPEND reaches the store without the
// writeback cache and not with it (the kernel appends then); the other
// flags the store acts on pass either way, and those it does not never.
func TestStoreOpenFlagsWriteback(t *testing.T) {
	in := uint32(syscall.O_RDWR | syscall.O_APPEND | syscall.O_TRUNC | syscall.O_SYNC | syscall.O_NOFOLLOW)
	for _, c := range []struct {
		wb   bool
		want int
	}{
		{false, syscall.O_RDWR | syscall.O_APPEND | syscall.O_TRUNC},
		{true, syscall.O_RDWR | syscall.O_TRUNC},
	} {
		f := &fileSystem{opts: MountOptions{WritebackCache: c.wb}}
		if got := f.storeOpenFlags(in); got != c.want {
			t.Errorf("writeback %v: %#o, want %#o", c.wb, got, c.want)
		}
	}
}

// TestTrackWriter: with the writeback cache, opens that can write are
// counted per node until their release, read-only opens never; without
// it nothing is counted.
func TestTrackWriter(t *testing.T) {
	f := &fileSystem{opts: MountOptions{WritebackCache: true}}
	id := nodeID(store.View{ID: 3}, 7)
	a, b, r := &fileHandle{}, &fileHandle{}, &fileHandle{}
	f.trackWriter(a, id, nil, syscall.O_WRONLY)
	f.trackWriter(b, id, nil, syscall.O_RDWR)
	f.trackWriter(r, id, nil, syscall.O_RDONLY)
	if r.untrack != nil || r.wb != f || r.id != id {
		t.Fatalf("read-only open: untrack %v, wb %v, id %#x", r.untrack != nil, r.wb, r.id)
	}
	if ids := f.writerIDs(); len(ids) != 1 || ids[0] != id {
		t.Fatalf("writers %v, want [%#x]", ids, id)
	}
	a.untrack()
	if ids := f.writerIDs(); len(ids) != 1 {
		t.Fatalf("after one of two releases: writers %v", ids)
	}
	b.untrack()
	if ids := f.writerIDs(); len(ids) != 0 {
		t.Fatalf("after both releases: writers %v", ids)
	}
	off := &fileSystem{}
	h := &fileHandle{}
	off.trackWriter(h, id, nil, syscall.O_RDWR)
	if h.untrack != nil || h.wb != nil || len(off.writerIDs()) != 0 {
		t.Fatal("without the writeback cache an open was tracked")
	}
}
