package netns_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/sim/netns"
)

// helperEnv makes the test binary a small HTTP server (see serveHelper):
// a real process to run inside a namespace without the shoal binary.
const helperEnv = "SHOAL_NETNS_HELPER_ADDR"

func TestMain(m *testing.M) {
	if addr := os.Getenv(helperEnv); addr != "" {
		if err := serveHelper(addr); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// serveHelper serves GET /bytes?n=N (N zero bytes), POST /sink (counts the
// body) and GET /fetch?url=U (GETs U and reports the bytes and seconds).
func serveHelper(addr string) error {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {})
	mux.HandleFunc("GET /bytes", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.ParseInt(r.URL.Query().Get("n"), 10, 64)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Length", strconv.FormatInt(n, 10))
		io.CopyN(w, zeros{}, n)
	})
	mux.HandleFunc("POST /sink", func(w http.ResponseWriter, r *http.Request) {
		n, err := io.Copy(io.Discard, r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		fmt.Fprint(w, n)
	})
	mux.HandleFunc("GET /fetch", func(w http.ResponseWriter, r *http.Request) {
		begin := time.Now()
		resp, err := http.Get(r.URL.Query().Get("url"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		n, err := io.Copy(io.Discard, resp.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		fmt.Fprintf(w, "%d %f", n, time.Since(begin).Seconds())
	})
	return http.ListenAndServe(addr, mux)
}

type zeros struct{}

func (zeros) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

// newNetwork builds a network for the test, skipping where namespaces
// cannot be created, and at the end closes it and checks that no namespace
// or root link of it is left.
func newNetwork(t *testing.T, ctx context.Context, cfg netns.Config) *netns.Network {
	t.Helper()
	if testing.Short() {
		t.Skip("network namespaces: not in -short")
	}
	n, err := netns.New(ctx, cfg)
	if errors.Is(err, netns.ErrUnavailable) {
		t.Skipf("skipping: this test runs processes in Linux network namespaces, which cannot be created here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { closeAndCheck(t, n) })
	return n
}

// closeAndCheck closes n and fails the test if any of its namespaces or its
// root link survived.
func closeAndCheck(t *testing.T, n *netns.Network) {
	t.Helper()
	names, link := n.Namespaces(), n.RootLink()
	if err := n.Close(); err != nil {
		t.Errorf("close network: %v", err)
	}
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Errorf("ip netns list: %v: %s", err, out)
	}
	for _, name := range names {
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) > 0 && f[0] == name {
				t.Errorf("namespace %s left behind", name)
			}
		}
	}
	if err := exec.Command("ip", "link", "show", "dev", link).Run(); err == nil {
		t.Errorf("root link %s left behind", link)
	}
}

// startHelper runs the helper server in host h on port 8080 and waits until
// it answers.
func startHelper(t *testing.T, ctx context.Context, h *netns.Host) string {
	t.Helper()
	addr := net.JoinHostPort(h.Addr().String(), "8080")
	cmd := h.Command(ctx, os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"="+addr)
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() { cmd.Process.Kill(); <-exited })
	base := "http://" + addr
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(base + "/healthz")
		if err == nil {
			resp.Body.Close()
			return base
		}
		select {
		case <-exited:
			t.Fatalf("helper in %s exited: %v", h.Namespace(), cmd.ProcessState)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("helper in %s not answering after 10s: %v", h.Namespace(), err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// boundSeconds is the time n bytes take at bps bit/s.
func boundSeconds(n, bps int64) float64 { return float64(n) * 8 / float64(bps) }

// TestShapedLink checks the harness itself with a helper process: a host's
// link is capped in both directions, hosts reach each other over the
// bridge, and removing the cap lifts it.
func TestShapedLink(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	const bw = 100 * netns.Mbit
	const size = 4 << 20
	n := newNetwork(t, ctx, netns.Config{Hosts: 2, Bandwidth: bw, Prefix: "nstest"})
	h0, h1 := n.Hosts()[0], n.Hosts()[1]
	base0, base1 := startHelper(t, ctx, h0), startHelper(t, ctx, h1)
	bound := boundSeconds(size, bw)

	check := func(what string, secs float64, wantShaped bool) {
		t.Helper()
		t.Logf("%s: %d bytes in %.3fs (%.0f Mbit/s; bound at %d Mbit/s: %.3fs)",
			what, size, secs, float64(size)*8/secs/1e6, bw/netns.Mbit, bound)
		if wantShaped && secs < 0.9*bound {
			t.Errorf("%s took %.3fs, faster than the link allows (%.3fs): not shaped", what, secs, bound)
		}
		if !wantShaped && secs > 0.5*bound {
			t.Errorf("%s took %.3fs with the cap removed, want well under %.3fs", what, secs, bound)
		}
	}

	// Host 0 uploads to the root namespace.
	begin := time.Now()
	resp, err := http.Get(fmt.Sprintf("%s/bytes?n=%d", base0, size))
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || got != size {
		t.Fatalf("download from host 0: %d bytes, %v", got, err)
	}
	check("host 0 → root", time.Since(begin).Seconds(), true)

	// Host 0 downloads from the root namespace.
	begin = time.Now()
	resp, err = http.Post(base0+"/sink", "application/octet-stream", io.LimitReader(zeros{}, size))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(body) != strconv.Itoa(size) {
		t.Fatalf("upload to host 0: sink counted %q, want %d", body, size)
	}
	check("root → host 0", time.Since(begin).Seconds(), true)

	// Host 1 fetches from host 0 across the bridge.
	resp, err = http.Get(base1 + "/fetch?url=" + fmt.Sprintf("%s/bytes?n=%d", base0, size))
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	var fetched int64
	var secs float64
	if _, err := fmt.Sscan(string(body), &fetched, &secs); err != nil || fetched != size {
		t.Fatalf("host 1 fetching from host 0: %q (%v)", body, err)
	}
	check("host 0 → host 1", secs, true)

	// Without the cap, the same download is fast.
	if err := h0.SetBandwidth(ctx, 0); err != nil {
		t.Fatal(err)
	}
	begin = time.Now()
	resp, err = http.Get(fmt.Sprintf("%s/bytes?n=%d", base0, size))
	if err != nil {
		t.Fatal(err)
	}
	got, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil || got != size {
		t.Fatalf("unshaped download from host 0: %d bytes, %v", got, err)
	}
	check("host 0 → root, unshaped", time.Since(begin).Seconds(), false)
}

// TestCloseKillsAndRemoves: Close kills processes left in the namespaces
// and removes everything; New removes namespaces of dead test processes.
func TestCloseKillsAndRemoves(t *testing.T) {
	if testing.Short() {
		t.Skip("network namespaces: not in -short")
	}
	t.Parallel()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()

	// A namespace of a test process that died without closing its network.
	dead := exec.Command("true")
	if err := dead.Run(); err != nil {
		t.Fatal(err)
	}
	stale := fmt.Sprintf("nsold-%d-0badcafe-h0", dead.Process.Pid)
	if out, err := exec.Command("ip", "netns", "add", stale).CombinedOutput(); err != nil {
		t.Skipf("skipping: cannot create network namespaces here: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", stale).Run() })

	n := newNetwork(t, ctx, netns.Config{Hosts: 2, Prefix: "nsold"})
	if out, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(out), stale) {
		t.Errorf("stale namespace %s still listed after New", stale)
	}

	sleeper := n.Hosts()[1].Command(context.Background(), "sleep", "60")
	if err := sleeper.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- sleeper.Wait() }()
	// A command that has not joined its namespace yet (still in `ip netns
	// exec`, before setns), which `ip netns pids` cannot see: the same
	// command, run without `ip`, never joins it.
	early := n.Hosts()[0].Command(context.Background(), "sleep", "60")
	sleepPath, err := exec.LookPath("sleep")
	if err != nil {
		t.Fatal(err)
	}
	early.Path, early.Args = sleepPath, []string{"sleep", "60"}
	if err := early.Start(); err != nil {
		t.Fatal(err)
	}
	earlyExited := make(chan error, 1)
	go func() { earlyExited <- early.Wait() }()
	closeAndCheck(t, n)
	for _, p := range []struct {
		name   string
		cmd    *exec.Cmd
		exited chan error
	}{{"process in host 1", sleeper, exited}, {"process not yet in host 0", early, earlyExited}} {
		select {
		case err := <-p.exited:
			t.Logf("%s ended at Close: %v", p.name, err)
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			t.Fatalf("%s still running 10s after Close", p.name)
		}
	}
}
