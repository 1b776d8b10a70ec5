package s3store_test

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/shoal-dev/shoal/cas/objstore"
	"github.com/shoal-dev/shoal/cas/objstore/s3store"
	"github.com/shoal-dev/shoal/cas/objstore/s3store/s3test"
)

// faultProxy forwards to a gateway and answers 503 SlowDown to the next
// requests a rule picks.
type faultProxy struct {
	addr string

	mu     sync.Mutex
	rules  []*faultRule
	failed map[string]int // by rule name
}

// faultRule fails the next n requests that match.
type faultRule struct {
	name  string
	match func(*http.Request) bool
	n     int
}

func startFaultProxy(t *testing.T, g *s3test.Gateway) *faultProxy {
	t.Helper()
	target := &url.URL{Scheme: "http", Host: g.Addr()}
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.Transport = &http.Transport{}
	p := &faultProxy{failed: map[string]int{}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p.addr = ln.Addr().String()
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if p.shouldFail(r) {
			io.Copy(io.Discard, r.Body)
			w.Header().Set("Content-Type", "application/xml")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>injected</Message></Error>`)
			return
		}
		// The Host header, which the signature covers, passes unchanged.
		rp.ServeHTTP(w, r)
	})}
	go srv.Serve(ln)
	t.Cleanup(func() {
		srv.Close()
		rp.Transport.(*http.Transport).CloseIdleConnections()
	})
	return p
}

// failNext makes the next n requests that match fail.
func (p *faultProxy) failNext(name string, n int, match func(*http.Request) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rules = append(p.rules, &faultRule{name: name, match: match, n: n})
}

func (p *faultProxy) shouldFail(r *http.Request) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, rule := range p.rules {
		if rule.n > 0 && rule.match(r) {
			rule.n--
			p.failed[rule.name]++
			return true
		}
	}
	return false
}

// failures returns how many requests rule name failed.
func (p *faultProxy) failures(name string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.failed[name]
}

func TestTransientFailuresAreRetried(t *testing.T) {
	t.Parallel()
	g := s3test.Start(t)
	p := startFaultProxy(t, g)
	opts := testOptions(t)
	opts.PartSize = 5 << 20
	opts.Attempts = 3
	opts.BreakerThreshold = 100
	bucket := g.Bucket(t)
	s, err := s3store.New(t.Context(), "s3://"+bucket+"?tls=false&endpoint="+p.addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	ctx := t.Context()

	// A part of a multipart upload fails once and is sent again.
	p.failNext("part 2", 1, func(r *http.Request) bool {
		return r.Method == http.MethodPut && r.URL.Query().Get("partNumber") == "2"
	})
	data := bytes.Repeat([]byte("0123456789abcdef"), 12<<20/16)
	if err := s.Put(ctx, "big", bytes.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put with a failing part: %v", err)
	}
	if p.failures("part 2") != 1 {
		t.Errorf("part 2 failed %d times, want 1", p.failures("part 2"))
	}
	if ok, lastErr, _ := s.Health(); !ok || lastErr == nil || !strings.Contains(lastErr.Error(), "SlowDown") {
		t.Errorf("Health = %v, %v; want ok with the SlowDown recorded", ok, lastErr)
	}

	// A single PUT fails once and is resent from its buffer.
	p.failNext("small put", 1, func(r *http.Request) bool {
		return r.Method == http.MethodPut && !r.URL.Query().Has("partNumber")
	})
	if err := s.Put(ctx, "small", strings.NewReader("hello"), -1); err != nil || p.failures("small put") != 1 {
		t.Errorf("Put after %d injected failures: %v", p.failures("small put"), err)
	}
	if err := s.Delete(ctx, "small"); err != nil {
		t.Fatal(err)
	}

	// Reads fail once, twice, then for good.
	for _, tt := range []struct {
		failures int
		wantErr  error
	}{{1, nil}, {2, nil}, {3, objstore.ErrUnavailable}} {
		name := "get " + string(rune('0'+tt.failures))
		p.failNext(name, tt.failures, func(r *http.Request) bool { return r.Method == http.MethodGet })
		rc, err := s.Get(ctx, "big", 5, 10)
		if !errors.Is(err, tt.wantErr) {
			t.Errorf("Get after %d failures = %v, want %v", tt.failures, err, tt.wantErr)
		}
		if err == nil {
			b, _ := io.ReadAll(rc)
			rc.Close()
			if string(b) != string(data[5:15]) {
				t.Errorf("Get = %q, want %q", b, data[5:15])
			}
		}
	}
	var keys []string
	p.failNext("list", 1, func(r *http.Request) bool { return r.Method == http.MethodGet && r.URL.Query().Has("list-type") })
	for k, err := range s.List(ctx, "") {
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		keys = append(keys, k)
	}
	if len(keys) != 1 || p.failures("list") != 1 {
		t.Errorf("List = %q after %d injected failures, want [big] after 1", keys, p.failures("list"))
	}
}

// TestFailedPutLeavesNoUpload checks that multipart Puts that fail (short
// stream, long stream, cancelled caller) abort their uploads.
func TestFailedPutLeavesNoUpload(t *testing.T) {
	t.Parallel()
	g := s3test.Start(t)
	opts := testOptions(t)
	opts.PartSize = 5 << 20
	bucket := g.Bucket(t)
	s, err := s3store.New(t.Context(), g.URL(bucket, ""), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	data := bytes.Repeat([]byte("x"), 12<<20)

	if err := s.Put(t.Context(), "short", bytes.NewReader(data), int64(len(data))+1); err == nil {
		t.Error("Put of a short stream succeeded")
	}
	if err := s.Put(t.Context(), "long", bytes.NewReader(data), int64(len(data))-1); err == nil {
		t.Error("Put of a long stream succeeded")
	}
	ctx, cancel := context.WithCancel(t.Context())
	r := &cancelAfter{r: bytes.NewReader(data), n: 7 << 20, cancel: cancel}
	if err := s.Put(ctx, "cancelled", r, -1); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled Put = %v, want context.Canceled", err)
	}
	for _, key := range []string{"short", "long", "cancelled"} {
		if _, err := s.Stat(t.Context(), key); !errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("Stat(%s) after a failed Put = %v, want ErrNotFound", key, err)
		}
	}

	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	core, err := minio.NewCore(g.Addr(), &minio.Options{
		Creds:     credentials.NewStaticV4(s3test.AccessKey, s3test.SecretKey, ""),
		Region:    "us-east-1",
		Transport: tr,
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	res, err := core.ListMultipartUploads(ctx, bucket, "", "", "", "", 1000)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range res.Uploads {
		t.Errorf("upload of %s left behind", u.Key)
	}
}

// cancelAfter cancels its context once n bytes have been read.
type cancelAfter struct {
	r      io.Reader
	n      int
	cancel context.CancelFunc
}

func (c *cancelAfter) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	if c.n -= n; c.n <= 0 {
		c.cancel()
	}
	return n, err
}
