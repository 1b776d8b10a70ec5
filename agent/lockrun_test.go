package agent

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// TestLockRun: six `shoal lock run --limit 2` invocations against a
// three-agent fleet never run more than two commands at once, and all six
// complete (checked from the timestamps the commands write).
func TestLockRun(t *testing.T) {
	if testing.Short() {
		t.Skip("fleet test: not in -short")
	}
	bin := shoalBinary(t)
	fleet := startSerfFleet(t, t.TempDir(), []string{"a", "a", "b"})
	log := filepath.Join(t.TempDir(), "events")
	script := fmt.Sprintf(`echo "start $(date +%%s%%N) $$" >> %[1]s; sleep 0.3; echo "end $(date +%%s%%N) $$" >> %[1]s`, log)
	var wg sync.WaitGroup
	outs := make([]string, 6)
	codes := make([]int, 6)
	for i := range 6 {
		a := fleet[i%len(fleet)]
		wg.Go(func() {
			cmd := exec.Command(bin, "lock", "run", "rollout", "--limit", "2", "--wait", "60s",
				"--admin-addr", a.AdminAddr(), "--", "sh", "-c", script)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			err := cmd.Run()
			outs[i], codes[i] = out.String(), cmd.ProcessState.ExitCode()
			if err != nil && codes[i] == 0 {
				codes[i] = -1
			}
		})
	}
	wg.Wait()
	for i := range 6 {
		if codes[i] != 0 {
			t.Fatalf("invocation %d exited %d:\n%s", i, codes[i], outs[i])
		}
	}
	raw, err := os.ReadFile(log)
	if err != nil {
		t.Fatal(err)
	}
	type event struct {
		at    int64
		delta int
	}
	var events []event
	starts := 0
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 {
			t.Fatalf("bad event line %q", line)
		}
		at, _ := strconv.ParseInt(f[1], 10, 64)
		d := -1
		if f[0] == "start" {
			d, starts = 1, starts+1
		}
		events = append(events, event{at, d})
	}
	if starts != 6 || len(events) != 12 {
		t.Fatalf("%d starts, %d events, want 6 and 12:\n%s", starts, len(events), raw)
	}
	sort.Slice(events, func(i, j int) bool {
		if events[i].at != events[j].at {
			return events[i].at < events[j].at
		}
		return events[i].delta < events[j].delta // an end before a start at the same instant
	})
	running, peak := 0, 0
	for _, e := range events {
		running += e.delta
		peak = max(peak, running)
	}
	t.Logf("6 commands through 3 agents, limit 2: at most %d ran at once", peak)
	if peak > 2 {
		t.Fatalf("%d commands ran at once under --limit 2:\n%s", peak, raw)
	}
	if peak < 2 {
		t.Fatalf("never more than %d at once: the semaphore did not admit two holders", peak)
	}
}
