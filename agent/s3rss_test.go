package agent

import (
	"crypto/sha256"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/cas/objstore/s3store/s3test"
)

// peakRSS reads a process's peak resident set (VmHWM) in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

// TestS3LargeBlobMemory: a 1 GiB blob pushed to one agent goes up to S3
// (multipart) and comes down through a second agent with an empty cache,
// and neither agent's peak RSS reaches 150 MiB.
func TestS3LargeBlobMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("1 GiB through S3: not in -short")
	}
	const size, limit = 1 << 30, 150 << 20
	gw := s3test.Start(t)
	originURL := gw.URL(gw.Bucket(t), "big")
	env := s3test.Env()
	args := []string{"--origin", originURL, "--p2p=false", "--serf=false"}
	a := startProcessEnv(t, env, append([]string{"--data-dir", t.TempDir()}, args...)...)

	d := patternDigest(size)
	if code := pushBlobFrom(t, "http://"+a.registry, "big/blob", newPatternReader(size), size, d); code != http.StatusCreated {
		t.Fatalf("push: %d", code)
	}
	deadline := time.Now().Add(3 * time.Minute)
	for a.status(t).OutboxPending > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the 1 GiB blob did not reach S3 within 3 minutes")
		}
		time.Sleep(100 * time.Millisecond)
	}
	pushRSS := peakRSS(t, a.cmd.Process.Pid)

	b := startProcessEnv(t, env, append([]string{"--data-dir", t.TempDir()}, args...)...)
	resp, err := http.Get(b.url("/v2/big/blob/blobs/" + d.String()))
	if err != nil {
		t.Fatal(err)
	}
	got := sha256.New()
	n, err := io.Copy(got, resp.Body)
	resp.Body.Close()
	if err != nil || n != size || digest.NewDigestFromBytes(digest.SHA256, got.Sum(nil)) != d {
		t.Fatalf("pull through the second agent: %d bytes, %v", n, err)
	}
	pullRSS := peakRSS(t, b.cmd.Process.Pid)
	t.Logf("peak RSS: pushing agent %d MiB, pulling agent %d MiB", pushRSS>>20, pullRSS>>20)
	if pushRSS > limit || pullRSS > limit {
		t.Fatalf("peak RSS %d / %d MiB, want under %d MiB", pushRSS>>20, pullRSS>>20, limit>>20)
	}
}
