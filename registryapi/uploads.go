package registryapi

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"

	"github.com/opencontainers/go-digest"
)

// uploadLocation is the URL of an upload session.
func uploadLocation(name, id string) string {
	return "/v2/" + name + "/blobs/uploads/" + id
}

// blobLocation is the URL of a blob.
func blobLocation(name string, d digest.Digest) string {
	return "/v2/" + name + "/blobs/" + d.String()
}

// writeUploadState answers with an upload session's location and progress.
func writeUploadState(w http.ResponseWriter, name string, up Upload, status int) {
	hdr := w.Header()
	hdr.Set("Location", uploadLocation(name, up.ID()))
	hdr.Set("Docker-Upload-UUID", up.ID())
	hdr.Set("Range", uploadRange(up.Size()))
	hdr.Set("Content-Length", "0")
	w.WriteHeader(status)
}

// writeBlobCreated answers 201 for a stored blob.
func writeBlobCreated(w http.ResponseWriter, name string, d digest.Digest) {
	hdr := w.Header()
	hdr.Set("Location", blobLocation(name, d))
	hdr.Set("Docker-Content-Digest", d.String())
	hdr.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
}

// queryDigest parses the digest query parameter.
func queryDigest(r *http.Request, key string) (digest.Digest, error) {
	s := r.URL.Query().Get(key)
	if s == "" {
		return "", apiErr(CodeDigestInvalid, map[string]string{key: "missing"})
	}
	d, err := ParseDigest(s)
	if err != nil {
		return "", &Error{Code: CodeDigestInvalid, Detail: map[string]string{key: truncate(s, 200)}, Err: err}
	}
	return d, nil
}

// startUpload serves POST /v2/<name>/blobs/uploads/: a cross-repository
// mount (?mount=&from=), a monolithic upload (?digest=), or a new session.
func (h *handler) startUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	q := r.URL.Query()
	if q.Has("mount") {
		d, err := queryDigest(r, "mount")
		if err != nil {
			return err
		}
		from := q.Get("from")
		if from != "" && !ValidName(from) {
			return apiErr(CodeNameInvalid, map[string]string{"from": truncate(from, 300)})
		}
		_, err = h.b.MountBlob(ctx, rt.name, from, d)
		switch {
		case err == nil:
			writeBlobCreated(w, rt.name, d)
			return nil
		case !errors.Is(err, ErrBlobUnknown):
			return fmt.Errorf("mount blob %s from %q: %w", d, from, err)
		}
		// Unknown blob: fall back to a normal upload session.
	}
	if q.Has("digest") {
		d, err := queryDigest(r, "digest")
		if err != nil {
			return err
		}
		return h.monolithicUpload(w, r, rt, d)
	}
	up, err := h.b.StartUpload(ctx, rt.name)
	if err != nil {
		return fmt.Errorf("start upload: %w", err)
	}
	writeUploadState(w, rt.name, up, http.StatusAccepted)
	return nil
}

// monolithicUpload stores the POST body as blob d in one request.
func (h *handler) monolithicUpload(w http.ResponseWriter, r *http.Request, rt route, d digest.Digest) error {
	ctx := r.Context()
	if err := h.checkUploadLength(r, 0); err != nil {
		return err
	}
	up, err := h.b.StartUpload(ctx, rt.name)
	if err != nil {
		return fmt.Errorf("start upload: %w", err)
	}
	if err := h.appendBodyErr(ctx, r, up); err != nil {
		cancelQuietly(up)
		return err
	}
	if _, err := up.Commit(ctx, d); err != nil {
		cancelQuietly(up)
		return fmt.Errorf("commit upload %s: %w", d, err)
	}
	writeBlobCreated(w, rt.name, d)
	return nil
}

// cancelQuietly discards an upload that failed part-way; the request's own
// error is what the client needs.
func cancelQuietly(up Upload) {
	_ = up.Cancel(context.Background())
}

// getUpload loads the session a route names.
func (h *handler) getUpload(ctx context.Context, rt route) (Upload, error) {
	up, err := h.b.GetUpload(ctx, rt.name, rt.arg)
	if err != nil {
		return nil, fmt.Errorf("get upload %s: %w", rt.arg, err)
	}
	return up, nil
}

// uploadStatus serves GET /v2/<name>/blobs/uploads/<id>.
func (h *handler) uploadStatus(w http.ResponseWriter, r *http.Request, rt route) error {
	up, err := h.getUpload(r.Context(), rt)
	if err != nil {
		return err
	}
	writeUploadState(w, rt.name, up, http.StatusNoContent)
	return nil
}

// patchUpload serves PATCH /v2/<name>/blobs/uploads/<id>: a streamed body,
// or a chunk placed by Content-Range, which must start at the current size.
func (h *handler) patchUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	up, err := h.getUpload(ctx, rt)
	if err != nil {
		return err
	}
	if err := h.checkChunk(r, rt, up); err != nil {
		return err
	}
	if err := h.appendBody(ctx, r, up); err != nil {
		return err
	}
	writeUploadState(w, rt.name, up, http.StatusAccepted)
	return nil
}

// putUpload serves PUT /v2/<name>/blobs/uploads/<id>?digest=: an optional
// final chunk, then the commit.
func (h *handler) putUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	d, err := queryDigest(r, "digest")
	if err != nil {
		return err
	}
	up, err := h.getUpload(ctx, rt)
	if err != nil {
		return err
	}
	if err := h.checkChunk(r, rt, up); err != nil {
		return err
	}
	if err := h.appendBody(ctx, r, up); err != nil {
		return err
	}
	if _, err := up.Commit(ctx, d); err != nil {
		return fmt.Errorf("commit upload %s: %w", d, err)
	}
	writeBlobCreated(w, rt.name, d)
	return nil
}

