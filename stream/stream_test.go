package stream

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/zeebo/blake3"

	"github.com/snapfs/snapfs/snap"
	"github.com/snapfs/snapfs/store"
	"github.com/snapfs/snapfs/store/storetest"
)

// fixture is a source store with volume "vol" and a target store into
// which streams are received as "copy".
type fixture struct {
	t        *testing.T
	src, dst *store.Store
	v        store.View
	dir      string
	rng      *rand.Rand
	files    []string // paths of regular files, for picking
	dirs     []string
	n        int
}

func newFixture(t *testing.T, seed int64) *fixture {
	src, v := storetest.New(t, 2, store.Options{})
	dst, _ := storetest.New(t, 1, store.Options{})
	return &fixture{t: t, src: src, dst: dst, v: v, dir: t.TempDir(), rng: rand.New(rand.NewSource(seed)), dirs: []string{""}}
}

func (f *fixture) lookup(path string) uint64 {
	f.t.Helper()
	ino := store.RootIno
	if path == "" {
		return ino
	}
	for _, c := range splitPath(path) {
		a, err := f.src.Lookup(f.v, ino, c)
		if err != nil {
			f.t.Fatalf("lookup %s: %v", path, err)
		}
		ino = a.Ino
	}
	return ino
}

func splitPath(p string) []string {
	var out []string
	for len(p) > 0 {
		i := 0
		for i < len(p) && p[i] != '/' {
			i++
		}
		out = append(out, p[:i])
		if i < len(p) {
			i++
		}
		p = p[i:]
	}
	return out
}

func join(dir, name string) string {
	if dir == "" {
		return name
	}
	return dir + "/" + name
}

func (f *fixture) pick(list []string) string { return list[f.rng.Intn(len(list))] }

func (f *fixture) randomData() []byte {
	sizes := []int{0, 10, 3000, 5000, 128 << 10, 300 << 10}
	b := make([]byte, sizes[f.rng.Intn(len(sizes))]+f.rng.Intn(100))
	f.rng.Read(b)
	return b
}

