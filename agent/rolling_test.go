package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// rollRollout is the script each `shoal lock run rollout` runs while it
// holds the lock: it logs when it got the lock, tells the test (the started
// file), waits at most 60 s for the test to finish the restart (the done
// file) and logs when it lets go. Arguments: events started done node.
const rollRollout = `echo "start $(date +%s%N) $4" >> "$1"
: > "$2"
n=0
while [ ! -e "$3" ]; do
	n=$((n+1))
	if [ "$n" -gt 1200 ]; then echo "no done file after 60s" >&2; exit 3; fi
	sleep 0.05
done
echo "end $(date +%s%N) $4" >> "$1"`

// TestRollingUpgrade (issue 8, acceptance 4): a four-agent fleet in which
// every agent in turn is stopped (SIGTERM) and started again on its data
// directory, each restart inside `shoal lock run rollout --limit 1`, keeps
// serving pulls throughout: no pull fails, at most one agent is ever down,
// and a restarted agent serves the image from the cache it had (it fetches
// nothing from the origin or from peers).
//
// The rollouts are pipelined: the rollout of agent i+1 is already waiting
// for the lock while agent i is down, so the lock, not the test's ordering,
// keeps two agents from being down at once. A rollout goes through another
// agent's admin API (the gateway), one that stays up while it waits and
// while it holds the lock.
func TestRollingUpgrade(t *testing.T) {
	if testing.Short() {
		t.Skip("process fleet test: not in -short")
	}
	const nodes = 4
	begin := time.Now()
	bin := shoalBinary(t)
	dir := t.TempDir()
	origin := t.TempDir()
	cfgFile := filepath.Join(dir, "shoal.yaml")
	if err := os.WriteFile(cfgFile, []byte("locks: {ttl: 1s, max_ttl: 2s, grace: 3s}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := &rollFleet{t: t, config: cfgFile, origin: origin}
	for i := range nodes {
		f.nodes = append(f.nodes, &rollNode{name: fmt.Sprintf("roll-%d", i), data: filepath.Join(dir, fmt.Sprintf("data-%d", i))})
	}
	for i := range nodes {
		f.start(i)
		f.setUp(i, true)
	}
	f.waitConverged(60 * time.Second)
	t.Logf("fleet of %d processes ready in %s", nodes, time.Since(begin).Round(time.Millisecond))

	img := rollImage(t, f.nodes[0].proc.registry, "roll/app:v1")
	waitFor(t, "replication from "+f.nodes[0].name, 30*time.Second, func() bool {
		s, err := rollStatus(f.nodes[0].proc.admin)
		return err == nil && s.OutboxPending == 0
	})
	client := &http.Client{Transport: &http.Transport{}, Timeout: 20 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	// Warm every cache, then check each agent holds the whole image.
	for _, n := range f.nodes {
		if err := img.pull(t.Context(), client, n.proc.registry); err != nil {
			t.Fatalf("warm-up pull from %s: %v", n.name, err)
		}
		// The last blob's commit may end just after its response.
		var s Status
		var err error
		waitFor(t, n.name+" caching the image", 30*time.Second, func() bool {
			s, err = rollStatus(n.proc.admin)
			return err == nil && s.CacheBlobs >= len(img.blobs)
		})
		n.cacheBlobs = s.CacheBlobs
	}

	stop := make(chan struct{})
	var pullers sync.WaitGroup
	for w := range 2 {
		pullers.Go(func() { f.pullLoop(client, img, w, stop) })
	}
	stopPulls := sync.OnceFunc(func() { close(stop); pullers.Wait() })
	t.Cleanup(stopPulls)

	events := filepath.Join(dir, "events")
	flag := func(what string, i int) string { return filepath.Join(dir, fmt.Sprintf("%s-%d", what, i)) }
	rollouts := make([]*rollLockRun, nodes)
	launch := func(i int) {
		gw := (i + 1) % nodes // up while rollout i waits (agent i-1 restarts) and holds (agent i restarts)
		rollouts[i] = startRollLockRun(t, bin, f.admin(gw), rollRollout, events, flag("started", i), flag("done", i), strconv.Itoa(i))
	}
	rollStart := time.Now()
	launch(0)
	for i := range nodes {
		r := rollouts[i]
		waitFor(t, fmt.Sprintf("rollout %d to hold the lock", i), 60*time.Second, func() bool {
			select {
			case <-r.exited:
				t.Fatalf("rollout %d exited before it held the lock: %s", i, r.result())
			default:
			}
			_, err := os.Stat(flag("started", i))
			return err == nil
		})
		if i+1 < nodes {
			launch(i + 1) // waits for the lock while agent i is down
			next := rollouts[i+1]
			waitFor(t, fmt.Sprintf("rollout %d to ask for the lock", i+1), 10*time.Second, func() bool {
				return strings.Contains(next.out.String(), "waiting for lock")
			})
		}
		f.restart(i)
		if i+1 < nodes {
			if _, err := os.Stat(flag("started", i+1)); err == nil {
				t.Fatalf("rollout %d held the lock while rollout %d did", i+1, i)
			}
		}
		if err := os.WriteFile(flag("done", i), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		select {
		case <-r.exited:
		case <-time.After(30 * time.Second):
			t.Fatalf("rollout %d did not finish within 30s of its restart", i)
		}
		if r.code != 0 {
			t.Fatalf("rollout %d: %s", i, r.result())
		}
	}
	rollTook := time.Since(rollStart)

	// Every agent, restarted, has served a few whole pulls since.
	waitFor(t, "pulls from every restarted agent", 30*time.Second, func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		for _, n := range f.nodes {
			if n.pullsSinceStart < 3 {
				return false
			}
		}
		return true
	})
	stopPulls()

	f.mu.Lock()
	failures, ok, peak := f.failures, f.pullsOK, f.peakDown
	f.mu.Unlock()
	t.Logf("rollout of %d agents took %s; %d whole-image pulls succeeded, %d failed", nodes, rollTook.Round(time.Millisecond), ok, len(failures))
	for _, n := range f.nodes {
		t.Logf("%s (lock proxy: %v): down at +%s, back and converged in %s, %d pulls since", n.name, n.wasProxy,
			n.downAt.Sub(rollStart).Round(time.Millisecond), n.upAt.Sub(n.downAt).Round(time.Millisecond), n.pullsSinceStart)
	}
	if len(failures) > 0 {
		t.Fatalf("%d pulls failed, first: %v", len(failures), failures[0])
	}
	if ok < 20 {
		t.Fatalf("only %d pulls during the rollout: the pull loop did not run", ok)
	}
	if peak != 1 {
		t.Fatalf("%d agents were down at once, want 1", peak)
	}
	// Caches persisted: since its restart no agent brought a byte in.
	for _, n := range f.nodes {
		m, err := rollMetrics(n.proc.admin)
		if err != nil {
			t.Fatal(err)
		}
		for _, src := range []string{"origin", "peer"} {
			v, ok := m[`shoal_fetch_bytes_total{source="`+src+`"}`]
			switch {
			case !ok:
				t.Fatalf("%s has no shoal_fetch_bytes_total series for source %q", n.name, src)
			case v != 0:
				t.Errorf("%s fetched %v bytes from the %s after its restart; its cache should have served them", n.name, v, src)
			}
		}
	}
	f.checkLockEvents(events)
}

// rollNode is one agent of the fleet across its restarts.
type rollNode struct {
	name, data string
	proc       *agentProcess
	serf       string // the serf address it bound
	peerID     string // its libp2p identity, kept in its data dir
	up         bool
	inflight   sync.WaitGroup // pulls sent to proc; Add only while up, under rollFleet.mu

	cacheBlobs      int  // blobs cached before the rollout
	wasProxy        bool // the group's lock proxy when it was stopped
	downAt, upAt    time.Time
	pullsSinceStart int
}

// rollFleet is the four agents, which ones are up, and the pull results.
type rollFleet struct {
	t              *testing.T
	config, origin string

	mu       sync.Mutex
	nodes    []*rollNode
	down     int
	peakDown int
	next     int // round-robin pull target
	pullsOK  int
	failures []error
}

// start runs agent i on its data dir, joining every other agent up, and
// returns its status; it takes no pulls until setUp.
func (f *rollFleet) start(i int) Status {
	t := f.t
	t.Helper()
	n := f.nodes[i]
	args := []string{"--config", f.config, "--data-dir", n.data, "--origin", "file://" + f.origin,
		"--node-name", n.name, "--drain-timeout", "10s"}
	f.mu.Lock()
	for j, o := range f.nodes {
		if j != i && o.up {
			args = append(args, "--join", o.serf)
		}
	}
	f.mu.Unlock()
	p := startProcess(t, args...)
	s, err := rollStatus(p.admin)
	if err != nil {
		t.Fatal(err)
	}
	i2 := slices.IndexFunc(s.Members, func(m Member) bool { return m.Name == n.name })
	if i2 < 0 {
		t.Fatalf("%s does not list itself among the members: %+v", n.name, s.Members)
	}
	f.mu.Lock()
	n.proc, n.serf, n.pullsSinceStart = p, s.Members[i2].Addr, 0
	f.mu.Unlock()
	if n.peerID != "" && s.PeerID != n.peerID {
		t.Fatalf("%s came back as peer %s, was %s: its identity did not persist in its data dir", n.name, s.PeerID, n.peerID)
	}
	n.peerID = s.PeerID
	return s
}

// setUp marks agent i up (pulls go to it) or down, and tracks how many
// agents are down at once.
func (f *rollFleet) setUp(i int, up bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := f.nodes[i]
	switch {
	case up && !n.up:
		n.upAt = time.Now()
		if !n.downAt.IsZero() {
			f.down--
		}
	case !up && n.up:
		n.downAt = time.Now()
		f.down++
		f.peakDown = max(f.peakDown, f.down)
	}
	n.up = up
}

// restart stops agent i with SIGTERM once the pulls sent to it are done,
// starts it again on the same data dir and waits until the fleet has
// converged around it; only then does it take pulls again.
func (f *rollFleet) restart(i int) {
	t := f.t
	t.Helper()
	n := f.nodes[i]
	if s, err := rollStatus(n.proc.admin); err == nil {
		n.wasProxy = s.Proxy == n.name
	}
	f.setUp(i, false)
	n.inflight.Wait()
	if err := n.proc.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-n.proc.exited:
	case <-time.After(30 * time.Second):
		t.Fatalf("%s did not exit within 30s of SIGTERM", n.name)
	}
	if code := n.proc.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("%s exited %d after SIGTERM, want 0", n.name, code)
	}
	if s := f.start(i); s.CacheBlobs < n.cacheBlobs {
		t.Fatalf("%s restarted with %d cached blobs, had %d", n.name, s.CacheBlobs, n.cacheBlobs)
	}
	f.waitConverged(60 * time.Second)
	f.setUp(i, true)
}

// admin is agent i's current admin address.
func (f *rollFleet) admin(i int) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nodes[i].proc.admin
}

