package upstream_test

import (
	"bytes"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/agent/upstream"
	"github.com/shoal-dev/shoal/agent/upstream/registrytest"
)

// TestUnavailable checks that an unreachable, hung or failing registry
// gives ErrUnavailable, quickly.
func TestUnavailable(t *testing.T) {
	t.Parallel()
	t.Run("stopped registry", func(t *testing.T) {
		t.Parallel()
		reg := registrytest.Start(t, "")
		reg.Stop()
		c := newClient(t, upstream.Config{Host: reg.Addr(), Insecure: true})
		start := time.Now()
		_, err := c.Resolve(t.Context(), "team/app", "v1")
		if !errors.Is(err, upstream.ErrUnavailable) {
			t.Fatalf("Resolve on a stopped registry: %v, want ErrUnavailable", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("took %v", d)
		}
	})
	t.Run("hung registry", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		done := make(chan struct{})
		t.Cleanup(func() { ln.Close(); <-done })
		go func() { // accept and never answer, until the listener closes
			defer close(done)
			var conns []net.Conn
			defer func() {
				for _, c := range conns {
					c.Close()
				}
			}()
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				conns = append(conns, conn)
			}
		}()
		c := newClient(t, upstream.Config{Host: ln.Addr().String(), Insecure: true, Timeout: 200 * time.Millisecond})
		start := time.Now()
		_, _, err = c.Blob(t.Context(), "team/app", digest.FromString("hung"), 0)
		if !errors.Is(err, upstream.ErrUnavailable) {
			t.Fatalf("Blob from a hung registry: %v, want ErrUnavailable", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Fatalf("took %v", d)
		}
	})
	for _, code := range []int{http.StatusInternalServerError, http.StatusBadGateway, http.StatusTooManyRequests} {
		t.Run(strconv.Itoa(code), func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(code)
				io.WriteString(w, `{"errors":[{"code":"TOOMANYREQUESTS","message":"slow down"}]}`)
			}))
			t.Cleanup(srv.Close)
			c := newClient(t, upstream.Config{Host: strings.TrimPrefix(srv.URL, "http://"), Insecure: true})
			_, _, err := c.Manifest(t.Context(), "team/app", digest.FromString("busy"))
			if !errors.Is(err, upstream.ErrUnavailable) {
				t.Fatalf("err = %v, want ErrUnavailable", err)
			}
			if !strings.Contains(err.Error(), "slow down") {
				t.Fatalf("error %q does not carry the registry's message", err)
			}
		})
	}
}

