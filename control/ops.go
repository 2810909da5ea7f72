package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"

	"github.com/snapfs/snapfs/pool"
	"github.com/snapfs/snapfs/snap"
	"github.com/snapfs/snapfs/store"
	"github.com/snapfs/snapfs/stream"
)

// handler runs one op with its raw JSON arguments.
type handler func(s *Server, p peer, args json.RawMessage) (any, error)

var handlers map[string]handler

func init() {
	handlers = map[string]handler{
		OpVolumeCreate:    (*Server).volumeCreate,
		OpVolumeList:      (*Server).volumeList,
		OpSnapshotCreate:  (*Server).snapshotCreate,
		OpSnapshotList:    (*Server).snapshotList,
		OpSnapshotDestroy: (*Server).snapshotDestroy,
		OpSnapshotRename:  (*Server).snapshotRename,
		OpBranchCreate:    (*Server).branchCreate,
		OpBranchDestroy:   (*Server).branchDestroy,
		OpPoolStatus:      (*Server).poolStatus,
		OpSync:            (*Server).sync,
		OpMount:           (*Server).mount,
		OpFsck:            (*Server).fsck,
		OpScrub:           (*Server).scrub,
		OpAddMember:       (*Server).addMember,
		OpRollback:        (*Server).rollback,
		OpSnapshotMany:    (*Server).snapshotCreateMany,
		OpRemoveMember:    (*Server).removeMember,
		OpPoolProgress:    (*Server).poolProgress,
		OpSetCopies:       (*Server).setCopies,
		OpRepack:          (*Server).repack,
		OpDebugStacks:     (*Server).debugStacks,
		OpScheduleSet:     (*Server).scheduleSet,
		OpScheduleList:    (*Server).scheduleList,
		OpScheduleClear:   (*Server).scheduleClear,
		OpSnapshotHold:    (*Server).snapshotHold,
		OpSnapshotRelease: (*Server).snapshotRelease,
		OpSnapshotHolds:   (*Server).snapshotHolds,
		OpVolumeDestroy:   (*Server).volumeDestroy,
		OpVolumeRename:    (*Server).volumeRename,
		OpVolumeSet:       (*Server).volumeSet,
		OpVolumeGet:       (*Server).volumeGet,
		OpStreamSend:      (*Server).streamSend,
		OpStreamReceive:   (*Server).streamReceive,
		OpStreamAbort:     (*Server).streamAbort,
		OpDiff:            (*Server).diff,
		OpVersions:        (*Server).versions,
	}
}

// codedError is an error the server itself raises, with its code.
type codedError struct {
	code, msg string
}

func (e *codedError) Error() string { return e.msg }

// Errorf returns an error that the server reports with code, for
// handlers such as the daemon's Mount.
func Errorf(code, format string, args ...any) error {
	return &codedError{code, fmt.Sprintf(format, args...)}
}

// Code returns the protocol error code of err.
func Code(err error) string {
	var ce *codedError
	switch {
	case errors.As(err, &ce):
		return ce.code
	case stream.Code(err) != "":
		return stream.Code(err)
	case errors.Is(err, snap.ErrHasBranches), errors.Is(err, store.ErrBusy):
		return "EBUSY"
	case errors.Is(err, store.ErrVolumeExists), errors.Is(err, store.ErrExists):
		return "EEXIST"
	case errors.Is(err, store.ErrNoVolume), errors.Is(err, store.ErrNotFound):
		return "ENOENT"
	case errors.Is(err, store.ErrNotEmpty):
		return "ENOTEMPTY"
	case errors.Is(err, store.ErrNameTooLong):
		return "ENAMETOOLONG"
	case errors.Is(err, store.ErrBadName), errors.Is(err, store.ErrInvalid):
		return "EINVAL"
	case errors.Is(err, store.ErrNoSpace):
		return "ENOSPC"
	case errors.Is(err, store.ErrQuota):
		return "EDQUOT"
	case errors.Is(err, store.ErrPerm):
		return "EPERM"
	case errors.Is(err, store.ErrReadOnly):
		return "EROFS"
	}
	return poolCode(err)
}

// poolCode is the code of the pool's own refusals.
func poolCode(err error) string {
	switch {
	case errors.Is(err, pool.ErrNotMember):
		return "ENOENT"
	case errors.Is(err, pool.ErrLastMember):
		return "EBUSY"
	case errors.Is(err, pool.ErrTooFewDomains):
		return "EINVAL"
	case errors.Is(err, pool.ErrNoSpace):
		return "ENOSPC"
	}
	return "EIO"
}

