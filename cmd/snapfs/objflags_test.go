package main

import (
	"fmt"
	"strings"
	"testing"
)

// TestObjectConfigs: each object-store flag applies to the s3:// members
// given since its previous occurrence; misplaced or bad ones are one
// clear error.
func TestObjectConfigs(t *testing.T) {
	tests := []struct {
		args []string
		want string // fmt of the configs by URL, or the error's start
	}{
		{[]string{"P", "--member", "/d", "--member", "s3://a/p", "--s3-endpoint", "http://one"},
			"s3://a/p={s3://a/p http://one  }"},
		{[]string{"--member=s3://a/p", "--s3-endpoint=http://one", "--member", "s3://b/q", "--s3-endpoint", "http://two", "--s3-region", "eu-1", "--s3-addressing", "path"},
			"s3://a/p={s3://a/p http://one eu-1 path} s3://b/q={s3://b/q http://two eu-1 path}"},
		{[]string{"--member", "s3://a/p", "--member", "s3://b/p", "--s3-endpoint", "http://both"},
			"s3://a/p={s3://a/p http://both  } s3://b/p={s3://b/p http://both  }"},
		{[]string{"--member", "s3://a/p"}, "s3://a/p={s3://a/p   }"},
		{[]string{"--s3-endpoint", "http://x", "--member", "s3://a/p"}, "error: --s3-endpoint http://x follows no s3:// member"},
		{[]string{"--member", "/d", "--s3-region", "r"}, "error: --s3-region r follows no s3:// member"},
		{[]string{"--member", "s3://a/p", "--s3-addressing", "dns"}, `error: --s3-addressing "dns": want path or virtual-host`},
	}
	for _, tc := range tests {
		cfgs, err := objectConfigs(tc.args)
		var got string
		if err != nil {
			got = "error: " + err.Error()
		} else {
			var parts []string
			for _, u := range []string{"s3://a/p", "s3://b/p", "s3://b/q"} {
				if c, ok := cfgs[u]; ok {
					parts = append(parts, fmt.Sprintf("%s=%v", u, c))
				}
			}
			got = strings.Join(parts, " ")
		}
		if !strings.HasPrefix(got, tc.want) {
			t.Errorf("%q:\n got %s\nwant %s", tc.args, got, tc.want)
		}
	}
}

func TestCacheArgs(t *testing.T) {
	tests := []struct {
		dir, size string
		want      string
	}{
		{"", "", " 0 <nil>"},
		{"/c", "", "/c 1073741824 <nil>"},
		{"/c", "64MiB", "/c 67108864 <nil>"},
		{"", "64MiB", " 0 --cache-size 64MiB needs --cache-dir DIR"},
		{"/c", "0", " 0 --cache-size 0: must be more than 0"},
	}
	for _, tc := range tests {
		d, n, err := cacheArgs(tc.dir, tc.size)
		if got := fmt.Sprint(d, " ", n, " ", err); got != tc.want {
			t.Errorf("cacheArgs(%q, %q) = %s, want %s", tc.dir, tc.size, got, tc.want)
		}
	}
}
