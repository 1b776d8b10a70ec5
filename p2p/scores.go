package p2p

import (
	"cmp"
	"math"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Penalty is a kind of misbehaviour observed from a peer.
type Penalty uint8

const (
	// PenaltyFailed: a request failed (refused, reset, bad status).
	PenaltyFailed Penalty = iota + 1
	// PenaltyStalled: a response sent no bytes for the stall timeout.
	PenaltyStalled
	// PenaltyCorrupt: the peer sent bytes that did not verify. The peer is
	// banned for CorruptBan.
	PenaltyCorrupt
)

// String names the penalty for logs.
func (p Penalty) String() string {
	switch p {
	case PenaltyFailed:
		return "failed"
	case PenaltyStalled:
		return "stalled"
	case PenaltyCorrupt:
		return "corrupt"
	default:
		return "unknown"
	}
}

const (
	// CorruptBan is how long a peer that sent corrupt bytes is excluded.
	CorruptBan = time.Hour
	// failureHalfLife is how fast failure penalties are forgiven.
	failureHalfLife = 5 * time.Minute
	// throughputWeight is the EWMA weight of a new throughput sample.
	throughputWeight = 0.3
)

// PeerScore is what Scores knows about one peer.
type PeerScore struct {
	// Failures is a decaying count of failed and stalled requests.
	Failures float64
	// Throughput is an EWMA of observed transfer rates in bytes per second
	// (0 when unknown).
	Throughput float64
	// BannedUntil is set after corrupt bytes.
	BannedUntil time.Time
	// updated is when Failures was last decayed.
	updated time.Time
}

// Scores ranks peers by what transfers showed: peers that sent corrupt
// bytes are banned for a while, failures count against a peer and are
// forgiven with a half-life, and among equals faster peers come first.
// The active prober (DESIGN §5) feeds Observe too. Pure: time is passed
// in; not safe for concurrent use.
type Scores struct {
	peers map[peer.ID]*PeerScore
}

// NewScores returns empty scores.
func NewScores() *Scores { return &Scores{peers: make(map[peer.ID]*PeerScore)} }

func (s *Scores) get(p peer.ID, now time.Time) *PeerScore {
	ps, ok := s.peers[p]
	if !ok {
		ps = &PeerScore{updated: now}
		s.peers[p] = ps
	}
	if dt := now.Sub(ps.updated); dt > 0 {
		ps.Failures *= math.Exp2(-float64(dt) / float64(failureHalfLife))
		ps.updated = now
	}
	return ps
}

// Penalize records a penalty against p at now.
func (s *Scores) Penalize(p peer.ID, kind Penalty, now time.Time) {
	ps := s.get(p, now)
	switch kind {
	case PenaltyCorrupt:
		ps.BannedUntil = now.Add(CorruptBan)
		ps.Failures += 10
	case PenaltyStalled:
		ps.Failures += 2
	default:
		ps.Failures++
	}
}

// Observe records a transfer of n bytes from p that took d.
func (s *Scores) Observe(p peer.ID, n int64, d time.Duration, now time.Time) {
	if n <= 0 || d <= 0 {
		return
	}
	ps := s.get(p, now)
	rate := float64(n) / d.Seconds()
	if ps.Throughput == 0 {
		ps.Throughput = rate
		return
	}
	ps.Throughput += throughputWeight * (rate - ps.Throughput)
}

// Banned reports whether p is excluded at now.
func (s *Scores) Banned(p peer.ID, now time.Time) bool {
	ps, ok := s.peers[p]
	return ok && now.Before(ps.BannedUntil)
}

// Score returns a copy of what is known about p.
func (s *Scores) Score(p peer.ID, now time.Time) PeerScore {
	if _, ok := s.peers[p]; !ok {
		return PeerScore{}
	}
	return *s.get(p, now)
}

// Rank returns the providers that are not banned, best first: fewer
// (rounded) failures first, then higher throughput, then the given order.
func (s *Scores) Rank(providers []peer.AddrInfo, now time.Time) []peer.AddrInfo {
	type ranked struct {
		ai       peer.AddrInfo
		failures int
		rate     float64
	}
	rs := make([]ranked, 0, len(providers))
	for _, ai := range providers {
		if s.Banned(ai.ID, now) {
			continue
		}
		sc := s.Score(ai.ID, now)
		rs = append(rs, ranked{ai: ai, failures: int(math.Round(sc.Failures)), rate: sc.Throughput})
	}
	slices.SortStableFunc(rs, func(a, b ranked) int {
		if c := cmp.Compare(a.failures, b.failures); c != 0 {
			return c
		}
		return cmp.Compare(b.rate, a.rate)
	})
	out := make([]peer.AddrInfo, len(rs))
	for i, r := range rs {
		out[i] = r.ai
	}
	return out
}
