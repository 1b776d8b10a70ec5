package p2p

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"
)

// DownloadOptions tune multi-source downloads.
type DownloadOptions struct {
	// ChunkSize is the unit of scheduling and of blame. Default 8 MiB.
	ChunkSize int64
	// MaxRun caps how many adjacent chunks one request asks for.
	// Default 8.
	MaxRun int
	// MaxPeers is how many providers are used at once; the others stand
	// by and replace peers that fail. Default 4.
	MaxPeers int
	// StreamsPerPeer is how many requests run at once on one peer.
	// Default 2.
	StreamsPerPeer int
	// StallTimeout drops a peer whose response sends no byte for this
	// long (once connected). Default 10s.
	StallTimeout time.Duration
	// ConnectTimeout bounds connecting to a provider. Default 10s.
	ConnectTimeout time.Duration
	// SwarmStall abandons a swarm request that brought no byte for this
	// long; SwarmGiveUp ends a swarm download when no provider could serve
	// anything for this long. Defaults (also when zero) 3s and 10s.
	SwarmStall, SwarmGiveUp time.Duration
	// Selection is the source selection policy: SelectScored (default,
	// also when empty)
	// ranks providers by expected time, sizes each peer's ranges by its
	// share, keeps peers too slow to help out and moves ranges off peers
	// that fall behind; SelectRandom takes providers in random order and
	// hands out ranges first come, first served (the baseline the
	// simulator compares against). SelectHedged is the other baseline,
	// without probes: the swarm download asks each chunk of its least used
	// holder and hedges a request slower than the recent p80 to a second
	// holder (hedge.go); Download, used only with complete providers,
	// treats it as SelectRandom.
	Selection string
}

// Source selection policies (DownloadOptions.Selection).
const (
	SelectScored = "scored"
	SelectRandom = "random"
	SelectHedged = "hedged"
)

// DefaultDownloadOptions returns the production defaults.
func DefaultDownloadOptions() DownloadOptions {
	return DownloadOptions{
		ChunkSize:      8 << 20,
		MaxRun:         8,
		MaxPeers:       4,
		StreamsPerPeer: 2,
		StallTimeout:   10 * time.Second,
		ConnectTimeout: 10 * time.Second,
		SwarmStall:     defaultSwarmStall,
		SwarmGiveUp:    defaultSwarmGiveUp,
		Selection:      SelectScored,
	}
}

// Validate reports an option error.
func (o DownloadOptions) Validate() error {
	if o.ChunkSize <= 0 || o.MaxRun <= 0 || o.MaxPeers <= 0 || o.StreamsPerPeer <= 0 || o.StallTimeout <= 0 || o.ConnectTimeout <= 0 {
		return fmt.Errorf("download options must all be positive: %+v", o)
	}
	if o.SwarmStall < 0 || o.SwarmGiveUp < 0 {
		return fmt.Errorf("download options: negative swarm stall %s or give-up %s", o.SwarmStall, o.SwarmGiveUp)
	}
	switch o.Selection {
	case "", SelectScored, SelectRandom, SelectHedged:
	default:
		return fmt.Errorf("download selection %q: want %q, %q or %q", o.Selection, SelectScored, SelectRandom, SelectHedged)
	}
	return nil
}

// scored reports whether the selection policy uses the probe scores.
func (o DownloadOptions) scored() bool {
	return o.Selection == "" || o.Selection == SelectScored
}

// ChunkSource records where one chunk of a download came from.
type ChunkSource struct {
	// Peer sent the chunk.
	Peer peer.ID
	// Sum is a keyed hash (maphash, with the node's secret seed) of the
	// bytes received, used to compare attempts. A peer cannot forge a
	// collision without the seed, and it hashes at memory speed, unlike
	// SHA-256, which costs a quarter of a loopback transfer's CPU.
	Sum uint64
}

// DownloadStats describes one download.
type DownloadStats struct {
	// Bytes is the number of bytes written (retransmissions included).
	Bytes int64
	// Duration is the wall time of the download.
	Duration time.Duration
	// ChunkSize is the chunk size the download used.
	ChunkSize int64
	// Chunks says, per chunk index, who sent it and what it hashed to.
	Chunks []ChunkSource
	// BytesByPeer counts bytes received per peer.
	BytesByPeer map[peer.ID]int64
	// Failures lists the peers dropped from the download and why.
	Failures map[peer.ID]error
}

// Peers returns the peers that sent at least one complete chunk, sorted.
func (s DownloadStats) Peers() []peer.ID {
	var ps []peer.ID
	for _, c := range s.Chunks {
		if c.Peer != "" && !slices.Contains(ps, c.Peer) {
			ps = append(ps, c.Peer)
		}
	}
	slices.Sort(ps)
	return ps
}

