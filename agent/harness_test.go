package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/agent/config"
)

// testAgent is an agent running in this process on loopback ports.
type testAgent struct {
	*Agent
	cfg  config.Config
	stop func() error
}

// startAgent runs an agent with data in a temp dir and the given origin
// directory (a new one if ""), and stops it at the end of the test.
func startAgent(t testing.TB, originDir string, mutate ...func(*config.Config)) *testAgent {
	t.Helper()
	return startAgentWith(t, originDir, nil, mutate...)
}

// startAgentWith is startAgent with options for New (embedding parts).
func startAgentWith(t testing.TB, originDir string, opts []Option, mutate ...func(*config.Config)) *testAgent {
	t.Helper()
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.RegistryAddr, cfg.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	if originDir == "" {
		originDir = t.TempDir()
	}
	cfg.Origins = []string{"file://" + originDir}
	cfg.NodeName = "test"
	cfg.P2P.Listen = []string{"/ip4/127.0.0.1/tcp/0", "/ip4/127.0.0.1/udp/0/quic-v1"}
	cfg.Serf.Addr = "127.0.0.1:0"
	// Fresh test fleets: short leases so a new proxy's grace period is short.
	cfg.Locks = config.LocksConfig{TTL: config.Duration(time.Second), MaxTTL: config.Duration(2 * time.Second), Grace: config.Duration(3 * time.Second)}
	for _, m := range mutate {
		m(&cfg)
	}
	return runAgent(t, cfg, opts...)
}

// runAgent starts an agent with cfg and waits until it is ready.
func runAgent(t testing.TB, cfg config.Config, opts ...Option) *testAgent {
	t.Helper()
	if err := cfg.Finish(); err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	a, err := New(cfg, log, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	select {
	case <-a.Ready():
	case err := <-done:
		cancel()
		t.Fatalf("agent failed to start: %v", err)
	case <-time.After(30 * time.Second):
		cancel()
		t.Fatal("agent not ready after 30s")
	}
	var stopped bool
	var stopErr error
	stop := func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case stopErr = <-done:
			case <-time.After(60 * time.Second):
				stopErr = errors.New("agent did not stop within 60s")
			}
		}
		return stopErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("agent stop: %v", err)
		}
	})
	return &testAgent{Agent: a, cfg: cfg, stop: stop}
}

// url returns http://<registry addr><path>.
func (a *testAgent) url(path string) string { return "http://" + a.RegistryAddr() + path }

// metric returns the value of a metric line (exact name with labels) from /metrics.
func (a *testAgent) metric(t testing.TB, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + a.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return 0
}

// metricSum adds up every series of a metric whose labels contain match.
func (a *testAgent) metricSum(t testing.TB, name, match string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + a.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, name+"{") && strings.Contains(line, match) {
			var f float64
			fmt.Sscan(line[strings.LastIndex(line, " ")+1:], &f)
			sum += f
		}
	}
	return sum
}

// status returns the agent's /status document.
func (a *testAgent) status() Status { return a.Agent.status() }

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t testing.TB, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// tool finds a test tool on PATH or in the project's .tools/bin, or skips.
func tool(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	if p, err := filepath.Abs(filepath.Join("..", ".tools", "bin", name)); err == nil {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s not found: run .ci/tools.sh (make test does)", name)
	}
	t.Skipf("%s not found: run .ci/tools.sh (make test does)", name)
	return ""
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// waitCommitted waits until a's cache holds d committed: a response ends
// once the bytes are verified, and the commit (fsync, rename) can finish
// a moment later.
func waitCommitted(t testing.TB, a *testAgent, d digest.Digest) {
	t.Helper()
	waitFor(t, "commit of "+d.String(), 30*time.Second, func() bool {
		_, err := a.cas.Stat(context.Background(), d)
		return err == nil
	})
}
