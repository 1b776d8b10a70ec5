package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/cas"
	"github.com/shoal-dev/shoal/cas/objstore"
	"github.com/shoal-dev/shoal/locks"
	"github.com/shoal-dev/shoal/p2p"
)

// maxProviders bounds how many providers one fetch considers.
const maxProviders = 16

// fetcher brings blobs that miss the cache into it, once per digest however
// many requests want them; every request follows the growing file. Peers
// come first; the origin is the fallback.
type fetcher struct {
	cas    *cas.Store
	node   *p2p.Node    // nil when p2p is off
	locker locks.Locker // nil: no origin dedup
	// holders maps lock holders' node names to their peers (nil: unknown).
	holders func(names []string) []peer.AddrInfo
	// self is this host's node name in the fleet ("" without a fleet).
	self string
	// yield reports whether this host should let others win races for
	// origin locks (nil: never); see proxyYield.
	yield func() bool
	// slow reports whether this host's link is slow next to the fleet's
	// (nil: never); see linkClass.
	slow func() bool
	// reading counts this host's origin reads in progress.
	reading atomic.Int32
	// lingering ends the kept fetch locks of committed blobs (linger).
	lingerMu  sync.Mutex
	lingering map[digest.Digest]chan struct{}
	log       *slog.Logger
	// onBytes counts bytes brought into the cache, by source.
	onBytes func(source string, n int64)
	// onFind observes DHT provider lookups.
	onFind func(time.Duration)
	// onSwarmFail counts swarm downloads that gave up (nil: not counted).
	onSwarmFail func()
	// onLockWait observes waits for the origin fetch lock.
	onLockWait func(time.Duration)
	// pulls records where each fetch's bytes came from (nil: nowhere).
	pulls *pullSources
	// shun leaves providers that failed a blob out of its next plans
	// (nil: none are).
	shun *shunList
	// originSplit is the smallest range of a blob read from the object
	// store by a stream of its own (0: originSplit).
	originSplit int64

	// life bounds fetches: they outlive the request that started them (other
	// requests may be following) but not the agent.
	life context.Context
	wg   sync.WaitGroup
}

// source is where a fetch reads a blob when no peer has it: the object
// store, or an upstream registry in mirror mode.
type source interface {
	Stat(ctx context.Context, d digest.Digest) (int64, error)
	Open(ctx context.Context, d digest.Digest) (io.ReadCloser, error)
}

// storeSource reads blobs from the object store (through the origin view).
type storeSource struct{ o *origin }

func (s storeSource) Stat(ctx context.Context, d digest.Digest) (int64, error) {
	return s.o.Stat(ctx, objstore.BlobKey(d))
}

func (s storeSource) Open(ctx context.Context, d digest.Digest) (io.ReadCloser, error) {
	return s.o.Get(ctx, objstore.BlobKey(d), 0, -1)
}

// maxFetchAttempts bounds the follow/create race loop.
const maxFetchAttempts = 4

// ownFetchWait bounds how long a request waits for another request on
// this host that is planning the same fetch (it holds the origin lock and
// is looking for providers), polling every ownFetchPoll.
// After ownFetchReplan without a writer the request plans again (the other
// request's fetch may have failed before it started).
const (
	ownFetchWait   = 30 * time.Second
	ownFetchPoll   = 20 * time.Millisecond
	ownFetchReplan = 2 * time.Second
)

// plan is where a fetch will get its bytes.
type plan struct {
	size      int64
	providers []peer.AddrInfo
	// lease, when set, makes this host its group's origin reader for the
	// blob; it is released when the fetch ends.
	lease *locks.Lease
}

