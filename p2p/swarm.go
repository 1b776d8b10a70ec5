package p2p

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"
)

// SwarmOptions tune Swarm.
type SwarmOptions struct {
	// ChunkSize is the unit of a request. Default: a quarter of the node's
	// download chunk size (2 MiB by default): a chunk can be passed on only
	// once it is whole, so small chunks keep the pipeline short.
	ChunkSize int64
	// Streams is how many chunk requests run at once. Default 8 (4 left
	// fleet-100's hosts at under half their link: 8 took p99 from 9.4–10.4
	// to 8.7–9.3 s at 8× dilation; hetero-links unchanged).
	Streams int
	// PerPeer is how many of them may go to one provider. Default 2.
	PerPeer int
	// Refresh, if set, is called at most every RefreshEvery while no
	// known provider holds a chunk still needed, to learn providers that
	// appeared since the download started (the DHT). Default 1s.
	Refresh      func(ctx context.Context) []peer.AddrInfo
	RefreshEvery time.Duration
	// Stall abandons a request that brought no byte for this long.
	// Default: the node's Download.SwarmStall, 3s (a holder serves from
	// its disk at once).
	Stall time.Duration
	// GiveUp ends the download when no provider could serve anything for
	// this long. Default: the node's Download.SwarmGiveUp, 10s.
	GiveUp time.Duration
}

// SwarmStats describe a swarm download.
type SwarmStats struct {
	Bytes       int64
	BytesByPeer map[peer.ID]int64
	Requests    int
	// Busy counts requests a provider refused: for lack of an upload
	// slot, or (BusyRange of them) because the chunk was going out to
	// another peer.
	Busy, BusyRange int
	// Heads counts availability requests; Idle is the time spent with no
	// request in flight (waiting for a provider to hold a needed chunk);
	// Transfer sums the durations of the successful chunk requests.
	Heads    int
	Idle     time.Duration
	Transfer time.Duration
	// Hedges counts requests sent to a second holder because the first
	// was slow (SelectHedged).
	Hedges int
}

// swarmPeer is what a swarm download knows about one provider.
type swarmPeer struct {
	ai        peer.AddrInfo
	have      [][2]int64 // ranges it holds, as last heard (nil: unknown)
	uploaders int        // peers it was serving, as last heard
	est       Estimate   // its probe score (RTT, throughput)
	inflight  int
	sent      int // requests sent to it by this download
	busyUntil time.Time
	fails     int
	asking    bool // a HEAD is running
	asked     time.Time
	// first: one of the providers the download started with, whose first
	// answer is still awaited (see pickChunk's soonest).
	first bool
	// refused: chunks (by offset) it said it was sending to another peer,
	// and until when not to ask it for them again.
	refused map[int64]time.Time
}

// refuses reports whether sp recently said the chunk at off was going out
// to another peer (and the time it gave that peer has not passed).
func (sp *swarmPeer) refuses(off int64, now time.Time) bool {
	until, ok := sp.refused[off]
	if ok && !now.Before(until) {
		delete(sp.refused, off)
		return false
	}
	return ok
}

// wake returns the earliest time after now, and before limit, at which
// sp becomes eligible again for some chunk (its busy pause or a refusal
// ends).
func (sp *swarmPeer) wake(now, limit time.Time) time.Time {
	if sp.busyUntil.After(now) && sp.busyUntil.Before(limit) {
		limit = sp.busyUntil
	}
	for _, t := range sp.refused {
		if t.After(now) && t.Before(limit) {
			limit = t
		}
	}
	return limit
}

// refuse notes that sp is sending the chunk at off to another peer: it
// is not asked for it again for about the time that send takes.
func (sp *swarmPeer) refuse(off int64, chunkSize int64, now time.Time) {
	if sp.refused == nil {
		sp.refused = make(map[int64]time.Time)
	}
	wait := min(max(sp.est.Time(chunkSize), 20*time.Millisecond), 500*time.Millisecond)
	sp.refused[off] = now.Add(wait/2 + rand.N(wait))
}

type swarmEvent struct {
	kind  int // evChunk, evHead, evRefresh
	chunk int
	took  time.Duration
	p     peer.ID
	got   int64
	have  [][2]int64
	load  int // the provider's uploaders, from its answer (-1: unknown)
	err   error
	provs []peer.AddrInfo // from the DHT, or the peers the answer named
}

const (
	evChunk = iota
	evHead
	evRefresh
)

// maxSwarmFails drops a provider after this many failed requests.
const maxSwarmFails = 3

