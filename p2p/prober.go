package p2p

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/host"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/ping"
)

// prober measures peers (DESIGN §5): a libp2p ping for RTT and a test
// download from the peer's /probe endpoint for throughput, on a jittered
// schedule within a global budget, and on demand before large downloads.
// The decisions (who is due, the budget, the scores) are the pure Scores
// and Budget; this is the network shell around them.
type prober struct {
	n    *Node
	opts ProbeOptions
	wg   sync.WaitGroup

	mu      sync.Mutex
	stopped bool    // no probe starts after close
	probes  *Budget // probes per second
	bytes   *Budget // test download bytes per second
	running map[peer.ID]bool
	rng     *rand.Rand
}

func newProber(n *Node, opts ProbeOptions, now time.Time) *prober {
	return &prober{
		n:       n,
		opts:    opts,
		probes:  NewBudget(opts.Rate, max(opts.Rate*opts.Burst, 1), now),
		bytes:   NewBudget(opts.ByteRate, max(opts.ByteRate*opts.Burst, float64(opts.Bytes)), now),
		running: make(map[peer.ID]bool),
		rng:     rand.New(rand.NewPCG(uint64(now.UnixNano()), uint64(len(n.host.ID())))),
	}
}

// tick is how often the scheduler looks for due peers: about twice per
// budgeted probe, between 10ms and 1s, and at most half the interval.
func (pr *prober) tick() time.Duration {
	t := time.Duration(float64(time.Second) / pr.opts.Rate / 2)
	t = min(max(t, 10*time.Millisecond), time.Second)
	return min(t, max(pr.opts.Interval/2, time.Millisecond))
}

// run probes due peers until ctx ends. Probes still running end with
// ctx; close waits for them.
func (pr *prober) run(ctx context.Context) {
	if pr.opts.Interval <= 0 {
		return
	}
	t := time.NewTicker(pr.tick())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		pr.schedule(ctx, time.Now())
	}
}

// close stops new probes and waits for the running ones.
func (pr *prober) close() {
	pr.mu.Lock()
	pr.stopped = true
	pr.mu.Unlock()
	pr.wg.Wait()
}

// schedule starts probes of the due peers the budget allows: connected
// peers and recently wanted ones, wanted first. It also forgets peers
// that left and were not heard of for a while, to bound the table.
func (pr *prober) schedule(ctx context.Context, now time.Time) {
	// Most ticks find the budget spent or every probe slot taken: listing
	// the peers then is wasted (in the simulator, 100 agents ticking
	// twice a second spent 3.6% of the CPU on it).
	pr.mu.Lock()
	ready := !pr.stopped && len(pr.running) < pr.opts.Concurrency && pr.probes.Tokens(now) >= 1
	pr.mu.Unlock()
	if !ready {
		return
	}
	n := pr.n
	connected := n.host.Network().Peers()
	isConn := make(map[peer.ID]bool, len(connected))
	for _, p := range connected {
		isConn[p] = true
	}
	n.mu.Lock()
	peers := connected
	for _, p := range n.scores.Known() {
		if isConn[p] || p == n.host.ID() {
			continue
		}
		if n.scores.Stale(p, pr.opts.WantedFor, now) {
			n.scores.Forget(p)
			continue
		}
		if sc := n.scores.Score(p, now); !sc.Wanted.IsZero() && now.Sub(sc.Wanted) < pr.opts.WantedFor {
			peers = append(peers, p)
		}
	}
	due := n.scores.Due(peers, pr.opts.WantedFor, now)
	n.mu.Unlock()

	pr.mu.Lock()
	defer pr.mu.Unlock()
	if pr.stopped {
		return
	}
	for _, p := range due {
		if len(pr.running) >= pr.opts.Concurrency {
			return
		}
		if pr.running[p] || p == n.host.ID() {
			continue
		}
		if !pr.probes.Take(1, now) {
			return
		}
		size := pr.opts.Bytes
		if size > 0 && !pr.bytes.Take(float64(size), now) {
			size = 0 // ping only
		}
		pr.startLocked(ctx, p, size, pr.opts.Timeout, now)
	}
}

