package stream

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/snapfs/snapfs/snap"
	"github.com/snapfs/snapfs/store"
	"github.com/zeebo/blake3"
)

// stagedFixture is a fixture whose volume holds n files of distinct
// random bytes (every chunk a new hash), snapshot "a", and its full stream.
func stagedFixture(t *testing.T, n, size int) (*fixture, []byte) {
	f := newFixture(t, 7)
	for i := 0; i < n; i++ {
		_, h, err := f.src.Create(f.v, store.RootIno, fmt.Sprintf("f%d", i), syscall.S_IFREG|0o644, 0, 0, os.O_RDWR)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, size)
		f.rng.Read(b)
		if _, err := h.Write(b, 0); err != nil {
			t.Fatal(err)
		}
		if err := h.Release(); err != nil {
			t.Fatal(err)
		}
	}
	f.snapshot("a")
	return f, f.send("a", "", false)
}

// wantStaged checks how many chunks the target holds staged.
func wantStaged(t *testing.T, f *fixture, cmp func(int64) bool, what string) int64 {
	t.Helper()
	n, err := f.dst.StagedTotal()
	if err != nil || !cmp(n) {
		t.Fatalf("%d chunks staged (%v): want %s", n, err, what)
	}
	return n
}

// TestReceiveWritesChunksOnce: a receive cut half way has its verified
// chunks staged in the target's store, not in the spool (which holds only
// metadata and one small reference per chunk); a resume finds them there
// and the finished receive lets the stage go. Check runs on both stores
// at cleanup.
func TestReceiveWritesChunksOnce(t *testing.T) {
	f, full := stagedFixture(t, 24, 1<<20) // 24 MiB: three resume points
	cut := len(full) * 2 / 3
	if _, _, err := Receive(f.target(), bytes.NewReader(full[:cut])); !errors.Is(err, ErrTruncated) {
		t.Fatalf("cut stream: %v", err)
	}
	staged := wantStaged(t, f, func(n int64) bool { return n > 0 }, "some")
	st, err := loadState(f.dir, "copy")
	if err != nil || st == nil {
		t.Fatalf("state: %v", err)
	}
	sp, _, _ := paths(f.dir, "copy")
	fi, err := os.Stat(sp)
	if err != nil {
		t.Fatal(err)
	}
	if st.Verified < int64(cut)/2 || fi.Size() > 64<<10 || fi.Size() != st.SpoolLen {
		t.Fatalf("verified %d of %d, spool %d bytes (state says %d): chunk bytes went to the spool", st.Verified, cut, fi.Size(), st.SpoolLen)
	}
	if _, _, stored, err := f.dst.PoolUsage(); err != nil || stored < staged {
		t.Fatalf("%d chunks stored for %d staged: %v", stored, staged, err)
	}
	if err := f.dst.Check(); err != nil {
		t.Fatal(err)
	}
	tok, err := ResumeToken(f.dir, "copy")
	if err != nil {
		t.Fatal(err)
	}
	var rest bytes.Buffer
	if _, err := SendResume(&SendRequest{Store: f.src, PoolID: "src-pool"}, tok, &rest); err != nil {
		t.Fatal(err)
	}
	if rest.Len() >= len(full)-int(st.Verified)+4096 {
		t.Fatalf("the resumed stream is %d bytes of %d", rest.Len(), len(full))
	}
	if _, _, err := Receive(f.target(), &rest); err != nil {
		t.Fatal(err)
	}
	wantStaged(t, f, func(n int64) bool { return n == 0 }, "none after the receive")
	sv, _ := snapOf(f.src, "vol", "a")
	dv, _ := snapOf(f.dst, "copy", "a")
	same(t, f, sv, dv, "a")
}

// TestAbortFreesStagedChunks: receive --abort of a cut full receive
// releases what it staged and destroys the volume: the target stores no
// chunk afterwards.
func TestAbortFreesStagedChunks(t *testing.T) {
	f, full := stagedFixture(t, 12, 1<<20)
	if _, _, err := Receive(f.target(), bytes.NewReader(full[:len(full)-1000])); !errors.Is(err, ErrTruncated) {
		t.Fatalf("cut stream: %v", err)
	}
	wantStaged(t, f, func(n int64) bool { return n > 0 }, "some")
	if err := Abort(f.dst, f.dir, "copy", nil); err != nil {
		t.Fatal(err)
	}
	wantStaged(t, f, func(n int64) bool { return n == 0 }, "none after abort")
	if err := f.dst.Sync(); err != nil {
		t.Fatal(err)
	}
	f.dst.WaitBackground()
	if _, _, n, err := f.dst.PoolUsage(); err != nil || n != 0 {
		t.Fatalf("%d chunks still stored after abort (%v)", n, err)
	}
}

