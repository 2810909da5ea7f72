package tests

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDemoScript runs the story of make demo (contrib/demo.sh) in a
// temporary directory and checks what it shows: the old version read
// back from the snapshot, the branch's write absent from the volume, the
// snapshot list with its space columns, in about 40 lines.
func TestDemoScript(t *testing.T) {
	checkFuse(t)
	dir := filepath.Join(t.TempDir(), "demo")
	for _, d := range []string{"disk1", "disk2", "mnt"} {
		check(t, os.MkdirAll(filepath.Join(dir, d), 0o755))
	}
	pool, mnt := filepath.Join(dir, "pool"), filepath.Join(dir, "mnt")
	r := run(t, repoRoot, nil, "sh", "contrib/demo.sh", snapfsBin, dir)
	if isMounted(mnt) {
		t.Cleanup(func() { unmountClean(t, pool, mnt) })
	}
	if r.err != nil {
		logDaemon(t, pool)
		t.Fatalf("contrib/demo.sh: %v\nstdout:\n%s\nstderr:\n%s", r.err, r.stdout, r.stderr)
	}
	out := strings.ReplaceAll(r.stdout, dir, "demo")
	t.Logf("demo output:\n%s", out)
	if r.stderr != "" {
		t.Errorf("demo wrote to stderr: %s", r.stderr)
	}
	// ls prints one name a line into a pipe (columns on a terminal): the
	// ls step costs 3 lines more here than on a terminal.
	if n := strings.Count(out, "\n"); n > 43 {
		t.Errorf("demo output is %d lines, want about 40", n)
	}
	for _, want := range []string{
		"$ mkdir demo/mnt/.snapshots/monday",
		"version 2\nversion 1\n",                   // the volume's notes, then the snapshot's
		"M\tF\t/notes.txt\n", "-\tF\t/README.md\n", // the diff since monday
		"tried in the branch\nversion 2\n",
		"REFERENCED", "WRITTEN", "UNIQUE",
		"monday  snapshot", "try     branch",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q", want)
		}
	}
	// The volume: README.md back, docs still there; the branch: no docs.
	for _, p := range []string{"README.md", "docs", "notes.txt"} {
		if _, err := os.Stat(filepath.Join(mnt, p)); err != nil {
			t.Errorf("volume after the demo: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(mnt, ".snapshots", "try", "docs")); !os.IsNotExist(err) {
		t.Errorf("branch try: docs should be gone: %v", err)
	}
	umount(t, pool, mnt)
}
