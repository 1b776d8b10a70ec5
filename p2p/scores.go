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
	// rttWeight is the EWMA weight of a new RTT sample.
	rttWeight = 0.3
	// maxRise caps a throughput sample at this multiple of the current
	// estimate: a short transfer that landed in one burst (buffers, a
	// shaper's bucket) must not make a peer look ten times faster. Falls
	// are not capped: a peer that slows down must lose ranges quickly.
	maxRise = 2.0
)

// PeerScore is what Scores knows about one peer.
type PeerScore struct {
	// Failures is a decaying count of failed and stalled requests.
	Failures float64
	// Throughput is an EWMA of observed transfer rates in bytes per second
	// (0 when unknown), from probes and real range transfers.
	Throughput float64
	// Probe is an EWMA of the probes' throughput samples alone (0 when
	// unknown): the ceiling transfers' samples are held to (maxRise).
	Probe float64
	// RTT is an EWMA of ping round trips (0 when unknown).
	RTT time.Duration
	// InFlight is the number of range requests to the peer running now.
	InFlight int
	// BannedUntil is set after corrupt bytes.
	BannedUntil time.Time
	// Measured is when Throughput last got a sample (probe or transfer).
	Measured time.Time
	// Probed is when the prober last measured the peer (ping or test
	// download), successfully or not.
	Probed time.Time
	// Wanted is when the peer was last a candidate source of a download.
	Wanted time.Time
	// next is when the prober may measure the peer again.
	next time.Time
	// updated is when Failures was last decayed.
	updated time.Time
}

// Scores is the pure core of peer scoring: what probes and transfers
// showed about each peer, and the ranking derived from it (DESIGN §5).
// Peers that sent corrupt bytes are banned for a while; failures count
// against a peer and are forgiven with a half-life; RTT and throughput are
// EWMAs. Time is passed in; no I/O; not safe for concurrent use.
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
	s.ObserveRate(p, float64(n)/d.Seconds(), now)
}

// ObserveRate records a throughput sample of rate bytes per second.
func (s *Scores) ObserveRate(p peer.ID, rate float64, now time.Time) {
	if rate <= 0 || math.IsInf(rate, 0) || math.IsNaN(rate) {
		return
	}
	ps := s.get(p, now)
	ps.Measured = now
	if ps.Probe > 0 {
		// A transfer that landed in a burst must not lift a peer far above
		// what probes (one stream, spaced out) measure: repeated bursts
		// compounded the rise cap, one provider's estimate ran away, and
		// the swarm's admission rule left its equals idle.
		rate = min(rate, maxRise*ps.Probe)
	}
	if ps.Throughput == 0 {
		ps.Throughput = rate
		return
	}
	rate = min(rate, maxRise*ps.Throughput)
	ps.Throughput += throughputWeight * (rate - ps.Throughput)
}

// ObserveProbe records a probe's throughput sample: it counts as a
// transfer's (ObserveRate) and sets the ceiling of later ones.
func (s *Scores) ObserveProbe(p peer.ID, rate float64, now time.Time) {
	if rate <= 0 || math.IsInf(rate, 0) || math.IsNaN(rate) {
		return
	}
	ps := s.get(p, now)
	if ps.Probe == 0 {
		ps.Probe = rate
	} else {
		ps.Probe += throughputWeight * (rate - ps.Probe)
	}
	s.ObserveRate(p, rate, now)
}

// ObserveRTT records a ping round trip to p.
func (s *Scores) ObserveRTT(p peer.ID, rtt time.Duration, now time.Time) {
	if rtt <= 0 {
		return
	}
	ps := s.get(p, now)
	if ps.RTT == 0 {
		ps.RTT = rtt
		return
	}
	ps.RTT += time.Duration(rttWeight * float64(rtt-ps.RTT))
}

// Probed records that the prober measured p at now and may measure it
// again from next on.
func (s *Scores) Probed(p peer.ID, now, next time.Time) {
	ps := s.get(p, now)
	ps.Probed, ps.next = now, next
}

// Fresh reports whether p's throughput was measured within fresh of now.
func (s *Scores) Fresh(p peer.ID, fresh time.Duration, now time.Time) bool {
	ps, ok := s.peers[p]
	return ok && !ps.Measured.IsZero() && now.Sub(ps.Measured) < fresh
}

// Due returns the peers of peers the prober should measure at now, most
// urgent first: banned peers and peers whose next probe time has not come
// are left out; peers wanted within wantedFor come before idle ones; then
// the least recently probed (never probed first), then by ID.
func (s *Scores) Due(peers []peer.ID, wantedFor time.Duration, now time.Time) []peer.ID {
	type due struct {
		p      peer.ID
		wanted bool
		probed time.Time
	}
	var ds []due
	for _, p := range peers {
		ps, ok := s.peers[p]
		if !ok {
			ds = append(ds, due{p: p})
			continue
		}
		if now.Before(ps.next) || now.Before(ps.BannedUntil) {
			continue
		}
		ds = append(ds, due{p: p, wanted: !ps.Wanted.IsZero() && now.Sub(ps.Wanted) < wantedFor, probed: ps.Probed})
	}
	slices.SortFunc(ds, func(a, b due) int {
		if a.wanted != b.wanted {
			if a.wanted {
				return -1
			}
			return 1
		}
		if c := a.probed.Compare(b.probed); c != 0 {
			return c
		}
		return cmp.Compare(a.p, b.p)
	})
	out := make([]peer.ID, len(ds))
	for i, d := range ds {
		out[i] = d.p
	}
	return out
}

