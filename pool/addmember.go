package pool

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/snapfs/snapfs/objstore"
)

// AddMemberOptions configure AddMember.
type AddMemberOptions struct {
	Domain string // failure domain label; "" = the directory's device
	FS     FS     // nil = OSFS
	// Object configures an object-store member (memberDir is then its
	// s3:// URL); ObjectStores opens its store (nil = DefaultObjectStores).
	Object       *objstore.Config
	ObjectStores func(objstore.Config) (objstore.Store, error)
	// Async makes the object-store member an asynchronous replica
	// (asyncrep.go).
	Async bool
}

// AddMember adds the directory memberDir to the pool in dir, which must
// not be open (AddMember takes the pool lock). The directory must exist,
// be writable and belong to no pool. The new member gets the next index;
// its member.json is written first, then every other live member's
// member.json with the new configuration and its generation plus one,
// then pool.json; new records stripe onto it from the next Open. It
// returns the new member's configuration.
func AddMember(dir, memberDir string, opts AddMemberOptions) (MemberConfig, error) {
	fsys := opts.FS
	if fsys == nil {
		fsys = OSFS{}
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return MemberConfig{}, fmt.Errorf("pool: add member: %w", err)
	}
	if _, err := fsys.Stat(filepath.Join(abs, poolFile)); err != nil {
		return MemberConfig{}, fmt.Errorf("pool: %s has no %s: %w", abs, poolFile, ErrNotPool)
	}
	l, err := fsys.Lock(filepath.Join(abs, lockFile))
	var le *LockedError
	if errors.As(err, &le) {
		return MemberConfig{}, &inUseError{dir: abs, pid: le.PID}
	}
	if err != nil {
		return MemberConfig{}, fmt.Errorf("pool: lock %s: %w", abs, err)
	}
	defer l.Close()
	cfg, err := readConfig(fsys, abs)
	if err != nil {
		return MemberConfig{}, err
	}
	return addMember(fsys, newStores(opts.ObjectStores), abs, cfg, memberDir, opts.Domain, opts.Object, opts.Async)
}

// addMember validates memberDir and writes the new configuration. Caller
// holds the pool lock.
func addMember(fsys FS, stores *objStores, dir string, cfg Config, memberDir, domain string, object *objstore.Config, async bool) (MemberConfig, error) {
	var m MemberConfig
	var err error
	if isObjectURL(memberDir) {
		objects := map[string]objstore.Config{}
		if object != nil {
			objects[memberDir] = *object
		}
		m, err = checkNewObjectMember(memberDir, domain, objects)
	} else {
		m, err = checkNewMember(fsys, memberDir, domain)
	}
	if err != nil {
		return m, err
	}
	if async && m.Kind != KindS3 {
		return m, fmt.Errorf("pool: --async %s: only an s3:// member can be an asynchronous replica", memberDir)
	}
	m.Async = async
	for _, o := range cfg.Members {
		if o.Path == m.Path && !o.Removed {
			if _, err := readMemberJSONIn(fsys, stores, cfg, o); errors.Is(err, ErrMemberGone) {
				// A fresh disk mounted where a dead member was.
				return m, refuse(ErrExists, "pool: %s is member %d of this pool, which is missing: remove-member it first, then add the fresh directory", m.Path, o.Index)
			}
			return m, fmt.Errorf("pool: %s is already member %d of this pool: %w", m.Path, o.Index, ErrExists)
		}
	}
	if len(cfg.Members) >= 1<<16-1 {
		return m, fmt.Errorf("pool: %d members: too many", len(cfg.Members))
	}
	m.Index = uint16(len(cfg.Members))
	old := cfg
	cfg.Members = append(append([]MemberConfig(nil), cfg.Members...), m)
	var gen uint64
	type existing struct {
		mc MemberConfig
		mj memberJSON
	}
	var live []existing
	for _, o := range old.Members {
		if o.Removed {
			continue
		}
		mj, err := readMemberJSONIn(fsys, stores, old, o)
		if errors.Is(err, ErrMemberGone) {
			continue // a missing member keeps its old member.json
		}
		if err != nil {
			return m, err
		}
		gen = max(gen, mj.Generation)
		live = append(live, existing{o, mj})
	}
	gen++
	if m.Kind == KindS3 {
		st, err := stores.get(m)
		if err == nil {
			err = createObjectMember(st, cfg, m, gen)
		}
		if err != nil {
			return m, fmt.Errorf("pool: add member %s: %w", m.Path, err)
		}
	} else if err := writeMemberGen(fsys, cfg, m, gen, true); err != nil {
		return m, fmt.Errorf("pool: add member %s: %w", m.Path, err)
	}
	for _, e := range live {
		if e.mc.Kind == KindS3 {
			st, err := stores.get(e.mc)
			if err == nil {
				err = putMemberJSON(st, cfg, e.mc, gen)
			}
			if err != nil {
				return m, fmt.Errorf("pool: add member: update %s: %w", e.mc.Path, err)
			}
			continue
		}
		if err := writeMemberGen(fsys, cfg, e.mc, gen, false); err != nil {
			return m, fmt.Errorf("pool: add member: update %s: %w", e.mc.Path, err)
		}
	}
	if err := writeConfig(fsys, dir, cfg, false); err != nil {
		return m, fmt.Errorf("pool: add member: write %s: %w", poolFile, err)
	}
	return m, nil
}

