package metrics

import (
	"log"
	"strconv"
	"strings"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/snapfs/snapfs/store"
)

// storeCollector turns store.Stats into metrics at each scrape.
type storeCollector struct {
	st       *store.Store
	failures atomic.Uint64 // scrapes whose figures could not all be read
}

// desc is a metric of storeCollector: its name, help and labels.
func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, labels, nil)
}

var (
	dirtyDesc       = desc("snapfs_buffer_dirty_bytes", "Chunk bytes written and buffered, not yet in a flush.")
	sealedDesc      = desc("snapfs_buffer_sealed_bytes", "Chunk bytes of flush batches in flight.")
	flushesDesc     = desc("snapfs_flush_batches_total", "Flush batches since the daemon started.")
	flushFailDesc   = desc("snapfs_flush_failed_total", "Flush batches that failed (their files answer the error on the next write, fsync or close).")
	flushBytesDesc  = desc("snapfs_flush_bytes_total", "Chunk bytes the flush batches wrote.")
	snapshotsDesc   = desc("snapfs_snapshots_total", "Snapshot creations (epoch pins) since the daemon started.")
	ckptDesc        = desc("snapfs_checkpoints_shipped_total", "Metadata checkpoints shipped to every checkpoint member.")
	ckptBadDesc     = desc("snapfs_checkpoints_incomplete_total", "Metadata checkpoints that missed a member or failed.")
	ckptLastDesc    = desc("snapfs_checkpoint_last_timestamp_seconds", "When the newest checkpoint was taken (0: none since the daemon started).")
	ckptTookDesc    = desc("snapfs_checkpoint_last_duration_seconds", "How long the newest checkpoint took, shipping included.")
	reclaimDesc     = desc("snapfs_reclaim_backlog", "Space waiting to be reclaimed: destroyed snapshots whose walk is pending (intents), freed records waiting for a checkpoint (free_queue), frees waiting for a gone member (parked).", "kind")
	memberStateDesc = desc("snapfs_member_state", "1 for each member's current state (ok, degraded, failed).", "member", "path", "state")
	memberUsedDesc  = desc("snapfs_member_used_bytes", "Bytes a member's packs and checkpoints take.", "member", "path")
	memberFreeDesc  = desc("snapfs_member_free_bytes", "Free bytes of a member's file system.", "member", "path")
	memberRdErrDesc = desc("snapfs_member_read_errors_total", "Pack reads that failed with an I/O error on a member.", "member", "path")
	poolUsedDesc    = desc("snapfs_pool_used_bytes", "Bytes all packs take.")
	poolFreeDesc    = desc("snapfs_pool_free_bytes", "Free bytes of the members' file systems, each counted once.")
	poolTotalDesc   = desc("snapfs_pool_size_bytes", "Size of the members' file systems, each counted once.")
	poolStateDesc   = desc("snapfs_pool_state", "1 for the pool's current state (ok, degraded, failed).", "state")
	scrubRunDesc    = desc("snapfs_scrub_running", "1 while a scrub runs in this daemon.")
	scrubDoneDesc   = desc("snapfs_scrub_chunks_verified", "Chunks the running (or last) scrub verified.")
	scrubTotalDesc  = desc("snapfs_scrub_chunks", "Chunks the running (or last) scrub has to verify.")
	scrubBadDesc    = desc("snapfs_scrub_errors_found", "Bad copies the running (or last) scrub found.")
	scrubFixDesc    = desc("snapfs_scrub_errors_repaired", "Bad copies the running (or last) scrub rewrote from a good one.")
	scrubLostDesc   = desc("snapfs_scrub_unrepairable", "Chunks without a good copy the running (or last) scrub found.")
	repairsDesc     = desc("snapfs_read_repairs_total", "Bad copies reads came across, by what became of them.", "result")
	repairQDesc     = desc("snapfs_read_repairs_pending", "Bad copies queued for rewriting.")
	internalDesc    = desc("snapfs_internal_errors_total", "Bugs caught at run time (panics a FUSE handler recovered); the daemon log has their stacks.")
	statsErrDesc    = desc("snapfs_stats_errors_total", "Scrapes whose figures could not all be read (the daemon log says why).")

	pebbleDesc = map[string]*prometheus.Desc{}
)

