package tests

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/snapfs/snapfs/internal/killpoint"
)

// scrubResult is the part of `snapfs pool scrub --json` these tests read.
type scrubResult struct {
	Chunks  int64 `json:"chunks"`
	Total   int64 `json:"total"`
	Bad     int64 `json:"bad"`
	Resumed *struct {
		Done  int64    `json:"done"`
		Where []string `json:"where"`
	} `json:"resumed"`
}

func scrubJSON(t *testing.T, pool string, args ...string) scrubResult {
	t.Helper()
	out := snapfsOK(t, append([]string{"-p", pool, "pool", "scrub", "--json"}, args...)...)
	var r scrubResult
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatalf("pool scrub --json: %v\n%s", err, out)
	}
	return r
}

// TestScrubResumesAfterKill: the daemon is killed part way through a
// `pool scrub` (at its second save of the cursor, kill point
// scrub-saved); after a remount, `pool scrub` says it resumes, from
// where, and ends with the totals of one whole scrub; the next one
// starts afresh. `--restart` starts over. A scrub through the daemon
// also stops, saving its cursor, when its client goes away.
func TestScrubResumesAfterKill(t *testing.T) {
	mnt, pool := mountVolume(t, mountOpts{})
	for i := 0; i < 6; i++ {
		if err := writeSync(filepath.Join(mnt, fmt.Sprintf("f%d", i)), pattern(4<<20, byte(i+1))); err != nil {
			t.Fatal(err)
		}
	}
	total := scrubJSON(t, pool).Chunks // 24 MiB in 128 KiB chunks
	if total < 190 {
		t.Fatalf("a scrub of 24 MiB verified %d chunks", total)
	}

	umount(t, pool, mnt)
	logPath := filepath.Join(pool, "daemon.log")
	logStart := fileSize(logPath)
	mountAtEnv(t, []string{killpoint.Env + "=" + killpoint.ScrubSaved + ":2"}, pool, "vol", mnt)
	pid := daemonPid(t, pool)
	// 24 MiB at 4 MiB/s: six seconds; the second save comes after two.
	if r := snapfs(t, "-p", pool, "pool", "scrub", "--rate", "4MiB"); r.err == nil {
		t.Fatalf("pool scrub finished though the daemon was to die: %s", r.stdout)
	}
	if !waitGone(pool, pid, 10*time.Second) {
		t.Fatal("the daemon did not die at the kill point")
	}
	if log := readFrom(logPath, logStart); !strings.Contains(log, "killpoint: scrub-saved reached (hit 2)") {
		t.Fatalf("the daemon died elsewhere than after the scrub's second save:\n%s", log)
	}
	mustRun(t, "", nil, "fusermount3", "-u", "-z", mnt)
	mountAt(t, pool, "vol", mnt)

	out := snapfsOK(t, "-p", pool, "pool", "scrub")
	t.Logf("pool scrub after the kill:\n%s", out)
	if !strings.Contains(out, "scrub: resuming from chunk ") || !strings.Contains(out, "--restart starts over") ||
		!strings.Contains(out, fmt.Sprintf("scrub: %d chunks,", total)) {
		t.Fatalf("the scrub after the kill did not say it resumes, or its totals differ from %d chunks:\n%s", total, out)
	}
	if r := scrubJSON(t, pool); r.Resumed != nil || r.Chunks != total {
		t.Fatalf("a scrub after a finished one: %+v, want a fresh scrub of %d chunks", r, total)
	}

	// A client that goes away stops the daemon's scrub; the next resumes.
	cmd := exec.Command(snapfsBin, "-p", pool, "pool", "scrub", "--rate", "4MiB")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond)
	cmd.Process.Kill()
	cmd.Wait()
	r := scrubJSON(t, pool)
	if r.Resumed == nil || r.Resumed.Done < 16 || r.Resumed.Done >= total || r.Chunks != total || r.Bad != 0 {
		t.Fatalf("the scrub after its client was killed: %+v, want one resumed part way with %d chunks in all", r, total)
	}
	// --restart ignores a saved cursor.
	cmd = exec.Command(snapfsBin, "-p", pool, "pool", "scrub", "--rate", "4MiB")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	cmd.Process.Kill()
	cmd.Wait()
	if r := scrubJSON(t, pool, "--restart"); r.Resumed != nil || r.Chunks != total {
		t.Fatalf("pool scrub --restart: %+v", r)
	}
	umount(t, pool, mnt)
	fsckClean(t, pool)
	if _, err := os.Stat(pool); err != nil {
		t.Fatal(err)
	}
}
