package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"strings"
	"time"

	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/shoal-dev/shoal/agent/config"
	"github.com/shoal-dev/shoal/agent/meta"
	"github.com/shoal-dev/shoal/agent/upstream"
	"github.com/shoal-dev/shoal/cas"
	"github.com/shoal-dev/shoal/registryapi"
)

// upstreams are the registries the agent may pull through, by name.
type upstreams map[string]*upstream.Client

func newUpstreams(cfg config.MirrorConfig, log *slog.Logger) (upstreams, error) {
	out := upstreams{}
	for _, entry := range cfg.Upstreams {
		name, base, err := config.ParseUpstream(entry)
		if err != nil {
			return nil, err
		}
		host := base.Host
		if !strings.Contains(entry, "=") {
			host = upstream.CanonicalHost(name)
		}
		c, err := upstream.New(upstream.Config{
			Host: host, Insecure: base.Scheme == "http", DockerConfig: cfg.Credentials,
			TagTTL: time.Duration(cfg.TagTTL), Logger: log.With("upstream", name),
		})
		if err != nil {
			return nil, fmt.Errorf("upstream %s: %w", name, err)
		}
		out[name] = c
	}
	return out, nil
}

// registryOrigins builds the upstream clients of registry:// origins: the
// read-only fallback after the object stores miss.
func registryOrigins(urls []string, cfg config.MirrorConfig, log *slog.Logger) ([]mirrorRoute, error) {
	var out []mirrorRoute
	for _, raw := range urls {
		u, err := url.Parse(raw)
		if err != nil || u.Scheme != "registry" {
			continue
		}
		c, err := upstream.New(upstream.Config{
			Host: upstream.CanonicalHost(u.Host), Insecure: u.Query().Get("insecure") == "true",
			DockerConfig: cfg.Credentials, TagTTL: time.Duration(cfg.TagTTL), Logger: log.With("upstream", u.Host),
		})
		if err != nil {
			return nil, fmt.Errorf("origin registry://%s: %w", u.Host, err)
		}
		out = append(out, mirrorRoute{name: u.Host, client: c})
	}
	return out, nil
}

// fallbacks returns the registry origins as routes for repo.
func (r *registry) fallbacks(repo string) []mirrorRoute {
	out := make([]mirrorRoute, len(r.fallback))
	for i, m := range r.fallback {
		m.repo = upstream.NormalizeRepo(m.name, repo)
		out[i] = m
	}
	return out
}

// mirrorRoute is a request for an upstream's repository.
type mirrorRoute struct {
	name   string // the upstream's configured name
	client *upstream.Client
	repo   string // the repository at the upstream
}

// key names the route's repository in local metadata.
func (m mirrorRoute) key() string { return m.name + "/" + m.repo }

// route tells whether a request is for an upstream: containerd's ?ns=NAME,
// or a repository whose first component is an upstream's name.
func (u upstreams) route(ctx context.Context, repo string) (mirrorRoute, bool, error) {
	if ns := registryapi.Namespace(ctx); ns != "" {
		c, ok := u[ns]
		if !ok {
			return mirrorRoute{}, false, fmt.Errorf("%w: upstream %q is not in mirror.upstreams", registryapi.ErrDenied, ns)
		}
		return mirrorRoute{name: ns, client: c, repo: upstream.NormalizeRepo(ns, repo)}, true, nil
	}
	if first, rest, ok := strings.Cut(repo, "/"); ok {
		if c, ok := u[first]; ok {
			return mirrorRoute{name: first, client: c, repo: upstream.NormalizeRepo(first, rest)}, true, nil
		}
	}
	return mirrorRoute{}, false, nil
}

// errReadOnly refuses writes to a mirrored repository.
func errReadOnly(m mirrorRoute) error {
	return fmt.Errorf("%w: %s is a read-only mirror of upstream %s", registryapi.ErrDenied, m.repo, m.name)
}

// upstreamErr maps upstream client errors to the API's.
func upstreamErr(err error, notFound error) error {
	switch {
	case errors.Is(err, upstream.ErrNotFound):
		return fmt.Errorf("%w: %v", notFound, err)
	case errors.Is(err, upstream.ErrUnavailable):
		return fmt.Errorf("%w: %v", registryapi.ErrUnavailable, err)
	case errors.Is(err, upstream.ErrUnauthorized):
		return fmt.Errorf("%w: %v", registryapi.ErrDenied, err)
	}
	return apiErr(err, notFound)
}