// op runs one random operation on the source's live volume.
func (f *fixture) op() {
	t, s, v := f.t, f.src, f.v
	f.n++
	name := fmt.Sprintf("e%d", f.n)
	dir := f.pick(f.dirs)
	pi := f.lookup(dir)
	switch k := f.rng.Intn(15); {
	case k >= 13 && len(f.dirs) > 1:
		f.dirOp(k == 13, name)
	case k < 3 || len(f.files) == 0:
		_, h, err := s.Create(v, pi, name, syscall.S_IFREG|0o644, uint32(f.rng.Intn(3)), 0, os.O_RDWR)
		if err != nil {
			t.Fatal(err)
		}
		data := f.randomData()
		off := int64(0)
		if f.rng.Intn(4) == 0 {
			off = int64(f.rng.Intn(3)) * 128 << 10 // a hole before the data
		}
		if len(data) > 0 {
			if _, err := h.Write(data, off); err != nil {
				t.Fatal(err)
			}
		}
		h.Release()
		f.files = append(f.files, join(dir, name))
	case k == 3:
		if _, err := s.Mkdir(v, pi, name, 0o755, 0, 0); err != nil {
			t.Fatal(err)
		}
		f.dirs = append(f.dirs, join(dir, name))
	case k == 4: // rename a file across directories
		i := f.rng.Intn(len(f.files))
		p := f.files[i]
		from := f.lookup(parentOf(p))
		if err := s.Rename(v, from, baseOf(p), pi, name, 0); err != nil {
			t.Fatal(err)
		}
		f.files[i] = join(dir, name)
	case k == 5: // hard link
		p := f.pick(f.files)
		if _, err := s.Link(v, f.lookup(p), pi, name); err != nil {
			t.Fatal(err)
		}
		f.files = append(f.files, join(dir, name))
	case k == 6: // unlink
		i := f.rng.Intn(len(f.files))
		p := f.files[i]
		if err := s.Unlink(v, f.lookup(parentOf(p)), baseOf(p)); err != nil {
			t.Fatal(err)
		}
		f.files = append(f.files[:i], f.files[i+1:]...)
	case k == 7: // overwrite part of a file
		p := f.pick(f.files)
		h, err := s.Open(v, f.lookup(p), os.O_RDWR)
		if err != nil {
			t.Fatal(err)
		}
		b := make([]byte, 1+f.rng.Intn(5000))
		f.rng.Read(b)
		if _, err := h.Write(b, int64(f.rng.Intn(200<<10))); err != nil {
			t.Fatal(err)
		}
		h.Release()
	case k == 8: // copy a file (same bytes, new inode)
		p := f.pick(f.files)
		src, err := s.Open(v, f.lookup(p), os.O_RDONLY)
		if err != nil {
			t.Fatal(err)
		}
		a, _ := src.Attr()
		buf := make([]byte, a.Size)
		n, _ := src.Read(buf, 0)
		src.Release()
		_, h, err := s.Create(v, pi, name, syscall.S_IFREG|0o600, 0, 0, os.O_RDWR)
		if err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			h.Write(buf[:n], 0)
		}
		h.Release()
		f.files = append(f.files, join(dir, name))
	case k == 9:
		if _, err := s.Symlink(v, pi, name, "target/"+name, 0, 0); err != nil {
			t.Fatal(err)
		}
	case k == 10:
		if _, err := s.Mknod(v, pi, name, syscall.S_IFIFO|0o640, 0, 0, 0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Mknod(v, pi, name+"c", syscall.S_IFCHR|0o600, 0x0103, 0, 0); err != nil {
			t.Fatal(err)
		}
	case k == 11: // xattrs, mode, owner, times
		ino := f.lookup(f.pick(f.files))
		if err := s.SetXattr(v, ino, "user.k"+fmt.Sprint(f.rng.Intn(3)), []byte(name), 0); err != nil {
			t.Fatal(err)
		}
		if _, err := s.SetAttr(v, ino, store.SetAttrIn{Valid: store.SetMode | store.SetUid | store.SetMtime,
			Mode: uint32(0o600 + f.rng.Intn(0o177)), Uid: uint32(f.rng.Intn(5)), Mtime: f.rng.Int63()}); err != nil {
			t.Fatal(err)
		}
		// set-user and set-group ID bits, which a change of owner clears:
		// the receiver must set the owner first
		if f.rng.Intn(3) == 0 {
			setID := []uint32{0o4755, 0o2750, 0o6711}[f.rng.Intn(3)]
			if _, err := s.SetAttr(v, ino, store.SetAttrIn{Valid: store.SetMode, Mode: setID}); err != nil {
				t.Fatal(err)
			}
		}
	case k == 12: // truncate
		ino := f.lookup(f.pick(f.files))
		if _, err := s.SetAttr(v, ino, store.SetAttrIn{Valid: store.SetSize, Size: uint64(f.rng.Intn(400 << 10))}); err != nil {
			t.Fatal(err)
		}
	}
}

// dirOp renames a directory into another (not below itself), or removes
// a directory with everything below it; the path lists follow.
func (f *fixture) dirOp(rename bool, name string) {
	t, s, v := f.t, f.src, f.v
	d := f.dirs[1+f.rng.Intn(len(f.dirs)-1)]
	under := func(p string) bool { return p == d || len(p) > len(d) && p[:len(d)+1] == d+"/" }
	pi, base := f.lookup(parentOf(d)), baseOf(d)
	if rename {
		var to []string
		for _, x := range f.dirs {
			if !under(x) {
				to = append(to, x)
			}
		}
		np := f.pick(to)
		if err := s.Rename(v, pi, base, f.lookup(np), name, 0); err != nil {
			t.Fatal(err)
		}
		nd := join(np, name)
		move := func(l []string) {
			for i, p := range l {
				if under(p) {
					l[i] = nd + p[len(d):]
				}
			}
		}
		move(f.dirs)
		move(f.files)
		return
	}
	a, err := s.Lookup(v, pi, base)
	if err != nil {
		t.Fatal(err)
	}
	if err := removeChildren(s, v, a.Ino); err != nil {
		t.Fatal(err)
	}
	if err := s.Rmdir(v, pi, base); err != nil {
		t.Fatal(err)
	}
	keep := func(l []string) []string {
		var out []string
		for _, p := range l {
			if !under(p) {
				out = append(out, p)
			}
		}
		return out
	}
	f.dirs, f.files = keep(f.dirs), keep(f.files)
}

