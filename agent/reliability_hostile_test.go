package agent

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/agent/config"
)

// endless yields pattern bytes up to limit (a bound, so a broken server
// cannot make the test run forever), counting what was read.
type endless struct {
	mu    sync.Mutex
	read  int64
	limit int64
}

func (e *endless) Read(p []byte) (int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.read >= e.limit {
		return 0, io.EOF
	}
	n := int(min(int64(len(p)), e.limit-e.read))
	for i := range n {
		p[i] = byte(i)
	}
	e.read += int64(n)
	return n, nil
}

func (e *endless) n() int64 {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.read
}

// rawRequest writes req verbatim on a new connection and returns the status
// code and body of the answer.
func rawRequest(t *testing.T, addr, req string) (int, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(20 * time.Second))
	if _, err := io.WriteString(c, req); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	return resp.StatusCode, string(body)
}

// ociCode returns the first OCI error code in body, or "".
func ociCode(body string) string {
	var e struct{ Errors []struct{ Code string } }
	if json.Unmarshal([]byte(body), &e) != nil || len(e.Errors) == 0 {
		return ""
	}
	return e.Errors[0].Code
}

// TestReliabilityHostileClient: uploads without end, absurd or broken
// Content-Length headers and oversized manifests each get their exact
// answer without the agent reading (or storing) more than its limits, and
// the agent serves a normal pull afterwards.
func TestReliabilityHostileClient(t *testing.T) {
	const limit = 8 << 20
	a := startAgent(t, "", func(c *config.Config) { c.Push.MaxUploadBytes = limit })
	addr := a.RegistryAddr()
	base := "http://" + addr
	good, goodD := randomBlob(80, 1<<20)
	if code := pushBlob(t, base, "hostile/repo", good, goodD); code != http.StatusCreated {
		t.Fatalf("seed push: %d", code)
	}
	startSession := func() string {
		resp, err := http.Post(base+"/v2/hostile/repo/blobs/uploads/", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("start upload: %d", resp.StatusCode)
		}
		return resp.Header.Get("Location")
	}

	t.Run("endless chunked PATCH", func(t *testing.T) {
		body := &endless{limit: 256 << 20}
		req, _ := http.NewRequest(http.MethodPatch, base+startSession(), body)
		req.ContentLength = -1 // chunked
		req.Header.Set("Content-Type", "application/octet-stream")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("endless PATCH: %v (the agent should answer, not just cut the connection)", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || ociCode(string(b)) != "SIZE_INVALID" {
			t.Fatalf("endless PATCH: %d %s, want 413 SIZE_INVALID", resp.StatusCode, b)
		}
		if r := resp.Header.Get("Range"); r != fmt.Sprintf("0-%d", limit-1) {
			t.Fatalf("Range after the refused chunk: %q, want the session held at the limit", r)
		}
		if n := body.n(); n >= 64<<20 {
			t.Fatalf("the agent read %d MiB of an endless body with an %d MiB limit", n>>20, limit>>20)
		}
	})
	t.Run("endless monolithic POST", func(t *testing.T) {
		body := &endless{limit: 256 << 20}
		req, _ := http.NewRequest(http.MethodPost, base+"/v2/hostile/repo/blobs/uploads/?digest="+goodD.String(), body)
		req.ContentLength = -1
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("endless POST: %v", err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge || ociCode(string(b)) != "SIZE_INVALID" {
			t.Fatalf("endless POST: %d %s, want 413 SIZE_INVALID", resp.StatusCode, b)
		}
	})

	cases := []struct {
		name   string
		req    string
		status int
		code   string
	}{
		{"absurd Content-Length on POST", "POST /v2/hostile/repo/blobs/uploads/?digest=" + goodD.String() + " HTTP/1.1\r\nHost: x\r\nContent-Length: 4611686018427387904\r\n\r\nabc",
			413, "SIZE_INVALID"},
		{"absurd Content-Length on PATCH", "PATCH %SESSION% HTTP/1.1\r\nHost: x\r\nContent-Length: 9223372036854775807\r\n\r\nabc", 413, "SIZE_INVALID"},
		{"overflowing Content-Length", "POST /v2/hostile/repo/blobs/uploads/ HTTP/1.1\r\nHost: x\r\nContent-Length: 99999999999999999999\r\n\r\n", 400, ""},
		{"negative Content-Length", "POST /v2/hostile/repo/blobs/uploads/ HTTP/1.1\r\nHost: x\r\nContent-Length: -5\r\n\r\n", 400, ""},
		{"two Content-Lengths", "POST /v2/hostile/repo/blobs/uploads/ HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400, ""},
		{"oversized chunked manifest", "PUT /v2/hostile/repo/manifests/big HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nTransfer-Encoding: chunked\r\n\r\n" +
			fmt.Sprintf("%x\r\n%s\r\n0\r\n\r\n", 5<<20, strings.Repeat("{", 5<<20)), 413, "SIZE_INVALID"},
		{"oversized manifest by Content-Length", "PUT /v2/hostile/repo/manifests/big HTTP/1.1\r\nHost: x\r\nContent-Type: application/vnd.oci.image.manifest.v1+json\r\nContent-Length: 1073741824\r\n\r\n{", 413, "SIZE_INVALID"},
		{"header flood", "GET /v2/ HTTP/1.1\r\nHost: x\r\nX-Junk: " + strings.Repeat("a", 2<<20) + "\r\n\r\n", 431, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := strings.ReplaceAll(tc.req, "%SESSION%", startSession())
			status, body := rawRequest(t, addr, req)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %.300s", status, tc.status, body)
			}
			if tc.code != "" && ociCode(body) != tc.code {
				t.Fatalf("body %.300s, want OCI error %s", body, tc.code)
			}
		})
	}

	// Nothing stored past the limit, and a normal pull works.
	if u := a.cas.Usage(); u.Bytes > int64(len(good)) {
		t.Fatalf("cache holds %d bytes after the hostile uploads, want only the seed blob", u.Bytes)
	}
	getBlobFrom(t, a, "hostile/repo", good)
}

// TestReliabilitySlowloris opens connections that send nothing or send
// their headers a byte at a time: the agent keeps serving normal pulls
// while they hang, and closes them once its ReadHeaderTimeout passes.
func TestReliabilitySlowloris(t *testing.T) {
	t.Parallel()
	const readHeaderTimeout = 30 * time.Second // agent.go: the registry server's
	a := startAgent(t, "")
	addr := a.RegistryAddr()
	good, goodD := randomBlob(81, 2<<20)
	if code := pushBlob(t, "http://"+addr, "slow/repo", good, goodD); code != http.StatusCreated {
		t.Fatalf("seed push: %d", code)
	}
	const conns = 200
	closed := make(chan time.Duration, conns)
	start := time.Now()
	stop := make(chan struct{})
	defer close(stop)
	for i := range conns {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatalf("connection %d: %v", i, err)
		}
		t.Cleanup(func() { c.Close() })
		go func() {
			if i%2 == 1 { // half send a partial request line, a byte a second
				for _, b := range []byte("GET /v2/slow/repo/blobs/" + goodD.String() + " HTTP/1.1\r\nHost: x\r\nX-A: ") {
					if _, err := c.Write([]byte{b}); err != nil {
						break
					}
					select {
					case <-stop:
						return
					case <-time.After(time.Second):
					}
				}
			}
			// Wait for the server to hang up (a read returns).
			c.SetReadDeadline(time.Now().Add(readHeaderTimeout + 20*time.Second))
			io.Copy(io.Discard, c)
			closed <- time.Since(start)
		}()
	}
	// Normal pulls go through while the connections hang.
	for range 5 {
		getBlobFrom(t, a, "slow/repo", good)
	}
	var slowest time.Duration
	for i := range conns {
		select {
		case d := <-closed:
			slowest = max(slowest, d)
		case <-time.After(readHeaderTimeout + 25*time.Second):
			t.Fatalf("%d of %d slowloris connections still open after %v", conns-i, conns, time.Since(start))
		}
	}
	if slowest > readHeaderTimeout+10*time.Second {
		t.Fatalf("slowest slowloris connection closed after %v, want about ReadHeaderTimeout (%v)", slowest, readHeaderTimeout)
	}
	t.Logf("%d slowloris connections closed by the agent, the last after %v; normal pulls served meanwhile", conns, slowest.Round(time.Millisecond))
	getBlobFrom(t, a, "slow/repo", good)
}