// Blame compares a download that failed verification with a later one of
// the same blob that passed, and returns the peers that sent a chunk whose
// hash differs from the verified bytes. If the two used different chunk
// sizes every peer of the failed download is returned.
func Blame(failed, verified DownloadStats) []peer.ID {
	if failed.ChunkSize != verified.ChunkSize || len(failed.Chunks) != len(verified.Chunks) {
		return failed.Peers()
	}
	var bad []peer.ID
	for i, c := range failed.Chunks {
		if c.Peer != "" && c.Sum != verified.Chunks[i].Sum && !slices.Contains(bad, c.Peer) {
			bad = append(bad, c.Peer)
		}
	}
	slices.Sort(bad)
	return bad
}

// maxChunks bounds the schedule's bookkeeping (8 TiB at 8 MiB chunks): a
// size comes from a peer or a manifest and is not trusted.
const maxChunks = 1 << 20

// fetchBufSize is how many bytes a worker gathers before writing them to
// the destination.
const fetchBufSize = 256 << 10

// errComplete cancels the workers left when every chunk has arrived.
var errComplete = errors.New("download complete")

// errStalled marks a response that sent nothing for the stall timeout.
var errStalled = errors.New("peer stalled")

// errPreempted ends a request whose range moved to a faster peer.
var errPreempted = errors.New("range moved to a faster peer")

// Download fetches the size bytes of d from providers into dst, several
// peers at once, and reports who sent what. It does not verify the
// result: the caller does (or uses Fetch). Peers in exclude, this node and
// banned peers are skipped; the rest are used best-ranked first (see
// DownloadOptions.Selection). A peer that fails or stalls is dropped and
// penalised and its unfinished chunks go to the others. The error wraps
// ErrNoProviders when the peers ran out before the blob was complete.
func (n *Node) Download(ctx context.Context, d digest.Digest, size int64, providers []peer.AddrInfo, dst io.WriterAt, exclude ...peer.ID) (DownloadStats, error) {
	return n.download(ctx, d, size, providers, dst, n.cfg.Download, exclude)
}

// download is one multi-source transfer. Workers (StreamsPerPeer per
// active peer) lease spans from the schedule, stream them into dst and
// hash each chunk as it completes. Under the scored policy a lease is
// sized by the peer's share, refused to a peer too slow to help, and a
// range that falls behind moves to an idle faster peer.
type download struct {
	n      *Node
	d      digest.Digest
	size   int64
	dst    io.WriterAt
	opts   DownloadOptions
	scored bool
	prior  Estimate
	ctx    context.Context
	abort  context.CancelCauseFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	sched   *Schedule
	changed chan struct{} // closed and replaced when chunks are released or the last one lands
	workers int           // live workers
	live    map[peer.ID]int
	dead    map[peer.ID]bool
	load    map[peer.ID]*peerLoad
	bench   map[peer.ID]time.Time // preempted peers lease nothing until then
	takers  map[peer.ID]bool      // peers a range was moved to: their next lease skips Admit
	moves   int
	reqs    map[*request]struct{}
	spare   []peer.AddrInfo
	stats   DownloadStats
}

func (n *Node) download(ctx context.Context, d digest.Digest, size int64, providers []peer.AddrInfo, dst io.WriterAt, opts DownloadOptions, exclude []peer.ID) (DownloadStats, error) {
	start := time.Now()
	if size < 0 || size/opts.ChunkSize >= maxChunks {
		return DownloadStats{}, fmt.Errorf("download %s: size %d out of range (chunk size %d, at most %d chunks)",
			d, size, opts.ChunkSize, maxChunks)
	}
	scored := opts.scored()
	dl := &download{
		n: n, d: d, size: size, dst: dst, opts: opts, scored: scored,
		sched:   NewSchedule(size, opts.ChunkSize, opts.MaxRun),
		changed: make(chan struct{}),
		live:    make(map[peer.ID]int),
		dead:    make(map[peer.ID]bool),
		load:    make(map[peer.ID]*peerLoad),
		bench:   make(map[peer.ID]time.Time),
		takers:  make(map[peer.ID]bool),
		reqs:    make(map[*request]struct{}),
		stats: DownloadStats{
			ChunkSize:   opts.ChunkSize,
			BytesByPeer: make(map[peer.ID]int64),
			Failures:    make(map[peer.ID]error),
		},
	}
	dl.stats.Chunks = make([]ChunkSource, dl.sched.Chunks())
	if dl.sched.Complete() {
		return dl.stats, nil
	}
	cands := n.filterCandidates(providers, exclude)
	if len(cands) == 0 {
		return dl.stats, fmt.Errorf("download %s: %w", d, ErrNoProviders)
	}
	n.addProviderAddrs(cands)
	if scored {
		n.want(cands)
		if size >= n.cfg.Probe.OnDemandSize && len(cands) > 1 {
			n.prober.probeNow(ctx, cands)
		}
	}
	cands, dl.prior = n.rank(cands, opts), n.prior(cands)
	if len(cands) == 0 {
		return dl.stats, fmt.Errorf("download %s: %w", d, ErrNoProviders)
	}
	if scored {
		n.log.Debug("download sources", "digest", d, "size", size, "sources", n.describe(cands, opts.ChunkSize, dl.prior))
	}
	dl.ctx, dl.abort = context.WithCancelCause(ctx)
	defer dl.abort(nil)

	active := cands[:min(len(cands), opts.MaxPeers)]
	dl.spare = slices.Clone(cands[len(active):])
	dl.mu.Lock()
	for _, ai := range active {
		dl.startLocked(ai)
	}
	dl.mu.Unlock()
	dl.wg.Wait()

	dl.stats.Duration = time.Since(start)
	if dl.sched.Complete() {
		return dl.stats, nil
	}
	if cause := context.Cause(dl.ctx); cause != nil {
		return dl.stats, fmt.Errorf("download %s: %w", d, cause)
	}
	var errs []error
	for p, err := range dl.stats.Failures {
		errs = append(errs, fmt.Errorf("%s: %w", p, err))
	}
	return dl.stats, fmt.Errorf("download %s: %w: %w", d, ErrNoProviders, errors.Join(errs...))
}

