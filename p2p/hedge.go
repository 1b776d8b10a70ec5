package p2p

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
)

// The hedged swarm policy (DownloadOptions.Selection = SelectHedged) is
// the passive baseline probe scoring has to beat (DESIGN §9): no probes,
// no estimates. Each chunk goes to the holder this download has sent the
// fewest requests to, then the one with the fewest in flight, ties at
// random; chunks are still taken rarest first. A request that has run
// longer than the p80 of the recent successful chunk requests is hedged:
// the same chunk is asked of a second holder, the first complete answer
// wins and the other request is cancelled. The scored policy hedges the
// same way (its holder choice stays the probe-scored one), but only a
// request that also ran past twice what its holder's score predicts: a
// score goes stale when the holder gets busy (and, in the endgame, any
// request slower than the p80).
//
// Two answers to one chunk never both reach dst. Each request of a hedged
// swarm gathers its chunk in a buffer of its own; once it has the whole
// chunk it claims it (once per chunk, atomically) and only the claimant
// writes. Letting both write would not be safe: a cas.Writer keeps the
// first write of every byte, so a slow rival's prefix would stay and the
// winner's bytes there would be skipped; a plain file keeps the last
// write, so a rival finishing after the winner would overwrite it. With
// one writer per chunk the chunk's bytes in dst are exactly its winner's,
// and a cancelled or failed request writes nothing. (The caller still
// verifies the blob: the winner may have lied.) The price is a chunk of
// memory per running request.

const (
	// hedgeWindow is how many recent request durations the p80 is taken
	// over: recent enough to follow the swarm as it speeds up.
	hedgeWindow = 32
	// hedgeQuantile of the recent durations is how long a request may run
	// before it is hedged.
	hedgeQuantile = 0.8
	// hedgeMinSamples: until this many requests have succeeded, a request
	// is hedged after hedgeFirst.
	hedgeMinSamples = 4
	hedgeFirst      = time.Second
	// hedgeFloor: no request is hedged sooner. On a fast network the p80
	// is a few milliseconds, and scheduling jitter alone would double the
	// traffic.
	hedgeFloor = 50 * time.Millisecond
)

// errHedgeLost ends a request whose chunk another request delivered first.
var errHedgeLost = errors.New("chunk delivered by another provider first")

// latencyWindow holds the durations of the last hedgeWindow successful
// chunk requests.
type latencyWindow struct {
	d    [hedgeWindow]time.Duration
	n    int // durations held
	next int // where the next one goes
	// after caches hedgeAfter until the next add (0: not computed); the
	// swarm asks for it on every pass.
	after time.Duration
}

func (w *latencyWindow) add(d time.Duration) {
	w.d[w.next] = d
	w.next = (w.next + 1) % hedgeWindow
	w.n = min(w.n+1, hedgeWindow)
	w.after = 0
}

// quantile is the nearest-rank q-quantile of the durations held (0 if
// none).
func (w *latencyWindow) quantile(q float64) time.Duration {
	if w.n == 0 {
		return 0
	}
	s := slices.Clone(w.d[:w.n])
	slices.Sort(s)
	i := int(math.Ceil(q*float64(len(s)))) - 1
	return s[min(max(i, 0), len(s)-1)]
}

// hedgeAfter is how long a request may run before it is hedged: the p80
// of the recent durations, at least hedgeFloor; hedgeFirst while fewer
// than hedgeMinSamples are known.
func (w *latencyWindow) hedgeAfter() time.Duration {
	if w.n < hedgeMinSamples {
		return hedgeFirst
	}
	if w.after == 0 {
		w.after = max(hedgeFloor, w.quantile(hedgeQuantile))
	}
	return w.after
}

// hedgeCost orders holders least used first: by the requests this
// download sent them (in flight or ended), then by those in flight (the
// fraction stays below 1). Requests, not bytes: counting bytes received
// would make the slowest holder look least used and send it more.
func hedgeCost(sp *swarmPeer) float64 {
	return float64(sp.sent) + float64(sp.inflight)/float64(sp.inflight+1)
}

// hedgeHolder picks the holder a hedge of bytes [off, end) goes to: a
// provider other than not (the one already asked), eligible as pickChunk's
// are (a free request slot, not busy, not failing, holding the whole
// range), least used first, ties at random. It returns nil if there is
// none.
func hedgeHolder(peers map[peer.ID]*swarmPeer, off, end int64, perPeer int, not peer.ID, now time.Time) *swarmPeer {
	var best *swarmPeer
	var bestCost float64
	ties := 0
	for id, sp := range peers {
		if id == not || sp.fails >= maxSwarmFails || sp.inflight >= perPeer || now.Before(sp.busyUntil) || !holds(sp.have, off, end) || sp.refuses(off, now) {
			continue
		}
		switch k := hedgeCost(sp); {
		case best == nil || k < bestCost:
			best, bestCost, ties = sp, k, 1
		case k == bestCost:
			if ties++; rand.N(ties) == 0 {
				best = sp
			}
		}
	}
	return best
}

// hedgeRequest is a running request of a hedged swarm.
type hedgeRequest struct {
	p      peer.ID
	start  time.Time
	cancel context.CancelFunc
}

// hedger is a hedged swarm's state. The Swarm loop owns it, except the
// claims and the buffer pool, which the requests use.
type hedger struct {
	dst       io.WriterAt
	chunkSize int64
	size      int64
	lat       latencyWindow
	running   map[int][]hedgeRequest // by chunk: at most two, on different providers
	claimed   []atomic.Bool          // chunks a request has written (or is writing)
	bufs      sync.Pool              // *[]byte of chunkSize
	// patient (the scored policy) also waits out twice the time the
	// holder's probe score predicts before hedging: a holder known to be
	// slow was admitted with that in mind; only a request slower than its
	// holder's score (the score went stale: the holder got busy) is hedged.
	// In the endgame (every chunk left is requested) it is not patient:
	// the download waits for its slowest request otherwise.
	patient bool
	endgame bool
}

