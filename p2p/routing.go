package p2p

import (
	"context"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/ipfs/go-cid"
	"github.com/libp2p/go-libp2p/core/network"
	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/multiformats/go-multihash"
	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"
)

const (
	// provideTimeout bounds one DHT provide.
	provideTimeout = time.Minute
	// readyWait is how long a new announcement waits for the routing
	// table to fill (at start-up) before it is left to the next reprovide.
	readyWait = 10 * time.Second
)

// Provide announces that this node serves d, now and at every reprovide
// until Withdraw. The announcement itself is queued and runs in the
// background.
func (n *Node) Provide(ctx context.Context, d digest.Digest) error {
	c, err := DigestToCID(d)
	if err != nil {
		return fmt.Errorf("provide: %w", err)
	}
	k := string(c.Hash())
	n.mu.Lock()
	n.keys[k] = c
	known := n.announcing[k]
	n.announcing[k] = true
	n.mu.Unlock()
	if known {
		// Announced or queued already (a host announces a blob when it
		// starts to fetch it, and again would when it commits it): the
		// record names this peer either way; the reprovider renews it.
		return nil
	}
	if err := n.prov.Provide(ctx, c, true); err != nil {
		return fmt.Errorf("provide %s: %w", d, err)
	}
	return nil
}

// Withdraw stops announcing d (it was evicted). Records already held by
// other peers age out after three reprovide intervals; until then peers
// asking for d get a 404 and move on.
func (n *Node) Withdraw(d digest.Digest) {
	c, err := DigestToCID(d)
	if err != nil {
		return
	}
	n.mu.Lock()
	delete(n.keys, string(c.Hash()))
	delete(n.announcing, string(c.Hash()))
	n.mu.Unlock()
}

// providedKeys is the reprovider's key source: a snapshot of the set, in
// a channel buffered to hold it all, so no goroutine is left blocked when
// the reprovider stops reading (it does on shutdown).
func (n *Node) providedKeys(context.Context) (<-chan cid.Cid, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	ch := make(chan cid.Cid, len(n.keys))
	for _, c := range n.keys {
		ch <- c
	}
	close(ch)
	return ch, nil
}

func (n *Node) provided(mh multihash.Multihash) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.keys[string(mh)]
	return ok
}

// announcer is what boxo's provider system announces through: the DHT,
// skipping keys withdrawn while queued, and ProvideMany so reprovides go
// out in concurrent batches.
type announcer struct{ n *Node }

// Provide announces one key, waiting briefly for the routing table.
func (a announcer) Provide(ctx context.Context, c cid.Cid, _ bool) error {
	if !a.n.provided(c.Hash()) {
		return nil
	}
	if !a.waitReady(ctx) {
		a.n.log.Debug("routing table empty: announcement left to the next reprovide", "cid", c)
		a.n.unannounced(c)
		return nil
	}
	err := a.provide(ctx, c)
	if err != nil {
		a.n.unannounced(c)
	}
	return err
}

// unannounced lets the next Provide of c announce it again.
func (n *Node) unannounced(c cid.Cid) {
	n.mu.Lock()
	delete(n.announcing, string(c.Hash()))
	n.mu.Unlock()
}

// ProvideMany announces a batch of keys, ProvideConcurrency at a time.
func (a announcer) ProvideMany(ctx context.Context, keys []multihash.Multihash) error {
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(a.n.cfg.ProvideConcurrency)
	for _, k := range keys {
		if !a.n.provided(k) {
			continue
		}
		c := cid.NewCidV1(cid.Raw, k)
		g.Go(func() error {
			_ = a.provide(ctx, c) // counted and logged; one failure must not stop the batch
			return nil
		})
	}
	return g.Wait()
}

// Ready tells the reprovider to wait until the DHT has peers.
func (a announcer) Ready() bool { return a.n.Ready() }

func (a announcer) provide(ctx context.Context, c cid.Cid) error {
	ctx, cancel := context.WithTimeout(ctx, provideTimeout)
	defer cancel()
	if err := a.n.dht.Provide(ctx, c, true); err != nil {
		a.n.announceErr.Add(1)
		a.n.log.Debug("announce failed", "cid", c, "err", err)
		return fmt.Errorf("announce %s: %w", c, err)
	}
	a.n.announced.Add(1)
	return nil
}

func (a announcer) waitReady(ctx context.Context) bool {
	if a.n.Ready() {
		return true
	}
	deadline := time.NewTimer(readyWait)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return false
		case <-deadline.C:
			return false
		case <-tick.C:
			if a.n.Ready() {
				return true
			}
		}
	}
}

// FindProviders returns up to limit providers of d, other than this node,
// the ones this node is connected to first: they answer without a dial,
// while a provider record can outlive its peer (a dial to a peer that left
// fails only after the QUIC handshake timeout, seconds later). The lookup
// is bounded by FindTimeout and returns early: when limit providers
// arrived, when the lookup ends, or FindGrace after the first provider.
// Finding none is not an error.
func (n *Node) FindProviders(ctx context.Context, d digest.Digest, limit int) ([]peer.AddrInfo, error) {
	c, err := DigestToCID(d)
	if err != nil {
		return nil, fmt.Errorf("find providers: %w", err)
	}
	if limit <= 0 {
		return nil, nil
	}
	out, err := n.findProviders(ctx, c, limit)
	connected := func(ai peer.AddrInfo) bool {
		return n.host.Network().Connectedness(ai.ID) == network.Connected
	}
	slices.SortStableFunc(out, func(a, b peer.AddrInfo) int {
		switch ca, cb := connected(a), connected(b); {
		case ca && !cb:
			return -1
		case cb && !ca:
			return 1
		}
		return 0
	})
	return out, err
}

// findProviders collects the providers of c, in the order the DHT finds them.
func (n *Node) findProviders(ctx context.Context, c cid.Cid, limit int) ([]peer.AddrInfo, error) {
	lctx, cancel := context.WithTimeout(ctx, n.cfg.FindTimeout)
	defer cancel()
	// Ask for one more: the local provider store may return this node.
	ch := n.dht.FindProvidersAsync(lctx, c, limit+1)
	var (
		out   []peer.AddrInfo
		grace <-chan time.Time
	)
	for {
		select {
		case ai, ok := <-ch:
			if !ok {
				return out, ctx.Err()
			}
			if ai.ID == n.host.ID() {
				continue
			}
			out = append(out, ai)
			if len(out) >= limit {
				return out, nil
			}
			if grace == nil {
				t := time.NewTimer(n.cfg.FindGrace)
				defer t.Stop()
				grace = t.C
			}
		case <-grace:
			return out, nil
		case <-lctx.Done():
			return out, ctx.Err()
		}
	}
}

// Penalize records misbehaviour of p; the next downloads rank it lower
// (or exclude it, after corrupt bytes).
func (n *Node) Penalize(p peer.ID, kind Penalty) {
	n.mu.Lock()
	n.scores.Penalize(p, kind, time.Now())
	n.mu.Unlock()
	level := slog.LevelDebug
	if kind == PenaltyCorrupt {
		level = slog.LevelWarn
	}
	n.log.Log(context.Background(), level, "peer penalised", "peer", p, "penalty", kind)
}

// Downlink estimates this host's download rate, bytes per second: the
// best throughput measured from any peer in the last window (0: none).
func (n *Node) Downlink(window time.Duration) float64 {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.scores.Best(time.Now().Add(-window))
}

// Score returns what the node knows about p's transfers.
func (n *Node) Score(p peer.ID) PeerScore {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.scores.Score(p, time.Now())
}
