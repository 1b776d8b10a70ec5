// Package registrytest runs a real CNCF Distribution registry (built into
// the repository's .tools/bin by .ci/tools.sh) on 127.0.0.1 for tests.
package registrytest

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

// Registry is a distribution registry process serving filesystem
// storage from a temporary directory on 127.0.0.1.
type Registry struct {
	addr   string // host:port, as the registry reported it
	cmd    *exec.Cmd
	exited chan struct{}

	mu  sync.Mutex
	log strings.Builder
}

// findRegistry returns the registry binary from PATH or the repository's
// .tools/bin (found by walking up to go.mod). Without one the test skips,
// unless CI is set.
func findRegistry(t testing.TB) string {
	t.Helper()
	if p, err := exec.LookPath("registry"); err == nil {
		return p
	}
	if dir, err := os.Getwd(); err == nil {
		for range 8 {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				p := filepath.Join(dir, ".tools", "bin", "registry")
				if _, err := os.Stat(p); err == nil {
					return p
				}
				break
			}
			dir = filepath.Dir(dir)
		}
	}
	msg := "distribution registry not found on PATH or in .tools/bin; run .ci/tools.sh to build it"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Start runs a registry on a port the kernel picks, with authYAML
// (an indented "auth:" block, or "") in its configuration, and stops it when
// the test ends. It returns once /v2/ answers.
func Start(t testing.TB, authYAML string) *Registry {
	t.Helper()
	bin := findRegistry(t)
	dir := t.TempDir()
	config := fmt.Sprintf(`version: 0.1
log:
  level: info
  formatter: json
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: 127.0.0.1:0
  secret: shoal-upstream-test
%s`, filepath.Join(dir, "storage"), authYAML)
	path := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(path, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", path)
	cmd.Env = append(os.Environ(), "OTEL_TRACES_EXPORTER=none", "OTEL_METRICS_EXPORTER=none", "OTEL_LOGS_EXPORTER=none")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout = cmd.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start registry: %v", err)
	}
	r := &Registry{cmd: cmd, exited: make(chan struct{})}
	t.Cleanup(r.Stop)
	addrc := make(chan string, 1)
	go r.readLog(stderr, addrc)

	deadline := time.After(20 * time.Second)
	select {
	case r.addr = <-addrc:
	case <-r.exited:
		t.Fatalf("registry exited during start:\n%s", r.logText())
	case <-deadline:
		t.Fatalf("registry did not report its address:\n%s", r.logText())
	}
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: time.Second}
	for {
		resp, err := client.Get("http://" + r.addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK || resp.StatusCode == http.StatusUnauthorized {
				return r
			}
		}
		select {
		case <-r.exited:
			t.Fatalf("registry exited during start:\n%s", r.logText())
		case <-deadline:
			t.Fatalf("registry did not answer /v2/:\n%s", r.logText())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// readLog keeps the registry's log and sends the address from its
// "listening on ADDR" line; it closes r.exited when the process ends.
func (r *Registry) readLog(stderr io.Reader, addrc chan<- string) {
	sc := bufio.NewScanner(stderr)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		r.mu.Lock()
		r.log.WriteString(line + "\n")
		r.mu.Unlock()
		var entry struct {
			Msg string `json:"msg"`
		}
		if json.Unmarshal([]byte(line), &entry) == nil {
			if addr, ok := strings.CutPrefix(entry.Msg, "listening on "); ok {
				select {
				case addrc <- strings.TrimSuffix(addr, ", tls"):
				default:
				}
			}
		}
	}
	r.cmd.Wait()
	close(r.exited)
}

// Addr is the registry's host:port.
func (r *Registry) Addr() string { return r.addr }

// Log returns what the registry has logged so far.
func (r *Registry) Log() string { return r.logText() }

func (r *Registry) logText() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.log.String()
}

// Stop kills the registry and waits for it to exit.
func (r *Registry) Stop() {
	select {
	case <-r.exited:
		return
	default:
	}
	r.cmd.Process.Kill()
	<-r.exited
}
