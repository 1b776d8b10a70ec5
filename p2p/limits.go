package p2p

import (
	"context"
	"net/http"
	"strings"
	"sync"
	"time"
)

// PeerLimits bound what one peer can take from this node's blob server, so
// that a slow, greedy or hostile peer (one that opens streams and never
// reads them, a slowloris) cannot starve the others. Requests other than
// blob downloads (probes, the lock RPC) are not limited here.
type PeerLimits struct {
	// MaxStreams is how many blob requests one peer may have in progress
	// at once; more are answered 429 Too Many Requests at once. 0: no limit.
	MaxStreams int
	// BytesPerSecond caps the blob bytes sent to one peer, over all its
	// streams together. 0: no limit.
	BytesPerSecond int64
	// WriteStall abandons a blob response whose writes make no progress
	// for this long (a peer that stopped reading, or went away without
	// resetting its stream), freeing its stream slot. 0: never.
	WriteStall time.Duration
}

// SetPeerLimits applies l to the blob routes of the peer server. Call it
// before Run.
func (n *Node) SetPeerLimits(l PeerLimits) {
	if l.MaxStreams <= 0 && l.BytesPerSecond <= 0 && l.WriteStall <= 0 {
		return
	}
	n.server.Handler = &peerLimiter{next: n.server.Handler, limits: l, peers: make(map[string]*peerUse)}
}

// peerLimiter enforces PeerLimits, keyed by the remote peer ID (the
// RemoteAddr of a request over a libp2p stream).
type peerLimiter struct {
	next   http.Handler
	limits PeerLimits

	mu    sync.Mutex
	peers map[string]*peerUse
}

// peerUse is one peer's share: streams in progress and its byte pacer.
type peerUse struct {
	streams int
	pace    *pacer
}

func (l *peerLimiter) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/blobs/") {
		l.next.ServeHTTP(w, r)
		return
	}
	peer := r.RemoteAddr
	l.mu.Lock()
	u := l.peers[peer]
	if u == nil {
		u = &peerUse{}
		if l.limits.BytesPerSecond > 0 {
			u.pace = &pacer{rate: l.limits.BytesPerSecond}
		}
		l.peers[peer] = u
	}
	if l.limits.MaxStreams > 0 && u.streams >= l.limits.MaxStreams {
		l.mu.Unlock()
		w.Header().Set("Retry-After", "1")
		http.Error(w, "too many concurrent blob requests from this peer", http.StatusTooManyRequests)
		return
	}
	u.streams++
	l.mu.Unlock()
	defer func() {
		l.mu.Lock()
		if u.streams--; u.streams == 0 {
			delete(l.peers, peer) // an idle peer keeps no state (or byte credit)
		}
		l.mu.Unlock()
	}()
	if u.pace != nil || l.limits.WriteStall > 0 {
		w = &limitedWriter{ResponseWriter: w, ctx: r.Context(), pace: u.pace, stall: l.limits.WriteStall,
			rc: http.NewResponseController(w)}
	}
	l.next.ServeHTTP(w, r)
}

// pacer spreads writes so that their sum stays under rate bytes per second.
// Several streams of one peer share one pacer.
type pacer struct {
	rate int64

	mu   sync.Mutex
	next time.Time // when the bytes granted so far have been paid for
}

// wait blocks until n more bytes fit the rate.
func (p *pacer) wait(ctx context.Context, n int) error {
	p.mu.Lock()
	now := time.Now()
	if p.next.Before(now) {
		p.next = now
	}
	at := p.next
	p.next = p.next.Add(time.Duration(float64(n) / float64(p.rate) * float64(time.Second)))
	p.mu.Unlock()
	d := time.Until(at)
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// limitedWriter writes in slices of at most 64 KiB, each through the
// peer's pacer (so one large write does not burst past the rate) and under
// a write deadline of stall from its start.
type limitedWriter struct {
	http.ResponseWriter
	ctx   context.Context // the request's: ends a pacing wait
	pace  *pacer          // nil: no rate
	stall time.Duration   // 0: no deadline
	rc    *http.ResponseController
}

func (w *limitedWriter) Write(b []byte) (int, error) {
	const slice = 64 << 10
	var done int
	for len(b) > 0 {
		k := min(len(b), slice)
		if w.pace != nil {
			if err := w.pace.wait(w.ctx, k); err != nil {
				return done, err
			}
		}
		if w.stall > 0 {
			if err := w.rc.SetWriteDeadline(time.Now().Add(w.stall)); err != nil {
				return done, err
			}
		}
		m, err := w.ResponseWriter.Write(b[:k])
		done += m
		if err != nil {
			return done, err
		}
		b = b[k:]
	}
	return done, nil
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *limitedWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
