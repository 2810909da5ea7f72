package pool

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/snapfs/snapfs/objstore"
)

// FormatVersion is the on-disk format this package writes and reads.
const FormatVersion = 1

// Defaults and limits.
const (
	DefaultChunkSize = 128 << 10
	MinChunkSize     = 4 << 10
	MaxChunkSize     = 1 << 20
)

// File names.
const (
	poolFile     = "pool.json"
	memberFile   = "member.json"
	lockFile     = "lock"
	metaDir      = "meta"
	packsDir     = "packs"
	accountedFil = "accounted"
)

// Config is the pool configuration: pool.json, and embedded in each
// member.json with a Generation.
type Config struct {
	ID            string         `json:"id"` // 32 hex digits (16 random bytes)
	Incarnation   uint64         `json:"incarnation"`
	FormatVersion int            `json:"format_version"`
	Copies        int            `json:"copies"`
	ChunkSize     int            `json:"chunk_size"`
	Members       []MemberConfig `json:"members"`
}

// MemberConfig describes one member: a directory, or a bucket and prefix
// of an object store (Kind KindS3, objmember.go).
type MemberConfig struct {
	Index  uint16 `json:"index"`
	Path   string `json:"path"` // absolute; for an object-store member its s3:// URL
	ID     string `json:"id"`   // 32 hex digits
	Domain string `json:"domain"`
	// Kind is "" for a directory member and KindS3 for an object-store
	// member, whose Object says where it lives (never with credentials).
	Kind   string           `json:"kind,omitempty"`
	Object *objstore.Config `json:"object,omitempty"`
	// Removed marks a member taken out of the pool (pool remove-member).
	// Its slot stays so that member indices in stored locations keep
	// their meaning; a removed member is never opened or written.
	Removed bool `json:"removed,omitempty"`
	// Async marks an object-store member as an asynchronous replica
	// (asyncrep.go): it receives every record and metadata checkpoint in
	// the background and never counts toward Copies.
	Async bool `json:"async,omitempty"`
}

// memberJSON is the content of member.json.
type memberJSON struct {
	Config     Config `json:"pool"`
	Generation uint64 `json:"generation"`
	MemberID   string `json:"member_id"`
}

// CreateOptions configure Create.
type CreateOptions struct {
	Members   []string // member directories; must exist and be writable
	Copies    int      // copies of each record (default 1)
	ChunkSize int      // default 128 KiB; power of two from 4 KiB to 1 MiB
	// Domains optionally labels each member's failure domain (parallel to
	// Members; "" = by device). Without a label a member's domain is the
	// st_dev of its directory.
	Domains []string
	FS      FS // nil = OSFS
	// Objects gives the endpoint, region and addressing of s3:// members
	// (keyed by their URL; a member without an entry gets the defaults).
	Objects map[string]objstore.Config
	// ObjectStores opens an object-store member's store (nil = the
	// package default, DefaultObjectStores). Tests pass in-memory stores.
	ObjectStores func(objstore.Config) (objstore.Store, error)
	// Async names the s3:// members (by URL) that are asynchronous
	// replicas (asyncrep.go).
	Async map[string]bool
}

func randomID() string {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err)
	}
	return hex.EncodeToString(b[:])
}

func checkChunkSize(n int) error {
	if n < MinChunkSize || n > MaxChunkSize || n&(n-1) != 0 {
		return fmt.Errorf("pool: chunk size %d: must be a power of two from %d to %d", n, MinChunkSize, MaxChunkSize)
	}
	return nil
}

// Create makes a new pool in dir over the given member directories. It
// overwrites nothing: an existing pool.json or member.json is an error.
func Create(dir string, opts CreateOptions) error {
	fsys := opts.FS
	if fsys == nil {
		fsys = OSFS{}
	}
	cfg, err := newConfig(fsys, dir, opts)
	if err != nil {
		return err
	}
	dir, _ = filepath.Abs(dir)
	if err := fsys.MkdirAll(filepath.Join(dir, metaDir), 0o755); err != nil {
		return fmt.Errorf("pool: create %s: %w", dir, err)
	}
	stores := newStores(opts.ObjectStores)
	var written []string
	var undo []func()
	rollback := func() {
		for _, w := range written {
			fsys.Remove(w)
		}
		for _, u := range undo {
			u()
		}
	}
	for _, m := range cfg.Members {
		if m.Kind == KindS3 {
			st, err := stores.get(m)
			if err == nil {
				err = createObjectMember(st, cfg, m, 1)
			}
			if err != nil {
				rollback()
				return fmt.Errorf("pool: create member %s: %w", m.Path, err)
			}
			undo = append(undo, func() { st.Delete(context.Background(), memberFile) })
			continue
		}
		if err := writeMember(fsys, cfg, m); err != nil {
			rollback()
			return fmt.Errorf("pool: create member %s: %w", m.Path, err)
		}
		written = append(written, filepath.Join(m.Path, memberFile))
	}
	if err := writeConfig(fsys, dir, cfg, true); err != nil {
		rollback()
		return fmt.Errorf("pool: create %s: %w", dir, err)
	}
	return nil
}

