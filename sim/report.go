package sim

import (
	"fmt"
	"io"
	"math"
	"slices"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// strategyRun is what one strategy's fleet did (bytes simulated, unscaled).
type strategyRun struct {
	wall        time.Duration
	dilation    int // pull times and lock waits are wall time ÷ dilation
	pulls       []pullResult
	originBytes int64
	originReads int64
	peerBytes   int64
	lockWaits   lockWaits
	notes       []string
	sched       *SchedLatency
	cpu         *CPUUse
}

// lockWaits sums origin-lock waits.
type lockWaits struct {
	Count      int64   `json:"count"`
	SumSeconds float64 `json:"sum_seconds"`
}

// Report is a run's result. Byte figures are at full size (the simulated
// bytes times the scenario's scale).
type Report struct {
	Scenario    string `json:"scenario"`
	Seed        uint64 `json:"seed"`
	Fingerprint string `json:"fingerprint"`
	Nodes       int    `json:"nodes"`
	Groups      int    `json:"groups"`
	Scale       int    `json:"scale"`
	// ImageBytes is the size of the images pulled (each counted once).
	ImageBytes int64 `json:"image_bytes"`
	// HostLinkBytesPerSecond is the default host link speed.
	HostLinkBytesPerSecond float64 `json:"host_link_bytes_per_second"`
	// BoundSeconds is ImageBytes over the host link: no pull can be faster.
	BoundSeconds float64                    `json:"bound_seconds"`
	Events       []PlannedEvent             `json:"events"`
	Strategies   map[string]*StrategyReport `json:"strategies"`
	order        []string
	links        map[string]float64 // node name → link speed
}

// StrategyReport is one strategy's figures.
type StrategyReport struct {
	PullSeconds    Percentiles `json:"pull_seconds"`
	Pulls          int         `json:"pulls"`
	OriginBytes    int64       `json:"origin_bytes"`
	OriginMultiple float64     `json:"origin_multiple"`
	OriginReads    int64       `json:"origin_blob_reads"`
	PeerBytes      int64       `json:"peer_bytes"`
	FailedPulls    int         `json:"failed_pulls"`
	CorruptPulls   int         `json:"corrupt_pulls"`
	LockWaits      lockWaits   `json:"lock_waits"`
	// P99OverBound is the p99 pull time over BoundSeconds.
	P99OverBound float64 `json:"p99_over_bound"`
	// SlowestSpeedFraction is the slowest completed pull's average rate as
	// a fraction of its host's link speed.
	SlowestSpeedFraction float64 `json:"slowest_speed_fraction"`
	// WallSeconds is how long the schedule ran on the machine.
	WallSeconds float64 `json:"wall_seconds"`
	// TimeDilation: the run went this many times slower than simulated
	// time (Scenario.TimeDilation); the times above are simulated time.
	TimeDilation int `json:"time_dilation"`
	// SchedLatency is how long goroutines waited for a CPU during the
	// schedule (all agents share the simulator's cores).
	SchedLatency *SchedLatency `json:"sched_latency_seconds,omitempty"`
	// CPUSeconds is the processor time of the schedule (all agents).
	CPUSeconds *CPUUse `json:"cpu_seconds,omitempty"`
	// Failures lists every failed pull and why.
	Failures []PullFailure `json:"failures,omitempty"`
	Notes    []string      `json:"notes,omitempty"`
	// Samples are the completed pulls' times in seconds, sorted (the CDF).
	Samples []float64 `json:"samples"`
}

// Percentiles of pull completion times, in seconds.
type Percentiles struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// PullFailure is a pull that did not complete.
type PullFailure struct {
	Node   string `json:"node"`
	Image  string `json:"image"`
	Reason string `json:"reason"`
}

func newReport(p *Plan) *Report {
	s := p.Scenario
	r := &Report{Scenario: s.Name, Seed: p.Seed, Fingerprint: p.Fingerprint(), Nodes: s.Nodes(), Groups: s.Groups,
		Scale: s.Scale, HostLinkBytesPerSecond: float64(s.Links.Host), Events: p.Events, Strategies: map[string]*StrategyReport{},
		links: map[string]float64{}}
	for _, n := range p.Nodes {
		r.links[n.Name] = float64(n.Link)
	}
	pulled := map[string]bool{}
	for _, e := range p.Events {
		if e.Action == ActPull && !pulled[e.Image] {
			pulled[e.Image] = true
			r.ImageBytes += p.Image(e.Image).Bytes() * int64(s.Scale)
		}
	}
	if s.Links.Host > 0 {
		r.BoundSeconds = float64(r.ImageBytes) / float64(s.Links.Host)
	}
	return r
}

func (r *Report) add(strategy string, run *strategyRun) {
	scale := int64(r.Scale)
	sr := &StrategyReport{Pulls: len(run.pulls), OriginBytes: run.originBytes * scale, OriginReads: run.originReads,
		PeerBytes: run.peerBytes * scale, LockWaits: run.lockWaits, WallSeconds: run.wall.Seconds(), Notes: run.notes,
		SchedLatency: run.sched, CPUSeconds: run.cpu, TimeDilation: max(run.dilation, 1)}
	dilation := float64(sr.TimeDilation)
	sr.LockWaits.SumSeconds /= dilation
	if sr.TimeDilation > 1 {
		n := sr.TimeDilation
		sr.Notes = append([]string{fmt.Sprintf("time dilated %d×: the fleet ran %d times slower than simulated time (link speeds ÷%d; latencies, the schedule, lock leases and swarm timeouts ×%d), so its agents had %d times the CPU per simulated second; times are simulated time; the agents' other timers (gossip, polls, hedges) were not dilated",
			n, n, n, n, n)}, sr.Notes...)
	}
	if r.ImageBytes > 0 {
		sr.OriginMultiple = float64(sr.OriginBytes) / float64(r.ImageBytes)
	}
	sr.SlowestSpeedFraction = math.Inf(1)
	for _, p := range run.pulls {
		if p.Corrupt {
			sr.CorruptPulls++
		}
		if p.Err != nil {
			sr.FailedPulls++
			sr.Failures = append(sr.Failures, PullFailure{Node: p.Node, Image: p.Image, Reason: p.Err.Error()})
			continue
		}
		sec := p.Took.Seconds() / dilation
		sr.Samples = append(sr.Samples, sec)
		if link := r.linkOf(p.Node); link > 0 && sec > 0 {
			frac := float64(p.Bytes*scale) / sec / link
			sr.SlowestSpeedFraction = min(sr.SlowestSpeedFraction, frac)
		}
	}
	if math.IsInf(sr.SlowestSpeedFraction, 1) {
		sr.SlowestSpeedFraction = 0
	}
	sort.Float64s(sr.Samples)
	sort.Slice(sr.Failures, func(i, j int) bool { return sr.Failures[i].Node < sr.Failures[j].Node })
	sr.PullSeconds = Percentiles{P50: quantile(sr.Samples, 0.50), P95: quantile(sr.Samples, 0.95),
		P99: quantile(sr.Samples, 0.99), Max: quantile(sr.Samples, 1)}
	if r.BoundSeconds > 0 {
		sr.P99OverBound = sr.PullSeconds.P99 / r.BoundSeconds
	}
	r.Strategies[strategy] = sr
	r.order = append(r.order, strategy)
	slices.SortStableFunc(r.order, func(a, b string) int {
		return slices.Index(strategies, a) - slices.Index(strategies, b)
	})
}

// linkOf is a node's link speed in bytes per second.
func (r *Report) linkOf(node string) float64 { return r.links[node] }

// quantile is the nearest-rank quantile of sorted xs (0 when empty).
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(xs)))) - 1
	return xs[min(max(i, 0), len(xs)-1)]
}

