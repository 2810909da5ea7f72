package snap

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/snapfs/snapfs/store"
)

// CreateMany takes a snapshot named name of every volume of vols in one
// atomic step (DESIGN.md "Quiesce": the volumes are quiesced in lineage id
// order and pinned in one catalog batch): either every volume has the
// snapshot or none does, and no write to any of them falls between the
// cuts. The name must be free in every volume.
func (m *Manager) CreateMany(vols []string, name string) ([]Snapshot, error) {
	if len(vols) == 0 {
		return nil, fmt.Errorf("snapshot %s: no volume: %w", name, store.ErrInvalid)
	}
	if err := ValidName(name); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	defer m.sums.forget() // the namespace may have changed (summary.go)
	seen := map[string]bool{}
	reqs := make([]store.PinRequest, len(vols))
	recs := make([]record, len(vols))
	created := time.Now()
	for i, vol := range vols {
		if seen[vol] {
			return nil, fmt.Errorf("snapshot %s: volume %s named twice: %w", name, vol, store.ErrInvalid)
		}
		seen[vol] = true
		live, err := m.LiveView(vol)
		if err != nil {
			return nil, err
		}
		if err := m.checkFreeLocked(vol, name); err != nil {
			return nil, err
		}
		id, err := m.st.AllocViewID()
		if err != nil {
			return nil, fmt.Errorf("snapshot %s@%s: %w", vol, name, err)
		}
		recs[i] = record{Lineage: live.Lineage, ViewID: id, Created: created.UnixNano()}
		i, vol := i, vol
		reqs[i] = store.PinRequest{Lineage: live.Lineage, Holder: holderSnap(id), MkOps: func(e uint64) []store.MetaOp {
			recs[i].Epoch = e
			rj, _ := json.Marshal(recs[i])
			return []store.MetaOp{{Key: snapKey(vol, name), Value: rj}}
		}}
	}
	// Every volume's kernel writeback cache is written back first (caches.go).
	lins := make([]uint32, len(reqs))
	for i, r := range reqs {
		lins[i] = r.Lineage
	}
	if err := m.FlushWriteCaches(lins...); err != nil {
		return nil, fmt.Errorf("snapshot %s of %d volumes: %w", name, len(vols), err)
	}
	_, pause, err := m.st.PinEpochs(reqs)
	if err != nil {
		return nil, fmt.Errorf("snapshot %s of %d volumes: %w", name, len(vols), err)
	}
	m.logf("snapshot %s of %d volumes %v: writers paused %v", name, len(vols), vols, pause)
	m.st.RequestCheckpoint(fmt.Sprintf("after snapshot %s of %s", name, strings.Join(vols, ", ")))
	out := make([]Snapshot, len(vols))
	ops := make([]store.MetaOp, len(vols))
	for i, vol := range vols {
		recs[i].PauseNs = int64(pause)
		rj, _ := json.Marshal(recs[i])
		ops[i] = store.MetaOp{Key: snapKey(vol, name), Value: rj}
		out[i] = fromRecord(vol, name, KindSnapshot, recs[i])
	}
	// The pause is informational (as in Create): a second write.
	if err := m.st.UpdateMeta(ops...); err != nil {
		return out, fmt.Errorf("snapshot %s: record pause: %w", name, err)
	}
	return out, nil
}
