package sim

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"strings"
	"testing"
	"time"
)

const smallScenario = `
name: small
seed: 7
scale: 16
groups: 2
nodes_per_group: 3
links:
  host: 1Gbit
  intra_group_latency: 200us
  inter_group_latency: 2ms
  origin_latency: 10ms
  origin_egress: 2Gbit
images:
  - name: app:v1
    layers: 4
    size: 64MiB
events:
  - at: 0s
    action: pull
    nodes: [all]
    image: app:v1
pull_timeout: 2m
`

func testLogger(t *testing.T) *slog.Logger {
	if os.Getenv("SIM_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

func TestSmallFleet(t *testing.T) {
	sc, err := Parse([]byte(smallScenario))
	if err != nil {
		t.Fatal(err)
	}
	// Not hedged: each fleet takes ~15s to form on 2 cores, and hedged
	// differs from shoal only in peer choice (p2p tests it; hetero-links
	// compares it).
	sc.Strategies = []string{OriginOnly, RandomPeer, Shoal}
	sc.Concurrent = []string{RandomPeer, OriginOnly}
	plan, err := NewPlan(sc, 0)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(t.Context(), 4*time.Minute)
	defer cancel()
	rep, err := Run(ctx, plan, Options{Dir: t.TempDir(), Log: testLogger(t), Progress: func(s string) { t.Log(s) }})
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := rep.WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	t.Log("\n" + buf.String())
	for _, name := range rep.Order() {
		s := rep.Strategies[name]
		if s.FailedPulls != 0 || s.CorruptPulls != 0 || s.Pulls != 6 {
			t.Errorf("%s: %d pulls, %d failed, %d corrupt; want 6, 0, 0", name, s.Pulls, s.FailedPulls, s.CorruptPulls)
		}
	}
	if s := rep.Strategies[OriginOnly]; s.OriginMultiple < 5.9 || s.PeerBytes != 0 {
		t.Errorf("origin-only: origin × %.2f, peer bytes %d; want 6 and 0", s.OriginMultiple, s.PeerBytes)
	}
	if s := rep.Strategies[Shoal]; s.OriginMultiple > 2.4 || s.PeerBytes == 0 {
		t.Errorf("shoal: origin × %.2f (want at most 1.2 per group), peer bytes %d", s.OriginMultiple, s.PeerBytes)
	}
	if !strings.Contains(buf.String(), "origin-only") {
		t.Error("table lacks the origin-only row")
	}
	for st, want := range map[string]string{OriginOnly: "ran at the same time as random-peer", RandomPeer: "ran at the same time as origin-only", Shoal: ""} {
		notes := strings.Join(rep.Strategies[st].Notes, "\n")
		if got := strings.Contains(notes, "ran at the same time"); got != (want != "") || !strings.Contains(notes, want) {
			t.Errorf("%s: notes %q, want one saying %q", st, notes, want)
		}
	}

	// The same seed again: the same plan and the same byte counts.
	sc.Strategies, sc.Concurrent = []string{OriginOnly}, nil
	again, err := Run(ctx, plan, Options{Dir: t.TempDir(), Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	a, b := rep.Strategies[OriginOnly], again.Strategies[OriginOnly]
	if again.Fingerprint != rep.Fingerprint || a.OriginBytes != b.OriginBytes || again.ImageBytes != rep.ImageBytes {
		t.Errorf("second run: fingerprint %s, origin bytes %d, image bytes %d; first: %s, %d, %d",
			again.Fingerprint, b.OriginBytes, again.ImageBytes, rep.Fingerprint, a.OriginBytes, rep.ImageBytes)
	}

	// The plot names every strategy and labels its axes.
	var svg bytes.Buffer
	if err := rep.WriteSVG(&svg); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"<svg", "pull completion time (seconds)", "hosts finished", OriginOnly, RandomPeer, Shoal, "</svg>"} {
		if !strings.Contains(svg.String(), want) {
			t.Errorf("SVG lacks %q", want)
		}
	}
}
