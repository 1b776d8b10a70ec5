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

// parseRef parses the reference in a manifest route: a malformed digest
// is DIGEST_INVALID, a malformed tag MANIFEST_INVALID (the spec names no
// code for it).
func parseRef(rt route) (Reference, error) {
	ref, err := ParseReference(rt.arg)
	if err == nil {
		return ref, nil
	}
	code := CodeManifestInvalid
	if strings.Contains(rt.arg, ":") {
		code = CodeDigestInvalid
	}
	return Reference{}, &Error{Code: code, Detail: map[string]string{"reference": truncate(rt.arg, 200)}, Err: err}
}

// getManifest serves GET and HEAD /v2/<name>/manifests/<reference>.
func (h *handler) getManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	ref, err := parseRef(rt)
	if err != nil {
		return err
	}
	m, err := h.b.GetManifest(r.Context(), rt.name, ref.String())
	if err != nil {
		return fmt.Errorf("get manifest %s: %w", ref, err)
	}
	etag := `"` + m.Digest.String() + `"`
	hdr := w.Header()
	hdr.Set("Content-Type", m.MediaType)
	hdr.Set("Docker-Content-Digest", m.Digest.String())
	hdr.Set("ETag", etag)
	hdr.Set("Content-Length", strconv.Itoa(len(m.Content)))
	if inm := r.Header.Get("If-None-Match"); inm != "" && etagMatches(inm, etag) {
		w.WriteHeader(http.StatusNotModified)
		return nil
	}
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		if _, err := w.Write(m.Content); err == nil {
			if o, ok := h.b.(ManifestObserver); ok {
				o.ManifestServed(r.Context(), rt.name, m)
			}
		}
	}
	return nil
}

// putManifest serves PUT /v2/<name>/manifests/<reference>[?tag=…]: it
// reads the body under MaxManifestBytes, validates it, checks the content
// it refers to exists and stores it.
func (h *handler) putManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	ctx := r.Context()
	ref, err := parseRef(rt)
	if err != nil {
		return err
	}
	tags := []string{ref.Tag}
	if ref.Digest != "" {
		tags = []string{""}
		if ts := r.URL.Query()["tag"]; len(ts) > 0 {
			for _, t := range ts {
				if !ValidTag(t) {
					return apiErr(CodeManifestInvalid, map[string]string{"tag": truncate(t, 200)})
				}
			}
			tags = ts
		}
	}
	body, err := h.readManifestBody(r)
	if err != nil {
		return err
	}
	put, err := parseManifest(body, r.Header.Get("Content-Type"))
	if err != nil {
		return err
	}
	put.Digest, err = manifestDigest(ref, body)
	if err != nil {
		return err
	}
	put.Referrer.Digest = put.Digest
	if err := h.checkReferences(r, rt.name, put); err != nil {
		return err
	}
	for _, tag := range tags {
		put.Tag = tag
		if err := h.b.PutManifest(ctx, rt.name, put); err != nil {
			return fmt.Errorf("put manifest %s: %w", put.Digest, err)
		}
	}
	hdr := w.Header()
	hdr.Set("Location", "/v2/"+rt.name+"/manifests/"+put.Digest.String())
	hdr.Set("Docker-Content-Digest", put.Digest.String())
	if put.Subject != nil {
		hdr.Set("OCI-Subject", put.Subject.Digest.String())
	}
	if ref.Digest != "" && tags[0] != "" {
		for _, t := range tags {
			hdr.Add("OCI-Tag", t)
		}
	}
	hdr.Set("Content-Length", "0")
	w.WriteHeader(http.StatusCreated)
	return nil
}

// readManifestBody reads at most MaxManifestBytes of the body.
func (h *handler) readManifestBody(r *http.Request) ([]byte, error) {
	limit := h.opts.MaxManifestBytes
	tooLarge := apiErr(CodeTooLarge, map[string]int64{"limit": limit})
	if r.ContentLength > limit {
		return nil, tooLarge
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, limit+1))
	if err != nil {
		return nil, &Error{Code: CodeManifestInvalid, Detail: "reading body failed", Err: err}
	}
	if int64(len(body)) > limit {
		return nil, tooLarge
	}
	return body, nil
}

// manifestDigest is the digest the manifest is stored under: the
// reference's digest, checked with its algorithm, or sha256 for a tag.
func manifestDigest(ref Reference, body []byte) (digest.Digest, error) {
	if ref.Digest == "" {
		return digest.SHA256.FromBytes(body), nil
	}
	got := ref.Digest.Algorithm().FromBytes(body)
	if got != ref.Digest {
		return "", apiErr(CodeDigestInvalid, map[string]string{"expected": ref.Digest.String(), "computed": got.String()})
	}
	return got, nil
}

// checkReferences checks that the blobs and manifests put refers to exist.
// The subject need not exist.
func (h *handler) checkReferences(r *http.Request, name string, put ManifestPut) error {
	ctx := r.Context()
	for _, ref := range put.References {
		var err error
		if isManifestMediaType(ref.MediaType) && isIndexMediaType(put.MediaType) {
			_, err = h.b.GetManifest(ctx, name, ref.Digest.String())
			if errors.Is(err, ErrManifestUnknown) {
				err = fmt.Errorf("manifest %s: %w", ref.Digest, ErrManifestBlobUnknown)
			}
		} else {
			_, err = h.b.StatBlob(ctx, name, ref.Digest)
			if errors.Is(err, ErrBlobUnknown) {
				err = fmt.Errorf("blob %s: %w", ref.Digest, ErrManifestBlobUnknown)
			}
		}
		if errors.Is(err, ErrManifestBlobUnknown) {
			return &Error{Code: CodeManifestBlobUnknown, Detail: map[string]string{"digest": ref.Digest.String()}, Err: err}
		}
		if err != nil {
			return fmt.Errorf("check reference %s: %w", ref.Digest, err)
		}
	}
	return nil
}

// deleteManifest serves DELETE /v2/<name>/manifests/<reference>.
func (h *handler) deleteManifest(w http.ResponseWriter, r *http.Request, rt route) error {
	ref, err := parseRef(rt)
	if err != nil {
		return err
	}
	if err := h.b.DeleteManifest(r.Context(), rt.name, ref.String()); err != nil {
		return fmt.Errorf("delete manifest %s: %w", ref, err)
	}
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(http.StatusAccepted)
	return nil
}