// tamperingProxy fronts a registry and lets a test rewrite its responses.
func tamperingProxy(t *testing.T, registryAddr string, modify func(*http.Response) error) string {
	t.Helper()
	target, _ := url.Parse("http://" + registryAddr)
	rp := httputil.NewSingleHostReverseProxy(target)
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	rp.Transport = tr
	rp.ModifyResponse = modify
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// replaceBody swaps a response's body.
func replaceBody(resp *http.Response, body []byte) {
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
}

// TestVerification checks that manifests, Docker-Content-Digest headers and
// whole blobs are verified, and that a HEAD without a digest falls back to
// hashing the manifest.
func TestVerification(t *testing.T) {
	t.Parallel()
	reg := registrytest.Start(t, "")
	p := newPusher(t, reg.Addr(), nil)
	img := p.image(t, "team/app:v1", 1)
	imgDigest, _ := img.Digest()
	_, layerDigest := layerBytes(t, img, 0)

	// flip changes one byte of every GET body and drops the digest header,
	// so only the client's own hashing can notice.
	flip := tamperingProxy(t, reg.Addr(), func(resp *http.Response) error {
		if resp.Request.Method != http.MethodGet || resp.StatusCode != http.StatusOK {
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		if err != nil {
			return err
		}
		body[len(body)/2] ^= 0xff
		replaceBody(resp, body)
		resp.Header.Del("Docker-Content-Digest")
		return nil
	})
	t.Run("manifest body", func(t *testing.T) {
		t.Parallel()
		c := newClient(t, upstream.Config{Host: flip, Insecure: true})
		_, _, err := c.Manifest(t.Context(), "team/app", toDigest(imgDigest))
		if !errors.Is(err, upstream.ErrDigestMismatch) {
			t.Fatalf("tampered manifest: %v, want ErrDigestMismatch", err)
		}
	})
	t.Run("blob body", func(t *testing.T) {
		t.Parallel()
		c := newClient(t, upstream.Config{Host: flip, Insecure: true})
		rc, _, err := c.Blob(t.Context(), "team/app", layerDigest, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if _, err := io.ReadAll(rc); !errors.Is(err, upstream.ErrDigestMismatch) {
			t.Fatalf("tampered blob read: %v, want ErrDigestMismatch", err)
		}
	})

	// noHeadDigest drops Docker-Content-Digest from HEAD answers, and on
	// tag GETs of "lie" claims a wrong one.
	noHeadDigest := tamperingProxy(t, reg.Addr(), func(resp *http.Response) error {
		switch {
		case resp.Request.Method == http.MethodHead:
			resp.Header.Del("Docker-Content-Digest")
		case strings.HasSuffix(resp.Request.URL.Path, "/manifests/v1") && resp.Request.Header.Get("X-Lie") != "":
			resp.Header.Set("Docker-Content-Digest", "sha256:"+strings.Repeat("0", 64))
		}
		return nil
	})
	t.Run("resolve without HEAD digest", func(t *testing.T) {
		t.Parallel()
		c := newClient(t, upstream.Config{Host: noHeadDigest, Insecure: true})
		desc, err := c.Resolve(t.Context(), "team/app", "v1")
		if err != nil || desc.Digest != toDigest(imgDigest) {
			t.Fatalf("Resolve = %v, %v; want %s", desc.Digest, err, imgDigest)
		}
	})
	t.Run("resolve with a wrong digest header", func(t *testing.T) {
		t.Parallel()
		tr := &headerTransport{base: newCountingTransport(t), name: "X-Lie", value: "1"}
		c := newClient(t, upstream.Config{Host: noHeadDigest, Insecure: true, Transport: tr})
		if _, err := c.Resolve(t.Context(), "team/app", "v1"); !errors.Is(err, upstream.ErrDigestMismatch) {
			t.Fatalf("Resolve with a lying header: %v, want ErrDigestMismatch", err)
		}
	})
}

// headerTransport adds a header to every request.
type headerTransport struct {
	base        http.RoundTripper
	name, value string
}

// RoundTrip adds the header and forwards the request.
func (h *headerTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	req = req.Clone(req.Context())
	req.Header.Set(h.name, h.value)
	return h.base.RoundTrip(req)
}

// TestRedirectToStorage checks that blob requests follow a registry's
// redirect to its storage, with the Range kept and the registry's
// credentials left behind.
func TestRedirectToStorage(t *testing.T) {
	t.Parallel()
	blob := bytes.Repeat([]byte("shoal upstream blob "), 500)
	d := digest.FromBytes(blob)
	var leaked atomic.Bool
	storage := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			leaked.Store(true)
		}
		http.ServeContent(w, r, "blob", time.Time{}, bytes.NewReader(blob))
	}))
	t.Cleanup(storage.Close)
	// The storage is named "localhost", a different host than the
	// registry's 127.0.0.1, as a real storage backend would be.
	storageURL := strings.Replace(storage.URL, "127.0.0.1", "localhost", 1)
	registry := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") == "" {
			w.Header().Set("WWW-Authenticate", `Basic realm="shoal-test"`)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		http.Redirect(w, r, storageURL+"/storage/"+d.String(), http.StatusTemporaryRedirect)
	}))
	t.Cleanup(registry.Close)
	host := strings.TrimPrefix(registry.URL, "http://")
	cfg := writeDockerConfig(t, host, basicEntry(testUser, testPassword))
	c := newClient(t, upstream.Config{Host: host, Insecure: true, DockerConfig: cfg})

	for _, off := range []int64{0, 1000} {
		rc, size, err := c.Blob(t.Context(), "team/app", d, off)
		if err != nil {
			t.Fatalf("offset %d: %v", off, err)
		}
		if got := readAll(t, rc); size != int64(len(blob)) || !bytes.Equal(got, blob[off:]) {
			t.Fatalf("offset %d: %d bytes, size %d", off, len(got), size)
		}
	}
	if leaked.Load() {
		t.Fatal("registry credentials were sent to the storage host")
	}
}
