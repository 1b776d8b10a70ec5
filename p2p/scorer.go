package p2p

import (
	"math"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// The scoring model (DESIGN §5). Everything here is pure arithmetic: no
// I/O, no clock, so the tables in scorer_test.go pin it down.
const (
	// loadFactor inflates a peer's expected time per range it is already
	// serving to this node.
	loadFactor = 0.5
	// failureFactor inflates a peer's expected time per (decayed) failure.
	failureFactor = 1.0
	// tieTolerance: expected times within this fraction of each other tie.
	tieTolerance = 0.1
	// gateSlack lets a peer take a range it is expected to finish up to
	// this factor after the download as a whole (see Admit).
	gateSlack = 1.25
	// peerSlack lets a peer take a range it is expected to deliver up to
	// this factor later than the best other peer could (see Admit): near
	// the end, equal peers whose estimates differ by noise all keep working.
	peerSlack = 2.0
	// reassignMargin: a range moves to another peer only if that peer is
	// expected to finish it this many times sooner than its owner.
	reassignMargin = 1.5
)

// Estimate is what the scorer assumes about one peer's link.
type Estimate struct {
	// RTT is the round-trip time.
	RTT time.Duration
	// Throughput is in bytes per second.
	Throughput float64
}

// defaultEstimate is the prior when nothing is known about any candidate:
// a LAN peer.
var defaultEstimate = Estimate{RTT: 5 * time.Millisecond, Throughput: 50 << 20}

// Time is the expected time to fetch size bytes: rtt + size/throughput.
// A peer with no throughput is infinitely slow.
func (e Estimate) Time(size int64) time.Duration {
	if e.Throughput <= 0 {
		return time.Duration(math.MaxInt64)
	}
	return e.RTT + seconds(float64(size)/e.Throughput)
}

// Inflate scales an expected time by a peer's load (ranges in flight)
// and recent failures: t·(1 + 0.5·inFlight)·(1 + failures).
func Inflate(t time.Duration, inFlight int, failures float64) time.Duration {
	f := (1 + loadFactor*float64(max(inFlight, 0))) * (1 + failureFactor*max(failures, 0))
	return seconds(t.Seconds() * f)
}

func seconds(s float64) time.Duration {
	if s >= float64(math.MaxInt64)/float64(time.Second) {
		return time.Duration(math.MaxInt64)
	}
	return time.Duration(s * float64(time.Second))
}

// tieBucket quantises an expected time on a log scale so that times
// within tieTolerance of each other usually share a bucket (a transitive
// notion of "about equal" for sorting).
func tieBucket(t time.Duration) int {
	if t <= 0 {
		return math.MinInt32
	}
	return int(math.Floor(math.Log(t.Seconds()) / math.Log1p(tieTolerance)))
}

// Finish returns when size bytes spread over peers are expected to be
// complete, if every peer works from now until then: the T with
// Σ rate_i·(T − rtt_i) = size over the peers whose rtt is below T. Peers
// with no throughput do not count.
func Finish(size int64, peers []Estimate) time.Duration {
	T, _ := solve(size, peers)
	return T
}

// solve returns the finish time and which peers take part.
func solve(size int64, peers []Estimate) (time.Duration, []bool) {
	use := make([]bool, len(peers))
	for i, e := range peers {
		use[i] = e.Throughput > 0
	}
	for {
		var rates, weighted float64
		for i, e := range peers {
			if use[i] {
				rates += e.Throughput
				weighted += e.Throughput * e.RTT.Seconds()
			}
		}
		if rates == 0 {
			return time.Duration(math.MaxInt64), use
		}
		T := (float64(size) + weighted) / rates
		// A peer whose first byte cannot arrive before T does not help:
		// drop the slowest to answer and solve again.
		worst := -1
		for i, e := range peers {
			if use[i] && e.RTT.Seconds() >= T && (worst < 0 || e.RTT > peers[worst].RTT) {
				worst = i
			}
		}
		if worst < 0 {
			return seconds(T), use
		}
		use[worst] = false
	}
}

// Shares splits size bytes over peers so that all are expected to finish
// at the same time (Finish): peer i gets rate_i·(T − rtt_i) bytes, so a
// peer twice as fast gets twice the bytes, and a peer that could not
// deliver anything before T gets none. The shares sum to size (rounding
// goes to the fastest peer).
func Shares(size int64, peers []Estimate) []int64 {
	out := make([]int64, len(peers))
	if size <= 0 || len(peers) == 0 {
		return out
	}
	T, use := solve(size, peers)
	if T == time.Duration(math.MaxInt64) {
		return out
	}
	var sum int64
	fastest := -1
	for i, e := range peers {
		if !use[i] {
			continue
		}
		out[i] = int64(e.Throughput * (T - e.RTT).Seconds())
		sum += out[i]
		if fastest < 0 || e.Throughput > peers[fastest].Throughput {
			fastest = i
		}
	}
	out[fastest] += size - sum
	return out
}

// Admit decides whether peer self (all its streams together) may take a
// range of rangeBytes on one of its streams, when remaining bytes of the
// download are still to come and others are the other peers taking part
// (each with as many streams, sharing its throughput): only if that
// stream is expected to deliver the range before the download as a whole
// is expected to end (Finish, with gateSlack), or at most peerSlack times
// later than the best other peer's stream could deliver it. A peer much
// slower than the rest so gets nothing, and near the end only the peers
// that can still make a difference do.
func Admit(self Estimate, others []Estimate, rangeBytes, remaining int64, streams int) bool {
	if len(others) == 0 {
		return true
	}
	perStream := func(e Estimate) Estimate {
		return Estimate{RTT: e.RTT, Throughput: e.Throughput / float64(max(streams, 1))}
	}
	mine := perStream(self).Time(rangeBytes)
	end := Finish(remaining, append(slices.Clone(others), self))
	best := time.Duration(math.MaxInt64)
	for _, o := range others {
		best = min(best, perStream(o).Time(rangeBytes))
	}
	return float64(mine) <= gateSlack*float64(end) || float64(mine) <= peerSlack*float64(best)
}

// RunLength returns how many chunks of chunkSize a lease of peer self
// should cover: its share (Shares) of the remaining bytes, spread over its
// streams, rounded, at least 1 and at most maxRun.
func RunLength(self Estimate, others []Estimate, remaining, chunkSize int64, streams, maxRun int) int {
	all := append(slices.Clone(others), self)
	share := Shares(remaining, all)[len(all)-1]
	per := float64(share) / float64(max(streams, 1)) / float64(chunkSize)
	return min(max(int(math.Round(per)), 1), maxRun)
}

// LeaseScored is the scored policy's lease decision for peer p (estimate
// self, for all its streams together; others are the other peers taking
// part). The run is p's share of the remaining bytes spread over its
// streams (RunLength), shortened until one stream (at its part of p's
// throughput) is expected to deliver it before the download as a whole is
// expected to end; if not even one chunk fits and another peer would
// deliver it sooner (Admit, per stream), p gets nothing. Otherwise p takes
// the next pending run, or else the back half of another peer's
// unstarted run (Steal).
func LeaseScored(s *Schedule, p peer.ID, self Estimate, others []Estimate, streams int) (Span, bool) {
	remaining := s.LeftBytes()
	streams = max(streams, 1)
	stream := self
	stream.Throughput /= float64(streams)
	run := RunLength(self, others, remaining, s.chunkSize, streams, s.maxRun)
	if len(others) > 0 {
		end := Finish(remaining, append(slices.Clone(others), self))
		for run > 1 && float64(stream.Time(int64(run)*s.chunkSize)) > gateSlack*float64(end) {
			run--
		}
		if !Admit(self, others, s.chunkSize, remaining, streams) {
			return Span{}, false
		}
	}
	if sp, ok := s.NextN(p, run); ok {
		return sp, true
	}
	return s.Steal(p)
}

// Progress is a range in flight, as the reassignment decision sees it.
type Progress struct {
	// Elapsed is how long ago the request was sent.
	Elapsed time.Duration
	// Expected is how long the owner was expected to take for the whole
	// range when it was leased.
	Expected time.Duration
	// Got is how many bytes of the range arrived so far.
	Got int64
	// Left is how many bytes of the range a new owner would have to fetch
	// (the unfinished chunks, in whole).
	Left int64
	// Remaining is how many bytes the owner still has to send.
	Remaining int64
}

// Reassign decides whether an idle peer taker should take over a range in
// flight: only when the owner has fallen behind its expected time, and
// the taker, starting over on the unfinished chunks, is expected to finish
// reassignMargin times sooner than the owner at the pace it shows.
func Reassign(pr Progress, taker Estimate) bool {
	if pr.Elapsed <= pr.Expected || pr.Left <= 0 {
		return false
	}
	var ownerLeft float64 // seconds
	if pr.Got > 0 {
		ownerLeft = float64(pr.Remaining) / (float64(pr.Got) / pr.Elapsed.Seconds())
	} else {
		// Nothing yet: assume it needs at least as long again.
		ownerLeft = pr.Elapsed.Seconds()
	}
	return reassignMargin*taker.Time(pr.Left).Seconds() < ownerLeft
}
