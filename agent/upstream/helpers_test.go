package upstream_test

import (
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/opencontainers/go-digest"
	"go.uber.org/goleak"

	"github.com/shoal-dev/shoal/agent/upstream"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// pusher seeds a registry with go-containerregistry's remote package.
type pusher struct {
	addr string
	auth authn.Authenticator
	tr   *http.Transport
}

// newPusher returns a pusher for the registry at addr, anonymous when auth
// is nil.
func newPusher(t *testing.T, addr string, auth authn.Authenticator) *pusher {
	t.Helper()
	if auth == nil {
		auth = authn.Anonymous
	}
	p := &pusher{addr: addr, auth: auth, tr: http.DefaultTransport.(*http.Transport).Clone()}
	t.Cleanup(p.tr.CloseIdleConnections)
	return p
}

// ref parses repo:tag on the pusher's registry.
func (p *pusher) ref(t *testing.T, repoTag string) name.Reference {
	t.Helper()
	ref, err := name.ParseReference(p.addr+"/"+repoTag, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	return ref
}

// image pushes a random image of layers layers to repo:tag.
func (p *pusher) image(t *testing.T, repoTag string, layers int64) v1.Image {
	t.Helper()
	img, err := random.Image(4096, layers)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(p.ref(t, repoTag), img, remote.WithAuth(p.auth), remote.WithTransport(p.tr)); err != nil {
		t.Fatalf("push %s: %v", repoTag, err)
	}
	return img
}

// index pushes a random index of count images to repo:tag.
func (p *pusher) index(t *testing.T, repoTag string, count int64) v1.ImageIndex {
	t.Helper()
	idx, err := random.Index(2048, 1, count)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.WriteIndex(p.ref(t, repoTag), idx, remote.WithAuth(p.auth), remote.WithTransport(p.tr)); err != nil {
		t.Fatalf("push index %s: %v", repoTag, err)
	}
	return idx
}

// countingTransport counts the requests that reach the network, by path.
type countingTransport struct {
	base  http.RoundTripper
	total atomic.Int64

	mu     sync.Mutex
	status map[int]int // responses by status code
}

// newCountingTransport returns a counting wrapper of a fresh transport
// whose idle connections are closed when the test ends.
func newCountingTransport(t *testing.T) *countingTransport {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	return &countingTransport{base: tr, status: map[int]int{}}
}

// RoundTrip counts and forwards the request.
func (c *countingTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	c.total.Add(1)
	resp, err := c.base.RoundTrip(req)
	if err == nil {
		c.mu.Lock()
		c.status[resp.StatusCode]++
		c.mu.Unlock()
	}
	return resp, err
}

// statusCount returns how many responses had code.
func (c *countingTransport) statusCount(code int) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.status[code]
}

// newClient builds a client for cfg, with a counting transport unless cfg
// has one, and closes its connections when the test ends.
func newClient(t *testing.T, cfg upstream.Config) *upstream.Client {
	t.Helper()
	if cfg.Transport == nil {
		cfg.Transport = newCountingTransport(t)
	}
	c, err := upstream.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.CloseIdleConnections)
	return c
}

// toDigest converts a go-containerregistry hash.
func toDigest(h v1.Hash) digest.Digest {
	return digest.Digest(h.String())
}

// readAll reads and closes rc.
func readAll(t *testing.T, rc io.ReadCloser) []byte {
	t.Helper()
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return b
}

// layerBytes returns the compressed bytes and digest of img's i-th layer.
func layerBytes(t *testing.T, img v1.Image, i int) ([]byte, digest.Digest) {
	t.Helper()
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	rc, err := layers[i].Compressed()
	if err != nil {
		t.Fatal(err)
	}
	h, err := layers[i].Digest()
	if err != nil {
		t.Fatal(err)
	}
	return readAll(t, rc), toDigest(h)
}
