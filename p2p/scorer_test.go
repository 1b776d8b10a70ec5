package p2p

import (
	"math"
	"slices"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

const mib = 1 << 20

func TestShares(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		size  int64
		peers []Estimate
		want  []int64
		end   time.Duration
	}{
		{"equal peers split evenly", 1000, []Estimate{{0, 100}, {0, 100}}, []int64{500, 500}, 5 * time.Second},
		{"three times as fast, three times the bytes", 400, []Estimate{{0, 300}, {0, 100}}, []int64{300, 100}, time.Second},
		{"rtt costs a far peer bytes", 300, []Estimate{{time.Second, 100}, {0, 100}}, []int64{100, 200}, 2 * time.Second},
		{"a peer that cannot answer before the end gets nothing", 100, []Estimate{{10 * time.Second, 100}, {0, 100}}, []int64{0, 100}, time.Second},
		{"no throughput, no bytes", 100, []Estimate{{0, 0}, {0, 50}}, []int64{0, 100}, 2 * time.Second},
		{"one of four ten times slower", 3100, []Estimate{{0, 10}, {0, 10}, {0, 10}, {0, 1}}, []int64{1000, 1000, 1000, 100}, 100 * time.Second},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Shares(tt.size, tt.peers); !slices.Equal(got, tt.want) {
				t.Errorf("Shares = %v, want %v", got, tt.want)
			}
			if got := Finish(tt.size, tt.peers); got != tt.end {
				t.Errorf("Finish = %v, want %v", got, tt.end)
			}
		})
	}
	if got := Shares(100, []Estimate{{0, 0}}); !slices.Equal(got, []int64{0}) {
		t.Errorf("Shares with no usable peer = %v", got)
	}
}

func TestExpectedTime(t *testing.T) {
	t.Parallel()
	e := Estimate{RTT: 10 * time.Millisecond, Throughput: 100 * mib}
	if got, want := e.Time(50*mib), 510*time.Millisecond; got != want {
		t.Errorf("Time = %v, want %v", got, want)
	}
	if got, want := Inflate(time.Second, 2, 1), 4*time.Second; got != want {
		t.Errorf("Inflate(1s, 2 in flight, 1 failure) = %v, want %v", got, want)
	}
	if got := (Estimate{}).Time(1); got != time.Duration(math.MaxInt64) {
		t.Errorf("Time with no throughput = %v, want forever", got)
	}
}

