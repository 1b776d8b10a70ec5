package upstream

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/opencontainers/go-digest"
)

func TestNames(t *testing.T) {
	t.Parallel()
	hosts := []struct{ ns, want string }{
		{"docker.io", "registry-1.docker.io"},
		{"ghcr.io", "ghcr.io"},
		{"127.0.0.1:5001", "127.0.0.1:5001"},
		{"registry-1.docker.io", "registry-1.docker.io"},
	}
	for _, tc := range hosts {
		if got := CanonicalHost(tc.ns); got != tc.want {
			t.Errorf("CanonicalHost(%q) = %q, want %q", tc.ns, got, tc.want)
		}
	}
	repos := []struct{ host, repo, want string }{
		{"registry-1.docker.io", "alpine", "library/alpine"},
		{"docker.io", "alpine", "library/alpine"},
		{"registry-1.docker.io", "library/alpine", "library/alpine"},
		{"registry-1.docker.io", "grafana/grafana", "grafana/grafana"},
		{"ghcr.io", "alpine", "alpine"},
		{"127.0.0.1:5001", "app", "app"},
	}
	for _, tc := range repos {
		if got := NormalizeRepo(tc.host, tc.repo); got != tc.want {
			t.Errorf("NormalizeRepo(%q, %q) = %q, want %q", tc.host, tc.repo, got, tc.want)
		}
	}
}

func TestParseChallenges(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   string
		want []challenge
	}{
		{`Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/alpine:pull"`,
			[]challenge{{"bearer", map[string]string{"realm": "https://auth.docker.io/token", "service": "registry.docker.io", "scope": "repository:library/alpine:pull"}}}},
		{`Basic realm="Registry Realm"`, []challenge{{"basic", map[string]string{"realm": "Registry Realm"}}}},
		{`basic realm=simple, Bearer realm="https://t/x", service=svc`,
			[]challenge{{"basic", map[string]string{"realm": "simple"}}, {"bearer", map[string]string{"realm": "https://t/x", "service": "svc"}}}},
		{`Bearer realm="a\"b",scope="repository:a:pull repository:b:pull"`,
			[]challenge{{"bearer", map[string]string{"realm": `a"b`, "scope": "repository:a:pull repository:b:pull"}}}},
		{``, nil},
		{`Bearer`, []challenge{{"bearer", map[string]string{}}}},
	}
	for _, tc := range tests {
		if got := parseChallenges(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("parseChallenges(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
	if ch := pickChallenge([]string{`Basic realm="x"`, `Bearer realm="https://t"`}); ch == nil || ch.scheme != "bearer" {
		t.Errorf("pickChallenge prefers %v, want bearer", ch)
	}
	if ch := pickChallenge([]string{`Negotiate abc`}); ch != nil {
		t.Errorf("pickChallenge(Negotiate) = %v, want nil", ch)
	}
}

func TestDockerConfig(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, json, host string
		want             *credentials
		wantErr          bool
	}{
		{"auth field", `{"auths":{"ghcr.io":{"auth":"dTpwOng="}}}`, "ghcr.io", &credentials{"u", "p:x"}, false},
		{"username field", `{"auths":{"ghcr.io":{"username":"u","password":"p"}}}`, "ghcr.io", &credentials{"u", "p"}, false},
		{"docker hub key", `{"auths":{"https://index.docker.io/v1/":{"auth":"dTpw"}}}`, "registry-1.docker.io", &credentials{"u", "p"}, false},
		{"url key with port", `{"auths":{"http://127.0.0.1:5001/v2/":{"auth":"dTpw"}}}`, "127.0.0.1:5001", &credentials{"u", "p"}, false},
		{"other host", `{"auths":{"quay.io":{"auth":"dTpw"}}}`, "ghcr.io", nil, false},
		{"no auths", `{"credsStore":"desktop"}`, "ghcr.io", nil, false},
		{"bad base64", `{"auths":{"ghcr.io":{"auth":"%%%"}}}`, "ghcr.io", nil, true},
		{"no colon", `{"auths":{"ghcr.io":{"auth":"dXNlcg=="}}}`, "ghcr.io", nil, true},
		{"identity token", `{"auths":{"ghcr.io":{"identitytoken":"t"}}}`, "ghcr.io", nil, true},
		{"not json", `{"auths":`, "ghcr.io", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			path := filepath.Join(t.TempDir(), "config.json")
			if err := os.WriteFile(path, []byte(tc.json), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := loadDockerConfig(path, tc.host)
			if (err != nil) != tc.wantErr || !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("loadDockerConfig = %v, %v; want %v, error %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
	if _, err := loadDockerConfig(filepath.Join(t.TempDir(), "missing.json"), "ghcr.io"); err == nil {
		t.Error("missing config file: no error")
	}
	c := &credentials{"user", "hunter2"}
	for _, s := range []string{fmt.Sprint(c), fmt.Sprintf("%v %+v %#v %s", c, c, c, c), slog.Any("c", c).Value.Resolve().String()} {
		if strings.Contains(s, "hunter2") || strings.Contains(s, "user") {
			t.Errorf("credentials print as %q", s)
		}
	}
}

func TestParseContentRange(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in           string
		start, total int64
		ok           bool
	}{
		{"bytes 0-99/100", 0, 100, true},
		{"bytes 10-99/100", 10, 100, true},
		{"bytes 10-99/*", 10, -1, true},
		{"bytes 10-99/50", 0, 0, false},
		{"bytes 10-5/100", 0, 0, false},
		{"items 0-1/2", 0, 0, false},
		{"bytes 0-99", 0, 0, false},
		{"", 0, 0, false},
	}
	for _, tc := range tests {
		start, total, err := parseContentRange(tc.in)
		if (err == nil) != tc.ok || start != tc.start || total != tc.total {
			t.Errorf("parseContentRange(%q) = %d, %d, %v", tc.in, start, total, err)
		}
	}
}

func TestResponseError(t *testing.T) {
	t.Parallel()
	tests := []struct {
		status int
		body   string
		want   error
		text   string
	}{
		{404, `{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}`, ErrNotFound, "MANIFEST_UNKNOWN: manifest unknown"},
		{400, `{"errors":[{"code":"BLOB_UNKNOWN","message":"blob unknown"}]}`, ErrNotFound, "BLOB_UNKNOWN"},
		{404, `not json`, ErrNotFound, "404"},
		{401, `{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}`, ErrUnauthorized, "authentication required"},
		{403, `{"errors":[{"code":"DENIED","message":"requested access to the resource is denied"}]}`, ErrUnauthorized, "DENIED"},
		{429, `{"errors":[{"code":"TOOMANYREQUESTS","message":"rate limit"}]}`, ErrUnavailable, "rate limit"},
		{503, ``, ErrUnavailable, "503"},
		{400, `{"errors":[{"code":"NAME_INVALID"}]}`, nil, "NAME_INVALID"},
	}
	for _, tc := range tests {
		resp := &http.Response{
			StatusCode: tc.status, Status: fmt.Sprintf("%d %s", tc.status, http.StatusText(tc.status)),
			Body: io.NopCloser(strings.NewReader(tc.body)), Request: &http.Request{Method: http.MethodGet},
		}
		err := responseError(resp)
		for _, s := range []error{ErrNotFound, ErrUnauthorized, ErrUnavailable} {
			if errors.Is(err, s) != (s == tc.want) {
				t.Errorf("%d %s: %v; errors.Is(%v) = %v", tc.status, tc.body, err, s, !(s == tc.want))
			}
		}
		if !strings.Contains(err.Error(), tc.text) {
			t.Errorf("%d: %q does not contain %q", tc.status, err, tc.text)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	for _, cfg := range []Config{{}, {Host: "https://ghcr.io"}, {Host: "ghcr.io/v2"}, {Host: "ghcr.io", Timeout: -1}} {
		if _, err := New(cfg); err == nil {
			t.Errorf("New(%+v): no error", cfg)
		}
	}
	if _, err := New(Config{Host: "ghcr.io", DockerConfig: filepath.Join(t.TempDir(), "none.json")}); err == nil {
		t.Error("New with a missing docker config: no error")
	}
}

// TestPlainHTTPRealm checks that an https registry cannot send the client
// to a plain-http token realm: the token service is never asked.
func TestPlainHTTPRealm(t *testing.T) {
	t.Parallel()
	var asked atomic.Bool
	tokens := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Store(true)
		io.WriteString(w, `{"token":"t"}`)
	}))
	t.Cleanup(tokens.Close)
	reg := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("WWW-Authenticate", `Bearer realm="`+tokens.URL+`/token",service="s"`)
		w.WriteHeader(http.StatusUnauthorized)
	}))
	t.Cleanup(reg.Close)
	tr := reg.Client().Transport.(*http.Transport)
	t.Cleanup(tr.CloseIdleConnections)
	host := strings.TrimPrefix(reg.URL, "https://")
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, []byte(`{"auths":{"`+host+`":{"auth":"dTpw"}}}`), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := New(Config{Host: host, DockerConfig: path, Transport: tr})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.StatBlob(t.Context(), "team/app", digest.FromString("absent"))
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("StatBlob = %v, want ErrUnauthorized", err)
	}
	if asked.Load() {
		t.Fatal("the plain-http token realm was asked")
	}
}

