package store

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"testing"
	"time"

	"github.com/snapfs/snapfs/pool/pooltest"
	"github.com/zeebo/blake3"
)

func stagedChunkOf(b []byte) StagedChunk {
	return StagedChunk{Hash: blake3.Sum256(b), Data: b}
}

// TestStagedChunks walks the staging cases one by one: every row runs
// its steps on a fresh store and ends with Check (NewTestStore's cleanup).
func TestStagedChunks(t *testing.T) {
	a, b := randBytes(64<<10), randBytes(3000)
	cases := []struct {
		name string
		run  func(t *testing.T, s *Store, v View)
	}{
		{"staged then released frees the bytes", func(t *testing.T, s *Store, v View) {
			st := newStage(t, s)
			stage(t, s, st, a, b)
			wantChunks(t, s, 2)
			release(t, s, st)
			wantChunks(t, s, 0)
		}},
		{"a hash staged twice holds one reference", func(t *testing.T, s *Store, v View) {
			st := newStage(t, s)
			stage(t, s, st, a, a)
			stage(t, s, st, a)
			if n, err := s.ChunkRefs(blake3.Sum256(a)); err != nil || n != 1 {
				t.Fatalf("refs %d, %v; want 1", n, err)
			}
			release(t, s, st)
		}},
		{"set chunks into a file, then release: the file keeps them", func(t *testing.T, s *Store, v View) {
			st := newStage(t, s)
			stage(t, s, st, a, b)
			h := createFile(t, s, v, "f")
			cs := chunkSizeOf(t, s, h)
			setChunks(t, s, h, ChunkEntry{Index: 0, Hash: blake3.Sum256(a), Length: uint32(len(a))},
				ChunkEntry{Index: 2, Hash: blake3.Sum256(b), Length: uint32(len(b))})
			release(t, s, st)
			want := make([]byte, 2*cs+int64(len(b)))
			copy(want, a)
			copy(want[2*cs:], b)
			readStaged(t, h, want)
			if err := h.Release(); err != nil {
				t.Fatal(err)
			}
			wantChunks(t, s, 2)
		}},
		{"set chunks over data and a snapshot keeps the old bytes", func(t *testing.T, s *Store, v View) {
			h := createFile(t, s, v, "f")
			old := randBytes(10000)
			if _, err := h.Write(old, 0); err != nil {
				t.Fatal(err)
			}
			if err := h.Flush(); err != nil {
				t.Fatal(err)
			}
			sv, _, err := s.PinEpoch(v.Lineage, "s1", nil)
			if err != nil {
				t.Fatal(err)
			}
			st := newStage(t, s)
			stage(t, s, st, b)
			setChunks(t, s, h, ChunkEntry{Index: 0, Hash: blake3.Sum256(b), Length: uint32(len(b))})
			release(t, s, st)
			want := make([]byte, len(old)) // the whole chunk is replaced: zeros after b
			copy(want, b)
			readStaged(t, h, want)
			sh, err := s.Open(sv, h.ino, os.O_RDONLY)
			if err != nil {
				t.Fatal(err)
			}
			readStaged(t, sh, old)
			_ = sh.Release()
			_ = h.Release()
		}},
		{"a hash that is not stored is refused", func(t *testing.T, s *Store, v View) {
			h := createFile(t, s, v, "f")
			err := s.SetChunks(h, []ChunkEntry{{Index: 0, Hash: blake3.Sum256(a), Length: uint32(len(a))}})
			if !errors.Is(err, ErrNotFound) {
				t.Fatalf("got %v, want ErrNotFound", err)
			}
			readStaged(t, h, nil)
			_ = h.Release()
		}},
		{"a chunk longer than the chunk size is refused", func(t *testing.T, s *Store, v View) {
			st := newStage(t, s)
			stage(t, s, st, a)
			h := createFile(t, s, v, "f")
			err := s.SetChunks(h, []ChunkEntry{{Index: 0, Hash: blake3.Sum256(a), Length: uint32(chunkSizeOf(t, s, h) + 1)}})
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("got %v, want ErrInvalid", err)
			}
			_ = h.Release()
			release(t, s, st)
		}},
		{"staging a chunk a file holds adds a reference, no copy", func(t *testing.T, s *Store, v View) {
			h := createFile(t, s, v, "f")
			if _, err := h.Write(a, 0); err != nil {
				t.Fatal(err)
			}
			if err := h.Fsync(false); err != nil {
				t.Fatal(err)
			}
			_, before, _, _ := s.PoolUsage()
			st := newStage(t, s)
			stage(t, s, st, a)
			if _, after, _, _ := s.PoolUsage(); after != before {
				t.Fatalf("stored %d bytes, then %d: the stage wrote a second copy", before, after)
			}
			release(t, s, st)
			_ = h.Release()
			wantChunks(t, s, 1)
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, v := NewTestStore(t, 1, Options{})
			c.run(t, s, v)
		})
	}
}

