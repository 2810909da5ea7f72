package killpoint

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

func TestParseSpec(t *testing.T) {
	for _, tc := range []struct {
		spec string
		name string
		nth  int64
		err  string
	}{
		{spec: "flush-synced", name: FlushSynced, nth: 1},
		{spec: "pack-append:3", name: PackAppend, nth: 3},
		{spec: "reclaim-batch:1", name: ReclaimBatch, nth: 1},
		{spec: "nowhere", err: "no such kill point"},
		{spec: "flush-synced:0", err: "positive integer"},
		{spec: "flush-synced:x", err: "positive integer"},
		{spec: "flush-synced:", err: "positive integer"},
		{spec: ":2", err: "no such kill point"},
	} {
		name, nth, err := parseSpec(tc.spec)
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("parseSpec(%q): error %v, want one containing %q", tc.spec, err, tc.err)
			}
		case err != nil || name != tc.name || nth != tc.nth:
			t.Errorf("parseSpec(%q) = %q, %d, %v; want %q, %d", tc.spec, name, nth, err, tc.name, tc.nth)
		}
	}
}

// TestUnarmedHitDoesNothing: without Arm, every point is passed.
func TestUnarmedHitDoesNothing(t *testing.T) {
	if Armed() {
		t.Fatal("armed without Arm")
	}
	for _, n := range Names {
		Hit(n)
	}
	if err := Arm(""); err != nil || Armed() {
		t.Fatalf("Arm(\"\") = %v, armed %v; want nil, false", err, Armed())
	}
}

// childEnv marks the test binary re-executed as the process to kill.
const childEnv = "KILLPOINT_TEST_CHILD"

// TestMain runs the child's part when re-executed by runChild.
func TestMain(m *testing.M) {
	switch os.Getenv(childEnv) {
	case "hit":
		childHit()
	case "tear":
		childTear()
	default:
		os.Exit(m.Run())
	}
}

// childHit passes another point, then hits flush-synced five times,
// printing each hit before making it.
func childHit() {
	if err := ArmFromEnv(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	Hit(PackAppend)
	Hit(SnapshotPin)
	for i := 1; i <= 5; i++ {
		fmt.Printf("hit %d\n", i)
		Hit(FlushSynced)
	}
	os.Exit(0)
}

// childTear appends three 8-byte records to the file named by $TEAR_FILE
// through Tear, the way a pack append does.
func childTear() {
	if err := ArmFromEnv(); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	f, err := os.OpenFile(os.Getenv("TEAR_FILE"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	for i := 0; i < 3; i++ {
		rec := bytes.Repeat([]byte{byte('a' + i)}, 8)
		if Armed() {
			Tear(PackAppend, f, rec, int64(8*i))
		}
		if _, err := f.WriteAt(rec, int64(8*i)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(2)
		}
	}
	os.Exit(0)
}

// runChild re-executes the test binary as a child of the given kind and
// returns its stdout, stderr and wait status.
func runChild(t *testing.T, kind string, env ...string) (string, string, syscall.WaitStatus) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), append(env, childEnv+"="+kind)...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	if err != nil && !errors.As(err, &ee) {
		t.Fatal(err)
	}
	return out.String(), errb.String(), cmd.ProcessState.Sys().(syscall.WaitStatus)
}

// TestHitKillsAtNth: the armed point kills the process at its nth hit,
// after logging its name; other points and earlier hits pass.
func TestHitKillsAtNth(t *testing.T) {
	out, errs, ws := runChild(t, "hit", Env+"=flush-synced:3")
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child: %v, want killed by SIGKILL\nstdout: %s\nstderr: %s", ws, out, errs)
	}
	if out != "hit 1\nhit 2\nhit 3\n" {
		t.Errorf("child got to:\n%s\nwant hits 1 to 3 only", out)
	}
	if want := "killpoint: flush-synced reached (hit 3); SIGKILL\n"; errs != want {
		t.Errorf("child stderr %q, want %q", errs, want)
	}
}

// TestHitNeverReached: a point armed past its last hit lets the process
// finish.
func TestHitNeverReached(t *testing.T) {
	out, errs, ws := runChild(t, "hit", Env+"=flush-synced:6")
	if !ws.Exited() || ws.ExitStatus() != 0 || errs != "" {
		t.Fatalf("child: %v, stderr %q; want a clean exit", ws, errs)
	}
	if !strings.HasSuffix(out, "hit 5\n") {
		t.Errorf("child stdout %q, want all five hits", out)
	}
}

// TestBadSpecRefused: a spec naming no point is an error, not a silent
// no-op that would let a crash test pass without killing anything.
func TestBadSpecRefused(t *testing.T) {
	_, errs, ws := runChild(t, "hit", Env+"=flush-sync")
	if !ws.Exited() || ws.ExitStatus() != 2 || !strings.Contains(errs, "no such kill point") {
		t.Fatalf("child: %v, stderr %q; want exit 2 and no such kill point", ws, errs)
	}
}

// TestTearWritesHalf: at the armed hit, Tear writes the first half of the
// record and the process dies; earlier records are whole.
func TestTearWritesHalf(t *testing.T) {
	name := filepath.Join(t.TempDir(), "pack")
	_, errs, ws := runChild(t, "tear", Env+"=pack-append:2", "TEAR_FILE="+name)
	if !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child: %v, want killed by SIGKILL\nstderr: %s", ws, errs)
	}
	got, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	if want := "aaaaaaaabbbb"; string(got) != want {
		t.Errorf("file after the torn append: %q, want %q", got, want)
	}
	if want := "killpoint: pack-append reached (hit 2) after writing 4 of 8 bytes at 8 (<nil>); SIGKILL\n"; errs != want {
		t.Errorf("child stderr %q, want %q", errs, want)
	}
}

// BenchmarkHitUnarmed is the cost of a kill point in a daemon that armed
// none: one atomic load.
func BenchmarkHitUnarmed(b *testing.B) {
	for i := 0; i < b.N; i++ {
		Hit(FlushSynced)
	}
}
