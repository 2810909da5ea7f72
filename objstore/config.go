package objstore

import (
	"fmt"
	"net/url"
	"strings"
)

// Config says where an object-store member lives. It is stored in
// pool.json with the member; credentials never are (they come from the
// standard chain at every start: AWS_ACCESS_KEY_ID and
// AWS_SECRET_ACCESS_KEY, then ~/.aws/credentials with AWS_PROFILE).
type Config struct {
	// URL is s3://BUCKET[/PREFIX].
	URL string `json:"url"`
	// Endpoint is the service's base URL (https://s3.example.net or
	// http://127.0.0.1:8333); empty means AWS S3 for Region.
	Endpoint string `json:"endpoint,omitempty"`
	// Region is the signing region; empty means us-east-1.
	Region string `json:"region,omitempty"`
	// Addressing is "path" or "virtual-host"; empty chooses path style
	// for endpoints that are not *.amazonaws.com (SeaweedFS and MinIO
	// need it) and virtual-host style for AWS.
	Addressing string `json:"addressing,omitempty"`
}

// ParseURL splits s3://BUCKET[/PREFIX] into its bucket and its prefix
// (without leading or trailing slashes), refusing what S3 would refuse.
func ParseURL(raw string) (bucket, prefix string, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("member URL %q: %w", raw, err)
	}
	if u.Scheme != "s3" {
		return "", "", fmt.Errorf("member URL %q: unknown scheme %q (want s3://BUCKET/PREFIX)", raw, u.Scheme)
	}
	if u.Host == "" {
		return "", "", fmt.Errorf("member URL %q has no bucket (want s3://BUCKET/PREFIX)", raw)
	}
	if err := checkBucketName(u.Host); err != nil {
		return "", "", fmt.Errorf("member URL %q: %w", raw, err)
	}
	return u.Host, strings.Trim(u.Path, "/"), nil
}

// checkBucketName applies S3's bucket naming rules: 3 to 63 characters of
// lower-case letters, digits, dots and hyphens, starting and ending with a
// letter or digit, and not shaped like an IP address.
func checkBucketName(b string) error {
	if len(b) < 3 || len(b) > 63 {
		return fmt.Errorf("bucket name %q must be 3 to 63 characters long", b)
	}
	dots := 0
	allDigitsOrDots := true
	for i, c := range b {
		switch {
		case c >= 'a' && c <= 'z':
			allDigitsOrDots = false
		case c >= '0' && c <= '9':
		case c == '.':
			dots++
		case c == '-':
			allDigitsOrDots = false
		default:
			return fmt.Errorf("bucket name %q may hold only lower-case letters, digits, '.' and '-'", b)
		}
		if (i == 0 || i == len(b)-1) && (c == '.' || c == '-') {
			return fmt.Errorf("bucket name %q must start and end with a letter or digit", b)
		}
	}
	if strings.Contains(b, "..") {
		return fmt.Errorf("bucket name %q has two dots in a row", b)
	}
	if allDigitsOrDots && dots == 3 {
		return fmt.Errorf("bucket name %q is shaped like an IP address", b)
	}
	return nil
}
