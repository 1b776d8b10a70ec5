package locks

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"
)

// benchAcquireRelease acquires and releases a fresh lock b.N times, cycling
// over the lockers, and reports p50/p99 of the round trip.
func benchAcquireRelease(b *testing.B, lockers []Locker) {
	ctx := context.Background()
	lat := make([]time.Duration, 0, b.N)
	i := 0
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		l, err := lockers[i%len(lockers)].Acquire(ctx, fmt.Sprintf("bench/%d", i), AcquireOptions{})
		if err != nil {
			b.Fatal(err)
		}
		if err := l.Release(ctx); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		i++
	}
	b.StopTimer()
	slices.Sort(lat)
	q := func(p float64) float64 { return float64(lat[int(p*float64(len(lat)-1))].Microseconds()) / 1000 }
	b.ReportMetric(q(0.50), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
}

// BenchmarkAcquireRelease measures lock acquire+release latency on an idle
// 12-member fleet (3 groups × 4; serf membership on an in-memory network,
// lock RPC over loopback HTTP), from every member in turn, against the
// in-process local locker as the baseline.
func BenchmarkAcquireRelease(b *testing.B) {
	b.Run("local", func(b *testing.B) {
		l, err := NewLocal(DefaultLocalConfig())
		if err != nil {
			b.Fatal(err)
		}
		benchAcquireRelease(b, []Locker{l})
	})
	b.Run("fleet12", func(b *testing.B) {
		f := newSerfLockFleet(b, 3, 4, testServiceConfig(), steadyMemberlist)
		var lockers []Locker
		for _, s := range f.services() {
			lockers = append(lockers, s)
		}
		benchAcquireRelease(b, lockers)
	})
}
