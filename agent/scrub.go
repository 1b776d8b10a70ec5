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

// openVerified opens a cached blob for serving. A blob that was already on
// disk when the agent started is first read and checked against its digest
// (once; concurrent requests share the read): a file changed behind the
// agent's back is removed and reported as cas.ErrNotFound, so the caller
// fetches the blob again from peers or the origin instead of serving it.
func openVerified(ctx context.Context, c *cas.Store, log *slog.Logger, d digest.Digest) (*os.File, cas.Info, error) {
	if c.NeedsVerify(d) {
		start := time.Now()
		err := c.Verify(ctx, d, 0)
		switch {
		case errors.Is(err, cas.ErrCorrupt):
			log.Error("cached blob corrupt on disk; removed, fetching it again", "digest", d, "err", err)
			return nil, cas.Info{}, fmt.Errorf("%w: %w", cas.ErrNotFound, err)
		case err != nil:
			return nil, cas.Info{}, err
		}
		log.Debug("verified cached blob before its first serve", "digest", d, "took", time.Since(start).String())
	}
	return c.Open(ctx, d)
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