// waitConverged waits until every agent sees every agent alive (at its
// current address) and has DHT peers.
func (f *rollFleet) waitConverged(timeout time.Duration) {
	f.t.Helper()
	f.mu.Lock()
	want := map[string]string{}
	var admins []string
	for _, n := range f.nodes {
		want[n.name] = n.serf
		admins = append(admins, n.proc.admin)
	}
	f.mu.Unlock()
	waitFor(f.t, "membership and DHT to converge", timeout, func() bool {
		for _, a := range admins {
			s, err := rollStatus(a)
			if err != nil || !s.Ready || s.DHTPeers == 0 {
				return false
			}
			alive := 0
			for _, m := range s.Members {
				if m.Status == "alive" && want[m.Name] == m.Addr {
					alive++
				}
			}
			if alive != len(want) {
				return false
			}
		}
		return true
	})
}

// pullLoop pulls the whole image from the agents that are up, round-robin,
// every 50 ms until stop is closed (at most 3000 times).
func (f *rollFleet) pullLoop(client *http.Client, img *rollImageData, worker int, stop <-chan struct{}) {
	for range 3000 {
		select {
		case <-stop:
			return
		case <-time.After(50 * time.Millisecond):
		}
		f.mu.Lock()
		var n *rollNode
		for range f.nodes {
			c := f.nodes[f.next%len(f.nodes)]
			f.next++
			if c.up {
				n = c
				break
			}
		}
		if n == nil {
			f.failures = append(f.failures, fmt.Errorf("worker %d: no agent up", worker))
			f.mu.Unlock()
			continue
		}
		n.inflight.Add(1)
		reg := n.proc.registry
		f.mu.Unlock()

		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		err := img.pull(ctx, client, reg)
		cancel()
		f.mu.Lock()
		if err != nil {
			f.failures = append(f.failures, fmt.Errorf("worker %d, %s at %s: %w", worker, n.name, time.Now().Format("15:04:05.000"), err))
		} else {
			f.pullsOK++
			n.pullsSinceStart++
		}
		f.mu.Unlock()
		n.inflight.Done()
	}
}

