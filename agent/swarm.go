package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/cas"
	"github.com/shoal-dev/shoal/p2p"
)

const (
	// uploadSlots is how many peers one host serves blobs to at once; the
	// rest are told to try another provider (every host that downloads a
	// blob is one), so no host's uplink is split a hundred ways.
	uploadSlots = 8
	// availabilityTimeout bounds asking the providers what they hold.
	availabilityTimeout = 3 * time.Second
	// completeGrace is how long asking the providers goes on after the
	// first complete one answered (to find a few to share the download).
	completeGrace = 50 * time.Millisecond
)

// fromSwarm fetches d from the providers into w. The host announces the
// blob at once, so that peers can take it from here while it arrives. The
// chunked swarm (p2p.Node.Swarm) takes each chunk from a provider that
// holds it, complete or still downloading, and learns new providers from
// the DHT as they appear; the commit verifies the whole blob. When that
// fails (a peer sent bad bytes, or the swarm ran dry), the complete
// providers are tried with the scored multi-source download, which finds
// and bans the peers whose bytes differ. On error w has been aborted.
func (f *fetcher) fromSwarm(ctx context.Context, d digest.Digest, size int64, w *cas.Writer, provs []peer.AddrInfo) error {
	if err := f.node.Provide(ctx, d); err != nil {
		f.log.Warn("announce blob being fetched", "digest", d, "err", err)
	}
	f.log.Debug("joining the swarm", "digest", d, "size", size, "providers", len(provs))
	st, err := f.node.Swarm(ctx, d, size, provs, w, p2p.SwarmOptions{
		Refresh: func(ctx context.Context) []peer.AddrInfo { return f.findProviders(ctx, d) },
	})
	f.onBytes("peer", st.Bytes)
	f.pulls.fromPeers(d, st.BytesByPeer)
	if err == nil {
		if _, err = w.Commit(ctx); err == nil {
			f.log.Debug("fetched from the swarm", "digest", d, "requests", st.Requests, "hedges", st.Hedges, "busy", st.Busy, "busy_range", st.BusyRange, "heads", st.Heads, "idle", st.Idle, "transfer", st.Transfer, "bytes_by_peer", st.BytesByPeer)
			return nil
		}
	}
	w.Abort(err)
	if ctx.Err() != nil {
		return fmt.Errorf("swarm: %w", err)
	}
	f.log.Warn("swarm fetch failed; trying complete providers one by one", "digest", d, "err", err)
	if f.onSwarmFail != nil {
		f.onSwarmFail()
	}
	if f.shun != nil {
		// Providers that sent nothing are not asked for d again soon:
		// neither below nor by the plans of the fetches that follow.
		var failed []peer.ID
		for _, p := range provs {
			if st.BytesByPeer[p.ID] == 0 {
				failed = append(failed, p.ID)
			}
		}
		f.shun.add(d, failed...)
		provs = f.shun.filter(d, provs)
	}
	srcs := f.completeSources(ctx, d, provs, false)
	if len(srcs) == 0 {
		return fmt.Errorf("swarm: %w", err)
	}
	if w, err = f.cas.Create(ctx, d, size, cas.WriteOptions{State: cas.StateReplicated}); err != nil {
		return fmt.Errorf("next attempt: %w", err)
	}
	if kept, err := f.trySources(ctx, d, size, w, srcs); err != nil {
		if kept != nil {
			kept.Abort(err)
		}
		return err
	}
	return nil
}

// completeSources asks every provider what it holds and returns those that
// hold the whole blob and (unless evenBusy) have a free upload slot. When
// none does, the peers the answers name (other downloaders, and the
// sources those are downloading from) are asked too, once: providers found
// in the DHT may all be hosts still downloading from a complete copy that
// the lookup did not return.
func (f *fetcher) completeSources(ctx context.Context, d digest.Digest, provs []peer.AddrInfo, evenBusy bool) []peer.AddrInfo {
	if len(provs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, availabilityTimeout)
	defer cancel()
	asked := map[peer.ID]bool{f.node.ID(): true}
	for round := 0; round < 2 && len(provs) > 0; round++ {
		srcs, named := f.askAvailability(ctx, d, provs, asked, evenBusy)
		if len(srcs) > 0 {
			return srcs
		}
		provs = named
	}
	return nil
}

// askAvailability asks the providers not yet asked what they hold (at most
// maxProviders at once). It returns the complete ones, and the peers their
// answers named that were not asked.
func (f *fetcher) askAvailability(ctx context.Context, d digest.Digest, provs []peer.AddrInfo, asked map[peer.ID]bool, evenBusy bool) (srcs, named []peer.AddrInfo) {
	ch := make(chan p2p.Availability, len(provs))
	n := 0
	for _, p := range provs {
		if asked[p.ID] || n >= maxProviders {
			continue
		}
		asked[p.ID] = true
		n++
		go func() {
			a, err := f.node.Availability(ctx, p, d)
			if err != nil {
				f.log.Debug("provider availability", "digest", d, "peer", p.ID, "err", err)
				a.Size = 0
			}
			ch <- a
		}()
	}
	seen := map[peer.ID]bool{}
	var grace <-chan time.Time // runs from the first complete answer
	for range n {
		var a p2p.Availability
		select {
		case a = <-ch:
		case <-grace:
			return srcs, named
		case <-ctx.Done():
			// A peer that cannot open a stream in time (a loaded host)
			// does not hold the others' answers back.
			return srcs, named
		}
		if a.Size > 0 && a.Complete() && (evenBusy || !a.Busy()) {
			srcs = append(srcs, a.Peer)
			if grace == nil {
				t := time.NewTimer(completeGrace)
				defer t.Stop()
				grace = t.C
			}
		}
		for _, q := range a.Peers {
			if !asked[q.ID] && !seen[q.ID] {
				seen[q.ID] = true
				named = append(named, q)
			}
		}
	}
	return srcs, named
}

// trySources fetches d from srcs into w, retrying without peers that sent
// corrupt bytes. When it fails before any byte landed (a source answered
// busy), w is returned intact for the next try; otherwise the writer in
// use is aborted, failing whoever follows it.
func (f *fetcher) trySources(ctx context.Context, d digest.Digest, size int64, w *cas.Writer, srcs []peer.AddrInfo) (*cas.Writer, error) {
	aw := &attemptWriter{cas: f.cas, d: d, size: size}
	aw.w.Store(w)
	res, err := f.node.Fetch(ctx, d, size, srcs, aw, aw.verify)
	f.onBytes("peer", res.Last.Bytes)
	f.pulls.fromPeers(d, res.Last.BytesByPeer)
	if len(res.Blamed) > 0 {
		f.log.Warn("peers sent corrupt bytes", "digest", d, "peers", res.Blamed)
	}
	if err == nil {
		f.log.Debug("fetched from peers", "digest", d, "attempts", res.Attempts, "bytes_by_peer", res.Last.BytesByPeer)
		return nil, nil
	}
	cur := aw.w.Load()
	if cur == w && res.Last.Bytes == 0 && ctx.Err() == nil {
		return w, err
	}
	cur.Abort(err)
	return nil, err
}