// startLocked launches one probe of p (a ping, and a test download of size
// bytes unless 0) bounded by limit.
func (pr *prober) startLocked(ctx context.Context, p peer.ID, size int64, limit time.Duration, now time.Time) {
	pr.running[p] = true
	pr.n.probes.Add(1)
	jitter := 1 + pr.opts.Jitter*(2*pr.rng.Float64()-1)
	next := now.Add(time.Duration(float64(pr.opts.Interval) * jitter))
	pr.n.mu.Lock()
	pr.n.scores.Probed(p, now, next)
	pr.n.mu.Unlock()
	pr.wg.Go(func() {
		pctx, cancel := context.WithTimeout(ctx, limit)
		defer cancel()
		pr.done(p, size, pr.n.measure(pctx, p, size, false))
	})
}

// done ends a probe of p that reserved size test bytes and received got:
// the peer may be probed again, and unused bytes go back to the budget.
func (pr *prober) done(p peer.ID, size, got int64) {
	pr.mu.Lock()
	defer pr.mu.Unlock()
	delete(pr.running, p)
	if size > got {
		pr.bytes.Refund(float64(size-got), time.Now())
	}
}

// probeNow measures, before a download, the candidates whose throughput
// is not fresh, and waits for them at most OnDemandWait. These probes
// borrow from the budget ahead of scheduled ones.
func (pr *prober) probeNow(ctx context.Context, cands []peer.AddrInfo) {
	now := time.Now()
	pr.n.mu.Lock()
	var stale []peer.ID
	for _, ai := range cands {
		if !pr.n.scores.Fresh(ai.ID, pr.opts.Fresh, now) {
			stale = append(stale, ai.ID)
		}
	}
	pr.n.mu.Unlock()
	if len(stale) == 0 {
		return
	}
	var wg sync.WaitGroup
	pr.mu.Lock()
	if pr.stopped {
		pr.mu.Unlock()
		return
	}
	for _, p := range stale {
		if pr.running[p] || !pr.probes.Borrow(1, now) {
			continue
		}
		size := pr.opts.Bytes
		if size > 0 && !pr.bytes.Borrow(float64(size), now) {
			size = 0
		}
		pr.running[p] = true
		pr.n.probes.Add(1)
		jitter := 1 + pr.opts.Jitter*(2*pr.rng.Float64()-1)
		next := now.Add(time.Duration(float64(pr.opts.Interval) * jitter))
		pr.n.mu.Lock()
		pr.n.scores.Probed(p, now, next)
		pr.n.mu.Unlock()
		wg.Add(1)
		pr.wg.Go(func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, pr.opts.OnDemandWait)
			defer cancel()
			pr.done(p, size, pr.n.measure(pctx, p, size, true))
		})
	}
	pr.mu.Unlock()
	wg.Wait()
}

// measure pings p and, if size > 0, downloads size test bytes from it at
// the same time, and feeds the results to the scores. With partial (on
// demand) a download cut short by ctx's deadline still yields the rate
// seen so far; otherwise a probe that fails or times out counts as a
// failure of p (not when ctx was cancelled: the node is closing). It
// returns the test bytes received.
func (n *Node) measure(ctx context.Context, p peer.ID, size int64, partial bool) int64 {
	var (
		wg      sync.WaitGroup
		rtt     time.Duration
		pingErr error
		got     int64
		elapsed time.Duration
		dlErr   error
	)
	wg.Go(func() { rtt, pingErr = n.ping(ctx, p) })
	if size > 0 {
		wg.Go(func() { got, elapsed, dlErr = n.testDownload(ctx, p, size) })
	}
	wg.Wait()
	now := time.Now()
	n.probeBytes.Add(got)
	cut := errors.Is(ctx.Err(), context.Canceled) || (partial && ctx.Err() != nil)
	n.mu.Lock()
	if pingErr == nil {
		n.scores.ObserveRTT(p, rtt, now)
	}
	if got > 0 && (dlErr == nil || ctx.Err() != nil) {
		n.scores.ObserveProbe(p, transferRate(got, elapsed, n.scores.Score(p, now).RTT, 1), now)
	}
	n.mu.Unlock()
	if (pingErr != nil && !cut) || (dlErr != nil && !cut) {
		n.log.Debug("probe failed", "peer", p, "ping_err", pingErr, "download_err", dlErr)
		n.Penalize(p, PenaltyFailed)
	}
	return got
}