// checkLockEvents reads the rollouts' start/end log: one start and one end
// per agent, the holds never overlap, and each agent was down only inside
// its own rollout's hold.
func (f *rollFleet) checkLockEvents(path string) {
	t := f.t
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	holds := make([]struct{ start, end int64 }, len(f.nodes))
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		fs := strings.Fields(line)
		if len(fs) != 3 {
			t.Fatalf("bad event line %q", line)
		}
		at, err1 := strconv.ParseInt(fs[1], 10, 64)
		i, err2 := strconv.Atoi(fs[2])
		if err1 != nil || err2 != nil || i < 0 || i >= len(holds) {
			t.Fatalf("bad event line %q", line)
		}
		switch h := &holds[i]; {
		case fs[0] == "start" && h.start == 0:
			h.start = at
		case fs[0] == "end" && h.end == 0:
			h.end = at
		default:
			t.Fatalf("unexpected event %q:\n%s", line, raw)
		}
	}
	for i, n := range f.nodes {
		h := holds[i]
		if h.start == 0 || h.end == 0 {
			t.Fatalf("rollout %d did not log both a start and an end:\n%s", i, raw)
		}
		if i > 0 && h.start < holds[i-1].end {
			t.Fatalf("rollout %d got the lock %s before rollout %d let go", i, time.Duration(holds[i-1].end-h.start), i-1)
		}
		if n.downAt.UnixNano() < h.start || n.upAt.UnixNano() > h.end {
			t.Fatalf("%s was down outside its rollout's hold", n.name)
		}
	}
}