func TestCheckRealm(t *testing.T) {
	t.Parallel()
	tests := []struct {
		host     string
		insecure bool
		realm    string
		ok       bool
	}{
		{"registry-1.docker.io", false, "https://auth.docker.io/token", true},
		{"registry-1.docker.io", false, "http://auth.docker.io/token", false},
		{"registry-1.docker.io", false, "ftp://auth.docker.io/token", false},
		{"registry-1.docker.io", false, "https://169.254.169.254/latest", false},
		{"registry-1.docker.io", false, "https://10.0.0.1/token", false},
		{"registry-1.docker.io", false, "https://127.0.0.1:8080/token", false},
		{"registry-1.docker.io", false, "https://[::1]/token", false},
		{"registry-1.docker.io", false, "https:///token", false},
		{"10.0.0.5:5000", false, "https://10.0.0.5:5000/token", true},
		{"10.0.0.5:5000", false, "https://10.0.0.6/token", true},
		{"127.0.0.1:5001", true, "http://127.0.0.1:5002/token", true},
		{"127.0.0.1:5001", true, "http://localhost:5002/token", true},
	}
	for _, tc := range tests {
		c, err := New(Config{Host: tc.host, Insecure: tc.insecure})
		if err != nil {
			t.Fatal(err)
		}
		u, err := url.Parse(tc.realm)
		if err != nil {
			t.Fatal(err)
		}
		if err := c.checkRealm(u); (err == nil) != tc.ok {
			t.Errorf("registry %s, realm %s: %v, want ok=%v", tc.host, tc.realm, err, tc.ok)
		}
	}
}
