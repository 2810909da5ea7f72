package store

import (
	"encoding/json"
	"fmt"

	"github.com/cockroachdb/pebble/v2"
	"github.com/snapfs/snapfs/internal/killpoint"
	"github.com/snapfs/snapfs/pool"
)

// Reclaim intents: when a pin goes, the versions only it kept are freed by
// walking the deadlist. The intent is written in the batch that removes the
// pin and deleted when the walk is done, so a crash in between resumes.
const catReclaim byte = 'R'

func reclaimKey(lin uint32, e uint64) []byte {
	return keyBuf(make([]byte, 0, 16)).u8(tagCatalog).u8(catReclaim).u32(lin).u64(e).end()
}

// reclaimIntent is the walk to do: killed-at in (E, N], born-at > P.
type reclaimIntent struct {
	Lin uint32 `json:"lin"`
	E   uint64 `json:"e"`
	P   uint64 `json:"p"`
	N   uint64 `json:"n"`
}

// UnpinEpoch removes holder from pin (lin, e). When no holder is left the
// pin goes, and what only it kept is freed: with P the previous pin (0 if
// none) and N the next pin (the current epoch if e was the newest), every
// deadlist entry killed in (e, N] and born after P was visible to e alone
// (DESIGN.md, "Destroying a snapshot"). The walk costs what changed, not the
// volume's size. ops are committed with the pin change.
func (s *Store) UnpinEpoch(lin uint32, e uint64, holder string, ops ...MetaOp) error {
	l, err := s.lineageOf(View{Lineage: lin})
	if err != nil {
		return err
	}
	l.epochMu.Lock()
	deferred, err := s.deferUnpinLocked(lin, e, holder, ops)
	if deferred || err != nil {
		l.epochMu.Unlock()
		return err
	}
	intent, err := s.unpinLocked(l, e, holder, ops)
	l.epochMu.Unlock()
	if err != nil || intent == nil {
		return err
	}
	s.reclaimLater(*intent)
	return nil
}

// reclaimLater runs a reclaim walk in the background, one walk at a time
// (the name is gone already; the space follows). Its intent is durable, so
// a crash resumes it at the next open. Sync and Close wait for the walks.
func (s *Store) reclaimLater(in reclaimIntent) {
	s.reclaims.Add(1)
	go func() {
		defer s.reclaims.Done()
		s.reclaimMu.Lock()
		defer s.reclaimMu.Unlock()
		if err := s.runReclaim(in); err != nil {
			fmt.Printf("snapfs: %v (resumed at next open)\n", err)
		}
	}()
}

func (s *Store) unpinLocked(l *lineage, e uint64, holder string, ops []MetaOp) (*reclaimIntent, error) {
	lin := l.rec.ID
	holders, err := s.pinHolders(lin, e)
	if err != nil {
		return nil, err
	}
	kept := holders[:0:0]
	found := false
	for _, h := range holders {
		if h == holder && !found {
			found = true
			continue
		}
		kept = append(kept, h)
	}
	if !found {
		return nil, fmt.Errorf("pin %d@%d has no holder %q: %w", lin, e, holder, ErrNotFound)
	}
	b := s.db.NewBatch()
	defer b.Close()
	if err := applyMeta(b, ops); err != nil {
		return nil, err
	}
	if len(kept) > 0 {
		hj, _ := json.Marshal(kept)
		_ = b.Set(pinKey(lin, e), hj, nil)
		return nil, b.Commit(pebble.Sync)
	}
	nb, err := s.pinNeighbours(lin, e)
	if err != nil {
		return nil, err
	}
	in := reclaimIntent{Lin: lin, E: e, P: nb.prev, N: l.rec.Epoch}
	if nb.hasNext {
		in.N = nb.next
	}
	ij, _ := json.Marshal(in)
	_ = b.Delete(pinKey(lin, e), nil)
	_ = b.Delete(pinCountersKey(lin, e), nil)
	_ = b.Set(reclaimKey(lin, e), ij, nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return nil, fmt.Errorf("unpin %d@%d: %w", lin, e, err)
	}
	s.cat.Lock()
	delete(s.cat.pins, viewPoint{lin, e})
	delete(s.cat.spaceRef, viewPoint{lin, e})
	s.cat.Unlock()
	l.lastPin = nb.newestOther
	return &in, nil
}

// pinNeighbours are the pins of a lineage around pin e, read by seeks
// rather than a walk of every pin, so that destroying a snapshot costs the
// same with 10 or 10,000 snapshots of the lineage.
type pinNeighbours struct {
	prev        uint64 // the newest pin older than e; 0 if none
	next        uint64 // the oldest pin newer than e, if hasNext
	hasNext     bool
	newestOther uint64 // the newest pin other than e; 0 if none
}

