package tests

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// newEmptyPool creates a pool with one member under a fresh directory.
func newEmptyPool(t *testing.T) string {
	t.Helper()
	base := t.TempDir()
	p, d := filepath.Join(base, "pool"), filepath.Join(base, "disk")
	if err := os.Mkdir(d, 0o755); err != nil {
		t.Fatal(err)
	}
	snapfsOK(t, "pool", "create", p, "--member", d)
	return p
}

// fillTree writes every kind of file a snapshot shows into dir.
func fillTree(t *testing.T, dir string, big int) {
	t.Helper()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(dir, "a/b/c"), 0o750))
	for i := 0; i < 20; i++ {
		must(os.WriteFile(filepath.Join(dir, "a", "f"+string(rune('a'+i))), pattern(1000*i+7, byte(i)), 0o640))
	}
	must(os.WriteFile(filepath.Join(dir, "a/b/big"), pattern(big, 3), 0o600))
	must(os.Link(filepath.Join(dir, "a/fa"), filepath.Join(dir, "a/b/c/hardlink")))
	must(os.Symlink("../fb", filepath.Join(dir, "a/b/link")))
	must(syscall.Mkfifo(filepath.Join(dir, "fifo"), 0o644))
	must(syscall.Mknod(filepath.Join(dir, "null"), syscall.S_IFCHR|0o666, 0x0103))
	must(syscall.Setxattr(filepath.Join(dir, "a/fc"), "user.color", []byte("blue"), 0))
	sp, err := os.Create(filepath.Join(dir, "sparse"))
	must(err)
	_, err = sp.WriteAt([]byte("tail"), 5<<20)
	must(err)
	sp.Close()
	must(os.Chown(filepath.Join(dir, "a/fd"), 1234, 5678))
	must(os.Chtimes(filepath.Join(dir, "a/fe"), time.Unix(1000, 5), time.Unix(2000, 7)))
}

