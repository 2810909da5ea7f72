package tests

import (
	"os/exec"
	"strings"
	"testing"
)

// TestDepsNoTesting checks that the snapfs binary does not link package
// testing: test helpers live in _test.go files or in the test-only
// packages pool/pooltest, store/storetest and objstore/objstoretest.
// It needs no FUSE.
func TestDepsNoTesting(t *testing.T) {
	cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "./cmd/snapfs")
	cmd.Dir = repoRoot
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps ./cmd/snapfs: %v\n%s", err, out)
	}
	for _, dep := range strings.Fields(string(out)) {
		if dep == "testing" || strings.HasPrefix(dep, "testing/") {
			t.Errorf("cmd/snapfs depends on %s: test helpers belong in _test.go files or in pooltest/storetest/objstoretest", dep)
		}
	}
}
