package objstore

import (
	"bytes"
	"context"
	"crypto/md5"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// Errors of an S3 store that will not go away by retrying. They are
// returned wrapped, with the store, the endpoint and the service's own
// code in the message (one line).
var (
	// ErrNoCredentials: the standard chain found no credentials.
	ErrNoCredentials = errors.New("no credentials")
	// ErrCredentialsRefused: the service does not know the access key or
	// the signature does not match its secret.
	ErrCredentialsRefused = errors.New("credentials refused")
	// ErrAccessDenied: the credentials are valid but may not do this.
	ErrAccessDenied = errors.New("access denied")
	// ErrUnreachable: the endpoint did not answer for the whole retry
	// bound (connection refused, no route, timeouts).
	ErrUnreachable = errors.New("the endpoint does not answer")
)

// Option changes how Open makes a store.
type Option func(*options)

type options struct {
	retry RetryPolicy
	dial  func(ctx context.Context, network, addr string) (net.Conn, error)
}

// WithDialer makes the store connect through dial instead of the system's
// resolver and network: tests use it to reach a virtual-host-style
// endpoint (BUCKET.HOST) served on 127.0.0.1.
func WithDialer(dial func(ctx context.Context, network, addr string) (net.Conn, error)) Option {
	return func(o *options) { o.dial = dial }
}

// WithRetry sets the store's retry policy (zero fields take
// DefaultRetry's).
func WithRetry(p RetryPolicy) Option {
	return func(o *options) { o.retry = p }
}

// S3 is a Store in a bucket of an S3-compatible service, through the AWS
// SDK for Go v2 (docs/objects.md says why that library). Each S3 has its
// own client, endpoint, region and credentials, so stores on two services
// work side by side in one process. Requests go through the store's own
// retry layer (RetryPolicy); the SDK's retryer is off.
type S3 struct {
	client   *s3.Client
	bucket   string
	prefix   string // "" or without slashes at either end
	endpoint string // for messages: the base URL, or "AWS S3 (region)"
	retry    RetryPolicy
}

// Open makes the store cfg describes: it loads credentials from the
// standard chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY/AWS_SESSION_TOKEN,
// then the shared files ~/.aws/credentials and ~/.aws/config with
// AWS_PROFILE, then SSO, web identity and instance metadata), never from
// cfg, and checks them against the service by listing the prefix. A
// missing bucket is created when the credentials allow it.
func Open(ctx context.Context, cfg Config, opts ...Option) (Store, error) {
	o := options{retry: DefaultRetry}
	for _, opt := range opts {
		opt(&o)
	}
	bucket, prefix, err := ParseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	pathStyle, err := cfg.pathStyle()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", cfg.URL, err)
	}
	region := cfg.Region
	if region == "" {
		region = "us-east-1"
	}
	s := &S3{bucket: bucket, prefix: prefix, retry: o.retry.withDefaults(), endpoint: cfg.Endpoint}
	if s.endpoint == "" {
		s.endpoint = "AWS S3 (" + region + ")"
	}
	awsCfg, err := config.LoadDefaultConfig(ctx,
		config.WithRegion(region),
		config.WithRetryer(func() aws.Retryer { return aws.NopRetryer{} }),
		config.WithHTTPClient(httpClient(o.dial)),
	)
	if err != nil {
		if p := os.Getenv("AWS_PROFILE"); p != "" && strings.Contains(err.Error(), p) {
			return nil, s.openErr(fmt.Errorf("%w: AWS_PROFILE=%s names no profile in ~/.aws/config or ~/.aws/credentials", ErrNoCredentials, p))
		}
		return nil, s.openErr(fmt.Errorf("%w: %s", ErrNoCredentials, oneLine(err)))
	}
	if awsCfg.Credentials != nil {
		cctx, cancel := context.WithTimeout(ctx, s.retry.OpenTotal)
		_, err = awsCfg.Credentials.Retrieve(cctx)
		cancel()
	}
	if awsCfg.Credentials == nil || err != nil {
		return nil, s.openErr(fmt.Errorf("%w: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE naming a profile in ~/.aws/credentials", ErrNoCredentials))
	}
	s.client = s3.NewFromConfig(awsCfg, func(so *s3.Options) {
		if cfg.Endpoint != "" {
			so.BaseEndpoint = aws.String(strings.TrimRight(cfg.Endpoint, "/"))
		}
		so.UsePathStyle = pathStyle
		// Bodies go at once, without waiting for 100 Continue; and the
		// SDK's additional checksums are sent only where the API
		// requires them, which every S3-compatible service accepts (the
		// records carry CRCs and hashes of their own; Put sends
		// Content-MD5).
		so.ContinueHeaderThresholdBytes = -1
		so.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		so.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		so.DisableLogOutputChecksumValidationSkipped = true
	})
	if err := s.probe(ctx, region); err != nil {
		return nil, s.openErr(err)
	}
	return s, nil
}

