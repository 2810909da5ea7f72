package tests

import (
	"os/exec"
	"strings"
	"testing"
)

// layers maps each package of the engine to the snapfs packages it must
// never import, directly or not: arrows point down (DESIGN.md, Layout).
var layers = map[string][]string{
	"pool":  {"store", "snap", "fs", "cmd/snapfs", "bench"},
	"store": {"snap", "fs", "cmd/snapfs", "bench"},
	"snap":  {"fs", "cmd/snapfs", "bench"},
	"fs":    {"cmd/snapfs", "bench"},

	// killpoint sits below everything: pool and store call it.
	"internal/killpoint": {"pool", "store", "snap", "fs", "control", "client", "cmd/snapfs", "bench"},
	// metrics reads the store and the fs wrapper; the daemon wires it.
	"internal/metrics": {"control", "client", "cmd/snapfs", "bench"},
	// The object-store seam sits under the pool; the SeaweedFS launcher
	// (tests and the benchmark) under everything.
	"objstore":         {"pool", "store", "snap", "fs", "control", "client", "cmd/snapfs", "bench"},
	"internal/seaweed": {"objstore", "pool", "store", "snap", "fs", "control", "client", "cmd/snapfs", "bench"},
}

// TestLayering checks the import arrows with go list -deps. It needs no
// FUSE.
func TestLayering(t *testing.T) {
	const module = "github.com/snapfs/snapfs/"
	for _, pkg := range sortedKeys(layers) {
		cmd := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", "./"+pkg+"/...")
		cmd.Dir = repoRoot
		out, err := cmd.CombinedOutput()
		if err != nil {
			if strings.Contains(string(out), "matched no packages") || strings.Contains(string(out), "directory not found") {
				continue // not written yet
			}
			t.Errorf("go list -deps ./%s/...: %v\n%s", pkg, err, out)
			continue
		}
		for _, dep := range strings.Fields(string(out)) {
			for _, banned := range layers[pkg] {
				if dep == module+banned || strings.HasPrefix(dep, module+banned+"/") {
					t.Errorf("%s depends on %s: arrows must point down (DESIGN.md, Layout)", pkg, dep)
				}
			}
		}
	}
}
