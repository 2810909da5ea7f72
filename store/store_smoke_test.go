package store

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"syscall"
	"testing"

	"github.com/snapfs/snapfs/pool/pooltest"
)

func TestSmokeFileLifecycle(t *testing.T) {
	s, v := NewTestStore(t, 2, Options{})
	a, err := s.Mkdir(v, RootIno, "d", 0o755, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	fa, h, err := s.Create(v, a.Ino, "f", 0o644, 0, 0, syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 1<<20+777)
	rand.Read(data)
	if n, err := h.Write(data, 0); err != nil || n != len(data) {
		t.Fatalf("write %d %v", n, err)
	}
	got := make([]byte, len(data)+100)
	n, err := h.Read(got, 0)
	if err != nil || n != len(data) || !bytes.Equal(got[:n], data) {
		t.Fatalf("read before flush: %d %v", n, err)
	}
	if err := h.Fsync(false); err != nil {
		t.Fatal(err)
	}
	n, err = h.Read(got, 0)
	if err != nil || n != len(data) || !bytes.Equal(got[:n], data) {
		t.Fatalf("read after flush: %d %v", n, err)
	}
	if err := h.Release(); err != nil {
		t.Fatal(err)
	}
	at, err := s.GetAttr(v, fa.Ino)
	if err != nil || at.Size != uint64(len(data)) {
		t.Fatalf("attr %+v %v", at, err)
	}
	if err := s.Rename(v, a.Ino, "f", RootIno, "g", 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Lookup(v, a.Ino, "f"); !isNotFound(err) {
		t.Fatalf("old name: %v", err)
	}
	h2, err := s.Open(v, fa.Ino, syscall.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	n, err = h2.Read(got, 100)
	if err != nil || !bytes.Equal(got[:n], data[100:]) {
		t.Fatalf("reopen read %d %v", n, err)
	}
	h2.Release()
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if err := s.Unlink(v, RootIno, "g"); err != nil {
		t.Fatal(err)
	}
	if err := s.Rmdir(v, RootIno, "d"); err != nil {
		t.Fatal(err)
	}
}

func TestRenameExchangeListing(t *testing.T) {
	s, v := NewTestStore(t, 1, Options{})
	d, err := s.Mkdir(v, RootIno, "d", 0o755, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mknod(v, d.Ino, "g", 0o644, 0, 0, 0); err != nil {
		t.Fatal(err)
	}
	h, err := s.Mknod(v, RootIno, "hard", 0o644, 0, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Rename(v, d.Ino, "g", RootIno, "hard", RenameExchange); err != nil {
		t.Fatal(err)
	}
	var names []string
	s.ReadDir(v, RootIno, 0, func(e DirEntry) bool { names = append(names, e.Name); return true })
	if len(names) != 2 {
		t.Fatalf("root lists %v", names)
	}
	a, err := s.Lookup(v, d.Ino, "g")
	if err != nil || a.Ino != h.Ino {
		t.Fatalf("d/g is %d, want %d (%v)", a.Ino, h.Ino, err)
	}
}

// TestCloseFlushesHandedOffData: data handed to the flusher by close(2)
// (Flush) and Release is on disk after Close, and reads back after reopen.
func TestCloseFlushesHandedOffData(t *testing.T) {
	p := pooltest.New(t, 1)
	for round := 0; round < 4; round++ {
		s, err := Open(p, Options{})
		if err != nil {
			t.Fatal(err)
		}
		if round == 0 {
			if _, err := s.CreateVolume("vol", VolumeOptions{}); err != nil {
				t.Fatal(err)
			}
		}
		v, _ := s.LiveView("vol")
		data := bytes.Repeat([]byte{byte(round + 1)}, 200000)
		_, h, err := s.Create(v, RootIno, fmt.Sprintf("f%d", round), 0o644, 0, 0, syscall.O_RDWR)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := h.Write(data, 0); err != nil {
			t.Fatal(err)
		}
		if err := h.Flush(); err != nil {
			t.Fatal(err)
		}
		if err := h.Release(); err != nil {
			t.Fatal(err)
		}
		if err := s.Close(); err != nil {
			t.Fatalf("round %d: close: %v", round, err)
		}
	}
	s, err := Open(p, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	v, _ := s.LiveView("vol")
	for round := 0; round < 4; round++ {
		a, err := s.Lookup(v, RootIno, fmt.Sprintf("f%d", round))
		if err != nil || a.Size != 200000 {
			t.Fatalf("f%d: %+v %v", round, a, err)
		}
	}
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
}
