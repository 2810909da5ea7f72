package store

import (
	"fmt"
	"sort"
	"strings"

	"github.com/cockroachdb/pebble/v2"
	"github.com/snapfs/snapfs/pool"
)

// CheckError lists every inconsistency Check found.
type CheckError struct{ Problems []string }

func (e *CheckError) Error() string {
	return fmt.Sprintf("store check: %d problems:\n  %s", len(e.Problems), strings.Join(e.Problems, "\n  "))
}

// Check verifies the store's invariants and returns a *CheckError listing
// every violation:
//   - every chunkref count equals the chunk versions that reference its
//     hash, and no reference dangles;
//   - every record location reads back with a valid checksum and hash;
//   - in every live view, each directory's entry count and link count match
//     its listing, and each file's link count matches the names it has;
//   - every orphan inode has no links;
//   - each lineage's files and used counters equal a recount of its live
//     view (orphans included);
//   - the space counters match the versions and deadlist entries they
//     count, and every view's referenced bytes match what it resolves.
//
// Call it on a quiet store (tests, fsck): it reads without locks. It
// waits for the background reclaim walks first: a walk's batches commit
// between Check's reads of chunk versions and of chunkrefs, which showed
// as a dangling reference (TestForkStartsFromTheForkPointsCounters failed
// one run in five).
func (s *Store) Check() error {
	var probs []string
	add := func(f string, a ...any) { probs = append(probs, fmt.Sprintf(f, a...)) }
	s.reclaims.Wait()
	if err := s.flushAll(); err != nil {
		add("flush before check: %v", err)
	}
	if err := s.checkRefs(add); err != nil {
		return err
	}
	s.cat.Lock()
	var lins []*lineage
	for _, l := range s.cat.lineages {
		lins = append(lins, l)
	}
	s.cat.Unlock()
	for _, l := range lins {
		if err := s.checkTree(l, add); err != nil {
			return err
		}
	}
	if err := s.checkSpace(add); err != nil {
		return err
	}
	if len(probs) > 0 {
		sort.Strings(probs)
		return &CheckError{Problems: probs}
	}
	return nil
}

// countRefs counts references to each hash: one per chunk version.
func (s *Store) countRefs(add func(string, ...any)) (map[pool.Hash]int64, error) {
	refs := map[pool.Hash]int64{}
	lo, hi := tagBounds(tagChunk)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	for ok := it.First(); ok; ok = it.Next() {
		c, err := decodeChunk(it.Value())
		if err != nil {
			add("%s: %v", describeKey(it.Key()), err)
			continue
		}
		if c.Kind == chunkData {
			refs[c.Hash]++
		}
	}
	if err := it.Close(); err != nil {
		return nil, err
	}
	// Superseded versions kept for a pin are still chunk keys (the deadlist
	// only indexes them for reclaim), so they were counted above. A staged
	// chunk (staged.go) holds one reference per stage.
	return refs, countStagedIn(s.db, refs)
}

