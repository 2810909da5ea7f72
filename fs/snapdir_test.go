package fs

import (
	"context"
	"syscall"
	"testing"
	"time"

	gofs "github.com/hanwen/go-fuse/v2/fs"
	"github.com/hanwen/go-fuse/v2/fuse"

	"github.com/snapfs/snapfs/snap"
	"github.com/snapfs/snapfs/store"
	"github.com/snapfs/snapfs/store/storetest"
)

// testRoot builds the root of the test store's volume behind a go-fuse
// bridge (no mount), so node methods can be called directly.
func testRoot(t *testing.T, o MountOptions) (*rootNode, *store.Store, store.View) {
	t.Helper()
	st, v := storetest.New(t, 1, store.Options{})
	t.Cleanup(func() { snap.Release(st) })
	root, opts, err := NewRoot(st, v, o)
	if err != nil {
		t.Fatal(err)
	}
	gofs.NewNodeFS(root, opts)
	return root.(*rootNode), st, v
}

func asUid(uid uint32) context.Context {
	return &fuse.Context{Caller: fuse.Caller{Owner: fuse.Owner{Uid: uid, Gid: uid}}}
}

func mustSnapdir(t *testing.T, r *rootNode) *snapdirNode {
	t.Helper()
	var out fuse.EntryOut
	in, errno := r.Lookup(asUid(0), SnapdirName, &out)
	if errno != 0 {
		t.Fatalf("lookup .snapshots: %v", errno)
	}
	if out.Attr.Ino != nodeID(r.vs.view, snapdirIno) || out.EntryTimeout() > time.Second {
		t.Fatalf(".snapshots entry: ino %x timeout %v", out.Attr.Ino, out.EntryTimeout())
	}
	return in.Operations().(*snapdirNode)
}

