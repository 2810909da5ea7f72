package store

import (
	"encoding/binary"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/snapfs/snapfs/pool"
	"github.com/snapfs/snapfs/pool/pooltest"
)

// The engine's cost of namespace operations without FUSE (profiling aids;
// performance claims come from bench/).

func benchDir(b *testing.B) (*Store, View, uint64) {
	s, v := NewTestStore(b, 1, Options{})
	d, err := s.Mkdir(v, RootIno, "d", 0o755, 0, 0)
	if err != nil {
		b.Fatal(err)
	}
	return s, v, d.Ino
}

func BenchmarkCreate(b *testing.B) {
	s, v, d := benchDir(b)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Mknod(v, d, fmt.Sprintf("f%d", i), 0o644, 0, 0, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkUnlink(b *testing.B) {
	s, v, d := benchDir(b)
	for i := 0; i < b.N; i++ {
		if _, err := s.Mknod(v, d, fmt.Sprintf("f%d", i), 0o644, 0, 0, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.Unlink(v, d, fmt.Sprintf("f%d", i)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	s, v, d := benchDir(b)
	for i := 0; i < 1000; i++ {
		if _, err := s.Mknod(v, d, fmt.Sprintf("f%d", i), 0o644, 0, 0, 0); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := s.Lookup(v, d, fmt.Sprintf("f%d", i%1000)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCheckpoint10k: a checkpoint and its ship to two members (pool
// copies 2) of the metadata of a volume of 10,000 files of 4 KiB, one
// file changed between checkpoints, while a writer writes and fsyncs a
// file in a loop; it reports the writer's longest fsync'd write during
// the checkpoints (they must not stall writers).
func BenchmarkCheckpoint10k(b *testing.B) { benchCheckpoint(b, true) }

// BenchmarkCheckpoint10kBaseline is the same writer and unlinks with a
// sleep as long as a checkpoint instead of the checkpoint: the writer's
// longest write without checkpoints, for comparison.
func BenchmarkCheckpoint10kBaseline(b *testing.B) { benchCheckpoint(b, false) }

func benchCheckpoint(b *testing.B, checkpoint bool) {
	p := pooltest.NewOptions(b, 2, pool.CreateOptions{Copies: 2}, pool.OpenOptions{})
	s, err := Open(p, Options{CheckpointInterval: -1})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	if _, err := s.CreateVolume("vol", VolumeOptions{}); err != nil {
		b.Fatal(err)
	}
	v, _ := s.LiveView("vol")
	d, err := s.Mkdir(v, RootIno, "d", 0o755, 0, 0)
	if err != nil {
		b.Fatal(err)
	}
	data := make([]byte, 4096)
	for i := 0; i < 10000; i++ {
		data[0], data[1] = byte(i), byte(i>>8)
		_, h, err := s.Create(v, d.Ino, fmt.Sprintf("f%05d", i), 0o644, 0, 0, syscall.O_RDWR)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := h.Write(data, 0); err != nil {
			b.Fatal(err)
		}
		h.Release()
	}
	if err := s.Sync(); err != nil {
		b.Fatal(err)
	}
	if _, err := s.Checkpoint("first"); err != nil {
		b.Fatal(err)
	}
	_, wh, err := s.Create(v, RootIno, "writer", 0o644, 0, 0, syscall.O_RDWR)
	if err != nil {
		b.Fatal(err)
	}
	defer wh.Release()
	stop := make(chan struct{})
	done := make(chan time.Duration)
	go func() {
		var worst time.Duration
		for off := int64(0); ; off = (off + 4096) % (1 << 20) {
			select {
			case <-stop:
				done <- worst
				return
			default:
			}
			t0 := time.Now()
			if _, err := wh.Write(data, off); err == nil {
				wh.Fsync(true)
			}
			worst = max(worst, time.Since(t0))
		}
	}()
	var last CheckpointStats
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := s.Unlink(v, d.Ino, fmt.Sprintf("f%05d", i%10000)); err != nil {
			b.Fatal(err)
		}
		if !checkpoint {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		if last, err = s.Checkpoint("bench"); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	close(stop)
	worst := <-done
	b.ReportMetric(float64(last.TookLocal.Microseconds())/1000, "ms-local")
	b.ReportMetric(float64(last.Bytes)/(1<<20), "MiB-checkpoint")
	b.ReportMetric(float64(last.Copied)/(1<<20), "MiB-copied")
	b.ReportMetric(float64(last.Linked)/(1<<20), "MiB-linked")
	b.ReportMetric(float64(worst.Microseconds())/1000, "ms-worst-write")
}

// benchMemStore opens a store whose members and metadata live in memory, so
// that a benchmark of the write path measures the engine, not fdatasync.
func benchMemStore(b *testing.B) (*Store, View) {
	fsys := pool.NewMemFS()
	if err := fsys.MkdirAll("/m0", 0o755); err != nil {
		b.Fatal(err)
	}
	if err := pool.Create("/pool", pool.CreateOptions{Members: []string{"/m0"}, FS: fsys}); err != nil {
		b.Fatal(err)
	}
	p, err := pool.Open("/pool", pool.OpenOptions{FS: fsys})
	if err != nil {
		b.Fatal(err)
	}
	s, err := Open(p, Options{PebbleFS: vfs.NewMem()})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		if err := s.Close(); err != nil {
			b.Error(err)
		}
		p.Close()
	})
	if _, err := s.CreateVolume("vol", VolumeOptions{}); err != nil {
		b.Fatal(err)
	}
	v, err := s.LiveView("vol")
	if err != nil {
		b.Fatal(err)
	}
	return s, v
}

// benchOverwrite rewrites the chunks of one 16-chunk file round-robin with
// distinct content, committing each chunk as a flush does; with pinEvery > 0
// a snapshot is taken every pinEvery writes, so the overwrites after it
// write new versions and deadlist the old ones.
func benchOverwrite(b *testing.B, pinEvery int) {
	s, v := benchMemStore(b)
	_, h, err := s.Create(v, RootIno, "f", 0o644, 0, 0, syscall.O_RDWR)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Release()
	const cs = 128 << 10
	buf := make([]byte, cs)
	b.SetBytes(cs)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if pinEvery > 0 && i%pinEvery == 0 {
			if _, _, err := s.PinEpoch(v.Lineage, fmt.Sprintf("s%d", i), nil); err != nil {
				b.Fatal(err)
			}
		}
		binary.LittleEndian.PutUint64(buf, uint64(i+1)) // distinct chunks: no dedup
		if _, err := h.Write(buf, int64(i%16)*cs); err != nil {
			b.Fatal(err)
		}
		if err := s.flushInode(h.st, true); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkOverwrite(b *testing.B)       { benchOverwrite(b, 0) }
func BenchmarkOverwritePinned(b *testing.B) { benchOverwrite(b, 16) }

// BenchmarkOverwriteInline rewrites a small file kept in its inode record.
func BenchmarkOverwriteInline(b *testing.B) {
	s, v := benchMemStore(b)
	_, h, err := s.Create(v, RootIno, "f", 0o644, 0, 0, syscall.O_RDWR)
	if err != nil {
		b.Fatal(err)
	}
	defer h.Release()
	buf := make([]byte, 1000)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		binary.LittleEndian.PutUint64(buf, uint64(i+1))
		if _, err := h.Write(buf, 0); err != nil {
			b.Fatal(err)
		}
		if err := s.flushInode(h.st, true); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkSetAttrTimes(b *testing.B) {
	s, v, d := benchDir(b)
	a, err := s.Mknod(v, d, "f", 0o644, 0, 0, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		in := SetAttrIn{Valid: SetMtime | SetAtime, Mtime: int64(i), Atime: int64(i)}
		if _, err := s.SetAttr(v, a.Ino, in); err != nil {
			b.Fatal(err)
		}
	}
}