// TestStagedSurvivesReopen: a stage left by a crash (the store closed
// without release) keeps its chunks, Check counts them, and a release
// after reopening frees them.
func TestStagedSurvivesReopen(t *testing.T) {
	p := pooltest.New(t, 1)
	s, _ := openTestStoreOn(t, p)
	st := newStage(t, s)
	a := randBytes(50000)
	stage(t, s, st, a)
	s, p, _ = reopenStore(t, s, p)
	if err := s.Check(); err != nil {
		t.Fatal(err)
	}
	if n, err := s.StagedCount(st); err != nil || n != 1 {
		t.Fatalf("staged %d, %v; want 1", n, err)
	}
	got, err := s.ReadChunk(blake3.Sum256(a))
	if err != nil || !bytes.Equal(got, a) {
		t.Fatalf("staged chunk reads back wrong: %v", err)
	}
	if r, err := s.Fsck(FsckOptions{}); err != nil || len(r.Problems) > 0 || r.Leaked > 0 {
		t.Fatalf("fsck: %+v, %v", r, err)
	}
	release(t, s, st)
	wantChunks(t, s, 0)
}

// TestStagedModel runs random staging, placing, overwriting and releasing
// against a model of every file's bytes; Check runs after every step.
func TestStagedModel(t *testing.T) {
	seed := time.Now().UnixNano()
	t.Logf("seed %d", seed)
	r := rand.New(rand.NewSource(seed))
	s, v := NewTestStore(t, 2, Options{})
	probe := createFile(t, s, v, "probe")
	cs := chunkSizeOf(t, s, probe)
	_ = probe.Release()
	pool := make([][]byte, 12)
	for i := range pool {
		pool[i] = randBytes(1 + r.Intn(int(cs)))
	}
	model := map[string][]byte{}
	handles := map[string]*Handle{}
	stages := map[uint64]map[int]bool{} // stage -> pool indexes staged
	for step := 0; step < 150; step++ {
		switch op := r.Intn(10); {
		case op < 3: // stage some chunks in a new or existing stage
			var st uint64
			for k := range stages {
				st = k
				break
			}
			if st == 0 || r.Intn(3) == 0 {
				st = newStage(t, s)
				stages[st] = map[int]bool{}
			}
			var in [][]byte
			for n := 1 + r.Intn(4); n > 0; n-- {
				i := r.Intn(len(pool))
				stages[st][i] = true
				in = append(in, pool[i])
			}
			stage(t, s, st, in...)
		case op < 7: // place staged chunks into a file
			var idx []int
			for _, m := range stages {
				for i := range m {
					idx = append(idx, i)
				}
			}
			if len(idx) == 0 {
				continue
			}
			name := fmt.Sprintf("f%d", r.Intn(4))
			h := handles[name]
			if h == nil {
				h = createFile(t, s, v, name)
				handles[name] = h
			}
			var es []ChunkEntry
			used := map[uint64]bool{}
			m := model[name]
			size := int64(len(m))
			for n := 1 + r.Intn(3); n > 0; n-- {
				ci := uint64(r.Intn(5))
				if used[ci] {
					continue
				}
				used[ci] = true
				d := pool[idx[r.Intn(len(idx))]]
				es = append(es, ChunkEntry{Index: ci, Hash: blake3.Sum256(d), Length: uint32(len(d))})
				lo := int64(ci) * cs
				if int64(len(m)) < lo+cs {
					m = append(m, make([]byte, lo+cs-int64(len(m)))...)
				}
				clear(m[lo : lo+cs])
				copy(m[lo:], d)
				size = max(size, lo+int64(len(d)))
			}
			model[name] = m[:size]
			setChunks(t, s, h, es...)
		case op < 8: // overwrite part of a file through the write path
			for name, h := range handles {
				b := randBytes(1 + r.Intn(5000))
				off := int64(r.Intn(int(3 * cs)))
				if _, err := h.Write(b, off); err != nil {
					t.Fatal(err)
				}
				m := model[name]
				if int64(len(m)) < off+int64(len(b)) {
					m = append(m, make([]byte, off+int64(len(b))-int64(len(m)))...)
				}
				copy(m[off:], b)
				model[name] = m
				break
			}
		case op < 9: // release a stage
			for st := range stages {
				release(t, s, st)
				delete(stages, st)
				break
			}
		default: // everything made durable
			if err := s.Sync(); err != nil {
				t.Fatal(err)
			}
		}
		for name, h := range handles {
			readStaged(t, h, model[name])
		}
		if err := s.Check(); err != nil {
			t.Fatalf("step %d (seed %d): %v", step, seed, err)
		}
	}
	for st := range stages {
		release(t, s, st)
	}
	for _, h := range handles {
		_ = h.Release()
	}
}

