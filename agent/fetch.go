package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/cas"
	"github.com/shoal-dev/shoal/cas/objstore"
)

// fetcher brings blobs that miss the cache into it, once per digest however
// many requests want them; every request follows the growing file.
type fetcher struct {
	cas    *cas.Store
	origin *origin
	log    *slog.Logger
	// onBytes counts bytes brought into the cache, by source.
	onBytes func(source string, n int64)

	// life bounds fetches: they outlive the request that started them (other
	// requests may be following) but not the agent.
	life context.Context
	wg   sync.WaitGroup
}

// maxFetchAttempts bounds the follow/create race loop.
const maxFetchAttempts = 4

// Follow returns a follower of d, starting a fetch from the origin if no
// fetch is running and the blob is not cached.
func (f *fetcher) Follow(ctx context.Context, d digest.Digest) (*cas.Follower, error) {
	var lastErr error
	for range maxFetchAttempts {
		fl, err := f.cas.Follow(ctx, d)
		if err == nil {
			return fl, nil
		}
		if !errors.Is(err, cas.ErrNotFound) {
			return nil, err
		}
		size, err := f.origin.Stat(ctx, objstore.BlobKey(d))
		if err != nil {
			return nil, err
		}
		w, err := f.cas.Create(ctx, d, size, cas.WriteOptions{State: cas.StateReplicated})
		switch {
		case errors.Is(err, cas.ErrExists), errors.Is(err, cas.ErrInProgress):
			lastErr = err
			continue // someone else got there first: follow theirs
		case err != nil:
			return nil, err
		}
		f.wg.Add(1)
		go f.fromOrigin(d, w)
		lastErr = nil
	}
	fl, err := f.cas.Follow(ctx, d)
	if err != nil {
		return nil, fmt.Errorf("follow %s: %w (last: %v)", d, err, lastErr)
	}
	return fl, nil
}

// fromOrigin copies d from the origin into w and commits it.
func (f *fetcher) fromOrigin(d digest.Digest, w *cas.Writer) {
	defer f.wg.Done()
	ctx := f.life
	err := func() error {
		rc, err := f.origin.Get(ctx, objstore.BlobKey(d), 0, -1)
		if err != nil {
			return err
		}
		defer rc.Close()
		n, err := io.Copy(w, rc)
		f.onBytes("origin", n)
		if err != nil {
			return fmt.Errorf("copy from origin: %w", err)
		}
		_, err = w.Commit(ctx)
		return err
	}()
	if err != nil {
		w.Abort(err)
		f.log.Warn("fetch from origin failed", "digest", d, "err", err)
		return
	}
	f.log.Debug("fetched from origin", "digest", d)
}

// Wait blocks until running fetches end (they end when life is cancelled).
func (f *fetcher) Wait() { f.wg.Wait() }