// Follow returns a follower of d, starting a fetch (from peers, else src)
// if no fetch is running and the blob is not cached.
func (f *fetcher) Follow(ctx context.Context, d digest.Digest, src source) (*cas.Follower, error) {
	var lastErr error
	ownWait := time.Now().Add(ownFetchWait)
	for attempt := 0; attempt < maxFetchAttempts; attempt++ {
		fl, err := f.cas.Follow(ctx, d)
		if err == nil {
			return fl, nil
		}
		if !errors.Is(err, cas.ErrNotFound) {
			return nil, err
		}
		p, err := f.plan(ctx, d, src)
		if errors.Is(err, errOwnFetch) && time.Now().Before(ownWait) {
			// Another request on this host is planning the same fetch:
			// follow its writer as soon as it exists (polling the cache
			// only: planning again would ask the lock service each time).
			attempt--
			if fl, err := f.followOwn(ctx, d); err == nil || !errors.Is(err, cas.ErrNotFound) {
				return fl, err
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		w, err := f.cas.Create(ctx, d, p.size, cas.WriteOptions{State: cas.StateReplicated})
		switch {
		case errors.Is(err, cas.ErrExists), errors.Is(err, cas.ErrInProgress):
			p.release()
			lastErr = err
			continue // someone else got there first: follow theirs
		case err != nil:
			p.release()
			return nil, err
		}
		f.wg.Add(1)
		go f.run(d, p, w, src)
		lastErr = nil
	}
	fl, err := f.cas.Follow(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("follow %s: %w (last: %v)", d, err, lastErr)
	}
	return fl, nil
}

// followOwn polls the cache for d's writer every ownFetchPoll, for at most
// ownFetchReplan; cas.ErrNotFound if it did not appear.
func (f *fetcher) followOwn(ctx context.Context, d digest.Digest) (*cas.Follower, error) {
	deadline := time.Now().Add(ownFetchReplan)
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(ownFetchPoll):
		}
		fl, err := f.cas.Follow(ctx, d)
		if !errors.Is(err, cas.ErrNotFound) || time.Now().After(deadline) {
			return fl, err
		}
	}
}

// plan finds providers and the blob's size: from the origin, or from a
// provider when the origin does not have it.
//
// With fleet locks, the origin's blobs are planned through the lock
// fetch/<digest> first (originTurn): while a rollout is running, the lock
// is held and names the host reading the origin, whose swarm this host
// joins without a DHT lookup (the reader's answers name the rest of the
// swarm); a host that gets the lock looks in the DHT for a complete copy
// and reads the origin only when there is none. A hundred hosts that start
// a blob together so cost the DHT one lookup, not a hundred. Without
// locks, or when the origin lacks the blob, the DHT is asked first.
func (f *fetcher) plan(ctx context.Context, d digest.Digest, src source) (plan, error) {
	var p plan
	start := time.Now()
	if f.node != nil && f.locker != nil {
		size, err := src.Stat(ctx, d)
		if err == nil {
			p.size = size
			stat := time.Since(start)
			if p.lease, p.providers, err = f.originTurn(ctx, d); err != nil {
				return plan{}, err
			}
			f.log.Debug("fetch planned", "digest", d, "stat", stat, "took", time.Since(start), "providers", len(p.providers), "origin_reader", p.lease != nil)
			return p, nil
		}
		p.providers = f.findProviders(ctx, d)
		return f.planFromPeers(ctx, d, p, err)
	}
	if f.node != nil {
		p.providers = f.findProviders(ctx, d)
	}
	found := time.Since(start)
	size, err := src.Stat(ctx, d)
	if err == nil {
		p.size = size
		stat := time.Since(start) - found
		if len(p.providers) == 0 && f.locker != nil {
			if p.lease, p.providers, err = f.originTurn(ctx, d); err != nil {
				return plan{}, err
			}
		}
		f.log.Debug("fetch planned", "digest", d, "find", found, "stat", stat, "took", time.Since(start), "providers", len(p.providers), "origin_reader", p.lease != nil)
		return p, nil
	}
	return f.planFromPeers(ctx, d, p, err)
}

// planFromPeers completes p for a blob the origin does not have (statErr):
// its size comes from a provider.
func (f *fetcher) planFromPeers(ctx context.Context, d digest.Digest, p plan, statErr error) (plan, error) {
	err := statErr
	for _, prov := range p.providers {
		f.node.Host().Peerstore().AddAddrs(prov.ID, prov.Addrs, time.Minute)
	}
	if size, perr := f.statProviders(ctx, d, p.providers); perr == nil {
		p.size = size
		return p, nil
	}
	return plan{}, err
}

