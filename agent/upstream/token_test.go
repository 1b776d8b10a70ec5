package upstream

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// lockedBuffer is a bytes.Buffer safe for a logger and a test to share.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestTokenLifetime checks the token response's forms (token or
// access_token, expires_in given or defaulted to 60s), that a token is
// reused until it expires and then fetched again, and that neither the
// password nor a token reaches the debug log.
func TestTokenLifetime(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, field string
		expiresIn   int
		wantLife    time.Duration
	}{
		{"token with expires_in", "token", 3600, time.Hour},
		{"access_token, default lifetime", "access_token", 0, 60 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var issued atomic.Int64
			tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if u, p, ok := r.BasicAuth(); !ok || u != "user" || p != "s3cret-pass" {
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				if got := r.URL.Query()["scope"]; len(got) != 1 || got[0] != "repository:team/app:pull" {
					t.Errorf("scope = %q", got)
				}
				n := issued.Add(1)
				body := fmt.Sprintf(`{%q: "secret-token-%d"`, tc.field, n)
				if tc.expiresIn > 0 {
					body += fmt.Sprintf(`, "expires_in": %d`, tc.expiresIn)
				}
				io.WriteString(w, body+"}")
			}))
			t.Cleanup(tokens.Close)
			reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if want := fmt.Sprintf("Bearer secret-token-%d", issued.Load()); r.Header.Get("Authorization") != want {
					w.Header().Set("WWW-Authenticate", `Bearer realm="`+tokens.URL+`/token",service="reg"`)
					w.WriteHeader(http.StatusUnauthorized)
					return
				}
				w.Header().Set("Content-Length", "42")
			}))
			t.Cleanup(reg.Close)
			tr := http.DefaultTransport.(*http.Transport).Clone()
			t.Cleanup(tr.CloseIdleConnections)
			host := strings.TrimPrefix(reg.URL, "http://")
			path := filepath.Join(t.TempDir(), "config.json")
			if err := os.WriteFile(path, []byte(`{"auths":{"`+host+`":{"username":"user","password":"s3cret-pass"}}}`), 0o600); err != nil {
				t.Fatal(err)
			}
			var logs lockedBuffer
			log := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
			c, err := New(Config{Host: host, Insecure: true, DockerConfig: path, Transport: tr, Logger: log})
			if err != nil {
				t.Fatal(err)
			}
			stat := func() {
				t.Helper()
				if n, err := c.StatBlob(t.Context(), "team/app", digest.FromString("x")); err != nil || n != 42 {
					t.Fatalf("StatBlob = %d, %v", n, err)
				}
			}
			start := time.Now()
			stat()
			stat()
			if n := issued.Load(); n != 1 {
				t.Fatalf("%d tokens issued for two requests, want 1", n)
			}
			c.mu.Lock()
			tok := c.tokens[pullScope("team/app")]
			c.mu.Unlock()
			if life := tok.expires.Sub(start); life < tc.wantLife*8/10 || life > tc.wantLife {
				t.Fatalf("token cached for %v, want about %v", life, tc.wantLife)
			}
			// Once expired, the next request fetches a new token.
			c.mu.Lock()
			c.tokens[pullScope("team/app")] = token{value: tok.value, expires: time.Now().Add(-time.Second)}
			c.mu.Unlock()
			stat()
			if n := issued.Load(); n != 2 {
				t.Fatalf("%d tokens issued after expiry, want 2", n)
			}
			if s := logs.String(); !strings.Contains(s, "fetched registry token") ||
				strings.Contains(s, "s3cret-pass") || strings.Contains(s, "secret-token") {
				t.Fatalf("debug log:\n%s", s)
			}
		})
	}
}

// TestTokenRefused checks that a token service refusing the credentials
// gives ErrUnauthorized, and a failing one ErrUnavailable.
func TestTokenRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		status int
		want   error
	}{{http.StatusUnauthorized, ErrUnauthorized}, {http.StatusServiceUnavailable, ErrUnavailable}} {
		tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.WriteHeader(tc.status)
		}))
		reg := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="`+tokens.URL+`/token",service="reg"`)
			w.WriteHeader(http.StatusUnauthorized)
		}))
		tr := http.DefaultTransport.(*http.Transport).Clone()
		c, err := New(Config{Host: strings.TrimPrefix(reg.URL, "http://"), Insecure: true, Transport: tr})
		if err != nil {
			t.Fatal(err)
		}
		_, err = c.Resolve(t.Context(), "team/app", "v1")
		if !errors.Is(err, tc.want) {
			t.Errorf("token service %d: %v, want %v", tc.status, err, tc.want)
		}
		tr.CloseIdleConnections()
		reg.Close()
		tokens.Close()
	}
}
