package store

import (
	"fmt"
	"path"
	"sort"

	"github.com/cockroachdb/pebble/v2"
	"github.com/snapfs/snapfs/pool"
)

// NamedView is a view with the name pool status shows for it: "vol" for
// a volume's live view, "vol@name" for a snapshot or branch.
type NamedView struct {
	Name string
	View View
}

// chunkHit is a chunk key that names a damaged hash.
type chunkHit struct {
	cgen uint32
	idx  uint64
	hash pool.Hash
}

// DamagedFiles returns, for each hash of hs, "view:/path" of every file
// that references it in any of views. It costs a scan of every chunk key
// (to find the (lineage, inode) pairs naming a damaged hash, at any
// version) and, for each view whose chain holds such a pair, a walk of
// that view's tree (to turn inode numbers into paths, since files keep no
// parent pointer), in which each candidate file's chunk is resolved in the
// view to check it is the damaged one there: O(metadata), for -v only.
func (s *Store) DamagedFiles(hs []pool.Hash, views []NamedView) (map[pool.Hash][]string, error) {
	want := map[pool.Hash]bool{}
	for _, h := range hs {
		want[h] = true
	}
	hits, err := s.chunkHits(want)
	if err != nil {
		return nil, err
	}
	out := map[pool.Hash][]string{}
	for _, nv := range views {
		if err := s.damagedIn(nv, hits, want, out); err != nil {
			return nil, err
		}
	}
	for h := range out {
		sort.Strings(out[h])
	}
	return out, nil
}

// chunkHits scans every chunk key and returns, per lineage and inode, the
// chunk keys whose value names a wanted hash.
func (s *Store) chunkHits(want map[pool.Hash]bool) (map[uint32]map[uint64][]chunkHit, error) {
	lo, hi := tagBounds(tagChunk)
	it, err := s.db.NewIter(&pebble.IterOptions{LowerBound: lo, UpperBound: hi})
	if err != nil {
		return nil, err
	}
	hits := map[uint32]map[uint64][]chunkHit{}
	for ok := it.First(); ok; ok = it.Next() {
		k := it.Key()
		if len(k) < 26 {
			continue
		}
		c, err := decodeChunk(it.Value())
		if err != nil || c.Kind == chunkHole || !want[c.Hash] {
			continue
		}
		lin, ino := be32(k[1:]), be64(k[5:])
		if hits[lin] == nil {
			hits[lin] = map[uint64][]chunkHit{}
		}
		hits[lin][ino] = append(hits[lin][ino], chunkHit{cgen: be32(k[13:]), idx: be64(k[17:]), hash: c.Hash})
	}
	return hits, it.Close()
}

// damagedIn walks view nv if its chain holds a hit, and adds the paths of
// files whose chunks resolve, in the view, to a wanted hash.
func (s *Store) damagedIn(nv NamedView, hits map[uint32]map[uint64][]chunkHit, want map[pool.Hash]bool, out map[pool.Hash][]string) error {
	chain, err := s.chain(nv.View)
	if err != nil {
		return nil // destroyed meanwhile
	}
	cand := map[uint64][]chunkHit{}
	for _, pt := range chain {
		for ino, hs := range hits[pt.lin] {
			cand[ino] = append(cand[ino], hs...)
		}
	}
	if len(cand) == 0 {
		return nil
	}
	var walk func(dir uint64, dirPath string, depth int) error
	walk = func(dir uint64, dirPath string, depth int) error {
		var kids []DirEntry
		err := listDir(s.db, chain, dir, 0, func(_ uint64, name string, d direntRec) bool {
			kids = append(kids, DirEntry{Name: name, Ino: d.Ino, Mode: d.Type})
			return true
		})
		if err != nil {
			return err
		}
		for _, k := range kids {
			p := path.Join(dirPath, k.Name)
			switch {
			case k.Mode == sIFDIR && depth < 4096:
				if err := walk(k.Ino, p, depth+1); err != nil {
					return err
				}
			case k.Mode == sIFREG && cand[k.Ino] != nil:
				for _, h := range s.damagedHashesOf(chain, k.Ino, cand[k.Ino], want) {
					out[h] = append(out[h], fmt.Sprintf("%s:%s", nv.Name, p))
				}
			}
		}
		return nil
	}
	return walk(RootIno, "/", 0)
}

// damagedHashesOf returns the wanted hashes that file ino references in
// the view of chain, among its candidate chunk keys.
func (s *Store) damagedHashesOf(chain []viewPoint, ino uint64, hs []chunkHit, want map[pool.Hash]bool) []pool.Hash {
	rec, err := s.getInode(s.dbr(), chain, ino)
	if err != nil {
		return nil
	}
	size := int64(rec.Size)
	found := map[pool.Hash]bool{}
	var out []pool.Hash
	for _, c := range hs {
		if c.cgen != rec.Cgen || int64(c.idx)<<rec.ChunkShift >= size || found[c.hash] {
			continue
		}
		ver, err := resolve(s.dbr(), chain, func(lin uint32) []byte { return chunkPrefix(lin, ino, c.cgen, c.idx) })
		if err != nil || !ver.found {
			continue
		}
		cr, err := decodeChunk(ver.value)
		if err != nil || cr.Kind == chunkHole || !want[cr.Hash] || found[cr.Hash] {
			continue
		}
		found[cr.Hash] = true
		out = append(out, cr.Hash)
	}
	return out
}
