package upstream

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// Errors returned by the client, wrapped with context; test with errors.Is.
var (
	// ErrNotFound: the registry does not have the repository, manifest or
	// blob (404, MANIFEST_UNKNOWN, BLOB_UNKNOWN, NAME_UNKNOWN).
	ErrNotFound = errors.New("upstream: not found")
	// ErrUnauthorized: the registry or its token service refused the
	// request, with or without the configured credentials (401, 403).
	ErrUnauthorized = errors.New("upstream: unauthorized")
	// ErrUnavailable: the registry could not be reached or answered with a
	// transient failure (network errors, timeouts, 5xx, 429).
	ErrUnavailable = errors.New("upstream: unavailable")
	// ErrDigestMismatch: content or a Docker-Content-Digest header does not
	// match the digest it should have.
	ErrDigestMismatch = errors.New("upstream: digest mismatch")
)

// maxErrorBody bounds how much of an error response is read.
const maxErrorBody = 64 << 10

// ociErrors is the OCI distribution error body.
type ociErrors struct {
	Errors []struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"errors"`
}

// notFoundCodes are the OCI error codes that mean "not there".
var notFoundCodes = map[string]bool{
	"MANIFEST_UNKNOWN": true,
	"BLOB_UNKNOWN":     true,
	"NAME_UNKNOWN":     true,
}

// responseError turns an unsuccessful response into an error wrapping the
// matching sentinel, with the OCI error codes and messages of its body. It
// consumes and closes the body.
func responseError(resp *http.Response) error {
	defer resp.Body.Close()
	var body []byte
	if resp.Request == nil || resp.Request.Method != http.MethodHead {
		body, _ = io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	}
	var oe ociErrors
	var msgs []string
	notFound := resp.StatusCode == http.StatusNotFound
	if json.Unmarshal(body, &oe) == nil {
		for _, e := range oe.Errors {
			notFound = notFound || notFoundCodes[e.Code]
			m := e.Code
			if e.Message != "" {
				m += ": " + e.Message
			}
			msgs = append(msgs, m)
		}
	}
	detail := resp.Status
	if len(msgs) > 0 {
		detail += " (" + strings.Join(msgs, "; ") + ")"
	}
	var sentinel error
	switch {
	case notFound:
		sentinel = ErrNotFound
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusForbidden:
		sentinel = ErrUnauthorized
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		sentinel = ErrUnavailable
	default:
		return fmt.Errorf("unexpected response %s", detail)
	}
	return fmt.Errorf("%w: %s", sentinel, detail)
}

// transportError wraps a failed round trip (network error, timeout,
// cancellation) in ErrUnavailable, keeping the cause visible to errors.Is.
func transportError(err error) error {
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}
