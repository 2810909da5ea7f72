package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snapfs/snapfs/objstore"
	"github.com/snapfs/snapfs/pool"
)

// TestAsyncReplicaRemove: pool remove-member of an asynchronous replica
// (caught up, or failing with a backlog) stops its uploader, drops its
// stage and forgets it, keeping its bucket: the pool as of the bucket's
// newest complete checkpoint, which still imports alone. Writes after it
// get no replica copy; Check and fsck are clean, before and after a
// reopen. Removing the last member that holds counted copies while a
// replica remains is refused in one line, changing nothing.
func TestAsyncReplicaRemove(t *testing.T) {
	tests := []struct {
		name    string
		failing bool   // the bucket refuses every operation from the removal on
		remove  string // "replica" or "disk"
		refused string // "" = removed
	}{
		{"replica caught up", false, "replica", ""},
		{"replica failing with a backlog", true, "replica", ""},
		{"the last counted member", false, "disk", "only member besides asynchronous replicas"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			mem := objstore.NewMem("replica")
			open := func(objstore.Config) (objstore.Store, error) { return mem, nil }
			disk := filepath.Join(root, "disk")
			os.Mkdir(disk, 0o755)
			dir := filepath.Join(root, "pool")
			const url = "s3://replica/pool"
			if err := pool.Create(dir, pool.CreateOptions{Members: []string{disk, url}, Domains: []string{"local", ""}, Copies: 1,
				ObjectStores: open, Async: map[string]bool{url: true}}); err != nil {
				t.Fatal(err)
			}
			oo := pool.OpenOptions{ObjectStores: open, ObjectSize: 256 << 10, SealInterval: 10 * time.Millisecond}
			p, err := pool.Open(dir, oo)
			if err != nil {
				t.Fatal(err)
			}
			s, v := openNoAutoCheckpoint(t, p)
			files := map[uint64][]byte{}
			for i := 0; i < 8; i++ {
				d := randBytes(100 << 10)
				files[writeTestFile(t, s, v, "f"+string(rune('a'+i)), d)] = d
			}
			if err := s.Sync(); err != nil {
				t.Fatal(err)
			}
			waitComplete(t, p, 1)
			ck, err := s.Checkpoint("replica caught up")
			if err != nil {
				t.Fatal(err)
			}
			waitCaughtUp(t, p, 1, ck.Seq)
			stage := filepath.Join(dir, "stage", p.Config().Members[1].ID)
			if tc.failing {
				mem.SetFault(func(op, key string) error { return errors.New("HTTP 503") })
				for i := 0; i < 3; i++ { // a backlog the bucket never gets
					d := randBytes(100 << 10)
					files[writeTestFile(t, s, v, "late"+string(rune('a'+i)), d)] = d
				}
				if err := s.Sync(); err != nil {
					t.Fatal(err)
				}
				waitReplicaErr(t, p, 1)
				if st, _ := p.Replica(1); st.Backlog == 0 {
					t.Fatalf("no backlog with the bucket failing: %+v", st)
				}
			}
			before := mem.Clone("before")
			target := url
			if tc.remove == "disk" {
				target = disk
			}
			r, err := s.RemoveMember(target, RemoveOptions{})
			mem.SetFault(nil)
			if tc.refused != "" {
				if err == nil || !strings.Contains(err.Error(), tc.refused) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("RemoveMember(%s) = %+v, %v: want one line saying %q", target, r, err, tc.refused)
				}
				if n := len(p.Config().Members); n != 2 || p.Removed(0) || p.Removed(1) {
					t.Fatalf("a refused removal changed the members: %+v", p.Config().Members)
				}
				checkFiles(t, s, v, files)
				if err := s.Check(); err != nil {
					t.Fatal(err)
				}
				return
			}
			if err != nil || !r.Removed || r.BucketKept == "" {
				t.Fatalf("RemoveMember(replica) = %+v, %v", r, err)
			}
			if _, err := os.Stat(stage); !errors.Is(err, os.ErrNotExist) {
				t.Fatalf("the replica's stage is still there: %v", err)
			}
			if len(p.Replicas()) != 0 || !p.Removed(1) {
				t.Fatalf("replica still in the pool: %v", p.Replicas())
			}
			// The bucket is as it was: the pool as of its last checkpoint.
			for _, k := range []string{"member.json", "packs/"} {
				a, _ := before.List(context.Background(), k)
				b, _ := mem.List(context.Background(), k)
				if len(a) == 0 || len(a) != len(b) {
					t.Fatalf("the bucket's %s changed on removal: %d -> %d objects", k, len(a), len(b))
				}
			}
			d := randBytes(50 << 10)
			files[writeTestFile(t, s, v, "after", d)] = d
			if err := s.Sync(); err != nil {
				t.Fatal(err)
			}
			checkFiles(t, s, v, files)
			if err := s.Check(); err != nil {
				t.Fatal(err)
			}
			if fr, err := s.Fsck(FsckOptions{}); err != nil || len(fr.Problems) != 0 {
				t.Fatalf("fsck: %v %v", fr.Problems, err)
			}
			s.Close()
			p.Close()
			p, err = pool.Open(dir, oo)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			s, v = openNoAutoCheckpoint(t, p)
			checkFiles(t, s, v, files)
			if err := s.Check(); err != nil {
				t.Fatal(err)
			}
			// The kept bucket imports alone, as of the checkpoint it held
			// (the first 8 files).
			importAndCheck(t, url, func(objstore.Config) (objstore.Store, error) { return mem.Clone("kept"), nil }, nil, firstFiles(files, 8))
		})
	}
}

// firstFiles returns the n files of files with the lowest inode numbers
// (the first written).
func firstFiles(files map[uint64][]byte, n int) map[uint64][]byte {
	var inos []uint64
	for ino := range files {
		inos = append(inos, ino)
	}
	for i := range inos {
		for j := i + 1; j < len(inos); j++ {
			if inos[j] < inos[i] {
				inos[i], inos[j] = inos[j], inos[i]
			}
		}
	}
	out := map[uint64][]byte{}
	for _, ino := range inos[:min(n, len(inos))] {
		out[ino] = files[ino]
	}
	return out
}
