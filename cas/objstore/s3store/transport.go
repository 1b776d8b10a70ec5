package s3store

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
)

// attempt is one try of a request, carried in the request's context. The
// S3 client waits up to 200ms before giving up on a failed request even
// with its own retries off; the Store retries under its breaker instead, so
// failTransport records the failure here and cancels the attempt, which
// ends that wait at once.
type attempt struct {
	cancel context.CancelFunc

	mu  sync.Mutex
	err error
}

type attemptKey struct{}

// withAttempt returns a context carrying a.
func withAttempt(ctx context.Context, a *attempt) context.Context {
	return context.WithValue(ctx, attemptKey{}, a)
}

// attemptOf returns the attempt ctx carries, or nil.
func attemptOf(ctx context.Context) *attempt {
	a, _ := ctx.Value(attemptKey{}).(*attempt)
	return a
}

// fail records err (the first one wins) and cancels the attempt.
func (a *attempt) fail(err error) {
	a.mu.Lock()
	if a.err == nil {
		a.err = err
	}
	a.mu.Unlock()
	a.cancel()
}

// failure returns the recorded error, if any.
func (a *attempt) failure() error {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.err
}

// failTransport ends an attempt as soon as its request fails transiently:
// a transport error, or a response with a status worth retrying.
type failTransport struct {
	next http.RoundTripper
}

// maxErrorBody bounds the error document read from a failed response.
const maxErrorBody = 64 << 10

// RoundTrip implements http.RoundTripper.
func (t failTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.next.RoundTrip(req)
	a := attemptOf(req.Context())
	switch {
	case a == nil:
	case err != nil:
		a.fail(err)
	case retryableStatus(resp.StatusCode):
		// Keep the error document, which the client reads after the
		// context is cancelled.
		body, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
		resp.Body.Close()
		resp.Body = io.NopCloser(bytes.NewReader(body))
		a.fail(statusError(resp, body))
	}
	return resp, err
}

// retryableStatus reports whether an HTTP status says the service is (for
// now) unable to serve.
func retryableStatus(code int) bool {
	return code >= 500 || code == http.StatusTooManyRequests || code == http.StatusRequestTimeout
}

// statusError describes a failed response, wrapping a minio.ErrorResponse
// built from its S3 error document if it has one.
func statusError(resp *http.Response, body []byte) error {
	var e minio.ErrorResponse
	if xml.Unmarshal(body, &e) != nil || e.Code == "" {
		e = minio.ErrorResponse{Code: http.StatusText(resp.StatusCode), Message: resp.Status}
	}
	e.StatusCode = resp.StatusCode
	return fmt.Errorf("%s %s: %w", resp.Status, e.Code, e)
}

// newTransport returns an HTTP transport whose dials, TLS handshakes and
// waits for response headers are bounded by timeout, and whose connections
// fail a write that makes no progress for timeout.
func newTransport(timeout time.Duration) *http.Transport {
	dialer := &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dialer.DialContext(ctx, network, addr)
		if err != nil {
			return nil, err
		}
		return &writeDeadlineConn{Conn: c, timeout: timeout}, nil
	}
	t.TLSHandshakeTimeout = timeout
	t.ResponseHeaderTimeout = timeout
	t.MaxIdleConnsPerHost = 32
	return t
}

// writeDeadlineConn fails a Write that cannot hand its bytes to the kernel
// within timeout, so an upload to a server that stopped reading ends.
// Reads get no deadline: the transport keeps one pending while a request
// body is written.
type writeDeadlineConn struct {
	net.Conn
	timeout time.Duration
}

func (c *writeDeadlineConn) Write(p []byte) (int, error) {
	if err := c.Conn.SetWriteDeadline(time.Now().Add(c.timeout)); err != nil {
		return 0, err
	}
	return c.Conn.Write(p)
}