// newConfig validates the options and the member directories.
func newConfig(fsys FS, dir string, opts CreateOptions) (Config, error) {
	cfg := Config{ID: randomID(), Incarnation: 1, FormatVersion: FormatVersion, Copies: opts.Copies, ChunkSize: opts.ChunkSize}
	if cfg.Copies == 0 {
		cfg.Copies = 1
	}
	if cfg.ChunkSize == 0 {
		cfg.ChunkSize = DefaultChunkSize
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return cfg, fmt.Errorf("pool: create %s: %w", dir, err)
	}
	switch {
	case cfg.Copies < 1:
		return cfg, fmt.Errorf("pool: copies %d: must be at least 1", cfg.Copies)
	case len(opts.Members) == 0:
		return cfg, errors.New("pool: create needs at least one member")
	case len(opts.Domains) != 0 && len(opts.Domains) != len(opts.Members):
		return cfg, fmt.Errorf("pool: %d domain labels for %d members", len(opts.Domains), len(opts.Members))
	case len(opts.Members) > 1<<16-1:
		return cfg, fmt.Errorf("pool: %d members: too many", len(opts.Members))
	}
	if err := checkChunkSize(cfg.ChunkSize); err != nil {
		return cfg, err
	}
	if _, err := fsys.Stat(filepath.Join(absDir, poolFile)); err == nil {
		return cfg, fmt.Errorf("pool: %s is already a pool (pool.json exists): %w", absDir, ErrExists)
	}
	domains := map[string]bool{}
	seen := map[string]bool{}
	for i, p := range opts.Members {
		label := ""
		if len(opts.Domains) > 0 {
			label = opts.Domains[i]
		}
		var m MemberConfig
		var err error
		if isObjectURL(p) {
			m, err = checkNewObjectMember(p, label, opts.Objects)
		} else {
			m, err = checkNewMember(fsys, p, label)
		}
		if err != nil {
			return cfg, err
		}
		if seen[m.Path] {
			return cfg, fmt.Errorf("pool: member %s given twice", m.Path)
		}
		seen[m.Path] = true
		m.Index = uint16(i)
		m.Async = opts.Async[p]
		cfg.Members = append(cfg.Members, m)
		if !m.Async {
			domains[m.Domain] = true
		}
	}
	if err := checkAsync(cfg, opts.Async); err != nil {
		return cfg, err
	}
	if cfg.Copies > len(domains) {
		return cfg, fmt.Errorf("pool: copies %d needs %d failure domains, but the members span %d (members on one device share a domain; use distinct devices or domain labels)",
			cfg.Copies, cfg.Copies, len(domains))
	}
	return cfg, nil
}

// checkNewMember checks a prospective member directory: it exists, is a
// writable directory, and belongs to no pool.
func checkNewMember(fsys FS, p, label string) (MemberConfig, error) {
	abs, err := filepath.Abs(p)
	if err != nil {
		return MemberConfig{}, fmt.Errorf("pool: member %s: %w", p, err)
	}
	m := MemberConfig{Path: abs, ID: randomID(), Domain: label}
	fi, err := fsys.Stat(abs)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return m, fmt.Errorf("pool: member %s does not exist", abs)
	case err != nil:
		return m, fmt.Errorf("pool: member %s: %w", abs, err)
	case !fi.IsDir():
		return m, fmt.Errorf("pool: member %s is not a directory", abs)
	}
	if b, err := readFile(fsys, filepath.Join(abs, memberFile)); err == nil {
		var mj memberJSON
		_ = json.Unmarshal(b, &mj)
		return m, fmt.Errorf("pool: member %s already belongs to pool %q (member.json exists): %w", abs, mj.Config.ID, ErrExists)
	}
	probe := filepath.Join(abs, ".snapfs-probe-"+randomID()[:8])
	f, err := fsys.OpenFile(probe, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return m, fmt.Errorf("pool: member %s is not writable: %w", abs, err)
	}
	f.Close()
	fsys.Remove(probe)
	if m.Domain == "" {
		dev, err := fsys.Device(abs)
		if err != nil {
			return m, fmt.Errorf("pool: member %s: %w", abs, err)
		}
		m.Domain = fmt.Sprintf("dev:%d", dev)
	}
	return m, nil
}