// decode unmarshals args strictly: unknown fields are EINVAL.
func decode(args json.RawMessage, v any) error {
	if len(args) == 0 {
		args = []byte("{}")
	}
	d := json.NewDecoder(bytes.NewReader(args))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return Errorf("EINVAL", "bad arguments: %v", err)
	}
	return nil
}

// need reports the first empty required argument.
func need(pairs ...string) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		if pairs[i+1] == "" {
			return Errorf("EINVAL", "missing argument %q", pairs[i])
		}
	}
	return nil
}

// mayChange checks that p may change the snapshots of dataset ds (a
// volume or a branch path): root or the owner of its volume, as through
// .snapshots.
func (s *Server) mayChange(p peer, ds string) error {
	vol := snap.VolumeOf(ds)
	v, err := s.st.Volume(vol)
	if err != nil {
		return err
	}
	if p.uid != 0 && p.uid != v.Uid {
		return Errorf("EPERM", "permission denied: only root and the owner of volume %s may change its snapshots", vol)
	}
	return nil
}

func (s *Server) volumeCreate(p peer, raw json.RawMessage) (any, error) {
	var a VolumeCreateArgs
	if err := decode(raw, &a); err != nil {
		return nil, err
	}
	if err := need("vol", a.Vol); err != nil {
		return nil, err
	}
	o := store.VolumeOptions{Quota: a.Quota, ChunkSize: a.ChunkSize, Uid: p.uid, Gid: p.uid}
	if a.Uid != nil || a.Gid != nil {
		if p.uid != 0 {
			return nil, Errorf("EPERM", "permission denied: only root may create a volume for another owner")
		}
		if a.Uid != nil {
			o.Uid = *a.Uid
		}
		if a.Gid != nil {
			o.Gid = *a.Gid
		}
	}
	v, err := s.st.CreateVolume(a.Vol, o)
	if err != nil {
		return nil, err
	}
	return s.volumeOf(v)
}

// volumeOf describes a volume, with what its snapshots and branches use.
func (s *Server) volumeOf(v store.VolumeInfo) (Volume, error) {
	vs, err := s.snaps.VolumeSpace(v.Name)
	if err != nil {
		return Volume{}, err
	}
	return Volume{Name: v.Name, Used: v.Used, Files: v.Files, Quota: v.Quota, ChunkSize: v.ChunkSize,
		Uid: v.Uid, Gid: v.Gid, Created: v.Created, UsedBySnapshots: vs.Snapshots, UsedByBranches: vs.Branches}, nil
}

func (s *Server) volumeList(p peer, raw json.RawMessage) (any, error) {
	if err := decode(raw, &struct{}{}); err != nil {
		return nil, err
	}
	vols, err := s.st.Volumes()
	if err != nil {
		return nil, err
	}
	out := make([]Volume, 0, len(vols))
	for _, v := range vols {
		x, err := s.volumeOf(v)
		if err != nil {
			return nil, err
		}
		out = append(out, x)
	}
	return out, nil
}

func snapshotOf(x snap.Snapshot) Snapshot {
	return Snapshot{Volume: x.Volume, Name: x.Name, Kind: x.Kind.String(), Epoch: x.Epoch, ViewID: x.ViewID,
		Created: x.Created, PauseNs: int64(x.Pause), Parent: x.Parent,
		Referenced: x.Referenced, Written: x.Written, Unique: x.Unique, HeldBy: x.HeldBy,
		Holds: HoldTags(x.Holds), Auto: x.Auto}
}

// changeArgs decodes the vol and name of a request that changes a volume's
// snapshots or branches, and checks that the peer may change them.
func (s *Server) changeArgs(p peer, raw json.RawMessage) (SnapshotArgs, error) {
	var a SnapshotArgs
	err := s.decodeChange(p, raw, &a, func() (string, []string) { return a.Vol, []string{"vol", a.Vol, "name", a.Name} })
	return a, err
}

// decodeChange decodes raw into a, then checks the required arguments
// (name/value pairs) and that p may change the dataset, both given by req
// once a is decoded.
func (s *Server) decodeChange(p peer, raw json.RawMessage, a any, req func() (vol string, pairs []string)) error {
	if err := decode(raw, a); err != nil {
		return err
	}
	vol, pairs := req()
	if err := need(pairs...); err != nil {
		return err
	}
	return s.mayChange(p, vol)
}

// snapshotCreate runs to completion once started, even if the client
// goes away: a snapshot that exists is never reported as interrupted.
func (s *Server) snapshotCreate(p peer, raw json.RawMessage) (any, error) {
	a, err := s.changeArgs(p, raw)
	if err != nil {
		return nil, err
	}
	x, err := s.snaps.Create(a.Vol, a.Name)
	if err != nil {
		return nil, err
	}
	return snapshotOf(x), nil
}

