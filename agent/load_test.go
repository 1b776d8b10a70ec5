package agent

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/cas/objstore"
	"github.com/shoal-dev/shoal/cas/objstore/filestore"
)

// procKiB reads a "Name:   123 kB" line of /proc/<pid>/status.
func procKiB(t *testing.T, pid int, name string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(b)) {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			n, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("parse %s: %v", line, err)
			}
			return n
		}
	}
	t.Fatalf("no %s in /proc/%d/status", name, pid)
	return 0
}

// TestReliabilityLoad runs 500 concurrent clients against one real agent
// process: each pulls blobs that are cached (pushed before) and blobs that
// are only in the object store (the first requests join one fetch). Every
// pull must succeed with the right bytes; the agent's peak RSS must stay
// bounded. Latency percentiles and peak RSS are logged (docs/RELIABILITY.md
// records them).
func TestReliabilityLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("load test: not in -short")
	}
	const (
		clients       = 500
		pullsEach     = 4
		blobSize      = 512 << 10
		cachedBlobs   = 16
		uncachedBlobs = 16
		maxPeakRSSMiB = 768
	)
	origin := t.TempDir()
	args := []string{"--data-dir", t.TempDir(), "--origin", "file://" + origin}
	if os.Getenv("SHOAL_LOAD_DEFAULT_GRACE") == "" {
		// Short leases and grace keep the warm-up below short; set the
		// variable to measure the first pull with the default lock grace.
		cfgFile := filepath.Join(t.TempDir(), "shoal.yaml")
		if err := os.WriteFile(cfgFile, []byte("locks: {ttl: 1s, max_ttl: 2s, grace: 3s}\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--config", cfgFile)
	}
	p := startProcess(t, args...)
	base := "http://" + p.registry
	pid := p.cmd.Process.Pid

	type blob struct {
		d      digest.Digest
		b      []byte
		cached bool
	}
	var blobs []blob
	for i := range cachedBlobs {
		b, d := randomBlob(uint64(1000+i), blobSize+i)
		if code := pushBlob(t, base, "load/repo", b, d); code != http.StatusCreated {
			t.Fatalf("push: %d", code)
		}
		blobs = append(blobs, blob{d, b, true})
	}
	store, err := filestore.New(origin)
	if err != nil {
		t.Fatal(err)
	}
	for i := range uncachedBlobs {
		b, d := randomBlob(uint64(2000+i), blobSize+i)
		if err := store.Put(t.Context(), objstore.BlobKey(d), bytes.NewReader(b), int64(len(b))); err != nil {
			t.Fatal(err)
		}
		blobs = append(blobs, blob{d, b, false})
	}
	// A freshly started proxy grants no lock for locks.grace (default 20 s,
	// the time holders get to re-assert leases to a new owner), so the
	// first pull that needs the origin lock waits that long. Wait it out
	// with one pull of another blob and measure the steady state.
	warm, warmD := randomBlob(2999, blobSize)
	if err := store.Put(t.Context(), objstore.BlobKey(warmD), bytes.NewReader(warm), int64(len(warm))); err != nil {
		t.Fatal(err)
	}
	warmStart := time.Now()
	if absent, err := pullExact(&crashNode{proc: p}, "load/repo", warmD, warm); err != nil || absent {
		t.Fatalf("warm-up pull: absent %v, %v", absent, err)
	}
	firstUncached := time.Since(warmStart)
	rssBefore := procKiB(t, pid, "VmRSS")

	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: clients, MaxConnsPerHost: 0, DisableCompression: true}}
	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	type sample struct {
		lat, ttfb time.Duration
		cached    bool
	}
	var (
		mu      sync.Mutex
		samples []sample
		errs    []string
		peakRSS atomic.Int64
		wg      sync.WaitGroup
	)
	sampler, stopSampler := context.WithCancel(ctx)
	go func() { // VmHWM is the peak; VmRSS sampled too for the log
		for sampler.Err() == nil {
			peakRSS.Store(max(peakRSS.Load(), procKiB(t, pid, "VmRSS")))
			time.Sleep(100 * time.Millisecond)
		}
	}()
	start := time.Now()
	gate := make(chan struct{})
	for c := range clients {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(c), 7))
			<-gate
			for range pullsEach {
				bl := blobs[r.IntN(len(blobs))]
				t0 := time.Now()
				req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+"/v2/load/repo/blobs/"+bl.d.String(), nil)
				resp, err := client.Do(req)
				ttfb := time.Since(t0)
				var got []byte
				if err == nil {
					got, err = io.ReadAll(resp.Body)
					resp.Body.Close()
					if err == nil && (resp.StatusCode != http.StatusOK || !bytes.Equal(got, bl.b)) {
						err = fmt.Errorf("status %d, %d bytes", resp.StatusCode, len(got))
					}
				}
				lat := time.Since(t0)
				mu.Lock()
				if err != nil {
					errs = append(errs, fmt.Sprintf("%s: %v", bl.d.Encoded()[:12], err))
				} else {
					samples = append(samples, sample{lat, ttfb, bl.cached})
				}
				mu.Unlock()
			}
		})
	}
	close(gate)
	wg.Wait()
	took := time.Since(start)
	stopSampler()
	hwm := procKiB(t, pid, "VmHWM")

	pct := func(cached *bool, q float64) time.Duration {
		var ls []time.Duration
		for _, s := range samples {
			if cached == nil || s.cached == *cached {
				ls = append(ls, s.lat)
			}
		}
		if len(ls) == 0 {
			return 0
		}
		slices.Sort(ls)
		return ls[min(len(ls)-1, int(q*float64(len(ls))))]
	}
	yes, no := true, false
	total := clients * pullsEach
	t.Logf("load: %d clients x %d pulls of %d KiB blobs (%d cached, %d only in the object store) in %v: %d ok, %d errors, %.0f MiB/s",
		clients, pullsEach, blobSize>>10, cachedBlobs, uncachedBlobs, took.Round(time.Millisecond), len(samples), len(errs),
		float64(len(samples))*blobSize/(1<<20)/took.Seconds())
	t.Logf("first uncached pull after start (waits out locks.grace): %v", firstUncached.Round(time.Millisecond))
	t.Logf("latency all:      p50 %v  p99 %v  max %v", pct(nil, 0.5), pct(nil, 0.99), pct(nil, 1))
	t.Logf("latency cached:   p50 %v  p99 %v", pct(&yes, 0.5), pct(&yes, 0.99))
	t.Logf("latency uncached: p50 %v  p99 %v", pct(&no, 0.5), pct(&no, 0.99))
	slow := map[bool]int{}
	var slowTTFB time.Duration
	for _, s := range samples {
		if s.lat > 5*time.Second {
			slow[s.cached]++
			slowTTFB = max(slowTTFB, s.ttfb)
		}
	}
	t.Logf("pulls over 5 s: %d cached, %d uncached; their slowest response header came after %v", slow[true], slow[false], slowTTFB)
	t.Logf("agent RSS: %d MiB before, %d MiB peak sampled, VmHWM (peak since start) %d MiB",
		rssBefore>>10, peakRSS.Load()>>10, hwm>>10)
	if len(errs) > 0 {
		t.Fatalf("%d of %d pulls failed; first: %s", len(errs), total, errs[0])
	}
	if hwm>>10 > maxPeakRSSMiB {
		t.Fatalf("agent peak RSS %d MiB, want at most %d MiB", hwm>>10, maxPeakRSSMiB)
	}
}