func newHedger(dst io.WriterAt, chunks int, chunkSize, size int64) *hedger {
	h := &hedger{dst: dst, chunkSize: chunkSize, size: size,
		running: map[int][]hedgeRequest{}, claimed: make([]atomic.Bool, chunks)}
	h.bufs.New = func() any {
		b := make([]byte, chunkSize)
		return &b
	}
	return h
}

// bounds are chunk c's bytes.
func (h *hedger) bounds(c int) (off, end int64) {
	off = int64(c) * h.chunkSize
	return off, min(off+h.chunkSize, h.size)
}

// begin registers a request to p for chunk c. The request runs under ctx
// (cancelled when a rival wins), writes into w (its own buffer) and passes
// its outcome through finish, which writes the chunk to dst if the request
// got all of it first, and otherwise returns the request's error or
// errHedgeLost. finish must be called once the request wrote its last byte.
func (h *hedger) begin(parent context.Context, c int, p peer.ID, now time.Time) (ctx context.Context, w io.WriterAt, finish func(error) error) {
	ctx, cancel := context.WithCancel(parent)
	h.running[c] = append(h.running[c], hedgeRequest{p: p, start: now, cancel: cancel})
	off, end := h.bounds(c)
	buf := h.bufs.Get().(*[]byte)
	cb := &chunkBuffer{off: off, b: (*buf)[:end-off]}
	return ctx, cb, func(err error) error {
		defer h.bufs.Put(buf)
		if err != nil {
			return err
		}
		return h.claim(c, cb.b)
	}
}

// claim writes b, the whole of chunk c, to dst unless another request
// claimed c first (errHedgeLost). A failed write gives the claim back, so
// the chunk can still be delivered.
func (h *hedger) claim(c int, b []byte) error {
	if !h.claimed[c].CompareAndSwap(false, true) {
		return errHedgeLost
	}
	off, _ := h.bounds(c)
	if _, err := h.dst.WriteAt(b, off); err != nil {
		h.claimed[c].Store(false)
		return fmt.Errorf("chunk at %d: write: %w", off, err)
	}
	return nil
}

// end records that p's request for chunk c ended, ok if it delivered the
// chunk (after took), and reports whether another request for c is still
// running, so that the chunk stays in flight. A winner's rival is
// cancelled. A nil hedger (another policy) never has one.
func (h *hedger) end(c int, p peer.ID, ok bool, took time.Duration) (rivalRunning bool) {
	if h == nil {
		return false
	}
	rs := h.running[c]
	if i := slices.IndexFunc(rs, func(r hedgeRequest) bool { return r.p == p }); i >= 0 {
		rs[i].cancel()
		rs = slices.Delete(rs, i, i+1)
	}
	if ok {
		h.lat.add(took)
		for _, r := range rs {
			r.cancel()
		}
	}
	if len(rs) == 0 {
		delete(h.running, c)
	} else {
		h.running[c] = rs
	}
	return !ok && len(rs) > 0
}

// next returns a chunk to hedge and the holder to ask, or nil: a chunk
// not yet delivered whose only request has run longer than hedgeAfter,
// and which another eligible provider holds.
func (h *hedger) next(peers map[peer.ID]*swarmPeer, perPeer int, now time.Time) (int, *swarmPeer) {
	if h == nil || len(h.running) == 0 {
		return -1, nil
	}
	after := h.lat.hedgeAfter()
	for c, rs := range h.running {
		if len(rs) != 1 || now.Sub(rs[0].start) < after || h.claimed[c].Load() {
			continue
		}
		if sp := peers[rs[0].p]; h.patient && !h.endgame && sp != nil && now.Sub(rs[0].start) < 2*sp.est.Time(h.chunkSize) {
			continue
		}
		off, end := h.bounds(c)
		if sp := hedgeHolder(peers, off, end, perPeer, rs[0].p, now); sp != nil {
			return c, sp
		}
	}
	return -1, nil
}

// wake returns the earliest time after now, and before limit, at which
// next could return a request it would not return now: when a running
// request passes hedgeAfter (or, patient, twice its holder's expected
// time). Requests past it that found no other holder wait for a change
// in the holders, which the caller tracks.
func (h *hedger) wake(peers map[peer.ID]*swarmPeer, now, limit time.Time) time.Time {
	if h == nil || len(h.running) == 0 {
		return limit
	}
	after := h.lat.hedgeAfter()
	for c, rs := range h.running {
		if len(rs) != 1 || h.claimed[c].Load() {
			continue
		}
		t := rs[0].start.Add(after)
		if sp := peers[rs[0].p]; h.patient && !h.endgame && sp != nil {
			if p := rs[0].start.Add(2 * sp.est.Time(h.chunkSize)); p.After(t) {
				t = p
			}
		}
		if t.After(now) && t.Before(limit) {
			limit = t
		}
	}
	return limit
}

// chunkBuffer is the io.WriterAt one request of a hedged swarm fills: the
// bytes of one chunk, addressed by blob offset.
type chunkBuffer struct {
	off int64
	b   []byte
}

func (cb *chunkBuffer) WriteAt(p []byte, off int64) (int, error) {
	i := off - cb.off
	if i < 0 || i+int64(len(p)) > int64(len(cb.b)) {
		return 0, fmt.Errorf("write at %d: outside the chunk at %d (%d bytes)", off, cb.off, len(cb.b))
	}
	return copy(cb.b[i:], p), nil
}