func (s *Server) snapshotCreateMany(p peer, raw json.RawMessage) (any, error) {
	var a CreateManyArgs
	if err := decode(raw, &a); err != nil {
		return nil, err
	}
	if err := need("name", a.Name); err != nil {
		return nil, err
	}
	if len(a.Vols) == 0 {
		return nil, Errorf("EINVAL", "missing argument %q", "vols")
	}
	for _, v := range a.Vols {
		if err := s.mayChange(p, v); err != nil {
			return nil, err
		}
	}
	l, err := s.snaps.CreateMany(a.Vols, a.Name)
	if err != nil {
		return nil, err
	}
	out := make([]Snapshot, 0, len(l))
	for _, x := range l {
		out = append(out, snapshotOf(x))
	}
	return out, nil
}

func (s *Server) snapshotList(p peer, raw json.RawMessage) (any, error) {
	var a VolumeArgs
	if err := decode(raw, &a); err != nil {
		return nil, err
	}
	if err := need("vol", a.Vol); err != nil {
		return nil, err
	}
	l, err := s.snaps.List(a.Vol)
	if err != nil {
		return nil, err
	}
	out := make([]Snapshot, 0, len(l))
	for _, x := range l {
		out = append(out, snapshotOf(x))
	}
	return out, nil
}

func (s *Server) snapshotDestroy(p peer, raw json.RawMessage) (any, error) {
	a, err := s.changeArgs(p, raw)
	if err != nil {
		return nil, err
	}
	return Empty{}, s.snaps.Destroy(a.Vol, a.Name)
}

func (s *Server) rollback(p peer, raw json.RawMessage) (any, error) {
	var a RollbackArgs
	if err := s.decodeChange(p, raw, &a, func() (string, []string) { return a.Vol, []string{"vol", a.Vol, "name", a.Name} }); err != nil {
		return nil, err
	}
	st, err := s.snaps.Rollback(a.Vol, a.Name, a.Recursive)
	if err != nil {
		return nil, err
	}
	return RollbackResult{Versions: st.Versions, Chunks: st.Chunks, TookNs: int64(st.Took)}, nil
}

func (s *Server) snapshotRename(p peer, raw json.RawMessage) (any, error) {
	var a RenameArgs
	if err := s.decodeChange(p, raw, &a, func() (string, []string) { return a.Vol, []string{"vol", a.Vol, "old", a.Old, "new", a.New} }); err != nil {
		return nil, err
	}
	return Empty{}, s.snaps.Rename(a.Vol, a.Old, a.New)
}

func (s *Server) branchCreate(p peer, raw json.RawMessage) (any, error) {
	var a BranchArgs
	if err := s.decodeChange(p, raw, &a, func() (string, []string) { return a.Vol, []string{"vol", a.Vol, "from", a.From, "name", a.Name} }); err != nil {
		return nil, err
	}
	x, err := s.snaps.CreateBranch(a.Vol, a.From, a.Name)
	if err != nil {
		return nil, err
	}
	return snapshotOf(x), nil
}

// branchDestroy destroys branch Name of dataset Vol; with Recursive, its
// snapshots and branches at every depth too.
func (s *Server) branchDestroy(p peer, raw json.RawMessage) (any, error) {
	var a BranchDestroyArgs
	if err := s.decodeChange(p, raw, &a, func() (string, []string) { return a.Vol, []string{"vol", a.Vol, "name", a.Name} }); err != nil {
		return nil, err
	}
	if err := s.notMounted(a.Vol+"/"+a.Name, a.Recursive); err != nil {
		return nil, err
	}
	if a.Recursive {
		return Empty{}, s.snaps.DestroyBranchRecursive(a.Vol, a.Name)
	}
	return Empty{}, s.snaps.DestroyBranch(a.Vol, a.Name)
}

