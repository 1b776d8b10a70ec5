package sim

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestParseUnits(t *testing.T) {
	for _, c := range []struct {
		in   string
		want Bytes
	}{{"512MiB", 512 << 20}, {"8MB", 8e6}, {"4096", 4096}, {"1.5GiB", 3 << 29}, {"10 KiB", 10 << 10}} {
		if got, err := ParseBytes(c.in); err != nil || got != c.want {
			t.Errorf("ParseBytes(%q) = %d, %v; want %d", c.in, got, err, c.want)
		}
	}
	for _, bad := range []string{"", "MiB", "-1MiB", "12XB", "abc"} {
		if _, err := ParseBytes(bad); err == nil {
			t.Errorf("ParseBytes(%q) accepted", bad)
		}
	}
	for _, c := range []struct {
		in   string
		want Bandwidth
	}{{"1Gbit", 125e6}, {"100Mbit", 12.5e6}, {"125MB/s", 125e6}, {"unlimited", 0}} {
		if got, err := ParseBandwidth(c.in); err != nil || got != c.want {
			t.Errorf("ParseBandwidth(%q) = %v, %v; want %v", c.in, float64(got), err, float64(c.want))
		}
	}
	for _, bad := range []string{"1Gb", "fast", "-3Mbit", "0Mbit"} {
		if _, err := ParseBandwidth(bad); err == nil {
			t.Errorf("ParseBandwidth(%q) accepted", bad)
		}
	}
}

func TestScenarioErrors(t *testing.T) {
	for _, c := range []struct{ name, yaml, want string }{
		{"unknown key", smallScenario + "\nbogus: 1\n", "field bogus not found"},
		{"unknown strategy", strings.Replace(smallScenario, "pull_timeout: 2m", "strategies: [fastest]\npull_timeout: 2m", 1), `strategy "fastest"`},
		{"unknown image", strings.Replace(smallScenario, "image: app:v1\npull_timeout", "image: app:v9\npull_timeout", 1), `unknown image "app:v9"`},
		{"bad selector", strings.Replace(smallScenario, "nodes: [all]", "nodes: [g09-n01]", 1), `selector "g09-n01"`},
		{"bad size", strings.Replace(smallScenario, "size: 64MiB", "size: lots", 1), `size "lots"`},
		{"negative time", strings.Replace(smallScenario, "at: 0s", "at: -1s", 1), `duration "-1s"`},
		{"dilation of an unknown strategy", smallScenario + "\ntime_dilation: {fastest: 2}\n", `time_dilation: strategy "fastest"`},
		{"dilation out of range", smallScenario + "\ntime_dilation: {shoal: 0}\n", "time_dilation: shoal: 0: want 1..64"},
		{"concurrent unknown strategy", smallScenario + "\nconcurrent: [shoal, fastest]\n", `concurrent: strategy "fastest"`},
		{"concurrent twice", smallScenario + "\nconcurrent: [shoal, origin-only, shoal]\n", `concurrent: strategy "shoal" listed twice`},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.yaml))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Parse error = %v; want it to mention %q", err, c.want)
			}
		})
	}
}

// TestPlanDeterministic: one seed gives one schedule, one set of images and
// one set of slow hosts; another seed gives others.
func TestRunOrder(t *testing.T) {
	for _, c := range []struct {
		strategies, concurrent []string
		want                   string
	}{
		{[]string{"a", "b", "c"}, nil, "[[a] [b] [c]]"},
		{[]string{"a", "b", "c"}, []string{"c", "a"}, "[[a c] [b]]"},
		{[]string{"a", "b"}, []string{"b", "x"}, "[[b] [a]]"}, // x: not run (--strategies)
		{[]string{"a", "b"}, []string{"a", "b"}, "[[a b]]"},
	} {
		sc := Scenario{Strategies: c.strategies, Concurrent: c.concurrent}
		if got := fmt.Sprint(sc.RunOrder()); got != c.want {
			t.Errorf("strategies %v, concurrent %v: order %s, want %s", c.strategies, c.concurrent, got, c.want)
		}
	}
}

func TestPlanDeterministic(t *testing.T) {
	dir := "scenarios"
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) < 5 {
		t.Fatalf("%d shipped scenarios, want at least 5", len(entries))
	}
	for _, e := range entries {
		t.Run(e.Name(), func(t *testing.T) {
			sc, err := Load(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			a, err := NewPlan(sc, 0)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := NewPlan(sc, 0)
			if a.Fingerprint() != b.Fingerprint() || !reflect.DeepEqual(a.Events, b.Events) || !reflect.DeepEqual(a.Nodes, b.Nodes) {
				t.Fatal("two plans with one seed differ")
			}
			for i := range a.Images {
				for j := range a.Images[i].Layers {
					if string(a.Images[i].Layers[j].Data) != string(b.Images[i].Layers[j].Data) {
						t.Fatalf("image %s layer %d differs between plans", a.Images[i].Name, j)
					}
				}
			}
			c, _ := NewPlan(sc, sc.Seed+1000)
			if c.Fingerprint() == a.Fingerprint() {
				t.Fatal("another seed gave the same plan")
			}
			var total int64
			for _, im := range a.Images {
				total += im.Bytes()
			}
			if total == 0 {
				t.Fatal("no image bytes")
			}
		})
	}
}

func TestPlanResolvesSelectors(t *testing.T) {
	sc, err := Parse([]byte(strings.Replace(smallScenario, "nodes: [all]", "nodes: [group:g02, g01-n01, random:2@group:g01, proxy:g01, down]", 1)))
	if err != nil {
		t.Fatal(err)
	}
	p, err := NewPlan(sc, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := p.Events[0].Nodes
	want := map[string]bool{"g02-n01": true, "g02-n02": true, "g02-n03": true, "g01-n01": true, "proxy:g01": true, "down": true}
	extra := 0
	for _, n := range got {
		if !want[n] {
			if !strings.HasPrefix(n, "g01-") {
				t.Fatalf("unexpected node %q in %v", n, got)
			}
			extra++
		}
	}
	if extra < 1 || extra > 2 || len(got) != len(want)+extra {
		t.Fatalf("nodes %v: want group g02, g01-n01, proxy:g01, down and two random g01 hosts (deduplicated)", got)
	}
}

// TestBarrier: members wait for each other; one that leaves (a fleet that
// failed) does not hold the others.
func TestBarrier(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	b := newBarrier(3)
	m1, m2, m3 := b.member(), b.member(), b.member()
	done := make(chan error, 2)
	go func() { done <- m1.await(ctx) }()
	go func() { done <- m2.await(ctx) }()
	select {
	case err := <-done:
		t.Fatalf("await returned (%v) before the third member arrived or left", err)
	case <-time.After(100 * time.Millisecond):
	}
	m3.leave()
	m3.leave() // leaving twice counts once
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	// A member that awaits after the barrier opened passes at once.
	if err := m1.await(ctx); err != nil {
		t.Fatal(err)
	}
	// ctx ends a wait that nobody completes.
	short, stop := context.WithTimeout(ctx, 50*time.Millisecond)
	defer stop()
	if err := newBarrier(2).member().await(short); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("await on an incomplete barrier: %v, want deadline exceeded", err)
	}
}
