package sim

import (
	"math"
	"runtime"
	"runtime/metrics"
	"syscall"
	"time"
)

// schedMetric is the Go runtime's histogram of how long goroutines waited
// to run after they became runnable.
const schedMetric = "/sched/latencies:seconds"

// starvedLatency: a run whose goroutines waited longer than this at the
// 99th percentile was short of CPU, and every message between agents
// (lock renewals, availability questions, DHT lookups) was slowed by it.
const starvedLatency = 50 * time.Millisecond

// SchedLatency is how long goroutines waited for a CPU during a strategy's
// schedule: all agents share this process's cores, so a saturated run
// delays every agent's control messages by about this much per hop.
type SchedLatency struct {
	P50 float64 `json:"p50"`
	P99 float64 `json:"p99"`
}

// schedCounts reads the runtime's scheduling-latency histogram.
func schedCounts() *metrics.Float64Histogram {
	s := []metrics.Sample{{Name: schedMetric}}
	metrics.Read(s)
	if s[0].Value.Kind() != metrics.KindFloat64Histogram {
		return nil
	}
	return s[0].Value.Float64Histogram()
}

// schedSince returns the latency percentiles of the goroutine wake-ups
// since before (a schedCounts reading); ok is false with no samples.
func schedSince(before *metrics.Float64Histogram) (SchedLatency, bool) {
	after := schedCounts()
	if before == nil || after == nil || len(after.Counts) != len(before.Counts) {
		return SchedLatency{}, false
	}
	delta := make([]uint64, len(after.Counts))
	var total uint64
	for i := range delta {
		delta[i] = after.Counts[i] - before.Counts[i]
		total += delta[i]
	}
	if total == 0 {
		return SchedLatency{}, false
	}
	return SchedLatency{
		P50: histQuantile(delta, after.Buckets, total, 0.50),
		P99: histQuantile(delta, after.Buckets, total, 0.99),
	}, true
}

// histQuantile returns the upper bound of the bucket holding quantile q
// (its lower bound for the last, unbounded bucket). buckets has one more
// element than counts.
func histQuantile(counts []uint64, buckets []float64, total uint64, q float64) float64 {
	rank := uint64(math.Ceil(q * float64(total)))
	var seen uint64
	for i, c := range counts {
		seen += c
		if seen >= rank && c > 0 {
			if hi := buckets[i+1]; !math.IsInf(hi, 1) {
				return hi
			}
			return buckets[i]
		}
	}
	return buckets[len(buckets)-1]
}

// CPUUse is the processor time the process spent during a strategy's
// schedule: Busy (user and system time) of Available CPU-seconds
// (GOMAXPROCS × wall time), GC of them in the garbage collector (the
// runtime's estimate). A run whose Busy nears Available is bound by this
// machine, not by its links.
type CPUUse struct {
	Busy      float64 `json:"busy"`
	GC        float64 `json:"gc"`
	Available float64 `json:"available"`
}

// cpuReading is a point to measure CPU use from.
type cpuReading struct {
	at   time.Time
	busy float64 // user and system CPU-seconds
	gc   float64
}

func readCPU() cpuReading {
	r := cpuReading{at: time.Now()}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		r.busy = time.Duration(ru.Utime.Nano() + ru.Stime.Nano()).Seconds()
	}
	s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
	metrics.Read(s)
	if s[0].Value.Kind() == metrics.KindFloat64 {
		r.gc = s[0].Value.Float64()
	}
	return r
}

// cpuSince returns the CPU use since before.
func cpuSince(before cpuReading) CPUUse {
	after := readCPU()
	return CPUUse{Busy: after.busy - before.busy, GC: after.gc - before.gc,
		Available: after.at.Sub(before.at).Seconds() * float64(runtime.GOMAXPROCS(0))}
}
