package upstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"time"
)

// Token lifetimes (distribution's token spec: expires_in defaults to 60s).
const (
	defaultTokenLifetime = 60 * time.Second
	maxTokenLifetime     = 24 * time.Hour
	maxTokenBody         = 1 << 20
	maxCachedTokens      = 1024
)

// token is a cached bearer token.
type token struct {
	value   string
	expires time.Time
}

// tokenResponse is the token service's answer. Either field may carry the
// token (access_token is the OAuth 2.0 name).
type tokenResponse struct {
	Token       string `json:"token"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int64  `json:"expires_in"`
}

// pullScope is the token scope a read of repo needs; tokens are cached
// under it.
func pullScope(repo string) string {
	return "repository:" + repo + ":pull"
}

// authorization returns the Authorization header to send up front for a
// request on repo: a cached, unexpired token for its scope, or basic
// credentials once the registry has asked for Basic. Empty means none.
func (c *Client) authorization(repo string) string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if tok, ok := c.tokens[pullScope(repo)]; ok {
		if time.Now().Before(tok.expires) {
			return "Bearer " + tok.value
		}
		delete(c.tokens, pullScope(repo))
	}
	if c.basicSeen && c.creds != nil {
		return c.creds.basicHeader()
	}
	return ""
}

// answer returns the Authorization header that answers ch for a request on
// repo, fetching a token from the realm for a Bearer challenge.
func (c *Client) answer(ctx context.Context, repo string, ch *challenge) (string, error) {
	switch ch.scheme {
	case "basic":
		if c.creds == nil {
			return "", fmt.Errorf("%w: registry asks for basic credentials and none are configured", ErrUnauthorized)
		}
		c.mu.Lock()
		c.basicSeen = true
		c.mu.Unlock()
		return c.creds.basicHeader(), nil
	case "bearer":
		tok, err := c.fetchToken(ctx, repo, ch)
		if err != nil {
			return "", err
		}
		return "Bearer " + tok, nil
	}
	return "", fmt.Errorf("%w: unsupported challenge %q", ErrUnauthorized, ch.scheme)
}

// fetchToken asks the challenge's realm for a token covering the
// challenge's scope (or repo's pull scope when it names none), sending
// basic credentials when configured, and caches it under repo's scope.
func (c *Client) fetchToken(ctx context.Context, repo string, ch *challenge) (string, error) {
	realm, err := url.Parse(ch.params["realm"])
	if err != nil {
		return "", fmt.Errorf("%w: bad token realm %q", ErrUnauthorized, ch.params["realm"])
	}
	if err := c.checkRealm(realm); err != nil {
		return "", fmt.Errorf("%w: token realm %q: %w", ErrUnauthorized, ch.params["realm"], err)
	}
	q := realm.Query()
	if svc := ch.params["service"]; svc != "" {
		q.Set("service", svc)
	}
	scopes := strings.Fields(ch.params["scope"])
	if len(scopes) == 0 {
		scopes = []string{pullScope(repo)}
	}
	for _, s := range scopes {
		q.Add("scope", s)
	}
	realm.RawQuery = q.Encode()

	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, realm.String(), nil)
	if err != nil {
		return "", fmt.Errorf("token request: %w", err)
	}
	if c.creds != nil {
		req.Header.Set("Authorization", c.creds.basicHeader())
	}
	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		return "", fmt.Errorf("token from %s: %w", realm.Host, transportError(err))
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("token from %s: %w", realm.Host, responseError(resp))
	}
	defer resp.Body.Close()
	var tr tokenResponse
	if err := json.NewDecoder(io.LimitReader(resp.Body, maxTokenBody)).Decode(&tr); err != nil {
		return "", fmt.Errorf("token from %s: decode: %w", realm.Host, err)
	}
	value := tr.Token
	if value == "" {
		value = tr.AccessToken
	}
	if value == "" {
		return "", fmt.Errorf("token from %s: %w", realm.Host, errors.New("response has no token"))
	}
	life := defaultTokenLifetime
	if tr.ExpiresIn > 0 {
		life = time.Duration(min(tr.ExpiresIn, int64(maxTokenLifetime/time.Second))) * time.Second
	}
	// Renew a little early so a token does not expire in flight.
	expires := start.Add(life - life/10)
	c.mu.Lock()
	if len(c.tokens) >= maxCachedTokens {
		c.pruneTokensLocked(start)
	}
	c.tokens[pullScope(repo)] = token{value: value, expires: expires}
	c.mu.Unlock()
	c.log.Debug("fetched registry token", "realm_host", realm.Host, "scope", strings.Join(scopes, " "),
		"with_credentials", c.creds != nil, "lifetime", life)
	return value, nil
}

// checkRealm refuses token realms the registry should not be able to send
// us (and our credentials) to: any scheme but https (http only for an
// Insecure client), and internal IP literals (loopback, private, link-local
// such as the cloud metadata service) unless the registry itself is at
// one. Host names are not resolved; network controls cover DNS tricks.
func (c *Client) checkRealm(u *url.URL) error {
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && c.scheme == "http":
	default:
		return fmt.Errorf("scheme %q not allowed for an %s registry", u.Scheme, c.scheme)
	}
	if u.Host == "" {
		return errors.New("no host")
	}
	if u.Host == c.host {
		return nil
	}
	regHost := c.host
	if h, _, err := net.SplitHostPort(c.host); err == nil {
		regHost = h
	}
	if isInternalIP(u.Hostname()) && !isInternalIP(regHost) {
		return fmt.Errorf("host %s is an internal address", u.Hostname())
	}
	return nil
}

// isInternalIP reports whether host is an IP literal of a loopback,
// private, link-local or unspecified address.
func isInternalIP(host string) bool {
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	if err != nil {
		return false
	}
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() ||
		ip.IsLinkLocalMulticast() || ip.IsUnspecified()
}

// pruneTokensLocked drops expired tokens, and all of them if that is not
// enough to bound the cache. c.mu is held.
func (c *Client) pruneTokensLocked(now time.Time) {
	for k, t := range c.tokens {
		if !now.Before(t.expires) {
			delete(c.tokens, k)
		}
	}
	if len(c.tokens) >= maxCachedTokens {
		clear(c.tokens)
	}
}