// TestResumeOfAnOldSpool: a partial receive written before chunks were
// staged (its spool holds whole chunk records, its state no stage) is
// resumed: the old records read back as they are.
func TestResumeOfAnOldSpool(t *testing.T) {
	f, full := stagedFixture(t, 6, 1<<20)
	cut := len(full) / 2
	// What the old receiver left: the stream's verified prefix as it came.
	rd := newReader(bytes.NewReader(full[:cut]))
	if err := rd.preamble(); err != nil {
		t.Fatal(err)
	}
	var hdrPayload []byte
	for {
		typ, payload, err := rd.next()
		if err != nil {
			break
		}
		if typ == recHeader {
			hdrPayload = append([]byte(nil), payload...)
		}
	}
	var hdr Header
	if err := json.Unmarshal(hdrPayload, &hdr); err != nil {
		t.Fatal(err)
	}
	unlock, err := lockDataset(f.dir, "copy")
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	sp, _, _ := paths(f.dir, "copy")
	if err := os.WriteFile(sp, full[:rd.off], 0o600); err != nil {
		t.Fatal(err)
	}
	if err := saveState(f.dir, "copy", &partialState{Header: hdr, Verified: rd.off}); err != nil {
		t.Fatal(err)
	}
	tok, err := ResumeToken(f.dir, "copy")
	if err != nil {
		t.Fatal(err)
	}
	var rest bytes.Buffer
	if _, err := SendResume(&SendRequest{Store: f.src, PoolID: "src-pool"}, tok, &rest); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Receive(f.target(), &rest); err != nil {
		t.Fatal(err)
	}
	wantStaged(t, f, func(n int64) bool { return n == 0 }, "none after the receive")
	sv, _ := snapOf(f.src, "vol", "a")
	dv, _ := snapOf(f.dst, "copy", "a")
	same(t, f, sv, dv, "a")
}

func snapOf(st *store.Store, ds, name string) (store.View, error) {
	s, err := snap.ManagerFor(st).Get(ds, name)
	if err != nil {
		return store.View{}, err
	}
	return s.View(), nil
}

// TestLeftoverStageReleased: chunks a receive staged before it was killed
// ahead of its first resume point (no state names them) are released by
// the next receive into the dataset, and by an abort.
func TestLeftoverStageReleased(t *testing.T) {
	f, full := stagedFixture(t, 2, 100<<10)
	left := []byte("bytes a killed receive staged")
	for _, next := range []string{"abort", "receive"} {
		if err := f.dst.StageChunks(stageOf("copy"), []store.StagedChunk{{Hash: blake3.Sum256(left), Data: left}}); err != nil {
			t.Fatal(err)
		}
		wantStaged(t, f, func(n int64) bool { return n == 1 }, "the leftover")
		if next == "abort" {
			if err := Abort(f.dst, f.dir, "copy", nil); !errors.Is(err, ErrNoPartial) {
				t.Fatalf("abort without a partial receive: %v", err)
			}
		} else if _, _, err := Receive(f.target(), bytes.NewReader(full)); err != nil {
			t.Fatal(err)
		}
		wantStaged(t, f, func(n int64) bool { return n == 0 }, "none after "+next)
	}
}

// TestLegacyInodeMapConverted: a received volume whose receive record
// holds the inode map as one JSON list (written before per-inode records)
// takes the next incremental, which converts the map to records.
func TestLegacyInodeMapConverted(t *testing.T) {
	f := newFixture(t, 11)
	for i := 0; i < 30; i++ {
		f.op()
	}
	f.snapshot("a")
	if _, _, err := Receive(f.target(), bytes.NewReader(f.send("a", "", false))); err != nil {
		t.Fatal(err)
	}
	// Rewrite the record as the old receiver wrote it.
	rec, err := loadRecv(f.dst, "copy")
	if err != nil {
		t.Fatal(err)
	}
	var ops []store.MetaOp
	err = f.dst.ListMeta("recv-ino/copy/", func(k string, v []byte) bool {
		var src uint64
		fmt.Sscanf(k[len("recv-ino/copy/"):], "%x", &src)
		rec.Map = append(rec.Map, [2]uint64{src, binary.BigEndian.Uint64(v)})
		ops = append(ops, store.MetaOp{Key: k, Delete: true}, store.MetaOp{Key: tgtKey("copy", binary.BigEndian.Uint64(v)), Delete: true})
		return true
	})
	if err != nil || len(rec.Map) == 0 {
		t.Fatalf("map: %d entries, %v", len(rec.Map), err)
	}
	rec.MapInKeys = false
	ops = append(ops, store.MetaOp{Key: recvKey("copy"), Value: mustJSON(rec)})
	if err := f.dst.UpdateMeta(ops...); err != nil {
		t.Fatal(err)
	}
	if n, _ := countInoMap(f.dst, "copy"); n != 0 {
		t.Fatalf("%d records left", n)
	}
	for i := 0; i < 30; i++ {
		f.op()
	}
	f.snapshot("b")
	if _, _, err := Receive(f.target(), bytes.NewReader(f.send("b", "a", false))); err != nil {
		t.Fatal(err)
	}
	rec, err = loadRecv(f.dst, "copy")
	if err != nil || !rec.MapInKeys || rec.Map != nil {
		t.Fatalf("record after the incremental: %+v, %v", rec, err)
	}
	inos := 0
	sv, _ := snapOf(f.src, "vol", "b")
	walkTree(f.src, sv, func(uint64, store.Attr) error { inos++; return nil })
	if n, err := countInoMap(f.dst, "copy"); err != nil || n != inos {
		t.Fatalf("%d map records (%v), %d inodes", n, err, inos)
	}
	for _, n := range []string{"a", "b"} {
		sv, _ := snapOf(f.src, "vol", n)
		dv, _ := snapOf(f.dst, "copy", n)
		same(t, f, sv, dv, n)
	}
}