// pebbleMetrics names the Pebble figures exported, with their help.
var pebbleMetrics = []struct{ name, help string }{
	{"snapfs_pebble_disk_bytes", "Bytes Pebble's files take on disk (WAL, tables)."},
	{"snapfs_pebble_read_amplification", "Pebble's read amplification: sublevels of L0 plus non-empty levels."},
	{"snapfs_pebble_compactions_total", "Pebble compactions since open."},
	{"snapfs_pebble_compaction_debt_bytes", "Pebble's estimate of bytes to compact to reach a stable shape."},
	{"snapfs_pebble_compactions_in_progress", "Pebble compactions running."},
	{"snapfs_pebble_flushes_total", "Pebble memtable flushes since open."},
	{"snapfs_pebble_memtable_bytes", "Bytes of Pebble's memtables."},
	{"snapfs_pebble_memtables", "Pebble's memtables."},
	{"snapfs_pebble_block_cache_bytes", "Bytes in Pebble's block cache."},
	{"snapfs_pebble_block_cache_hits_total", "Pebble block cache hits."},
	{"snapfs_pebble_block_cache_misses_total", "Pebble block cache misses."},
	{"snapfs_pebble_wal_bytes", "Bytes of Pebble's live WAL files."},
	{"snapfs_pebble_wal_written_bytes_total", "Bytes written to Pebble's WAL."},
	{"snapfs_pebble_l0_sublevels", "Sublevels of Pebble's L0."},
	{"snapfs_pebble_tables", "Pebble's sstables, all levels."},
	{"snapfs_pebble_tables_bytes", "Bytes of Pebble's sstables, all levels."},
	{"snapfs_pebble_snapshots", "Open Pebble snapshots."},
}

func init() {
	for _, m := range pebbleMetrics {
		pebbleDesc[m.name] = desc(m.name, m.help)
	}
}

func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{dirtyDesc, sealedDesc, flushesDesc, flushFailDesc, flushBytesDesc,
		snapshotsDesc, ckptDesc, ckptBadDesc, ckptLastDesc, ckptTookDesc, reclaimDesc, memberStateDesc,
		memberUsedDesc, memberFreeDesc, memberRdErrDesc, poolUsedDesc, poolFreeDesc, poolTotalDesc, poolStateDesc,
		scrubRunDesc, scrubDoneDesc, scrubTotalDesc, scrubBadDesc, scrubFixDesc, scrubLostDesc,
		repairsDesc, repairQDesc, internalDesc, statsErrDesc} {
		ch <- d
	}
	for _, m := range pebbleMetrics {
		ch <- pebbleDesc[m.name]
	}
}

