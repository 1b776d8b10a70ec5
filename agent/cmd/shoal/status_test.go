package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/agent"
)

func TestPrintPeers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		s    agent.Status
		want []string // substrings, in order
	}{
		{"no peers, no table", agent.Status{}, nil},
		{"peers best first with their scores", agent.Status{
			Probes: 12, ProbeBytes: 3 << 20,
			Peers: []agent.PeerScore{
				{ID: "QmFast", RTTSeconds: 0.0012, Throughput: 100 << 20, ScoreSeconds: 0.081, SameGroup: true},
				{ID: "QmSlow", Throughput: 1 << 20, Failures: 2.5, InFlight: 1, ScoreSeconds: 8.5, Banned: true},
			},
		}, []string{
			"peers (best first; 12 probes, 3.0 MiB of test downloads)",
			"PEER", "RTT", "THROUGHPUT", "FAILURES", "IN FLIGHT", "SCORE",
			"QmFast", "1.2ms", "100.0 MiB/s", "0.0", "0", "81ms", "same group",
			"QmSlow", "-", "1.0 MiB/s", "2.5", "1", "8.5s", "BANNED",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			if err := printPeers(&out, tt.s); err != nil {
				t.Fatalf("printPeers: %v", err)
			}
			wantInOrder(t, out.String(), tt.want)
		})
	}
}

func TestPrintFetches(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		s    agent.Status
		want []string // substrings, in order
	}{
		{"no fetches, no table", agent.Status{}, nil},
		{"fetches newest first with their sources", agent.Status{
			Fetches: []agent.FetchSources{
				{Digest: "sha256:0123456789abcdef0123", Size: 512 << 20, Result: "running", Seconds: 1.5,
					OriginBytes: 0, PeerBytes: 96 << 20, Peers: []agent.PeerBytes{
						{ID: "12D3KooWAAAAAAAAAAAAAAAAAAAA11223344", Node: "node-03", Bytes: 64 << 20},
						{ID: "12D3KooWBBBBBBBBBBBBBBBBBBBB55667788", Bytes: 32 << 20},
					}},
				{Digest: "sha256:fedcba9876543210fedc", Size: 4 << 20, Result: "ok", Seconds: 0.25,
					OriginBytes: 3 << 20, PeerBytes: 1 << 20},
			},
		}, []string{
			"recent fetches (newest first)",
			"DIGEST", "SIZE", "RESULT", "TIME", "FROM ORIGIN", "FROM PEERS", "TOP PEERS",
			"sha256:0123456789ab ", "512.0 MiB", "running", "1.5s", "0 B", "96.0 MiB (100%)", "node-03 64.0 MiB, …55667788 32.0 MiB",
			"sha256:fedcba987654 ", "4.0 MiB", "ok", "250ms", "3.0 MiB", "1.0 MiB (25%)",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var out bytes.Buffer
			if err := printFetches(&out, tt.s); err != nil {
				t.Fatalf("printFetches: %v", err)
			}
			wantInOrder(t, out.String(), tt.want)
		})
	}
}

// wantInOrder checks that out holds every string of want, in that order
// (nothing at all when want is nil).
func wantInOrder(t *testing.T, out string, want []string) {
	t.Helper()
	if want == nil && out != "" {
		t.Fatalf("printed %q, want nothing", out)
	}
	rest := out
	for _, w := range want {
		i := strings.Index(rest, w)
		if i < 0 {
			t.Fatalf("output lacks %q (in order):\n%s", w, out)
		}
		rest = rest[i+len(w):]
	}
}
