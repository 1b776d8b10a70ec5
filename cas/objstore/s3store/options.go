package s3store

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// minPartSize is S3's smallest allowed multipart part (except the last).
const minPartSize = 5 << 20

// Options tunes a Store. Zero fields take the values DefaultOptions
// documents.
type Options struct {
	// CredentialsFile names a file in the AWS shared-credentials format
	// (an INI file of [profile] sections with aws_access_key_id,
	// aws_secret_access_key and optionally aws_session_token) to take the
	// access key from, in place of the environment. Empty: AWS_ACCESS_KEY_ID and
	// AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN) if set, else the shared
	// credentials file ($AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials)
	// if it exists, else anonymous requests.
	CredentialsFile string
	// Profile is the section of the credentials file to read. Empty:
	// $AWS_PROFILE, else "default".
	Profile string
	// Logger receives retries and circuit breaker transitions. Nil: silent.
	Logger *slog.Logger
	// Timeout bounds each request: connecting, waiting for a response's
	// headers, a whole Stat, Delete or List page, and any pause in sending
	// a request body or receiving a Get's body. Default 10s.
	Timeout time.Duration
	// PartSize is the multipart upload part size. A Put reads its object
	// one part at a time into a buffer, so PartSize bounds a Put's memory;
	// an object that fits in one part goes up in one request. S3's 10,000
	// parts bound the object size. Default 16 MiB, minimum 5 MiB.
	PartSize int64
	// Attempts bounds how often a request is tried when it fails
	// transiently (network error, timeout, 5xx, throttling); a Put's
	// requests are resent from its part buffer. Default 3.
	Attempts int
	// Backoff is the first retry's maximum delay; it doubles per retry up
	// to MaxBackoff, and each delay is drawn uniformly below it (full
	// jitter). Default 50ms.
	Backoff time.Duration
	// MaxBackoff caps the retry delay. Default 1s.
	MaxBackoff time.Duration
	// BreakerThreshold is the number of consecutive transient failures
	// after which the circuit breaker opens and requests fail at once with
	// objstore.ErrUnavailable. Default 5.
	BreakerThreshold int
	// BreakerCooldown is how long the breaker stays open before it lets a
	// single probe request through. Default 5s.
	BreakerCooldown time.Duration
}

// DefaultOptions returns the defaults New applies to zero fields.
func DefaultOptions() Options {
	return Options{
		Timeout:          10 * time.Second,
		PartSize:         16 << 20,
		Attempts:         3,
		Backoff:          50 * time.Millisecond,
		MaxBackoff:       time.Second,
		BreakerThreshold: 5,
		BreakerCooldown:  5 * time.Second,
	}
}

// withDefaults returns o with its zero fields set from DefaultOptions.
func (o Options) withDefaults() Options {
	d := DefaultOptions()
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	setDefault(&o.Timeout, d.Timeout)
	setDefault(&o.PartSize, d.PartSize)
	setDefault(&o.Attempts, d.Attempts)
	setDefault(&o.Backoff, d.Backoff)
	setDefault(&o.MaxBackoff, d.MaxBackoff)
	setDefault(&o.BreakerThreshold, d.BreakerThreshold)
	setDefault(&o.BreakerCooldown, d.BreakerCooldown)
	return o
}

func setDefault[T comparable](v *T, d T) {
	var zero T
	if *v == zero {
		*v = d
	}
}

// Validate reports options New cannot use. Zero fields are valid: they
// take their defaults.
func (o Options) Validate() error {
	var errs []error
	if o.Timeout < 0 {
		errs = append(errs, fmt.Errorf("timeout %v is negative", o.Timeout))
	}
	if o.PartSize != 0 && o.PartSize < minPartSize {
		errs = append(errs, fmt.Errorf("part size %d is below S3's minimum of %d", o.PartSize, minPartSize))
	}
	if o.Attempts < 0 {
		errs = append(errs, fmt.Errorf("attempts %d is negative", o.Attempts))
	}
	if o.Backoff < 0 || o.MaxBackoff < 0 {
		errs = append(errs, fmt.Errorf("backoff %v/%v is negative", o.Backoff, o.MaxBackoff))
	}
	if o.BreakerThreshold < 0 {
		errs = append(errs, fmt.Errorf("breaker threshold %d is negative", o.BreakerThreshold))
	}
	if o.BreakerCooldown < 0 {
		errs = append(errs, fmt.Errorf("breaker cool-down %v is negative", o.BreakerCooldown))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("s3store: options: %w", err)
	}
	return nil
}