func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	st, err := c.st.Stats()
	if err != nil {
		c.failures.Add(1)
		log.Printf("metrics: store figures: %v", err)
	}
	ch <- prometheus.MustNewConstMetric(statsErrDesc, prometheus.CounterValue, float64(c.failures.Load()))
	if st.Pebble == nil { // the store is closed: nothing else to say
		return
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, labels...)
	}
	gauge(dirtyDesc, float64(st.DirtyBytes))
	gauge(sealedDesc, float64(st.SealedBytes))
	counter(flushesDesc, float64(st.FlushBatches))
	counter(flushFailDesc, float64(st.FlushFailed))
	counter(flushBytesDesc, float64(st.FlushBytes))
	counter(snapshotsDesc, float64(st.Snapshots))
	counter(ckptDesc, float64(st.Checkpoints))
	counter(ckptBadDesc, float64(st.CheckpointsIncomplete))
	if !st.LastCheckpoint.Taken.IsZero() {
		gauge(ckptLastDesc, float64(st.LastCheckpoint.Taken.UnixNano())/1e9)
	} else {
		gauge(ckptLastDesc, 0)
	}
	gauge(ckptTookDesc, st.LastCheckpoint.Took.Seconds())
	gauge(reclaimDesc, float64(st.ReclaimIntents), "intents")
	gauge(reclaimDesc, float64(st.FreeQueue), "free_queue")
	gauge(reclaimDesc, float64(st.Parked), "parked")

	for _, s := range []string{"ok", "degraded", "failed"} {
		gauge(poolStateDesc, b2f(st.Health.State == s), s)
	}
	for _, m := range st.Health.Members {
		idx := itoa(int(m.Index))
		for _, s := range []string{"ok", "degraded", "failed"} {
			gauge(memberStateDesc, b2f(m.State == s), idx, m.Path, s)
		}
		counter(memberRdErrDesc, float64(m.ReadErrors), idx, m.Path)
	}
	for _, m := range st.Space.Members {
		idx := itoa(int(m.Index))
		gauge(memberUsedDesc, float64(m.Used), idx, m.Path)
		gauge(memberFreeDesc, float64(m.Free), idx, m.Path)
	}
	gauge(poolUsedDesc, float64(st.Space.Used))
	gauge(poolFreeDesc, float64(st.Space.Free))
	gauge(poolTotalDesc, float64(st.Space.Total))

	if sc := st.Scrub; sc != nil {
		gauge(scrubRunDesc, b2f(sc.Running))
		gauge(scrubDoneDesc, float64(sc.Report.Chunks))
		gauge(scrubTotalDesc, float64(sc.Report.Total))
		gauge(scrubBadDesc, float64(sc.Report.Bad))
		gauge(scrubFixDesc, float64(sc.Report.Repaired))
		gauge(scrubLostDesc, float64(sc.Report.Unrepairable))
	} else {
		gauge(scrubRunDesc, 0)
	}
	rr := st.ReadRepairs
	counter(repairsDesc, float64(rr.Found), "found")
	counter(repairsDesc, float64(rr.Rewritten), "rewritten")
	counter(repairsDesc, float64(rr.Failed), "failed")
	counter(repairsDesc, float64(rr.Skipped), "skipped")
	gauge(repairQDesc, float64(rr.Pending))
	counter(internalDesc, float64(st.InternalErrors))

	p := st.Pebble
	var tables, tableBytes int64
	for _, l := range p.Levels {
		tables += l.TablesCount
		tableBytes += l.TablesSize
	}
	pv := map[string]float64{
		"snapfs_pebble_disk_bytes":               float64(p.DiskSpaceUsage()),
		"snapfs_pebble_read_amplification":       float64(p.ReadAmp()),
		"snapfs_pebble_compactions_total":        float64(p.Compact.Count),
		"snapfs_pebble_compaction_debt_bytes":    float64(p.Compact.EstimatedDebt),
		"snapfs_pebble_compactions_in_progress":  float64(p.Compact.NumInProgress),
		"snapfs_pebble_flushes_total":            float64(p.Flush.Count),
		"snapfs_pebble_memtable_bytes":           float64(p.MemTable.Size),
		"snapfs_pebble_memtables":                float64(p.MemTable.Count),
		"snapfs_pebble_block_cache_bytes":        float64(p.BlockCache.Size),
		"snapfs_pebble_block_cache_hits_total":   float64(p.BlockCache.Hits),
		"snapfs_pebble_block_cache_misses_total": float64(p.BlockCache.Misses),
		"snapfs_pebble_wal_bytes":                float64(p.WAL.Size),
		"snapfs_pebble_wal_written_bytes_total":  float64(p.WAL.BytesWritten),
		"snapfs_pebble_l0_sublevels":             float64(p.Levels[0].Sublevels),
		"snapfs_pebble_tables":                   float64(tables),
		"snapfs_pebble_tables_bytes":             float64(tableBytes),
		"snapfs_pebble_snapshots":                float64(p.Snapshots.Count),
	}
	for _, m := range pebbleMetrics {
		vt := prometheus.GaugeValue
		if strings.HasSuffix(m.name, "_total") {
			vt = prometheus.CounterValue
		}
		ch <- prometheus.MustNewConstMetric(pebbleDesc[m.name], vt, pv[m.name])
	}
}

func b2f(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

func itoa(i int) string { return strconv.Itoa(i) }
