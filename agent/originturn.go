package agent

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/locks"
)

const (
	// fetchLockWait bounds how long a host waits for its group's winner.
	fetchLockWait = 10 * time.Minute
	// providerPoll is how often a host whose lock request could not be
	// answered (a proxy in its grace period, a holder not yet known to
	// serf) asks again and looks for providers in the DHT.
	providerPoll = 200 * time.Millisecond
)

// proxyYield is how long a host waits before it asks for an origin lock
// when it already reads another blob from the origin, or is its group's
// lock proxy (its own requests need no network). Without the wait the
// first host of a rollout won every race: it got each blob first because
// it read the previous one, and one host's link (a slow one, in the
// hetero-links scenario) carried every origin read; a proxy also carried
// the group's lock traffic, and killing it stalled both (proxy-failover).
const proxyYield = 25 * time.Millisecond

// fetchLockName is the lock that lets one host per group read d from the origin.
func fetchLockName(d digest.Digest) string {
	return "fetch/" + d.Encoded()
}

// errOwnFetch: the origin lock for the blob is held by this host, i.e.
// another request here is planning the same fetch; follow that one.
var errOwnFetch = errors.New("this host is already fetching the blob")

// originTurn plans a blob the origin has, through the fleet lock
// fetch/<digest>. It returns either a lease (this host reads the origin,
// once for the fleet) or the providers to copy d from: the host holding
// the lease (the lock service names it; it announces the blob and serves it
// while it arrives, and its answers name the rest of the swarm), or, when
// this host got the lock, peers that hold the whole blob already (found
// in the DHT; the lock is then released).
func (f *fetcher) originTurn(ctx context.Context, d digest.Digest) (*locks.Lease, []peer.AddrInfo, error) {
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, fetchLockWait)
	defer cancel()
	if wait := f.lockYield(); wait > 0 {
		select {
		case <-ctx.Done():
		case <-time.After(wait):
		}
	}
	for {
		l, err := f.locker.Acquire(ctx, fetchLockName(d), locks.AcquireOptions{})
		if err == nil {
			f.onLockWait(time.Since(start))
			// Hosts that are still downloading announce the blob too (they
			// wait for a reader like us): only a complete copy is a reason
			// not to read the origin.
			if provs := f.completeSources(ctx, d, f.findProviders(ctx, d), true); len(provs) > 0 {
				l.Release(context.WithoutCancel(ctx))
				return nil, provs, nil
			}
			return l, nil, nil
		}
		var held *locks.HeldError
		if errors.As(err, &held) {
			if f.self != "" && slices.Contains(held.Holders, f.self) {
				return nil, nil, errOwnFetch
			}
			if f.holders != nil {
				if provs := f.holders(held.Holders); len(provs) > 0 {
					f.onLockWait(time.Since(start))
					f.log.Debug("origin reader is a peer", "digest", d, "holders", held.Holders)
					return nil, provs, nil
				}
			}
		}
		if ctx.Err() != nil {
			return nil, nil, fmt.Errorf("origin fetch lock: %w (last: %w)", ctx.Err(), err)
		}
		// No answer that names a usable holder (a proxy in its grace
		// period, a holder not yet known to serf): look in the DHT, then
		// ask again.
		f.log.Debug("origin fetch lock", "digest", d, "err", err)
		if provs := f.findProviders(ctx, d); len(provs) > 0 {
			f.onLockWait(time.Since(start))
			return nil, provs, nil
		}
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("origin fetch lock: %w (last: %w)", ctx.Err(), err)
		case <-time.After(providerPoll):
		}
	}
}

// lockYield is how long this host waits before asking for an origin lock:
// slowYield on a slow link, proxyYield while reading another blob from
// the origin or as the group's lock proxy, else not at all.
func (f *fetcher) lockYield() time.Duration {
	switch {
	case f.slow != nil && f.slow():
		return slowYield
	case f.reading.Load() > 0 || (f.yield != nil && f.yield()):
		return proxyYield
	}
	return 0
}

// findProviders looks d up in the DHT, timing the lookup.
func (f *fetcher) findProviders(ctx context.Context, d digest.Digest) []peer.AddrInfo {
	if f.node == nil {
		return nil
	}
	start := time.Now()
	provs, err := f.node.FindProviders(ctx, d, maxProviders)
	f.onFind(time.Since(start))
	if err != nil {
		f.log.Debug("find providers", "digest", d, "err", err)
	}
	if f.shun != nil {
		provs = f.shun.filter(d, provs)
	}
	return provs
}
