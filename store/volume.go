package store

import (
	"encoding/json"
	"fmt"
	"sync/atomic"

	"github.com/cockroachdb/pebble/v2"
)

// A volume's whole life after CreateVolume: its settings change
// (SetVolume), it is renamed (RenameVolume) and destroyed (DestroyVolume).
//
// Destroying a volume frees its name at once and its space in the
// background. One batch deletes the volume's catalog records and writes
// a drop intent (catalog kind 'D', keyed by the root lineage); from then
// on the volume does not exist for any reader, and a new volume may take
// the name. A background walk then deletes every key the lineage stored,
// releasing chunk references in batches as a branch destroy does, and
// deletes the intent last. A crash in between resumes the walk at the
// next Open (resumeDrops), so nothing the volume held is leaked.
const catDrop byte = 'D'

func dropKey(lin uint32) []byte {
	return keyBuf(make([]byte, 0, 8)).u8(tagCatalog).u8(catDrop).u32(lin).end()
}

// dropIntent is a destroyed volume's root lineage whose keys are still
// being deleted.
type dropIntent struct {
	Lin    uint32 `json:"lin"`
	Family uint32 `json:"family"`
	Volume string `json:"volume"`
}

// ErrQuotaBelowUsed is SetVolume's refusal of a quota smaller than what
// the volume holds now (ENOSPC, as ZFS refuses it: "size is less than
// current used or reserved space").
var ErrQuotaBelowUsed = fmt.Errorf("quota below the volume's current usage: %w", ErrNoSpace)

// quota returns the volume's quota (0: none). SetVolume changes it while
// writers read it, so both go through atomics.
func (v *volumeRec) quota() int64 { return atomic.LoadInt64(&v.Quota) }

// chunkSize returns the chunk size of the volume's new files.
func (v *volumeRec) chunkSize() int { return int(atomic.LoadInt64(&v.ChunkSize)) }

// VolumeSettings are the settings SetVolume changes; a nil field is left
// as it is.
type VolumeSettings struct {
	// Quota is the most logical bytes the live view may hold; 0 removes
	// the quota. A quota below the current usage is ErrQuotaBelowUsed.
	Quota *int64
	// ChunkSize is the chunk size of files created from now on (existing
	// files keep theirs): a power of two from 4 KiB to 1 MiB.
	ChunkSize *int
}

// SetVolume changes a volume's settings durably and returns the volume as
// it is now.
func (s *Store) SetVolume(name string, set VolumeSettings) (VolumeInfo, error) {
	if set.ChunkSize != nil {
		if cs := *set.ChunkSize; cs < 4096 || cs > 1<<20 || cs&(cs-1) != 0 {
			return VolumeInfo{}, fmt.Errorf("chunk size %d: must be a power of two from 4 KiB to 1 MiB: %w", cs, ErrInvalid)
		}
	}
	if set.Quota != nil && *set.Quota < 0 {
		return VolumeInfo{}, fmt.Errorf("quota %d is negative: %w", *set.Quota, ErrInvalid)
	}
	s.cat.Lock()
	defer s.cat.Unlock()
	v, ok := s.cat.volumes[name]
	if !ok {
		return VolumeInfo{}, fmt.Errorf("volume %q: %w", name, ErrNoVolume)
	}
	l := s.cat.lineages[v.Lineage]
	if set.Quota != nil && *set.Quota > 0 && l != nil && *set.Quota < l.used.Load() {
		return VolumeInfo{}, fmt.Errorf("volume %q: quota %d bytes, uses %d: %w", name, *set.Quota, l.used.Load(), ErrQuotaBelowUsed)
	}
	nv := volumeRec{Name: v.Name, Lineage: v.Lineage, ChunkSize: atomic.LoadInt64(&v.ChunkSize), Quota: v.quota(),
		Uid: v.Uid, Gid: v.Gid, Created: v.Created}
	if set.Quota != nil {
		nv.Quota = *set.Quota
	}
	if set.ChunkSize != nil {
		nv.ChunkSize = int64(*set.ChunkSize)
	}
	vj, _ := json.Marshal(&nv)
	if err := s.db.Set(catalogKey(catVolume, name), vj, pebble.Sync); err != nil {
		return VolumeInfo{}, fmt.Errorf("set volume %q: %w", name, err)
	}
	atomic.StoreInt64(&v.Quota, nv.Quota)
	atomic.StoreInt64(&v.ChunkSize, nv.ChunkSize)
	s.RequestCheckpoint("after volume set " + name)
	return s.volumeInfoLocked(v), nil
}

