package pool

import (
	"strings"
	"syscall"
	"testing"
)

func TestParseFaults(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want []Fault
		err  string
	}{
		{spec: "", want: nil},
		{spec: "op=read", want: []Fault{{Op: OpRead, Err: syscall.EIO}}},
		{spec: "op=sync,path=disk1/packs,err=EIO;op=write,nth=3,err=ENOSPC,sticky",
			want: []Fault{{Op: OpSync, Path: "disk1/packs", Err: syscall.EIO},
				{Op: OpWrite, Nth: 3, Err: syscall.ENOSPC, Sticky: true}}},
		{spec: "op=write,torn;", want: []Fault{{Op: OpWrite, Err: syscall.EIO, Torn: true}}},
		{spec: "nth=2", err: "no op="},
		{spec: "op=fly", err: `bad "op=fly"`},
		{spec: "op=read,nth=0", err: `bad "nth=0"`},
		{spec: "op=read,err=EPERM", err: `bad "err=EPERM"`},
		{spec: "op=read,torn", err: "op=write only"},
		{spec: "op=read,sticky=yes", err: `bad "sticky=yes"`},
		{spec: "op=read,color=red", err: `bad "color=red"`},
	} {
		got, err := ParseFaults(tc.spec)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseFaults(%q): error %v, want one containing %q", tc.spec, err, tc.err)
			}
			continue
		}
		if err != nil || len(got) != len(tc.want) {
			t.Errorf("ParseFaults(%q) = %+v, %v; want %+v", tc.spec, got, err, tc.want)
			continue
		}
		for i := range got {
			if got[i] != tc.want[i] {
				t.Errorf("ParseFaults(%q)[%d] = %+v, want %+v", tc.spec, i, got[i], tc.want[i])
			}
		}
	}
}
