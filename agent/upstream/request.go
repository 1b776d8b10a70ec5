package upstream

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"time"
)

// Media types a manifest request accepts: OCI and Docker, single-platform
// manifests and indexes.
const manifestAccept = "application/vnd.oci.image.index.v1+json, " +
	"application/vnd.oci.image.manifest.v1+json, " +
	"application/vnd.docker.distribution.manifest.list.v2+json, " +
	"application/vnd.docker.distribution.manifest.v2+json"

// Names as the OCI distribution spec defines them.
var (
	repoPattern = regexp.MustCompile(`^[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*(/[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*)*$`)
	tagPattern  = regexp.MustCompile(`^[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}$`)
)

// checkRepo rejects names that are not OCI repository names, so that no
// caller input can reshape the request path.
func checkRepo(repo string) error {
	if len(repo) > 255 || !repoPattern.MatchString(repo) {
		return fmt.Errorf("invalid repository name %q", repo)
	}
	return nil
}

// do sends a GET or HEAD for /v2/<repo>/<path>, answering at most one
// authentication challenge. Any status other than 401 is returned to the
// caller. The response headers must arrive within the client's timeout; the
// body is bounded by ctx alone.
func (c *Client) do(ctx context.Context, method, repo, path string, hdr http.Header) (*http.Response, error) {
	u := c.scheme + "://" + c.host + "/v2/" + repo + "/" + path
	resp, err := c.send(ctx, method, u, hdr, c.authorization(repo))
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	ch := pickChallenge(resp.Header.Values("WWW-Authenticate"))
	if ch == nil {
		return nil, fmt.Errorf("no usable challenge: %w", responseError(resp))
	}
	discard(resp)
	authz, err := c.answer(ctx, repo, ch)
	if err != nil {
		return nil, err
	}
	resp, err = c.send(ctx, method, u, hdr, authz)
	if err != nil || resp.StatusCode != http.StatusUnauthorized {
		return resp, err
	}
	// Refused even so: forget the token rather than send it again.
	c.mu.Lock()
	delete(c.tokens, pullScope(repo))
	c.mu.Unlock()
	return nil, responseError(resp)
}

// send performs one request. The returned body cancels the request's
// context when closed.
func (c *Client) send(ctx context.Context, method, u string, hdr http.Header, authz string) (*http.Response, error) {
	ctx, cancel := context.WithCancel(ctx)
	req, err := http.NewRequestWithContext(ctx, method, u, nil)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("build request: %w", err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	timer := time.AfterFunc(c.timeout, cancel)
	resp, err := c.http.Do(req)
	if !timer.Stop() {
		if err == nil {
			resp.Body.Close()
		}
		cancel()
		return nil, transportError(fmt.Errorf("no response within %s", c.timeout))
	}
	if err != nil {
		cancel()
		return nil, transportError(err)
	}
	resp.Body = &cancelBody{ReadCloser: resp.Body, cancel: cancel}
	return resp, nil
}

// cancelBody releases its request's context when closed.
type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

// Close closes the body and cancels the request's context.
func (b *cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// discard drains a little of a response body, so the connection can be
// reused, and closes it.
func discard(resp *http.Response) {
	_, _ = io.CopyN(io.Discard, resp.Body, maxErrorBody)
	resp.Body.Close()
}
