package agent

import (
	"cmp"
	"context"
	"slices"
	"sync"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"
	"github.com/prometheus/client_golang/prometheus"
)

const (
	// recentFetches is how many finished fetches /status remembers.
	recentFetches = 20
	// fetchTopPeers is how many of a fetch's peers /status names.
	fetchTopPeers = 4
)

// FetchSources says where the bytes of one fetch (a blob brought into the
// cache) came from, as /status shows it.
type FetchSources struct {
	Digest string    `json:"digest"`
	Size   int64     `json:"size"`
	Start  time.Time `json:"start"`
	// Seconds is how long the fetch took, or has taken so far.
	Seconds float64 `json:"seconds"`
	// Result is "running", "ok" (the blob was committed) or "failed".
	Result string `json:"result"`
	// OriginBytes and PeerBytes count the bytes received from the object
	// store (or upstream registry) and from peers, including those of
	// attempts that were discarded.
	OriginBytes int64 `json:"origin_bytes"`
	PeerBytes   int64 `json:"peer_bytes"`
	// Peers are the peers that sent the most bytes, most first.
	Peers []PeerBytes `json:"peers,omitempty"`
}

// PeerBytes is how many bytes of a fetch one peer sent.
type PeerBytes struct {
	ID string `json:"id"`
	// Node is the peer's serf member name, when it is a known member.
	Node  string `json:"node,omitempty"`
	Bytes int64  `json:"bytes"`
}

// pullRecord is a fetch in progress.
type pullRecord struct {
	d      digest.Digest
	size   int64
	start  time.Time
	origin int64
	peers  map[peer.ID]int64
}

// pullSources records where each fetch's bytes came from: the fetches
// running now, a ring of the last recentFetches finished ones, and the
// metrics shoal_fetches_total{source} and shoal_fetch_peer_fraction, so an
// operator can see that peers, not the origin, feed the cache. A nil
// *pullSources records nothing.
type pullSources struct {
	now      func() time.Time
	fetches  *prometheus.CounterVec
	failures prometheus.Counter
	fraction prometheus.Histogram

	mu sync.Mutex
	// running holds the fetches in progress per digest, oldest first: a
	// fetch that gave up may still be returning when the next one for the
	// same digest starts; bytes go to the newest.
	running map[digest.Digest][]*pullRecord
	done    []FetchSources // a ring of finished fetches
	next    int            // where the next finished fetch goes in done
}

func newPullSources(now func() time.Time) *pullSources {
	p := &pullSources{now: now, running: map[digest.Digest][]*pullRecord{}}
	p.fetches = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "shoal_fetches_total",
		Help: "Blobs brought into the cache, by where their bytes came from: peers, origin, or mixed (both).",
	}, []string{"source"})
	for _, s := range []string{"peers", "origin", "mixed"} {
		p.fetches.WithLabelValues(s)
	}
	p.failures = prometheus.NewCounter(prometheus.CounterOpts{
		Name: "shoal_fetch_failures_total",
		Help: "Fetches that ended without the blob in the cache.",
	})
	p.fraction = prometheus.NewHistogram(prometheus.HistogramOpts{
		Name:    "shoal_fetch_peer_fraction",
		Help:    "Fraction of a successful fetch's received bytes that came from peers.",
		Buckets: []float64{0, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99, 1},
	})
	return p
}

// collectors are the metrics to register.
func (p *pullSources) collectors() []prometheus.Collector {
	return []prometheus.Collector{p.fetches, p.failures, p.fraction}
}

// begin records the start of a fetch of d.
func (p *pullSources) begin(d digest.Digest, size int64) *pullRecord {
	if p == nil {
		return nil
	}
	r := &pullRecord{d: d, size: size, start: p.now(), peers: map[peer.ID]int64{}}
	p.mu.Lock()
	p.running[d] = append(p.running[d], r)
	p.mu.Unlock()
	return r
}

// fromOrigin adds n bytes of d received from the origin.
func (p *pullSources) fromOrigin(d digest.Digest, n int64) {
	p.add(d, n, nil)
}

