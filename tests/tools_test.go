package tests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// goSrc returns $(go env GOROOT)/src.
func goSrc(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		t.Fatalf("go env GOROOT: %v", err)
	}
	return filepath.Join(strings.TrimSpace(string(out)), "src")
}

// copyTrees returns what TestCopyGoroot copies, as directories below root:
// all of GOROOT/src, or src/net and src/crypto with -short.
func copyTrees(t *testing.T) (root string, dirs []string) {
	src := goSrc(t)
	if testing.Short() {
		return src, []string{"net", "crypto"}
	}
	return filepath.Dir(src), []string{"src"}
}

// TestCopyGoroot copies the Go source tree in with cp -a, compares it with
// diff -r and a manifest (mode, owner, size, mtime, sha256, symlink
// target), then unmounts, remounts and compares again.
func TestCopyGoroot(t *testing.T) {
	mnt, pool := mountVolume(t, mountOpts{})
	root, dirs := copyTrees(t)
	dst := filepath.Join(mnt, "copy")
	if err := os.Mkdir(dst, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		mustRun(t, "", nil, "cp", "-a", filepath.Join(root, d), dst)
	}
	compare := func(when string) {
		t.Helper()
		for _, d := range dirs {
			src, got := filepath.Join(root, d), filepath.Join(dst, d)
			if r := run(t, "", nil, "diff", "-r", "--no-dereference", src, got); r.err != nil {
				t.Errorf("%s: diff -r %s %s: %v\n%s%s", when, src, got, r.err, truncate(r.stdout, 3000), truncate(r.stderr, 3000))
			}
			compareManifests(t, when+": "+d, manifest(t, src), manifest(t, got))
		}
	}
	compare("after cp -a")
	remount(t, pool, "vol", mnt)
	compare("after remount")
}

// TestTar archives a tree out of the mount with tar, extracts it into
// another directory of the mount and compares the two.
func TestTar(t *testing.T) {
	mnt, _ := mountVolume(t, mountOpts{})
	root := goSrc(t)
	src := filepath.Join(mnt, "a")
	mustRun(t, "", nil, "mkdir", src)
	mustRun(t, "", nil, "cp", "-a", filepath.Join(root, "archive"), filepath.Join(root, "bufio"), src)
	// A hard link and a symlink, which tar must restore as such.
	mustRun(t, src, nil, "ln", "bufio/bufio.go", "hardlink.go")
	mustRun(t, src, nil, "ln", "-s", "bufio/scan.go", "symlink.go")

	archive := filepath.Join(mnt, "a.tar")
	mustRun(t, "", nil, "tar", "-C", src, "-cf", archive, ".")
	out := filepath.Join(mnt, "b")
	mustRun(t, "", nil, "mkdir", out)
	mustRun(t, "", nil, "tar", "-C", out, "-xpf", archive)
	compareManifests(t, "tar round trip", manifest(t, src), manifest(t, out))
	mustRun(t, "", nil, "diff", "-r", "--no-dereference", src, out)

	var a, b = stat(t, filepath.Join(out, "bufio/bufio.go")), stat(t, filepath.Join(out, "hardlink.go"))
	if a.Ino != b.Ino || a.Nlink != 2 {
		t.Errorf("extracted hard link: inodes %d and %d, nlink %d; want one inode with nlink 2", a.Ino, b.Ino, a.Nlink)
	}
	// And through a pipe, listing only.
	list := mustRun(t, "", nil, "tar", "-tf", archive)
	if !strings.Contains(list, "./bufio/scan.go") {
		t.Errorf("tar -tf does not list ./bufio/scan.go:\n%s", truncate(list, 2000))
	}
}

