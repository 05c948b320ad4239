package persist

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
)

// S3 keeps the snapshot as one object of an S3 bucket, or of an S3-compatible
// store. Every write is conditional, so that two replicas sharing a key never
// silently overwrite each other: it carries If-Match with the ETag this backend
// last read or wrote, or If-None-Match: * when it has seen no object yet, and a
// write that loses the race fails with ErrConflict. Create it with Open.
type S3 struct {
	client *s3.Client
	bucket string
	key    string

	// mu guards etag.
	mu sync.Mutex
	// etag is the ETag of the object as this backend last read or wrote it; ""
	// when it has seen none (the next write then requires that there be none).
	etag string
}

func openS3(ctx context.Context, u *url.URL, extra []func(*s3.Options)) (*S3, error) {
	bucket, key := u.Host, strings.TrimPrefix(u.Path, "/")
	if bucket == "" || key == "" || strings.HasSuffix(key, "/") {
		return nil, fmt.Errorf("snapshot location %q: an S3 location is s3://bucket/key", u.Redacted())
	}
	q := u.Query()
	region, endpoint, profile := q.Get("region"), q.Get("endpoint"), q.Get("profile")
	pathStyle := endpoint != ""
	if ps := q.Get("path_style"); ps != "" {
		b, err := strconv.ParseBool(ps)
		if err != nil {
			return nil, fmt.Errorf("snapshot location %q: path_style=%q is not true or false", u.Redacted(), ps)
		}
		pathStyle = b
	}
	for k := range q {
		switch k {
		case "region", "endpoint", "profile", "path_style":
		default:
			return nil, fmt.Errorf("snapshot location %q: unknown parameter %s (known: region, endpoint, path_style, profile)", u.Redacted(), k)
		}
	}
	if endpoint != "" {
		if e, err := url.Parse(endpoint); err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" {
			return nil, fmt.Errorf("snapshot location %q: endpoint %q is not an http(s) URL", u.Redacted(), endpoint)
		}
	}

	var loads []func(*config.LoadOptions) error
	if region != "" {
		loads = append(loads, config.WithRegion(region))
	}
	if profile != "" {
		loads = append(loads, config.WithSharedConfigProfile(profile))
	}
	cfg, err := config.LoadDefaultConfig(ctx, loads...)
	if err != nil {
		return nil, fmt.Errorf("snapshot location %q: AWS configuration: %w", u.Redacted(), err)
	}
	if cfg.Region == "" {
		if endpoint == "" {
			return nil, fmt.Errorf("snapshot location %q: no AWS region: add ?region=… or set AWS_REGION", u.Redacted())
		}
		// S3-compatible stores mostly ignore the region but it is signed.
		cfg.Region = "us-east-1"
	}
	client := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.UsePathStyle = pathStyle
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
			// The snapshot carries its own SHA-256; S3-compatible stores differ in
			// how well they take the SDK's optional trailing checksums.
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		}
	}, func(o *s3.Options) {
		for _, f := range extra {
			f(o)
		}
	})
	return &S3{client: client, bucket: bucket, key: key}, nil
}

// Client is the S3 client the backend uses.
func (b *S3) Client() *s3.Client { return b.client }

// String returns s3://bucket/key.
func (b *S3) String() string { return "s3://" + b.bucket + "/" + b.key }

// Read fetches the object and remembers its ETag for the next conditional write.
func (b *S3) Read(ctx context.Context) ([]byte, error) {
	out, err := b.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &b.bucket, Key: &b.key})
	if err != nil {
		if notFound(err) {
			b.setETag("")
			return nil, fmt.Errorf("%s: %w", b, ErrNotFound)
		}
		return nil, fmt.Errorf("reading %s: %w", b, err)
	}
	defer out.Body.Close()
	var buf bytes.Buffer
	if n := aws.ToInt64(out.ContentLength); n > 0 && n < maxBody {
		buf.Grow(int(n))
	}
	if _, err := buf.ReadFrom(out.Body); err != nil {
		return nil, fmt.Errorf("reading %s: %w", b, err)
	}
	b.setETag(aws.ToString(out.ETag))
	return buf.Bytes(), nil
}

// Write puts the object if it is still the one this backend last read or wrote
// (If-Match), or if there is none when it has seen none (If-None-Match: *).
func (b *S3) Write(ctx context.Context, data []byte) error {
	in := &s3.PutObjectInput{
		Bucket:        &b.bucket,
		Key:           &b.key,
		Body:          bytes.NewReader(data),
		ContentLength: aws.Int64(int64(len(data))),
		ContentType:   aws.String("application/octet-stream"),
	}
	etag := b.ETag()
	if etag != "" {
		in.IfMatch = aws.String(etag)
	} else {
		in.IfNoneMatch = aws.String("*")
	}
	out, err := b.client.PutObject(ctx, in)
	if err != nil {
		if conflict(err) {
			if etag == "" {
				return fmt.Errorf("writing %s: an object appeared since this server last looked: %w", b, ErrConflict)
			}
			return fmt.Errorf("writing %s: the object is no longer the one with ETag %s: %w", b, etag, ErrConflict)
		}
		return fmt.Errorf("writing %s: %w", b, err)
	}
	b.setETag(aws.ToString(out.ETag))
	return nil
}

// SetAside copies the object, as last read, to <key>.<suffix> and leaves the
// original in place: the next Write replaces it.
func (b *S3) SetAside(ctx context.Context, suffix string) (string, error) {
	to := b.key + "." + suffix
	in := &s3.CopyObjectInput{
		Bucket:     &b.bucket,
		Key:        &to,
		CopySource: aws.String(copySource(b.bucket, b.key)),
	}
	if etag := b.ETag(); etag != "" {
		in.CopySourceIfMatch = aws.String(etag)
	}
	if _, err := b.client.CopyObject(ctx, in); err != nil {
		return "", fmt.Errorf("setting %s aside: %w", b, err)
	}
	return "s3://" + b.bucket + "/" + to, nil
}

// ETag is the ETag of the object as this backend last read or wrote it; "" when
// it has seen none.
func (b *S3) ETag() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.etag
}

func (b *S3) setETag(etag string) {
	b.mu.Lock()
	b.etag = etag
	b.mu.Unlock()
}

// copySource is bucket/key with each path segment URL-escaped, as CopyObject
// wants it.
func copySource(bucket, key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return bucket + "/" + strings.Join(parts, "/")
}

func notFound(err error) bool {
	var nsk *types.NoSuchKey
	if errors.As(err, &nsk) {
		return true
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound && !isCode(err, "NoSuchBucket")
}

// conflict reports whether a conditional write failed its condition:
// 412 Precondition Failed, or 409 ConditionalRequestConflict when two
// conditional writes race.
func conflict(err error) bool {
	if isCode(err, "PreconditionFailed") || isCode(err, "ConditionalRequestConflict") {
		return true
	}
	var re *awshttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusPreconditionFailed
}

func isCode(err error, code string) bool {
	var ae smithy.APIError
	return errors.As(err, &ae) && ae.ErrorCode() == code
}