// upstreamSource reads blobs from an upstream registry.
type upstreamSource struct{ m mirrorRoute }

func (s upstreamSource) Stat(ctx context.Context, d digest.Digest) (int64, error) {
	return s.m.client.StatBlob(ctx, s.m.repo, d)
}

func (s upstreamSource) Open(ctx context.Context, d digest.Digest) (io.ReadCloser, error) {
	rc, _, err := s.m.client.Blob(ctx, s.m.repo, d, 0)
	return rc, err
}

func (r *registry) mirrorStatBlob(ctx context.Context, m mirrorRoute, d digest.Digest) (ocispec.Descriptor, error) {
	if info, err := r.cas.Stat(ctx, d); err == nil {
		return ocispec.Descriptor{MediaType: "application/octet-stream", Digest: d, Size: info.Size}, nil
	}
	size, err := m.client.StatBlob(ctx, m.repo, d)
	if err != nil {
		return ocispec.Descriptor{}, upstreamErr(err, registryapi.ErrBlobUnknown)
	}
	return ocispec.Descriptor{MediaType: "application/octet-stream", Digest: d, Size: size}, nil
}

func (r *registry) mirrorGetBlob(ctx context.Context, m mirrorRoute, d digest.Digest) (registryapi.Blob, error) {
	if f, info, err := r.cas.Open(ctx, d); err == nil {
		return registryapi.Blob{Size: info.Size, Content: f}, nil
	}
	fl, err := newRefollower(ctx, d, func(ctx context.Context) (*cas.Follower, error) {
		return r.fetch.Follow(ctx, d, upstreamSource{m})
	})
	if err != nil {
		return registryapi.Blob{}, upstreamErr(err, registryapi.ErrBlobUnknown)
	}
	return registryapi.Blob{Size: fl.Size(), Content: fl, Verified: fl.Verified}, nil
}

// mirrorManifest resolves a tag upstream (cached for mirror.tag_ttl; the
// last answer is served when the upstream is down) and serves the manifest
// from the cache, fetching it once.
func (r *registry) mirrorManifest(ctx context.Context, m mirrorRoute, ref string) (registryapi.Manifest, error) {
	d, err := digest.Parse(ref)
	if err != nil {
		desc, rerr := m.client.Resolve(ctx, m.repo, ref)
		switch {
		case rerr == nil:
			d = desc.Digest
			r.rememberTag(m.key(), ref, d)
		case errors.Is(rerr, upstream.ErrUnavailable):
			_ = r.meta.View(func(tx *meta.Tx) error { d, _ = tx.Tag(m.key(), ref); return nil })
			if d == "" {
				return registryapi.Manifest{}, upstreamErr(rerr, registryapi.ErrManifestUnknown)
			}
			r.log.Warn("upstream unreachable, serving last known tag", "upstream", m.name, "repo", m.repo, "tag", ref, "digest", d)
		default:
			return registryapi.Manifest{}, upstreamErr(rerr, registryapi.ErrManifestUnknown)
		}
	}
	var rec meta.ManifestRecord
	var known bool
	_ = r.meta.View(func(tx *meta.Tx) error { rec, known = tx.Manifest(m.key(), d); return nil })
	if f, info, err := r.cas.Open(ctx, d); err == nil && info.Size <= maxManifestBytes {
		body, rerr := io.ReadAll(io.LimitReader(f, maxManifestBytes))
		f.Close()
		if rerr == nil {
			mt := rec.MediaType
			if !known {
				mt = sniffMediaType(body)
			}
			return registryapi.Manifest{Digest: d, MediaType: mt, Content: body}, nil
		}
	}
	mt, body, err := m.client.Manifest(ctx, m.repo, d)
	if err != nil {
		return registryapi.Manifest{}, upstreamErr(err, registryapi.ErrManifestUnknown)
	}
	if _, err := r.storeBytes(ctx, d, mt, body, cas.StateReplicated); err != nil {
		r.log.Warn("cache upstream manifest", "digest", d, "err", err)
	}
	_ = r.meta.Update(func(tx *meta.Tx) error {
		return tx.PutManifest(m.key(), meta.ManifestRecord{Digest: d, MediaType: mt, Size: int64(len(body))})
	})
	return registryapi.Manifest{Digest: d, MediaType: mt, Content: body}, nil
}
