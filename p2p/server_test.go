package p2p

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"
)

// servingPair starts a node serving blob and a client connected to it.
func servingPair(t *testing.T, ctx context.Context, blob []byte) (server, client *Node, d digest.Digest) {
	t.Helper()
	src := NewMemorySource()
	d = src.Put(blob)
	server = startNode(t, testConfig(), src)
	client = startNode(t, testConfig(), NewMemorySource())
	if err := client.Connect(ctx, server.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	return server, client, d
}

// doRequest sends one request from c and returns the response and its
// whole body (the body is closed).
func doRequest(t *testing.T, ctx context.Context, c *Node, method, url string, hdr http.Header) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	resp, err := c.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(body)
}

// TestBlobHTTP checks HEAD, GET and Range semantics over libp2p streams.
func TestBlobHTTP(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	blob := []byte("0123456789abcdefghij")
	server, client, d := servingPair(t, ctx, blob)
	base := "http://" + hostOf(server.ID())
	missing := digest.FromString("missing")

	tests := []struct {
		name       string
		method     string
		path       string
		rng        string
		wantCode   int
		wantBody   string
		wantHeader map[string]string
	}{
		{"head", http.MethodHead, "/blobs/" + d.String(), "", 200, "",
			map[string]string{"Content-Length": "20", "Docker-Content-Digest": d.String(), "Accept-Ranges": "bytes"}},
		{"get whole", http.MethodGet, "/blobs/" + d.String(), "", 200, string(blob), nil},
		{"get range", http.MethodGet, "/blobs/" + d.String(), "bytes=5-9", 206, "56789",
			map[string]string{"Content-Range": "bytes 5-9/20", "Content-Length": "5"}},
		{"open range", http.MethodGet, "/blobs/" + d.String(), "bytes=15-", 206, "fghij", nil},
		{"suffix range", http.MethodGet, "/blobs/" + d.String(), "bytes=-3", 206, "hij", nil},
		{"range clipped", http.MethodGet, "/blobs/" + d.String(), "bytes=18-100", 206, "ij",
			map[string]string{"Content-Range": "bytes 18-19/20"}},
		{"head range", http.MethodHead, "/blobs/" + d.String(), "bytes=0-1", 206, "",
			map[string]string{"Content-Range": "bytes 0-1/20", "Content-Length": "2"}},
		{"unsatisfiable", http.MethodGet, "/blobs/" + d.String(), "bytes=20-", 416, "",
			map[string]string{"Content-Range": "bytes */20"}},
		{"malformed range", http.MethodGet, "/blobs/" + d.String(), "bytes=9-5", 400, "", nil},
		{"missing blob", http.MethodGet, "/blobs/" + missing.String(), "", 404, "", nil},
		{"head missing", http.MethodHead, "/blobs/" + missing.String(), "", 404, "", nil},
		{"bad digest", http.MethodGet, "/blobs/sha256:nothex", "", 400, "", nil},
		{"post refused", http.MethodPost, "/blobs/" + d.String(), "", 405, "", nil},
		{"probe", http.MethodGet, "/probe?bytes=1000", "", 200, "", map[string]string{"Content-Length": "1000"}},
		{"probe too large", http.MethodGet, "/probe?bytes=99999999", "", 400, "", nil},
		{"probe no size", http.MethodGet, "/probe", "", 400, "", nil},
		{"unknown path", http.MethodGet, "/v2/", "", 404, "", nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hdr := http.Header{}
			if tt.rng != "" {
				hdr.Set("Range", tt.rng)
			}
			resp, body := doRequest(t, ctx, client, tt.method, base+tt.path, hdr)
			if resp.StatusCode != tt.wantCode {
				t.Fatalf("status %d, want %d (%s)", resp.StatusCode, tt.wantCode, body)
			}
			if tt.wantBody != "" && string(body) != tt.wantBody {
				t.Errorf("body %q, want %q", body, tt.wantBody)
			}
			for k, v := range tt.wantHeader {
				if got := resp.Header.Get(k); got != v {
					t.Errorf("header %s = %q, want %q", k, got, v)
				}
			}
		})
	}
}