// listRoot returns the names of r's listing without "." and "..".
func listRoot(t *testing.T, r *rootNode) []string {
	t.Helper()
	fh, _, errno := r.OpendirHandle(asUid(0), 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	h := fh.(*dirHandle)
	var names []string
	for {
		e, errno := h.Readdirent(asUid(0))
		if errno != 0 {
			t.Fatal(errno)
		}
		if e == nil {
			return names
		}
		if e.Name != "." && e.Name != ".." {
			names = append(names, e.Name)
		}
	}
}

func TestSnapdirHiddenAndReserved(t *testing.T) {
	for _, visible := range []bool{false, true} {
		r, st, v := testRoot(t, MountOptions{SnapdirVisible: visible})
		if _, err := st.Mkdir(v, store.RootIno, "d", 0o755, 0, 0); err != nil {
			t.Fatal(err)
		}
		got := listRoot(t, r)
		want := []string{"d"}
		if visible {
			want = []string{SnapdirName, "d"}
		}
		if len(got) != len(want) || got[0] != want[0] {
			t.Errorf("visible=%v: listing %v, want %v", visible, got, want)
		}
		mustSnapdir(t, r)
		var out fuse.EntryOut
		if _, errno := r.Mkdir(asUid(0), SnapdirName, 0o755, &out); errno != syscall.EEXIST {
			t.Errorf("mkdir .snapshots: %v", errno)
		}
		if _, _, _, errno := r.Create(asUid(0), SnapdirName, 0, 0o644, &out); errno != syscall.EEXIST {
			t.Errorf("create .snapshots: %v", errno)
		}
		if errno := r.Rename(asUid(0), SnapdirName, r, "x", 0); errno != syscall.EBUSY {
			t.Errorf("mv .snapshots x: %v", errno)
		}
		if errno := r.Rmdir(asUid(0), SnapdirName); errno != syscall.EBUSY {
			t.Errorf("rmdir .snapshots: %v", errno)
		}
		if errno := r.Rename(asUid(0), "d", r, SnapdirName, 0); errno != syscall.EBUSY {
			t.Errorf("mv d .snapshots: %v", errno)
		}
		// Deeper directories may use the name.
		var dout fuse.EntryOut
		din, errno := r.Lookup(asUid(0), "d", &dout)
		if errno != 0 {
			t.Fatal(errno)
		}
		if _, errno := din.Operations().(*dirNode).Mkdir(asUid(0), SnapdirName, 0o755, &out); errno != 0 {
			t.Errorf("mkdir d/.snapshots: %v", errno)
		}
	}
}

func TestSnapdirLifecycle(t *testing.T) {
	r, st, v := testRoot(t, MountOptions{})
	_, h, err := st.Create(v, store.RootIno, "f", 0o644, 0, 0, syscall.O_RDWR)
	if err != nil {
		t.Fatal(err)
	}
	h.Write([]byte("before"), 0)
	h.Release()
	sd := mustSnapdir(t, r)

	var out fuse.EntryOut
	if _, errno := sd.Mkdir(asUid(1000), "s1", 0o755, &out); errno != syscall.EPERM {
		t.Fatalf("mkdir by a stranger: %v", errno)
	}
	for _, bad := range []string{"a@b", "."} {
		if _, errno := sd.Mkdir(asUid(0), bad, 0o755, &out); errno != syscall.EINVAL {
			t.Errorf("mkdir %q: %v", bad, errno)
		}
	}
	in, errno := sd.Mkdir(asUid(0), "s1", 0o755, &out)
	if errno != 0 {
		t.Fatalf("mkdir s1: %v", errno)
	}
	if _, errno := sd.Mkdir(asUid(0), "s1", 0o755, &out); errno != syscall.EEXIST {
		t.Fatalf("mkdir s1 twice: %v", errno)
	}
	sroot := in.Operations().(*dirNode)
	sv := sroot.vs.view
	if !sv.ReadOnly || sv.ID == v.ID || out.Attr.Ino != nodeID(sv, store.RootIno) || out.AttrTimeout() < time.Hour {
		t.Fatalf("snapshot root: view %+v ino %x attr timeout %v", sv, out.Attr.Ino, out.AttrTimeout())
	}

	// The live file changes; the snapshot keeps the old content.
	h, err = st.Open(v, 2, syscall.O_RDWR|syscall.O_TRUNC)
	if err != nil {
		t.Fatal(err)
	}
	h.Write([]byte("after!!"), 0)
	h.Release()
	fin, errno := sroot.Lookup(asUid(0), "f", &out)
	if errno != 0 {
		t.Fatal(errno)
	}
	fn := fin.Operations().(*fileNode)
	fh, flags, errno := fn.Open(asUid(0), syscall.O_RDONLY)
	if errno != 0 || flags&fuse.FOPEN_KEEP_CACHE == 0 {
		t.Fatalf("open in snapshot: %v flags %x", errno, flags)
	}
	buf := make([]byte, 64)
	res, errno := fh.(*fileHandle).Read(asUid(0), buf, 0)
	if errno != 0 {
		t.Fatal(errno)
	}
	if b, _ := res.Bytes(buf); string(b) != "before" {
		t.Errorf("snapshot f = %q", b)
	}
	fh.(*fileHandle).Release(asUid(0))

	// Every change in the snapshot is EROFS.
	if _, _, errno := fn.Open(asUid(0), syscall.O_WRONLY); errno != syscall.EROFS {
		t.Errorf("open for write: %v", errno)
	}
	if _, errno := sroot.Mkdir(asUid(0), "x", 0o755, &out); errno != syscall.EROFS {
		t.Errorf("mkdir: %v", errno)
	}
	if _, _, _, errno := sroot.Create(asUid(0), "x", syscall.O_RDWR, 0o644, &out); errno != syscall.EROFS {
		t.Errorf("create: %v", errno)
	}
	if errno := sroot.Unlink(asUid(0), "f"); errno != syscall.EROFS {
		t.Errorf("unlink: %v", errno)
	}
	if errno := sroot.Rename(asUid(0), "f", sroot, "g", 0); errno != syscall.EROFS {
		t.Errorf("rename: %v", errno)
	}
	if _, errno := sroot.Symlink(asUid(0), "t", "l", &out); errno != syscall.EROFS {
		t.Errorf("symlink: %v", errno)
	}
	var aout fuse.AttrOut
	if errno := fn.Setattr(asUid(0), nil, &fuse.SetAttrIn{SetAttrInCommon: fuse.SetAttrInCommon{Valid: fuse.FATTR_MODE, Mode: 0o600}}, &aout); errno != syscall.EROFS {
		t.Errorf("chmod: %v", errno)
	}
	if errno := fn.Setxattr(asUid(0), "user.x", []byte("v"), 0); errno != syscall.EROFS {
		t.Errorf("setxattr: %v", errno)
	}
	if errno := fn.Removexattr(asUid(0), "user.x"); errno != syscall.EROFS {
		t.Errorf("removexattr: %v", errno)
	}
	if _, errno := sroot.Lookup(asUid(0), SnapdirName, &out); errno != syscall.ENOENT {
		t.Errorf("snapshot has .snapshots: %v", errno)
	}
	dh, dflags, errno := sroot.OpendirHandle(asUid(0), 0)
	if errno != 0 || dflags&fuse.FOPEN_CACHE_DIR == 0 || dh == nil {
		t.Errorf("opendir in snapshot: %v flags %x", errno, dflags)
	}

	// Listing, rename, destroy.
	ds, errno := sd.Readdir(asUid(0))
	if errno != 0 {
		t.Fatal(errno)
	}
	var names []string
	for ds.HasNext() {
		e, _ := ds.Next()
		if e.Name == "." || e.Name == ".." {
			continue
		}
		names = append(names, e.Name)
		if e.Ino != nodeID(sv, store.RootIno) {
			t.Errorf("listing ino %x", e.Ino)
		}
	}
	if len(names) != 1 || names[0] != "s1" {
		t.Fatalf("listing %v", names)
	}
	if errno := sd.Rename(asUid(1000), "s1", sd, "s2", 0); errno != syscall.EPERM {
		t.Errorf("rename by a stranger: %v", errno)
	}
	if errno := sd.Rename(asUid(0), "s1", r, "s2", 0); errno != syscall.EXDEV {
		t.Errorf("rename out of .snapshots: %v", errno)
	}
	if errno := sd.Rename(asUid(0), "s1", sd, "s2", 0); errno != 0 {
		t.Fatalf("rename: %v", errno)
	}
	if _, errno := sd.Lookup(asUid(0), "s1", &out); errno != syscall.ENOENT {
		t.Errorf("lookup old name: %v", errno)
	}
	if _, errno := sd.Lookup(asUid(0), "s2", &out); errno != 0 || out.Attr.Ino != nodeID(sv, store.RootIno) {
		t.Errorf("lookup new name: %v ino %x", errno, out.Attr.Ino)
	}
	if errno := sd.Rmdir(asUid(1000), "s2"); errno != syscall.EPERM {
		t.Errorf("rmdir by a stranger: %v", errno)
	}
	if errno := sd.Rmdir(asUid(0), "s2"); errno != 0 {
		t.Fatalf("rmdir: %v", errno)
	}
	if errno := sd.Rmdir(asUid(0), "s2"); errno != syscall.ENOENT {
		t.Errorf("rmdir twice: %v", errno)
	}
}

func TestSnapdirBranch(t *testing.T) {
	r, st, _ := testRoot(t, MountOptions{})
	sd := mustSnapdir(t, r)
	var out fuse.EntryOut
	if _, errno := sd.Mkdir(asUid(0), "s1", 0o755, &out); errno != 0 {
		t.Fatal(errno)
	}
	if _, err := snap.ManagerFor(st).CreateBranch("vol", "s1", "b"); err != nil {
		t.Fatal(err)
	}
	in, errno := sd.Lookup(asUid(0), "b", &out)
	if errno != 0 {
		t.Fatal(errno)
	}
	broot := in.Operations().(*rootNode)
	if broot.vs.view.ReadOnly || !broot.vs.snapdir {
		t.Fatalf("branch view %+v, snapdir %v", broot.vs.view, broot.vs.snapdir)
	}
	if _, errno := broot.Mkdir(asUid(0), "x", 0o755, &out); errno != 0 {
		t.Errorf("mkdir in branch: %v", errno)
	}
	if errno := sd.Rmdir(asUid(0), "b"); errno != syscall.ENOTEMPTY {
		t.Errorf("rmdir branch: %v", errno)
	}
	if errno := sd.Rmdir(asUid(0), "s1"); errno != syscall.EBUSY {
		t.Errorf("rmdir snapshot with a branch: %v", errno)
	}
}

// TestSnapdirOfBranch works in a branch's own .snapshots as in the volume's:
// hidden but reachable, reserved, mkdir/mv/rmdir of snapshots of the branch
// by the owner only, and a branch of the branch's snapshot with a
// .snapshots of its own in turn.
func TestSnapdirOfBranch(t *testing.T) {
	r, st, _ := testRoot(t, MountOptions{})
	m := snap.ManagerFor(st)
	var out fuse.EntryOut
	sd := mustSnapdir(t, r)
	if _, errno := sd.Mkdir(asUid(0), "s1", 0o755, &out); errno != 0 {
		t.Fatal(errno)
	}
	if _, err := m.CreateBranch("vol", "s1", "b"); err != nil {
		t.Fatal(err)
	}
	in, errno := sd.Lookup(asUid(0), "b", &out)
	if errno != 0 {
		t.Fatal(errno)
	}
	broot := in.Operations().(*rootNode)
	bv := broot.vs.view
	if _, errno := broot.Mkdir(asUid(0), "d", 0o755, &out); errno != 0 {
		t.Fatal(errno)
	}
	if got := listRoot(t, broot); len(got) != 1 || got[0] != "d" {
		t.Errorf("branch root lists %v, want [d] (.snapshots hidden)", got)
	}
	if _, errno := broot.Mkdir(asUid(0), SnapdirName, 0o755, &out); errno != syscall.EEXIST {
		t.Errorf("mkdir .snapshots in a branch root: %v", errno)
	}
	if errno := broot.Rename(asUid(0), "d", broot, SnapdirName, 0); errno != syscall.EBUSY {
		t.Errorf("mv d .snapshots in a branch root: %v", errno)
	}
	bsd := mustSnapdir(t, broot) // checks its inode number is the branch view's
	if _, errno := bsd.Mkdir(asUid(1000), "t1", 0o755, &out); errno != syscall.EPERM {
		t.Errorf("mkdir in a branch's .snapshots by a stranger: %v", errno)
	}
	tin, errno := bsd.Mkdir(asUid(0), "t1", 0o755, &out)
	if errno != 0 {
		t.Fatalf("mkdir t1 in the branch's .snapshots: %v", errno)
	}
	troot := tin.Operations().(*dirNode)
	if tv := troot.vs.view; !tv.ReadOnly || tv.Lineage != bv.Lineage {
		t.Fatalf("snapshot of the branch: view %+v, branch %+v", tv, bv)
	}
	if _, errno := troot.Lookup(asUid(0), "d", &out); errno != 0 {
		t.Errorf("the branch's snapshot lacks d: %v", errno)
	}
	if _, errno := troot.Lookup(asUid(0), SnapdirName, &out); errno != syscall.ENOENT {
		t.Errorf("a branch's snapshot has .snapshots: %v", errno)
	}
	if _, errno := troot.Mkdir(asUid(0), "x", 0o755, &out); errno != syscall.EROFS {
		t.Errorf("mkdir in a branch's snapshot: %v", errno)
	}
	if l, err := m.List("vol/b"); err != nil || len(l) != 1 || l[0].Name != "t1" {
		t.Errorf("List(vol/b) = %+v, %v", l, err)
	}
	if l, err := m.List("vol"); err != nil || len(l) != 2 {
		t.Errorf("List(vol) = %+v, %v (the branch's snapshot must not show)", l, err)
	}

	// A branch of the branch's snapshot has its own .snapshots in turn.
	if _, err := m.CreateBranch("vol/b", "t1", "c"); err != nil {
		t.Fatal(err)
	}
	cin, errno := bsd.Lookup(asUid(0), "c", &out)
	if errno != 0 {
		t.Fatal(errno)
	}
	croot := cin.Operations().(*rootNode)
	csd := mustSnapdir(t, croot)
	if _, errno := csd.Mkdir(asUid(0), "u1", 0o755, &out); errno != 0 {
		t.Fatalf("mkdir u1 at depth 2: %v", errno)
	}
	if errno := bsd.Rmdir(asUid(0), "t1"); errno != syscall.EBUSY {
		t.Errorf("rmdir a branch's snapshot with a branch: %v", errno)
	}
	if errno := bsd.Rmdir(asUid(0), "c"); errno != syscall.ENOTEMPTY {
		t.Errorf("rmdir a branch of a branch: %v", errno)
	}

	// Renaming the branch in the volume's .snapshots keeps the nodes
	// already handed out working: they find the dataset by view id.
	if errno := sd.Rename(asUid(0), "b", sd, "b2", 0); errno != 0 {
		t.Fatalf("mv b b2: %v", errno)
	}
	if errno := csd.Rename(asUid(0), "u1", csd, "u2", 0); errno != 0 {
		t.Errorf("mv u1 u2 at depth 2 after renaming the branch above: %v", errno)
	}
	if l, err := m.List("vol/b2/c"); err != nil || len(l) != 1 || l[0].Name != "u2" {
		t.Errorf("List(vol/b2/c) = %+v, %v", l, err)
	}
	if errno := csd.Rmdir(asUid(0), "u2"); errno != 0 {
		t.Errorf("rmdir u2: %v", errno)
	}
	if err := m.DestroyBranchRecursive("vol", "b2"); err != nil {
		t.Fatal(err)
	}
	if _, errno := bsd.Readdir(asUid(0)); errno != syscall.ESTALE {
		t.Errorf("readdir of a destroyed branch's .snapshots: %v", errno)
	}
}
