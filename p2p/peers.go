package p2p

import (
	"cmp"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// PeerInfo is what the node knows about one peer, for status pages and
// metrics.
type PeerInfo struct {
	// ID is the peer.
	ID peer.ID
	// RTT is the ping EWMA (0 when unknown).
	RTT time.Duration
	// Throughput is the transfer rate EWMA in bytes per second (0 when
	// unknown).
	Throughput float64
	// Failures is the decaying failure count.
	Failures float64
	// InFlight is the number of range requests to the peer running now.
	InFlight int
	// Expected is the peer's score: the expected time to fetch one chunk
	// (DownloadOptions.ChunkSize) from it now, lower is better.
	Expected time.Duration
	// SameGroup reports whether the peer is in this node's group.
	SameGroup bool
	// Banned reports whether the peer is excluded for corrupt bytes.
	Banned bool
	// Measured is when the throughput was last sampled.
	Measured time.Time
	// Probed is when the prober last measured the peer.
	Probed time.Time
}

// Peers returns up to limit known peers (all if limit <= 0), best score
// first; banned peers come last.
func (n *Node) Peers(limit int) []PeerInfo {
	now := time.Now()
	chunk := n.cfg.Download.ChunkSize
	n.mu.Lock()
	known := n.scores.Known()
	prior := n.scores.Prior(known, defaultEstimate)
	out := make([]PeerInfo, 0, len(known))
	for _, p := range known {
		sc := n.scores.Score(p, now)
		out = append(out, PeerInfo{
			ID: p, RTT: sc.RTT, Throughput: sc.Throughput, Failures: sc.Failures, InFlight: sc.InFlight,
			Expected: n.scores.Expected(p, chunk, prior, now),
			Banned:   n.scores.Banned(p, now), Measured: sc.Measured, Probed: sc.Probed,
		})
	}
	n.mu.Unlock()
	slices.SortStableFunc(out, func(a, b PeerInfo) int {
		if a.Banned != b.Banned {
			if a.Banned {
				return 1
			}
			return -1
		}
		if c := cmp.Compare(a.Expected, b.Expected); c != 0 {
			return c
		}
		return cmp.Compare(a.ID, b.ID)
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	for i := range out { // after the cut: SameGroup may scan the membership
		out[i].SameGroup = n.cfg.SameGroup != nil && n.cfg.SameGroup(out[i].ID)
	}
	return out
}