// Stale reports whether nothing was learnt about p for longer than keep
// at now and p is neither banned nor busy: the prober forgets such peers
// when they are no longer connected.
func (s *Scores) Stale(p peer.ID, keep time.Duration, now time.Time) bool {
	ps, ok := s.peers[p]
	if !ok || now.Before(ps.BannedUntil) || ps.InFlight > 0 {
		return false
	}
	if ps.Failures*math.Exp2(-float64(now.Sub(ps.updated))/float64(failureHalfLife)) >= 0.5 {
		return false
	}
	var last time.Time
	for _, t := range []time.Time{ps.Measured, ps.Probed, ps.Wanted} {
		if t.After(last) {
			last = t
		}
	}
	return now.Sub(last) > keep
}

// Want records that p is a candidate source of a download at now; the
// prober keeps wanted peers' scores fresh first.
func (s *Scores) Want(p peer.ID, now time.Time) { s.get(p, now).Wanted = now }

// AddInFlight changes p's count of running range requests by delta.
func (s *Scores) AddInFlight(p peer.ID, delta int, now time.Time) {
	ps := s.get(p, now)
	ps.InFlight = max(ps.InFlight+delta, 0)
}

// Forget drops what is known about p.
func (s *Scores) Forget(p peer.ID) { delete(s.peers, p) }

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

// Known returns the peers the table holds, sorted.
func (s *Scores) Known() []peer.ID {
	out := make([]peer.ID, 0, len(s.peers))
	for p := range s.peers {
		out = append(out, p)
	}
	slices.Sort(out)
	return out
}

// Prior returns the estimate used for peers with no measurement: the mean
// RTT and throughput of the given peers that have one, else the defaults.
func (s *Scores) Prior(peers []peer.ID, def Estimate) Estimate {
	var (
		rtt         time.Duration
		tp          float64
		nRTT, nRate int
	)
	for _, p := range peers {
		ps, ok := s.peers[p]
		if !ok {
			continue
		}
		if ps.RTT > 0 {
			rtt += ps.RTT
			nRTT++
		}
		if ps.Throughput > 0 {
			tp += ps.Throughput
			nRate++
		}
	}
	out := def
	if nRTT > 0 {
		out.RTT = rtt / time.Duration(nRTT)
	}
	if nRate > 0 {
		out.Throughput = tp / float64(nRate)
	}
	return out
}

// Best is the highest throughput measured (probe or transfer) at or
// after since, 0 if none: each is min(the peer's uplink, this host's downlink),
// so with one peer at least as fast as this host it is this host's
// downlink.
func (s *Scores) Best(since time.Time) float64 {
	var best float64
	for _, ps := range s.peers {
		if !ps.Measured.Before(since) {
			best = max(best, ps.Throughput)
		}
	}
	return best
}

// Estimate returns p's RTT and throughput, prior's where unknown.
func (s *Scores) Estimate(p peer.ID, prior Estimate) Estimate {
	e := prior
	if ps, ok := s.peers[p]; ok {
		if ps.RTT > 0 {
			e.RTT = ps.RTT
		}
		if ps.Throughput > 0 {
			e.Throughput = ps.Throughput
		}
	}
	return e
}

// Expected returns the expected time to fetch size bytes from p at now:
// rtt + size/throughput (prior where unknown), inflated by p's in-flight
// load and recent failures (see Inflate).
func (s *Scores) Expected(p peer.ID, size int64, prior Estimate, now time.Time) time.Duration {
	e := s.Estimate(p, prior)
	sc := s.Score(p, now)
	return Inflate(e.Time(size), sc.InFlight, sc.Failures)
}

// Rank returns the providers that are not banned, best first: by expected
// time to fetch a range of size bytes (Expected, with unknown peers at the
// mean of the known ones). Expected times within tieTolerance of each other
// tie; among ties peers for which sameGroup (may be nil) holds come first,
// then the faster, then the given order.
func (s *Scores) Rank(providers []peer.AddrInfo, size int64, def Estimate, sameGroup func(peer.ID) bool, now time.Time) []peer.AddrInfo {
	type ranked struct {
		ai     peer.AddrInfo
		bucket int
		local  bool
		exp    time.Duration
	}
	ids := make([]peer.ID, len(providers))
	for i, ai := range providers {
		ids[i] = ai.ID
	}
	prior := s.Prior(ids, def)
	rs := make([]ranked, 0, len(providers))
	for _, ai := range providers {
		if s.Banned(ai.ID, now) {
			continue
		}
		exp := s.Expected(ai.ID, size, prior, now)
		rs = append(rs, ranked{ai: ai, bucket: tieBucket(exp), local: sameGroup != nil && sameGroup(ai.ID), exp: exp})
	}
	slices.SortStableFunc(rs, func(a, b ranked) int {
		if c := cmp.Compare(a.bucket, b.bucket); c != 0 {
			return c
		}
		if a.local != b.local {
			if a.local {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.exp, b.exp)
	})
	out := make([]peer.AddrInfo, len(rs))
	for i, r := range rs {
		out[i] = r.ai
	}
	return out
}