// Order is the strategies that ran, in report order (that of the
// Strategy constants), whatever order they ran in.
func (r *Report) Order() []string { return r.order }

// WriteTable prints the report as a text table.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "scenario %s: %d nodes in %d groups, images %s, host link %s, bound %.1fs (seed %d, scale 1/%d)\n",
		r.Scenario, r.Nodes, r.Groups, Bytes(r.ImageBytes), Bandwidth(r.HostLinkBytesPerSecond), r.BoundSeconds, r.Seed, r.Scale)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "strategy\tpulls\tp50 s\tp95 s\tp99 s\tmax s\tp99/bound\tslowest/link\torigin\torigin ×\tpeers\tfailed\tcorrupt\t")
	for _, name := range r.order {
		s := r.Strategies[name]
		fmt.Fprintf(tw, "%s\t%d\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%.2f\t%s\t%.2f\t%s\t%d\t%d\t\n", name, s.Pulls,
			s.PullSeconds.P50, s.PullSeconds.P95, s.PullSeconds.P99, s.PullSeconds.Max, s.P99OverBound,
			s.SlowestSpeedFraction, Bytes(s.OriginBytes), s.OriginMultiple, Bytes(s.PeerBytes), s.FailedPulls, s.CorruptPulls)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, name := range r.order {
		s := r.Strategies[name]
		for _, f := range s.Failures {
			fmt.Fprintf(w, "  %s: pull of %s on %s failed: %s\n", name, f.Image, f.Node, f.Reason)
		}
		for _, n := range s.Notes {
			fmt.Fprintf(w, "  %s: %s\n", name, n)
		}
	}
	_, err := fmt.Fprintf(w, "fingerprint %s\n", strings.TrimPrefix(r.Fingerprint, "sha256:")[:16])
	return err
}
