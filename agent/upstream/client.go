// Package upstream is a small read-only client for an upstream OCI
// registry, used by the agent in pull-through (mirror) mode: when a request
// names an upstream (containerd's ?ns=docker.io) or a registry:// origin is
// configured.
//
// It resolves tags (HEAD, with a short TTL cache), fetches manifests bounded
// in size and verified against their digest, and streams blobs, following
// the redirects registries use to send blobs to their storage. It speaks the
// Docker/OCI token flow: on a 401 with a Bearer challenge it asks the realm
// for a token (anonymously, or with the basic credentials a docker-style
// config.json holds for the host), caches it per scope until it expires and
// retries once; Basic challenges are answered with the same credentials.
//
// Errors wrap one of ErrNotFound, ErrUnauthorized, ErrUnavailable or
// ErrDigestMismatch. Credentials and tokens are never logged.
package upstream

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Defaults applied by New to zero fields of Config.
const (
	// DefaultTagTTL is how long a tag → digest resolution is reused.
	DefaultTagTTL = 30 * time.Second
	// DefaultTimeout bounds connecting and waiting for response headers, and
	// the whole of a small request (tag resolution, manifest, stat).
	DefaultTimeout = 30 * time.Second
	// MaxManifestSize is the largest manifest body Manifest accepts.
	MaxManifestSize = 4 << 20
)

// dockerHubHost is where the docker.io namespace is served.
const dockerHubHost = "registry-1.docker.io"

// Config configures a Client. Zero durations take the defaults above.
type Config struct {
	// Host is the registry's host[:port], e.g. "registry-1.docker.io",
	// "ghcr.io" or "127.0.0.1:5001". Required.
	Host string
	// Insecure selects plain http instead of https (tests, local registries).
	Insecure bool
	// DockerConfig is the path of a docker-style config.json whose "auths"
	// holds credentials for Host ("auth": base64 user:pass, or
	// "username"/"password"). Empty means anonymous.
	DockerConfig string
	// TagTTL is how long a tag → digest resolution is cached (default 30s).
	TagTTL time.Duration
	// Timeout bounds dialling and waiting for headers on every request, and
	// the whole of small requests (default 30s). Blob bodies are bounded by
	// the caller's context only.
	Timeout time.Duration
	// Logger receives debug logs; nil discards them.
	Logger *slog.Logger
	// Transport, if set, replaces the default HTTP transport (tests).
	Transport http.RoundTripper
}

// Validate reports whether the configuration is usable.
func (c Config) Validate() error {
	if c.Host == "" {
		return errors.New("upstream: host is required")
	}
	if strings.ContainsAny(c.Host, "/?#@ ") {
		return fmt.Errorf("upstream: host %q must be host[:port] only", c.Host)
	}
	if c.TagTTL < 0 || c.Timeout < 0 {
		return errors.New("upstream: durations must not be negative")
	}
	return nil
}

// Client reads from one upstream registry. It is safe for concurrent use.
type Client struct {
	host    string
	scheme  string
	ttl     time.Duration
	timeout time.Duration
	log     *slog.Logger
	http    *http.Client
	creds   *credentials // nil: anonymous

	mu        sync.Mutex
	tags      map[tagKey]tagEntry // tag resolutions, until their TTL
	tokens    map[string]token    // pull scope → bearer token
	basicSeen bool                // the registry asked for Basic auth
}

// New returns a client for cfg.Host. It reads cfg.DockerConfig, if any, but
// makes no request.
func New(cfg Config) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.TagTTL == 0 {
		cfg.TagTTL = DefaultTagTTL
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	c := &Client{
		host:    cfg.Host,
		scheme:  "https",
		ttl:     cfg.TagTTL,
		timeout: cfg.Timeout,
		log:     cfg.Logger.With("upstream", cfg.Host),
		tags:    make(map[tagKey]tagEntry),
		tokens:  make(map[string]token),
	}
	if cfg.Insecure {
		c.scheme = "http"
	}
	if cfg.DockerConfig != "" {
		creds, err := loadDockerConfig(cfg.DockerConfig, cfg.Host)
		if err != nil {
			return nil, err
		}
		c.creds = creds
	}
	rt := cfg.Transport
	if rt == nil {
		rt = defaultTransport(cfg.Timeout)
	}
	c.http = &http.Client{Transport: rt, CheckRedirect: checkRedirect}
	return c, nil
}

// defaultTransport is http.DefaultTransport with dial and header timeouts.
func defaultTransport(timeout time.Duration) *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = (&net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second}).DialContext
	t.TLSHandshakeTimeout = timeout
	t.ResponseHeaderTimeout = timeout
	return t
}

// checkRedirect bounds redirect chains. The standard client already drops
// Authorization when a redirect leaves the registry's domain, so storage
// backends never see registry credentials.
func checkRedirect(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return errors.New("stopped after 5 redirects")
	}
	return nil
}

// CanonicalHost maps a registry namespace as containerd names it to the
// host that serves it: "docker.io" → "registry-1.docker.io"; any other
// namespace is returned unchanged.
func CanonicalHost(ns string) string {
	if ns == "docker.io" {
		return dockerHubHost
	}
	return ns
}

// NormalizeRepo applies Docker Hub's naming rule: on docker.io a repository
// without a slash lives under "library/" ("alpine" → "library/alpine").
// Repositories on other hosts are returned unchanged.
func NormalizeRepo(host, repo string) string {
	if isDockerHub(host) && repo != "" && !strings.Contains(repo, "/") {
		return "library/" + repo
	}
	return repo
}

// isDockerHub reports whether host is one of Docker Hub's names.
func isDockerHub(host string) bool {
	switch host {
	case "docker.io", "index.docker.io", dockerHubHost:
		return true
	}
	return false
}

// CloseIdleConnections closes the client's idle connections to the
// registry and its storage.
func (c *Client) CloseIdleConnections() {
	c.http.CloseIdleConnections()
}