// TestGit makes a repository in the mount, commits, repacks and checks it.
func TestGit(t *testing.T) {
	needTool(t, "git", "git")
	mnt, _ := mountVolume(t, mountOpts{})
	root := goSrc(t)
	repo := filepath.Join(mnt, "repo")
	env := []string{"HOME=" + t.TempDir(), "GIT_CONFIG_NOSYSTEM=1",
		"GIT_AUTHOR_NAME=snapfs test", "GIT_AUTHOR_EMAIL=test@snapfs.invalid",
		"GIT_COMMITTER_NAME=snapfs test", "GIT_COMMITTER_EMAIL=test@snapfs.invalid"}
	git := func(args ...string) string {
		t.Helper()
		return mustRun(t, repo, env, "git", args...)
	}
	mustRun(t, "", env, "git", "init", "-q", "-b", "main", repo)
	mustRun(t, "", nil, "cp", "-a", filepath.Join(root, "strings"), filepath.Join(root, "sort"), repo)
	git("add", "-A")
	git("commit", "-q", "-m", "first")
	if err := os.WriteFile(filepath.Join(repo, "strings", "extra.txt"), []byte("second commit\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	git("mv", "sort", "sorted")
	git("add", "-A")
	git("commit", "-q", "-m", "second")
	git("gc", "-q", "--aggressive")
	git("fsck", "--full", "--strict")
	if st := git("status", "--porcelain"); st != "" {
		t.Errorf("git status after commit is not clean:\n%s", truncate(st, 2000))
	}
	if n := strings.TrimSpace(git("rev-list", "--count", "HEAD")); n != "2" {
		t.Errorf("git rev-list --count HEAD = %s, want 2", n)
	}
	// A clone out of and back into the mount.
	clone := filepath.Join(mnt, "clone")
	mustRun(t, "", env, "git", "clone", "-q", repo, clone)
	mustRun(t, clone, env, "git", "fsck", "--full")
	mustRun(t, "", nil, "diff", "-r", "--exclude=.git", repo, clone)
}

// TestGoBuild writes a small module into the mount, builds it there and
// runs the binary from the mount.
func TestGoBuild(t *testing.T) {
	mnt, _ := mountVolume(t, mountOpts{})
	dir := filepath.Join(mnt, "hello")
	files := map[string]string{
		"go.mod": "module example.com/hello\n\ngo 1.21\n",
		"main.go": `package main

import (
	"fmt"
	"example.com/hello/greet"
)

func main() { fmt.Println(greet.Hello("snapfs")) }
`,
		"greet/greet.go": `package greet

// Hello greets name.
func Hello(name string) string { return "hello, " + name }
`,
		"greet/greet_test.go": `package greet

import "testing"

func TestHello(t *testing.T) {
	if got := Hello("x"); got != "hello, x" {
		t.Fatal(got)
	}
}
`,
	}
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{"GOFLAGS=-mod=mod", "GOCACHE=" + t.TempDir(), "GOTOOLCHAIN=local", "CGO_ENABLED=0", "GOWORK=off"}
	mustRun(t, dir, env, "go", "build", "-o", "hello", ".")
	mustRun(t, dir, env, "go", "vet", "./...")
	mustRun(t, dir, env, "go", "test", "-count=1", "./...")
	out := mustRun(t, dir, nil, filepath.Join(dir, "hello"))
	if out != "hello, snapfs\n" {
		t.Errorf("binary built in the mount printed %q, want %q", out, "hello, snapfs\n")
	}
	fi, err := os.Stat(filepath.Join(dir, "hello"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o111 == 0 {
		t.Errorf("built binary mode %v is not executable", fi.Mode())
	}
}

// TestRsync copies a tree with hard links, symlinks and xattrs in with
// rsync -aHAX and checks that a checksumming dry run finds nothing to do.
func TestRsync(t *testing.T) {
	needTool(t, "rsync", "rsync")
	needTool(t, "setfattr", "attr")
	mnt, _ := mountVolume(t, mountOpts{})
	root := goSrc(t)
	src := filepath.Join(t.TempDir(), "src")
	mustRun(t, "", nil, "cp", "-a", filepath.Join(root, "unicode"), src)
	mustRun(t, src, nil, "ln", "utf8/utf8.go", "hard.go")
	mustRun(t, src, nil, "ln", "-s", "utf8", "link")
	mustRun(t, "", nil, "setfattr", "-n", "user.note", "-v", "kept", filepath.Join(src, "utf8", "utf8.go"))

	dst := filepath.Join(mnt, "dst")
	mustRun(t, "", nil, "rsync", "-aHAX", src+"/", dst+"/")
	if out := mustRun(t, "", nil, "rsync", "-aHAXc", "--dry-run", "--itemize-changes", src+"/", dst+"/"); out != "" {
		t.Errorf("rsync dry run after the copy wants changes:\n%s", truncate(out, 3000))
	}
	compareManifests(t, "rsync copy", manifest(t, src), manifest(t, dst))
	if v := strings.TrimSpace(mustRun(t, "", nil, "getfattr", "--only-values", "-n", "user.note", filepath.Join(dst, "utf8", "utf8.go"))); v != "kept" {
		t.Errorf("xattr after rsync -X: %q, want %q", v, "kept")
	}
	a, b := stat(t, filepath.Join(dst, "utf8/utf8.go")), stat(t, filepath.Join(dst, "hard.go"))
	if a.Ino != b.Ino {
		t.Errorf("rsync -H: hard.go and utf8/utf8.go have inodes %d and %d", b.Ino, a.Ino)
	}
}

// TestFioVerify runs fio random writes with verification on the mount;
// --verify_fatal makes fio exit non-zero on the first bad block.
func TestFioVerify(t *testing.T) {
	needTool(t, "fio", "fio")
	mnt, _ := mountVolume(t, mountOpts{})
	size := "64M"
	if testing.Short() {
		size = "16M"
	}
	mustRun(t, mnt, nil, "fio", "--name=verify", "--filename=fio.dat", "--size="+size,
		"--rw=randwrite", "--bs=4k", "--ioengine=psync", "--verify=crc32c", "--verify_fatal=1",
		"--numjobs=1", "--fsync=64", "--output-format=terse")
}
