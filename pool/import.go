package pool

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"strings"

	"github.com/snapfs/snapfs/objstore"
)

// ImportOptions configure Import.
type ImportOptions struct {
	// Members are the member directories and object-store member URLs
	// (s3://BUCKET/PREFIX) to rebuild from (at least one).
	Members []string
	FS      FS // nil = OSFS
	// Objects gives the endpoint, region and addressing of s3:// members
	// (keyed by URL): they replace what the members' configuration says.
	Objects map[string]objstore.Config
	// ObjectStores opens an object-store member's store (nil =
	// DefaultObjectStores).
	ObjectStores func(objstore.Config) (objstore.Store, error)
}

// ImportResult is what Import rebuilt.
type ImportResult struct {
	Config Config // the configuration now in pool.json
	// PoolJSON is "rebuilt" when pool.json was written from the members,
	// "kept" when it existed (its incarnation is bumped after a restore).
	PoolJSON string
	// Restored is the checkpoint meta/ was restored from; nil when meta/
	// existed and was kept.
	Restored *ShippedCheckpoint
}

// importMember is one member directory named on the command line.
type importMember struct {
	path string
	mj   memberJSON
	obj  *objstore.Config // an object-store member's store
}

// Import rebuilds the pool in dir from its members: pool.json from the
// configuration their member.json files carry (the newest generation), and
// meta/ from the newest complete metadata checkpoint on any of them. It
// never overwrites: an existing pool.json is kept (only its incarnation is
// bumped when meta/ is restored, since inode and view numbers may repeat),
// an existing non-empty meta/ is kept (then only pool.json is rebuilt), and
// with both present it refuses. It refuses members of different pools, a
// pool.json of another pool, and, when meta/ must be restored, members
// without a checkpoint; nothing is written then. The caller reconciles
// the restored metadata with the packs (the store does).
func Import(dir string, opts ImportOptions) (ImportResult, error) {
	var res ImportResult
	fsys := opts.FS
	if fsys == nil {
		fsys = OSFS{}
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return res, fmt.Errorf("pool: %w", err)
	}
	if len(opts.Members) == 0 {
		return res, errors.New("pool: import needs at least one member directory")
	}
	_, perr := fsys.Stat(filepath.Join(dir, poolFile))
	hasPool := perr == nil
	hasMeta := nonEmptyDir(fsys, filepath.Join(dir, metaDir))
	if hasPool && hasMeta {
		return res, fmt.Errorf("pool: %s already has %s and %s/: nothing to import (import never overwrites them): %w", dir, poolFile, metaDir, ErrExists)
	}
	stores := newStores(opts.ObjectStores)
	ms, err := readImportMembers(fsys, stores, opts)
	if err != nil {
		return res, err
	}
	cfg, gen, err := importConfig(fsys, dir, hasPool, ms)
	if err != nil {
		return res, err
	}
	promoteReplicas(&cfg, ms)
	if !hasMeta {
		c, err := newestCheckpoint(fsys, stores, cfg)
		if err != nil {
			return res, err
		}
		res.Restored = c
		cfg.Incarnation++
	}
	if err := fsys.MkdirAll(dir, 0o755); err != nil {
		return res, fmt.Errorf("pool: %w", err)
	}
	l, err := fsys.Lock(filepath.Join(dir, lockFile))
	var le *LockedError
	if errors.As(err, &le) {
		return res, &inUseError{dir: dir, pid: le.PID}
	}
	if err != nil {
		return res, fmt.Errorf("pool: lock %s: %w", dir, err)
	}
	defer l.Close()
	if res.Restored != nil {
		if err := restoreCheckpoint(fsys, *res.Restored, filepath.Join(dir, metaDir)); err != nil {
			return res, fmt.Errorf("pool: restore %s: %w", res.Restored.Dir, err)
		}
	}
	res.PoolJSON = "kept"
	if !hasPool {
		res.PoolJSON = "rebuilt"
	}
	if !hasPool || res.Restored != nil {
		if err := writeConfig(fsys, dir, cfg, !hasPool); err != nil {
			return res, fmt.Errorf("pool: write %s: %w", poolFile, err)
		}
	}
	for _, m := range cfg.Members {
		if _, err := readMemberJSONIn(fsys, stores, cfg, m); err != nil {
			continue // not reachable: it keeps its member.json
		}
		if m.Kind == KindS3 {
			st, err := stores.get(m)
			if err == nil {
				err = putMemberJSON(st, cfg, m, gen+1)
			}
			if err != nil {
				return res, fmt.Errorf("pool: update %s: %w", m.Path, err)
			}
			continue
		}
		if err := writeMemberGen(fsys, cfg, m, gen+1, false); err != nil {
			return res, fmt.Errorf("pool: update %s: %w", m.Path, err)
		}
	}
	res.Config = cfg
	return res, nil
}

