package snap

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/snapfs/snapfs/store"
)

// diffText renders Diff's lines, one per line, tabs as spaces.
func diffText(t *testing.T, m *Manager, from, to string) string {
	t.Helper()
	lines, err := m.Diff(from, to)
	if err != nil {
		t.Fatalf("diff %s %s: %v", from, to, err)
	}
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(strings.ReplaceAll(l.String(), "\t", " ") + "\n")
	}
	return b.String()
}

func TestDiffDatasets(t *testing.T) {
	m, st, v := newTest(t)
	writeFile(t, st, v, "a", "1")
	writeFile(t, st, v, "b", "2")
	if _, err := m.Create("vol", "mon"); err != nil {
		t.Fatal(err)
	}
	writeFile(t, st, v, "a", "changed")
	writeFile(t, st, v, "c", "3")
	if _, err := m.Create("vol", "tue"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.CreateBranch("vol", "mon", "try"); err != nil {
		t.Fatal(err)
	}
	bv, err := m.LiveView("vol/try")
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, st, bv, "branch-only", "x")

	tests := []struct{ from, to, want string }{
		{"vol@mon", "vol@tue", "M / /\nM F /a\n+ F /c\n"},
		{"vol@tue", "vol@mon", "M / /\nM F /a\n- F /c\n"},
		{"vol@tue", "", ""},
		{"vol@mon", "vol/try", "M / /\n+ F /branch-only\n"},
		{"vol@mon", "vol@try", "M / /\n+ F /branch-only\n"},
		{"vol/try", "vol@tue", "M / /\nM F /a\n- F /branch-only\n+ F /c\n"},
	}
	for _, tc := range tests {
		if got := diffText(t, m, tc.from, tc.to); got != tc.want {
			t.Errorf("diff %s %q:\n%s\nwant:\n%s", tc.from, tc.to, got, tc.want)
		}
	}

	if _, err := st.CreateVolume("other", store.VolumeOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create("other", "mon"); err != nil {
		t.Fatal(err)
	}
	bad := []struct {
		from, to string
		want     error
	}{
		{"vol@mon", "other@mon", ErrDifferentVolumes},
		{"other", "vol@tue", ErrDifferentVolumes},
		{"vol@nope", "", ErrNoSnapshot},
		{"vol@mon", "vol@nope", ErrNoSnapshot},
		{"vol/nope@x", "", ErrNoBranch},
		{"nope@mon", "", store.ErrNoVolume},
		{"vol@a/b", "", ErrBadName},
	}
	for _, tc := range bad {
		if _, err := m.Diff(tc.from, tc.to); !errors.Is(err, tc.want) {
			t.Errorf("diff %s %q = %v, want %v", tc.from, tc.to, err, tc.want)
		}
	}
	if _, err := m.Diff("vol@mon", "other@mon"); !errors.Is(err, store.ErrInvalid) {
		t.Errorf("different volumes: %v is not store.ErrInvalid (EINVAL through the daemon)", err)
	}
}

func TestVersionsFollowInode(t *testing.T) {
	m, st, v := newTest(t)
	ino := writeFile(t, st, v, "conf", "v1")
	for _, s := range []string{"s1", "s2"} {
		if _, err := m.Create("vol", s); err != nil {
			t.Fatal(err)
		}
	}
	writeFile(t, st, v, "conf", "version two")
	if _, err := m.Create("vol", "s3"); err != nil {
		t.Fatal(err)
	}
	if err := st.Rename(v, store.RootIno, "conf", store.RootIno, "conf.renamed", 0); err != nil {
		t.Fatal(err)
	}
	writeFile(t, st, v, "conf.renamed", "v3")
	if _, err := m.Create("vol", "s4"); err != nil {
		t.Fatal(err)
	}
	if _, err := m.Create("vol", "s5"); err != nil {
		t.Fatal(err)
	}
	// A file of the same name that is another inode is not a version.
	writeFile(t, st, v, "conf", "impostor")

	live, _ := m.LiveView("vol")
	res, err := m.Versions(live.ID, ino)
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	for _, fv := range res.Versions {
		fmt.Fprintf(&b, "%v live=%v size=%d path=%s\n", fv.Snapshots, fv.Live, fv.Size, fv.Path)
	}
	want := "[s1 s2] live=false size=2 path=/conf\n" +
		"[s3] live=false size=11 path=/conf\n" +
		"[s4 s5] live=true size=2 path=/conf.renamed\n"
	if got := b.String(); got != want {
		t.Errorf("versions:\n%s\nwant:\n%s", got, want)
	}
	if res.Dataset != "vol" || res.Path != "/conf.renamed" {
		t.Errorf("dataset %q path %q, want vol /conf.renamed", res.Dataset, res.Path)
	}
	// Named through a snapshot's view: the same versions, the path in it.
	s1, err := m.View("vol", "s1")
	if err != nil {
		t.Fatal(err)
	}
	res2, err := m.Versions(s1.ID, ino)
	if err != nil {
		t.Fatal(err)
	}
	if res2.Path != "/conf" || len(res2.Versions) != 3 || res2.Dataset != "vol" {
		t.Errorf("through s1: %+v", res2)
	}
	if _, err := m.Versions(999999, ino); !errors.Is(err, ErrNotDatasetView) {
		t.Errorf("unknown view: %v, want ErrNotDatasetView", err)
	}
}
