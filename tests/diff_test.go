package tests

import (
	"bufio"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/snapfs/snapfs/store"
)

// sh runs a shell script in dir with ordinary tools and fails the test if
// it fails.
func sh(t *testing.T, dir, script string) {
	t.Helper()
	mustRun(t, dir, nil, "sh", "-ec", script)
}

// TestDiffMount makes changes of every kind with ordinary tools in a
// mounted volume, takes snapshots with mkdir .snapshots/NAME, and checks
// snapfs diff between snapshots, against the live volume and against a
// mounted branch, through the daemon and (unmounted) directly, in lines
// and in JSON; every escaped path names a file that exists.
func TestDiffMount(t *testing.T) {
	needTool(t, "setfattr", "attr")
	mnt, pool := mountVolume(t, mountOpts{})
	sh(t, mnt, `
		mkdir -p etc docs/old empty
		echo one > etc/app.conf
		echo keep > etc/keep
		echo mode > etc/mode
		echo x > etc/xattr
		echo gone > docs/gone
		echo move > docs/old/move
		echo file > victim
		printf 'n' > "docs/with space"
		mkdir .snapshots/mon`)
	sh(t, mnt, `
		echo two >> etc/app.conf
		chmod 600 etc/mode
		setfattr -n user.k -v v etc/xattr
		rm docs/gone
		mv docs/old/move etc/moved
		mv "docs/with space" "docs/tab	and space"
		ln etc/keep hardlink
		rm victim
		mkdir victim
		ln -s ../etc/keep victim/link
		mkfifo victim/fifo
		printf 'new' > "$(printf 'docs/new\nline')"
		mkdir .snapshots/tue`)

	want := []string{
		"M\t/\t/",
		"M\t/\t/docs",
		"R\tF\t/docs/with\\0040space -> /docs/tab\\0011and\\0040space",
		"+\tF\t/docs/new\\0012line",
		"-\tF\t/docs/gone",
		"M\t/\t/docs/old",
		"R\tF\t/docs/old/move -> /etc/moved",
		"M\t/\t/etc",
		"M\tF\t/etc/app.conf",
		"M\tF\t/etc/mode",
		"M\tF\t/etc/xattr",
		"+\tF\t/hardlink",
		"+\t/\t/victim",
		"-\tF\t/victim",
		"+\t|\t/victim/fifo",
		"+\t@\t/victim/link",
	}
	check := func(what, out string) {
		t.Helper()
		got := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if !sameSet(got, want) {
			t.Errorf("%s:\n%s\nwant (any order):\n%s", what, out, strings.Join(want, "\n"))
		}
	}
	check("diff vol@mon vol@tue (mounted)", snapfsOK(t, "-p", pool, "diff", "vol@mon", "vol@tue"))
	check("diff vol@mon (live, mounted)", snapfsOK(t, "-p", pool, "diff", "vol@mon"))
	if out := snapfsOK(t, "-p", pool, "diff", "vol@tue", "vol"); out != "" {
		t.Errorf("diff vol@tue vol with no change since: %q", out)
	}

	// JSON: one object per line; every path unescapes to a file that
	// exists in its snapshot.
	out := snapfsOK(t, "-p", pool, "diff", "vol@mon", "vol@tue", "--json")
	sc := bufio.NewScanner(strings.NewReader(out))
	n := 0
	for sc.Scan() {
		var c struct {
			Change, Kind, Path string
			NewPath            string `json:"new_path"`
			Ino                uint64
		}
		if err := json.Unmarshal(sc.Bytes(), &c); err != nil {
			t.Fatalf("diff --json line %q: %v", sc.Text(), err)
		}
		n++
		side, p := "tue", c.Path
		switch c.Change {
		case "-":
			side = "mon"
		case "R":
			side, p = "tue", c.NewPath
			old, err := store.UnescapePath(c.Path)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := os.Lstat(filepath.Join(mnt, ".snapshots", "mon", old)); err != nil {
				t.Errorf("R old path %q: %v", old, err)
			}
		}
		raw, err := store.UnescapePath(p)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := os.Lstat(filepath.Join(mnt, ".snapshots", side, raw)); err != nil {
			t.Errorf("%s path %q (%s): %v", c.Change, raw, side, err)
		}
	}
	if n != len(want) {
		t.Errorf("diff --json: %d objects, want %d", n, len(want))
	}

	// A branch, mounted and written, against its origin and the volume.
	snapfsOK(t, "-p", pool, "branch", "create", "vol@tue", "try")
	bmnt := filepath.Join(filepath.Dir(mnt), "bmnt")
	check2 := os.Mkdir(bmnt, 0o755)
	if check2 != nil {
		t.Fatal(check2)
	}
	mountAt(t, pool, "vol/try", bmnt)
	sh(t, bmnt, `echo branch > only-in-branch; echo three >> etc/app.conf; rm -r victim`)
	got := snapfsOK(t, "-p", pool, "diff", "vol@tue", "vol/try")
	wantB := "M\t/\t/\n+\tF\t/only-in-branch\n-\t/\t/victim\n-\t|\t/victim/fifo\n-\t@\t/victim/link\nM\tF\t/etc/app.conf\n"
	if !sameSet(strings.Split(strings.TrimSpace(got), "\n"), strings.Split(strings.TrimSpace(wantB), "\n")) {
		t.Errorf("diff vol@tue vol/try:\n%s\nwant:\n%s", got, wantB)
	}
	if r := snapfsOK(t, "-p", pool, "diff", "vol@tue", "vol@try"); r != got {
		t.Errorf("vol@try (the branch by its name in .snapshots) differs from vol/try:\n%s\n%s", r, got)
	}

	// Unmounted, the CLI opens the pool itself: the same answer.
	umount(t, pool, bmnt)
	umount(t, pool, mnt)
	check("diff vol@mon vol@tue (unmounted)", snapfsOK(t, "-p", pool, "diff", "vol@mon", "vol@tue"))
}

