package pool

import (
	"strings"
	"testing"

	"github.com/snapfs/snapfs/objstore"
)

// TestRetryFromEnv: SNAPFS_S3_GIVE_UP, when set to a positive duration,
// gives the store a retry policy; a value that is not one is refused in
// one line naming it, by DefaultObjectStores too (the member is then
// gone, with that reason). The mount test TestObjectMemberFaultsMount
// shows its effect: a stopped server degrades the member within it.
func TestRetryFromEnv(t *testing.T) {
	tests := []struct {
		value   string
		options int
		err     string
	}{
		{"", 0, ""},
		{"6s", 1, ""},
		{"10m", 1, ""},
		{"soon", 0, `SNAPFS_S3_GIVE_UP="soon": want a duration`},
		{"-5s", 0, `SNAPFS_S3_GIVE_UP="-5s": want a duration`},
		{"0s", 0, `SNAPFS_S3_GIVE_UP="0s": want a duration`},
	}
	for _, tc := range tests {
		t.Run(tc.value, func(t *testing.T) {
			t.Setenv(GiveUpEnv, tc.value)
			opts, err := retryFromEnv()
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				if _, err := DefaultObjectStores(objstore.Config{URL: "s3://bucket/p"}); err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("DefaultObjectStores: %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || len(opts) != tc.options {
				t.Fatalf("%d options, %v; want %d", len(opts), err, tc.options)
			}
		})
	}
}