// notMounted refuses (EBUSY) to destroy branch ds while it, or with
// recursive a branch below it, is mounted on its own. A path that does
// not resolve, and a branch with snapshots or branches when not
// recursive, are left to the destroy to report (its EBUSY names them).
func (s *Server) notMounted(ds string, recursive bool) error {
	if s.MountedAt == nil {
		return nil
	}
	v, err := s.snaps.LiveView(ds)
	if err != nil {
		return nil
	}
	l, err := s.snaps.List(ds)
	if err != nil {
		return err
	}
	if !recursive && len(l) > 0 {
		return nil
	}
	if at, ok := s.MountedAt(v.ID); ok {
		return Errorf("EBUSY", "branch %s is mounted at %s: unmount it first", ds, at)
	}
	for _, x := range l {
		if x.Kind == snap.KindBranch {
			if err := s.notMounted(ds+"/"+x.Name, true); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Server) poolStatus(p peer, raw json.RawMessage) (any, error) {
	var a PoolStatusArgs
	if len(raw) > 0 && string(raw) != "null" {
		if err := decode(raw, &a); err != nil {
			return nil, err
		}
	}
	return StatusOf(s.dir, s.pool, s.st, s.snaps, a.Verbose)
}

// StatusOf builds the pool status of the open pool p and store st (the
// daemon's, or the CLI's when no daemon runs): configuration, space,
// health; with verbose, the files of each damaged chunk in every view.
func StatusOf(dir string, p *pool.Pool, st *store.Store, snaps *snap.Manager, verbose bool) (PoolStatus, error) {
	cfg := p.Config()
	out := PoolStatus{Pool: dir, ID: cfg.ID, Copies: cfg.Copies, ChunkSize: cfg.ChunkSize, Members: []MemberStatus{}}
	var views []store.NamedView
	if verbose {
		var err error
		if views, err = snaps.NamedViews(); err != nil {
			return out, err
		}
	}
	h, err := st.Health(views)
	if err != nil {
		return out, err
	}
	out.State, out.UnderReplicated, out.Damaged, out.ReadRepairs = h.State, h.UnderReplicated, h.Damaged, h.ReadRepairs
	out.InternalErrors = h.InternalErrors
	if out.Damaged == nil {
		out.Damaged = []store.DamagedChunk{}
	}
	health := map[string]pool.MemberHealth{}
	for _, m := range h.Members {
		health[m.Path] = m
	}
	stats, err := p.Stats()
	if err != nil {
		return out, err
	}
	if out.Logical, out.Stored, out.Chunks, err = st.PoolUsage(); err != nil {
		return out, err
	}
	for _, m := range stats.Members {
		mh := health[m.Path]
		if mh.State == "" {
			mh.State = pool.StateOK
		}
		out.Members = append(out.Members, MemberStatus{Path: m.Path, Domain: m.Domain, State: mh.State, Problem: mh.Problem,
			ReadErrors: mh.ReadErrors, FailsReads: mh.FailsReads, Used: m.Used, Free: m.Free, Total: m.Total, Packs: m.Packs,
			Kind: m.Kind, Objects: m.Objects, BacklogBytes: m.Backlog, BacklogAgeSeconds: m.BacklogAge.Seconds(), Async: m.Async, ReplicaComplete: m.ReplicaComplete})
	}
	out.Used, out.Free, out.Total = stats.Used, stats.Free, stats.Total
	return out, nil
}

func (s *Server) sync(p peer, raw json.RawMessage) (any, error) {
	if err := decode(raw, &struct{}{}); err != nil {
		return nil, err
	}
	// Dirty pages of mounts with the kernel writeback cache first: what
	// write(2) returned is what sync makes durable.
	if err := s.snaps.FlushWriteCaches(); err != nil {
		return nil, err
	}
	return Empty{}, s.st.Sync()
}

func (s *Server) mount(p peer, raw json.RawMessage) (any, error) {
	var a MountArgs
	if err := decode(raw, &a); err != nil {
		return nil, err
	}
	if err := need("vol", a.Vol, "mountpoint", a.Mountpoint); err != nil {
		return nil, err
	}
	if !filepath.IsAbs(a.Mountpoint) {
		return nil, Errorf("EINVAL", "mountpoint %q is not absolute", a.Mountpoint)
	}
	if s.Mount == nil {
		return nil, Errorf("EOPNOTSUPP", "this server does not mount volumes")
	}
	if _, err := s.snaps.LiveView(a.Vol); err != nil {
		return nil, err
	}
	return Empty{}, s.Mount(a)
}

// fsck, scrub and addMember are pool-wide maintenance: the connection
// check already limits the socket to root and the pool directory's owner.
func (s *Server) fsck(p peer, raw json.RawMessage) (any, error) {
	var a FsckArgs
	if err := decode(raw, &a); err != nil {
		return nil, err
	}
	r, err := s.st.Fsck(store.FsckOptions{Repair: a.Repair, Progress: func(sp store.ScanProgress) {
		s.progressMu.Lock()
		s.progress = Progress{Task: "fsck", Fsck: &sp}
		s.progressMu.Unlock()
	}})
	s.setProgress("", nil)
	return r, err
}

// scrub runs a scrub that yields to the mounted volumes (store.scrubPacer)
// and stops, saving its cursor, when the client hangs up or the daemon
// stops; pool.progress reports on it meanwhile.
func (s *Server) scrub(p peer, raw json.RawMessage) (any, error) {
	var a ScrubArgs
	if err := decode(raw, &a); err != nil {
		return nil, err
	}
	if a.Rate < 0 {
		return nil, Errorf("EINVAL", "scrub rate %d is negative", a.Rate)
	}
	o := store.ScrubOptions{NoRepair: a.NoRepair, Restart: a.Restart, Rate: a.Rate, Yield: true, Context: p.ctx,
		Progress: func(r store.ScrubReport) {
			s.progressMu.Lock()
			s.progress = Progress{Task: "scrub", Scrub: &r}
			s.progressMu.Unlock()
		}}
	r, err := s.st.Scrub(o)
	s.setProgress("", nil)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// decodeMember decodes the arguments of a member op into a, whose member
// directory *dir must be given and absolute.
func decodeMember(raw json.RawMessage, a any, dir *string) error {
	if err := decode(raw, a); err != nil {
		return err
	}
	if err := need("dir", *dir); err != nil {
		return err
	}
	if !filepath.IsAbs(*dir) && !strings.Contains(*dir, "://") {
		return Errorf("EINVAL", "member directory %q is not absolute", *dir)
	}
	return nil
}

func (s *Server) addMember(p peer, raw json.RawMessage) (any, error) {
	var a AddMemberArgs
	if err := decodeMember(raw, &a, &a.Dir); err != nil {
		return nil, err
	}
	add := s.pool.AddObjectMember
	if a.Async {
		add = s.pool.AddReplica // the store's backfill copies the chunks up
	}
	m, err := add(a.Dir, a.Domain, a.Object)
	if err != nil {
		return nil, err
	}
	return MemberStatus{Path: m.Path, Domain: m.Domain, State: "ok"}, nil
}

// removeMember evacuates and removes a member; pool.progress reports on
// it meanwhile (from another connection).
func (s *Server) removeMember(p peer, raw json.RawMessage) (any, error) {
	var a RemoveMemberArgs
	if err := decodeMember(raw, &a, &a.Dir); err != nil {
		return nil, err
	}
	o := store.RemoveOptions{Progress: func(r store.RemoveReport) { s.setProgress("remove-member", &r) }}
	r, err := s.st.RemoveMember(a.Dir, o)
	s.setProgress("", nil)
	if err != nil {
		return nil, err
	}
	return r, nil
}

func (s *Server) setProgress(task string, r *store.RemoveReport) {
	s.progressMu.Lock()
	s.progress = Progress{Task: task, Remove: r}
	s.progressMu.Unlock()
}

func (s *Server) poolProgress(p peer, raw json.RawMessage) (any, error) {
	if err := decode(raw, &struct{}{}); err != nil {
		return nil, err
	}
	s.progressMu.Lock()
	defer s.progressMu.Unlock()
	return s.progress, nil
}

func (s *Server) setCopies(p peer, raw json.RawMessage) (any, error) {
	var a SetCopiesArgs
	if err := decode(raw, &a); err != nil {
		return nil, err
	}
	return Empty{}, s.pool.SetCopies(a.Copies)
}

// repack rewrites mostly-empty packs; pool.progress reports on it.
func (s *Server) repack(p peer, raw json.RawMessage) (any, error) {
	if err := decode(raw, &struct{}{}); err != nil {
		return nil, err
	}
	o := store.RepackOptions{Progress: func(r store.RepackReport) {
		s.progressMu.Lock()
		s.progress = Progress{Task: "repack", Repack: &r}
		s.progressMu.Unlock()
	}}
	r, err := s.st.Repack(o)
	s.setProgress("", nil)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// debugStacks writes every goroutine's stack to the daemon's log.
func (s *Server) debugStacks(p peer, raw json.RawMessage) (any, error) {
	if err := decode(raw, &struct{}{}); err != nil {
		return nil, err
	}
	if p.uid != 0 && p.uid != uint32(os.Geteuid()) {
		return nil, Errorf("EPERM", "permission denied: only root and the daemon's user may ask for its stacks")
	}
	stacks := store.AllStacks()
	logf := s.Logf
	if logf == nil {
		logf = log.Printf
	}
	logf("snapfs: debug stacks asked by uid %d:\n%s", p.uid, stacks)
	return DebugStacks{Goroutines: bytes.Count(stacks, []byte("\ngoroutine ")) + 1, Bytes: len(stacks)}, nil
}