// transferRate turns a transfer of got bytes that took elapsed into a
// throughput sample: the request's round trip is not transfer time (the
// model adds it separately), and conc requests shared the link.
func transferRate(got int64, elapsed, rtt time.Duration, conc float64) float64 {
	transfer := max(elapsed-rtt, elapsed/2)
	if transfer <= 0 || got <= 0 {
		return 0
	}
	return float64(got) / transfer.Seconds() * max(conc, 1)
}

// ping measures one round trip to p with the libp2p ping protocol.
func (n *Node) ping(ctx context.Context, p peer.ID) (time.Duration, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	select {
	case res, ok := <-ping.Ping(ctx, n.host, p):
		if !ok {
			return 0, fmt.Errorf("ping %s: %w", p, context.Cause(ctx))
		}
		if res.Error != nil {
			return 0, fmt.Errorf("ping %s: %w", p, res.Error)
		}
		return res.RTT, nil
	case <-ctx.Done():
		return 0, fmt.Errorf("ping %s: %w", p, ctx.Err())
	}
}

// testDownload reads size bytes from p's probe endpoint. When ctx ends
// first it returns what arrived until then with ctx's error.
func (n *Node) testDownload(ctx context.Context, p peer.ID, size int64) (got int64, elapsed time.Duration, err error) {
	url := "http://" + hostOf(p) + "/probe?bytes=" + strconv.FormatInt(size, 10)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("probe %s: %w", p, err)
	}
	start := time.Now()
	resp, err := n.client.Do(req)
	if err != nil {
		return 0, time.Since(start), fmt.Errorf("probe %s: %w", p, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return 0, time.Since(start), fmt.Errorf("probe %s: %w", p, &statusError{code: resp.StatusCode})
	}
	got, err = io.Copy(io.Discard, resp.Body)
	elapsed = time.Since(start)
	if err != nil {
		return got, elapsed, fmt.Errorf("probe %s: %w", p, err)
	}
	if got != size {
		return got, elapsed, fmt.Errorf("probe %s: got %d of %d bytes: %w", p, got, size, io.ErrUnexpectedEOF)
	}
	return got, elapsed, nil
}

// Probe downloads size bytes (at most MaxProbeBytes) of test data from p
// and returns how long it took; the observation feeds p's score and the
// probe counters, outside the prober's budget.
func (n *Node) Probe(ctx context.Context, p peer.ID, size int64) (time.Duration, error) {
	if size < 0 || size > MaxProbeBytes {
		return 0, fmt.Errorf("probe %s: size %d out of 0..%d", p, size, MaxProbeBytes)
	}
	got, elapsed, err := n.testDownload(ctx, p, size)
	n.probes.Add(1)
	n.probeBytes.Add(got)
	if err != nil {
		return 0, err
	}
	now := time.Now()
	n.mu.Lock()
	n.scores.ObserveProbe(p, transferRate(got, elapsed, n.scores.Score(p, now).RTT, 1), now)
	n.mu.Unlock()
	return elapsed, nil
}

// ensurePing serves the ping protocol on hosts built without it (the
// mock network's): the prober pings peers.
func ensurePing(h host.Host) {
	if !slices.Contains(h.Mux().Protocols(), ping.ID) {
		ping.NewPingService(h)
	}
}