func parentOf(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[:i]
		}
	}
	return ""
}

func baseOf(p string) string { return p[len(parentOf(p)):][min(1, len(parentOf(p))):] }

// node is what a tree comparison sees of one path.
type node struct {
	attr   store.Attr
	target string
	xattrs []xattr
	data   []byte
	chunks []uint64 // indexes of stored chunks (holes are the rest)
}

// tree returns every path of view v with what it shows, and the groups of
// paths that share an inode (hard links).
func tree(t *testing.T, st *store.Store, v store.View) (map[string]node, [][]string) {
	t.Helper()
	out := map[string]node{}
	links := map[uint64][]string{}
	var walk func(ino uint64, path string)
	walk = func(ino uint64, path string) {
		a, err := st.GetAttr(v, ino)
		if err != nil {
			t.Fatal(err)
		}
		n := node{attr: a}
		n.attr.Ino, n.attr.Blocks, n.attr.Blksize = 0, 0, 0
		n.xattrs, err = listXattrs(st, v, ino)
		if err != nil {
			t.Fatal(err)
		}
		switch a.Mode & syscall.S_IFMT {
		case syscall.S_IFLNK:
			n.target, _ = st.Readlink(v, ino)
		case syscall.S_IFREG:
			h, err := st.Open(v, ino, os.O_RDONLY)
			if err != nil {
				t.Fatal(err)
			}
			n.data = make([]byte, a.Size)
			if _, err := h.Read(n.data, 0); err != nil {
				t.Fatal(err)
			}
			h.Release()
			fl, err := st.FileLayout(v, ino)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range fl.Chunks {
				n.chunks = append(n.chunks, c.Index)
			}
		}
		out[path] = n
		links[ino] = append(links[ino], path)
		if a.Mode&syscall.S_IFMT == syscall.S_IFDIR {
			es, err := listDir(st, v, ino)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range es {
				if len(links[e.Ino]) > 0 && out[links[e.Ino][0]].attr.Mode&syscall.S_IFMT != syscall.S_IFDIR {
					links[e.Ino] = append(links[e.Ino], path+"/"+e.Name)
					out[path+"/"+e.Name] = out[links[e.Ino][0]]
					continue
				}
				walk(e.Ino, path+"/"+e.Name)
			}
		}
	}
	walk(store.RootIno, "")
	var groups [][]string
	for _, g := range links {
		if len(g) > 1 {
			sort.Strings(g)
			groups = append(groups, g)
		}
	}
	sort.Slice(groups, func(i, j int) bool { return groups[i][0] < groups[j][0] })
	return out, groups
}

// same fails t unless the source snapshot and the received one show the
// same tree: every path's attributes, times, xattrs, bytes, holes, and
// the same hard-link groups.
func same(t *testing.T, f *fixture, srcSnap, dstSnap store.View, what string) {
	t.Helper()
	a, ga := tree(t, f.src, srcSnap)
	b, gb := tree(t, f.dst, dstSnap)
	if len(a) != len(b) {
		t.Fatalf("%s: %d paths in the source, %d received", what, len(a), len(b))
	}
	for p, na := range a {
		nb, ok := b[p]
		if !ok {
			t.Fatalf("%s: %q not received", what, p)
		}
		if na.attr != nb.attr || na.target != nb.target || !sameXattrs(na.xattrs, nb.xattrs) || !bytes.Equal(na.data, nb.data) || fmt.Sprint(na.chunks) != fmt.Sprint(nb.chunks) {
			t.Fatalf("%s: %q differs:\nsource   %+v %q %v chunks %v\nreceived %+v %q %v chunks %v", what, p,
				na.attr, na.target, na.xattrs, na.chunks, nb.attr, nb.target, nb.xattrs, nb.chunks)
		}
	}
	if fmt.Sprint(ga) != fmt.Sprint(gb) {
		t.Fatalf("%s: hard links differ: %v vs %v", what, ga, gb)
	}
}

func (f *fixture) snapshot(name string) snap.Snapshot {
	s, err := snap.ManagerFor(f.src).Create("vol", name)
	if err != nil {
		f.t.Fatal(err)
	}
	return s
}

