package p2p

import (
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
	t0 := time.Unix(1000, 0)
	all := []peer.AddrInfo{{ID: a}, {ID: b}, {ID: c}, {ID: d}}
	tests := []struct {
		name  string
		setup func(s *Scores)
		at    time.Time
		want  []peer.ID
	}{
		{"unknown peers keep their order", func(*Scores) {}, t0, []peer.ID{a, b, c, d}},
		{"faster first", func(s *Scores) {
			s.Observe(c, 100<<20, time.Second, t0)
			s.Observe(b, 10<<20, time.Second, t0)
		}, t0, []peer.ID{c, b, a, d}},
		{"failures before speed", func(s *Scores) {
			s.Observe(c, 100<<20, time.Second, t0)
			s.Penalize(c, PenaltyStalled, t0)
		}, t0, []peer.ID{a, b, d, c}},
		{"failures are forgiven", func(s *Scores) {
			s.Observe(c, 100<<20, time.Second, t0)
			s.Penalize(c, PenaltyFailed, t0)
		}, t0.Add(time.Hour), []peer.ID{c, a, b, d}},
		{"corrupt peers are banned", func(s *Scores) {
			s.Penalize(b, PenaltyCorrupt, t0)
		}, t0.Add(CorruptBan - time.Second), []peer.ID{a, c, d}},
		{"bans expire", func(s *Scores) {
			s.Penalize(b, PenaltyCorrupt, t0)
		}, t0.Add(CorruptBan + 24*time.Hour), []peer.ID{a, b, c, d}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := NewScores()
			tt.setup(s)
			got := ids(s.Rank(all, tt.at))
			if len(got) != len(tt.want) {
				t.Fatalf("Rank = %v, want %v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("Rank = %v, want %v", got, tt.want)
				}
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
	if s.Score("q", now) != (PeerScore{}) {
		t.Fatal("unknown peer has a score")
	}
}
