package sim

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Options tune a run.
type Options struct {
	// Dir holds the agents' data; a temporary directory when empty. Each
	// strategy's data is removed when it ends.
	Dir string
	// Progress receives a progress line every couple of seconds (nil: none).
	Progress func(line string)
	// Log receives the agents' warnings and errors (nil: discarded).
	Log *slog.Logger
	// TraceNode, if set, names a host whose agent logs at debug level to
	// Trace (to follow one host's fetches).
	TraceNode string
	Trace     *slog.Logger
	// Phase, if set, is called when a strategy's fleet is ready (start) and
	// when its schedule has ended (stop): profiles cover only the pulls.
	Phase func(strategy string, start bool)
}

// Run runs every strategy of the plan on a fresh fleet, in the scenario's
// RunOrder: a batch of concurrent strategies at the same time, the others
// one after another.
func Run(ctx context.Context, plan *Plan, opts Options) (*Report, error) {
	if opts.Progress == nil {
		opts.Progress = func(string) {}
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	base := opts.Dir
	if base == "" {
		d, err := os.MkdirTemp(memDir(), "shoal-sim-")
		if err != nil {
			return nil, fmt.Errorf("sim: %w", err)
		}
		defer os.RemoveAll(d)
		base = d
	}
	runs := map[string]*strategyRun{}
	for _, batch := range plan.Scenario.RunOrder() {
		got, err := runBatch(ctx, plan, batch, base, opts)
		if err != nil {
			return nil, err
		}
		for i, st := range batch {
			runs[st] = got[i]
		}
	}
	rep := newReport(plan)
	for _, st := range plan.Scenario.Strategies {
		rep.add(st, runs[st])
	}
	return rep, nil
}

// runBatch runs the strategies of batch at the same time, each on its own
// fleet; the first error cancels the others. Phase sees the batch as one
// strategy named a+b, from the first fleet ready to the last one done.
func runBatch(ctx context.Context, plan *Plan, batch []string, base string, opts Options) ([]*strategyRun, error) {
	if len(batch) > 1 && opts.Phase != nil {
		name, phase := strings.Join(batch, "+"), opts.Phase
		var mu sync.Mutex
		active := 0
		opts.Phase = func(_ string, start bool) {
			mu.Lock()
			defer mu.Unlock()
			if start {
				if active++; active == 1 {
					phase(name, true)
				}
			} else if active--; active == 0 {
				phase(name, false)
			}
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The schedules start together once every fleet is up, and the fleets
	// stop together once every schedule has ended: one fleet's start-up or
	// shutdown (CPU-bound bursts) must not slow another's pulls.
	readyAll, endedAll := newBarrier(len(batch)), newBarrier(len(batch))
	runs := make([]*strategyRun, len(batch))
	errs := make([]error, len(batch))
	var wg sync.WaitGroup
	for i, st := range batch {
		wg.Go(func() {
			ready, ended := readyAll.member(), endedAll.member()
			// A fleet that failed does not hold the others.
			defer ready.leave()
			defer ended.leave()
			bs := batchSync{ready: ready.await, ended: ended.await}
			dir, err := os.MkdirTemp(base, st+"-")
			if err != nil {
				errs[i] = fmt.Errorf("sim: %w", err)
				cancel()
				return
			}
			defer os.RemoveAll(dir)
			if runs[i], err = runStrategy(ctx, plan, st, dir, opts, bs); err != nil {
				errs[i] = fmt.Errorf("sim: strategy %s: %w", st, err)
				cancel()
				return
			}
			if len(batch) > 1 {
				others := slices.DeleteFunc(slices.Clone(batch), func(s string) bool { return s == st })
				runs[i].notes = append(runs[i].notes, fmt.Sprintf("ran at the same time as %s (scenario's concurrent list): cpu_seconds and sched_latency_seconds cover every fleet then running",
					strings.Join(others, ", ")))
			}
		})
	}
	wg.Wait()
	// A strategy cancelled because another failed only echoes that failure.
	var causes []error
	for _, err := range errs {
		if err != nil && !errors.Is(err, context.Canceled) {
			causes = append(causes, err)
		}
	}
	if err := errors.Join(causes...); err != nil {
		return nil, err
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return runs, nil
}

// runState collects what one strategy's run observed.
type runState struct {
	mu      sync.Mutex
	pulls   []pullResult
	pushes  []error
	started int
	notes   []string
}

func (s *runState) note(format string, args ...any) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notes = append(s.notes, fmt.Sprintf(format, args...))
}

// batchSync holds a strategy's run in step with the others of its batch:
// ready returns when the schedule may start, ended when the fleet may stop.
type batchSync struct {
	ready, ended func(context.Context) error
}

// barrier lets n members wait until each has arrived or left.
type barrier struct {
	wg  sync.WaitGroup
	all chan struct{}
}

func newBarrier(n int) *barrier {
	b := &barrier{all: make(chan struct{})}
	b.wg.Add(n)
	go func() { b.wg.Wait(); close(b.all) }()
	return b
}

// barrierMember is one member's handle; it arrives (or leaves) once.
type barrierMember struct {
	b      *barrier
	arrive func()
}

func (b *barrier) member() barrierMember {
	return barrierMember{b: b, arrive: sync.OnceFunc(b.wg.Done)}
}

// await arrives and waits for the others, or for ctx.
func (m barrierMember) await(ctx context.Context) error {
	m.arrive()
	select {
	case <-m.b.all:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// leave arrives without waiting (no-op after await).
func (m barrierMember) leave() { m.arrive() }

// runStrategy starts strategy's fleet, waits for bs.ready, runs the
// schedule, waits for bs.ended and stops the fleet.
func runStrategy(ctx context.Context, plan *Plan, strategy, dir string, opts Options, bs batchSync) (*strategyRun, error) {
	sc := plan.Scenario
	f, err := newFleet(plan, strategy, dir, opts.Log.With("strategy", strategy))
	if err == nil && opts.TraceNode != "" && opts.Trace != nil {
		f.trace, f.traceNode = opts.Trace.With("strategy", strategy), opts.TraceNode
	}
	if err != nil {
		return nil, err
	}
	say := func(format string, args ...any) {
		opts.Progress(fmt.Sprintf("[%s] %s", strategy, fmt.Sprintf(format, args...)))
	}
	defer func() {
		t := time.Now()
		f.close()
		say("fleet stopped in %.1fs (%d goroutines left in the process)", time.Since(t).Seconds(), runtime.NumGoroutine())
	}()
	if err := f.seed(ctx); err != nil {
		return nil, err
	}
	say("starting %d agents", len(f.nodes))
	t0 := time.Now()
	if err := f.startAll(ctx, func(s string) { say("%s", s) }); err != nil {
		return nil, err
	}
	say("fleet ready in %.1fs", time.Since(t0).Seconds())
	if err := bs.ready(ctx); err != nil {
		return nil, err
	}
	if opts.Phase != nil {
		opts.Phase(strategy, true)
		defer opts.Phase(strategy, false)
	}

	var st runState
	var work sync.WaitGroup
	sched, cpu := schedCounts(), readCPU()
	start := time.Now()
	stopProgress := make(chan struct{})
	var progressDone sync.WaitGroup
	progressDone.Go(func() {
		tick := time.NewTicker(2 * time.Second)
		defer tick.Stop()
		for {
			select {
			case <-stopProgress:
				return
			case <-tick.C:
				st.mu.Lock()
				done, failed := len(st.pulls), 0
				for _, p := range st.pulls {
					if p.Err != nil {
						failed++
					}
				}
				started := st.started
				st.mu.Unlock()
				say("%5.1fs pulls %d/%d done (%d failed), origin %s, peers %s", time.Since(start).Seconds()/float64(f.dilate),
					done, started, failed, Bytes(f.origin.bytes.Load()*int64(sc.Scale)), Bytes(f.peerBytes()*int64(sc.Scale)))
			}
		}
	})
	defer func() { close(stopProgress); progressDone.Wait() }()

	for _, ev := range plan.Events {
		if d := time.Until(start.Add(f.dilated(ev.At))); d > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(d):
			}
		}
		f.apply(ctx, ev, &st, &work, f.dilated(sc.PullTimeout.D()))
	}
	waited := make(chan struct{})
	go func() { work.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(f.dilated(sc.Settle.D())):
		st.note("some work was still running %s after the last event", sc.Settle.D())
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	run := &strategyRun{wall: time.Since(start), dilation: f.dilate, originBytes: f.origin.bytes.Load(), originReads: f.origin.reads.Load(),
		peerBytes: f.peerBytes(), lockWaits: f.lockWaits(ctx)}
	use := cpuSince(cpu)
	run.cpu = &use
	if lat, ok := schedSince(sched); ok {
		run.sched = &lat
		// A wait of w wall seconds is w/dilation in simulated time.
		if lat.P99/float64(f.dilate) > starvedLatency.Seconds() {
			st.note("CPU-starved: goroutines waited %.1f ms for a CPU at the 99th percentile (p50 %.3f ms; %.1f ms of simulated time), the agents used %.0f of the %.0f CPU-seconds this machine had (%.0f in GC); every message between agents was delayed about that much per hop, so times here overstate what a fleet of real hosts would see",
				1000*lat.P99, 1000*lat.P50, 1000*lat.P99/float64(f.dilate), use.Busy, use.Available, use.GC)
		}
	}
	if err := bs.ended(ctx); err != nil {
		return nil, err
	}
	st.mu.Lock()
	run.pulls, run.notes = append([]pullResult(nil), st.pulls...), append([]string(nil), st.notes...)
	for _, err := range st.pushes {
		if err != nil {
			run.notes = append(run.notes, "push failed: "+err.Error())
		}
	}
	st.mu.Unlock()
	return run, nil
}

// apply runs one event. Pulls, pushes and restarts run in the background
// (tracked by work); the others take effect at once.
func (f *fleet) apply(ctx context.Context, ev PlannedEvent, st *runState, work *sync.WaitGroup, pullTimeout time.Duration) {
	nodes := f.select_(ctx, ev.Nodes)
	switch ev.Action {
	case ActPull:
		im := f.plan.Image(ev.Image)
		for _, n := range nodes {
			st.mu.Lock()
			st.started++
			st.mu.Unlock()
			work.Go(func() {
				pctx, cancel := context.WithTimeout(ctx, pullTimeout)
				defer cancel()
				r := f.pull(pctx, n, im)
				st.mu.Lock()
				st.pulls = append(st.pulls, r)
				st.mu.Unlock()
			})
		}
	case ActPush:
		im := f.plan.Image(ev.Image)
		for _, n := range nodes {
			work.Go(func() {
				err := f.push(ctx, n, im)
				if err != nil {
					err = fmt.Errorf("%s: %w", n.spec.Name, err)
				}
				st.mu.Lock()
				st.pushes = append(st.pushes, err)
				st.mu.Unlock()
			})
		}
	case ActKill:
		for _, n := range nodes {
			// A killed agent's drain is cut short; that is the point.
			if err := f.stop(n, true); err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
				st.note("kill %s: %v", n.spec.Name, err)
			}
		}
	case ActRestart:
		for _, n := range nodes {
			if _, up := n.running(); up {
				continue
			}
			work.Go(func() {
				if err := f.start(ctx, n); err != nil {
					st.note("restart %s: %v", n.spec.Name, err)
				}
			})
		}
	case ActPartition:
		f.partition(ev.Groups)
	case ActHeal:
		if err := f.heal(); err != nil {
			st.note("heal: %v", err)
		}
	case ActOriginDown:
		f.origin.down.Store(true)
	case ActOriginUp:
		f.origin.down.Store(false)
	}
}

// select_ turns planned node names into nodes, resolving "proxy:gNN" to
// the group's proxy as the group's running members see it now.
func (f *fleet) select_(ctx context.Context, names []string) []*node {
	var out []*node
	for _, name := range names {
		if name == "down" {
			for _, n := range f.nodes {
				if _, up := n.running(); !up {
					out = append(out, n)
				}
			}
			continue
		}
		if g, ok := strings.CutPrefix(name, "proxy:"); ok {
			if n := f.proxyOf(ctx, g); n != nil {
				out = append(out, n)
			}
			continue
		}
		if n := f.node(name); n != nil {
			out = append(out, n)
		}
	}
	return out
}

func (f *fleet) proxyOf(ctx context.Context, group string) *node {
	for _, n := range f.nodes {
		if n.spec.Group != group {
			continue
		}
		if st, err := f.status(ctx, n); err == nil && st.Proxy != "" {
			return f.node(st.Proxy)
		}
	}
	return nil
}

// peerBytes is how many blob bytes hosts have sent to peers (scaled).
func (f *fleet) peerBytes() int64 {
	var n int64
	for _, nd := range f.nodes {
		n += nd.served.Load()
	}
	return n
}

// lockWaits sums the origin-lock wait histograms of the running agents.
func (f *fleet) lockWaits(ctx context.Context) lockWaits {
	var lw lockWaits
	for _, n := range f.nodes {
		a, ok := n.running()
		if !ok {
			continue
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+a.AdminAddr()+"/metrics", nil)
		resp, err := f.client.Do(req)
		if err != nil {
			continue
		}
		h := scrape(resp.Body, "shoal_origin_lock_wait_seconds")
		resp.Body.Close()
		lw.SumSeconds += h.sum
		lw.Count += int64(h.count)
	}
	return lw
}

type scraped struct{ sum, count float64 }

// scrape reads a histogram's _sum and _count from a Prometheus text body.
func scrape(r io.Reader, base string) scraped {
	var s scraped
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		key, val, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		v, err := strconv.ParseFloat(strings.TrimSpace(val), 64)
		if err != nil {
			continue
		}
		switch key {
		case base + "_sum":
			s.sum = v
		case base + "_count":
			s.count = v
		}
	}
	return s
}

// memDir is where a run keeps its agents' data by default: a memory file
// system when the machine has one (/dev/shm), so that the simulated
// network, not the disk under the run, sets the pace; else the
// temporary directory.
func memDir() string {
	if fi, err := os.Stat("/dev/shm"); err == nil && fi.IsDir() {
		if f, err := os.CreateTemp("/dev/shm", "shoal-sim-probe-"); err == nil {
			f.Close()
			os.Remove(f.Name())
			return "/dev/shm"
		}
	}
	return os.TempDir()
}
