package fs

import (
	"reflect"
	"strings"
	"testing"

	"github.com/hanwen/go-fuse/v2/fuse"
)

// TestMetricsCoverEveryRequest checks that every request method of
// go-fuse's RawFileSystem has an Op (and so a method in metricsFS that
// times it), so that a go-fuse upgrade adding one is noticed.
func TestMetricsCoverEveryRequest(t *testing.T) {
	notRequests := map[string]bool{"String": true, "SetDebug": true, "Init": true, "OnUnmount": true,
		"Writev": true} // counted as write
	ops := map[string]bool{}
	for _, n := range OpNames {
		if n == "" || ops[n] {
			t.Errorf("op name %q empty or twice", n)
		}
		ops[n] = true
	}
	rt := reflect.TypeOf((*fuse.RawFileSystem)(nil)).Elem()
	for i := 0; i < rt.NumMethod(); i++ {
		name := rt.Method(i).Name
		if notRequests[name] {
			continue
		}
		if !ops[strings.ToLower(name)] {
			t.Errorf("RawFileSystem.%s has no Op: metricsFS does not time it", name)
		}
		delete(ops, strings.ToLower(name))
	}
	for n := range ops {
		t.Errorf("Op %q is no method of RawFileSystem", n)
	}
}