func (f *fixture) send(name, base string, chain bool) []byte {
	var buf bytes.Buffer
	if _, err := SendNamed(&SendRequest{Store: f.src, PoolID: "src-pool", Dataset: "vol", Snapshot: name, Base: base, Chain: chain}, &buf); err != nil {
		f.t.Fatal(err)
	}
	return buf.Bytes()
}

func (f *fixture) target() *Target {
	return &Target{Store: f.dst, Dir: f.dir, Dataset: "copy"}
}

// TestRandomSendReceive runs random operations on a volume, takes
// snapshots, and sends each into a second store, full first, then
// incremental (-i), sometimes a chain (-I) of several, sometimes cut at a
// random offset and resumed; every received snapshot must show the very
// tree of its source.
func TestRandomSendReceive(t *testing.T) {
	for _, seed := range []int64{time.Now().UnixNano(), 1, 2} {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { randomSendReceive(t, seed) })
	}
}

func randomSendReceive(t *testing.T, seed int64) {
	defer func() {
		if t.Failed() {
			t.Logf("seed %d", seed)
		}
	}()
	f := newFixture(t, seed)
	var snaps []snap.Snapshot
	received := ""
	for round := 0; round < 8; round++ {
		for i := 0; i < 15; i++ {
			f.op()
		}
		name := fmt.Sprintf("s%d", round)
		snaps = append(snaps, f.snapshot(name))
		if round%3 == 1 && round < 7 {
			continue // sent later with -I
		}
		chain := received != "" && snaps[len(snaps)-2].Name != received
		stream := f.send(name, received, chain)
		if f.rng.Intn(3) == 0 {
			// Cut the stream, then resume with the token.
			cut := preambleLen + f.rng.Intn(len(stream)-preambleLen)
			if _, _, err := Receive(f.target(), bytes.NewReader(stream[:cut])); err == nil && !chain {
				t.Fatalf("a stream cut at %d of %d was accepted", cut, len(stream))
			}
			if tok, err := ResumeToken(f.dir, "copy"); err == nil {
				var rest bytes.Buffer
				if _, err := SendResume(&SendRequest{Store: f.src, PoolID: "src-pool"}, tok, &rest); err != nil {
					t.Fatal(err)
				}
				// a -I chain continues with the streams after the cut one
				if _, _, err := Receive(f.target(), &rest); err != nil {
					t.Fatalf("resume at %d: %v", cut, err)
				}
			}
			got, _ := snap.ManagerFor(f.dst).List("copy")
			last := ""
			for _, s := range got {
				last = s.Name
			}
			if last != name {
				stream = f.send(name, last, last != "" && chain)
				if _, _, err := Receive(f.target(), bytes.NewReader(stream)); err != nil {
					t.Fatal(err)
				}
			}
		} else if _, _, err := Receive(f.target(), bytes.NewReader(stream)); err != nil {
			t.Fatalf("receive %s (base %q): %v", name, received, err)
		}
		received = name
		// a finished receive leaves no chunk staged
		if n, err := f.dst.StagedTotal(); err != nil || n != 0 {
			t.Fatalf("after %s: %d chunks still staged (%v)", name, n, err)
		}
		// the inode map holds exactly the inodes of the newest snapshot
		rec, err := loadRecv(f.dst, "copy")
		if err != nil || rec == nil {
			t.Fatalf("receive record: %v", err)
		}
		inos := 0
		walkTree(f.src, snaps[len(snaps)-1].View(), func(uint64, store.Attr) error { inos++; return nil })
		n, err := countInoMap(f.dst, "copy")
		if err != nil || n != inos || !rec.MapInKeys || rec.Map != nil {
			t.Fatalf("after %s the inode map holds %d inodes (%v), the snapshot %d", name, n, err, inos)
		}
		for _, s := range snaps {
			d, err := snap.ManagerFor(f.dst).Get("copy", s.Name)
			if err != nil {
				t.Fatalf("%s not received: %v", s.Name, err)
			}
			same(t, f, s.View(), d.View(), s.Name)
			if !d.Created.Equal(s.Created) {
				t.Fatalf("%s: created %v, source %v", s.Name, d.Created, s.Created)
			}
		}
	}
}