// headEvery is how often, while request slots are free, a download asks
// the two providers whose news is oldest what they hold (see maxAsking).
const headEvery = 100 * time.Millisecond

// Defaults of DownloadOptions.SwarmStall and SwarmGiveUp.
const (
	defaultSwarmStall  = 3 * time.Second
	defaultSwarmGiveUp = 10 * time.Second
)

// quietPass is the longest a swarm goes without a pass over its chunks
// and holders while nothing happens (see Swarm).
const quietPass = 100 * time.Millisecond

// maxAsking bounds the availability questions one download has open at
// once (most wait at the provider for news: HeaderWant).
const maxAsking = 3

// wanted returns the byte ranges of the chunks neither done nor in flight,
// one per chunk (a provider answers when it holds any one of them whole),
// at most maxHaveRanges.
func wanted(done, inflight []bool, chunkSize, size int64) [][2]int64 {
	var out [][2]int64
	for c := range done {
		if done[c] || inflight[c] {
			continue
		}
		if len(out) == maxHaveRanges {
			break
		}
		off := int64(c) * chunkSize
		out = append(out, [2]int64{off, min(off+chunkSize, size)})
	}
	return out
}

// downlinkFull reports whether this host's downlink (the best throughput
// its probes measured) is what holds its swarm requests back: it receives
// at 70% of it or more, or the bytes it asked for and has not received
// would take half a second or more through it.
func (n *Node) downlinkFull(now time.Time) bool {
	dl := n.downlink(now)
	return dl > 0 && (n.rx.rate(now) >= 0.7*dl || float64(n.pending.Load()) >= 0.5*dl)
}

// downlink is Downlink(DownlinkWindow), reused for up to 100ms once known:
// it scans every peer's score, and each swarm asks before each hedge
// (fleet-100: 2% of the simulator's CPU).
func (n *Node) downlink(now time.Time) float64 {
	n.dlMu.Lock()
	defer n.dlMu.Unlock()
	if age := now.Sub(n.dlAt); n.dl > 0 && age >= 0 && age < 100*time.Millisecond {
		return n.dl
	}
	n.dl, n.dlAt = n.Downlink(DownlinkWindow), now
	return n.dl
}

// DownlinkWindow is how recent the probe results behind a host's
// downlink (Downlink) should be: the swarm's hedging and the agent's
// downlink class use the same.
const DownlinkWindow = 10 * time.Minute

// maxSwarmPeers bounds the providers one download keeps track of.
const maxSwarmPeers = 64

// admitSlack: a holder is asked only if it is expected to deliver a chunk
// within admitSlack times the soonest any holder could.
const admitSlack = 2

