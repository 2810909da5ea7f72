package objstore

import (
	"strings"
	"testing"
)

func TestParseURL(t *testing.T) {
	for _, tc := range []struct {
		url, bucket, prefix, err string
	}{
		{url: "s3://backups/pool1", bucket: "backups", prefix: "pool1"},
		{url: "s3://backups/a/b/", bucket: "backups", prefix: "a/b"},
		{url: "s3://my.bucket-1", bucket: "my.bucket-1"},
		{url: "s3:///pool1", err: "has no bucket"},
		{url: "s3://", err: "has no bucket"},
		{url: "gs://b/p", err: "unknown scheme"},
		{url: "/srv/disk", err: "unknown scheme"},
		{url: "s3://Backups/p", err: "lower-case"},
		{url: "s3://ab/p", err: "3 to 63"},
		{url: "s3://-ab/p", err: "start and end"},
		{url: "s3://a..b/p", err: "two dots"},
		{url: "s3://192.168.1.10/p", err: "IP address"},
		{url: "s3://under_score/p", err: "lower-case"},
	} {
		b, p, err := ParseURL(tc.url)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseURL(%q) = %q, %q, %v; want an error with %q", tc.url, b, p, err, tc.err)
			}
			continue
		}
		if err != nil || b != tc.bucket || p != tc.prefix {
			t.Errorf("ParseURL(%q) = %q, %q, %v; want %q, %q", tc.url, b, p, err, tc.bucket, tc.prefix)
		}
	}
}