func TestAdmit(t *testing.T) {
	t.Parallel()
	fast := Estimate{Throughput: 10}
	slow := Estimate{Throughput: 1}
	tests := []struct {
		name             string
		self             Estimate
		others           []Estimate
		chunk, remaining int64
		want             bool
	}{
		{"alone", slow, nil, 10, 10, true},
		{"slow peer helps with a large remainder", slow, []Estimate{fast, fast, fast}, 10, 1000, true},
		{"slow peer sits out a small remainder", slow, []Estimate{fast, fast, fast}, 10, 100, false},
		{"equal peers share the last chunk", fast, []Estimate{fast}, 10, 10, true},
		{"a peer a bit slower still takes the last chunks", Estimate{Throughput: 6}, []Estimate{fast}, 10, 20, true},
		{"a peer three times as slow leaves the last chunks to others", Estimate{Throughput: 3}, []Estimate{fast}, 10, 20, false},
		{"the fastest always takes", fast, []Estimate{slow}, 10, 10, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Admit(tt.self, tt.others, tt.chunk, tt.remaining, 1); got != tt.want {
				t.Errorf("Admit = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestRunLength(t *testing.T) {
	t.Parallel()
	fast, slow := Estimate{Throughput: 30}, Estimate{Throughput: 10}
	// 40 chunks left: the fast peer's share is 30, over 2 streams 15, capped at 8.
	if got := RunLength(fast, []Estimate{slow}, 400, 10, 2, 8); got != 8 {
		t.Errorf("RunLength(fast) = %d, want 8", got)
	}
	// The slow peer's share is 10 chunks, 5 per stream.
	if got := RunLength(slow, []Estimate{fast}, 400, 10, 2, 8); got != 5 {
		t.Errorf("RunLength(slow) = %d, want 5", got)
	}
	// Never less than one chunk.
	if got := RunLength(slow, []Estimate{fast}, 10, 10, 2, 8); got != 1 {
		t.Errorf("RunLength(last chunk) = %d, want 1", got)
	}
}

func TestReassign(t *testing.T) {
	t.Parallel()
	quick := Estimate{Throughput: 1000}
	tests := []struct {
		name  string
		pr    Progress
		taker Estimate
		want  bool
	}{
		{"on time", Progress{Elapsed: time.Second, Expected: 2 * time.Second, Got: 10, Left: 1000, Remaining: 990}, quick, false},
		{"behind, and the taker is much faster", Progress{Elapsed: 2 * time.Second, Expected: time.Second, Got: 100, Left: 1000, Remaining: 900}, quick, true},
		{"behind, but the taker is no faster", Progress{Elapsed: 2 * time.Second, Expected: time.Second, Got: 100, Left: 1000, Remaining: 900}, Estimate{Throughput: 50}, false},
		{"stalled: nothing arrived", Progress{Elapsed: 3 * time.Second, Expected: time.Second, Left: 1000, Remaining: 1000}, quick, true},
		{"nothing left to move", Progress{Elapsed: 3 * time.Second, Expected: time.Second}, quick, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := Reassign(tt.pr, tt.taker); got != tt.want {
				t.Errorf("Reassign = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestBudget(t *testing.T) {
	t.Parallel()
	t0 := time.Unix(0, 0)
	b := NewBudget(2, 4, t0)
	for i := range 4 {
		if !b.Take(1, t0) {
			t.Fatalf("Take %d of a full bucket of 4 refused", i)
		}
	}
	if b.Take(1, t0) {
		t.Fatal("Take from an empty bucket allowed")
	}
	if !b.Take(2, t0.Add(time.Second)) || b.Take(1, t0.Add(time.Second)) {
		t.Fatal("refill is not 2 per second")
	}
	if !b.Borrow(4, t0.Add(time.Second)) || b.Borrow(1, t0.Add(time.Second)) {
		t.Fatal("Borrow must go one burst into debt and no further")
	}
	if b.Take(1, t0.Add(3*time.Second)) { // balance -4 + 4 = 0
		t.Fatal("Take allowed while the debt is being paid back")
	}
	if !b.Take(1, t0.Add(3500*time.Millisecond)) {
		t.Fatal("Take refused after the debt was paid")
	}
	b.Refund(100, t0.Add(3500*time.Millisecond))
	if got := b.Tokens(t0.Add(3500 * time.Millisecond)); got != 4 {
		t.Fatalf("Tokens after a refund = %v, want the burst 4", got)
	}
}

func TestScoresDue(t *testing.T) {
	t.Parallel()
	const a, b, c, d = peer.ID("a"), peer.ID("b"), peer.ID("c"), peer.ID("d")
	t0 := time.Unix(1000, 0)
	s := NewScores()
	s.Probed(a, t0, t0.Add(time.Minute))                  // not due before t0+1m
	s.Probed(b, t0.Add(-time.Hour), t0.Add(-time.Minute)) // due, probed long ago
	s.Want(c, t0)                                         // wanted, never probed
	s.Penalize(d, PenaltyCorrupt, t0)                     // banned
	got := s.Due([]peer.ID{a, b, c, d, "e"}, 10*time.Minute, t0)
	if want := []peer.ID{c, "e", b}; !slices.Equal(got, want) {
		t.Fatalf("Due = %v, want %v (wanted first, then never probed, then oldest)", got, want)
	}
	if got := s.Due([]peer.ID{a}, 10*time.Minute, t0.Add(time.Minute)); !slices.Equal(got, []peer.ID{a}) {
		t.Fatalf("Due after the interval = %v, want [a]", got)
	}
	if !s.Stale(b, 10*time.Minute, t0) || s.Stale(c, 10*time.Minute, t0) || s.Stale(d, 10*time.Minute, t0) {
		t.Fatal("Stale: want only b (nothing heard for an hour; c is wanted, d banned)")
	}
}