func (dl *download) startLocked(ai peer.AddrInfo) {
	dl.live[ai.ID] += dl.opts.StreamsPerPeer
	for range dl.opts.StreamsPerPeer {
		dl.workers++
		dl.wg.Add(1)
		go dl.worker(ai)
	}
}

func (dl *download) broadcastLocked() {
	close(dl.changed)
	dl.changed = make(chan struct{})
}

// lease waits for a span for p; ok is false when the worker should stop.
func (dl *download) lease(p peer.ID) (sp Span, ok bool) {
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for {
		dl.mu.Lock()
		if dl.dead[p] || dl.sched.Complete() || dl.ctx.Err() != nil {
			dl.workers--
			dl.live[p]--
			dl.mu.Unlock()
			return Span{}, false
		}
		if sp, ok := dl.nextLocked(p); ok {
			dl.mu.Unlock()
			return sp, true
		}
		ch := dl.changed
		dl.mu.Unlock()
		var tick <-chan time.Time
		if dl.scored {
			if timer == nil {
				timer = time.NewTimer(recheck)
			} else {
				timer.Reset(recheck)
			}
			tick = timer.C
		}
		select {
		case <-ch:
		case <-tick:
		case <-dl.ctx.Done():
		}
	}
}

func (dl *download) worker(ai peer.AddrInfo) {
	defer dl.wg.Done()
	p := ai.ID
	// Connect first (concurrent dials to one peer are merged by the host),
	// so the stall watchdog times transfers, not handshakes.
	ctx, cancel := context.WithTimeout(dl.ctx, dl.opts.ConnectTimeout)
	err := dl.n.host.Connect(ctx, ai)
	cancel()
	if err != nil {
		dl.quit(p, Span{}, fmt.Errorf("connect: %w", err))
		return
	}
	buf := make([]byte, fetchBufSize)
	for {
		sp, ok := dl.lease(p)
		if !ok {
			return
		}
		err := dl.fetch(p, sp, buf)
		if errors.Is(err, errPreempted) {
			dl.yield(p, sp)
			continue
		}
		if err != nil {
			dl.quit(p, sp, err)
			return
		}
	}
}

// quit ends a worker of p after err: sp goes back to the queue and p is
// dropped from the download.
func (dl *download) quit(p peer.ID, sp Span, err error) {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	dl.sched.Release(sp, p)
	if dl.ctx.Err() == nil && !dl.dead[p] {
		dl.dropLocked(p, err)
	}
	dl.workers--
	dl.live[p]--
	dl.broadcastLocked()
}

// dropLocked removes p from the download, penalises it, and brings in a
// standby provider.
func (dl *download) dropLocked(p peer.ID, err error) {
	dl.dead[p] = true
	dl.stats.Failures[p] = err
	kind := PenaltyFailed
	if errors.Is(err, errStalled) {
		kind = PenaltyStalled
	}
	dl.n.Penalize(p, kind)
	dl.n.log.Info("download source dropped", "digest", dl.d, "peer", p, "err", err)
	if len(dl.spare) > 0 {
		next := dl.spare[0]
		dl.spare = dl.spare[1:]
		dl.startLocked(next)
	}
}

