package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// wantCLIError runs snapfs with args and checks that it exits non-zero
// with exactly one line on stderr, "snapfs: ...", containing every one of
// wants (case-insensitive).
func wantCLIError(t *testing.T, what string, wants []string, args ...string) {
	t.Helper()
	r := snapfs(t, args...)
	if r.err == nil {
		t.Errorf("%s: snapfs %s exited 0; stdout %q", what, strings.Join(args, " "), r.stdout)
		return
	}
	msg := strings.TrimSuffix(r.stderr, "\n")
	switch {
	case msg == "":
		t.Errorf("%s: snapfs %s: %v with nothing on stderr", what, strings.Join(args, " "), r.err)
		return
	case strings.Contains(msg, "\n"):
		t.Errorf("%s: snapfs %s: stderr has %d lines, want one:\n%s", what, strings.Join(args, " "), strings.Count(msg, "\n")+1, msg)
	case !strings.HasPrefix(msg, "snapfs: "):
		t.Errorf("%s: stderr %q does not start with \"snapfs: \"", what, msg)
	}
	for _, w := range wants {
		if !strings.Contains(strings.ToLower(msg), strings.ToLower(w)) {
			t.Errorf("%s: stderr %q does not mention %q", what, msg, w)
		}
	}
}

// TestCLIErrors feeds the CLI bad input: each mistake gives one clear line
// on stderr and a non-zero exit, and leaves nothing mounted or locked.
func TestCLIErrors(t *testing.T) {
	base := t.TempDir()
	path := func(name string) string { return filepath.Join(base, name) }
	for _, d := range []string{"d1", "d2", "d3", "empty", "full", "m1"} {
		check(t, os.Mkdir(path(d), 0o755))
	}
	writeFile(t, path("full/file"), nil)

	t.Run("member dir missing", func(t *testing.T) {
		wantCLIError(t, "member dir missing", []string{path("nope")},
			"pool", "create", path("p0"), "--member", path("nope"))
		if _, err := os.Stat(path("p0/pool.json")); err == nil {
			t.Errorf("a failed pool create left %s", path("p0/pool.json"))
		}
	})
	snapfsOK(t, "pool", "create", path("p1"), "--member", path("d1"), "--member", path("d2"))
	snapfsOK(t, "-p", path("p1"), "volume", "create", "vol")
	t.Run("pool dir already a pool", func(t *testing.T) {
		wantCLIError(t, "pool dir already a pool", []string{path("p1"), "already"},
			"pool", "create", path("p1"), "--member", path("d3"))
	})
	t.Run("member already in another pool", func(t *testing.T) {
		wantCLIError(t, "member in another pool", []string{path("d1")},
			"pool", "create", path("p2"), "--member", path("d1"))
		wantCLIError(t, "member in another pool", []string{path("d2")},
			"pool", "create", path("p3"), "--member", path("d3"), "--member", path("d2"))
	})
	t.Run("no member", func(t *testing.T) {
		wantCLIError(t, "pool create without --member", []string{"--member"}, "pool", "create", path("p4"))
	})
	t.Run("not a pool", func(t *testing.T) {
		wantCLIError(t, "volume list of a non-pool", []string{path("empty"), "not a snapfs pool"},
			"-p", path("empty"), "volume", "list")
	})
	t.Run("no pool given", func(t *testing.T) {
		t.Setenv("SNAPFS_POOL", "")
		wantCLIError(t, "volume list without -p", []string{"-p"}, "volume", "list")
	})
	t.Run("unknown command", func(t *testing.T) {
		wantCLIError(t, "unknown command", []string{"frobnicate"}, "frobnicate")
	})
	t.Run("volume exists", func(t *testing.T) {
		wantCLIError(t, "volume create twice", []string{"vol", "exists"}, "-p", path("p1"), "volume", "create", "vol")
	})
	t.Run("bad volume name", func(t *testing.T) {
		wantCLIError(t, "volume name with @", []string{"a@b"}, "-p", path("p1"), "volume", "create", "a@b")
	})
	t.Run("bad quota", func(t *testing.T) {
		wantCLIError(t, "bad quota", []string{"--quota"}, "-p", path("p1"), "volume", "create", "q", "--quota", "lots")
	})
	t.Run("missing mountpoint", func(t *testing.T) {
		wantCLIError(t, "missing mountpoint", []string{path("nomnt"), "does not exist"},
			"-p", path("p1"), "mount", "vol", path("nomnt"), "-d")
	})
	t.Run("mountpoint is a file", func(t *testing.T) {
		wantCLIError(t, "mountpoint is a file", []string{path("full/file"), "not a directory"},
			"-p", path("p1"), "mount", "vol", path("full/file"), "-d")
	})
	t.Run("non-empty mountpoint", func(t *testing.T) {
		wantCLIError(t, "non-empty mountpoint", []string{path("full"), "not empty"},
			"-p", path("p1"), "mount", "vol", path("full"), "-d")
	})
	t.Run("volume does not exist", func(t *testing.T) {
		checkFuse(t)
		wantCLIError(t, "missing volume", []string{"nosuchvol", "does not exist"},
			"-p", path("p1"), "mount", "nosuchvol", path("m1"), "-d")
		if isMounted(path("m1")) {
			t.Errorf("a failed mount left %s mounted", path("m1"))
			unmountClean(t, path("p1"), path("m1"))
		}
		// The failed daemon released the pool.
		snapfsOK(t, "-p", path("p1"), "volume", "list")
	})
	t.Run("umount of something not mounted", func(t *testing.T) {
		wantCLIError(t, "umount not mounted", []string{path("empty"), "not mounted"}, "umount", path("empty"))
	})

	// With the pool mounted.
	t.Run("mounted", func(t *testing.T) {
		mnt, pool := mountVolume(t, mountOpts{})
		// Pool commands on a mounted pool go through its daemon's socket.
		if out := snapfsOK(t, "-p", pool, "volume", "list"); !strings.Contains(out, "vol") {
			t.Errorf("volume list through the daemon: %q", out)
		}
		snapfsOK(t, "-p", pool, "pool", "status")
		wantCLIError(t, "already-mounted mountpoint", []string{mnt},
			"-p", path("p1"), "mount", "vol", mnt, "-d")
		wantCLIError(t, "mounting the mounted volume again", []string{"already mounted", mnt},
			"-p", pool, "mount", "vol", path("empty"), "-d")
		if isMounted(path("empty")) {
			t.Errorf("a failed second mount of a pool left %s mounted", path("empty"))
			unmountClean(t, pool, path("empty"))
		}
		wantCLIError(t, "umount of a non-snapfs mount", []string{"/proc", "not a snapfs mount"}, "umount", "/proc")
		// The first mount still works.
		writeFile(t, filepath.Join(mnt, "still"), []byte("works"))
		wantContent(t, filepath.Join(mnt, "still"), []byte("works"))
	})
}