// nonEmptyDir reports whether p is a directory with at least one entry
// (or exists and is not a directory: never replaced either).
func nonEmptyDir(fsys FS, p string) bool {
	fi, err := fsys.Stat(p)
	if err != nil {
		return false
	}
	if !fi.IsDir() {
		return true
	}
	ents, err := fsys.ReadDir(p)
	return err != nil || len(ents) > 0
}

// readImportMembers reads the member.json of every named directory and
// checks they belong to one pool.
func readImportMembers(fsys FS, stores *objStores, opts ImportOptions) ([]importMember, error) {
	var ms []importMember
	seen := map[string]bool{}
	for _, p := range opts.Members {
		if isObjectURL(p) {
			if seen[p] {
				return nil, fmt.Errorf("pool: member %s given twice", p)
			}
			seen[p] = true
			m, err := readImportObjectMember(stores, p, opts.Objects)
			if err != nil {
				return nil, err
			}
			ms = append(ms, m)
			continue
		}
		abs, err := filepath.Abs(p)
		if err != nil {
			return nil, fmt.Errorf("pool: member %s: %w", p, err)
		}
		if seen[abs] {
			return nil, fmt.Errorf("pool: member %s given twice", abs)
		}
		seen[abs] = true
		fi, err := fsys.Stat(abs)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("pool: member %s does not exist: %w", abs, ErrMemberGone)
		case err != nil:
			return nil, fmt.Errorf("pool: member %s: %w", abs, err)
		case !fi.IsDir():
			return nil, fmt.Errorf("pool: member %s is not a directory", abs)
		}
		b, err := readFile(fsys, filepath.Join(abs, memberFile))
		if errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("pool: %s is not a pool member (no %s): %w", abs, memberFile, ErrNotPool)
		}
		if err != nil {
			return nil, fmt.Errorf("pool: read %s: %w", filepath.Join(abs, memberFile), err)
		}
		var mj memberJSON
		if err := json.Unmarshal(b, &mj); err != nil {
			return nil, fmt.Errorf("pool: %s is unreadable (%v): %w", filepath.Join(abs, memberFile), err, ErrCorrupt)
		}
		if err := mj.Config.validate(); err != nil {
			return nil, fmt.Errorf("pool: %s: %v: %w", filepath.Join(abs, memberFile), err, ErrCorrupt)
		}
		ms = append(ms, importMember{path: abs, mj: mj})
	}
	pools := map[string][]string{}
	for _, m := range ms {
		pools[m.mj.Config.ID] = append(pools[m.mj.Config.ID], m.path)
	}
	if len(pools) > 1 {
		var parts []string
		for id, ps := range pools {
			parts = append(parts, fmt.Sprintf("%s in pool %s", strings.Join(ps, ", "), id))
		}
		sort.Strings(parts)
		return nil, fmt.Errorf("pool: the members belong to different pools: %s: %w", strings.Join(parts, "; "), ErrCorrupt)
	}
	return ms, nil
}

