package metrics

import (
	"net"
	"strings"
	"testing"
	"time"

	snapfs "github.com/snapfs/snapfs/fs"
)

// TestListenBadAddress checks the one-line errors of bad and taken
// addresses.
func TestListenBadAddress(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	for _, c := range []struct{ addr, want string }{
		{"nonsense", "not HOST:PORT"},
		{"127.0.0.1", "not HOST:PORT"},
		{"127.0.0.1:http-alt", "is not a number"},
		{"127.0.0.1:70000", "is not a number from 0 to 65535"},
		{"host.invalid:9567", `unknown host "host.invalid"`},
		{taken.Addr().String(), "the address is in use by another program"},
	} {
		s, err := Listen(c.addr)
		if err == nil {
			s.Close()
			t.Errorf("Listen(%q) succeeded", c.addr)
			continue
		}
		if !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), "\n") {
			t.Errorf("Listen(%q): %q, want one line with %q", c.addr, err, c.want)
		}
	}
	s, err := Listen("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.Addr(), "127.0.0.1:") || strings.HasSuffix(s.Addr(), ":0") {
		t.Errorf("Addr() = %q", s.Addr())
	}
	if err := s.Close(); err != nil {
		t.Error(err)
	}
}

// BenchmarkObserve measures what timing one FUSE request adds: two clock
// reads and the histogram's Observe.
func BenchmarkObserve(b *testing.B) {
	m := New(nil)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			start := time.Now()
			m.Observe(snapfs.OpGetAttr, time.Since(start), false)
		}
	})
}

// BenchmarkObserveOne is BenchmarkObserve on one goroutine.
func BenchmarkObserveOne(b *testing.B) {
	m := New(nil)
	for i := 0; i < b.N; i++ {
		start := time.Now()
		m.Observe(snapfs.OpGetAttr, time.Since(start), false)
	}
}
