package pool

import (
	"bytes"
	"os"
	"sync"
	"testing"
)

// hintFS is the OS file system with files that record their Prefetch
// calls (and pass them on).
type hintFS struct {
	OSFS
	mu    sync.Mutex
	hints []hint
}

type hint struct {
	name   string
	off, n int64
}

type hintFile struct {
	osFile
	fs *hintFS
}

func (fs *hintFS) OpenFile(name string, flag int, perm os.FileMode) (File, error) {
	f, err := fs.OSFS.OpenFile(name, flag, perm)
	if err != nil {
		return nil, err
	}
	return hintFile{f.(osFile), fs}, nil
}

func (f hintFile) Prefetch(off, n int64) error {
	f.fs.mu.Lock()
	f.fs.hints = append(f.fs.hints, hint{f.Name(), off, n})
	f.fs.mu.Unlock()
	return f.osFile.Prefetch(off, n)
}

func (fs *hintFS) take() []hint {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	h := fs.hints
	fs.hints = nil
	return h
}

// TestPrefetch checks that Prefetch sends one hint per run of adjacent
// records of a pack, whatever the order of the locations, skips what it
// cannot reach, and that the records read back intact after it.
func TestPrefetch(t *testing.T) {
	fs := &hintFS{}
	p := NewTestPoolOptions(t, 2, CreateOptions{FS: fs}, OpenOptions{FS: fs})
	var locs []Location
	var datas [][]byte
	for i := 0; i < 6; i++ {
		d := bytes.Repeat([]byte{byte(i + 1)}, 5000+i*3000) // extents of 8, 12, 12, 16, 20, 24 KiB
		l, err := p.Append(hashOf(d), d)
		if err != nil {
			t.Fatal(err)
		}
		locs = append(locs, l[0])
		datas = append(datas, d)
	}
	if err := p.Sync(locs); err != nil {
		t.Fatal(err)
	}
	perMember := map[uint16][]Location{}
	for _, l := range locs {
		perMember[l.Member] = append(perMember[l.Member], l)
	}
	if len(perMember) != 2 {
		t.Fatalf("records not striped over both members: %v", locs)
	}
	fs.take()

	tests := []struct {
		name string
		locs []Location
		want int // hints
	}{
		{"none", nil, 0},
		{"one record", locs[:1], 1},
		{"every record, reversed", []Location{locs[5], locs[4], locs[3], locs[2], locs[1], locs[0]}, 2},
		{"a gap in each member's run", []Location{perMember[0][0], perMember[0][2], perMember[1][0], perMember[1][2]}, 4},
		{"a missing pack and a member that does not exist", []Location{{Member: 0, Pack: 99, Length: 10}, {Member: 7, Pack: 1, Length: 10}}, 0},
	}
	for _, tc := range tests {
		p.Prefetch(tc.locs)
		got := fs.take()
		if len(got) != tc.want {
			t.Errorf("%s: %d hints, want %d: %+v", tc.name, len(got), tc.want, got)
			continue
		}
		// Every hint starts at a record and covers whole records only, and
		// every reachable record asked for is covered.
		for _, l := range tc.locs {
			if l.Pack == 99 || l.Member == 7 {
				continue
			}
			covered := false
			for _, h := range got {
				covered = covered || h.name == p.ms()[l.Member].packPath(l.Pack) && h.off <= l.Offset && l.Offset+extent(l.Length) <= h.off+h.n
			}
			if !covered {
				t.Errorf("%s: record %v not covered by %+v", tc.name, l, got)
			}
		}
	}
	// The whole run of a member is one hint from its first record to the
	// end of its last.
	p.Prefetch(perMember[1])
	got := fs.take()
	first, last := perMember[1][0], perMember[1][len(perMember[1])-1]
	if len(got) != 1 || got[0].off != first.Offset || got[0].off+got[0].n != last.Offset+extent(last.Length) {
		t.Errorf("member 1's run: %+v, want [%d, %d)", got, first.Offset, last.Offset+extent(last.Length))
	}
	for i, l := range locs {
		b, err := p.Read(l, hashOf(datas[i]), nil)
		if err != nil || !bytes.Equal(b, datas[i]) {
			t.Fatalf("record %d after prefetch: %v", i, err)
		}
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	p.Prefetch(locs) // closed: nothing, no panic
	if got := fs.take(); len(got) != 0 {
		t.Fatalf("hints after close: %+v", got)
	}
}
