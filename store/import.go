package store

import (
	"errors"
	"fmt"

	"github.com/snapfs/snapfs/pool"
)

// ImportReport is what reconciling metadata restored from a checkpoint
// with the members' packs found and did.
type ImportReport struct {
	// Records scanned in the packs of the live members.
	Records int64 `json:"records"`
	// Orphans are records no chunkref or free-queue entry of the restored
	// metadata names: written after the checkpoint (or never committed).
	// They are freed (punched).
	Orphans int64 `json:"orphans"`
	// OrphanChunks and OrphanBytes count the distinct chunks among them
	// (a chunk has a record per copy) and their logical bytes.
	OrphanChunks int64 `json:"orphan_chunks"`
	OrphanBytes  int64 `json:"orphan_bytes"`
	// Missing are locations the restored metadata names that no member
	// holds as a valid record (their data is lost; fsck lists them).
	Missing int64 `json:"missing"`
	// Unscanned are members that are gone: their records were not scanned.
	Unscanned []string `json:"unscanned,omitempty"`
}

// ReconcileImport runs once, before Open, on a pool whose meta/ was just
// restored from the checkpoint info: every valid record in the packs that
// the restored metadata does not name is freed, and the punch mark is set
// to the checkpoint's (entries freed before it was taken may be punched;
// later ones wait for the next checkpoint, as they would have).
func ReconcileImport(p *pool.Pool, opts Options, info pool.CheckpointInfo) (ImportReport, error) {
	return ReconcileImportProgress(p, opts, info, nil)
}

// ReconcileImportProgress is ReconcileImport calling progress (if not
// nil) while it scans the pack records.
func ReconcileImportProgress(p *pool.Pool, opts Options, info pool.CheckpointInfo, progress func(ScanProgress)) (ImportReport, error) {
	var r ImportReport
	opts = opts.EnsureDefaults()
	db, err := openPebble(p.MetaDir(), opts)
	if err != nil {
		return r, err
	}
	defer db.Close()
	crefs, err := chunkRefsIn(db)
	if err != nil {
		return r, fmt.Errorf("import: read chunkrefs: %w", err)
	}
	queued, err := freeQLocsIn(db)
	if err != nil {
		return r, fmt.Errorf("import: read free queue: %w", err)
	}
	named := map[pool.Location]bool{}
	for _, rec := range crefs {
		for _, l := range rec.Locs {
			named[l] = true
		}
	}
	meter := newScanMeter(progress, named)
	found := map[pool.Location]bool{}
	gone := map[uint16]bool{}
	var orphans []pool.Location
	chunks := map[pool.Hash]bool{}
	for _, mc := range p.Config().Members {
		err := p.Records(mc.Index, func(tr pool.TailRecord) bool {
			r.Records++
			meter.record(tr.Loc)
			found[tr.Loc] = true
			if !named[tr.Loc] && !queued[tr.Loc] {
				orphans = append(orphans, tr.Loc)
				if !chunks[tr.Hash] {
					chunks[tr.Hash] = true
					r.OrphanBytes += int64(tr.Loc.Length)
				}
			}
			return true
		})
		if errors.Is(err, pool.ErrMemberGone) {
			gone[mc.Index] = true
			r.Unscanned = append(r.Unscanned, mc.Path)
			continue
		}
		if err != nil {
			return r, fmt.Errorf("import: scan member %d: %w", mc.Index, err)
		}
	}
	meter.finish()
	for l := range named {
		if !found[l] && !gone[l.Member] {
			r.Missing++
		}
	}
	r.Orphans, r.OrphanChunks = int64(len(orphans)), int64(len(chunks))
	if len(orphans) > 0 {
		if err := p.Free(orphans); err != nil {
			return r, fmt.Errorf("import: free %d records written after the checkpoint: %w", len(orphans), err)
		}
	}
	s := &Store{db: db, pool: p, opts: opts}
	if err := s.putPunchMark(punchMarkRec{Mark: info.FreeMark, Seq: info.Seq}); err != nil {
		return r, err
	}
	return r, nil
}
