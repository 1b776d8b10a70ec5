package agent

import (
	"context"
	"fmt"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/locks"
)

const (
	// fetchLockWait bounds how long a host waits for its group's winner.
	fetchLockWait = 10 * time.Minute
	// providerPoll is how often a waiter looks for the winner in the DHT.
	providerPoll = 200 * time.Millisecond
)

// fetchLockName is the lock that lets one host per group read d from the origin.
func fetchLockName(d digest.Digest) string {
	return "fetch/" + d.Encoded()
}

// originTurn is called when no peer has d. It returns either a lease on
// fetch/<digest> (this host reads the origin, once for its group) or the
// providers that appeared while it waited (the winner announced itself).
func (f *fetcher) originTurn(ctx context.Context, d digest.Digest) (*locks.Lease, []peer.AddrInfo, error) {
	type result struct {
		lease *locks.Lease
		err   error
	}
	actx, cancel := context.WithCancel(ctx)
	defer cancel()
	acquired := make(chan result, 1)
	start := time.Now()
	go func() {
		l, err := f.locker.Acquire(actx, fetchLockName(d), locks.AcquireOptions{Wait: fetchLockWait})
		acquired <- result{l, err}
	}()
	poll := time.NewTicker(providerPoll)
	defer poll.Stop()
	for {
		select {
		case r := <-acquired:
			f.onLockWait(time.Since(start))
			if r.err != nil {
				return nil, nil, fmt.Errorf("origin fetch lock: %w", r.err)
			}
			// The previous holder may have finished while we queued.
			if provs := f.findProviders(ctx, d); len(provs) > 0 {
				r.lease.Release(context.WithoutCancel(ctx))
				return nil, provs, nil
			}
			return r.lease, nil, nil
		case <-poll.C:
			if provs := f.findProviders(ctx, d); len(provs) > 0 {
				cancel()
				if r := <-acquired; r.lease != nil {
					r.lease.Release(context.WithoutCancel(ctx))
				}
				f.onLockWait(time.Since(start))
				return nil, provs, nil
			}
		case <-ctx.Done():
			return nil, nil, ctx.Err()
		}
	}
}

// findProviders looks d up in the DHT, timing the lookup.
func (f *fetcher) findProviders(ctx context.Context, d digest.Digest) []peer.AddrInfo {
	start := time.Now()
	provs, err := f.node.FindProviders(ctx, d, maxProviders)
	f.onFind(time.Since(start))
	if err != nil {
		f.log.Debug("find providers", "digest", d, "err", err)
	}
	return provs
}
