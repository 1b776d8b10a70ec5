package upstream

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"strings"
)

// credentials are a user name and password for one registry. They print
// and log as "[redacted]" so they cannot leak through a log line.
type credentials struct {
	username, password string
}

// basicHeader is the Authorization header value for HTTP Basic auth.
func (c *credentials) basicHeader() string {
	return "Basic " + base64.StdEncoding.EncodeToString([]byte(c.username+":"+c.password))
}

// String hides the credentials.
func (c *credentials) String() string { return "[redacted]" }

// GoString hides the credentials from %#v.
func (c *credentials) GoString() string { return "[redacted]" }

// LogValue hides the credentials from slog.
func (c *credentials) LogValue() slog.Value { return slog.StringValue("[redacted]") }

// dockerConfig is the part of docker's config.json this package reads.
type dockerConfig struct {
	Auths map[string]dockerAuth `json:"auths"`
}

// dockerAuth is one "auths" entry: "auth" is base64("user:password"), or
// the user name and password are given separately.
type dockerAuth struct {
	Auth          string `json:"auth"`
	Username      string `json:"username"`
	Password      string `json:"password"`
	IdentityToken string `json:"identitytoken"`
}

// loadDockerConfig reads the credentials for host from the docker-style
// config.json at path. It returns nil credentials when the file has no
// entry for host.
func loadDockerConfig(path, host string) (*credentials, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("upstream: docker config: %w", err)
	}
	var cfg dockerConfig
	if err := json.Unmarshal(data, &cfg); err != nil {
		// The error text could quote the file's content: keep it out.
		return nil, fmt.Errorf("upstream: docker config %s is not valid JSON", path)
	}
	entry, ok := findAuth(cfg.Auths, host)
	if !ok {
		return nil, nil
	}
	return entry.credentials(host)
}

// findAuth returns the "auths" entry for host. Keys may carry a scheme and a
// path ("https://index.docker.io/v1/"), as docker login writes them; Docker
// Hub is found under any of its names.
func findAuth(auths map[string]dockerAuth, host string) (dockerAuth, bool) {
	for key, entry := range auths {
		h := authKeyHost(key)
		if h == host || (isDockerHub(host) && isDockerHub(h)) {
			return entry, true
		}
	}
	return dockerAuth{}, false
}

// authKeyHost reduces an "auths" key to host[:port].
func authKeyHost(key string) string {
	key = strings.TrimPrefix(key, "https://")
	key = strings.TrimPrefix(key, "http://")
	host, _, _ := strings.Cut(key, "/")
	return host
}

// credentials decodes the entry.
func (a dockerAuth) credentials(host string) (*credentials, error) {
	if a.Auth != "" {
		raw, err := base64.StdEncoding.DecodeString(a.Auth)
		if err != nil {
			raw, err = base64.RawStdEncoding.DecodeString(strings.TrimRight(a.Auth, "="))
		}
		if err != nil {
			return nil, fmt.Errorf("upstream: docker config entry for %s: auth is not base64", host)
		}
		user, pass, ok := strings.Cut(string(raw), ":")
		if !ok || user == "" {
			return nil, fmt.Errorf("upstream: docker config entry for %s: auth is not user:password", host)
		}
		return &credentials{username: user, password: pass}, nil
	}
	if a.Username != "" {
		return &credentials{username: a.Username, password: a.Password}, nil
	}
	if a.IdentityToken != "" {
		return nil, fmt.Errorf("upstream: docker config entry for %s: identity tokens are not supported", host)
	}
	return nil, nil
}
