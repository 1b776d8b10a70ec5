package sim

import (
	"math"
	"testing"
)

func TestHistQuantile(t *testing.T) {
	t.Parallel()
	buckets := []float64{0, 0.001, 0.01, 0.1, math.Inf(1)}
	for _, c := range []struct {
		counts []uint64
		q      float64
		want   float64
	}{
		{[]uint64{90, 9, 1, 0}, 0.50, 0.001},
		{[]uint64{90, 9, 1, 0}, 0.99, 0.01},
		{[]uint64{90, 9, 1, 0}, 1, 0.1},
		{[]uint64{0, 0, 0, 5}, 0.5, 0.1}, // unbounded bucket: its lower bound
		{[]uint64{1, 0, 0, 0}, 0.99, 0.001},
	} {
		var total uint64
		for _, n := range c.counts {
			total += n
		}
		if got := histQuantile(c.counts, buckets, total, c.q); got != c.want {
			t.Errorf("histQuantile(%v, q=%v) = %v, want %v", c.counts, c.q, got, c.want)
		}
	}
}

// TestSchedSinceSeesWakeUps: goroutines woken after the first reading
// show up in the difference.
func TestSchedSinceSeesWakeUps(t *testing.T) {
	before := schedCounts()
	if before == nil {
		t.Fatalf("runtime metric %s not available", schedMetric)
	}
	done := make(chan struct{})
	for range 100 {
		go func() { done <- struct{}{} }()
		<-done
	}
	lat, ok := schedSince(before)
	if !ok {
		t.Fatal("no scheduling samples after 100 goroutine wake-ups")
	}
	if lat.P50 <= 0 || lat.P99 < lat.P50 {
		t.Fatalf("latency %+v: want 0 < p50 <= p99", lat)
	}
}