// checkChunkRefs compares chunkref records with counted references and reads
// every location back.
func (s *Store) checkChunkRefs(refs map[pool.Hash]int64, add func(string, ...any)) error {
	lo, hi := tagBounds(tagChunkRef)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	seen := map[pool.Hash]bool{}
	for ok := it.First(); ok; ok = it.Next() {
		var h pool.Hash
		copy(h[:], it.Key()[1:33])
		seen[h] = true
		rec, err := decodeChunkRef(it.Value())
		if err != nil {
			add("chunkref %x: %v", h[:8], err)
			continue
		}
		if int64(rec.Count) != refs[h] {
			add("chunkref %x: count %d, but %d references", h[:8], rec.Count, refs[h])
		}
		if len(rec.Locs) == 0 {
			add("chunkref %x: no locations", h[:8])
		}
		for _, loc := range rec.Locs {
			if _, err := s.pool.Read(loc, h, nil); err != nil {
				add("chunkref %x at %+v: %v", h[:8], loc, err)
			}
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	for h, n := range refs {
		if !seen[h] {
			add("chunk %x: %d references but no chunkref (dangling)", h[:8], n)
		}
	}
	return nil
}

// checkTree walks a lineage's live tree and checks link and entry counts.
func (s *Store) checkTree(l *lineage, add func(string, ...any)) error {
	v := View{ID: l.rec.ViewID, Lineage: l.rec.ID, Epoch: LiveEpoch}
	chain, err := s.chain(v)
	if err != nil {
		return err
	}
	names := map[uint64]int{} // non-directory ino -> names seen
	nlink := map[uint64]uint32{}
	var files, used int64 // recount of the lineage's counters
	var walk func(dir uint64, depth int) error
	walk = func(dir uint64, depth int) error {
		rec, err := s.getInode(s.dbr(), chain, dir)
		if err != nil {
			add("volume %s: directory %d: %v", l.rec.Volume, dir, err)
			return nil
		}
		files++
		var entries, subdirs uint64
		var kids []DirEntry
		err = listDir(s.db, chain, dir, 0, func(h uint64, name string, d direntRec) bool {
			entries++
			kids = append(kids, DirEntry{Name: name, Ino: d.Ino, Mode: d.Type})
			return true
		})
		if err != nil {
			return err
		}
		for _, k := range kids {
			crec, err := s.getInode(s.dbr(), chain, k.Ino)
			if err != nil {
				add("volume %s: entry %q in %d: inode %d: %v", l.rec.Volume, k.Name, dir, k.Ino, err)
				continue
			}
			if crec.Mode&sIFMT != k.Mode {
				add("volume %s: entry %q: type %o, inode says %o", l.rec.Volume, k.Name, k.Mode, crec.Mode&sIFMT)
			}
			if k.Mode == sIFDIR {
				subdirs++
				if crec.Parent != dir {
					add("volume %s: directory %d: parent %d, found in %d", l.rec.Volume, k.Ino, crec.Parent, dir)
				}
				if depth < 4096 {
					if err := walk(k.Ino, depth+1); err != nil {
						return err
					}
				}
				continue
			}
			if names[k.Ino] == 0 {
				files++
				if crec.Mode&sIFMT == sIFREG {
					used += int64(crec.Size)
				}
			}
			names[k.Ino]++
			nlink[k.Ino] = crec.Nlink
		}
		if rec.Entries != entries {
			add("volume %s: directory %d: entry count %d, listing has %d", l.rec.Volume, dir, rec.Entries, entries)
		}
		if rec.Nlink != uint32(2+subdirs) {
			add("volume %s: directory %d: nlink %d, want %d", l.rec.Volume, dir, rec.Nlink, 2+subdirs)
		}
		return nil
	}
	if err := walk(RootIno, 0); err != nil {
		return err
	}
	for ino, n := range names {
		if nlink[ino] != uint32(n) {
			add("volume %s: inode %d: nlink %d, but %d names", l.rec.Volume, ino, nlink[ino], n)
		}
	}
	// Orphans (unlinked, still open) are counted until deleted.
	lo := keyBuf(nil).u8(tagOrphan).u32(l.rec.ID).end()
	hi := keyBuf(nil).u8(tagOrphan).u32(l.rec.ID + 1).end()
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return err
	}
	for ok := it.First(); ok; ok = it.Next() {
		rec, err := s.getInode(s.dbr(), chain, be64(it.Key()[5:]))
		if err == nil && names[be64(it.Key()[5:])] == 0 {
			files++
			if rec.Mode&sIFMT == sIFREG {
				used += int64(rec.Size)
			}
		}
	}
	if err := it.Close(); err != nil {
		return err
	}
	if c := s.readCounter(filesKey(l.rec.ID)); c != files || l.files.Load() != files {
		add("lineage %d: files counter %d (in memory %d), recount %d", l.rec.ID, c, l.files.Load(), files)
	}
	// In memory, KEEP_SIZE reservations past the sizes count too (prealloc.go).
	if c, mem := s.readCounter(usedKey(l.rec.ID)), l.used.Load()-s.preallocPast(l.rec.ID); c != used || mem != used {
		add("lineage %d: used counter %d (in memory %d without reservations), recount %d", l.rec.ID, c, mem, used)
	}
	return nil
}

// checkRefs counts the references and checks every chunkref against them
// and against its records, with punching held off (punchMu): the chunkref
// scan sees the database as it was when it began, so a record freed and
// punched meanwhile read as zeros, "bad record magic", under a chunkref
// already gone (seen once in a power-cut run and once in the store tests
// under -race).
func (s *Store) checkRefs(add func(string, ...any)) error {
	s.punchMu.Lock()
	defer s.punchMu.Unlock()
	refs, err := s.countRefs(add)
	if err != nil {
		return err
	}
	return s.checkChunkRefs(refs, add)
}