// newStage returns a stage number no other stage of the test uses.
func newStage(t *testing.T, s *Store) uint64 {
	t.Helper()
	stageSeq++
	return stageSeq
}

var stageSeq uint64 = 1000

func stage(t *testing.T, s *Store, st uint64, bs ...[]byte) {
	t.Helper()
	var in []StagedChunk
	for _, b := range bs {
		in = append(in, stagedChunkOf(b))
	}
	if err := s.StageChunks(st, in); err != nil {
		t.Fatal(err)
	}
}

func release(t *testing.T, s *Store, st uint64) {
	t.Helper()
	if err := s.ReleaseStage(st); err != nil {
		t.Fatal(err)
	}
	if n, err := s.StagedCount(st); err != nil || n != 0 {
		t.Fatalf("stage %d holds %d after release (%v)", st, n, err)
	}
}

func setChunks(t *testing.T, s *Store, h *Handle, es ...ChunkEntry) {
	t.Helper()
	if err := s.SetChunks(h, es); err != nil {
		t.Fatal(err)
	}
}

func createFile(t *testing.T, s *Store, v View, name string) *Handle {
	t.Helper()
	_, h, err := s.Create(v, RootIno, name, 0o100644, 0, 0, os.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func chunkSizeOf(t *testing.T, s *Store, h *Handle) int64 {
	t.Helper()
	l, err := s.FileLayout(h.v, h.ino)
	if err != nil {
		t.Fatal(err)
	}
	return l.ChunkSize
}

func readStaged(t *testing.T, h *Handle, want []byte) {
	t.Helper()
	a, err := h.Attr()
	if err != nil {
		t.Fatal(err)
	}
	if a.Size != uint64(len(want)) {
		t.Fatalf("size %d, want %d", a.Size, len(want))
	}
	got := make([]byte, len(want))
	if n, err := h.Read(got, 0); n != len(want) || err != nil && n != len(want) {
		t.Fatalf("read %d of %d: %v", n, len(want), err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("bytes differ")
	}
}

// wantChunks checks the number of distinct chunks the store references,
// once reclaim has run.
func wantChunks(t *testing.T, s *Store, n int64) {
	t.Helper()
	if err := s.Sync(); err != nil {
		t.Fatal(err)
	}
	if _, _, got, err := s.PoolUsage(); err != nil || got != n {
		t.Fatalf("%d chunks stored (%v), want %d", got, err, n)
	}
}

// TestStageIntoFullPool: staging more than the pool holds is ErrNoSpace
// before anything is appended, and the stage holds nothing.
func TestStageIntoFullPool(t *testing.T) {
	s, _ := smallPoolStore(t)
	st := newStage(t, s)
	var in []StagedChunk
	for i := 0; i < 80; i++ { // 80 MiB into 48 MiB
		in = append(in, stagedChunkOf(randBytes(1<<20)))
	}
	if err := s.StageChunks(st, in); !errors.Is(err, ErrNoSpace) {
		t.Fatalf("got %v, want ErrNoSpace", err)
	}
	if n, err := s.StagedCount(st); err != nil || n != 0 {
		t.Fatalf("%d staged after a refused stage (%v)", n, err)
	}
	wantChunks(t, s, 0)
}