// TestIncrementalCarriesOnlyNewChunks: a renamed and a copied file send
// no chunk data; a changed chunk of a large file sends that chunk alone.
func TestIncrementalCarriesOnlyNewChunks(t *testing.T) {
	f := newFixture(t, 1)
	s, v := f.src, f.v
	_, h, _ := s.Create(v, store.RootIno, "big", syscall.S_IFREG|0o644, 0, 0, os.O_RDWR)
	data := make([]byte, 1<<20)
	f.rng.Read(data)
	h.Write(data, 0)
	h.Release()
	f.snapshot("a")
	if _, _, err := Receive(f.target(), bytes.NewReader(f.send("a", "", false))); err != nil {
		t.Fatal(err)
	}
	if err := s.Rename(v, store.RootIno, "big", store.RootIno, "renamed", 0); err != nil {
		t.Fatal(err)
	}
	_, h, _ = s.Create(v, store.RootIno, "copy", syscall.S_IFREG|0o644, 0, 0, os.O_RDWR)
	h.Write(data, 0)
	h.Release()
	f.snapshot("b")
	_, st, err := Receive(f.target(), bytes.NewReader(f.send("b", "a", false)))
	if err != nil {
		t.Fatal(err)
	}
	if st.Chunks != 0 {
		t.Fatalf("rename and copy sent %d chunks", st.Chunks)
	}
	a, _ := s.Lookup(v, store.RootIno, "renamed")
	h, _ = s.Open(v, a.Ino, os.O_RDWR)
	h.Write([]byte("x"), 300<<10)
	h.Release()
	f.snapshot("c")
	_, st, err = Receive(f.target(), bytes.NewReader(f.send("c", "b", false)))
	if err != nil {
		t.Fatal(err)
	}
	if st.Chunks != 1 || st.ChunkBytes != 128<<10 {
		t.Fatalf("one changed chunk sent %d chunks, %d bytes", st.Chunks, st.ChunkBytes)
	}
	for _, n := range []string{"a", "b", "c"} {
		sv, _ := snap.ManagerFor(f.src).Get("vol", n)
		dv, _ := snap.ManagerFor(f.dst).Get("copy", n)
		same(t, f, sv.View(), dv.View(), n)
	}
}