// sameSet reports whether a and b hold the same lines, in any order.
func sameSet(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	count := map[string]int{}
	for _, s := range a {
		count[s]++
	}
	for _, s := range b {
		count[s]--
	}
	for _, c := range count {
		if c != 0 {
			return false
		}
	}
	return true
}

// TestVersionsMount follows one file through snapshots taken with mkdir
// .snapshots/NAME, a rename and a hard link, checks the folded versions
// snapfs versions prints (text and JSON), and restores each version with
// cp from the path it gives.
func TestVersionsMount(t *testing.T) {
	mnt, _ := mountVolume(t, mountOpts{})
	sh(t, mnt, `
		mkdir etc
		echo v1 > etc/app.conf
		echo other > etc/other
		mkdir .snapshots/s1
		echo unrelated >> etc/other
		mkdir .snapshots/s2
		echo v2 > etc/app.conf
		mkdir .snapshots/s3
		mv etc/app.conf etc/app.conf.renamed
		echo v3 > etc/app.conf.renamed
		mkdir .snapshots/s4
		mkdir .snapshots/s5
		echo impostor > etc/app.conf`)
	file := filepath.Join(mnt, "etc", "app.conf.renamed")
	var res struct {
		Dataset  string
		Ino      uint64
		Path     string
		Versions []struct {
			Snapshots []string
			Live      bool
			Size      uint64
			Path      string
		}
	}
	if err := json.Unmarshal([]byte(snapfsOK(t, "versions", file, "--json")), &res); err != nil {
		t.Fatal(err)
	}
	type v struct {
		snaps string
		live  bool
		path  string
		data  string
	}
	want := []v{{"s1,s2", false, "/etc/app.conf", "v1\n"}, {"s3", false, "/etc/app.conf", "v2\n"}, {"s4,s5", true, "/etc/app.conf.renamed", "v3\n"}}
	if res.Dataset != "vol" || res.Path != "/etc/app.conf.renamed" || len(res.Versions) != len(want) {
		t.Fatalf("versions --json: %+v", res)
	}
	restore := t.TempDir()
	for i, w := range want {
		g := res.Versions[i]
		if strings.Join(g.Snapshots, ",") != w.snaps || g.Live != w.live || g.Path != w.path {
			t.Errorf("version %d: %+v, want %+v", i, g, w)
		}
		// Restore it with cp, from where versions says it is.
		dst := filepath.Join(restore, "v"+string(rune('0'+i)))
		src := filepath.Join(mnt, ".snapshots", g.Snapshots[0], g.Path)
		mustRun(t, "", nil, "cp", src, dst)
		if b, err := os.ReadFile(dst); err != nil || string(b) != w.data {
			t.Errorf("restored version %d from %s: %q, %v; want %q", i, src, b, err, w.data)
		}
	}
	text := snapfsOK(t, "versions", file)
	for _, s := range []string{"3 version(s)", "s1..s2 (2)", "s4..s5 (2) + live", "renamed: was /etc/app.conf",
		filepath.Join(mnt, ".snapshots", "s3", "etc", "app.conf")} {
		if !strings.Contains(text, s) {
			t.Errorf("versions output lacks %q:\n%s", s, text)
		}
	}
	// Named through a snapshot, the same file has the same versions.
	var res2 struct{ Versions []json.RawMessage }
	if err := json.Unmarshal([]byte(snapfsOK(t, "versions", filepath.Join(mnt, ".snapshots", "s1", "etc", "app.conf"), "--json")), &res2); err != nil {
		t.Fatal(err)
	}
	if len(res2.Versions) != 3 {
		t.Errorf("versions through .snapshots/s1: %d versions, want 3", len(res2.Versions))
	}
	// The other file of the old name is another inode: one version.
	if err := json.Unmarshal([]byte(snapfsOK(t, "versions", filepath.Join(mnt, "etc", "app.conf"), "--json")), &res2); err != nil {
		t.Fatal(err)
	}
	if len(res2.Versions) != 1 {
		t.Errorf("versions of the new etc/app.conf: %d versions, want 1 (the live file)", len(res2.Versions))
	}
}
