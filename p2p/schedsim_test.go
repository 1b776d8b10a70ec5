package p2p

import (
	"fmt"
	"math"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// simPeer is a source in the virtual-time model of a scored download.
type simPeer struct {
	est Estimate
	// stallAfter, if positive, is how many bytes the peer sends in all
	// before it stops sending.
	stallAfter int64
}

// simResult is what a simulated download did.
type simResult struct {
	bytes     []int64 // per peer
	end       time.Duration
	reassigns int
}

// simulate runs the scored policy's decisions (LeaseScored, Reassign and
// the bench after a move, as download.go applies them) over a blob of size
// bytes in virtual time: each peer has streams workers, each worker gets
// the peer's throughput divided by streams, and a request's first byte
// arrives one RTT after the lease. Every peer's estimate is its true
// speed. Only this test's arithmetic stands in for the network.
func simulate(t *testing.T, size, chunk int64, maxRun, streams int, peers []simPeer) simResult {
	t.Helper()
	type req struct {
		sp         Span
		start      float64 // seconds
		chunk      int     // chunk being received
		chunkStart float64 // when its first byte arrives
		expected   float64
		got        int64
	}
	ids := make([]peer.ID, len(peers))
	for i := range peers {
		ids[i] = peer.ID(fmt.Sprintf("p%d", i))
	}
	s := NewSchedule(size, chunk, maxRun)
	workers := make([]*req, len(peers)*streams) // worker w belongs to peer w/streams
	bench := make([]float64, len(peers))
	sent := make([]int64, len(peers)) // bytes each peer sent, partial chunks included
	res := simResult{bytes: make([]int64, len(peers))}
	rate := func(i int) float64 { return peers[i].est.Throughput / float64(streams) }
	chunkBytes := func(c int) int64 { _, n := s.Bytes(Span{First: c, Count: 1}); return n }
	// done returns when the worker's current chunk completes (+Inf if its
	// peer stalls first).
	done := func(w int, r *req) float64 {
		i := w / streams
		if st := peers[i].stallAfter; st > 0 && sent[i]+chunkBytes(r.chunk) > st {
			return math.Inf(1)
		}
		return r.chunkStart + float64(chunkBytes(r.chunk))/rate(i)
	}
	partial := func(w int, r *req, now float64) int64 {
		i := w / streams
		p := int64(max(now-r.chunkStart, 0) * rate(i))
		if st := peers[i].stallAfter; st > 0 {
			p = min(p, max(st-sent[i], 0))
		}
		return min(p, chunkBytes(r.chunk))
	}
	estimates := func(i int) (Estimate, []Estimate) {
		var others []Estimate
		for j := range peers {
			if j != i {
				others = append(others, peers[j].est)
			}
		}
		return peers[i].est, others
	}

	now := 0.0
	for step := 0; !s.Complete(); step++ {
		if step > 1_000_000 {
			t.Fatal("simulation did not finish")
		}
		// Idle workers lease; a worker that gets nothing may move a range
		// that fell behind (it leases the moved chunks on the next pass).
		for pass := 0; pass < 2; pass++ {
			for w, r := range workers {
				if r != nil {
					continue
				}
				i := w / streams
				self, others := estimates(i)
				if now < bench[i] {
					continue
				}
				if sp, ok := LeaseScored(s, ids[i], self, others, streams); ok {
					s.Start(sp.First, ids[i])
					_, n := s.Bytes(sp)
					workers[w] = &req{sp: sp, start: now, chunk: sp.First, chunkStart: now + self.RTT.Seconds(),
						expected: self.RTT.Seconds() + float64(n)/rate(i)}
					continue
				}
				if !Admit(self, others, chunk, s.LeftBytes(), streams) {
					continue // only a peer Admit lets work may take a range over
				}
				taker := self
				taker.Throughput /= float64(streams)
				victim, worst := -1, 0.0
				for v, o := range workers {
					if o == nil || v/streams == i {
						continue
					}
					left := s.Unfinished(o.sp, ids[v/streams])
					pg := partial(v, o, now)
					pr := Progress{
						Elapsed:  seconds(now - o.start),
						Expected: seconds(o.expected),
						Got:      o.got + pg, Left: left, Remaining: left - pg,
					}
					if Reassign(pr, taker) && (victim < 0 || (now-o.start)/o.expected > worst) {
						victim, worst = v, (now-o.start)/o.expected
					}
				}
				if victim >= 0 {
					o := workers[victim]
					vi := victim / streams
					sent[vi] += partial(victim, o, now)
					s.Release(o.sp, ids[vi])
					bench[vi] = now + o.expected
					workers[victim] = nil
					res.reassigns++
				}
			}
		}
		// Advance to the next chunk completion, or a recheck while some
		// worker is idle.
		next, who := math.Inf(1), -1
		idle := false
		for w, r := range workers {
			if r == nil {
				idle = true
				continue
			}
			if d := done(w, r); d < next {
				next, who = d, w
			}
		}
		if idle {
			next = min(next, now+recheck.Seconds())
			if who >= 0 && done(who, workers[who]) > next {
				who = -1
			}
		}
		if math.IsInf(next, 1) {
			t.Fatal("simulation deadlocked: nobody can make progress")
		}
		now = next
		if who < 0 {
			continue
		}
		r := workers[who]
		i := who / streams
		n := chunkBytes(r.chunk)
		if s.Received(r.chunk, ids[i]) {
			res.bytes[i] += n
		}
		sent[i] += n
		r.got += n
		r.chunk++
		r.chunkStart = now
		if r.chunk >= r.sp.End() || !s.Start(r.chunk, ids[i]) {
			workers[who] = nil
		}
	}
	res.end = seconds(now)
	return res
}

// TestScoredScheduleShares runs the scored range scheduler over peers of
// known RTT and throughput (virtual time) and checks that each peer's
// share of the bytes comes out as Shares designs it, that the download
// ends close to the ideal Finish time, and that a stalled peer's range is
// moved.
func TestScoredScheduleShares(t *testing.T) {
	t.Parallel()
	const (
		chunk   = 1 * mib
		size    = 128 * mib
		streams = 2
		maxRun  = 8
	)
	fast := Estimate{RTT: 2 * time.Millisecond, Throughput: 40 * mib}
	tests := []struct {
		name      string
		peers     []simPeer
		tolerance float64 // on each peer's fraction of the bytes
		reassigns bool    // at least one range must move
	}{
		{"equal peers", []simPeer{{est: fast}, {est: fast}, {est: fast}, {est: fast}}, 0.04, false},
		{"throughput 4:2:1:1", []simPeer{
			{est: Estimate{RTT: 2 * time.Millisecond, Throughput: 80 * mib}},
			{est: Estimate{RTT: 2 * time.Millisecond, Throughput: 40 * mib}},
			{est: Estimate{RTT: 2 * time.Millisecond, Throughput: 20 * mib}},
			{est: Estimate{RTT: 2 * time.Millisecond, Throughput: 20 * mib}},
		}, 0.04, false},
		{"one provider ten times slower", []simPeer{
			{est: fast}, {est: fast}, {est: fast},
			{est: Estimate{RTT: 2 * time.Millisecond, Throughput: 4 * mib}},
		}, 0.03, false},
		{"a far peer gets less", []simPeer{
			{est: fast}, {est: Estimate{RTT: 100 * time.Millisecond, Throughput: 40 * mib}},
		}, 0.04, false},
		{"a stalled peer's range moves", []simPeer{
			{est: fast}, {est: fast}, {est: fast, stallAfter: 3 * mib / 2},
		}, 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			// Every request pays a round trip (rtt + range/throughput per
			// range, DESIGN §5), so the design's share is that of the
			// throughput a peer shows over ranges of maxRun chunks.
			ests := make([]Estimate, len(tt.peers))
			for i, p := range tt.peers {
				run := int64(maxRun * chunk)
				perStream := Estimate{RTT: p.est.RTT, Throughput: p.est.Throughput / streams}
				ests[i] = Estimate{RTT: p.est.RTT, Throughput: streams * float64(run) / perStream.Time(run).Seconds()}
			}
			got := simulate(t, size, chunk, maxRun, streams, tt.peers)
			ideal := Finish(size, ests)
			t.Logf("bytes %v in %v (ideal %v), %d ranges moved", got.bytes, got.end, ideal, got.reassigns)
			var total int64
			for _, b := range got.bytes {
				total += b
			}
			if total != size {
				t.Fatalf("peers delivered %d bytes in all, want %d", total, size)
			}
			if tt.reassigns {
				if got.reassigns == 0 {
					t.Fatal("no range moved off the stalled peer")
				}
				if got.end > time.Duration(1.3*float64(Finish(size, ests[:2]))) {
					t.Fatalf("download took %v, want within 1.3x of the two healthy peers' %v", got.end, Finish(size, ests[:2]))
				}
				return
			}
			want := Shares(size, ests)
			for i := range tt.peers {
				f, w := float64(got.bytes[i])/size, float64(want[i])/size
				if math.Abs(f-w) > tt.tolerance {
					t.Errorf("peer %d delivered %.3f of the bytes, want %.3f±%.2f", i, f, w, tt.tolerance)
				}
			}
			if got.end > time.Duration(1.15*float64(ideal)) {
				t.Errorf("download took %v, want within 1.15x of the ideal %v", got.end, ideal)
			}
		})
	}
}