// cancelUpload serves DELETE /v2/<name>/blobs/uploads/<id>.
func (h *handler) cancelUpload(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	up, err := h.getUpload(ctx, rt)
	if err != nil {
		return err
	}
	if err := up.Cancel(ctx); err != nil {
		return fmt.Errorf("cancel upload %s: %w", rt.arg, err)
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusNoContent)
	return nil
}

// checkChunk validates a Content-Range header, if any: it must parse, start
// at the upload's current size and agree with Content-Length.
func (h *handler) checkChunk(r *http.Request, rt route, up Upload) error {
	cr := r.Header.Get("Content-Range")
	if cr == "" {
		return h.checkUploadLength(r, up.Size())
	}
	rangeErr := func(detail string, cause error) error {
		return &Error{
			Code:   CodeRangeInvalid,
			Detail: map[string]string{"reason": detail, "contentRange": truncate(cr, 100)},
			Header: http.Header{
				"Location":           {uploadLocation(rt.name, up.ID())},
				"Range":              {uploadRange(up.Size())},
				"Docker-Upload-UUID": {up.ID()},
			},
			Err: cause,
		}
	}
	br, err := parseContentRange(cr)
	if err != nil {
		return rangeErr("malformed Content-Range", err)
	}
	if br.Start != up.Size() {
		return rangeErr(fmt.Sprintf("chunk starts at %d, upload has %d bytes", br.Start, up.Size()), nil)
	}
	if r.ContentLength >= 0 && r.ContentLength != br.Length() {
		return rangeErr(fmt.Sprintf("Content-Length %d does not match range length %d", r.ContentLength, br.Length()), nil)
	}
	if r.ContentLength < 0 {
		// Chunked transfer: hold the body to the declared range.
		r.Body = &exactReader{r: r.Body, left: br.Length()}
	}
	return h.checkUploadLength(r, up.Size())
}

// checkUploadLength refuses a body whose declared length would take the
// upload past MaxUploadBytes.
func (h *handler) checkUploadLength(r *http.Request, have int64) error {
	if h.opts.MaxUploadBytes > 0 && r.ContentLength > 0 && have+r.ContentLength > h.opts.MaxUploadBytes {
		return apiErr(CodeTooLarge, map[string]int64{"limit": h.opts.MaxUploadBytes})
	}
	return nil
}

// appendBody appends the request body to up, enforcing MaxUploadBytes on
// bodies of unknown length. A body that fails part-way may have been partly
// appended (an Upload cannot truncate), so an error response to a session
// request carries the session's Range for the client to resume from.
func (h *handler) appendBody(ctx context.Context, r *http.Request, up Upload) error {
	if r.ContentLength == 0 {
		return nil
	}
	err := h.appendBodyErr(ctx, r, up)
	var e *Error
	if errors.As(err, &e) && e.Header == nil {
		e.Header = http.Header{"Range": {uploadRange(up.Size())}, "Docker-Upload-UUID": {up.ID()}}
	}
	return err
}

func (h *handler) appendBodyErr(ctx context.Context, r *http.Request, up Upload) error {
	var body io.Reader = r.Body
	if h.opts.MaxUploadBytes > 0 {
		body = &limitReader{r: body, left: h.opts.MaxUploadBytes - up.Size()}
	}
	if _, err := up.Append(ctx, body); err != nil {
		var tooLarge *limitError
		if errors.As(err, &tooLarge) {
			return &Error{Code: CodeTooLarge, Detail: map[string]int64{"limit": h.opts.MaxUploadBytes}, Err: err}
		}
		var short *shortChunkError
		if errors.As(err, &short) {
			return &Error{Code: CodeSizeInvalid, Detail: short.Error(), Err: err}
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return &Error{Code: CodeBlobUploadInvalid, Detail: "body shorter than Content-Length", Err: err}
		}
		return fmt.Errorf("append to upload %s: %w", up.ID(), err)
	}
	return nil
}

// limitError reports a body past MaxUploadBytes.
type limitError struct{}

func (*limitError) Error() string { return "upload exceeds size limit" }

// limitReader yields at most left bytes and fails with *limitError if the
// source has more, so an upload never holds more than the limit.
type limitReader struct {
	r    io.Reader
	left int64
}

func (l *limitReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		var one [1]byte
		n, err := l.r.Read(one[:])
		if n > 0 {
			return 0, &limitError{}
		}
		return 0, err
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

// shortChunkError reports a chunk body shorter or longer than its range.
type shortChunkError struct{ want, got int64 }

func (e *shortChunkError) Error() string {
	return "chunk body length " + strconv.FormatInt(e.got, 10) + " does not match range length " + strconv.FormatInt(e.want, 10)
}

// exactReader yields exactly left bytes of r, or fails.
type exactReader struct {
	r         io.Reader
	left, got int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left == 0 {
		// Anything beyond the range is an error.
		var one [1]byte
		if n, _ := e.r.Read(one[:]); n > 0 {
			return 0, &shortChunkError{want: e.got, got: e.got + 1}
		}
		return 0, io.EOF
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	e.got += int64(n)
	if errors.Is(err, io.EOF) && e.left > 0 {
		return n, &shortChunkError{want: e.got + e.left, got: e.got}
	}
	if errors.Is(err, io.EOF) {
		err = nil
	}
	return n, err
}

// Close is a no-op: the server closes the request body it wraps.
func (e *exactReader) Close() error { return nil }