// fetch streams span sp from p into dst. Errors writing dst abort the
// whole download; other errors are the peer's. A preempted request
// returns an error wrapping errPreempted.
func (dl *download) fetch(p peer.ID, sp Span, buf []byte) (err error) {
	off, length := dl.sched.Bytes(sp)
	ctx, cancel := context.WithCancelCause(dl.ctx)
	defer cancel(nil)
	watchdog := time.AfterFunc(dl.opts.StallTimeout, func() { cancel(errStalled) })
	defer watchdog.Stop()
	defer func() {
		switch cause := context.Cause(ctx); {
		case err == nil || dl.ctx.Err() != nil:
		case errors.Is(cause, errStalled):
			err = fmt.Errorf("%w: no data for %s: %w", errStalled, dl.opts.StallTimeout, err)
		case errors.Is(cause, errPreempted):
			err = fmt.Errorf("%w: %w", errPreempted, err)
		}
	}()

	r := dl.begin(p, sp, cancel)
	l0 := dl.loadIntegral(p)
	start := time.Now()
	var got int64
	defer func() {
		elapsed := time.Since(start)
		dl.end(r)
		conc := 1.0
		if elapsed > 0 {
			conc = (dl.loadIntegral(p) - l0) / elapsed.Seconds()
		}
		dl.account(p, got, r.got.Load(), elapsed, conc)
	}()
	dl.n.addInFlight(p, 1)
	defer dl.n.addInFlight(p, -1)

	body, err := dl.n.getRange(ctx, p, dl.d, off, length, dl.size)
	if err != nil {
		return err
	}
	defer body.Close()

	var (
		pos      = off
		end      = off + length
		chunk    = sp.First
		chunkEnd = min(int64(chunk+1)*dl.opts.ChunkSize, dl.size)
		h        maphash.Hash
	)
	h.SetSeed(dl.n.seed)
	for pos < end {
		if pos == int64(chunk)*dl.opts.ChunkSize && !dl.start(chunk, p) {
			return nil // the rest of the span was stolen by a faster peer
		}
		// Fill buf (up to the chunk's end) before writing: a stream read
		// returns one muxer frame (at most 64 KiB), and every write to dst
		// costs a syscall and wakes the readers following dst.
		k, rerr := dl.readFull(body, buf[:min(int64(len(buf)), chunkEnd-pos)], watchdog, r)
		if k > 0 {
			if ctx.Err() != nil {
				// Preempted or stalled: these bytes may already belong
				// to the chunk's new owner; do not write them.
				return fmt.Errorf("range %d-%d: %w", off, end-1, context.Cause(ctx))
			}
			if _, werr := dl.dst.WriteAt(buf[:k], pos); werr != nil {
				werr = fmt.Errorf("write at %d: %w", pos, werr)
				dl.abort(werr)
				return werr
			}
			h.Write(buf[:k])
			pos += int64(k)
			got += int64(k)
			if pos == chunkEnd {
				dl.received(chunk, p, h.Sum64())
				r.chunkGot.Store(0)
				h.Reset()
				chunk++
				chunkEnd = min(int64(chunk+1)*dl.opts.ChunkSize, dl.size)
			}
		}
		if rerr == io.EOF && pos < end {
			return fmt.Errorf("range %d-%d: %w", off, end-1, io.ErrUnexpectedEOF)
		}
		if rerr != nil && rerr != io.EOF {
			return rerr
		}
	}
	return nil
}

// readFull reads from body until buf is full or the read fails, resetting
// the stall watchdog whenever bytes arrive.
func (dl *download) readFull(body io.Reader, buf []byte, watchdog *time.Timer, r *request) (int, error) {
	n := 0
	for n < len(buf) {
		k, err := body.Read(buf[n:])
		if k > 0 {
			watchdog.Reset(dl.opts.StallTimeout)
			n += k
			r.chunkGot.Add(int64(k))
			r.got.Add(int64(k))
		}
		if err != nil {
			return n, err
		}
	}
	return n, nil
}

func (dl *download) start(chunk int, p peer.ID) bool {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	return dl.sched.Start(chunk, p)
}

func (dl *download) received(chunk int, p peer.ID, sum uint64) {
	dl.mu.Lock()
	defer dl.mu.Unlock()
	if !dl.sched.Received(chunk, p) {
		return
	}
	dl.stats.Chunks[chunk] = ChunkSource{Peer: p, Sum: sum}
	if dl.sched.Complete() {
		dl.broadcastLocked()
		// Stop the workers still dialling a provider or reading a span
		// the others finished: Download returns when they all have, and
		// a dial to a stale provider record (a peer that left) otherwise
		// holds the finished blob back until ConnectTimeout.
		dl.abort(errComplete)
	}
}
