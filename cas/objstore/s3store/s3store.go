// Package s3store is an objstore.Store on any S3-compatible service:
//
//	s3://bucket/prefix?endpoint=host:port&region=us-east-1&tls=false
//
// The prefix is optional (keys are stored as "<prefix>/<key>"); endpoint
// defaults to s3.amazonaws.com, region to us-east-1 and tls to true.
//
// An S3 PUT is atomic per object, so readers see a whole object or none.
// A Put reads its object one part (Options.PartSize) at a time into a
// reused buffer: an object that fits goes up in one PUT, a larger one as a
// multipart upload, so a Put's memory is bounded whatever the size and
// every request can be resent. Gets are single ranged GETs streamed to the
// caller.
//
// Every request has a timeout, transient failures (network errors,
// timeouts, 5xx, throttling) are retried a bounded number of times with
// jittered backoff, and a circuit breaker (breaker.go) stops requests for a
// cool-down after consecutive failures, so an outage costs callers
// microseconds rather than timeouts. Failures of the service map to
// objstore.ErrUnavailable, missing objects to objstore.ErrNotFound. Health
// reports the breaker's view for a status page.
//
// Credentials come from Options.CredentialsFile, the AWS environment
// variables or the AWS shared credentials file, in that order; they never
// appear in logs, errors or String. Credentials in the URL are refused.
package s3store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/s3utils"
	"github.com/shoal-dev/shoal/cas/objstore"
)

// Defaults for the URL's query parameters.
const (
	defaultEndpoint = "s3.amazonaws.com"
	defaultRegion   = "us-east-1"
)

// Store is an objstore.Store backed by an S3 bucket.
type Store struct {
	bucket, prefix   string // prefix is "" or ends with "/"
	endpoint, region string
	tls              bool
	opts             Options
	log              *slog.Logger
	client           *minio.Client
	transport        *http.Transport
	parts            sync.Pool // *[]byte of Options.PartSize, for multipart Puts

	mu        sync.Mutex
	breaker   breaker
	lastOK    bool // the last request that reached a verdict did not fail
	lastErr   error
	lastErrAt time.Time
}

var _ objstore.Store = (*Store)(nil)

// location is a parsed s3:// URL.
type location struct {
	bucket, prefix, endpoint, region string
	tls                              bool
}

// parseURL parses s3://bucket[/prefix][?endpoint=…&region=…&tls=…]. Errors
// never echo the URL, which might carry secrets.
func parseURL(rawURL string) (location, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return location{}, errors.New("s3store: malformed URL")
	}
	if u.Scheme != "s3" {
		return location{}, fmt.Errorf("s3store: URL scheme %q, want s3", u.Scheme)
	}
	if u.User != nil {
		return location{}, errors.New("s3store: credentials in the URL are not supported; use the environment or a credentials file")
	}
	loc := location{bucket: u.Host, endpoint: defaultEndpoint, region: defaultRegion, tls: true}
	if err := s3utils.CheckValidBucketNameStrict(loc.bucket); err != nil {
		return location{}, fmt.Errorf("s3store: bucket %q: %w", loc.bucket, err)
	}
	if p := strings.Trim(u.Path, "/"); p != "" {
		if err := objstore.ValidateKey(p); err != nil {
			return location{}, fmt.Errorf("s3store: prefix: %w", err)
		}
		loc.prefix = p + "/"
	}
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return location{}, errors.New("s3store: malformed URL query")
	}
	for name, values := range q {
		if len(values) != 1 || values[0] == "" {
			return location{}, fmt.Errorf("s3store: URL parameter %s needs exactly one value", name)
		}
		v := values[0]
		switch name {
		case "endpoint":
			if !validEndpoint(v) {
				return location{}, fmt.Errorf("s3store: endpoint %q: want host or host:port", v)
			}
			loc.endpoint = v
		case "region":
			loc.region = v
		case "tls":
			if loc.tls, err = strconv.ParseBool(v); err != nil {
				return location{}, fmt.Errorf("s3store: tls=%q: want true or false", v)
			}
		default:
			return location{}, fmt.Errorf("s3store: unknown URL parameter %s", name)
		}
	}
	return loc, nil
}