// RenameVolume renames volume old to new in one batch, with ops (the meta
// records of its snapshots, branches and schedule, which the snap package
// moves). Every lineage of the volume keeps its id, so views, inode
// numbers and open files are unchanged; the caller refuses a volume that
// is mounted.
func (s *Store) RenameVolume(old, new string, ops ...MetaOp) error {
	if err := checkVolumeName(new); err != nil {
		return err
	}
	s.cat.Lock()
	defer s.cat.Unlock()
	v, ok := s.cat.volumes[old]
	if !ok {
		return fmt.Errorf("volume %q: %w", old, ErrNoVolume)
	}
	if old == new {
		return nil
	}
	if _, ok := s.cat.volumes[new]; ok {
		return fmt.Errorf("volume %q: %w", new, ErrVolumeExists)
	}
	b := s.db.NewBatch()
	defer b.Close()
	nv := volumeRec{Name: new, Lineage: v.Lineage, ChunkSize: atomic.LoadInt64(&v.ChunkSize), Quota: v.quota(),
		Uid: v.Uid, Gid: v.Gid, Created: v.Created}
	vj, _ := json.Marshal(&nv)
	_ = b.Delete(catalogKey(catVolume, old), nil)
	_ = b.Set(catalogKey(catVolume, new), vj, nil)
	var moved []*lineage
	for _, l := range s.cat.lineages {
		if l.rec.Volume != old {
			continue
		}
		r := l.rec
		r.Volume = new
		lj, _ := json.Marshal(r)
		_ = b.Set(catalogKey(catLineage, fmt.Sprint(r.ID)), lj, nil)
		moved = append(moved, l)
	}
	if err := applyMeta(b, ops); err != nil {
		return err
	}
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("rename volume %q to %q: %w", old, new, err)
	}
	// Readers of l.rec.Volume and v.Name hold s.cat (or run in Check, on
	// a quiet store).
	for _, l := range moved {
		l.rec.Volume = new
	}
	v.Name = new
	delete(s.cat.volumes, old)
	s.cat.volumes[new] = v
	return nil
}

// DestroyVolume destroys a volume that has no snapshots and no branches
// (ErrBusy otherwise: the snap package destroys them first). Its name is
// free when DestroyVolume returns; its keys are deleted, and its chunks
// released, in the background (see catDrop). ops are committed with the
// catalog change. The caller refuses a volume that is mounted; buffered
// writes of its files are discarded.
func (s *Store) DestroyVolume(name string, ops ...MetaOp) error {
	s.cat.Lock()
	v, ok := s.cat.volumes[name]
	var l *lineage
	if ok {
		l = s.cat.lineages[v.Lineage]
	}
	s.cat.Unlock()
	if !ok || l == nil {
		return fmt.Errorf("volume %q: %w", name, ErrNoVolume)
	}
	lin := l.rec.ID
	if pins, err := s.Pins(lin); err != nil {
		return err
	} else if len(pins) > 0 {
		return fmt.Errorf("volume %q has %d snapshots: %w", name, len(pins), ErrBusy)
	}
	s.cat.Lock()
	for _, o := range s.cat.lineages {
		if o.rec.Family == lin && o.rec.ID != lin {
			s.cat.Unlock()
			return fmt.Errorf("volume %q has branches: %w", name, ErrBusy)
		}
	}
	s.cat.Unlock()
	// Buffered state of the volume's files goes: nothing will read it.
	s.discardLineage(lin)
	l.epochMu.Lock()
	in := dropIntent{Lin: lin, Family: l.rec.Family, Volume: name}
	ij, _ := json.Marshal(in)
	b := s.db.NewBatch()
	_ = b.Delete(catalogKey(catVolume, name), nil)
	_ = b.Delete(catalogKey(catLineage, fmt.Sprint(lin)), nil)
	_ = b.Set(dropKey(lin), ij, nil)
	err := applyMeta(b, ops)
	if err == nil {
		err = b.Commit(pebble.Sync)
	}
	b.Close()
	if err != nil {
		l.epochMu.Unlock()
		return fmt.Errorf("destroy volume %q: %w", name, err)
	}
	s.cat.Lock()
	delete(s.cat.volumes, name)
	delete(s.cat.lineages, lin)
	delete(s.cat.views, l.rec.ViewID)
	s.cat.Unlock()
	l.epochMu.Unlock()
	s.dropLater(in)
	return nil
}

