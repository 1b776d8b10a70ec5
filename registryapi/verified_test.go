package registryapi_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/registryapi"
	"github.com/shoal-dev/shoal/registryapi/memory"
)

// verifyingBackend serves blobs from files with a Verified hook, as a
// backend still fetching a blob would.
type verifyingBackend struct {
	*memory.Backend
	dir      string
	verified func(ctx context.Context) error
	closed   atomic.Int32
}

func (b *verifyingBackend) GetBlob(ctx context.Context, repo string, d digest.Digest) (registryapi.Blob, error) {
	blob, err := b.Backend.GetBlob(ctx, repo, d)
	if err != nil {
		return blob, err
	}
	content, err := io.ReadAll(blob.Content)
	if err != nil {
		return registryapi.Blob{}, err
	}
	path := filepath.Join(b.dir, d.Encoded())
	if err := os.WriteFile(path, content, 0o600); err != nil {
		return registryapi.Blob{}, err
	}
	f, err := os.Open(path)
	if err != nil {
		return registryapi.Blob{}, err
	}
	return registryapi.Blob{Size: blob.Size, Content: &closeCounter{File: f, n: &b.closed}, Verified: b.verified}, nil
}

type closeCounter struct {
	*os.File
	n *atomic.Int32
}

func (c *closeCounter) Close() error {
	c.n.Add(1)
	return c.File.Close()
}

func newVerifyingServer(t *testing.T, verified func(context.Context) error) (*httptest.Server, *verifyingBackend, []byte, digest.Digest) {
	t.Helper()
	b := &verifyingBackend{Backend: memory.New(), dir: t.TempDir(), verified: verified}
	content := make([]byte, 256<<10) // larger than the server's write buffer
	for i := range content {
		content[i] = byte(i * 7)
	}
	desc := b.PutBlob("test/repo", content)
	srv := httptest.NewServer(registryapi.NewHandler(b, registryapi.DefaultOptions()))
	t.Cleanup(srv.Close)
	return srv, b, content, desc.Digest
}

// TestVerifiedFailureCutsConnection: when Verified fails, the client never
// sees a complete response, with or without a Range.
func TestVerifiedFailureCutsConnection(t *testing.T) {
	t.Parallel()
	for _, rng := range []string{"", "bytes=10-", "bytes=-1"} {
		t.Run("range="+rng, func(t *testing.T) {
			t.Parallel()
			srv, b, content, d := newVerifyingServer(t, func(context.Context) error {
				return errors.New("digest mismatch")
			})
			req, err := http.NewRequestWithContext(t.Context(), "GET", srv.URL+"/v2/test/repo/blobs/"+d.String(), nil)
			if err != nil {
				t.Fatal(err)
			}
			if rng != "" {
				req.Header.Set("Range", rng)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				return // cut before headers: also never complete
			}
			defer resp.Body.Close()
			got, err := io.ReadAll(resp.Body)
			if err == nil {
				t.Fatalf("status %d, read %d of %d bytes with no error: a failed verification looked complete",
					resp.StatusCode, len(got), len(content))
			}
			if int64(len(got)) >= resp.ContentLength {
				t.Fatalf("read %d bytes, Content-Length %d", len(got), resp.ContentLength)
			}
			srv.Close() // wait for the handler to finish
			if b.closed.Load() != 1 {
				t.Fatalf("content closed %d times, want 1", b.closed.Load())
			}
		})
	}
}

// TestVerifiedWithholdsLastByte: everything but the last byte arrives while
// Verified blocks; the last byte only after it returns nil.
func TestVerifiedWithholdsLastByte(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	var calls atomic.Int32
	srv, b, content, d := newVerifyingServer(t, func(ctx context.Context) error {
		calls.Add(1)
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	resp, err := srv.Client().Get(srv.URL + "/v2/test/repo/blobs/" + d.String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	head := make([]byte, len(content)-1)
	if _, err := io.ReadFull(resp.Body, head); err != nil {
		t.Fatalf("read all but the last byte: %v", err)
	}
	if calls.Load() != 1 {
		t.Fatalf("Verified called %d times before the last byte, want 1", calls.Load())
	}
	close(release)
	rest, err := io.ReadAll(resp.Body)
	if err != nil || len(rest) != 1 || string(append(head, rest...)) != string(content) {
		t.Fatalf("last byte: %v, got %d bytes", err, len(rest))
	}
	srv.Close()
	if b.closed.Load() != 1 {
		t.Fatalf("content closed %d times, want 1", b.closed.Load())
	}
}

// TestVerifiedEmptyBlobFailure: with no byte to withhold, a failed
// verification is an error response, not an empty 200.
func TestVerifiedEmptyBlobFailure(t *testing.T) {
	t.Parallel()
	b := &verifyingBackend{Backend: memory.New(), dir: t.TempDir(), verified: func(context.Context) error {
		return registryapi.ErrUnavailable
	}}
	desc := b.PutBlob("test/repo", nil)
	srv := httptest.NewServer(registryapi.NewHandler(b, registryapi.DefaultOptions()))
	t.Cleanup(srv.Close)
	resp, err := srv.Client().Get(srv.URL + "/v2/test/repo/blobs/" + desc.Digest.String())
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", resp.StatusCode)
	}
}

// TestOnRequest reports low-cardinality route names.
func TestOnRequest(t *testing.T) {
	t.Parallel()
	type rec struct {
		method, route string
		code          int
	}
	got := make(chan rec, 10)
	opts := registryapi.DefaultOptions()
	opts.OnRequest = func(method, route string, code int, _ time.Duration) { got <- rec{method, route, code} }
	srv := httptest.NewServer(registryapi.NewHandler(memory.New(), opts))
	t.Cleanup(srv.Close)
	for _, c := range []struct {
		method, path string
		want         rec
	}{
		{"GET", "/v2/", rec{"GET", "base", 200}},
		{"GET", "/v2/a/b/tags/list", rec{"GET", "tags", 404}},
		{"HEAD", "/v2/a/blobs/" + fxMissingD.String(), rec{"HEAD", "blob", 404}},
		{"POST", "/v2/a/blobs/uploads/", rec{"POST", "upload", 202}},
		{"GET", "/v2/a/manifests/x", rec{"GET", "manifest", 404}},
		{"GET", "/v2/a/referrers/" + fxMissingD.String(), rec{"GET", "referrers", 200}},
		{"GET", "/v2/_catalog", rec{"GET", "catalog", 200}},
		{"GET", "/nope", rec{"GET", "unknown", 404}},
	} {
		req, _ := http.NewRequestWithContext(t.Context(), c.method, srv.URL+c.path, nil)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if r := <-got; r != c.want {
			t.Errorf("%s %s: OnRequest %+v, want %+v", c.method, c.path, r, c.want)
		}
	}
}