func TestStatAndProbe(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	src := NewMemorySource()
	d := src.Put([]byte(strings.Repeat("x", 1234)))
	server := startNode(t, testConfig(), src)
	client := startNode(t, testConfig(), NewMemorySource())
	if err := client.Connect(ctx, server.Addrs()[0]); err != nil {
		t.Fatal(err)
	}
	if size, err := client.Stat(ctx, server.ID(), d); err != nil || size != 1234 {
		t.Fatalf("Stat = %d, %v", size, err)
	}
	if _, err := client.Stat(ctx, server.ID(), digest.FromString("nope")); !errors.Is(err, ErrNotFound) {
		t.Fatalf("Stat(missing) err = %v, want ErrNotFound", err)
	}
	if _, err := client.Probe(ctx, server.ID(), 256<<10); err != nil {
		t.Fatalf("Probe: %v", err)
	}
	if client.Score(server.ID()).Throughput <= 0 {
		t.Fatal("probe did not record throughput")
	}
	if _, err := client.Probe(ctx, server.ID(), MaxProbeBytes+1); err == nil {
		t.Fatal("oversized probe accepted")
	}
}

// An error answer (a busy provider's 503) is read to its end, so the
// caller's Close leaves the connection for the next request: in a swarm,
// most requests that fail are such answers, and each closed connection
// cost a new libp2p stream.
func TestErrorAnswersKeepTheConnection(t *testing.T) {
	t.Parallel()
	var conns atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		http.Error(w, "this host sends that range to another peer now; ask it later", http.StatusServiceUnavailable)
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			conns.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	d := digest.FromBytes([]byte("any"))
	for range 5 {
		resp, err := srv.Client().Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		var busy *statusError
		if err := checkStatus(resp, d, http.StatusOK); !errors.As(err, &busy) || busy.code != http.StatusServiceUnavailable {
			t.Fatalf("checkStatus: %v; want a 503 status error", err)
		}
		resp.Body.Close()
	}
	if n := conns.Load(); n != 1 {
		t.Fatalf("%d connections for 5 requests; want 1 reused", n)
	}
}

// TestSpreadSparesWholeBlobs: while a range of a blob is going out to a
// peer, a swarm request for that range elsewhere is told to ask later
// (super-seeding), but a request for the whole blob (a blob of one chunk:
// nothing else to trade) is served.
func TestSpreadSparesWholeBlobs(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	blob := []byte("0123456789abcdefghij")
	server, client, d := servingPair(t, ctx, blob)
	if !server.spread.take(d, 0) {
		t.Fatal("spread: first take refused")
	}
	defer server.spread.done(d, 0)
	get := func(rng string) (*http.Response, string) {
		t.Helper()
		hdr := http.Header{HeaderHeldOnly: {"1"}}
		if rng != "" {
			hdr.Set("Range", rng)
		}
		return doRequest(t, ctx, client, http.MethodGet, "http://"+hostOf(server.ID())+"/blobs/"+d.String(), hdr)
	}
	if resp, body := get("bytes=0-9"); resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get(HeaderBusy) != BusyRange {
		t.Errorf("range going out elsewhere: %d %s=%q (%s), want 503 %s", resp.StatusCode, HeaderBusy, resp.Header.Get(HeaderBusy), body, BusyRange)
	}
	if resp, body := get(""); resp.StatusCode != http.StatusOK || body != string(blob) {
		t.Errorf("whole blob: %d %q, want 200 and the blob", resp.StatusCode, body)
	}
	if resp, body := get("bytes=0-19"); resp.StatusCode != http.StatusPartialContent || body != string(blob) {
		t.Errorf("range covering the whole blob: %d %q, want 206 and the blob", resp.StatusCode, body)
	}
	if resp, body := get("bytes=10-19"); resp.StatusCode != http.StatusPartialContent || body != "abcdefghij" {
		t.Errorf("another range: %d %q, want 206", resp.StatusCode, body)
	}
}