// TestReceiveRefusals: each bad stream or target is refused with its
// error, and the target keeps its snapshots and files.
func TestReceiveRefusals(t *testing.T) {
	f := newFixture(t, 3)
	for i := 0; i < 20; i++ {
		f.op()
	}
	f.snapshot("a")
	full := f.send("a", "", false)
	for i := 0; i < 5; i++ {
		f.op()
	}
	f.snapshot("b")
	incr := f.send("b", "a", false)
	newer := append([]byte{}, full...)
	newer[9] = 9
	flipped := append([]byte{}, full...)
	flipped[len(flipped)/2] ^= 0x40
	// two records swapped: the second record moved first
	cases := []struct {
		name  string
		input []byte
		want  error
	}{
		{"empty", nil, ErrNotStream},
		{"not a stream", []byte("hello, this is not a snapfs stream at all"), ErrNotStream},
		{"newer version", newer, ErrNewerVersion},
		{"truncated", full[:len(full)-10], ErrTruncated},
		{"flipped byte", flipped, ErrCorrupt},
		{"incremental without base", incr, ErrNoBase},
	}
	for _, c := range cases {
		_, _, err := Receive(f.target(), bytes.NewReader(c.input))
		if !errors.Is(err, c.want) {
			t.Fatalf("%s: got %v, want %v", c.name, err, c.want)
		}
		if _, err := f.dst.Volume("copy"); err == nil {
			t.Fatalf("%s: the refused stream made the volume", c.name)
		}
		Abort(f.dst, f.dir, "copy", nil)
		if n, err := f.dst.StagedTotal(); err != nil || n != 0 {
			t.Fatalf("%s: %d chunks staged after abort (%v)", c.name, n, err)
		}
	}
	if _, _, err := Receive(f.target(), bytes.NewReader(full)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Receive(f.target(), bytes.NewReader(full)); !errors.Is(err, ErrTargetExists) {
		t.Fatalf("full into an existing volume: %v", err)
	}
	// the target changed since the base: refused, then -F
	dv, _ := snap.ManagerFor(f.dst).LiveView("copy")
	if _, err := f.dst.Mkdir(dv, store.RootIno, "local", 0o755, 0, 0); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Receive(f.target(), bytes.NewReader(incr)); !errors.Is(err, ErrTargetChanged) {
		t.Fatalf("changed target: %v", err)
	}
	bad := append([]byte{}, incr...)
	bad[len(bad)-40] ^= 1
	tg := f.target()
	tg.Force = true
	if _, _, err := Receive(tg, bytes.NewReader(bad)); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("damaged incremental: %v", err)
	}
	if _, err := f.dst.Lookup(dv, store.RootIno, "local"); err != nil {
		t.Fatalf("a refused stream changed the target: %v", err)
	}
	if _, _, err := Receive(tg, bytes.NewReader(incr)); !errors.Is(err, ErrPartial) {
		t.Fatalf("receive over a partial one: %v", err)
	}
	if err := Abort(f.dst, f.dir, "copy", nil); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Receive(tg, bytes.NewReader(incr)); err != nil {
		t.Fatal(err)
	}
	if _, _, err := Receive(tg, bytes.NewReader(incr)); !errors.Is(err, ErrSnapshotExists) && !errors.Is(err, ErrNoBase) {
		t.Fatalf("the same snapshot again: %v", err)
	}
	if _, err := ResumeToken(f.dir, "copy"); !errors.Is(err, ErrNoPartial) {
		t.Fatalf("token without a partial receive: %v", err)
	}
	if _, err := SendResume(&SendRequest{Store: f.src, PoolID: "src-pool"}, "1-garbage", &bytes.Buffer{}); !errors.Is(err, ErrStaleToken) {
		t.Fatalf("garbage token: %v", err)
	}
	for _, n := range []string{"a", "b"} {
		sv, _ := snap.ManagerFor(f.src).Get("vol", n)
		dv, _ := snap.ManagerFor(f.dst).Get("copy", n)
		same(t, f, sv.View(), dv.View(), n)
	}
}

// validStream builds, without a store, one small valid stream of fixed
// bytes for the fuzz target to damage: a root with a file of one chunk.
func validStream() []byte {
	var buf bytes.Buffer
	rw := newRecordWriter(&buf)
	h := &Header{Format: Version, SourcePool: "p", Dataset: "vol", Snapshot: SnapInfo{Name: "s", Epoch: 2, Created: 1}, ChunkSize: 4096}
	h.StreamID = streamID(h)
	rw.record(recHeader, mustJSON(h))
	root := inodeRecord{Ino: 1, New: true, Mode: syscall.S_IFDIR | 0o755, Atime: 1, Mtime: 2, Ctime: 3}
	rw.record(recInode, root.encode())
	file := inodeRecord{Ino: 2, New: true, Mode: syscall.S_IFREG | 0o644, Size: 100, Atime: 1, Mtime: 2, Ctime: 3}
	rw.record(recInode, file.encode())
	rw.record(recXattrs, encodeXattrs(2, []xattr{{"user.a", []byte("b")}}))
	data := bytes.Repeat([]byte{7}, 100)
	sum := blake3.Sum256(data)
	rw.record(recChunk, append(append([]byte{}, sum[:]...), data...))
	l := layoutRecord{Ino: 2, Size: 100, ChunkSize: 4096, Chunks: []layoutEntry{{0, sum, 100}}}
	rw.record(recLayout, l.encode())
	rw.record(recDir, encodeDir(1, []dirEntry{{"f", 2}}))
	rw.end()
	return buf.Bytes()
}