// pinNeighbours reads the pins around pin e of lineage lin: three seeks
// of one iterator bounded to the lineage's pins.
func (s *Store) pinNeighbours(lin uint32, e uint64) (pinNeighbours, error) {
	var nb pinNeighbours
	lo := keyBuf(nil).u8(tagCatalog).u8(catPin).u32(lin).end()
	hi := keyBuf(nil).u8(tagCatalog).u8(catPin).u32(lin + 1).end()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nb, fmt.Errorf("pins of lineage %d: %w", lin, err)
	}
	defer it.Close()
	epochOf := func() uint64 {
		s.stats.catalogReads.Add(1)
		return be64(it.Key()[6:])
	}
	if it.SeekLT(pinKey(lin, e)) {
		nb.prev = epochOf()
	}
	if it.SeekGE(pinKey(lin, e+1)) {
		nb.next, nb.hasNext = epochOf(), true
	}
	nb.newestOther = nb.prev
	if it.Last() && epochOf() != e {
		nb.newestOther = epochOf()
	}
	if err := it.Error(); err != nil {
		return nb, fmt.Errorf("pins of lineage %d: %w", lin, err)
	}
	return nb, nil
}

// runReclaim frees the deadlist entries of one intent in batches, then
// deletes the intent.
func (s *Store) runReclaim(in reclaimIntent) error {
	for {
		n, err := s.reclaimBatch(in, 1024)
		if err != nil {
			return fmt.Errorf("reclaim %d@%d: %w", in.Lin, in.E, err)
		}
		if n == 0 {
			break
		}
		killpoint.Hit(killpoint.ReclaimBatch)
	}
	b := s.db.NewBatch()
	defer b.Close()
	if err := dropReclaimedSpace(s.db, b, in); err != nil {
		return fmt.Errorf("reclaim %d@%d: %w", in.Lin, in.E, err)
	}
	_ = b.Delete(reclaimKey(in.Lin, in.E), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("reclaim %d@%d: %w", in.Lin, in.E, err)
	}
	s.reclaim(false)
	return nil
}

// reclaimBatch frees up to max entries and returns how many it looked at.
func (s *Store) reclaimBatch(in reclaimIntent, limit int) (int, error) {
	lo := keyBuf(nil).u8(tagDeadlist).u32(in.Lin).u64(in.E + 1).end()
	hi := keyBuf(nil).u8(tagDeadlist).u32(in.Lin).u64(in.N + 1).end()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0, err
	}
	b := s.db.NewIndexedBatch()
	defer b.Close()
	refs := map[pool.Hash]int64{}
	space := map[spaceCell]int64{}
	n := 0
	for ok := it.First(); ok && n < limit; ok = it.Next() {
		k := it.Key()
		killed, born := be64(k[5:]), be64(k[13:])
		if born <= in.P {
			continue // still visible to P
		}
		n++
		v := it.Value()
		plen := int(v[0])<<8 | int(v[1])
		prefix, old := v[2:2+plen], v[2+plen:]
		_ = b.Delete(withEpoch(prefix, born), nil)
		_ = b.Delete(k, nil)
		if nb := versionBytes(prefix, old); nb != 0 {
			space[spaceCell{born, spaceBorn, 0}] -= nb
			space[spaceCell{killed, spaceDead, born}] -= nb
		}
		if prefix[0] == tagChunk {
			if c, err := decodeChunk(old); err == nil && c.Kind == chunkData {
				refs[c.Hash]--
			}
		}
	}
	if err := it.Close(); err != nil {
		return 0, err
	}
	if n == 0 {
		return 0, nil
	}
	for c, d := range space {
		_ = b.Merge(spaceKey(in.Lin, c.epoch, c.kind, c.born), counterDelta(d), nil)
	}
	unlock, err := s.applyRefs(b, refs, nil, nil)
	if err != nil {
		return 0, err
	}
	defer unlock()
	return n, b.Commit(pebble.NoSync)
}

// resumeReclaims finishes reclaim walks a crash interrupted.
func (s *Store) resumeReclaims() error {
	lo := keyBuf(nil).u8(tagCatalog).u8(catReclaim).end()
	hi := keyBuf(nil).u8(tagCatalog).u8(catReclaim + 1).end()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	var ins []reclaimIntent
	for ok := it.First(); ok; ok = it.Next() {
		var in reclaimIntent
		if json.Unmarshal(it.Value(), &in) == nil {
			ins = append(ins, in)
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	for _, in := range ins {
		if err := s.runReclaim(in); err != nil {
			return err
		}
	}
	return nil
}
