package agent

import (
	"context"
	"fmt"
	"io"

	"github.com/opencontainers/go-digest"
	"golang.org/x/sync/errgroup"

	"github.com/shoal-dev/shoal/cas"
	"github.com/shoal-dev/shoal/cas/objstore"
)

// rangeSource is a source that can read part of a blob (the object store).
type rangeSource interface {
	source
	OpenRange(ctx context.Context, d digest.Digest, off, n int64) (io.ReadCloser, error)
}

func (s storeSource) OpenRange(ctx context.Context, d digest.Digest, off, n int64) (io.ReadCloser, error) {
	return s.o.Get(ctx, objstore.BlobKey(d), off, n)
}

const (
	// originStreams is how many ranges of one blob are read from the
	// object store at once. The host reading the origin is the only way
	// new bytes enter the fleet, and it is usually downloading other
	// layers from peers at the same time: parallel ranged reads keep its
	// share of its own link (and S3's per-connection throughput) from
	// holding the whole rollout back.
	originStreams = 4
	// originSplit is the smallest range worth a stream of its own.
	originSplit = 8 << 20
)

// fromOriginRanges copies d from src into w in up to originStreams ranges
// read in parallel. The commit verifies the whole blob.
func (f *fetcher) fromOriginRanges(ctx context.Context, d digest.Digest, w *cas.Writer, src rangeSource, size int64) error {
	split := f.originSplit
	if split <= 0 {
		split = originSplit
	}
	parts := int(min(int64(originStreams), size/split))
	per := (size + int64(parts) - 1) / int64(parts)
	g, gctx := errgroup.WithContext(ctx)
	for i := range parts {
		off := int64(i) * per
		n := min(per, size-off)
		g.Go(func() error {
			rc, err := src.OpenRange(gctx, d, off, n)
			if err != nil {
				return err
			}
			defer rc.Close()
			got, err := io.Copy(&offsetWriter{w: w, off: off}, io.LimitReader(rc, n))
			f.onBytes("origin", got)
			f.pulls.fromOrigin(d, got)
			if err == nil && got != n {
				err = io.ErrUnexpectedEOF
			}
			if err != nil {
				return fmt.Errorf("range %d+%d from origin: %w", off, n, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if _, err := w.Commit(ctx); err != nil {
		return err
	}
	f.log.Debug("fetched from origin", "digest", d, "ranges", parts)
	return nil
}

// offsetWriter writes a stream at consecutive offsets of w.
type offsetWriter struct {
	w   io.WriterAt
	off int64
}

func (o *offsetWriter) Write(p []byte) (int, error) {
	n, err := o.w.WriteAt(p, o.off)
	o.off += int64(n)
	return n, err
}
