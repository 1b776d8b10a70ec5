package agent

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLockRunRestartsOwnAgent: `shoal lock run` through the local agent,
// whose command stops that agent (as `systemctl restart shoal` does): the
// agent drains at once and exits 0, and the command runs to its end.
func TestLockRunRestartsOwnAgent(t *testing.T) {
	if testing.Short() {
		t.Skip("process test: not in -short")
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "shoal.yaml")
	if err := os.WriteFile(cfg, []byte("locks: {ttl: 1s, max_ttl: 2s, grace: 3s}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startProcess(t, "--config", cfg, "--data-dir", filepath.Join(dir, "data"), "--drain-timeout", "30s")
	marker, killed := filepath.Join(dir, "finished"), filepath.Join(dir, "killed")
	script := fmt.Sprintf("touch %s; kill -TERM %d; sleep 1; touch %s", killed, p.cmd.Process.Pid, marker)
	cmd := exec.Command(shoalBinary(t), "lock", "run", "rollout", "--ttl", "2s", "--admin-addr", p.admin, "--", "sh", "-c", script)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("lock run: %v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "stays held until its lease expires") {
		t.Fatalf("lock run did not report the draining agent:\n%s", out.String())
	}
	if _, err := exec.Command("test", "-e", marker).Output(); err != nil {
		t.Fatal("the command was cut short")
	}
	select {
	case <-p.exited:
	case <-time.After(20 * time.Second):
		t.Fatal("the agent did not exit")
	}
	if code := p.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("agent exit code %d, want 0", code)
	}
	st, err := os.Stat(killed)
	if err != nil {
		t.Fatal(err)
	}
	if took := time.Since(st.ModTime()); took > 15*time.Second {
		t.Fatalf("the agent took %s to stop under the lock: the hold delayed the drain", took)
	}
}
