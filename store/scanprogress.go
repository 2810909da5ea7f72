package store

import (
	"time"

	"github.com/snapfs/snapfs/pool"
)

// ScanProgress is how far a scan of every pack record (fsck, and the
// reconcile of pool import) has come: records and their payload bytes
// scanned, against what the metadata names (the expected figures; leaked
// or orphan records come on top, so Records may pass Expected).
type ScanProgress struct {
	Records       int64         `json:"records"`
	Expected      int64         `json:"expected"`
	Bytes         int64         `json:"bytes"`
	ExpectedBytes int64         `json:"expected_bytes"`
	Elapsed       time.Duration `json:"elapsed_ns"`
}

// scanReportEvery is how many records a scan reads between two progress
// reports.
const scanReportEvery = 256

// scanMeter counts a pack scan's records for a progress callback (nil:
// none; a nil *scanMeter counts nothing).
type scanMeter struct {
	fn    func(ScanProgress)
	p     ScanProgress
	start time.Time
}

// newScanMeter returns the meter of a scan expected to meet the locations
// named (each location once), or nil without fn.
func newScanMeter(fn func(ScanProgress), named map[pool.Location]bool) *scanMeter {
	if fn == nil {
		return nil
	}
	m := &scanMeter{fn: fn, start: time.Now()}
	for l := range named {
		m.p.Expected++
		m.p.ExpectedBytes += int64(l.Length)
	}
	m.report()
	return m
}

// record counts one record scanned.
func (m *scanMeter) record(l pool.Location) {
	if m == nil {
		return
	}
	m.p.Records++
	m.p.Bytes += int64(l.Length)
	if m.p.Records%scanReportEvery == 0 {
		m.report()
	}
}

// finish reports the final counts.
func (m *scanMeter) finish() {
	if m != nil {
		m.report()
	}
}

func (m *scanMeter) report() {
	m.p.Elapsed = time.Since(m.start)
	m.fn(m.p)
}