// rollImageData is the pushed image: its raw manifest and every blob.
type rollImageData struct {
	repo, tag string
	manifest  []byte
	mediaType string
	blobs     map[string][]byte // digest → bytes (config and layers)
}

// rollImage pushes a random three-layer image to the registry at addr with
// a real client and returns its bytes.
func rollImage(t *testing.T, addr, ref string) *rollImageData {
	t.Helper()
	img, err := random.Image(256<<10, 3)
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(addr+"/"+ref, name.Insecure)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, remote.WithContext(t.Context())); err != nil {
		t.Fatal(err)
	}
	out := &rollImageData{repo: r.Context().RepositoryStr(), tag: r.Identifier(), blobs: map[string][]byte{}}
	if out.manifest, err = img.RawManifest(); err != nil {
		t.Fatal(err)
	}
	mt, err := img.MediaType()
	if err != nil {
		t.Fatal(err)
	}
	out.mediaType = string(mt)
	cfg, err := img.RawConfigFile()
	if err != nil {
		t.Fatal(err)
	}
	cd, err := img.ConfigName()
	if err != nil {
		t.Fatal(err)
	}
	out.blobs[cd.String()] = cfg
	layers, err := img.Layers()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range layers {
		d, err := l.Digest()
		if err != nil {
			t.Fatal(err)
		}
		rc, err := l.Compressed()
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil {
			t.Fatal(err)
		}
		out.blobs[d.String()] = b
	}
	return out
}

