package upstream_test

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// The account the authenticating registries accept.
const (
	testUser     = "shoal"
	testPassword = "pull-through-secret-7d1e"
	tokenService = "shoal-test-registry"
	tokenIssuer  = "shoal-test-issuer"
	tokenKeyID   = "shoal-test-key"
)

// htpasswdAuth writes an htpasswd file for the test account and returns the
// registry's auth block for it.
func htpasswdAuth(t *testing.T) string {
	t.Helper()
	hash, err := bcrypt.GenerateFromPassword([]byte(testPassword), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "htpasswd")
	if err := os.WriteFile(path, []byte(testUser+":"+string(hash)+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("auth:\n  htpasswd:\n    realm: shoal-test\n    path: %s\n", path)
}

// tokenServer is a minimal token service for distribution's token auth: it
// grants the scopes asked for to the test account and nothing to anyone
// else, signing EdDSA JWTs with a key the registry trusts through a JWKS.
type tokenServer struct {
	*httptest.Server
	key      ed25519.PrivateKey
	requests atomic.Int64 // token requests served
	lifetime int64        // expires_in, seconds
}

// startTokenServer starts a token service and returns it with the
// registry's auth block trusting it.
func startTokenServer(t *testing.T) (*tokenServer, string) {
	t.Helper()
	pub, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ts := &tokenServer{key: key, lifetime: 300}
	ts.Server = httptest.NewServer(http.HandlerFunc(ts.serve))
	t.Cleanup(ts.Close)

	jwks, _ := json.Marshal(map[string]any{"keys": []map[string]string{{
		"kty": "OKP", "crv": "Ed25519", "alg": "EdDSA", "use": "sig", "kid": tokenKeyID,
		"x": base64.RawURLEncoding.EncodeToString(pub),
	}}})
	path := filepath.Join(t.TempDir(), "jwks.json")
	if err := os.WriteFile(path, jwks, 0o600); err != nil {
		t.Fatal(err)
	}
	// The realm names the service "localhost": go-containerregistry, which
	// seeds the registry, refuses loopback IP literals as realms.
	realm := strings.Replace(ts.URL, "127.0.0.1", "localhost", 1) + "/token"
	auth := fmt.Sprintf("auth:\n  token:\n    realm: %s\n    service: %s\n    issuer: %s\n    jwks: %s\n",
		realm, tokenService, tokenIssuer, path)
	return ts, auth
}

// serve answers GET /token?service=…&scope=… as distribution's token spec
// describes: wrong credentials get a 401; anonymous callers get a token with
// no access, which the registry then refuses.
func (ts *tokenServer) serve(w http.ResponseWriter, r *http.Request) {
	ts.requests.Add(1)
	if r.URL.Path != "/token" || r.URL.Query().Get("service") != tokenService {
		http.Error(w, "bad token request", http.StatusBadRequest)
		return
	}
	user, pass, hasAuth := r.BasicAuth()
	if hasAuth && (user != testUser || pass != testPassword) {
		http.Error(w, `{"details":"incorrect username or password"}`, http.StatusUnauthorized)
		return
	}
	access := []map[string]any{}
	if hasAuth {
		for _, scope := range r.URL.Query()["scope"] {
			// repository:NAME:ACTIONS; NAME may hold a port-free path only.
			parts := strings.Split(scope, ":")
			if len(parts) != 3 {
				continue
			}
			access = append(access, map[string]any{
				"type": parts[0], "name": parts[1], "actions": strings.Split(parts[2], ","),
			})
		}
	}
	now := time.Now()
	claims := map[string]any{
		"iss": tokenIssuer, "sub": user, "aud": tokenService,
		"exp": now.Add(time.Hour).Unix(), "nbf": now.Add(-time.Minute).Unix(), "iat": now.Unix(),
		"jti": fmt.Sprint(now.UnixNano()), "access": access,
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]any{
		"token": ts.sign(claims), "expires_in": ts.lifetime, "issued_at": now.UTC().Format(time.RFC3339),
	})
}

// sign returns claims as a compact EdDSA JWS.
func (ts *tokenServer) sign(claims map[string]any) string {
	header, _ := json.Marshal(map[string]string{"typ": "JWT", "alg": "EdDSA", "kid": tokenKeyID})
	payload, _ := json.Marshal(claims)
	input := base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(payload)
	sig := ed25519.Sign(ts.key, []byte(input))
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// writeDockerConfig writes a docker config.json with one "auths" entry and
// returns its path.
func writeDockerConfig(t *testing.T, key string, entry map[string]string) string {
	t.Helper()
	data, err := json.Marshal(map[string]any{"auths": map[string]any{key: entry}})
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// basicEntry is an "auths" entry in the "auth" (base64 user:password) form.
func basicEntry(user, pass string) map[string]string {
	return map[string]string{"auth": base64.StdEncoding.EncodeToString([]byte(user + ":" + pass))}
}
