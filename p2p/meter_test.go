package p2p

import (
	"math"
	"testing"
	"time"
)

func TestRateMeter(t *testing.T) {
	t.Parallel()
	var m rateMeter
	t0 := time.Unix(1000, 0)
	m.start = t0
	// 100 KB every 100 ms for a second: 1 MB/s.
	for i := range 10 {
		m.add(100_000, t0.Add(time.Duration(i)*100*time.Millisecond))
	}
	if r := m.rate(t0.Add(time.Second)); math.Abs(r-1e6) > 0.15e6 {
		t.Fatalf("rate after 1 MB/s for a second = %.0f B/s, want about 1e6", r)
	}
	// Quiet for two buckets: nothing left.
	if r := m.rate(t0.Add(2*time.Second + 10*time.Millisecond)); r != 0 {
		t.Fatalf("rate after a quiet second = %.0f B/s, want 0", r)
	}
}

// TestDownlinkFull: a host whose own requests would take half a second or
// more through its downlink does not hedge (a rival would split the link).
func TestDownlinkFull(t *testing.T) {
	t.Parallel()
	n := &Node{scores: NewScores()}
	now := time.Now()
	if n.downlinkFull(now) {
		t.Fatal("full with no downlink measured")
	}
	n.scores.ObserveProbe("p", 1e6, now)
	if n.downlinkFull(now) {
		t.Fatal("full with nothing asked for")
	}
	n.pending.Store(600_000)
	if !n.downlinkFull(now) {
		t.Fatal("not full with 0.6 s of bytes asked for at 1 MB/s")
	}
	n.pending.Store(0)
	for i := range 8 {
		n.rx.add(100_000, now.Add(time.Duration(i)*100*time.Millisecond))
	}
	if !n.downlinkFull(now.Add(800 * time.Millisecond)) {
		t.Fatal("not full receiving at ~1 MB/s of a 1 MB/s downlink")
	}
}