// statProviders asks every provider for d's size at once and returns the
// first answer: a provider record can outlive its peer, whose dial fails
// only after a timeout.
func (f *fetcher) statProviders(ctx context.Context, d digest.Digest, provs []peer.AddrInfo) (int64, error) {
	if len(provs) == 0 {
		return 0, errors.New("no providers")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type answer struct {
		size int64
		err  error
	}
	ch := make(chan answer, len(provs))
	for _, prov := range provs {
		go func() {
			s, err := f.node.Stat(ctx, prov.ID, d)
			ch <- answer{s, err}
		}()
	}
	var errs []error
	for range provs {
		a := <-ch
		if a.err == nil {
			return a.size, nil
		}
		errs = append(errs, a.err)
	}
	return 0, errors.Join(errs...)
}

// release gives up the plan's origin lease, if any.
func (p plan) release() {
	if p.lease != nil {
		p.lease.Release(context.Background())
	}
}

// maxSwarmRounds bounds how often a fetch goes back in line for the
// origin lock after the peers it was sent to failed.
const maxSwarmRounds = 3

// run fills w from peers, falling back to the origin, and commits it.
// When the peers fail, the host queues for its group's origin lock again
// (another host may be reading the origin already) before reading it.
func (f *fetcher) run(d digest.Digest, p plan, w *cas.Writer, src source) {
	defer f.wg.Done()
	defer func() { p.release() }() // p.lease changes below
	rec := f.pulls.begin(d, p.size)
	defer func() { f.pulls.end(rec, f.cached(d)) }()
	ctx := f.life
	if p.lease != nil && f.node != nil {
		// The group's origin reader announces the blob at once: the hosts
		// waiting for their turn copy it from here while it arrives.
		if err := f.node.Provide(ctx, d); err != nil {
			f.log.Warn("announce blob being fetched", "digest", d, "err", err)
		}
	}
	for round := 1; len(p.providers) > 0; round++ {
		err := f.fromSwarm(ctx, d, p.size, w, p.providers)
		if err == nil {
			return
		}
		f.log.Warn("fetch from peers failed", "digest", d, "round", round, "err", err)
		if w, err = f.cas.Create(ctx, d, p.size, cas.WriteOptions{State: cas.StateReplicated}); err != nil {
			if !errors.Is(err, cas.ErrExists) && !errors.Is(err, cas.ErrInProgress) {
				f.log.Warn("fetch from origin", "digest", d, "err", err)
			}
			return
		}
		p.providers = nil
		if f.locker == nil || p.lease != nil || round >= maxSwarmRounds || ctx.Err() != nil {
			break
		}
		if p.lease, p.providers, err = f.originTurn(ctx, d); err != nil {
			w.Abort(err)
			f.log.Warn("fetch", "digest", d, "err", err)
			return
		}
	}
	f.reading.Add(1)
	err := f.fromOrigin(ctx, d, w, src)
	f.reading.Add(-1)
	if err != nil {
		w.Abort(err)
		if p.lease != nil && f.node != nil {
			f.node.Withdraw(d)
		}
		f.log.Warn("fetch from origin failed", "digest", d, "err", err)
		return
	}
	if p.lease != nil {
		f.linger(d, p.lease)
		p.lease = nil
	}
}

// readerLinger is how long the host that read a blob from the origin keeps
// the blob's fetch lock after committing it. Hosts that start the blob
// meanwhile (a rollout's hosts reach each layer at different times) are
// told this host holds the lock and copy from it and the swarm its answers
// name, instead of each winning the free lock in turn, searching the DHT
// and asking providers what they hold: under load those questions time
// out and the winner reads the origin again.
const readerLinger = 30 * time.Second

// linger releases l, the fetch lock of d, after readerLinger, or sooner
// when the agent stops or d leaves the cache (endLinger).
func (f *fetcher) linger(d digest.Digest, l *locks.Lease) {
	end := make(chan struct{})
	f.lingerMu.Lock()
	if f.lingering == nil {
		f.lingering = make(map[digest.Digest]chan struct{})
	}
	f.lingering[d] = end
	f.lingerMu.Unlock()
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		t := time.NewTimer(readerLinger)
		defer t.Stop()
		select {
		case <-t.C:
		case <-end:
		case <-l.Lost():
		case <-f.life.Done():
		}
		f.lingerMu.Lock()
		if f.lingering[d] == end {
			delete(f.lingering, d)
		}
		f.lingerMu.Unlock()
		l.Release(context.Background())
	}()
}

// endLinger releases the fetch lock kept for d, if any.
func (f *fetcher) endLinger(d digest.Digest) {
	f.lingerMu.Lock()
	defer f.lingerMu.Unlock()
	if end, ok := f.lingering[d]; ok {
		close(end)
		delete(f.lingering, d)
	}
}

// fromOrigin copies d from src into w and commits it.
func (f *fetcher) fromOrigin(ctx context.Context, d digest.Digest, w *cas.Writer, src source) error {
	if rs, ok := src.(rangeSource); ok && w.Size() > 0 {
		return f.fromOriginRanges(ctx, d, w, rs, w.Size())
	}
	rc, err := src.Open(ctx, d)
	if err != nil {
		return err
	}
	defer rc.Close()
	n, err := io.Copy(w, rc)
	f.onBytes("origin", n)
	f.pulls.fromOrigin(d, n)
	if err != nil {
		return fmt.Errorf("copy from origin: %w", err)
	}
	if _, err := w.Commit(ctx); err != nil {
		return err
	}
	f.log.Debug("fetched from origin", "digest", d)
	return nil
}

// Wait blocks until running fetches end (they end when life is cancelled).
func (f *fetcher) Wait() { f.wg.Wait() }
