package p2p

import (
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

func ids(ais []peer.AddrInfo) []peer.ID {
	out := make([]peer.ID, len(ais))
	for i, ai := range ais {
		out[i] = ai.ID
	}
	return out
}

func TestScoresRank(t *testing.T) {
	t.Parallel()
	const a, b, c, d = peer.ID("a"), peer.ID("b"), peer.ID("c"), peer.ID("d")
	const chunk = 8 << 20
	t0 := time.Unix(1000, 0)
	all := []peer.AddrInfo{{ID: a}, {ID: b}, {ID: c}, {ID: d}}
	tests := []struct {
		name  string
		setup func(s *Scores)
		group peer.ID // same-group peer, if any
		at    time.Time
		want  []peer.ID
	}{
		{"unknown peers keep their order", func(*Scores) {}, "", t0, []peer.ID{a, b, c, d}},
		{"faster first, unknown peers at the mean", func(s *Scores) {
			s.Observe(c, 100<<20, time.Second, t0)
			s.Observe(b, 10<<20, time.Second, t0)
		}, "", t0, []peer.ID{c, a, d, b}},
		{"rtt counts", func(s *Scores) {
			for _, p := range []peer.ID{a, b, c, d} {
				s.Observe(p, 100<<20, time.Second, t0)
				s.ObserveRTT(p, time.Millisecond, t0)
			}
			s.ObserveRTT(a, 400*time.Millisecond, t0)
		}, "", t0, []peer.ID{b, c, d, a}},
		{"failures inflate the expected time", func(s *Scores) {
			s.Observe(c, 200<<20, time.Second, t0)
			s.Observe(b, 100<<20, time.Second, t0)
			s.Penalize(c, PenaltyStalled, t0)
		}, "", t0, []peer.ID{a, d, b, c}},
		{"failures are forgiven", func(s *Scores) {
			s.Observe(c, 200<<20, time.Second, t0)
			s.Observe(b, 100<<20, time.Second, t0)
			s.Penalize(c, PenaltyStalled, t0)
		}, "", t0.Add(time.Hour), []peer.ID{c, a, d, b}},
		{"in-flight load inflates the expected time", func(s *Scores) {
			s.Observe(c, 200<<20, time.Second, t0)
			s.Observe(b, 100<<20, time.Second, t0)
			s.AddInFlight(c, 4, t0)
		}, "", t0, []peer.ID{a, d, b, c}},
		{"same group wins ties", func(*Scores) {}, c, t0, []peer.ID{c, a, b, d}},
		{"same group does not beat a clearly faster peer", func(s *Scores) {
			s.Observe(b, 100<<20, time.Second, t0)
			s.Observe(c, 10<<20, time.Second, t0)
		}, c, t0, []peer.ID{b, a, d, c}},
		{"corrupt peers are banned", func(s *Scores) {
			s.Penalize(b, PenaltyCorrupt, t0)
		}, "", t0.Add(CorruptBan - time.Second), []peer.ID{a, c, d}},
		{"bans expire", func(s *Scores) {
			s.Penalize(b, PenaltyCorrupt, t0)
		}, "", t0.Add(CorruptBan + 24*time.Hour), []peer.ID{a, b, c, d}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := NewScores()
			tt.setup(s)
			same := func(p peer.ID) bool { return p == tt.group }
			got := ids(s.Rank(all, chunk, defaultEstimate, same, tt.at))
			if !slices.Equal(got, tt.want) {
				t.Fatalf("Rank = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestScoresThroughputEWMA(t *testing.T) {
	t.Parallel()
	s := NewScores()
	now := time.Unix(0, 0)
	s.Observe("p", 100, time.Second, now)
	s.Observe("p", 200, time.Second, now)
	if got, want := s.Score("p", now).Throughput, 100+throughputWeight*100; got != want {
		t.Fatalf("Throughput = %v, want %v", got, want)
	}
	s.Observe("p", 0, time.Second, now) // ignored
	s.ObserveRTT("p", 10*time.Millisecond, now)
	s.ObserveRTT("p", 20*time.Millisecond, now)
	if got, want := s.Score("p", now).RTT, 13*time.Millisecond; got != want {
		t.Fatalf("RTT = %v, want %v", got, want)
	}
	if s.Score("q", now) != (PeerScore{}) {
		t.Fatal("unknown peer has a score")
	}
}

// TestTransfersHeldToTheProbes: transfer samples far above what probes
// measure (bursts) lift a peer's estimate to at most maxRise times its
// probe rate however many there are; without a probe the cap compounds.
func TestTransfersHeldToTheProbes(t *testing.T) {
	s := NewScores()
	t0 := time.Unix(1000, 0)
	probed, unprobed := peer.ID("probed"), peer.ID("unprobed")
	s.ObserveProbe(probed, 1e6, t0)
	s.ObserveRate(unprobed, 1e6, t0)
	for range 50 {
		s.ObserveRate(probed, 1e9, t0)
		s.ObserveRate(unprobed, 1e9, t0)
	}
	if got := s.Score(probed, t0).Throughput; got > maxRise*1e6 {
		t.Fatalf("probed peer after 50 bursts: %.0f B/s, want at most %.0f", got, maxRise*1e6)
	}
	if got := s.Score(unprobed, t0).Throughput; got < 1e8 {
		t.Fatalf("unprobed peer after 50 bursts: %.0f B/s: the cap did not compound (the test is wrong)", got)
	}
	// Falls are not held back.
	s.ObserveRate(probed, 1e3, t0)
	if got := s.Score(probed, t0).Throughput; got > 0.75*maxRise*1e6 {
		t.Fatalf("after a slow transfer: %.0f B/s, want a fall", got)
	}
}
