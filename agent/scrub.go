package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/opencontainers/go-digest"

	"github.com/shoal-dev/shoal/agent/config"
	"github.com/shoal-dev/shoal/cas"
)

// verifyBeforeServeMax is the largest blob checked in full before its first
// serve after a start-up; a larger one is checked while it is served.
const verifyBeforeServeMax = 64 << 20

// openVerified opens a cached blob, checking it against its digest first
// if it was already on disk when the agent started (once; concurrent
// requests share the read). A file changed behind the agent's back is
// removed and reported as cas.ErrNotFound, so the caller fetches the blob
// again from peers or the origin instead of serving or replicating it.
func openVerified(ctx context.Context, c *cas.Store, log *slog.Logger, d digest.Digest) (*os.File, cas.Info, error) {
	if c.NeedsVerify(d) {
		start := time.Now()
		if err := verifyCached(ctx, c, log, d); err != nil {
			return nil, cas.Info{}, err
		}
		log.Debug("verified cached blob before its first serve", "digest", d, "took", time.Since(start).String())
	}
	return c.Open(ctx, d)
}

// openForServe is openVerified for the pull path: a large blob that needs
// its check is served at once while it is hashed alongside, and the
// returned verified hook (for registryapi.Blob.Verified, which withholds
// the last byte) reports the outcome, so a corrupt copy is never delivered
// as a complete response: the client's retry finds it gone and refetched.
func openForServe(ctx context.Context, c *cas.Store, log *slog.Logger, d digest.Digest) (*os.File, cas.Info, func(context.Context) error, error) {
	info, err := c.Stat(ctx, d)
	if err != nil || !c.NeedsVerify(d) || info.Size <= verifyBeforeServeMax {
		f, info, err := openVerified(ctx, c, log, d)
		return f, info, nil, err
	}
	f, info, err := c.Open(ctx, d)
	if err != nil {
		return nil, cas.Info{}, nil, err
	}
	done := make(chan error, 1)
	go func() { done <- verifyCached(ctx, c, log, d) }()
	verified := func(vctx context.Context) error {
		select {
		case err := <-done:
			done <- err // a second call sees the same answer
			return err
		case <-vctx.Done():
			return vctx.Err()
		}
	}
	return f, info, verified, nil
}

// verifyCached checks d's file; a corrupt one is removed and reported as
// cas.ErrNotFound (wrapping cas.ErrCorrupt).
func verifyCached(ctx context.Context, c *cas.Store, log *slog.Logger, d digest.Digest) error {
	err := c.Verify(ctx, d, 0)
	if errors.Is(err, cas.ErrCorrupt) {
		log.Error("cached blob corrupt on disk; removed, fetching it again", "digest", d, "err", err)
		return fmt.Errorf("%w: %w", cas.ErrNotFound, err)
	}
	return err
}

// scrubConfig is the cache scrub the agent runs in the background.
func scrubConfig(c config.CacheConfig, log *slog.Logger) cas.ScrubConfig {
	return cas.ScrubConfig{
		BytesPerSecond: int64(c.ScrubRate),
		Interval:       time.Duration(c.ScrubInterval),
		OnCorrupt: func(d digest.Digest, err error) {
			log.Error("scrub: cached blob corrupt on disk; removed (the next pull fetches it again)", "digest", d, "err", err)
		},
	}
}
