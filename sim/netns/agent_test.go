package netns_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/sim/netns"
)

// buildShoal builds the shoal binary into a temp dir.
func buildShoal(t *testing.T, ctx context.Context) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "shoal")
	begin := time.Now()
	out, err := exec.CommandContext(ctx, "go", "build", "-o", bin, "github.com/shoal-dev/shoal/agent/cmd/shoal").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	t.Logf("built shoal in %s", time.Since(begin).Round(time.Millisecond))
	return bin
}

// agentProc is a `shoal agent` process running in a host's namespace.
type agentProc struct {
	host     *netns.Host
	registry string // http://IP:5000
	admin    string // http://IP:5001
	exited   chan struct{}
	ready    chan struct{}
	cmd      *exec.Cmd

	mu   sync.Mutex
	tail []string // last log lines, printed when the test fails
}

// agentSpec is what differs between the agents of a fleet.
type agentSpec struct {
	origin string   // shared object store directory
	group  string   // serf group
	join   []string // serf addresses to join
}

// startAgent writes a config file for host h and starts `shoal agent` in
// h's namespace, listening on h's address on fixed ports (the namespace is
// new and empty, so they are free). It does not wait for readiness.
func startAgent(t *testing.T, ctx context.Context, bin string, h *netns.Host, spec agentSpec) *agentProc {
	t.Helper()
	ip := h.Addr().String()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`node_name: host-%d
data_dir: %s
registry_addr: %s:5000
admin_addr: %s:5001
origins: [file://%s]
group: %s
drain_timeout: 2s
log: {level: info, format: json}
p2p:
  listen: [/ip4/%s/tcp/4001, /ip4/%s/udp/4001/quic-v1]
serf:
  addr: %s:7946
  join: [%s]
# A fresh fleet: short leases, so a new group proxy's grace period is short.
locks: {ttl: 1s, max_ttl: 2s, grace: 3s}
`, h.Index(), filepath.Join(dir, "data"), ip, ip, spec.origin, spec.group, ip, ip, ip, strings.Join(spec.join, ", "))
	cfgFile := filepath.Join(dir, "shoal.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &agentProc{
		host: h, registry: "http://" + ip + ":5000", admin: "http://" + ip + ":5001",
		exited: make(chan struct{}), ready: make(chan struct{}),
	}
	p.cmd = h.Command(ctx, bin, "agent", "--config", cfgFile)
	pr, pw := io.Pipe()
	p.cmd.Stderr = pw
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	scanned := make(chan struct{})
	go func() {
		defer close(scanned)
		p.scan(pr)
	}()
	go func() {
		p.cmd.Wait()
		pw.Close()
		close(p.exited)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.exited
		<-scanned
		if t.Failed() {
			p.mu.Lock()
			t.Logf("host %d log tail:\n%s", h.Index(), strings.Join(p.tail, "\n"))
			p.mu.Unlock()
		}
	})
	return p
}

// scan reads the agent's JSON log, closes ready at "agent ready" and keeps
// the last lines.
func (p *agentProc) scan(r io.Reader) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	var once sync.Once
	for sc.Scan() {
		var rec struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "agent ready" {
			once.Do(func() { close(p.ready) })
		}
		p.mu.Lock()
		p.tail = append(p.tail, sc.Text())
		if len(p.tail) > 60 {
			p.tail = p.tail[len(p.tail)-60:]
		}
		p.mu.Unlock()
	}
	io.Copy(io.Discard, r)
}

// waitReady waits for the "agent ready" log line.
func (p *agentProc) waitReady(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	select {
	case <-p.ready:
		return nil
	case <-p.exited:
		return fmt.Errorf("host %d: agent exited before ready: %v", p.host.Index(), p.cmd.ProcessState)
	case <-ctx.Done():
		return fmt.Errorf("host %d: agent not ready: %w", p.host.Index(), ctx.Err())
	}
}

// agentStatus is the part of the admin API's /status the test reads.
type agentStatus struct {
	Ready         bool `json:"ready"`
	OutboxPending int  `json:"outbox_pending"`
	DHTPeers      int  `json:"dht_peers"`
	Members       []struct {
		Name   string `json:"name"`
		Status string `json:"status"`
	} `json:"members"`
}

// status reads /status.
func (p *agentProc) status(ctx context.Context) (agentStatus, error) {
	var s agentStatus
	body, err := httpGet(ctx, p.admin+"/status")
	if err != nil {
		return s, err
	}
	if err := json.Unmarshal(body, &s); err != nil {
		return s, fmt.Errorf("host %d status: %w", p.host.Index(), err)
	}
	return s, nil
}

// metric sums every series of the named metric whose labels contain match
// (a bare name matches the unlabelled series too).
func (p *agentProc) metric(ctx context.Context, name, match string) (float64, error) {
	body, err := httpGet(ctx, p.admin+"/metrics")
	if err != nil {
		return 0, err
	}
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		series, value, ok := strings.Cut(line, " ")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		if (series == name || strings.HasPrefix(series, name+"{")) && strings.Contains(series, match) {
			var f float64
			if _, err := fmt.Sscan(value, &f); err != nil {
				return 0, fmt.Errorf("metric line %q: %w", line, err)
			}
			sum += f
		}
	}
	return sum, nil
}

// httpGet returns the body of a 200 response.
func httpGet(ctx context.Context, url string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", url, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return body, nil
}

// poll calls cond every 100 ms until it holds or timeout passes; it
// returns the last error cond gave, if any, on timeout.
func poll(ctx context.Context, what string, timeout time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var last error
	for {
		ok, err := cond()
		if ok {
			return nil
		}
		if err != nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for %s (%s): %w (last error: %v)", what, timeout, ctx.Err(), last)
		case <-time.After(100 * time.Millisecond):
		}
	}
}
