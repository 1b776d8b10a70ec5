package agent

import (
	"bufio"
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
)

// The binary under test, built once per test run.
var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// shoalBinary builds ./cmd/shoal once.
func shoalBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "shoal-bin-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "shoal")
		out, err := exec.Command("go", "build", "-o", binPath, "./cmd/shoal").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// agentProcess is a `shoal agent` child process.
type agentProcess struct {
	cmd      *exec.Cmd
	registry string
	admin    string
	exited   chan struct{}

	// debug keeps the agent's last debugRing debug lines, shown only if
	// the test fails (a rare failure under load is then explained).
	debugMu sync.Mutex
	debug   []string
}

// debugRing is how many debug lines of an agent a failed test shows.
const debugRing = 200

func (p *agentProcess) keepDebug(line string) {
	p.debugMu.Lock()
	defer p.debugMu.Unlock()
	if len(p.debug) >= debugRing {
		p.debug = p.debug[1:]
	}
	p.debug = append(p.debug, line)
}

// showDebug logs the kept debug lines if the test failed.
func (p *agentProcess) showDebug(t *testing.T) {
	if !t.Failed() {
		return
	}
	p.debugMu.Lock()
	defer p.debugMu.Unlock()
	t.Logf("agent %s: its last %d debug lines:", p.registry, len(p.debug))
	for _, l := range p.debug {
		t.Logf("agent debug: %s", l)
	}
}

// startProcess runs `shoal agent` with args plus loopback :0 addresses and
// waits for its "agent ready" log line.
func startProcess(t *testing.T, args ...string) *agentProcess {
	t.Helper()
	return startProcessEnv(t, nil, args...)
}

// startProcessEnv is startProcess with extra environment variables.
func startProcessEnv(t *testing.T, env []string, args ...string) *agentProcess {
	t.Helper()
	args = append([]string{"agent", "--registry-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0",
		"--p2p-listen", "/ip4/127.0.0.1/tcp/0", "--serf-addr", "127.0.0.1:0"}, args...)
	cmd := exec.Command(shoalBinary(t), args...)
	// Debug lines are kept, and shown if the test fails; a test that sets
	// the level itself keeps its own.
	cmd.Env = append(append(os.Environ(), "SHOAL_LOG_LEVEL=debug"), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &agentProcess{cmd: cmd, exited: make(chan struct{})}
	ready := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 1<<16), 1<<20)
		for sc.Scan() {
			var rec struct {
				Msg      string `json:"msg"`
				Registry string `json:"registry"`
				Admin    string `json:"admin"`
			}
			switch {
			case json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "agent ready":
				p.registry, p.admin = rec.Registry, rec.Admin
				close(ready)
			case strings.Contains(sc.Text(), `"level":"DEBUG"`):
				p.keepDebug(sc.Text())
			case !strings.Contains(sc.Text(), `"level":"INFO"`):
				t.Logf("agent: %s", sc.Text())
			}
		}
		io.Copy(io.Discard, stderr)
	}()
	go func() { cmd.Wait(); close(p.exited) }()
	select {
	case <-ready:
	case <-p.exited:
		t.Fatalf("agent exited before ready: %v", cmd.ProcessState)
	case <-time.After(30 * time.Second):
		cmd.Process.Kill()
		t.Fatal("agent not ready within 30s")
	}
	t.Cleanup(func() { p.kill(); p.showDebug(t) })
	return p
}

// kill sends SIGKILL and waits for the process to go.
func (p *agentProcess) kill() {
	select {
	case <-p.exited:
		return
	default:
	}
	p.cmd.Process.Kill()
	<-p.exited
}

func (p *agentProcess) url(path string) string { return "http://" + p.registry + path }

// status reads the agent's /status.
func (p *agentProcess) status(t *testing.T) Status {
	t.Helper()
	resp, err := http.Get("http://" + p.admin + "/status")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var s Status
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s
}
