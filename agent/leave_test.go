package agent

import (
	"testing"
	"time"

	"github.com/shoal-dev/shoal/locks"
)

// TestGracefulLeave: an agent that stops (as on SIGTERM) leaves the serf
// cluster; its peers see it as left, not failed.
func TestGracefulLeave(t *testing.T) {
	if testing.Short() {
		t.Skip("fleet test: not in -short")
	}
	fleet := startSerfFleet(t, t.TempDir(), []string{"a", "a", "a"})
	gone := fleet[2].cfg.NodeName
	if err := fleet[2].stop(); err != nil {
		t.Fatalf("stop: %v", err)
	}
	var status locks.Status
	waitFor(t, "peers to see the leave", 30*time.Second, func() bool {
		for _, m := range fleet[0].cluster.Members() {
			if m.Name == gone {
				status = m.Status
			}
		}
		return status.Gone()
	})
	if status != locks.StatusLeft {
		t.Fatalf("peers see the stopped agent as %s, want left", status)
	}
}