// validEndpoint reports whether v looks like host, host:port or
// [ipv6]:port, with no scheme, path or query.
func validEndpoint(v string) bool {
	for _, c := range v {
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		case strings.ContainsRune(".-:[]", c):
		default:
			return false
		}
	}
	return v != ""
}

// String returns the URL in canonical form, without credentials.
func (l location) String() string {
	var b strings.Builder
	b.WriteString("s3://" + l.bucket)
	if l.prefix != "" {
		b.WriteString("/" + strings.TrimSuffix(l.prefix, "/"))
	}
	b.WriteString("?endpoint=" + l.endpoint + "&region=" + url.QueryEscape(l.region))
	if !l.tls {
		b.WriteString("&tls=false")
	}
	return b.String()
}

// New returns a Store for an s3:// URL. It does not fail if the service is
// unreachable (that is what the breaker and Health are for), but it does if
// the service answers that the bucket does not exist, or if the URL,
// options or credentials are invalid.
func New(ctx context.Context, rawURL string, opts Options) (*Store, error) {
	loc, err := parseURL(rawURL)
	if err != nil {
		return nil, err
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	opts = opts.withDefaults()
	k, source, err := loadKeys(opts, os.Getenv)
	if err != nil {
		return nil, err
	}
	s := &Store{
		bucket: loc.bucket, prefix: loc.prefix, endpoint: loc.endpoint, region: loc.region, tls: loc.tls,
		opts:      opts,
		log:       opts.Logger.With("store", loc.String()),
		transport: newTransport(opts.Timeout),
		breaker:   breaker{threshold: opts.BreakerThreshold, cooldown: opts.BreakerCooldown},
		lastOK:    true,
	}
	s.parts.New = func() any {
		b := make([]byte, opts.PartSize)
		return &b
	}
	s.client, err = minio.New(loc.endpoint, &minio.Options{
		Creds:      k.credentials(),
		Secure:     loc.tls,
		Region:     loc.region,
		Transport:  failTransport{next: s.transport},
		MaxRetries: 1, // Store retries, under its breaker
	})
	if err != nil {
		return nil, fmt.Errorf("s3store: %w", err)
	}
	s.log.Info("s3store: opened", "credentials", source)
	if err := s.checkBucket(ctx); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// checkBucket fails if the service says the bucket does not exist, and
// logs (but tolerates) an unreachable service.
func (s *Store) checkBucket(ctx context.Context) error {
	var exists bool
	err := s.do(ctx, call{op: "check bucket", retry: true}, func(ctx context.Context) error {
		var err error
		exists, err = s.client.BucketExists(ctx, s.bucket)
		return err
	})
	switch {
	case errors.Is(err, objstore.ErrUnavailable):
		s.log.Warn("s3store: service unavailable at start", "err", err)
		return nil
	case err != nil:
		return err
	case !exists:
		return fmt.Errorf("s3store: bucket %s does not exist", s.bucket)
	}
	return nil
}

// String names the store by its canonical URL (no credentials).
func (s *Store) String() string {
	return location{s.bucket, s.prefix, s.endpoint, s.region, s.tls}.String()
}

// Health reports whether the service is usable: ok is false while the
// circuit breaker is not closed or the last request failed transiently.
// lastErr is the most recent transient failure (nil if none yet) and at is
// when it happened.
//
//lint:ignore ST1008 lastErr is data for the status page, not a failure of Health.
func (s *Store) Health() (ok bool, lastErr error, at time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastOK && s.breaker.state == closed, s.lastErr, s.lastErrAt
}

// Close releases idle connections. The Store stays usable.
func (s *Store) Close() error {
	s.transport.CloseIdleConnections()
	return nil
}