// importConfig returns the configuration to write: pool.json's when it
// exists (it must be the members' pool), else the newest member.json's;
// the named members' paths replace the recorded ones (disks may be
// mounted elsewhere now). It also returns the highest generation seen.
func importConfig(fsys FS, dir string, hasPool bool, ms []importMember) (Config, uint64, error) {
	var cfg Config
	var gen uint64
	for _, m := range ms {
		if m.mj.Generation >= gen {
			gen, cfg = m.mj.Generation, m.mj.Config
		}
	}
	if hasPool {
		pc, err := readConfig(fsys, dir)
		if err != nil {
			return cfg, 0, fmt.Errorf("pool: %w", err)
		}
		if pc.ID != cfg.ID {
			return cfg, 0, fmt.Errorf("pool: %s is pool %s but the members are of pool %s: %w", filepath.Join(dir, poolFile), pc.ID, cfg.ID, ErrCorrupt)
		}
		cfg = pc
	}
	cfg.Members = append([]MemberConfig(nil), cfg.Members...)
	for _, m := range ms {
		found := false
		for i := range cfg.Members {
			if cfg.Members[i].ID != m.mj.MemberID {
				continue
			}
			if (cfg.Members[i].Kind == KindS3) != (m.obj != nil) {
				return cfg, 0, fmt.Errorf("pool: %s is member %d, which the configuration says is at %s: %w", m.path, i, cfg.Members[i].Path, ErrCorrupt)
			}
			cfg.Members[i].Path = m.path
			if m.obj != nil {
				cfg.Members[i].Object = m.obj
			}
			found = true
		}
		if !found {
			return cfg, 0, fmt.Errorf("pool: %s (member id %s) is not in the configuration of pool %s: %w", m.path, m.mj.MemberID, cfg.ID, ErrCorrupt)
		}
	}
	paths := map[string]bool{}
	for _, m := range cfg.Members {
		if paths[m.Path] {
			return cfg, 0, fmt.Errorf("pool: two members at %s: name each member's directory with --member: %w", m.Path, ErrCorrupt)
		}
		paths[m.Path] = true
	}
	return cfg, gen, nil
}

// newestCheckpoint finds the newest complete checkpoint of the pool on
// any reachable member.
func newestCheckpoint(fsys FS, stores *objStores, cfg Config) (*ShippedCheckpoint, error) {
	var best *ShippedCheckpoint
	var looked, incomplete []string
	for _, m := range cfg.Members {
		if _, err := readMemberJSONIn(fsys, stores, cfg, m); err != nil {
			continue
		}
		looked = append(looked, m.Path)
		var cs []ShippedCheckpoint
		var err error
		if m.Kind == KindS3 {
			var st objstore.Store
			var inc []string
			if st, err = stores.get(m); err == nil {
				cs, inc, err = objectCheckpoints(st, m.Path)
			}
			for _, s := range inc {
				incomplete = append(incomplete, m.Path+": "+s)
			}
		} else {
			cs, err = Checkpoints(fsys, m.Path)
		}
		if err != nil {
			return nil, err
		}
		for i := range cs {
			c := cs[i]
			if c.Info.PoolID == cfg.ID && verifyCheckpoint(fsys, c) == nil && (best == nil || c.Info.Seq > best.Info.Seq) {
				best = &c
			}
		}
	}
	if best == nil && len(incomplete) > 0 {
		return nil, fmt.Errorf("pool: no complete metadata checkpoint of pool %s on any member (%s); found only incomplete ones (%s): nothing to restore meta/ from: %w",
			cfg.ID, strings.Join(looked, ", "), strings.Join(incomplete, "; "), ErrNoCheckpoint)
	}
	if best == nil {
		return nil, fmt.Errorf("pool: no metadata checkpoint of pool %s on any member (%s): nothing to restore meta/ from: %w",
			cfg.ID, strings.Join(looked, ", "), ErrNoCheckpoint)
	}
	return best, nil
}

// readImportObjectMember reads the member.json of the object-store member
// at url.
func readImportObjectMember(stores *objStores, url string, objects map[string]objstore.Config) (importMember, error) {
	m := importMember{path: url}
	if _, _, err := objstore.ParseURL(url); err != nil {
		return m, fmt.Errorf("pool: %w", err)
	}
	c := objects[url]
	c.URL = url
	m.obj = &c
	st, err := stores.open(c)
	if err != nil {
		return m, fmt.Errorf("pool: member %s: %w", url, err)
	}
	b, err := st.Get(context.Background(), memberFile, 0, -1)
	if errors.Is(err, objstore.ErrNotFound) {
		return m, fmt.Errorf("pool: %s is not a pool member (no %s): %w", url, memberFile, ErrNotPool)
	}
	if err != nil {
		return m, fmt.Errorf("pool: member %s: read %s: %w", url, memberFile, err)
	}
	if err := json.Unmarshal(b, &m.mj); err != nil {
		return m, fmt.Errorf("pool: %s/%s is unreadable (%v): %w", url, memberFile, err, ErrCorrupt)
	}
	if err := m.mj.Config.validate(); err != nil {
		return m, fmt.Errorf("pool: %s/%s: %v: %w", url, memberFile, err, ErrCorrupt)
	}
	return m, nil
}
