package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/shoal-dev/shoal/agent/config"
	"github.com/shoal-dev/shoal/agent/upstream/registrytest"
)

// countingProxy forwards to target and counts the requests it forwards.
func countingProxy(t *testing.T, target string) (addr string, count *atomic.Int64) {
	t.Helper()
	u, _ := url.Parse("http://" + target)
	proxy := httputil.NewSingleHostReverseProxy(u)
	count = new(atomic.Int64)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		count.Add(1)
		proxy.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return ln.Addr().String(), count
}

// TestPullThrough: an image in a real upstream registry is pulled through
// the agent, by repository prefix (skopeo) and with containerd's ?ns=
// (raw requests); digests are the upstream's, and a second pull is served
// from the cache without a request upstream.
func TestPullThrough(t *testing.T) {
	if testing.Short() {
		t.Skip("real registry: not in -short")
	}
	skopeo := tool(t, "skopeo")
	reg := registrytest.Start(t, "")
	img, err := random.Image(256<<10, 3)
	if err != nil {
		t.Fatal(err)
	}
	ref, _ := name.ParseReference(reg.Addr()+"/library/app:v1", name.Insecure)
	if err := remote.Write(ref, img); err != nil {
		t.Fatal(err)
	}
	want, _ := img.Digest()
	proxyAddr, upstreamRequests := countingProxy(t, reg.Addr())
	a := startAgent(t, "", func(c *config.Config) {
		c.Mirror.Upstreams = []string{"up.test=http://" + proxyAddr}
	})

	// Without ns: the upstream's name is the repository's first component.
	first := skopeoCopy(t, skopeo, a.RegistryAddr()+"/up.test/library/app:v1")
	if first.manifest != want.String() {
		t.Fatalf("pulled manifest %s through the agent, upstream has %s", first.manifest, want)
	}
	for d, sum := range first.blobs {
		if "sha256:"+sum != d {
			t.Fatalf("blob %s has content hashing to %s", d, sum)
		}
	}
	if upstreamRequests.Load() == 0 {
		t.Fatal("the first pull made no upstream request")
	}

	// With ns, as containerd asks.
	get := func(path string) (*http.Response, []byte) {
		req, _ := http.NewRequest(http.MethodGet, a.url(path), nil)
		req.Header.Set("Accept", "application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp, body
	}
	resp, _ := get("/v2/library/app/manifests/v1?ns=up.test")
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Docker-Content-Digest") != want.String() {
		t.Fatalf("manifest with ns: %s, digest %q, want %s", resp.Status, resp.Header.Get("Docker-Content-Digest"), want)
	}
	layers, _ := img.Layers()
	for _, l := range layers {
		d, _ := l.Digest()
		resp, body := get("/v2/library/app/blobs/" + d.String() + "?ns=up.test")
		sum := sha256.Sum256(body)
		if resp.StatusCode != http.StatusOK || "sha256:"+hex.EncodeToString(sum[:]) != d.String() {
			t.Fatalf("blob %s with ns: %s", d, resp.Status)
		}
	}
	if resp, body := get("/v2/library/app/manifests/v1?ns=evil.example"); resp.StatusCode != http.StatusForbidden {
		t.Fatalf("an upstream outside the allow-list: %s %s, want 403", resp.Status, body)
	}

	// A second pull is served from the cache.
	upstreamRequests.Store(0)
	second := skopeoCopy(t, skopeo, a.RegistryAddr()+"/up.test/library/app:v1")
	if second.manifest != want.String() {
		t.Fatalf("second pull: manifest %s", second.manifest)
	}
	if n := upstreamRequests.Load(); n != 0 {
		t.Fatalf("the second pull made %d upstream requests, want 0", n)
	}
	// A registry:// origin: plain repository names (as Docker's
	// registry-mirrors sends them) fall through to the upstream when the
	// object store does not have them.
	b := startAgent(t, "", func(c *config.Config) {
		c.Origins = append(c.Origins, "registry://"+proxyAddr+"?insecure=true")
	})
	viaOrigin := skopeoCopy(t, skopeo, b.RegistryAddr()+"/library/app:v1")
	if viaOrigin.manifest != want.String() || len(viaOrigin.blobs) != len(first.blobs) {
		t.Fatalf("through a registry:// origin: manifest %s (%d blobs), want %s", viaOrigin.manifest, len(viaOrigin.blobs), want)
	}
	if resp, body := get("/v2/library/nothing/manifests/v1"); resp.StatusCode != http.StatusNotFound {
		t.Fatalf("unknown repository without an upstream: %s %s", resp.Status, body)
	}

	resp, err = http.Post(a.url("/v2/up.test/library/app/blobs/uploads/"), "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("an upload to a mirrored repository: %s, want 403", resp.Status)
	}
}