func writeMember(fsys FS, cfg Config, m MemberConfig) error {
	if err := fsys.MkdirAll(filepath.Join(m.Path, packsDir), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(memberJSON{Config: cfg, Generation: 1, MemberID: m.ID}, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(fsys, filepath.Join(m.Path, memberFile), append(b, '\n'), true)
}

func writeConfig(fsys FS, dir string, cfg Config, noReplace bool) error {
	b, err := json.MarshalIndent(cfg, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(fsys, filepath.Join(dir, poolFile), append(b, '\n'), noReplace)
}

// readConfig reads and validates pool.json.
func readConfig(fsys FS, dir string) (Config, error) {
	var cfg Config
	b, err := readFile(fsys, filepath.Join(dir, poolFile))
	if errors.Is(err, fs.ErrNotExist) {
		return cfg, fmt.Errorf("pool: %s has no %s: %w", dir, poolFile, ErrNotPool)
	}
	if err != nil {
		return cfg, fmt.Errorf("pool: read %s: %w", filepath.Join(dir, poolFile), err)
	}
	if err := json.Unmarshal(b, &cfg); err != nil {
		return cfg, fmt.Errorf("pool: %s is unreadable (%v): %w", filepath.Join(dir, poolFile), err, ErrCorrupt)
	}
	if err := cfg.validate(); err != nil {
		return cfg, fmt.Errorf("pool: %s: %v: %w", filepath.Join(dir, poolFile), err, ErrCorrupt)
	}
	return cfg, nil
}

// validate checks a decoded Config.
func (c Config) validate() error {
	if _, err := parseID(c.ID); err != nil {
		return fmt.Errorf("pool id %q: %v", c.ID, err)
	}
	switch {
	case c.FormatVersion != FormatVersion:
		return fmt.Errorf("format version %d, this build reads %d", c.FormatVersion, FormatVersion)
	case c.Copies < 1:
		return fmt.Errorf("copies %d", c.Copies)
	case len(c.Members) == 0:
		return errors.New("no members")
	}
	if err := checkChunkSize(c.ChunkSize); err != nil {
		return err
	}
	for i, m := range c.Members {
		if int(m.Index) != i || m.ID == "" {
			return fmt.Errorf("member %d (%q) is malformed", i, m.Path)
		}
		if err := m.validateKind(); err != nil {
			return fmt.Errorf("member %d (%q) is malformed: %v", i, m.Path, err)
		}
	}
	return nil
}

func parseID(s string) ([16]byte, error) {
	var id [16]byte
	b, err := hex.DecodeString(s)
	if err != nil || len(b) != 16 {
		return id, errors.New("want 32 hex digits")
	}
	copy(id[:], b)
	return id, nil
}

// readMemberJSON reads a member's member.json and checks it belongs to cfg.
// A missing directory or member.json is ErrMemberGone (an unmounted mount
// point looks like that); a garbled one or one of another pool is an error.
func readMemberJSON(fsys FS, cfg Config, m MemberConfig) (memberJSON, error) {
	return readMemberJSONIn(fsys, nil, cfg, m)
}

// readMemberJSONIn is readMemberJSON for members of either kind: an
// object-store member's member.json is read from its store (opened
// through stores), and a store that does not answer makes it gone.
func readMemberJSONIn(fsys FS, stores *objStores, cfg Config, m MemberConfig) (memberJSON, error) {
	var mj memberJSON
	name := filepath.Join(m.Path, memberFile)
	var b []byte
	var err error
	if m.Kind == KindS3 {
		name = m.Path + "/" + memberFile
		b, err = readObjectMemberJSON(stores, m)
	} else {
		b, err = readFile(fsys, name)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return mj, fmt.Errorf("pool: member %d %s: no %s: %w", m.Index, m.Path, memberFile, ErrMemberGone)
	}
	if err != nil {
		return mj, fmt.Errorf("pool: member %d: read %s: %w", m.Index, name, err)
	}
	if err := json.Unmarshal(b, &mj); err != nil {
		return mj, fmt.Errorf("pool: member %d: %s is unreadable (%v): %w", m.Index, name, err, ErrCorrupt)
	}
	switch {
	case mj.Config.ID != cfg.ID:
		return mj, fmt.Errorf("pool: member %d: %s belongs to pool %q, not %q: %w", m.Index, name, mj.Config.ID, cfg.ID, ErrCorrupt)
	case mj.MemberID != m.ID:
		return mj, fmt.Errorf("pool: member %d: %s has member id %q, pool.json says %q: %w", m.Index, name, mj.MemberID, m.ID, ErrCorrupt)
	}
	return mj, nil
}