// pull GETs the manifest by tag and every blob from the registry at addr;
// anything but 200 with the pushed bytes is an error.
func (img *rollImageData) pull(ctx context.Context, client *http.Client, addr string) error {
	get := func(path, accept string, want []byte) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
		if err != nil {
			return err
		}
		if accept != "" {
			req.Header.Set("Accept", accept)
		}
		resp, err := client.Do(req)
		if err != nil {
			return err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		switch {
		case err != nil:
			return fmt.Errorf("GET %s: %d, read: %w", path, resp.StatusCode, err)
		case resp.StatusCode != http.StatusOK:
			return fmt.Errorf("GET %s: %d %s", path, resp.StatusCode, bytes.TrimSpace(body))
		case !bytes.Equal(body, want):
			return fmt.Errorf("GET %s: %d bytes differ from the %d pushed", path, len(body), len(want))
		}
		return nil
	}
	if err := get("/v2/"+img.repo+"/manifests/"+img.tag, img.mediaType, img.manifest); err != nil {
		return err
	}
	for d, b := range img.blobs {
		if err := get("/v2/"+img.repo+"/blobs/"+d, "", b); err != nil {
			return err
		}
	}
	return nil
}

// rollLockRun is a `shoal lock run` child process.
type rollLockRun struct {
	cmd    *exec.Cmd
	out    rollOutput
	exited chan struct{}
	code   int
	err    error
}

// startRollLockRun runs `shoal lock run rollout --limit 1` through the agent
// whose admin API is at admin, with script and its arguments as the command.
func startRollLockRun(t *testing.T, bin, admin, script string, args ...string) *rollLockRun {
	t.Helper()
	r := &rollLockRun{exited: make(chan struct{})}
	r.cmd = exec.Command(bin, append([]string{"lock", "run", "rollout", "--limit", "1", "--wait", "60s",
		"--admin-addr", admin, "--", "sh", "-c", script, "sh"}, args...)...)
	r.cmd.Stdout, r.cmd.Stderr = &r.out, &r.out
	if err := r.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		r.err = r.cmd.Wait()
		r.code = r.cmd.ProcessState.ExitCode()
		close(r.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-r.exited:
		default:
			r.cmd.Process.Kill()
			<-r.exited
		}
	})
	return r
}

// result describes how the lock run ended; call it once exited is closed.
func (r *rollLockRun) result() string {
	return fmt.Sprintf("exit %d (%v):\n%s", r.code, r.err, r.out.String())
}

// rollOutput collects a child's output; it can be read while the child runs.
type rollOutput struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (o *rollOutput) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *rollOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// rollStatus reads an agent's /status without failing the test.
func rollStatus(admin string) (Status, error) {
	var s Status
	resp, err := http.Get("http://" + admin + "/status")
	if err != nil {
		return s, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return s, fmt.Errorf("status: %s", resp.Status)
	}
	return s, json.NewDecoder(resp.Body).Decode(&s)
}

// rollMetrics reads an agent's /metrics as series → value.
func rollMetrics(admin string) (map[string]float64, error) {
	resp, err := http.Get("http://" + admin + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, err
	}
	out := map[string]float64{}
	for _, line := range strings.Split(string(body), "\n") {
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		i := strings.LastIndexByte(line, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(line[i+1:], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		out[line[:i]] = v
	}
	if len(out) == 0 {
		return nil, errors.New("metrics: empty")
	}
	return out, nil
}