func writeMemberGen(fsys FS, cfg Config, m MemberConfig, gen uint64, create bool) error {
	if create {
		if err := fsys.MkdirAll(filepath.Join(m.Path, packsDir), 0o755); err != nil {
			return err
		}
	}
	b, err := json.MarshalIndent(memberJSON{Config: cfg, Generation: gen, MemberID: m.ID}, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(fsys, filepath.Join(m.Path, memberFile), append(b, '\n'), create)
}

// ms returns the current member list (never modified in place).
func (p *Pool) ms() []*member {
	if l := p.members.Load(); l != nil {
		return *l
	}
	return nil
}

// addLoaded appends m to the member list at Open.
func (p *Pool) addLoaded(m *member) {
	l := append(p.ms(), m)
	p.members.Store(&l)
}

// AddMember adds directory memberDir to the open pool (online): it checks
// the directory as Create does (exists, writable, in no pool), writes the
// new member's member.json, every live member's member.json with the new
// configuration and generation plus one, then pool.json, opens the
// member, and publishes it: the next placement stripes onto it.
func (p *Pool) AddMember(memberDir, domain string) (MemberConfig, error) {
	return p.AddObjectMember(memberDir, domain, nil)
}

// AddObjectMember is AddMember for a directory or, with a URL and its
// store's configuration (nil: the defaults), an object-store member,
// whose prefix must hold nothing (createObjectMember).
func (p *Pool) AddObjectMember(memberDir, domain string, object *objstore.Config) (MemberConfig, error) {
	return p.addObjectMember(memberDir, domain, object, false)
}

// AddReplica is AddObjectMember of an asynchronous replica (asyncrep.go):
// the store's backfill copies the existing chunks up in the background.
func (p *Pool) AddReplica(url, domain string, object *objstore.Config) (MemberConfig, error) {
	return p.addObjectMember(url, domain, object, true)
}

func (p *Pool) addObjectMember(memberDir, domain string, object *objstore.Config, async bool) (MemberConfig, error) {
	if err := p.writable(); err != nil {
		return MemberConfig{}, err
	}
	p.addMu.Lock()
	defer p.addMu.Unlock()
	cfg := p.Config()
	mc, err := addMember(p.fs, p.stores, p.dir, cfg, memberDir, domain, object, async)
	if err != nil {
		return mc, err
	}
	m, _, err := p.openMember(mc, nil, p.opts)
	if err != nil {
		// The configuration names it now; the next Open retries it.
		return mc, fmt.Errorf("pool: open new member %s: %w", mc.Path, err)
	}
	p.cfgMu.Lock()
	p.cfg.Members = append(append([]MemberConfig(nil), p.cfg.Members...), mc)
	p.cfgMu.Unlock()
	p.spaceMu.Lock()
	p.space = append(p.space, memberSpace{})
	p.current = append(p.current, 0)
	p.spaceAt = time.Time{} // statfs the new member at the next placement
	l := append(append([]*member(nil), p.ms()...), m)
	p.members.Store(&l)
	p.spaceMu.Unlock()
	return mc, nil
}
