package stream

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"syscall"
	"testing"

	"github.com/snapfs/snapfs/pool"
	"github.com/snapfs/snapfs/snap"
	"github.com/snapfs/snapfs/store"
)

// TestIncrementalReadsOnlyChanges: an incremental stream carries the
// inodes the change iterator reports and the chunks the base cannot hold,
// and decides the common case (new bytes) without walking the base; a
// copy of bytes found elsewhere in the base falls back to that one walk
// and sends nothing. Every case is received and compared with its source.
func TestIncrementalReadsOnlyChanges(t *testing.T) {
	const chunk = 128 << 10
	cases := []struct {
		name string
		// change runs on the live volume after snapshot "a"; files f00..f19
		// hold 2 chunks of distinct random bytes each.
		change     func(f *fixture)
		files      int64 // I records (the root's included)
		chunks     int64 // C records
		walkedBase bool  // the base was walked for its chunk hashes
	}{
		{"new bytes in one chunk of one file", func(f *fixture) {
			f.write("d/f07", f.random(chunk), chunk)
		}, 2, 1, false},
		{"a new file whose two chunks are the same new bytes", func(f *fixture) {
			b := f.random(chunk)
			f.create("d/new", append(append([]byte{}, b...), b...))
		}, 3, 1, false},
		{"a chunk rewritten with the bytes of another chunk of the same file", func(f *fixture) {
			f.write("d/f03", f.read("d/f03")[:chunk], chunk)
		}, 2, 0, false},
		{"a renamed file", func(f *fixture) {
			if err := f.src.Rename(f.v, f.lookup("d"), "f05", store.RootIno, "moved", 0); err != nil {
				f.t.Fatal(err)
			}
		}, 3, 0, false},
		{"a copy of a file of the base", func(f *fixture) {
			f.create("copy", f.read("d/f11"))
		}, 2, 0, true},
		{"a removed directory and a changed xattr", func(f *fixture) {
			if err := f.src.SetXattr(f.v, f.lookup("d/f01"), "user.k", []byte("v"), 0); err != nil {
				f.t.Fatal(err)
			}
			if err := f.src.Rmdir(f.v, store.RootIno, "empty"); err != nil {
				f.t.Fatal(err)
			}
		}, 2, 0, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, 7)
			d, err := f.src.Mkdir(f.v, store.RootIno, "d", 0o755, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := f.src.Mkdir(f.v, store.RootIno, "empty", 0o755, 0, 0); err != nil {
				t.Fatal(err)
			}
			_ = d
			for i := 0; i < 20; i++ {
				f.create(fmt.Sprintf("d/f%02d", i), f.random(2*chunk))
			}
			f.snapshot("a")
			if _, _, err := Receive(f.target(), bytes.NewReader(f.send("a", "", false))); err != nil {
				t.Fatal(err)
			}
			tc.change(f)
			f.snapshot("b")
			src, err := source(&SendRequest{Store: f.src, PoolID: "src-pool", Dataset: "vol"}, "b", "a")
			if err != nil {
				t.Fatal(err)
			}
			var buf bytes.Buffer
			sw := &sender{src: src, rw: newRecordWriter(&buf), sent: map[pool.Hash]bool{}}
			if err := sw.run(); err != nil {
				t.Fatal(err)
			}
			if sw.stats.Files != tc.files || sw.stats.Chunks != tc.chunks {
				t.Fatalf("sent %d inodes and %d chunks, want %d and %d", sw.stats.Files, sw.stats.Chunks, tc.files, tc.chunks)
			}
			if walked := sw.based != nil; walked != tc.walkedBase {
				t.Fatalf("base walked: %v, want %v", walked, tc.walkedBase)
			}
			if _, _, err := Receive(f.target(), &buf); err != nil {
				t.Fatal(err)
			}
			for _, n := range []string{"a", "b"} {
				sv, _ := snap.ManagerFor(f.src).Get("vol", n)
				dv, _ := snap.ManagerFor(f.dst).Get("copy", n)
				same(t, f, sv.View(), dv.View(), n)
			}
			if err := f.src.Check(); err != nil {
				t.Fatal(err)
			}
			if err := f.dst.Check(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func (f *fixture) random(n int) []byte {
	b := make([]byte, n)
	f.rng.Read(b)
	return b
}

// create makes file path (its directory exists) holding data.
func (f *fixture) create(path string, data []byte) {
	f.t.Helper()
	dir, name := store.RootIno, path
	if i := bytes.LastIndexByte([]byte(path), '/'); i >= 0 {
		dir, name = f.lookup(path[:i]), path[i+1:]
	}
	_, h, err := f.src.Create(f.v, dir, name, syscall.S_IFREG|0o644, 0, 0, os.O_RDWR)
	if err != nil {
		f.t.Fatal(err)
	}
	defer h.Release()
	if _, err := h.Write(data, 0); err != nil {
		f.t.Fatal(err)
	}
}

// write writes data into file path at off.
func (f *fixture) write(path string, data []byte, off int64) {
	f.t.Helper()
	h, err := f.src.Open(f.v, f.lookup(path), os.O_RDWR)
	if err != nil {
		f.t.Fatal(err)
	}
	defer h.Release()
	if _, err := h.Write(data, off); err != nil {
		f.t.Fatal(err)
	}
}

// read returns the bytes of file path.
func (f *fixture) read(path string) []byte {
	f.t.Helper()
	ino := f.lookup(path)
	a, err := f.src.GetAttr(f.v, ino)
	if err != nil {
		f.t.Fatal(err)
	}
	h, err := f.src.Open(f.v, ino, os.O_RDONLY)
	if err != nil {
		f.t.Fatal(err)
	}
	defer h.Release()
	b := make([]byte, a.Size)
	n, err := h.Read(b, 0)
	if err != nil {
		f.t.Fatal(err)
	}
	return b[:n]
}

// TestAbortDestroysTheVolumeOfAFullReceive: receive --abort of a full
// receive that was applying destroys the volume the receive created, with
// its mark, so the name is free and a new full receive goes ahead; the
// volume is only emptied when a snapshot was made of it or it is mounted.
func TestAbortDestroysTheVolumeOfAFullReceive(t *testing.T) {
	cases := []struct {
		name    string
		prepare func(f *fixture)
		mounted bool
		kept    bool
	}{
		{"applying, then aborted", func(*fixture) {}, false, false},
		{"a snapshot was made of the partial volume", func(f *fixture) {
			if _, err := snap.ManagerFor(f.dst).Create("copy", "mine"); err != nil {
				f.t.Fatal(err)
			}
		}, false, true},
		{"the partial volume is mounted", func(*fixture) {}, true, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, 8)
			for i := 0; i < 20; i++ {
				f.op()
			}
			f.snapshot("a")
			full := f.send("a", "", false)
			// A verified prefix, then the state and the target as a receive
			// killed half way through its apply leaves them.
			if _, _, err := Receive(f.target(), bytes.NewReader(full[:len(full)-60])); !errors.Is(err, ErrTruncated) {
				t.Fatalf("cut stream: %v", err)
			}
			st, _ := loadState(f.dir, "copy")
			st.Applying = true
			if err := saveState(f.dir, "copy", st); err != nil {
				t.Fatal(err)
			}
			if _, err := f.dst.CreateVolume("copy", store.VolumeOptions{}); err != nil {
				t.Fatal(err)
			}
			if err := f.dst.UpdateMeta(store.MetaOp{Key: newKey("copy"), Value: []byte(st.Header.StreamID)}); err != nil {
				t.Fatal(err)
			}
			dv, _ := snap.ManagerFor(f.dst).LiveView("copy")
			if _, err := f.dst.Mkdir(dv, store.RootIno, "half-applied", 0o755, 0, 0); err != nil {
				t.Fatal(err)
			}
			tc.prepare(f)
			asked := ""
			mounted := func(vol string) bool { asked = vol; return tc.mounted }
			if err := Abort(f.dst, f.dir, "copy", mounted); err != nil {
				t.Fatal(err)
			}
			if asked != "copy" {
				t.Fatalf("Abort asked whether %q is mounted, want copy", asked)
			}
			if _, err := ResumeToken(f.dir, "copy"); !errors.Is(err, ErrNoPartial) {
				t.Fatalf("partial state after abort: %v", err)
			}
			_, verr := f.dst.Volume("copy")
			if tc.kept {
				if verr != nil {
					t.Fatalf("volume not kept: %v", verr)
				}
				dv, _ := snap.ManagerFor(f.dst).LiveView("copy")
				if es, err := listDir(f.dst, dv, store.RootIno); err != nil || len(es) != 0 {
					t.Fatalf("kept volume not emptied: %v %v", es, err)
				}
			} else {
				if !errors.Is(verr, store.ErrNoVolume) {
					t.Fatalf("volume after abort: %v", verr)
				}
				if madeByReceive(f.dst, "copy") {
					t.Fatal("the receive's mark outlived its volume")
				}
				if _, _, err := Receive(f.target(), bytes.NewReader(full)); err != nil {
					t.Fatalf("full receive after abort: %v", err)
				}
				sv, _ := snap.ManagerFor(f.src).Get("vol", "a")
				rv, _ := snap.ManagerFor(f.dst).Get("copy", "a")
				same(t, f, sv.View(), rv.View(), "a")
			}
			if err := f.dst.Check(); err != nil {
				t.Fatal(err)
			}
		})
	}
}
