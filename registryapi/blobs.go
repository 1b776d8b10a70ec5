package registryapi

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/opencontainers/go-digest"
)

// blobDigest parses the digest in a blob or referrers route.
func blobDigest(rt route) (digest.Digest, error) {
	d, err := ParseDigest(rt.arg)
	if err != nil {
		return "", &Error{Code: CodeDigestInvalid, Detail: map[string]string{"digest": truncate(rt.arg, 200)}, Err: err}
	}
	return d, nil
}

// etagMatches reports whether an If-None-Match header matches etag.
func etagMatches(header, etag string) bool {
	if header == "" {
		return false
	}
	for v := range strings.SplitSeq(header, ",") {
		v = strings.TrimPrefix(strings.TrimSpace(v), "W/")
		if v == "*" || v == etag {
			return true
		}
	}
	return false
}

// getBlob serves GET and HEAD /v2/<name>/blobs/<digest>.
func (h *handler) getBlob(w http.ResponseWriter, r *http.Request, rt route) error {
	d, err := blobDigest(rt)
	if err != nil {
		return err
	}
	etag := `"` + d.String() + `"`
	hdr := w.Header()
	notModified := etagMatches(r.Header.Get("If-None-Match"), etag)
	if r.Method == http.MethodHead || notModified {
		// Answerable from metadata: the ETag is the digest, so the client's
		// copy is current iff the blob exists. No content is opened.
		desc, err := h.b.StatBlob(r.Context(), rt.name, d)
		if err != nil {
			return fmt.Errorf("stat blob %s: %w", d, err)
		}
		setBlobHeaders(hdr, d, etag)
		if notModified {
			w.WriteHeader(http.StatusNotModified)
			return nil
		}
		hdr.Set("Content-Length", strconv.FormatInt(desc.Size, 10))
		w.WriteHeader(http.StatusOK)
		return nil
	}
	blob, err := h.b.GetBlob(r.Context(), rt.name, d)
	if err != nil {
		return fmt.Errorf("get blob %s: %w", d, err)
	}
	defer blob.Content.Close()
	setBlobHeaders(hdr, d, etag)
	status := http.StatusOK
	span := byteRange{Start: 0, End: blob.Size - 1}
	if rh := r.Header.Get("Range"); rh != "" && ifRangeHolds(r.Header.Get("If-Range"), etag) {
		br, err := parseRange(rh, blob.Size)
		switch {
		case err == nil:
			span, status = br, http.StatusPartialContent
			hdr.Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", br.Start, br.End, blob.Size))
		case errors.Is(err, errRangeMultiple), errors.Is(err, errRangeUnit):
			// Serving the whole blob is a legal answer.
		default:
			return &Error{
				Code:   CodeRangeInvalid,
				Detail: map[string]string{"range": truncate(rh, 200)},
				Header: http.Header{"Content-Range": {fmt.Sprintf("bytes */%d", blob.Size)}},
				Err:    err,
			}
		}
	}
	n := span.Length()
	hdr.Set("Content-Length", strconv.FormatInt(n, 10))
	if n == 0 && blob.Verified != nil {
		// Nothing to withhold: verify before answering.
		if err := blob.Verified(r.Context()); err != nil {
			return fmt.Errorf("verify blob %s: %w", d, err)
		}
	}
	if span.Start > 0 {
		if _, err := blob.Content.Seek(span.Start, io.SeekStart); err != nil {
			return fmt.Errorf("seek blob %s: %w", d, err)
		}
	}
	w.WriteHeader(status)
	return copyVerified(w, r, blob, n)
}

// copyVerified copies n bytes of blob to w. With a Verified hook it
// withholds the last byte until the hook returns nil. Any error here comes
// after the headers, so ServeHTTP aborts the connection.
func copyVerified(w http.ResponseWriter, r *http.Request, blob Blob, n int64) error {
	if n == 0 {
		return nil
	}
	head := n
	if blob.Verified != nil {
		head = n - 1
	}
	if _, err := io.CopyN(w, blob.Content, head); err != nil {
		return fmt.Errorf("copy blob: %w", err)
	}
	if blob.Verified == nil {
		return nil
	}
	// Let the client have everything but the last byte while we wait.
	_ = http.NewResponseController(w).Flush()
	if err := blob.Verified(r.Context()); err != nil {
		return fmt.Errorf("verify blob: %w", err)
	}
	if _, err := io.CopyN(w, blob.Content, 1); err != nil {
		return fmt.Errorf("copy blob: %w", err)
	}
	return nil
}

// ifRangeHolds reports whether a Range header applies given If-Range: it
// does when If-Range is absent or names the blob's ETag (dates never match
// content-addressed blobs, so they fall back to the whole blob).
func ifRangeHolds(ifRange, etag string) bool {
	return ifRange == "" || strings.TrimSpace(ifRange) == etag
}

func setBlobHeaders(hdr http.Header, d digest.Digest, etag string) {
	hdr.Set("Content-Type", "application/octet-stream")
	hdr.Set("Docker-Content-Digest", d.String())
	hdr.Set("ETag", etag)
	hdr.Set("Accept-Ranges", "bytes")
	hdr.Set("Cache-Control", "max-age=31536000")
}

// deleteBlob serves DELETE /v2/<name>/blobs/<digest>.
func (h *handler) deleteBlob(w http.ResponseWriter, r *http.Request, rt route) error {
	d, err := blobDigest(rt)
	if err != nil {
		return err
	}
	if err := h.b.DeleteBlob(r.Context(), rt.name, d); err != nil {
		return fmt.Errorf("delete blob %s: %w", d, err)
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}
