package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snapfs/snapfs/objstore"
	"github.com/snapfs/snapfs/pool"
)

const objectPoolURL = "s3://store-test/pool"

// TestObjectMemberRemove: pool remove-member of an object-store member
// moves every record it holds to the other members, refuses (changing
// nothing) when they could not keep the pool's copies, and once the
// member is forgotten deletes its stage and the pool's objects in the
// bucket (packs, checkpoints, member.json last). A failed delete leaves
// the member removed and says so. The files read back, before and after
// a reopen, with Check and fsck clean.
func TestObjectMemberRemove(t *testing.T) {
	tests := []struct {
		name         string
		dirs, copies int
		deletesFail  bool
		want         error // nil: removed
	}{
		{"directory and object, copies 1", 1, 1, false, nil},
		{"two directories and object, copies 2", 2, 2, false, nil},
		{"deletes in the bucket fail", 1, 1, true, nil},
		{"too few domains left", 1, 2, false, pool.ErrTooFewDomains},
		{"the only member", 0, 1, false, pool.ErrLastMember},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			op := newObjectPool(t, tc.dirs, tc.copies)
			files := fillAndThin(t, op.s, op.v, 20, 2)
			if _, err := op.s.Checkpoint("before the removal"); err != nil {
				t.Fatal(err)
			}
			stage := filepath.Join(op.dir, "stage", op.p.Config().Members[op.objs].ID)
			before := bucketKeys(t, op.mem)
			if tc.deletesFail {
				op.mem.SetFault(func(o, key string) error {
					if o == "delete" {
						return errors.New("AccessDenied")
					}
					return nil
				})
			}
			r, err := op.s.RemoveMember(objectPoolURL+"/", RemoveOptions{})
			op.mem.SetFault(nil)
			switch {
			case tc.want != nil:
				if !errors.Is(err, tc.want) || r.Removed {
					t.Fatalf("remove: %+v, %v; want %v", r, err, tc.want)
				}
				if got := bucketKeys(t, op.mem); len(got) != len(before) {
					t.Fatalf("a refused removal changed the bucket: %d keys, were %d", len(got), len(before))
				}
				if _, err := os.Stat(stage); err != nil {
					t.Fatalf("a refused removal touched the stage: %v", err)
				}
			case tc.deletesFail:
				if err == nil || !strings.Contains(err.Error(), "cleaning up") {
					t.Fatalf("remove with failing deletes: %+v, %v", r, err)
				}
				if mc := op.p.Config().Members[op.objs]; !mc.Removed {
					t.Fatal("the member is not removed")
				}
			default:
				if err != nil || !r.Removed || r.Moved+r.Dropped == 0 {
					t.Fatalf("remove: %+v, %v", r, err)
				}
				if got := bucketKeys(t, op.mem); len(got) != 0 {
					t.Fatalf("the bucket still holds %v", got)
				}
				if _, err := os.Stat(stage); !os.IsNotExist(err) {
					t.Fatalf("the stage %s is still there: %v", stage, err)
				}
			}
			checkFiles(t, op.s, op.v, files)
			if err := op.s.Check(); err != nil {
				t.Fatal(err)
			}
			if fr, err := op.s.Fsck(FsckOptions{}); err != nil || len(fr.Problems) != 0 {
				t.Fatalf("fsck: %v %v", fr.Problems, err)
			}
			op.reopen(t, nil)
			checkFiles(t, op.s, op.v, files)
			if err := op.s.Check(); err != nil {
				t.Fatal(err)
			}
			if tc.want == nil {
				if _, err := op.s.RemoveMember(objectPoolURL, RemoveOptions{}); !errors.Is(err, pool.ErrNotMember) {
					t.Fatalf("a second removal: %v, want ErrNotMember", err)
				}
			}
		})
	}
}

// bucketKeys lists every key of the store.
func bucketKeys(t *testing.T, st objstore.Store) []string {
	t.Helper()
	infos, err := st.List(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, in := range infos {
		keys = append(keys, in.Key)
	}
	return keys
}
