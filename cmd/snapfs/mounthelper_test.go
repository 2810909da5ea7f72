package main

import (
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestParseHelperOptions(t *testing.T) {
	for _, c := range []struct {
		raw     []string
		kernel  []string
		unknown []string
		allow   bool
		visible bool
		metrics string
		err     string
	}{
		{raw: []string{"defaults,rw,dev,suid,exec,_netdev,nofail,noauto,x-systemd.automount,x-systemd.requires=a.service,comment=x"}},
		{raw: []string{"allow_other,snapdir=visible", "ro"}, kernel: []string{"ro"}, allow: true, visible: true},
		{raw: []string{"snapdir=visible,snapdir=hidden,nosuid,nodev,noexec"}, kernel: []string{"nosuid", "nodev", "noexec"}},
		{raw: []string{"bogus,allow_other,max_read=4096"}, unknown: []string{"bogus", "max_read=4096"}, allow: true},
		{raw: []string{"metrics=127.0.0.1:9567"}, metrics: "127.0.0.1:9567"},
		{raw: []string{"snapdir=maybe"}, err: "snapdir is visible or hidden"},
	} {
		var m mountArgs
		unknown, err := parseHelperOptions(&m, c.raw)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%v: error %v, want %q", c.raw, err, c.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%v: %v", c.raw, err)
			continue
		}
		if !reflect.DeepEqual(m.opts.Options, c.kernel) || !reflect.DeepEqual(unknown, c.unknown) ||
			m.opts.AllowOther != c.allow || m.opts.SnapdirVisible != c.visible || m.metrics != c.metrics {
			t.Errorf("%v: kernel %q unknown %q allow_other %v snapdir %v metrics %q", c.raw,
				m.opts.Options, unknown, m.opts.AllowOther, m.opts.SnapdirVisible, m.metrics)
		}
	}
}

func TestSplitSource(t *testing.T) {
	dir := t.TempDir()
	hashPool := filepath.Join(dir, "po#ol")
	if err := os.Mkdir(hashPool, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(hashPool, "pool.json"), []byte("{}"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ src, dir, ds string }{
		{"/srv/pool#home", "/srv/pool", "home"},
		{"/srv/pool#home/b/c", "/srv/pool", "home/b/c"},
		{"/srv/pool#ho#me", "/srv/pool", "ho#me"},
		{hashPool + "#vol", hashPool, "vol"},
		{"/srv/pool", "", ""},
		{"/srv/pool#", "", ""},
		{"#home", "", ""},
	} {
		d, ds, err := splitSource(c.src)
		if c.dir == "" {
			if err == nil || !strings.Contains(err.Error(), "want POOLDIR#DATASET") {
				t.Errorf("%q: got %q %q %v, want an error", c.src, d, ds, err)
			}
			continue
		}
		if err != nil || d != c.dir || ds != c.ds {
			t.Errorf("%q: got %q %q %v, want %q %q", c.src, d, ds, err, c.dir, c.ds)
		}
	}
}

func TestLooksLikeSource(t *testing.T) {
	for _, c := range commands {
		if looksLikeSource(strings.Fields(c.name)[0]) {
			t.Errorf("command %q looks like a mount source", c.name)
		}
	}
	for _, s := range []string{"/srv/pool#home", "pool#home", "./pool"} {
		if !looksLikeSource(s) {
			t.Errorf("%q does not look like a mount source", s)
		}
	}
}
