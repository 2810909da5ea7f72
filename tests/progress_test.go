package tests

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestProgressOnTerminal runs pool scrub on a terminal (script(1) gives
// it one) and checks the progress line with rate and time left; the same
// with --json, and into a pipe, prints nothing but the result.
func TestProgressOnTerminal(t *testing.T) {
	needTool(t, "script", "bsdutils")
	mnt, pool := mountVolume(t, mountOpts{})
	for i := 0; i < 6; i++ {
		writeFile(t, filepath.Join(mnt, "f"+string(rune('a'+i))), pattern(2<<20, byte(i)))
	}
	umount(t, pool, mnt)

	// 12 MiB at 4 MiB/s: about 3 seconds, the line redrawn every 100 ms.
	scrub := snapfsBin + " -p " + pool + " pool scrub --restart --rate 4MiB"
	out := mustRun(t, "", nil, "script", "-qec", scrub, "/dev/null")
	if !strings.Contains(out, "\rscrub: ") || !strings.Contains(out, " left") || !strings.Contains(out, "/s") {
		t.Errorf("scrub on a terminal: no progress line with rate and time left:\n%q", out)
	}
	if !strings.Contains(out, "scrub: 100.0%") {
		t.Errorf("scrub on a terminal: the line never reached 100%%:\n%q", out)
	}

	out = mustRun(t, "", nil, "script", "-qec", scrub+" --json", "/dev/null")
	if strings.Contains(out, "\r") && strings.Contains(out, "left") {
		t.Errorf("scrub --json on a terminal drew a progress line:\n%q", out)
	}
	var r struct{ Chunks int64 }
	if err := json.Unmarshal([]byte(strings.ReplaceAll(out, "\r\n", "\n")), &r); err != nil || r.Chunks == 0 {
		t.Errorf("scrub --json on a terminal: not the JSON report alone (%v):\n%q", err, out)
	}

	// fsck: the pack scan's line, reaching every record the metadata names.
	fsck := snapfsBin + " -p " + pool + " fsck"
	out = mustRun(t, "", nil, "script", "-qec", fsck, "/dev/null")
	if !strings.Contains(out, "\rfsck: scanning packs: 100.0%") || !strings.Contains(out, " left") {
		t.Errorf("fsck on a terminal: no progress line reaching 100%%:\n%q", out)
	}
	out = mustRun(t, "", nil, "script", "-qec", fsck+" --json", "/dev/null")
	if strings.Contains(out, "scanning packs") {
		t.Errorf("fsck --json on a terminal drew a progress line:\n%q", out)
	}

	res := run(t, "", nil, snapfsBin, "-p", pool, "pool", "scrub", "--restart", "--rate", "64MiB")
	if res.err != nil || strings.Contains(res.stderr, "\r") || strings.Contains(res.stdout, "\r") {
		t.Errorf("scrub into a pipe: %v; stdout %q stderr %q", res.err, res.stdout, res.stderr)
	}
	if _, err := os.Stat(pool); err != nil {
		t.Fatal(err)
	}
}

// TestImportProgressOnTerminal: pool import's scan of the packs draws its
// line on a terminal and reaches every record the checkpoint names; into
// a pipe it draws nothing.
func TestImportProgressOnTerminal(t *testing.T) {
	needTool(t, "script", "bsdutils")
	for _, tty := range []bool{true, false} {
		mnt, pool := mountVolume(t, mountOpts{})
		for i := 0; i < 4; i++ {
			writeFile(t, filepath.Join(mnt, "f"+string(rune('a'+i))), pattern(1<<20, byte(i)))
		}
		umount(t, pool, mnt) // ships a checkpoint at close
		check(t, os.RemoveAll(filepath.Join(pool, "meta")))
		base := filepath.Dir(pool)
		args := []string{"pool", "import", pool, "--member", filepath.Join(base, "disk1"), "--member", filepath.Join(base, "disk2")}
		if tty {
			out := mustRun(t, "", nil, "script", "-qec", snapfsBin+" "+strings.Join(args, " "), "/dev/null")
			if !strings.Contains(out, "\rimport: scanning packs: 100.0%") || !strings.Contains(out, "lost: nothing") {
				t.Errorf("pool import on a terminal: no progress line reaching 100%%, or data lost:\n%q", out)
			}
			continue
		}
		r := run(t, "", nil, snapfsBin, args...)
		if r.err != nil || strings.Contains(r.stdout+r.stderr, "\r") || !strings.Contains(r.stdout, "lost: nothing") {
			t.Errorf("pool import into a pipe: %v\nstdout %q\nstderr %q", r.err, r.stdout, r.stderr)
		}
	}
}