// sameTrees compares two trees with diff -r, a checksum manifest, and
// stat of every path (times, links, xattrs).
func sameTrees(t *testing.T, what, a, b string) {
	t.Helper()
	// diff reports special files as differing from themselves: the stat
	// comparison below covers the FIFO and the device node.
	mustRun(t, "", nil, "diff", "-r", "--no-dereference", "--exclude=fifo", "--exclude=null", a, b)
	compareManifests(t, what, manifest(t, a), manifest(t, b))
	err := filepath.Walk(a, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(a, p)
		var sa, sb syscall.Stat_t
		if err := syscall.Lstat(p, &sa); err != nil {
			return err
		}
		if err := syscall.Lstat(filepath.Join(b, rel), &sb); err != nil {
			return err
		}
		if sa.Mode != sb.Mode || sa.Nlink != sb.Nlink || sa.Uid != sb.Uid || sa.Gid != sb.Gid || sa.Rdev != sb.Rdev ||
			sa.Mtim != sb.Mtim || sa.Size != sb.Size || (rel != "." && sa.Ctim != sb.Ctim) || sa.Blocks != sb.Blocks {
			t.Errorf("%s: %s: stat differs:\n%+v\n%+v", what, rel, sa, sb)
		}
		if fi.Mode().IsRegular() {
			x := make([]byte, 64)
			na, _ := syscall.Getxattr(p, "user.color", x)
			y := make([]byte, 64)
			nb, _ := syscall.Getxattr(filepath.Join(b, rel), "user.color", y)
			if na != nb || !bytes.Equal(x[:max(na, 0)], y[:max(nb, 0)]) {
				t.Errorf("%s: %s: xattr differs", what, rel)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// TestSendReceiveBetweenPools sends a full then an incremental stream
// from one pool to another through pipes and files, mounts the received
// volume and compares every snapshot with its source (diff -r, checksums,
// stat), branches a received snapshot, and refuses a flipped byte.
func TestSendReceiveBetweenPools(t *testing.T) {
	mnt, p := mountVolume(t, mountOpts{})
	fillTree(t, mnt, 3<<20)
	snapfsOK(t, "-p", p, "snapshot", "create", "vol", "mon")
	// change: edit, rename, copy, delete
	if err := os.WriteFile(filepath.Join(mnt, "a/fb"), []byte("changed"), 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(filepath.Join(mnt, "a/b/big"), filepath.Join(mnt, "moved-big")); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "", nil, "cp", "-a", filepath.Join(mnt, "moved-big"), filepath.Join(mnt, "copy-big"))
	if err := os.RemoveAll(filepath.Join(mnt, "a/b/c")); err != nil {
		t.Fatal(err)
	}
	snapfsOK(t, "-p", p, "snapshot", "create", "vol", "tue")
	umount(t, p, mnt)

	q := newEmptyPool(t)
	dir := t.TempDir()
	full, incr := filepath.Join(dir, "mon.snapfs"), filepath.Join(dir, "tue.snapfs")
	mustRun(t, "", nil, "sh", "-c", snapfsBin+" -p "+p+" send vol@mon > "+full)
	mustRun(t, "", nil, "sh", "-c", snapfsBin+" -p "+p+" send -i vol@mon vol@tue --compress > "+incr)

	// a flipped byte is refused with one line, and nothing is made
	b, _ := os.ReadFile(full)
	b[len(b)/2] ^= 1
	bad := filepath.Join(dir, "bad.snapfs")
	os.WriteFile(bad, b, 0o600)
	r := run(t, "", nil, "sh", "-c", snapfsBin+" -p "+q+" receive copy < "+bad)
	if r.err == nil || !strings.HasPrefix(r.stderr, "snapfs: ") || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "damaged") {
		t.Fatalf("flipped byte: %v %q", r.err, r.stderr)
	}
	snapfsOK(t, "-p", q, "receive", "--abort", "copy")
	if out := snapfsOK(t, "-p", q, "volume", "list"); strings.Contains(out, "copy") {
		t.Fatalf("a refused stream made a volume:\n%s", out)
	}

	js := mustRun(t, "", nil, "sh", "-c", snapfsBin+" -p "+q+" receive copy --json < "+full+" 2>&1")
	if !strings.Contains(js, `"snapshots":["copy@mon"]`) {
		t.Fatalf("receive --json: %s", js)
	}
	mustRun(t, "", nil, "sh", "-c", snapfsBin+" -p "+q+" receive copy < "+incr)
	// the same incremental again: the snapshot exists (or the base is not newest)
	if r := run(t, "", nil, "sh", "-c", snapfsBin+" -p "+q+" receive copy < "+incr); r.err == nil {
		t.Fatal("the same incremental was received twice")
	}

	base := t.TempDir()
	mp, mq := filepath.Join(base, "p"), filepath.Join(base, "q")
	os.Mkdir(mp, 0o755)
	os.Mkdir(mq, 0o755)
	mountAt(t, p, "vol", mp)
	mountAt(t, q, "copy", mq)
	for _, s := range []string{"mon", "tue"} {
		sameTrees(t, s, filepath.Join(mp, ".snapshots", s), filepath.Join(mq, ".snapshots", s))
	}
	sameTrees(t, "live", filepath.Join(mp, ".snapshots", "tue"), mq)
	snapfsOK(t, "-p", q, "branch", "create", "copy@mon", "try")
	if err := os.WriteFile(filepath.Join(mq, ".snapshots/try/new"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(mq, ".snapshots/try/a/b/big")); err != nil {
		t.Fatalf("branch of a received snapshot: %v", err)
	}
}

// TestReceiveKilledThenResumed kills the receiver with SIGKILL half way
// through a stream, then resumes with the token: the result is the
// source's tree.
func TestReceiveKilledThenResumed(t *testing.T) {
	mnt, p := mountVolume(t, mountOpts{})
	fillTree(t, mnt, 40<<20)
	snapfsOK(t, "-p", p, "snapshot", "create", "vol", "s")
	umount(t, p, mnt)
	dir := t.TempDir()
	saved := filepath.Join(dir, "s.snapfs")
	mustRun(t, "", nil, "sh", "-c", snapfsBin+" -p "+p+" send vol@s > "+saved)
	data, _ := os.ReadFile(saved)

	q := newEmptyPool(t)
	cmd := exec.Command(snapfsBin, "-p", q, "receive", "copy")
	w, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	half := len(data) * 3 / 4
	if _, err := w.Write(data[:half]); err != nil {
		t.Fatal(err)
	}
	// wait until the receiver has made part of it durable
	state := filepath.Join(q, "recv", "copy.state")
	deadline := time.Now().Add(60 * time.Second)
	for {
		if b, err := os.ReadFile(state); err == nil && !bytes.Contains(b, []byte(`"verified":12,`)) && bytes.Contains(b, []byte(`"verified"`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the receiver made nothing durable")
		}
		time.Sleep(50 * time.Millisecond)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	w.Close()
	out := snapfsOK(t, "-p", q, "volume", "list")
	if !strings.Contains(out, "partial receive: copy@s (interrupted") || strings.Contains(out, "\ncopy ") {
		t.Fatalf("volume list of a partial receive:\n%s", out)
	}
	tok := strings.TrimSpace(snapfsOK(t, "-p", q, "receive", "--resume-token", "copy"))
	// a token for another dataset is refused
	if r := run(t, "", nil, "sh", "-c", snapfsBin+" -p "+q+" receive --resume-token other"); r.err == nil {
		t.Fatal("a token for a dataset without a partial receive")
	}
	var rest bytes.Buffer
	send := exec.Command(snapfsBin, "-p", p, "send", "--resume", tok)
	send.Stdout = &rest
	var serr bytes.Buffer
	send.Stderr = &serr
	if err := send.Run(); err != nil {
		t.Fatalf("send --resume: %v: %s", err, serr.String())
	}
	if rest.Len() >= len(data) || rest.Len() == 0 {
		t.Fatalf("resume sent %d bytes of %d", rest.Len(), len(data))
	}
	recv := exec.Command(snapfsBin, "-p", q, "receive", "copy")
	recv.Stdin = io.MultiReader(&rest)
	if out, err := recv.CombinedOutput(); err != nil {
		t.Fatalf("receive the rest: %v: %s", err, out)
	}
	base := t.TempDir()
	mp, mq := filepath.Join(base, "p"), filepath.Join(base, "q")
	os.Mkdir(mp, 0o755)
	os.Mkdir(mq, 0o755)
	mountAt(t, p, "vol", mp)
	mountAt(t, q, "copy", mq)
	sameTrees(t, "resumed", filepath.Join(mp, ".snapshots", "s"), filepath.Join(mq, ".snapshots", "s"))
}

// TestSendReceiveThroughDaemons sends between two mounted pools: send and
// receive go through each pool's daemon (the stream through a FIFO), the
// target volume is mounted while the incremental lands, a change on the
// target refuses the next incremental until -F.
func TestSendReceiveThroughDaemons(t *testing.T) {
	mnt, p := mountVolume(t, mountOpts{})
	fillTree(t, mnt, 2<<20)
	snapfsOK(t, "-p", p, "snapshot", "create", "vol", "mon")
	_, q := mountVolume(t, mountOpts{Vol: "other"}) // Q's daemon runs
	pipe := func(send, recv string) result {
		return run(t, "", nil, "bash", "-c", "set -o pipefail; "+snapfsBin+" -p "+p+" "+send+" | "+snapfsBin+" -p "+q+" "+recv)
	}
	if r := pipe("send vol@mon", "receive copy --json"); r.err != nil || !strings.Contains(r.stderr, `"copy@mon"`) {
		t.Fatalf("send | receive through daemons: %v\n%s", r.err, r.stderr)
	}
	mq := filepath.Join(t.TempDir(), "q")
	os.Mkdir(mq, 0o755)
	mountAt(t, q, "copy", mq)
	sameTrees(t, "mon", filepath.Join(mnt, ".snapshots", "mon"), filepath.Join(mq, ".snapshots", "mon"))
	sameTrees(t, "live after mon", filepath.Join(mnt, ".snapshots", "mon"), mq)

	if err := os.WriteFile(filepath.Join(mnt, "a/new"), pattern(300<<10, 9), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(mnt, "a/fc"))
	snapfsOK(t, "-p", p, "snapshot", "create", "vol", "tue")
	if r := pipe("send -i mon vol@tue", "receive copy"); r.err != nil {
		t.Fatalf("incremental into a mounted target: %v\n%s", r.err, r.stderr)
	}
	sameTrees(t, "tue", filepath.Join(mnt, ".snapshots", "tue"), filepath.Join(mq, ".snapshots", "tue"))
	sameTrees(t, "live after tue", filepath.Join(mnt, ".snapshots", "tue"), mq)

	// refused by the daemon before it opens the FIFO: the client must not
	// hang with megabytes still to write
	if r := pipe("send vol@tue", "receive copy/b"); r.err == nil || !strings.Contains(r.stderr, "must be a volume") {
		t.Fatalf("receive into a branch through the daemon: %v %q", r.err, r.stderr)
	}

	// the target changed: refused with one line, then -F
	if err := os.WriteFile(filepath.Join(mq, "local"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(filepath.Join(mnt, "a/wed"), []byte("w"), 0o644)
	snapfsOK(t, "-p", p, "snapshot", "create", "vol", "wed")
	r := pipe("send -i tue vol@wed", "receive copy")
	if r.err == nil || !strings.HasPrefix(r.stderr, "snapfs: ") || !strings.Contains(r.stderr, "was written since") {
		t.Fatalf("incremental into a changed target: %v %q", r.err, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(mq, "local")); err != nil {
		t.Fatalf("a refused receive changed the target: %v", err)
	}
	if r := pipe("send -i tue vol@wed", "receive copy -F"); r.err != nil {
		t.Fatalf("receive -F: %v\n%s", r.err, r.stderr)
	}
	sameTrees(t, "wed", filepath.Join(mnt, ".snapshots", "wed"), mq)

	// -I: every snapshot after the base, in order, in one pipe
	os.WriteFile(filepath.Join(mnt, "a/thu"), []byte("t"), 0o644)
	snapfsOK(t, "-p", p, "snapshot", "create", "vol", "thu")
	os.Rename(filepath.Join(mnt, "a/thu"), filepath.Join(mnt, "thu-moved"))
	snapfsOK(t, "-p", p, "snapshot", "create", "vol", "fri")
	if r := pipe("send -I wed vol@fri", "receive copy --json"); r.err != nil || !strings.Contains(r.stderr, `["copy@thu","copy@fri"]`) {
		t.Fatalf("send -I: %v\n%s", r.err, r.stderr)
	}
	for _, s := range []string{"thu", "fri"} {
		sameTrees(t, s, filepath.Join(mnt, ".snapshots", s), filepath.Join(mq, ".snapshots", s))
	}
}

// TestReceiveIntoFullPool receives a stream larger than the target pool:
// the receive fails with one line saying the pool is full, the pool stays
// usable (a volume can be listed and created), the partial state is
// listed and can be aborted (which leaves no volume behind), and then a
// stream that fits is received.
func TestReceiveIntoFullPool(t *testing.T) {
	mnt, p := mountVolume(t, mountOpts{})
	fillTree(t, mnt, 24<<20)
	snapfsOK(t, "-p", p, "snapshot", "create", "vol", "big")
	small := filepath.Join(mnt, "small")
	os.Mkdir(small, 0o755)
	os.WriteFile(filepath.Join(small, "f"), []byte("fits"), 0o644)
	snapfsOK(t, "-p", p, "volume", "create", "tiny")
	snapfsOK(t, "-p", p, "snapshot", "create", "tiny", "s")
	umount(t, p, mnt)
	dir := t.TempDir()
	saved, tiny := filepath.Join(dir, "big.snapfs"), filepath.Join(dir, "tiny.snapfs")
	mustRun(t, "", nil, "sh", "-c", snapfsBin+" -p "+p+" send vol@big > "+saved)
	mustRun(t, "", nil, "sh", "-c", snapfsBin+" -p "+p+" send tiny@s > "+tiny)

	base := t.TempDir()
	q := filepath.Join(base, "pool")
	disk := tmpfsDir(t, filepath.Join(base, "disk"), "12m")
	snapfsOK(t, "pool", "create", q, "--member", disk)
	r := run(t, "", nil, "sh", "-c", snapfsBin+" -p "+q+" receive copy < "+saved)
	if r.err == nil || !strings.HasPrefix(r.stderr, "snapfs: ") || strings.Count(r.stderr, "\n") != 1 || !strings.Contains(r.stderr, "full") {
		t.Fatalf("receive into a full pool: %v %q", r.err, r.stderr)
	}
	if out := snapfsOK(t, "-p", q, "volume", "list"); !strings.Contains(out, "partial receive: copy@big") {
		t.Fatalf("volume list after a receive that ran out of space:\n%s", out)
	}
	snapfsOK(t, "-p", q, "receive", "--abort", "copy")
	// the abort leaves no volume of the full receive behind
	if out := snapfsOK(t, "-p", q, "volume", "list"); strings.Contains(out, "copy") {
		t.Fatalf("volume list after receive --abort:\n%s", out)
	}
	snapfsOK(t, "-p", q, "volume", "create", "other")
	mustRun(t, "", nil, "sh", "-c", snapfsBin+" -p "+q+" receive copy < "+tiny)
	if out := snapfsOK(t, "-p", q, "snapshot", "list", "copy"); !strings.Contains(out, "\ns ") {
		t.Fatalf("snapshot list after receiving tiny@s:\n%s", out)
	}
	snapfsOK(t, "-p", q, "fsck")
}

// TestReceiveAbortThroughDaemon: with the target pool served by a daemon,
// a full receive that runs out of space half way fails with one line that
// keeps the resume hint, makes no volume (chunks are staged as they are
// verified, before any volume is touched) and leaves a partial receive;
// receive --abort through the daemon drops it and releases the staged
// chunks, twice over, and fsck finds nothing leaked. (That an abort keeps a mounted volume a killed apply left is
// TestAbortDestroysTheVolumeOfAFullReceive in package stream: running out
// of space no longer leaves one.)
func TestReceiveAbortThroughDaemon(t *testing.T) {
	mnt, p := mountVolume(t, mountOpts{})
	fillTree(t, mnt, 24<<20)
	snapfsOK(t, "-p", p, "snapshot", "create", "vol", "big")
	umount(t, p, mnt)
	saved := filepath.Join(t.TempDir(), "big.snapfs")
	mustRun(t, "", nil, "sh", "-c", snapfsBin+" -p "+p+" send vol@big > "+saved)

	base := t.TempDir()
	q := filepath.Join(base, "pool")
	disk := tmpfsDir(t, filepath.Join(base, "disk"), "12m")
	snapfsOK(t, "pool", "create", q, "--member", disk)
	snapfsOK(t, "-p", q, "volume", "create", "other")
	other := filepath.Join(base, "other")
	if err := os.Mkdir(other, 0o755); err != nil {
		t.Fatal(err)
	}
	mountAt(t, q, "other", other) // the daemon serves q from here on
	fail := func() {
		t.Helper()
		r := run(t, "", nil, "sh", "-c", snapfsBin+" -p "+q+" receive copy < "+saved)
		if r.err == nil || !strings.Contains(r.stderr, "no space") || !strings.Contains(r.stderr, "resume") || strings.Count(r.stderr, "\n") != 1 {
			t.Fatalf("receive into a full pool: %v %q", r.err, r.stderr)
		}
		out := snapfsOK(t, "-p", q, "volume", "list")
		if strings.Contains(out, "\ncopy ") || !strings.Contains(out, "partial receive: copy@big") {
			t.Fatalf("volume list after a receive that ran out of space:\n%s", out)
		}
	}
	fail()
	snapfsOK(t, "-p", q, "receive", "--abort", "copy")
	if out := snapfsOK(t, "-p", q, "volume", "list"); strings.Contains(out, "copy") {
		t.Fatalf("volume list after receive --abort:\n%s", out)
	}
	fail()
	snapfsOK(t, "-p", q, "receive", "--abort", "copy")
	umount(t, q, other)
	snapfsOK(t, "-p", q, "fsck")
}

// TestReceiveKilledAfterStaging kills the receiver (SIGKILL, at the kill
// point between staging a batch of verified chunks and saving the state
// that names them) and checks both windows: killed at the first batch, no
// state names the staged chunks, fsck finds nothing leaked and the next
// receive into that name releases them and goes through; killed at the
// third, the state names the second, and send --resume continues from
// it. Both received snapshots are the source's tree.
func TestReceiveKilledAfterStaging(t *testing.T) {
	mnt, p := mountVolume(t, mountOpts{})
	fillTree(t, mnt, 40<<20)
	snapfsOK(t, "-p", p, "snapshot", "create", "vol", "s")
	umount(t, p, mnt)
	saved := filepath.Join(t.TempDir(), "s.snapfs")
	mustRun(t, "", nil, "sh", "-c", snapfsBin+" -p "+p+" send vol@s > "+saved)
	q := newEmptyPool(t)
	killed := func(ds string, nth int) {
		t.Helper()
		r := run(t, "", []string{"SNAPFS_KILLPOINT=receive-staged:" + fmt.Sprint(nth)}, "sh", "-c", snapfsBin+" -p "+q+" receive "+ds+" < "+saved)
		if r.err == nil || !strings.Contains(r.stderr, "receive-staged") {
			t.Fatalf("receive %s was not killed at the point: %v %q", ds, r.err, r.stderr)
		}
	}

	killed("one", 1)
	if out := snapfsOK(t, "-p", q, "volume", "list"); strings.Contains(out, "one") {
		t.Fatalf("volume list after a receive killed before its first state:\n%s", out)
	}
	snapfsOK(t, "-p", q, "fsck")
	mustRun(t, "", nil, "sh", "-c", snapfsBin+" -p "+q+" receive one < "+saved)

	killed("two", 3)
	out := snapfsOK(t, "-p", q, "volume", "list")
	if !strings.Contains(out, "partial receive: two@s (interrupted") {
		t.Fatalf("volume list after a receive killed at its third batch:\n%s", out)
	}
	tok := strings.TrimSpace(snapfsOK(t, "-p", q, "receive", "--resume-token", "two"))
	rest := filepath.Join(t.TempDir(), "rest.snapfs")
	mustRun(t, "", nil, "sh", "-c", snapfsBin+" -p "+p+" send --resume "+tok+" > "+rest)
	if a, b := fileSize(rest), fileSize(saved); a == 0 || a > b-15<<20 {
		t.Fatalf("the resumed stream is %d bytes of %d: it did not resume from the second batch (16 MiB)", a, b)
	}
	mustRun(t, "", nil, "sh", "-c", snapfsBin+" -p "+q+" receive two < "+rest)
	snapfsOK(t, "-p", q, "fsck")

	base := t.TempDir()
	mp, m1, m2 := filepath.Join(base, "p"), filepath.Join(base, "one"), filepath.Join(base, "two")
	for _, d := range []string{mp, m1, m2} {
		os.Mkdir(d, 0o755)
	}
	mountAt(t, p, "vol", mp)
	mountAt(t, q, "one", m1)
	mountAt(t, q, "two", m2)
	sameTrees(t, "received after a kill before the first state", filepath.Join(mp, ".snapshots", "s"), filepath.Join(m1, ".snapshots", "s"))
	sameTrees(t, "resumed after a kill at the third batch", filepath.Join(mp, ".snapshots", "s"), filepath.Join(m2, ".snapshots", "s"))
}

// TestServedReceiveKilledThenResumed kills (SIGKILL) a receive into a
// pool a daemon serves, half way: the client passed its stdin, a pipe, to
// the daemon, which reads it directly, and the pipe stays open (this test
// holds its write end), so only the client's hang-up stops the daemon. It
// keeps what it verified as a partial receive, listed with its token, and
// send --resume through the source's daemon finishes it; the received
// snapshot is the source's tree.
func TestServedReceiveKilledThenResumed(t *testing.T) {
	mnt, p := mountVolume(t, mountOpts{})
	fillTree(t, mnt, 24<<20)
	snapfsOK(t, "-p", p, "snapshot", "create", "vol", "s")
	saved := filepath.Join(t.TempDir(), "s.snapfs")
	mustRun(t, "", nil, "sh", "-c", snapfsBin+" -p "+p+" send vol@s > "+saved)
	data, err := os.ReadFile(saved)
	if err != nil {
		t.Fatal(err)
	}
	q := newEmptyPool(t)
	snapfsOK(t, "-p", q, "volume", "create", "other")
	base := t.TempDir()
	other, mq := filepath.Join(base, "other"), filepath.Join(base, "copy")
	os.Mkdir(other, 0o755)
	os.Mkdir(mq, 0o755)
	mountAt(t, q, "other", other) // the daemon serves q from here on

	cmd := exec.Command(snapfsBin, "-p", q, "receive", "copy")
	w, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(data[:len(data)*3/4]); err != nil {
		t.Fatal(err)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()

	// The daemon notices the hang-up, saves the state and lets go of the
	// dataset; until then a resume finds it busy or the token moves.
	var out string
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		tok := run(t, "", nil, snapfsBin, "-p", q, "receive", "--resume-token", "copy")
		if tok.err == nil {
			r := run(t, "", nil, "bash", "-c", "set -o pipefail; "+snapfsBin+" -p "+p+" send --resume "+strings.TrimSpace(tok.stdout)+" | "+snapfsBin+" -p "+q+" receive copy --json")
			if r.err == nil {
				out = r.stderr
				break
			}
			tok.stderr = r.stderr
		}
		if time.Now().After(deadline) {
			t.Fatalf("no resumable partial receive 60 s after the client was killed: %s", tok.stderr)
		}
	}
	var st struct{ Snapshots []string }
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Snapshots) != 1 || st.Snapshots[0] != "copy@s" {
		t.Fatalf("the resumed receive: %v: %s", err, out)
	}
	mountAt(t, q, "copy", mq)
	sameTrees(t, "resumed through the daemon", filepath.Join(mnt, ".snapshots", "s"), filepath.Join(mq, ".snapshots", "s"))
}
