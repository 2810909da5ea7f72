// Package metrics serves a snapfs daemon's figures at /metrics in the
// Prometheus text format (snapfs mount --metrics ADDR), built with the
// Prometheus Go client library.
//
// Three sources feed it:
//
//   - every FUSE request of every mount of the daemon, by type, timed by
//     the fs package's request wrapper (fs.OpMetrics, implemented by
//     Metrics.Observe and Metrics.Transferred): histograms of latency,
//     counts of errors, bytes read and written;
//   - the store's events, timed where they happen (store.Observer,
//     implemented by Metrics.FlushDone and Metrics.SnapshotTaken):
//     histograms of flush and snapshot latency and of the snapshot pause;
//   - at each scrape, store.Stats: buffers, counters, the reclaim backlog,
//     members, space, scrub progress, read repairs, checkpoints, internal
//     errors and Pebble's own metrics, plus the Go runtime's and the
//     process's standard collectors.
//
// Every metric is named snapfs_* (Pebble's snapfs_pebble_*); docs/
// operations.md lists them.
package metrics

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	snapfs "github.com/snapfs/snapfs/fs"
	"github.com/snapfs/snapfs/store"
)

// latencyBuckets are the upper bounds, in seconds, of the latency
// histograms: 10µs to about 10s by factors of about 3.
var latencyBuckets = []float64{1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1, 3, 10}

// Metrics is the registry of one daemon and the recorders the mounts and
// the store feed. Its methods are safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry

	// ops and opErrors are indexed by fs.Op: no label lookup per request.
	ops      [len(snapfs.OpNames)]prometheus.Observer
	opErrors [len(snapfs.OpNames)]prometheus.Counter
	read     prometheus.Counter
	written  prometheus.Counter

	flush         prometheus.Histogram
	snapshot      prometheus.Histogram
	snapshotPause prometheus.Histogram
}

// New returns the metrics of a daemon whose store is st.
func New(st *store.Store) *Metrics {
	m := &Metrics{reg: prometheus.NewRegistry()}
	ops := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "snapfs_fuse_request_duration_seconds",
		Help:    "FUSE requests served, by type (op), and how long each took.",
		Buckets: latencyBuckets,
	}, []string{"op"})
	opErrors := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "snapfs_fuse_request_errors_total",
		Help: "FUSE requests answered with an error, by type (op); ENOENT of a lookup counts.",
	}, []string{"op"})
	for i, name := range snapfs.OpNames {
		m.ops[i] = ops.WithLabelValues(name)
		m.opErrors[i] = opErrors.WithLabelValues(name)
	}
	m.read = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "snapfs_read_bytes_total", Help: "Bytes read through the mounts.",
	})
	m.written = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "snapfs_written_bytes_total", Help: "Bytes written through the mounts (write and copy_file_range).",
	})
	m.flush = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "snapfs_flush_duration_seconds",
		Help:    "Flush batches: from the first append of their chunks to the last commit.",
		Buckets: latencyBuckets,
	})
	m.snapshot = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "snapfs_snapshot_create_duration_seconds",
		Help:    "Snapshot creation (one per call, however many volumes it pins): flush, pin and WAL sync.",
		Buckets: latencyBuckets,
	})
	m.snapshotPause = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "snapfs_snapshot_pause_seconds",
		Help:    "How long a snapshot held the writers of its volumes off.",
		Buckets: latencyBuckets,
	})
	m.reg.MustRegister(ops, opErrors, m.read, m.written, m.flush, m.snapshot, m.snapshotPause,
		&storeCollector{st: st},
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// Observe records a FUSE request (fs.OpMetrics).
func (m *Metrics) Observe(op snapfs.Op, elapsed time.Duration, failed bool) {
	m.ops[op].Observe(elapsed.Seconds())
	if failed {
		m.opErrors[op].Inc()
	}
}

// Transferred records bytes read or written (fs.OpMetrics).
func (m *Metrics) Transferred(n int, write bool) {
	if n <= 0 {
		return
	}
	if write {
		m.written.Add(float64(n))
	} else {
		m.read.Add(float64(n))
	}
}

// FlushDone records a flush batch (store.Observer).
func (m *Metrics) FlushDone(elapsed time.Duration, failed bool) {
	m.flush.Observe(elapsed.Seconds())
}

// SnapshotTaken records a snapshot (store.Observer).
func (m *Metrics) SnapshotTaken(elapsed, pause time.Duration) {
	m.snapshot.Observe(elapsed.Seconds())
	m.snapshotPause.Observe(pause.Seconds())
}

// Handler serves the registry in the Prometheus text format.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError})
}

// Server is the HTTP server of /metrics.
type Server struct {
	ln  net.Listener
	srv *http.Server
}

// Listen checks addr (host:port; an empty host listens on every address)
// and listens on it, so that a bad or taken address is reported before
// anything is mounted. Serve then answers /metrics.
func Listen(addr string) (*Server, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, fmt.Errorf("--metrics %q: not HOST:PORT (such as 127.0.0.1:9567 or :9567)", addr)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return nil, fmt.Errorf("--metrics %q: port %q is not a number from 0 to 65535", addr, port)
	}
	if host != "" && net.ParseIP(host) == nil {
		if _, err := net.LookupHost(host); err != nil {
			return nil, fmt.Errorf("--metrics %q: unknown host %q", addr, host)
		}
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, fmt.Errorf("--metrics %s: the address is in use by another program", addr)
		}
		return nil, fmt.Errorf("--metrics %s: %w", addr, err)
	}
	return &Server{ln: ln}, nil
}

// Addr is the address the server listens on (with the port chosen, for
// port 0).
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Serve answers /metrics from m until Close; it returns at once.
func (s *Server) Serve(m *Metrics) {
	mux := http.NewServeMux()
	mux.Handle("/metrics", m.Handler())
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go s.srv.Serve(s.ln)
}

// Close stops the server.
func (s *Server) Close() error {
	if s.srv == nil {
		return s.ln.Close()
	}
	return s.srv.Close()
}
