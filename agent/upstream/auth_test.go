package upstream_test

import (
	"bytes"
	"errors"
	"net/http"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"

	"github.com/shoal-dev/shoal/agent/upstream"
	"github.com/shoal-dev/shoal/agent/upstream/registrytest"
)

// TestBasicAuth runs against a registry with htpasswd auth, which answers
// with a Basic challenge: anonymous and wrong credentials are refused,
// credentials from a docker config succeed and are then sent up front.
func TestBasicAuth(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, htpasswdAuth(t))
	p := newPusher(t, reg.Addr(), &authn.Basic{Username: testUser, Password: testPassword})
	img := p.image(t, "private/app:v1", 1)
	imgDigest, _ := img.Digest()
	layer, layerDigest := layerBytes(t, img, 0)

	t.Run("anonymous", func(t *testing.T) {
		t.Parallel()
		c := newClient(t, upstream.Config{Host: reg.Addr(), Insecure: true})
		if _, err := c.Resolve(t.Context(), "private/app", "v1"); !errors.Is(err, upstream.ErrUnauthorized) {
			t.Fatalf("anonymous Resolve: %v, want ErrUnauthorized", err)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		t.Parallel()
		cfg := writeDockerConfig(t, reg.Addr(), basicEntry(testUser, "wrong"))
		c := newClient(t, upstream.Config{Host: reg.Addr(), Insecure: true, DockerConfig: cfg})
		if _, _, err := c.Blob(t.Context(), "private/app", layerDigest, 0); !errors.Is(err, upstream.ErrUnauthorized) {
			t.Fatalf("Blob with a wrong password: %v, want ErrUnauthorized", err)
		}
	})
	t.Run("credentials", func(t *testing.T) {
		t.Parallel()
		// docker login writes keys with a scheme; username/password form.
		cfg := writeDockerConfig(t, "http://"+reg.Addr()+"/v1/",
			map[string]string{"username": testUser, "password": testPassword})
		ct := newCountingTransport(t)
		c := newClient(t, upstream.Config{Host: reg.Addr(), Insecure: true, DockerConfig: cfg, Transport: ct})
		desc, err := c.Resolve(t.Context(), "private/app", "v1")
		if err != nil || desc.Digest != toDigest(imgDigest) {
			t.Fatalf("Resolve = %v, %v", desc.Digest, err)
		}
		if _, _, err := c.Manifest(t.Context(), "private/app", desc.Digest); err != nil {
			t.Fatal(err)
		}
		rc, _, err := c.Blob(t.Context(), "private/app", layerDigest, 0)
		if err != nil {
			t.Fatal(err)
		}
		if got := readAll(t, rc); !bytes.Equal(got, layer) {
			t.Fatal("blob differs")
		}
		if n := ct.statusCount(http.StatusUnauthorized); n != 1 {
			t.Fatalf("%d challenges; credentials should go up front after the first", n)
		}
	})
}

// TestTokenAuth runs against a registry with token auth and a token service
// written for the test: the client follows the Bearer challenge, gets a
// token with the configured credentials, caches it per repository scope,
// and reports ErrUnauthorized for anonymous or wrong credentials.
func TestTokenAuth(t *testing.T) {
	t.Parallel()
	ts, auth := startTokenServer(t)
	reg := registrytest.Start(t, auth)
	p := newPusher(t, reg.Addr(), &authn.Basic{Username: testUser, Password: testPassword})
	img := p.image(t, "private/app:v1", 1)
	p.image(t, "private/other:v1", 1)
	imgDigest, _ := img.Digest()
	layer, layerDigest := layerBytes(t, img, 0)

	t.Run("anonymous", func(t *testing.T) {
		c := newClient(t, upstream.Config{Host: reg.Addr(), Insecure: true})
		if _, err := c.Resolve(t.Context(), "private/app", "v1"); !errors.Is(err, upstream.ErrUnauthorized) {
			t.Fatalf("anonymous Resolve: %v, want ErrUnauthorized", err)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		cfg := writeDockerConfig(t, reg.Addr(), basicEntry(testUser, "wrong"))
		c := newClient(t, upstream.Config{Host: reg.Addr(), Insecure: true, DockerConfig: cfg})
		_, err := c.Resolve(t.Context(), "private/app", "v1")
		if !errors.Is(err, upstream.ErrUnauthorized) {
			t.Fatalf("Resolve with a wrong password: %v, want ErrUnauthorized", err)
		}
		if bytes.Contains([]byte(err.Error()), []byte("wrong")) {
			t.Fatalf("error reveals the password: %v", err)
		}
	})
	t.Run("credentials", func(t *testing.T) {
		cfg := writeDockerConfig(t, reg.Addr(), basicEntry(testUser, testPassword))
		ct := newCountingTransport(t)
		c := newClient(t, upstream.Config{Host: reg.Addr(), Insecure: true, DockerConfig: cfg, Transport: ct})
		before := ts.requests.Load()
		desc, err := c.Resolve(t.Context(), "private/app", "v1")
		if err != nil || desc.Digest != toDigest(imgDigest) {
			t.Fatalf("Resolve = %v, %v", desc.Digest, err)
		}
		if _, _, err := c.Manifest(t.Context(), "private/app", desc.Digest); err != nil {
			t.Fatal(err)
		}
		for _, off := range []int64{0, 7} {
			rc, _, err := c.Blob(t.Context(), "private/app", layerDigest, off)
			if err != nil {
				t.Fatal(err)
			}
			if got := readAll(t, rc); !bytes.Equal(got, layer[off:]) {
				t.Fatalf("blob at %d differs", off)
			}
		}
		if _, err := c.StatBlob(t.Context(), "private/app", layerDigest); err != nil {
			t.Fatal(err)
		}
		if n := ts.requests.Load() - before; n != 1 {
			t.Fatalf("%d token requests for one repository, want 1 (cached)", n)
		}
		if n := ct.statusCount(http.StatusUnauthorized); n != 1 {
			t.Fatalf("%d challenges, want 1", n)
		}
		// Another repository needs its own scope, so its own token.
		if _, err := c.Resolve(t.Context(), "private/other", "v1"); err != nil {
			t.Fatal(err)
		}
		if n := ts.requests.Load() - before; n != 2 {
			t.Fatalf("%d token requests for two repositories, want 2", n)
		}
	})
}