// dropLater deletes a destroyed volume's keys in the background, one walk
// at a time with the reclaim walks (reclaimMu); Sync, Check and Close wait
// for it as they wait for reclaim walks.
func (s *Store) dropLater(in dropIntent) {
	s.reclaims.Add(1)
	go func() {
		defer s.reclaims.Done()
		s.reclaimMu.Lock()
		defer s.reclaimMu.Unlock()
		if err := s.runDrop(in); err != nil {
			s.logf("snapfs: %v (resumed at next open)", err)
		}
	}()
}

// runDrop deletes every key lineage in.Lin stored, then the intent. Each
// step can run again after a crash: the chunk walk deletes what it
// releases in the same batch, and range deletes are idempotent.
func (s *Store) runDrop(in dropIntent) error {
	lin := in.Lin
	if err := s.dropChunkKeys(lin); err != nil {
		return fmt.Errorf("drop volume %q (lineage %d): %w", in.Volume, lin, err)
	}
	b := s.db.NewBatch()
	defer b.Close()
	for _, tag := range []byte{tagInode, tagDirent, tagXattr, tagDeadlist, tagOrphan} {
		_ = b.DeleteRange(keyBuf(nil).u8(tag).u32(lin).end(), keyBuf(nil).u8(tag).u32(lin+1).end(), nil)
	}
	_ = b.DeleteRange(spaceFrom(lin, 0), spaceFrom(lin+1, 0), nil)
	// Reclaim intents of its destroyed snapshots have nothing left to walk.
	_ = b.DeleteRange(reclaimKey(lin, 0), reclaimKey(lin+1, 0), nil)
	_ = b.Delete(usedKey(lin), nil)
	_ = b.Delete(filesKey(lin), nil)
	_ = b.Delete(counterKey(fmt.Sprintf("ino/%d", in.Family)), nil)
	_ = b.Delete(dropKey(lin), nil)
	if err := b.Commit(pebble.Sync); err != nil {
		return fmt.Errorf("drop volume %q (lineage %d): %w", in.Volume, lin, err)
	}
	s.reclaim(false)
	return nil
}

// resumeDrops finishes the key walks of volumes destroyed before a crash.
func (s *Store) resumeDrops() error {
	lo := keyBuf(nil).u8(tagCatalog).u8(catDrop).end()
	hi := keyBuf(nil).u8(tagCatalog).u8(catDrop + 1).end()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	var ins []dropIntent
	for ok := it.First(); ok; ok = it.Next() {
		var in dropIntent
		if err := json.Unmarshal(it.Value(), &in); err != nil {
			it.Close()
			return fmt.Errorf("drop intent: %w", err)
		}
		ins = append(ins, in)
	}
	if err := it.Close(); err != nil {
		return err
	}
	for _, in := range ins {
		if err := s.runDrop(in); err != nil {
			return err
		}
	}
	return nil
}

// PendingDrops counts destroyed volumes whose keys are still being
// deleted (the space that comes back in the background).
func (s *Store) PendingDrops() (int, error) {
	lo := keyBuf(nil).u8(tagCatalog).u8(catDrop).end()
	hi := keyBuf(nil).u8(tagCatalog).u8(catDrop + 1).end()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return 0, err
	}
	n := 0
	for ok := it.First(); ok; ok = it.Next() {
		n++
	}
	return n, it.Close()
}

// WaitBackground waits for the background walks started so far: reclaim
// walks of destroyed snapshots and key walks of destroyed volumes.
func (s *Store) WaitBackground() { s.reclaims.Wait() }
