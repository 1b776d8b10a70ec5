package agent

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/cas"
	"github.com/shoal-dev/shoal/p2p"
)

const (
	// uploadSlots is how many peers one host serves blobs to at once. The
	// rest are told to try another provider; with every downloading host
	// also a provider, a rollout forms a tree instead of a star.
	uploadSlots = 2
	// swarmWait bounds how long a fetch keeps looking for a free provider.
	swarmWait = 10 * time.Minute
	// swarmRetry is the pause before asking the providers again when all
	// were busy or had nothing yet.
	swarmRetry = 150 * time.Millisecond
	// availabilityTimeout bounds asking the providers what they hold.
	availabilityTimeout = 3 * time.Second
	// maxIdleRounds is how many rounds in a row without an answering
	// provider end a swarm fetch (a provider between two attempts answers
	// "not found" for a moment; a dead one never answers).
	maxIdleRounds = 10
)

// fromSwarm fetches d from the providers into w. The host announces the
// blob at once, so that peers can take it from here while it arrives.
// Complete providers are used together (ranges spread over them); when
// none is complete, the partial provider furthest ahead with a free slot
// streams it. When every provider is busy or has nothing yet, it waits
// briefly and asks again. On error w has been aborted.
func (f *fetcher) fromSwarm(ctx context.Context, d digest.Digest, size int64, w *cas.Writer, provs []peer.AddrInfo) error {
	if err := f.node.Provide(ctx, d); err != nil {
		f.log.Warn("announce blob being fetched", "digest", d, "err", err)
	}
	deadline := time.Now().Add(swarmWait)
	idle := 0 // rounds in a row in which no provider answered
	for {
		srcs, waiting := f.pickSources(ctx, d, provs)
		var err error
		switch {
		case len(srcs) > 0:
			var kept *cas.Writer
			if kept, err = f.trySources(ctx, d, size, w, srcs); err == nil {
				return nil
			}
			if kept != nil {
				w = kept // nothing landed (the source turned busy): try again
				break
			}
			// w is aborted; the next attempt needs a fresh writer.
			nw, cerr := f.cas.Create(ctx, d, size, cas.WriteOptions{State: cas.StateReplicated})
			if cerr != nil {
				return errors.Join(err, fmt.Errorf("next attempt: %w", cerr))
			}
			w = nw
		case !waiting:
			if idle++; idle >= maxIdleRounds {
				err = errors.New("no provider answered")
				w.Abort(err)
				return err
			}
		default:
			idle = 0
		}
		if time.Now().After(deadline) {
			err = errors.Join(err, errors.New("no free provider in time"))
			w.Abort(err)
			return err
		}
		t := time.NewTimer(swarmRetry + rand.N(swarmRetry))
		select {
		case <-ctx.Done():
			t.Stop()
			w.Abort(ctx.Err())
			return ctx.Err()
		case <-t.C:
		}
		if found := f.findProviders(ctx, d); len(found) > 0 {
			provs = found
		}
	}
}

// pickSources asks every provider what it holds and picks where to
// download from: all complete providers with a free slot, else the one
// partial provider with a free slot that holds the most. waiting reports
// that some provider may become usable (busy, or nothing held yet).
func (f *fetcher) pickSources(ctx context.Context, d digest.Digest, provs []peer.AddrInfo) (srcs []peer.AddrInfo, waiting bool) {
	ctx, cancel := context.WithTimeout(ctx, availabilityTimeout)
	defer cancel()
	self := f.node.ID()
	ch := make(chan p2p.Availability, len(provs))
	asked := 0
	for _, p := range provs {
		if p.ID == self {
			continue
		}
		asked++
		go func() {
			a, err := f.node.Availability(ctx, p, d)
			if err != nil {
				f.log.Debug("provider availability", "digest", d, "peer", p.ID, "err", err)
				a = p2p.Availability{} // unusable
			}
			ch <- a
		}()
	}
	var complete, partial []p2p.Availability
	for range asked {
		a := <-ch
		switch {
		case a.Size == 0:
		case a.Busy():
			waiting = true
		case a.Complete():
			complete = append(complete, a)
		case a.Available > 0:
			partial = append(partial, a)
		default:
			waiting = true // announced, nothing arrived yet
		}
	}
	if len(complete) > 0 {
		for _, a := range complete {
			srcs = append(srcs, a.Peer)
		}
		return srcs, waiting
	}
	if len(partial) == 0 {
		return nil, waiting
	}
	best := slices.MaxFunc(partial, func(a, b p2p.Availability) int {
		if c := cmp.Compare(a.Available, b.Available); c != 0 {
			return c
		}
		return cmp.Compare(b.Uploaders, a.Uploaders)
	})
	return []peer.AddrInfo{best.Peer}, waiting
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
