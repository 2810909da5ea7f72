package tests

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
)

// metricsAddr returns the address the pool's daemon serves /metrics on,
// from its log line (the test asks for port 0).
func metricsAddr(t *testing.T, pool string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(pool, "daemon.log"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`serving metrics at http://(\S+)/metrics`).FindAllSubmatch(b, -1)
	if len(m) == 0 {
		t.Fatalf("daemon.log has no \"serving metrics at\" line:\n%s", b)
	}
	return string(m[len(m)-1][1])
}

// scrape is one reading of /metrics: each sample by its name and labels
// ("name{k=v,...}", labels in the order served).
type scrape map[string]float64

func scrapeMetrics(t *testing.T, addr string) scrape {
	t.Helper()
	s, err := getMetrics(addr)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// getMetrics reads and parses /metrics at addr.
func getMetrics(addr string) (scrape, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/plain") {
		b, _ := io.ReadAll(resp.Body)
		return nil, fmt.Errorf("GET /metrics: %s %q: %.500s", resp.Status, resp.Header.Get("Content-Type"), b)
	}
	var p expfmt.TextParser
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("/metrics is not in the Prometheus text format: %v", err)
	}
	out := scrape{}
	for name, f := range fams {
		for _, m := range f.Metric {
			key := name
			if len(m.Label) > 0 {
				var ls []string
				for _, l := range m.Label {
					ls = append(ls, l.GetName()+"="+l.GetValue())
				}
				key += "{" + strings.Join(ls, ",") + "}"
			}
			switch f.GetType() {
			case dto.MetricType_COUNTER:
				out[key] = m.Counter.GetValue()
			case dto.MetricType_GAUGE:
				out[key] = m.Gauge.GetValue()
			case dto.MetricType_HISTOGRAM:
				out[key+"_count"] = float64(m.Histogram.GetSampleCount())
				out[key+"_sum"] = m.Histogram.GetSampleSum()
			case dto.MetricType_UNTYPED:
				out[key] = m.Untyped.GetValue()
			}
		}
	}
	return out, nil
}

// TestMetricsScrape mounts with --metrics, scrapes /metrics while files
// are written, read and snapshotted, and checks that the counters moved
// by at least what was done.
func TestMetricsScrape(t *testing.T) {
	mnt, pool := mountVolume(t, mountOpts{MountArgs: []string{"--metrics", "127.0.0.1:0"}})
	addr := metricsAddr(t, pool)
	before := scrapeMetrics(t, addr)
	for _, name := range []string{
		"snapfs_buffer_dirty_bytes", "snapfs_buffer_sealed_bytes", "snapfs_flush_batches_total",
		"snapfs_reclaim_backlog{kind=free_queue}", "snapfs_pool_used_bytes", "snapfs_pool_free_bytes",
		"snapfs_scrub_running", "snapfs_checkpoints_shipped_total", "snapfs_internal_errors_total",
		"snapfs_read_repairs_total{result=found}", "snapfs_pebble_disk_bytes", "snapfs_pebble_compactions_total",
		"snapfs_member_state{member=0,path=" + filepath.Join(filepath.Dir(pool), "disk1") + ",state=ok}",
		"snapfs_fuse_request_duration_seconds{op=write}_count", "go_goroutines", "process_resident_memory_bytes",
	} {
		if _, ok := before[name]; !ok {
			t.Errorf("/metrics lacks %s", name)
		}
	}

	// Write 8 files of 4 MiB while scraping.
	const files, size = 8, 4 << 20
	var wg sync.WaitGroup
	stop := make(chan struct{})
	var scrapes int
	var sawBuffered bool
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			s, err := getMetrics(addr)
			if err != nil {
				t.Error(err)
				return
			}
			scrapes++
			sawBuffered = sawBuffered || s["snapfs_buffer_dirty_bytes"]+s["snapfs_buffer_sealed_bytes"] > 0
		}
	}()
	for i := 0; i < files; i++ {
		writeFile(t, filepath.Join(mnt, fmt.Sprintf("f%d", i)), pattern(size, byte(i)))
	}
	close(stop)
	wg.Wait()
	f, err := os.Open(filepath.Join(mnt, "f0"))
	check(t, err)
	check(t, f.Sync())
	_, err = io.Copy(io.Discard, f)
	check(t, err)
	check(t, f.Close())
	check(t, os.Mkdir(filepath.Join(mnt, ".snapshots", "m1"), 0o755))
	// An error answered by the daemon: rmdir of a directory not empty
	// (ENOTEMPTY). (A missing name is no error at this level: the lookup
	// answers a negative entry.)
	check(t, os.Mkdir(filepath.Join(mnt, "d"), 0o755))
	writeFile(t, filepath.Join(mnt, "d", "x"), []byte("x"))
	if err := syscall.Rmdir(filepath.Join(mnt, "d")); err != syscall.ENOTEMPTY {
		t.Fatalf("rmdir of a directory not empty: %v", err)
	}
	after := scrapeMetrics(t, addr)
	t.Logf("%d scrapes while writing; buffered bytes seen: %v", scrapes, sawBuffered)
	if scrapes == 0 {
		t.Error("no scrape finished while the files were written")
	}

	moved := func(name string, atLeast float64) {
		t.Helper()
		if d := after[name] - before[name]; d < atLeast {
			t.Errorf("%s moved by %v, want at least %v (before %v, after %v)", name, d, atLeast, before[name], after[name])
		}
	}
	moved("snapfs_written_bytes_total", files*size)
	moved("snapfs_read_bytes_total", size)
	moved("snapfs_fuse_request_duration_seconds{op=write}_count", files*size/(1<<20)) // 1 MiB at most per request
	moved("snapfs_fuse_request_duration_seconds{op=create}_count", files)
	moved("snapfs_fuse_request_duration_seconds{op=mkdir}_count", 1)
	moved("snapfs_fuse_request_duration_seconds{op=lookup}_count", 1)
	moved("snapfs_fuse_request_errors_total{op=rmdir}", 1)
	moved("snapfs_flush_batches_total", 1)
	moved("snapfs_flush_bytes_total", files*size)
	moved("snapfs_flush_duration_seconds_count", 1)
	moved("snapfs_snapshots_total", 1)
	moved("snapfs_snapshot_create_duration_seconds_count", 1)
	moved("snapfs_snapshot_pause_seconds_count", 1)
	moved("snapfs_pool_used_bytes", files*size)
	if after["snapfs_fuse_request_duration_seconds{op=write}_sum"] <= before["snapfs_fuse_request_duration_seconds{op=write}_sum"] {
		t.Error("write latency sum did not grow")
	}
	if after["snapfs_buffer_sealed_bytes"] != 0 {
		t.Errorf("sealed bytes %v with nothing being flushed", after["snapfs_buffer_sealed_bytes"])
	}

	// A scrub through the daemon: its progress and findings.
	snapfsOK(t, "-p", pool, "pool", "scrub")
	sc := scrapeMetrics(t, addr)
	if sc["snapfs_scrub_running"] != 0 || sc["snapfs_scrub_chunks"] < files*size/(128<<10) ||
		sc["snapfs_scrub_chunks_verified"] != sc["snapfs_scrub_chunks"] || sc["snapfs_scrub_errors_found"] != 0 {
		t.Errorf("after a scrub: running %v, verified %v of %v chunks, %v errors found", sc["snapfs_scrub_running"],
			sc["snapfs_scrub_chunks_verified"], sc["snapfs_scrub_chunks"], sc["snapfs_scrub_errors_found"])
	}
}