// fromPeers adds the bytes of d received from each peer.
func (p *pullSources) fromPeers(d digest.Digest, byPeer map[peer.ID]int64) {
	p.add(d, 0, byPeer)
}

func (p *pullSources) add(d digest.Digest, origin int64, byPeer map[peer.ID]int64) {
	if p == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	rs := p.running[d]
	if len(rs) == 0 {
		return
	}
	r := rs[len(rs)-1]
	r.origin += origin
	for id, n := range byPeer {
		r.peers[id] += n
	}
}

// end records that the fetch r ended, with the blob in the cache (ok) or not.
func (p *pullSources) end(r *pullRecord, ok bool) {
	if p == nil || r == nil {
		return
	}
	now := p.now()
	p.mu.Lock()
	rs := slices.DeleteFunc(p.running[r.d], func(x *pullRecord) bool { return x == r })
	if len(rs) == 0 {
		delete(p.running, r.d)
	} else {
		p.running[r.d] = rs
	}
	fs := r.sources(now, "failed")
	if ok {
		fs.Result = "ok"
	}
	if len(p.done) < recentFetches {
		p.done = append(p.done, fs)
	} else {
		p.done[p.next] = fs
	}
	p.next = (p.next + 1) % recentFetches
	p.mu.Unlock()

	if !ok {
		p.failures.Inc()
		return
	}
	switch total := fs.OriginBytes + fs.PeerBytes; {
	case total == 0:
		return // nothing was received (an empty blob)
	case fs.OriginBytes == 0:
		p.fetches.WithLabelValues("peers").Inc()
	case fs.PeerBytes == 0:
		p.fetches.WithLabelValues("origin").Inc()
	default:
		p.fetches.WithLabelValues("mixed").Inc()
	}
	p.fraction.Observe(float64(fs.PeerBytes) / float64(fs.OriginBytes+fs.PeerBytes))
}

// sources summarises r as of now; the caller holds p.mu.
func (r *pullRecord) sources(now time.Time, result string) FetchSources {
	fs := FetchSources{Digest: r.d.String(), Size: r.size, Start: r.start, Seconds: now.Sub(r.start).Seconds(),
		Result: result, OriginBytes: r.origin}
	for id, n := range r.peers {
		fs.PeerBytes += n
		if n > 0 {
			fs.Peers = append(fs.Peers, PeerBytes{ID: id.String(), Bytes: n})
		}
	}
	slices.SortFunc(fs.Peers, func(a, b PeerBytes) int {
		return cmp.Or(cmp.Compare(b.Bytes, a.Bytes), cmp.Compare(a.ID, b.ID))
	})
	if len(fs.Peers) > fetchTopPeers {
		fs.Peers = fs.Peers[:fetchTopPeers]
	}
	return fs
}

// list returns the running fetches, then the finished ones, newest first.
func (p *pullSources) list() []FetchSources {
	if p == nil {
		return nil
	}
	now := p.now()
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []FetchSources
	for _, rs := range p.running {
		for _, r := range rs {
			out = append(out, r.sources(now, "running"))
		}
	}
	slices.SortFunc(out, func(a, b FetchSources) int { return b.Start.Compare(a.Start) })
	for i := range len(p.done) {
		out = append(out, p.done[(p.next-1-i+2*recentFetches)%recentFetches])
	}
	return out
}

// cached reports whether d is committed in the cache.
func (f *fetcher) cached(d digest.Digest) bool {
	_, err := f.cas.Stat(context.Background(), d)
	return err == nil
}

// nameFetchPeers fills in the serf member name of each fetch's peers.
func (a *Agent) nameFetchPeers(fs []FetchSources) {
	if a.cluster == nil || len(fs) == 0 {
		return
	}
	names := map[string]string{}
	for _, m := range a.cluster.Members() {
		if m.PeerID != "" {
			names[m.PeerID] = m.Name
		}
	}
	for i := range fs {
		for j := range fs[i].Peers {
			fs[i].Peers[j].Node = names[fs[i].Peers[j].ID]
		}
	}
}
