package p2p

import (
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// Source selection: how a download ranks its candidates, decides each
// lease under the scored policy (DownloadOptions.Selection), moves ranges
// off peers that fall behind, and feeds what transfers show back into the
// scores. The decisions themselves are the pure functions of scorer.go;
// this is the download's bookkeeping around them.

// request is one ranged request in flight.
type request struct {
	p        peer.ID
	sp       Span
	start    time.Time
	expected time.Duration
	chunkGot atomic.Int64 // bytes of the chunk being received
	got      atomic.Int64 // bytes received
	cancel   context.CancelCauseFunc
	moved    bool // preempted (under download.mu)
}

// peerLoad integrates how many requests run on one peer over time, so a
// request's throughput sample can be scaled to the peer's whole link.
type peerLoad struct {
	count    int
	integral float64 // request-seconds
	last     time.Time
}

func (l *peerLoad) advance(now time.Time) {
	if now.After(l.last) {
		l.integral += float64(l.count) * now.Sub(l.last).Seconds()
		l.last = now
	}
}

// filterCandidates drops this node, excluded and banned peers and
// duplicates.
func (n *Node) filterCandidates(providers []peer.AddrInfo, exclude []peer.ID) []peer.AddrInfo {
	var out []peer.AddrInfo
	seen := map[peer.ID]bool{n.host.ID(): true}
	for _, p := range exclude {
		seen[p] = true
	}
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, ai := range providers {
		if !seen[ai.ID] && !n.scores.Banned(ai.ID, now) {
			seen[ai.ID] = true
			out = append(out, ai)
		}
	}
	return out
}

// rank orders candidates by the selection policy: by expected time to
// fetch a chunk (scored), or at random (the baselines).
func (n *Node) rank(cands []peer.AddrInfo, opts DownloadOptions) []peer.AddrInfo {
	if !opts.scored() {
		out := slices.Clone(cands)
		rand.Shuffle(len(out), func(i, j int) { out[i], out[j] = out[j], out[i] })
		return out
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.scores.Rank(cands, opts.ChunkSize, defaultEstimate, n.cfg.SameGroup, time.Now())
}

// prior is the estimate for candidates nothing is known about.
func (n *Node) prior(cands []peer.AddrInfo) Estimate {
	ids := make([]peer.ID, len(cands))
	for i, ai := range cands {
		ids[i] = ai.ID
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.scores.Prior(ids, defaultEstimate)
}

// want marks candidates as wanted, so the prober keeps them fresh.
func (n *Node) want(cands []peer.AddrInfo) {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, ai := range cands {
		n.scores.Want(ai.ID, now)
	}
}

// describe renders the ranked sources and their scores for a debug log.
func (n *Node) describe(cands []peer.AddrInfo, chunk int64, prior Estimate) []string {
	now := time.Now()
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]string, len(cands))
	for i, ai := range cands {
		e := n.scores.Estimate(ai.ID, prior)
		out[i] = fmt.Sprintf("%s rtt=%s rate=%.0f expected=%s", ai.ID.ShortString(), e.RTT,
			e.Throughput, n.scores.Expected(ai.ID, chunk, prior, now))
	}
	return out
}

// recheck is how often a scored worker with nothing to do looks again for
// a range that fell behind.
const recheck = 20 * time.Millisecond

// nextLocked is the lease decision: the random policy takes the next run
// (guided self-scheduling) or steals; the scored policy first asks
// whether p should take a range at all, sizes the run by p's share, and
// when nothing is left to lease moves a range that fell behind.
func (dl *download) nextLocked(p peer.ID) (Span, bool) {
	if !dl.scored {
		if sp, ok := dl.sched.Next(p, dl.workers); ok {
			return sp, true
		}
		return dl.sched.Steal(p)
	}
	self, others := dl.estimatesLocked(p)
	if len(others) > 0 && time.Now().Before(dl.bench[p]) {
		return Span{}, false
	}
	if dl.takers[p] {
		// A range was moved off a slower peer for p: p takes it even if
		// Admit would rather keep p for later.
		if sp, ok := dl.sched.NextN(p, 1); ok {
			delete(dl.takers, p)
			return sp, true
		}
	}
	if sp, ok := LeaseScored(dl.sched, p, self, others, dl.opts.StreamsPerPeer); ok {
		return sp, true
	}
	// Only a peer Admit lets work may take a range over.
	if Admit(self, others, dl.opts.ChunkSize, dl.sched.LeftBytes(), dl.opts.StreamsPerPeer) {
		dl.reassignLocked(p, self)
	}
	return Span{}, false
}

// estimatesLocked returns p's estimate and those of the other live peers.
// A peer not measured yet is taken to be as fast as the mean of the live
// peers that are (so it is tried, not starved), else the download's prior.
func (dl *download) estimatesLocked(p peer.ID) (self Estimate, others []Estimate) {
	n := dl.n
	n.mu.Lock()
	defer n.mu.Unlock()
	ids := make([]peer.ID, 0, len(dl.live))
	for q, streams := range dl.live {
		if streams > 0 && !dl.dead[q] {
			ids = append(ids, q)
		}
	}
	slices.Sort(ids) // a deterministic order of others
	prior := n.scores.Prior(ids, dl.prior)
	for _, q := range ids {
		if q != p {
			others = append(others, n.scores.Estimate(q, prior))
		}
	}
	return n.scores.Estimate(p, prior), others
}

// reassignLocked preempts the range in flight that fell furthest behind
// its expected time, if p (idle) would finish it clearly sooner (Reassign).
// The owner's request ends, its unfinished chunks return to the queue and
// p leases them on its next try.
func (dl *download) reassignLocked(p peer.ID, self Estimate) {
	if dl.takers[p] || dl.moves >= 2*dl.sched.Chunks() {
		return // p has a move pending, or moves are not converging
	}
	now := time.Now()
	taker := self
	taker.Throughput /= float64(dl.opts.StreamsPerPeer)
	var (
		victim *request
		worst  float64
	)
	for r := range dl.reqs {
		if r.p == p || r.moved {
			continue
		}
		left := dl.sched.Unfinished(r.sp, r.p)
		if left == 0 {
			continue
		}
		pr := Progress{
			Elapsed:   now.Sub(r.start),
			Expected:  r.expected,
			Got:       r.got.Load(),
			Left:      left,
			Remaining: max(left-r.chunkGot.Load(), 0),
		}
		if !Reassign(pr, taker) {
			continue
		}
		if behind := pr.Elapsed.Seconds() / max(pr.Expected.Seconds(), 1e-9); victim == nil || behind > worst {
			victim, worst = r, behind
		}
	}
	if victim != nil {
		victim.moved = true
		dl.moves++
		dl.takers[p] = true
		// The owner sits out for as long as it already spent on the
		// range, so it does not lease the moved chunks straight back.
		dl.bench[victim.p] = now.Add(max(victim.expected, now.Sub(victim.start)))
		dl.n.log.Debug("range moved off a slow peer", "digest", dl.d, "from", victim.p, "to", p, "span", victim.sp)
		victim.cancel(errPreempted)
	}
}

// yield returns the unfinished chunks of a preempted span to the queue;
// the peer stays in the download.
func (dl *download) yield(p peer.ID, sp Span) {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	dl.sched.Release(sp, p)
	dl.broadcastLocked()
}

// begin registers a request for sp on p.
func (dl *download) begin(p peer.ID, sp Span, cancel context.CancelCauseFunc) *request {
	_, length := dl.sched.Bytes(sp)
	now := time.Now()
	dl.mu.Lock()
	defer dl.mu.Unlock()
	e := dl.n.estimate(p, dl.prior)
	e.Throughput /= float64(dl.opts.StreamsPerPeer)
	r := &request{p: p, sp: sp, start: now, expected: e.Time(length), cancel: cancel}
	dl.reqs[r] = struct{}{}
	l := dl.load[p]
	if l == nil {
		l = &peerLoad{last: now}
		dl.load[p] = l
	}
	l.advance(now)
	l.count++
	return r
}

// end unregisters r.
func (dl *download) end(r *request) {
	now := time.Now()
	dl.mu.Lock()
	defer dl.mu.Unlock()
	delete(dl.reqs, r)
	l := dl.load[r.p]
	l.advance(now)
	l.count--
}

// loadIntegral reads p's request-seconds so far.
func (dl *download) loadIntegral(p peer.ID) float64 {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	l := dl.load[p]
	if l == nil {
		return 0
	}
	l.advance(time.Now())
	return l.integral
}

// account records a request to p that wrote got bytes to dst and
// received recv bytes in elapsed, with conc requests on p on average
// meanwhile: got goes to the download's stats, recv (a request moved off
// a slow peer may have received bytes it did not write) to p's score.
func (dl *download) account(p peer.ID, got, recv int64, elapsed time.Duration, conc float64) {
	if got > 0 {
		dl.mu.Lock()
		dl.stats.Bytes += got
		dl.stats.BytesByPeer[p] += got
		dl.mu.Unlock()
	}
	if recv == 0 {
		return
	}
	n := dl.n
	now := time.Now()
	n.mu.Lock()
	n.fetched[p] += got
	n.scores.ObserveRate(p, transferRate(recv, elapsed, n.scores.Score(p, now).RTT, conc), now)
	n.mu.Unlock()
}

// estimate is p's current estimate (prior where unknown).
func (n *Node) estimate(p peer.ID, prior Estimate) Estimate {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.scores.Estimate(p, prior)
}

func (n *Node) addInFlight(p peer.ID, delta int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.scores.AddInFlight(p, delta, time.Now())
}
