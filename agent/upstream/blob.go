package upstream

import (
	"context"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
)

// StatBlob returns the size of blob d in repo.
func (c *Client) StatBlob(ctx context.Context, repo string, d digest.Digest) (int64, error) {
	if err := checkBlobArgs(repo, d); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.do(ctx, http.MethodHead, repo, "blobs/"+d.String(), nil)
	if err != nil {
		return 0, fmt.Errorf("stat blob %s in %s on %s: %w", d, repo, c.host, err)
	}
	discard(resp)
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("stat blob %s in %s on %s: %w", d, repo, c.host, responseError(resp))
	}
	if resp.ContentLength < 0 {
		return 0, fmt.Errorf("stat blob %s in %s on %s: no Content-Length", d, repo, c.host)
	}
	return resp.ContentLength, nil
}

// Blob streams blob d from repo starting at offset, following the
// registry's redirects to its storage, and returns the stream and the
// blob's total size (-1 when the registry does not say). A read from offset
// 0 is verified: the stream ends with an error wrapping ErrDigestMismatch
// instead of io.EOF if the content does not hash to d. A read from a later
// offset cannot be verified here; the caller verifies the assembled blob.
// Read errors wrap ErrUnavailable. The caller closes the stream.
func (c *Client) Blob(ctx context.Context, repo string, d digest.Digest, offset int64) (io.ReadCloser, int64, error) {
	if err := checkBlobArgs(repo, d); err != nil {
		return nil, 0, err
	}
	if offset < 0 {
		return nil, 0, fmt.Errorf("blob %s: negative offset %d", d, offset)
	}
	var hdr http.Header
	if offset > 0 {
		hdr = http.Header{"Range": {"bytes=" + strconv.FormatInt(offset, 10) + "-"}}
	}
	resp, err := c.do(ctx, http.MethodGet, repo, "blobs/"+d.String(), hdr)
	if err != nil {
		return nil, 0, fmt.Errorf("blob %s in %s on %s: %w", d, repo, c.host, err)
	}
	body, total, err := blobBody(resp, offset)
	if err != nil {
		return nil, 0, fmt.Errorf("blob %s in %s on %s: %w", d, repo, c.host, err)
	}
	if offset == 0 {
		return &verifyReader{body: body, digest: d, hash: d.Algorithm().Hash(), size: total}, total, nil
	}
	return &streamReader{body: body}, total, nil
}

// checkBlobArgs validates a repository and a blob digest.
func checkBlobArgs(repo string, d digest.Digest) error {
	if err := checkRepo(repo); err != nil {
		return err
	}
	if err := d.Validate(); err != nil {
		return fmt.Errorf("blob %q: %w", d, err)
	}
	return nil
}

// blobBody checks a blob response and returns its body positioned at
// offset and the blob's total size (-1 if unknown).
func blobBody(resp *http.Response, offset int64) (io.ReadCloser, int64, error) {
	switch resp.StatusCode {
	case http.StatusOK:
		if offset > 0 {
			// The server ignored the range: skip to offset.
			if _, err := io.CopyN(io.Discard, resp.Body, offset); err != nil {
				resp.Body.Close()
				return nil, 0, transportError(fmt.Errorf("skip to offset %d: %w", offset, err))
			}
		}
		return resp.Body, resp.ContentLength, nil
	case http.StatusPartialContent:
		start, total, err := parseContentRange(resp.Header.Get("Content-Range"))
		if err != nil || start != offset {
			resp.Body.Close()
			return nil, 0, fmt.Errorf("bad Content-Range %q for offset %d", resp.Header.Get("Content-Range"), offset)
		}
		return resp.Body, total, nil
	case http.StatusRequestedRangeNotSatisfiable:
		discard(resp)
		return nil, 0, fmt.Errorf("offset %d is beyond the blob (%s)", offset, resp.Status)
	}
	return nil, 0, responseError(resp)
}

// parseContentRange parses "bytes START-END/TOTAL"; TOTAL may be "*"
// (unknown, returned as -1).
func parseContentRange(v string) (start, total int64, err error) {
	rest, ok := strings.CutPrefix(v, "bytes ")
	if !ok {
		return 0, 0, errors.New("not a byte range")
	}
	rng, size, ok := strings.Cut(rest, "/")
	if !ok {
		return 0, 0, errors.New("no total size")
	}
	first, last, ok := strings.Cut(rng, "-")
	if !ok {
		return 0, 0, errors.New("no range")
	}
	if start, err = strconv.ParseInt(first, 10, 64); err != nil {
		return 0, 0, err
	}
	end, err := strconv.ParseInt(last, 10, 64)
	if err != nil || end < start {
		return 0, 0, errors.New("bad range end")
	}
	if size == "*" {
		return start, -1, nil
	}
	if total, err = strconv.ParseInt(size, 10, 64); err != nil || total <= end {
		return 0, 0, errors.New("bad total size")
	}
	return start, total, nil
}

// streamReader wraps read errors of a blob body in ErrUnavailable.
type streamReader struct {
	body io.ReadCloser
}

// Read reads from the body.
func (r *streamReader) Read(p []byte) (int, error) {
	n, err := r.body.Read(p)
	if err != nil && err != io.EOF {
		err = transportError(err)
	}
	return n, err
}

// Close closes the body.
func (r *streamReader) Close() error { return r.body.Close() }

// verifyReader hashes a whole blob as it streams and, at the end, reports
// ErrDigestMismatch (or a short read) instead of io.EOF if the content is
// not what its digest names.
type verifyReader struct {
	body   io.ReadCloser
	digest digest.Digest
	hash   hash.Hash
	size   int64 // -1: unknown
	n      int64
	err    error // sticky final result
}

// Read reads from the body, hashing what it returns.
func (r *verifyReader) Read(p []byte) (int, error) {
	if r.err != nil {
		return 0, r.err
	}
	n, err := r.body.Read(p)
	r.hash.Write(p[:n])
	r.n += int64(n)
	switch {
	case err == io.EOF:
		err = r.finish()
	case err != nil:
		err = transportError(err)
	case r.size >= 0 && r.n > r.size:
		err = fmt.Errorf("%w: blob %s is longer than its %d bytes", ErrDigestMismatch, r.digest, r.size)
	}
	if err != nil {
		r.err = err
	}
	return n, err
}

// finish checks length and digest once the body has ended.
func (r *verifyReader) finish() error {
	if r.size >= 0 && r.n != r.size {
		return transportError(fmt.Errorf("blob %s ended after %d of %d bytes: %w", r.digest, r.n, r.size, io.ErrUnexpectedEOF))
	}
	if got := digest.NewDigest(r.digest.Algorithm(), r.hash); got != r.digest {
		return fmt.Errorf("%w: blob %s hashes to %s", ErrDigestMismatch, r.digest, got)
	}
	return io.EOF
}

// Close closes the body.
func (r *verifyReader) Close() error { return r.body.Close() }
