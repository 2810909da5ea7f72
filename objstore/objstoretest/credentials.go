package objstoretest

import (
	"path/filepath"
	"testing"
)

// IsolateCredentials points the S3 client's standard credential chain at
// the given key only, for the rest of test t: no session token, no
// profile, no shared files, no endpoint override and no instance
// metadata (which would send requests off this machine). SeaweedFS
// without identities accepts any key.
func IsolateCredentials(t testing.TB, id, secret string) {
	t.Helper()
	t.Setenv("AWS_ACCESS_KEY_ID", id)
	t.Setenv("AWS_SECRET_ACCESS_KEY", secret)
	t.Setenv("AWS_SESSION_TOKEN", "")
	t.Setenv("AWS_PROFILE", "")
	t.Setenv("AWS_SHARED_CREDENTIALS_FILE", filepath.Join(t.TempDir(), "no-credentials"))
	t.Setenv("AWS_CONFIG_FILE", filepath.Join(t.TempDir(), "no-config"))
	t.Setenv("AWS_EC2_METADATA_DISABLED", "true")
	t.Setenv("AWS_ENDPOINT_URL", "")
	t.Setenv("AWS_ENDPOINT_URL_S3", "")
}