// pathStyle resolves cfg.Addressing: path style unless asked otherwise,
// or unless the endpoint is AWS's own (empty or *.amazonaws.com).
func (cfg Config) pathStyle() (bool, error) {
	switch cfg.Addressing {
	case "path":
		return true, nil
	case "virtual-host":
		return false, nil
	case "":
	default:
		return false, fmt.Errorf("addressing %q: want path or virtual-host", cfg.Addressing)
	}
	if cfg.Endpoint == "" {
		return false, nil
	}
	u, err := url.Parse(cfg.Endpoint)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return false, fmt.Errorf("endpoint %q: want http://HOST[:PORT] or https://HOST[:PORT]", cfg.Endpoint)
	}
	return !strings.HasSuffix(u.Hostname(), ".amazonaws.com"), nil
}

// httpClient is the HTTP client of one store: enough idle connections
// per host for the pool's parallel uploads and reads, and a dial timeout
// short enough that a dead endpoint is seen within an attempt.
func httpClient(dial func(ctx context.Context, network, addr string) (net.Conn, error)) *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().
		WithDialerOptions(func(d *net.Dialer) { d.Timeout = 5 * time.Second }).
		WithTransportOptions(func(tr *http.Transport) {
			tr.MaxIdleConns = 256
			tr.MaxIdleConnsPerHost = 64
			tr.IdleConnTimeout = 60 * time.Second
			if dial != nil {
				tr.DialContext = dial
			}
		})
}

// probe lists the prefix (one key), which checks the endpoint, the
// credentials and the bucket at once; a missing bucket is created.
func (s *S3) probe(ctx context.Context, region string) error {
	err := s.attempts(ctx, s.retry.OpenTotal, func(ctx context.Context) error {
		_, err := s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
			Bucket: aws.String(s.bucket), Prefix: aws.String(s.full("")), MaxKeys: aws.Int32(1),
		})
		return err
	})
	if !errors.Is(err, errNoSuchBucket) {
		return err
	}
	in := &s3.CreateBucketInput{Bucket: aws.String(s.bucket)}
	if region != "us-east-1" {
		in.CreateBucketConfiguration = &s3types.CreateBucketConfiguration{
			LocationConstraint: s3types.BucketLocationConstraint(region),
		}
	}
	err = s.attempts(ctx, s.retry.OpenTotal, func(ctx context.Context) error {
		_, err := s.client.CreateBucket(ctx, in)
		var owned *s3types.BucketAlreadyOwnedByYou
		if errors.As(err, &owned) {
			return nil
		}
		return err
	})
	if errors.Is(err, ErrAccessDenied) {
		return fmt.Errorf("bucket %s does not exist and these credentials may not create it: %w", s.bucket, err)
	}
	if err != nil {
		return fmt.Errorf("creating bucket %s: %w", s.bucket, err)
	}
	return nil
}

func (s *S3) openErr(err error) error {
	return fmt.Errorf("%s at %s: %w", s, s.endpoint, err)
}

// full returns the bucket key of a store key.
func (s *S3) full(key string) string {
	if s.prefix == "" {
		return key
	}
	return s.prefix + "/" + key
}

func (s *S3) String() string {
	if s.prefix == "" {
		return "s3://" + s.bucket
	}
	return "s3://" + s.bucket + "/" + s.prefix
}

// Put writes data as one object with its MD5 in Content-MD5, so the
// service refuses a body damaged on the way.
func (s *S3) Put(ctx context.Context, key string, data []byte) error {
	sum := md5.Sum(data)
	md5b64 := base64.StdEncoding.EncodeToString(sum[:])
	return s.do(ctx, 0, "put", key, func(ctx context.Context) error {
		_, err := s.client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(s.bucket), Key: aws.String(s.full(key)),
			Body: bytes.NewReader(data), ContentLength: aws.Int64(int64(len(data))),
			ContentMD5: aws.String(md5b64),
		})
		return err
	})
}

