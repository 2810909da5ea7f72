package pool

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/snapfs/snapfs/objstore"
)

// Removing an object-store member
//
// pool remove-member takes an object-store member out exactly as it
// takes a directory (remove.go): the store moves every record the
// metadata names there to other members, refusing first when the others
// could not keep the pool's copies, ships a checkpoint that no longer
// names the member's records (store.shipBeforeDropping: older
// checkpoints are deleted once a newer one is complete on every target),
// and only then ForgetMember marks the member removed and cleans up what
// the pool kept for it:
//
//   - the local stage (POOL/stage/<member-id>), whose records are all
//     dead by then;
//   - the member's objects in the bucket: its sealed packs and its
//     checkpoints, then member.json last, so that a crash half way leaves
//     the prefix still marked as this pool's (and pool create refusing
//     it, naming the pool) rather than looking empty while it is not.
//     Keys the pool did not write are left alone.
//
// An asynchronous replica's bucket is kept: it is an off-site copy of
// the pool as of the newest checkpoint complete there (consistent: the
// store stopped staging checkpoints for it when it began draining, and
// its uploader is stopped before the stage is removed), importable with
// pool import. Removing the replica ends the replication, as deleting an
// SRDF pair or a replication task leaves the remote copy; deleting the
// only off-site copy of the data would be the one step here that cannot
// be undone, so it is left to the user (the store's tools, or pool
// import and then remove-member of it from the imported pool).
//
// A member whose store does not answer when it is forgotten keeps its
// objects (as a missing disk keeps its packs); its stage is removed all
// the same. Deleting failures leave the member removed and say what is
// left, as for a directory whose files could not be deleted.

// memberIndexByURL finds the live object-store member named url.
func (p *Pool) memberIndexByURL(url string) (uint16, error) {
	want := strings.TrimSuffix(url, "/")
	for _, mc := range p.Config().Members {
		if mc.Kind == KindS3 && strings.TrimSuffix(mc.Path, "/") == want && !mc.Removed {
			return mc.Index, nil
		}
	}
	return 0, refuse(ErrNotMember, "pool: %s is not a member of pool %s", url, p.dir)
}

// forgetObjectFiles cleans up after forgotten object-store member m:
// its stage, then its objects (when its store answers).
func (p *Pool) forgetObjectFiles(m *member) error {
	p.ahead.dropMember(m.idx)
	if p.cache != nil {
		p.cache.dropMember(m)
	}
	var errs []error
	if m.dir != "" && !m.readOnly {
		if err := removeTree(m.fs, m.dir); err != nil {
			errs = append(errs, fmt.Errorf("remove stage %s: %w", m.dir, err))
		}
	}
	if m.obj != nil && !m.cfg.Async {
		if err := deleteMemberObjects(m.obj); err != nil {
			errs = append(errs, err)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("pool: member %s was removed, but cleaning up after it failed (delete what is left with the store's tools): %w", m.cfg.Path, err)
	}
	return nil
}

// deleteMemberObjects deletes the pool's objects under st's prefix:
// sealed packs and checkpoint files, then member.json. Other keys stay.
func deleteMemberObjects(st objstore.Store) error {
	ctx := context.Background()
	infos, err := st.List(ctx, "")
	if err != nil {
		return fmt.Errorf("list %s: %w", st, err)
	}
	var errs []error
	for _, in := range infos {
		if strings.HasPrefix(in.Key, objPacks) || strings.HasPrefix(in.Key, checkpointsDir+"/") {
			if err := st.Delete(ctx, in.Key); err != nil {
				errs = append(errs, fmt.Errorf("delete %s %s: %w", st, in.Key, err))
			}
		}
	}
	if len(errs) > 0 {
		return errors.Join(errs...) // member.json stays: the prefix is still ours
	}
	if err := st.Delete(ctx, memberFile); err != nil {
		return fmt.Errorf("delete %s %s: %w", st, memberFile, err)
	}
	return nil
}
