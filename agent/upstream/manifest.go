package upstream

import (
	"bytes"
	"context"
	_ "crypto/sha256" // digest algorithms go-digest can verify
	_ "crypto/sha512"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// maxCachedTags bounds the tag cache; beyond it expired entries are
// dropped, and all entries if that is not enough.
const maxCachedTags = 4096

// tagKey names a tag in a repository.
type tagKey struct{ repo, tag string }

// tagEntry is a cached tag resolution.
type tagEntry struct {
	desc    ocispec.Descriptor
	expires time.Time
}

// Resolve returns the descriptor (media type, digest, size) of the manifest
// that tag names in repo, asking the registry with a HEAD request and
// reusing an answer for the client's TagTTL. A digest may be given as tag.
func (c *Client) Resolve(ctx context.Context, repo, tag string) (ocispec.Descriptor, error) {
	if err := checkRepo(repo); err != nil {
		return ocispec.Descriptor{}, err
	}
	want, isDigest := digest.Digest(tag), false
	if err := want.Validate(); err == nil {
		isDigest = true
	} else if !tagPattern.MatchString(tag) {
		return ocispec.Descriptor{}, fmt.Errorf("invalid tag %q", tag)
	}
	key := tagKey{repo, tag}
	now := time.Now()
	c.mu.Lock()
	e, ok := c.tags[key]
	c.mu.Unlock()
	if ok && now.Before(e.expires) {
		return e.desc, nil
	}

	desc, err := c.resolve(ctx, repo, tag)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("resolve %s:%s on %s: %w", repo, tag, c.host, err)
	}
	if isDigest && desc.Digest != want {
		return ocispec.Descriptor{}, fmt.Errorf("resolve %s@%s on %s: %w: registry answered %s",
			repo, tag, c.host, ErrDigestMismatch, desc.Digest)
	}
	c.mu.Lock()
	if len(c.tags) >= maxCachedTags {
		for k, e := range c.tags {
			if !now.Before(e.expires) {
				delete(c.tags, k)
			}
		}
		if len(c.tags) >= maxCachedTags {
			clear(c.tags)
		}
	}
	c.tags[key] = tagEntry{desc: desc, expires: now.Add(c.ttl)}
	c.mu.Unlock()
	c.log.Debug("resolved tag", "repo", repo, "tag", tag, "digest", desc.Digest)
	return desc, nil
}

// resolve asks the registry for tag with HEAD; a registry that sends no
// Docker-Content-Digest on HEAD is asked again with GET and the body hashed.
func (c *Client) resolve(ctx context.Context, repo, tag string) (ocispec.Descriptor, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	resp, err := c.do(ctx, http.MethodHead, repo, "manifests/"+tag, http.Header{"Accept": {manifestAccept}})
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	discard(resp)
	if resp.StatusCode != http.StatusOK {
		return ocispec.Descriptor{}, responseError(resp)
	}
	if h := resp.Header.Get("Docker-Content-Digest"); h != "" {
		d, err := digest.Parse(h)
		if err != nil {
			return ocispec.Descriptor{}, fmt.Errorf("bad Docker-Content-Digest %q: %w", h, err)
		}
		if resp.ContentLength >= 0 && mediaTypeOf(resp.Header, nil) != "" {
			return ocispec.Descriptor{MediaType: mediaTypeOf(resp.Header, nil), Digest: d, Size: resp.ContentLength}, nil
		}
	}
	mt, body, err := c.getManifest(ctx, repo, tag)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	return ocispec.Descriptor{MediaType: mt, Digest: digest.FromBytes(body), Size: int64(len(body))}, nil
}

// Manifest fetches the manifest d from repo and returns its media type and
// body, which is at most MaxManifestSize bytes and hashes to d.
func (c *Client) Manifest(ctx context.Context, repo string, d digest.Digest) (string, []byte, error) {
	if err := checkRepo(repo); err != nil {
		return "", nil, err
	}
	if err := d.Validate(); err != nil {
		return "", nil, fmt.Errorf("manifest %q: %w", d, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	mt, body, err := c.getManifest(ctx, repo, d.String())
	if err != nil {
		return "", nil, fmt.Errorf("manifest %s@%s on %s: %w", repo, d, c.host, err)
	}
	if got := d.Algorithm().FromBytes(body); got != d {
		return "", nil, fmt.Errorf("manifest %s@%s on %s: %w: body hashes to %s", repo, d, c.host, ErrDigestMismatch, got)
	}
	return mt, body, nil
}

// getManifest GETs manifests/<ref>, bounded in size, and checks the body
// against Docker-Content-Digest when the registry sends one.
func (c *Client) getManifest(ctx context.Context, repo, ref string) (string, []byte, error) {
	resp, err := c.do(ctx, http.MethodGet, repo, "manifests/"+ref, http.Header{"Accept": {manifestAccept}})
	if err != nil {
		return "", nil, err
	}
	if resp.StatusCode != http.StatusOK {
		return "", nil, responseError(resp)
	}
	defer resp.Body.Close()
	if resp.ContentLength > MaxManifestSize {
		return "", nil, fmt.Errorf("manifest is %d bytes, more than the %d allowed", resp.ContentLength, MaxManifestSize)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxManifestSize+1))
	if err != nil {
		return "", nil, transportError(err)
	}
	if len(body) > MaxManifestSize {
		return "", nil, fmt.Errorf("manifest is more than the %d bytes allowed", MaxManifestSize)
	}
	if h := resp.Header.Get("Docker-Content-Digest"); h != "" {
		hd, err := digest.Parse(h)
		if err != nil {
			return "", nil, fmt.Errorf("bad Docker-Content-Digest %q: %w", h, err)
		}
		if !hd.Algorithm().Available() {
			return "", nil, fmt.Errorf("unsupported algorithm in Docker-Content-Digest %s", hd)
		}
		if got := hd.Algorithm().FromBytes(body); got != hd {
			return "", nil, fmt.Errorf("%w: Docker-Content-Digest %s, body hashes to %s", ErrDigestMismatch, hd, got)
		}
	}
	mt := mediaTypeOf(resp.Header, body)
	if mt == "" {
		return "", nil, fmt.Errorf("manifest has no media type")
	}
	return mt, body, nil
}

// mediaTypeOf returns a manifest's media type: its Content-Type, or when
// that is missing or generic, the mediaType field of body.
func mediaTypeOf(h http.Header, body []byte) string {
	mt, _, err := mime.ParseMediaType(h.Get("Content-Type"))
	if err == nil && mt != "application/octet-stream" && mt != "text/plain" && mt != "application/json" {
		return mt
	}
	if body == nil {
		return ""
	}
	var m struct {
		MediaType string `json:"mediaType"`
	}
	if json.NewDecoder(bytes.NewReader(body)).Decode(&m) != nil {
		return ""
	}
	return m.MediaType
}
