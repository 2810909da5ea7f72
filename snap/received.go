package snap

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/snapfs/snapfs/store"
)

// CreateReceived takes a snapshot of dataset vol named name, as Create
// does, but records created as its creation time (a received snapshot
// keeps the time its source was taken) and writes extra meta records in
// the very batch that pins the epoch: replication (package stream) keeps
// its record of what the dataset last received there (extra is given
// the pinned epoch), so that the
// snapshot and that record appear together or not at all.
func (m *Manager) CreateReceived(vol, name string, created time.Time, extra func(epoch uint64) []store.MetaOp) (Snapshot, error) {
	if err := ValidName(name); err != nil {
		return Snapshot{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	defer m.sums.forget() // the namespace may have changed (summary.go)
	live, err := m.LiveView(vol)
	if err != nil {
		return Snapshot{}, err
	}
	if err := m.checkFreeLocked(vol, name); err != nil {
		return Snapshot{}, err
	}
	id, err := m.st.AllocViewID()
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %s@%s: %w", vol, name, err)
	}
	rec := record{Lineage: live.Lineage, ViewID: id, Created: created.UnixNano()}
	_, _, err = m.st.PinEpoch(live.Lineage, holderSnap(id), func(e uint64) []store.MetaOp {
		rec.Epoch = e
		rj, _ := json.Marshal(rec)
		return append([]store.MetaOp{{Key: snapKey(vol, name), Value: rj}}, extra(e)...)
	})
	if err != nil {
		return Snapshot{}, fmt.Errorf("snapshot %s@%s: %w", vol, name, err)
	}
	m.logf("received snapshot %s@%s: epoch %d pinned", vol, name, rec.Epoch)
	m.st.RequestCheckpoint(fmt.Sprintf("after receiving %s@%s", vol, name))
	return fromRecord(vol, name, KindSnapshot, rec), nil
}