// Swarm downloads d (size bytes) into dst in chunks from providers that
// may themselves still be downloading it (DESIGN §2, swarm). Providers say
// which ranges they hold (Shoal-Have, on HEAD and on every response); each
// chunk goes to a provider that holds all of it, the rarest chunk first,
// so that hosts take different chunks from the first holders and then
// trade them, and chunks spread from the origin reader like an epidemic.
// Requests are Shoal-Held-Only: a provider that lost the range (its own
// attempt failed) answers 416 at once instead of waiting, so no request
// waits on a peer that waits. A provider out of upload slots is skipped
// for a moment; new providers come from opts.Refresh. dst holds every
// byte once the call returns nil; the caller verifies the whole blob
// (peers are not trusted).
func (n *Node) Swarm(ctx context.Context, d digest.Digest, size int64, provs []peer.AddrInfo, dst io.WriterAt, opts SwarmOptions) (SwarmStats, error) {
	st := SwarmStats{BytesByPeer: map[peer.ID]int64{}}
	if size < 0 {
		return st, fmt.Errorf("swarm %s: negative size", d)
	}
	if opts.ChunkSize <= 0 {
		// A quarter of the download chunk: half made hosts on slow links
		// take 4-5 times their bound in hetero-links (each chunk they
		// served or fetched took twice as long, and stalls and hedges
		// followed).
		opts.ChunkSize = max(n.cfg.Download.ChunkSize/4, 16<<10)
	}
	if opts.Streams <= 0 {
		opts.Streams = 8
	}
	if opts.PerPeer <= 0 {
		opts.PerPeer = 2
	}
	if opts.RefreshEvery <= 0 {
		opts.RefreshEvery = 3 * time.Second
	}
	if opts.Stall <= 0 {
		opts.Stall = cmp.Or(n.cfg.Download.SwarmStall, defaultSwarmStall)
	}
	if opts.GiveUp <= 0 {
		opts.GiveUp = cmp.Or(n.cfg.Download.SwarmGiveUp, defaultSwarmGiveUp)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	chunks := int((size + opts.ChunkSize - 1) / opts.ChunkSize)
	done := make([]bool, chunks)
	inflight := make([]bool, chunks)
	remaining := chunks
	peers := map[peer.ID]*swarmPeer{}
	events := make(chan swarmEvent, 64)
	running := 0 // goroutines that will send an event
	defer func() {
		cancel()
		for ; running > 0; running-- {
			<-events
		}
	}()

	self := n.host.ID()
	// add takes new peers into the swarm. Peers named by other peers
	// (exchange, DHT refresh) count as asked just now: most are downloaders
	// that hold little yet, and the providers the swarm started with (the
	// origin reader) must not wait behind them for their first question.
	add := func(list []peer.AddrInfo, named bool) {
		now := time.Now()
		for _, ai := range list {
			if ai.ID == self || peers[ai.ID] != nil || len(peers) >= maxSwarmPeers {
				continue
			}
			n.addProviderAddrs([]peer.AddrInfo{ai})
			sp := &swarmPeer{ai: ai, first: !named}
			if named {
				sp.asked = now
			}
			peers[ai.ID] = sp
			// Our answers name our sources too (peer exchange): a host
			// that joined this one as the lock holder learns from its
			// first answer where the blob comes from.
			n.pex.note(d, ai.ID, now)
		}
	}
	add(provs, false)
	// head asks sp what it holds. A provider already heard from is asked
	// for the chunks still needed (HeaderWant): it answers when it has
	// one, or after longPollWait, so news costs one question, not many.
	head := func(sp *swarmPeer, now time.Time) {
		sp.asking, sp.asked = true, now
		st.Heads++
		running++
		var want [][2]int64
		if sp.have != nil {
			want = wanted(done, inflight, opts.ChunkSize, size)
		}
		go func() {
			hctx, hcancel := context.WithTimeout(ctx, 3*time.Second)
			defer hcancel()
			a, err := n.availability(hctx, sp.ai, d, want)
			events <- swarmEvent{kind: evHead, p: sp.ai.ID, have: a.Have, load: a.Uploaders, provs: a.Peers, err: err}
		}()
	}
	refreshing := false
	lastRefresh := time.Now()
	var lastHeads, lastScores time.Time
	scored := n.cfg.Download.scored()
	hedged := n.cfg.Download.Selection == SelectHedged
	// Slow requests get a rival (hedge.go): under the hedged policy, and
	// under the scored one too, where a probe score can be stale (the
	// holder got busy since) and the hetero-links scenario showed the
	// hedge halving p50 (docs/BENCHMARKS.md). Random stays unhedged.
	var hg *hedger
	if hedged || scored {
		hg = newHedger(dst, chunks, opts.ChunkSize, size)
		hg.patient = scored
	}
	// request asks sp for chunk c; its outcome comes back as an evChunk.
	request := func(c int, sp *swarmPeer, now time.Time) {
		off := int64(c) * opts.ChunkSize
		end := min(off+opts.ChunkSize, size)
		sp.inflight++
		sp.sent++
		st.Requests++
		running++
		rctx, w, finish := ctx, dst, func(err error) error { return err }
		if hg != nil {
			rctx, w, finish = hg.begin(ctx, c, sp.ai.ID, now)
		}
		go func() {
			start := time.Now()
			got, news, err := n.swarmChunk(rctx, sp.ai.ID, d, off, end, size, w, opts.Stall)
			err = finish(err)
			events <- swarmEvent{kind: evChunk, chunk: c, p: sp.ai.ID, got: got, have: news.have, load: news.load, provs: news.peers, err: err, took: time.Since(start)}
		}()
	}
	changed, wakeAt := true, time.Time{} // see pass below
	lastProgress := time.Now()
	tick := time.NewTicker(25 * time.Millisecond)
	defer tick.Stop()

	for remaining > 0 {
		now := time.Now()
		// Hand out chunks: the rarest first (held by the fewest providers),
		// so that different hosts take different chunks from the first
		// holders and then trade them; each from its least loaded holder.
		active := 0
		for _, f := range inflight {
			if f {
				active++
			}
		}
		// A pass that hands out chunks and hedges is costly (every chunk
		// against every holder) and a swarm waits most of the time: after
		// one, nothing can be handed out until an event arrives or a
		// holder's pause ends or a request gets slow enough to hedge
		// (wakeAt). Scores and this host's downlink drift: a pass runs at
		// least every quietPass.
		pass := changed || !now.Before(wakeAt)
		if pass && scored && now.Sub(lastScores) >= 100*time.Millisecond {
			lastScores = now
			n.swarmEstimates(peers)
		}
		for pass && active < opts.Streams {
			c, sp := pickChunk(peers, done, inflight, opts.ChunkSize, size, opts.PerPeer, scored, hedged, now)
			if sp == nil {
				break
			}
			inflight[c] = true
			active++
			request(c, sp, now)
		}
		// A request slower than the recent p80 gets a rival (hedge.go).
		if hg != nil {
			hg.endgame = active >= remaining
		}
		// Scored, not while this host's own downlink is full: a rival
		// would only split it (hetero-links: 100 Mbit/s hosts hedged 9%
		// of their requests and lost ~13% of their link to the losers).
		if pass {
			for c, sp := hg.next(peers, opts.PerPeer, now); sp != nil && !(scored && n.downlinkFull(now)); c, sp = hg.next(peers, opts.PerPeer, now) {
				st.Hedges++
				request(c, sp, now)
			}
			changed = false
			wakeAt = now.Add(quietPass)
			for _, sp := range peers {
				wakeAt = sp.wake(now, wakeAt)
			}
			wakeAt = hg.wake(peers, now, wakeAt)
		}
		// Keep what providers hold fresh: while requests could be added,
		// every 100ms ask the two whose news is oldest, with at most
		// maxAsking questions open (peers learn chunks all the time; a
		// downloader that knew only its first sources would queue at
		// them). Most questions are long polls (head).
		if active < opts.Streams && now.Sub(lastHeads) >= headEvery {
			lastHeads = now
			asking := 0
			for _, sp := range peers {
				if sp.asking {
					asking++
				}
			}
			for range min(2, maxAsking-asking) {
				var oldest *swarmPeer
				for _, sp := range peers {
					if sp.fails < maxSwarmFails && !sp.asking && !holds(sp.have, 0, size) &&
						(oldest == nil || sp.asked.Before(oldest.asked)) {
						oldest = sp
					}
				}
				if oldest == nil {
					break
				}
				head(oldest, now)
			}
		}
		if opts.Refresh != nil && active == 0 && !refreshing && now.Sub(lastRefresh) >= opts.RefreshEvery {
			refreshing = true
			running++
			go func() { events <- swarmEvent{kind: evRefresh, provs: opts.Refresh(ctx)} }()
		}
		if active == 0 && now.Sub(lastProgress) > opts.GiveUp {
			return st, fmt.Errorf("swarm %s: no provider could serve for %s: %w", d, opts.GiveUp, ErrNoProviders)
		}

		waitStart := time.Now()
		select {
		case <-ctx.Done():
			return st, ctx.Err()
		case <-tick.C:
		case ev := <-events:
			running--
			changed = true
			sp := peers[ev.p]
			switch ev.kind {
			case evRefresh:
				refreshing, lastRefresh = false, time.Now()
				add(ev.provs, true)
			case evHead:
				sp.asking, sp.first = false, false
				switch {
				case errors.Is(ev.err, ErrNotFound):
					// Nothing there yet: a lock holder that is still
					// planning its fetch, or a stale record. Ask again
					// later; the swarm gives up after GiveUp without bytes.
					sp.have = [][2]int64{}
				case ev.err != nil:
					sp.fails++
				default:
					sp.have, sp.uploaders = ev.have, ev.load
				}
				add(ev.provs, true)
			case evChunk:
				inflight[ev.chunk] = hg.end(ev.chunk, ev.p, ev.err == nil, ev.took)
				sp.inflight--
				st.Bytes += ev.got
				st.BytesByPeer[ev.p] += ev.got
				if ev.got > 0 {
					lastProgress = time.Now()
				}
				if ev.have != nil {
					sp.have = ev.have
				}
				if ev.load >= 0 {
					sp.uploaders = ev.load
				}
				add(ev.provs, true)
				var busy *statusError
				switch {
				case ev.err == nil:
					done[ev.chunk] = true
					remaining--
					st.Transfer += ev.took
					n.mu.Lock()
					n.scores.Observe(ev.p, ev.got, ev.took, time.Now())
					n.mu.Unlock()
				case done[ev.chunk] || errors.Is(ev.err, errHedgeLost):
					// A hedge's rival lost the race: nothing to hold against it.
				case errors.As(ev.err, &busy) && busy.code == http.StatusRequestedRangeNotSatisfiable:
					// Not held after all (the answer said what is): ask again.
					n.log.Debug("swarm range not held", "digest", d, "peer", ev.p, "chunk", ev.chunk, "have", ev.have, "err", ev.err)
				case errors.As(ev.err, &busy) && busy.code == http.StatusServiceUnavailable && busy.busy == BusyRange:
					// That chunk is going out to another peer; the
					// provider is free for other chunks.
					st.Busy++
					st.BusyRange++
					sp.refuse(int64(ev.chunk)*opts.ChunkSize, opts.ChunkSize, time.Now())
				case errors.As(ev.err, &busy) && (busy.code == http.StatusServiceUnavailable || busy.code == http.StatusTooManyRequests):
					st.Busy++
					sp.busyUntil = time.Now().Add(20*time.Millisecond + rand.N(60*time.Millisecond))
				case ctx.Err() != nil:
					return st, ctx.Err()
				default:
					sp.fails++
					n.log.Debug("swarm request failed", "digest", d, "peer", ev.p, "chunk", ev.chunk, "err", ev.err)
				}
			}
		}
		if active == 0 {
			st.Idle += time.Since(waitStart)
		}
	}
	return st, nil
}

// swarmEstimates copies the providers' probe scores for pickChunk.
func (n *Node) swarmEstimates(peers map[peer.ID]*swarmPeer) {
	ids := make([]peer.ID, 0, len(peers))
	for id := range peers {
		ids = append(ids, id)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	prior := n.scores.Prior(ids, defaultEstimate)
	for id, sp := range peers {
		sp.est = n.scores.Estimate(id, prior)
	}
}

// pickChunk chooses the next chunk to ask for and its provider. Scored, a
// holder's cost is its expected time for the chunk (probe score: RTT plus
// size over throughput) inflated by its load (the peers it serves, plus
// our own requests to it), and the chunk whose best holder costs least is
// taken: chunks that an idle fast peer holds come before the newest chunk
// that only the origin reader holds, so the first holder's uplink carries
// each chunk about once and the others trade what they got. Among equal
// costs the rarest chunk wins, then chance. Unscored (the random-peer
// baseline), any holder of the rarest chunk will do; hedged (hedge.go),
// its least used holder. Eligible providers have a free request slot,
// were not busy a moment ago and have not failed too often; only
// providers holding the whole chunk are asked, so no request waits on a
// peer that is itself waiting.
func pickChunk(peers map[peer.ID]*swarmPeer, done, inflight []bool, chunkSize, size int64, perPeer int, scored, hedged bool, now time.Time) (int, *swarmPeer) {
	var eligible, usable []*swarmPeer
	for _, sp := range peers {
		if sp.fails < maxSwarmFails && sp.have != nil {
			usable = append(usable, sp)
			if sp.inflight < perPeer && !now.Before(sp.busyUntil) {
				eligible = append(eligible, sp)
			}
		}
	}
	if len(eligible) == 0 {
		return -1, nil
	}
	// soonest is when any holder, free or not, could deliver the chunk:
	// a holder far slower than that is not worth a request (waiting for a
	// fast one finishes sooner), as the scored download's Admit rule. A
	// provider the download started with that has not answered yet counts
	// as a holder: the first answer may come from a slow provider, which
	// must not take chunks that a fast one, answering a moment later,
	// would deliver sooner (it then holds its requests for the rest of a
	// short download). Peers learned later (exchange, DHT) do not: most
	// are downloaders holding little, and counting them would leave the
	// chunks that only they could pass on to the origin reader.
	soonest := func(off, end int64) float64 {
		best := math.Inf(1)
		for _, sp := range peers {
			if sp.fails < maxSwarmFails && ((sp.have == nil && sp.first) || holds(sp.have, off, end)) {
				best = min(best, sp.est.Time(chunkSize).Seconds()*float64(1+sp.inflight))
			}
		}
		return best
	}
	cost := func(sp *swarmPeer) float64 {
		if hedged {
			return hedgeCost(sp)
		}
		if !scored {
			return 0
		}
		t := sp.est.Time(chunkSize).Seconds()
		return t * (1 + loadFactor*float64(sp.uploaders+2*sp.inflight))
	}
	// With a single provider that holds the whole blob there is nothing
	// to trade and no chunk is rarer: take the chunks in order, so the
	// cache hashes the bytes as they land (out of order, it reads them
	// back and hashes them at the end) and clients following the blob get
	// them at once. With several providers the order stays rarest first,
	// then random, which hosts that trade chunks need.
	inOrder := len(usable) == 1 && holds(usable[0].have, 0, size)
	bestChunk, ties := -1, 0
	var bestHolder *swarmPeer
	var bestCost float64
	bestCount := 0
	for c := range done {
		if done[c] || inflight[c] {
			continue
		}
		off := int64(c) * chunkSize
		end := min(off+chunkSize, size)
		count := 0
		var holder *swarmPeer
		var hc float64
		for _, sp := range eligible {
			if !holds(sp.have, off, end) || sp.refuses(off, now) {
				continue
			}
			count++
			k := cost(sp)
			if holder == nil || k < hc || (k == hc && rand.N(count) == 0) {
				holder, hc = sp, k
			}
		}
		if holder == nil {
			continue
		}
		if hedged {
			hc = 0 // the holder is the least used; the chunk, the rarest
		}
		if scored && holder.est.Time(chunkSize).Seconds() > admitSlack*soonest(off, end) {
			continue
		}
		switch {
		case bestChunk < 0 || hc < bestCost || (hc == bestCost && count < bestCount):
			bestChunk, bestHolder, bestCost, bestCount, ties = c, holder, hc, count, 1
		case hc == bestCost && count == bestCount && !inOrder:
			if ties++; rand.N(ties) == 0 {
				bestChunk, bestHolder = c, holder
			}
		}
	}
	return bestChunk, bestHolder
}

// chunkNews is what a provider's answer said besides the bytes.
type chunkNews struct {
	have  [][2]int64 // ranges it holds (nil: not said)
	load  int        // peers it serves (-1: not said)
	peers []peer.AddrInfo
}

// swarmChunk fetches bytes [off, end) of d from p into dst, writing as
// they arrive. It returns the bytes written and what p said besides.
func (n *Node) swarmChunk(ctx context.Context, p peer.ID, d digest.Digest, off, end, size int64, dst io.WriterAt, stall time.Duration) (got int64, news chunkNews, err error) {
	news.load = -1
	n.pending.Add(end - off)
	defer func() { n.pending.Add(-(end - off - got)) }()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, blobURL(p, d), nil)
	if err != nil {
		return 0, news, err
	}
	req.Header.Set("Range", "bytes="+strconv.FormatInt(off, 10)+"-"+strconv.FormatInt(end-1, 10))
	req.Header.Set(HeaderHeldOnly, "1")
	watchdog := time.AfterFunc(stall, cancel)
	defer watchdog.Stop()
	resp, err := n.client.Do(req)
	if err != nil {
		return 0, news, fmt.Errorf("chunk at %d from %s: %w", off, p, err)
	}
	defer resp.Body.Close()
	if news.have, err = parseHave(resp.Header.Get(HeaderHave), size); err != nil {
		news.have = nil
	}
	if v, err := strconv.Atoi(resp.Header.Get(HeaderUploaders)); err == nil {
		news.load = v
	}
	news.peers = n.parsePeers(resp.Header.Get(HeaderPeers))
	if err := checkStatus(resp, d, http.StatusPartialContent, http.StatusOK); err != nil {
		return 0, news, err
	}
	if resp.StatusCode == http.StatusOK && (off != 0 || resp.ContentLength != end) {
		return 0, news, fmt.Errorf("chunk at %d from %s: range ignored", off, p)
	}
	pb := n.copyBuf()
	defer n.copyBufs.Put(pb)
	buf := *pb
	for got < end-off {
		// Write up to 256 KiB at a time (fewer cache writes), but as soon
		// as 64 KiB are in: a slow provider's progress still resets the
		// stall watchdog, and followers get the bytes.
		want := min(int64(len(buf)), end-off-got)
		k, rerr := io.ReadAtLeast(resp.Body, buf[:want], int(min(want, 64<<10)))
		if k > 0 {
			watchdog.Reset(stall)
			if _, werr := dst.WriteAt(buf[:k], off+got); werr != nil {
				return got, news, fmt.Errorf("chunk at %d: write: %w", off, werr)
			}
			got += int64(k)
			n.pending.Add(-int64(k))
			n.rx.add(int64(k), time.Now())
		}
		if rerr != nil {
			if got == end-off {
				break
			}
			return got, news, fmt.Errorf("chunk at %d from %s: %w", off, p, rerr)
		}
	}
	return got, news, nil
}