// Get reads [off, off+n) with one ranged GET (n < 0: to the end, still
// as a range, so that the answer's Content-Range gives the object's size
// to check the body against). The body must be exactly the length asked
// for, or to the end the length the object has: anything else is
// ErrShort, never a short result. A body cut by the connection is
// retried.
func (s *S3) Get(ctx context.Context, key string, off, n int64) ([]byte, error) {
	if off < 0 {
		return nil, s.opErr("get", key, fmt.Errorf("negative offset %d: %w", off, ErrShort))
	}
	if n == 0 {
		// An empty range has no Range header to say it: the object's
		// size decides.
		return s.emptyRange(ctx, key, off, n)
	}
	var out []byte
	err := s.do(ctx, 0, "get", key, func(ctx context.Context) error {
		in := &s3.GetObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.full(key))}
		if n > 0 {
			in.Range = aws.String(fmt.Sprintf("bytes=%d-%d", off, off+n-1))
		} else {
			in.Range = aws.String(fmt.Sprintf("bytes=%d-", off))
		}
		resp, err := s.client.GetObject(ctx, in)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		got := aws.ToInt64(resp.ContentLength)
		want := n
		if n < 0 {
			want = got
			if size, ok := rangeTotal(aws.ToString(resp.ContentRange)); ok {
				want = size - off
			} else if off > 0 {
				want = -1 // a 200 for a range past 0: not what was asked
			}
		}
		if want < 0 || got != want {
			io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
			return fmt.Errorf("[%d,+%d): the service answered %d bytes where %d were due (Content-Range %q): %w",
				off, n, got, want, aws.ToString(resp.ContentRange), ErrShort)
		}
		buf := make([]byte, want)
		if _, err := io.ReadFull(resp.Body, buf); err != nil {
			return transient(fmt.Errorf("[%d,+%d): body cut after some of %d bytes: %w", off, n, want, err))
		}
		// A body longer than announced is damage too.
		var one [1]byte
		if k, _ := resp.Body.Read(one[:]); k > 0 {
			return fmt.Errorf("[%d,+%d): the body runs past its %d bytes: %w", off, n, want, ErrShort)
		}
		out = buf
		return nil
	})
	if errors.Is(err, errInvalidRange) {
		if n < 0 {
			// 416 for a range to the end: empty when it starts exactly
			// at the end (an empty object included), short past it.
			return s.emptyRange(ctx, key, off, n)
		}
		return nil, s.opErr("get", key, fmt.Errorf("[%d,+%d) starts past the object's end: %w", off, n, ErrShort))
	}
	return out, err
}

// emptyRange answers a Get whose result is empty if the object is at
// least off bytes long, and ErrShort if it is shorter.
func (s *S3) emptyRange(ctx context.Context, key string, off, n int64) ([]byte, error) {
	info, err := s.Head(ctx, key)
	if err != nil {
		return nil, err
	}
	if off > info.Size || (n < 0 && off < info.Size) {
		return nil, s.opErr("get", key, fmt.Errorf("[%d,+%d) of %d bytes: %w", off, n, info.Size, ErrShort))
	}
	return []byte{}, nil
}

// rangeTotal parses the object's size from a Content-Range header
// ("bytes FIRST-LAST/SIZE").
func rangeTotal(cr string) (int64, bool) {
	i := strings.LastIndexByte(cr, '/')
	if !strings.HasPrefix(cr, "bytes ") || i < 0 {
		return 0, false
	}
	size, err := strconv.ParseInt(cr[i+1:], 10, 64)
	return size, err == nil
}

func (s *S3) Head(ctx context.Context, key string) (Info, error) {
	var info Info
	err := s.do(ctx, 0, "head", key, func(ctx context.Context) error {
		resp, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.full(key))})
		if err != nil {
			return err
		}
		info = Info{Key: key, Size: aws.ToInt64(resp.ContentLength), ETag: strings.Trim(aws.ToString(resp.ETag), `"`), Modified: aws.ToTime(resp.LastModified)}
		return nil
	})
	return info, err
}

// List pages through ListObjectsV2 under the prefix; each page is one
// retried request, so a long listing survives a fault in its middle.
func (s *S3) List(ctx context.Context, prefix string) ([]Info, error) {
	var out []Info
	var token *string
	strip := len(s.full(""))
	for {
		var page *s3.ListObjectsV2Output
		err := s.do(ctx, 0, "list", prefix, func(ctx context.Context) error {
			var err error
			page, err = s.client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{
				Bucket: aws.String(s.bucket), Prefix: aws.String(s.full(prefix)), ContinuationToken: token,
			})
			return err
		})
		if err != nil {
			return nil, err
		}
		for _, o := range page.Contents {
			k := aws.ToString(o.Key)
			if len(k) < strip {
				continue
			}
			out = append(out, Info{Key: k[strip:], Size: aws.ToInt64(o.Size), ETag: strings.Trim(aws.ToString(o.ETag), `"`), Modified: aws.ToTime(o.LastModified)})
		}
		if !aws.ToBool(page.IsTruncated) || page.NextContinuationToken == nil {
			break
		}
		token = page.NextContinuationToken
	}
	// S3 lists in UTF-8 byte order; some compatible services do not
	// quite, and the interface promises key order.
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out, nil
}