// TestTwoReceivesAtOnce: while one receive into a dataset runs, another
// is refused with ErrBusy and changes nothing; a receive into another
// dataset goes ahead.
func TestTwoReceivesAtOnce(t *testing.T) {
	f := newFixture(t, 4)
	for i := 0; i < 10; i++ {
		f.op()
	}
	f.snapshot("a")
	full := f.send("a", "", false)
	unlock, err := lockDataset(f.dir, "copy") // the first receive holds it
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := Receive(f.target(), bytes.NewReader(full)); !errors.Is(err, ErrBusy) {
		t.Fatalf("second receive: %v", err)
	}
	other := f.target()
	other.Dataset = "copy2"
	if _, _, err := Receive(other, bytes.NewReader(full)); err != nil {
		t.Fatal(err)
	}
	unlock()
	if _, _, err := Receive(f.target(), bytes.NewReader(full)); err != nil {
		t.Fatal(err)
	}
	sv, _ := snap.ManagerFor(f.src).Get("vol", "a")
	for _, ds := range []string{"copy", "copy2"} {
		dv, _ := snap.ManagerFor(f.dst).Get(ds, "a")
		same(t, f, sv.View(), dv.View(), ds)
	}
}

// TestReceiveKilledWhileApplying: a receive that stopped after the
// stream was verified but before its snapshot was taken (the state says
// it was applying) undoes the partial tree and applies again on resume.
func TestReceiveKilledWhileApplying(t *testing.T) {
	f := newFixture(t, 5)
	for i := 0; i < 20; i++ {
		f.op()
	}
	f.snapshot("a")
	if _, _, err := Receive(f.target(), bytes.NewReader(f.send("a", "", false))); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		f.op()
	}
	f.snapshot("b")
	incr := f.send("b", "a", false)
	// Receive all but the end record, which makes the spool hold a
	// verified prefix; then mark it complete and applying, and spoil the
	// target as a half-done apply would.
	cut := len(incr) - 60
	if _, _, err := Receive(f.target(), bytes.NewReader(incr[:cut])); !errors.Is(err, ErrTruncated) {
		t.Fatalf("cut stream: %v", err)
	}
	st, _ := loadState(f.dir, "copy")
	st.Applying = true
	if err := saveState(f.dir, "copy", st); err != nil {
		t.Fatal(err)
	}
	dv, _ := snap.ManagerFor(f.dst).LiveView("copy")
	if _, err := f.dst.Mkdir(dv, store.RootIno, "half-applied", 0o755, 0, 0); err != nil {
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
	for _, n := range []string{"a", "b"} {
		sv, _ := snap.ManagerFor(f.src).Get("vol", n)
		dv, _ := snap.ManagerFor(f.dst).Get("copy", n)
		same(t, f, sv.View(), dv.View(), n)
	}
}

// TestStaleAndForeignTokens: a token is refused by a pool other than the
// one it names, after its snapshot was destroyed and taken again under
// the same name, and when the receiver's partial state moved on.
func TestStaleAndForeignTokens(t *testing.T) {
	f := newFixture(t, 6)
	for i := 0; i < 10; i++ {
		f.op()
	}
	f.snapshot("a")
	full := f.send("a", "", false)
	if _, _, err := Receive(f.target(), bytes.NewReader(full[:len(full)/2])); !errors.Is(err, ErrTruncated) {
		t.Fatalf("cut: %v", err)
	}
	tok, err := ResumeToken(f.dir, "copy")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := SendResume(&SendRequest{Store: f.src, PoolID: "another-pool"}, tok, &bytes.Buffer{}); !errors.Is(err, ErrStaleToken) {
		t.Fatalf("foreign pool: %v", err)
	}
	// a resumed stream that does not continue the partial state
	var rest bytes.Buffer
	if _, err := SendResume(&SendRequest{Store: f.src, PoolID: "src-pool"}, tok, &rest); err != nil {
		t.Fatal(err)
	}
	other := f.target()
	other.Dataset = "elsewhere"
	if _, _, err := Receive(other, bytes.NewReader(rest.Bytes())); !errors.Is(err, ErrNoPartial) {
		t.Fatalf("resume into a dataset without a partial receive: %v", err)
	}
	m := snap.ManagerFor(f.src)
	if err := m.Destroy("vol", "a"); err != nil {
		t.Fatal(err)
	}
	f.op()
	f.snapshot("a")
	if _, err := SendResume(&SendRequest{Store: f.src, PoolID: "src-pool"}, tok, &bytes.Buffer{}); !errors.Is(err, ErrStaleToken) {
		t.Fatalf("snapshot taken again: %v", err)
	}
	if _, _, err := Receive(f.target(), bytes.NewReader(rest.Bytes())); err != nil {
		t.Fatalf("the resumed stream sent before: %v", err)
	}
}
