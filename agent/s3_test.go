package agent

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/agent/config"
	"github.com/shoal-dev/shoal/cas/objstore/s3store/s3test"
)

// s3Agent starts an agent (p2p off, so bytes come from S3) on an S3 origin.
func s3Agent(t *testing.T, originURL, creds string) *testAgent {
	return startAgent(t, t.TempDir(), func(c *config.Config) {
		c.Origins = []string{originURL}
		c.OriginCredentials = creds
		c.P2P.Enabled, c.Serf.Enabled = false, false
	})
}

// TestS3Origin: push through A, pull through B (empty cache, same bucket),
// byte-identical, the bucket laid out as DESIGN §4; then an S3 outage:
// pushes are queued, cached pulls work, uncached pulls fail fast with an
// OCI error, and the queue drains when S3 is back.
func TestS3Origin(t *testing.T) {
	if testing.Short() {
		t.Skip("real S3 server: not in -short")
	}
	gw := s3test.Start(t)
	bucket := gw.Bucket(t)
	creds := filepath.Join(t.TempDir(), "credentials")
	os.WriteFile(creds, []byte(fmt.Sprintf("[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n", s3test.AccessKey, s3test.SecretKey)), 0o600)
	originURL := gw.URL(bucket, "fleet")
	a, b := s3Agent(t, originURL, creds), s3Agent(t, originURL, creds)

	img := pushImage(t, a, "s3/app:v1", 1<<20, 3)
	want, err := pullImage(t.Context(), a, "s3/app:v1")
	if err != nil {
		t.Fatal(err)
	}
	got, err := pullImage(t.Context(), b, "s3/app:v1")
	if err != nil || fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("pull via B: %v\n got %v\nwant %v", err, got, want)
	}
	if o := b.metric(t, `shoal_fetch_bytes_total{source="origin"}`); o < 3<<20 {
		t.Fatalf("B fetched %v bytes from S3, want the image", o)
	}
	md, _ := img.Digest()
	root := filepath.Join(gw.Root(), bucket, "fleet")
	for _, key := range []string{
		"blobs/sha256/" + md.Hex,
		"repositories/s3/app/manifests/" + md.Hex,
		"repositories/s3/app/tags/v1",
	} {
		if _, err := os.Stat(filepath.Join(root, key)); err != nil {
			t.Errorf("bucket lacks %s: %v", key, err)
		}
	}
	if tag, _ := os.ReadFile(filepath.Join(root, "repositories/s3/app/tags/v1")); string(tag) != md.String() {
		t.Errorf("tag record %q, want %s", tag, md)
	}

	// Outage.
	gw.Kill()
	blob, d := randomBlob(31, 2<<20)
	if code := pushBlob(t, "http://"+a.RegistryAddr(), "s3/app", blob, d); code != http.StatusCreated {
		t.Fatalf("push during outage: %d, want 201 (queued)", code)
	}
	if _, err := pullImage(t.Context(), a, "s3/app@"+md.String()); err != nil {
		t.Fatalf("pull of cached content during outage: %v", err)
	}
	start := time.Now()
	resp, err := http.Get(b.url("/v2/s3/app/blobs/" + d.String()))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	elapsed := time.Since(start)
	var oci struct {
		Errors []struct{ Code string } `json:"errors"`
	}
	json.Unmarshal(body, &oci)
	if resp.StatusCode != http.StatusServiceUnavailable || len(oci.Errors) == 0 || oci.Errors[0].Code != "UNAVAILABLE" {
		t.Fatalf("uncached pull during outage: %d %s, want 503 UNAVAILABLE", resp.StatusCode, body)
	}
	if elapsed > 2*time.Second {
		t.Fatalf("uncached pull during outage took %s, want < 2s", elapsed)
	}
	t.Logf("uncached pull during the outage failed in %s", elapsed)
	if h := b.status().OriginHealth; len(h) != 1 || h[0].OK || h[0].LastError == "" {
		t.Fatalf("status during the outage: origin health %+v, want failing with an error", h)
	}
	if n := b.metricSum(t, "shoal_origin_requests_total", `result="unavailable"`); n < 1 {
		t.Fatalf("shoal_origin_requests_total{result=unavailable} = %v during the outage", n)
	}
	if a.outbox.Pending() == 0 {
		t.Fatal("push during the outage is not queued")
	}

	gw.Start(t)
	waitFor(t, "outbox to drain after the outage", 60*time.Second, func() bool { return a.outbox.Pending() == 0 })
	if h := a.status().OriginHealth; len(h) != 1 || !h[0].OK {
		t.Fatalf("status after the outage: origin health %+v, want ok", h)
	}
	stored, err := os.ReadFile(filepath.Join(root, "blobs/sha256", d.Encoded()))
	if err != nil || !bytes.Equal(stored, blob) {
		t.Fatalf("blob pushed during the outage is not in S3 intact: %v", err)
	}
}
