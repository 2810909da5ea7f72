package main

import (
	"reflect"
	"testing"

	snapfs "github.com/snapfs/snapfs/fs"
)

func TestUnescapeMount(t *testing.T) {
	for in, want := range map[string]string{
		"/mnt/plain":         "/mnt/plain",
		`/mnt/with\040space`: "/mnt/with space",
		`/mnt/tab\011x`:      "/mnt/tab\tx",
		`/mnt/back\134slash`: `/mnt/back\slash`,
		`/mnt/trailing\04`:   `/mnt/trailing\04`,
		`/mnt/not\999octal`:  `/mnt/not\999octal`,
	} {
		if got := unescapeMount(in); got != want {
			t.Errorf("unescapeMount(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseMountOptions(t *testing.T) {
	var o snapfs.MountOptions
	if err := parseMountOptions(&o, []string{"snapdir=visible,ro", "allow_other", "noexec"}); err != nil {
		t.Fatal(err)
	}
	if !o.SnapdirVisible || !o.AllowOther || !reflect.DeepEqual(o.Options, []string{"ro", "noexec"}) {
		t.Errorf("got %+v", o)
	}
	if err := parseMountOptions(&o, []string{"snapdir=maybe"}); err == nil {
		t.Error("snapdir=maybe accepted")
	}
}