func (s *S3) Delete(ctx context.Context, key string) error {
	err := s.do(ctx, 0, "delete", key, func(ctx context.Context) error {
		_, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(s.bucket), Key: aws.String(s.full(key))})
		return err
	})
	if errors.Is(err, ErrNotFound) {
		return nil
	}
	return err
}

// do runs one operation's attempts through the retry policy, turning
// the SDK's errors into this package's (classify), and names the store,
// the operation and the key in the error.
func (s *S3) do(ctx context.Context, total time.Duration, op, key string, attempt func(context.Context) error) error {
	if err := s.attempts(ctx, total, attempt); err != nil {
		return s.opErr(op, key, err)
	}
	return nil
}

// attempts is do without the names: the retried, classified attempts.
// Retries that end on failures to connect are ErrUnreachable.
func (s *S3) attempts(ctx context.Context, total time.Duration, attempt func(context.Context) error) error {
	err := s.retry.retry(ctx, total, func(ctx context.Context) error {
		return classify(attempt(ctx))
	})
	if err != nil && isTransient(err) && unreachable(err) {
		return fmt.Errorf("%w: %w", ErrUnreachable, err)
	}
	return err
}

func (s *S3) opErr(op, key string, err error) error {
	return fmt.Errorf("%s %s/%s: %w", op, s, key, err)
}

// Internal kinds that callers see as ErrShort or handle themselves.
var (
	errNoSuchBucket = errors.New("no such bucket")
	errInvalidRange = errors.New("range not satisfiable")
)

// serviceError is one answer of the service, described in one line
// from its code, message and HTTP status (the SDK's own error text runs
// to several clauses with request ids).
type serviceError struct {
	kind   error // ErrNotFound, ErrAccessDenied, ...; nil for others
	code   string
	msg    string
	status int
}

func (e *serviceError) Error() string {
	s := e.code
	if e.msg != "" && e.msg != e.code {
		s += ": " + e.msg
	}
	if e.status != 0 {
		s += " (HTTP " + strconv.Itoa(e.status) + ")"
	}
	if e.kind != nil {
		s = e.kind.Error() + ": " + s
	}
	return s
}

func (e *serviceError) Unwrap() error { return e.kind }

// classify maps an attempt's error to this package's kinds and marks
// those worth retrying (transient). Errors it has already made pass
// through.
func classify(err error) error {
	if err == nil || errors.Is(err, ErrShort) || isTransient(err) {
		return err
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	status := 0
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		status = re.HTTPStatusCode()
	}
	var api smithy.APIError
	if errors.As(err, &api) || status != 0 {
		se := &serviceError{status: status}
		if api != nil {
			se.code, se.msg = api.ErrorCode(), api.ErrorMessage()
		}
		if se.code == "" {
			se.code = http.StatusText(status)
		}
		switch {
		case se.code == "NoSuchKey" || se.code == "NotFound" || (status == 404 && se.code != "NoSuchBucket"):
			se.kind = ErrNotFound
		case se.code == "NoSuchBucket":
			se.kind = errNoSuchBucket
		case se.code == "InvalidRange" || status == 416:
			se.kind = errInvalidRange
		case se.code == "InvalidAccessKeyId" || se.code == "SignatureDoesNotMatch" ||
			se.code == "InvalidToken" || se.code == "ExpiredToken" || se.code == "TokenRefreshRequired":
			se.kind = ErrCredentialsRefused
		case se.code == "AccessDenied" || status == 403:
			se.kind = ErrAccessDenied
		case status >= 500 || status == 429 || status == 408 ||
			se.code == "SlowDown" || se.code == "RequestTimeout" || se.code == "Throttling" ||
			se.code == "ThrottlingException":
			return transient(se)
		}
		return se
	}
	// No answer: the connection failed, was reset, or was cut.
	if isNetworkError(err) {
		return transient(&netError{err})
	}
	return err
}

// netError describes a failed exchange by its innermost network error.
type netError struct{ err error }

func (e *netError) Error() string {
	var op *net.OpError
	if errors.As(e.err, &op) {
		return op.Error()
	}
	if errors.Is(e.err, io.ErrUnexpectedEOF) || errors.Is(e.err, io.EOF) {
		return "connection closed before the answer ended"
	}
	return oneLine(e.err)
}

func (e *netError) Unwrap() error { return e.err }

func isNetworkError(err error) bool {
	var ne net.Error
	var op *net.OpError
	return errors.As(err, &ne) || errors.As(err, &op) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, io.EOF) ||
		errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE) || errors.Is(err, os.ErrDeadlineExceeded)
}

// unreachable reports whether err is a failure to connect at all.
func unreachable(err error) bool {
	var op *net.OpError
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) || (errors.As(err, &op) && op.Op == "dial")
}

func oneLine(err error) string {
	return strings.Join(strings.Fields(err.Error()), " ")
}
