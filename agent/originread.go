package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

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

// originRetryFor is how long an interrupted origin read keeps retrying
// without getting a byte (the object store went down, or a connection
// broke) before the fetch fails. Bytes already read are kept: the read
// resumes where it stopped, so an outage costs neither the origin egress
// spent so far nor the swarm that follows this host's copy. A read that
// got nothing yet is not retried: the origin is down now, and the client
// hears so at once.
const originRetryFor = 30 * time.Second

// fromOriginRanges copies d from src into w in up to originStreams ranges
// read in parallel, each resumed where it stopped after an error (see
// originRetryFor). The commit verifies the whole blob.
func (f *fetcher) fromOriginRanges(ctx context.Context, d digest.Digest, w *cas.Writer, src rangeSource, size int64) error {
	split := f.originSplit
	if split <= 0 {
		split = originSplit
	}
	parts := int(max(1, min(int64(originStreams), size/split)))
	per := (size + int64(parts) - 1) / int64(parts)
	g, gctx := errgroup.WithContext(ctx)
	for i := range parts {
		off := int64(i) * per
		n := min(per, size-off)
		g.Go(func() error { return f.originRange(gctx, d, w, src, off, n) })
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

// originRange copies bytes [off, off+n) of d from src into w, resuming
// after read errors until originRetryFor passes without progress.
func (f *fetcher) originRange(ctx context.Context, d digest.Digest, w *cas.Writer, src rangeSource, off, n int64) error {
	var got int64
	backoff := 100 * time.Millisecond
	giveUp := time.Now().Add(originRetryFor)
	for {
		m, err := f.copyRange(ctx, d, w, src, off+got, n-got)
		got += m
		if err == nil {
			return nil
		}
		if m > 0 {
			backoff, giveUp = 100*time.Millisecond, time.Now().Add(originRetryFor)
		}
		var rerr *sourceError
		// A range that got nothing yet fails at once (the origin is down
		// now: the client hears so); one with bytes to keep is resumed.
		if got == 0 || ctx.Err() != nil || !errors.As(err, &rerr) || errors.Is(err, objstore.ErrNotFound) || time.Now().After(giveUp) {
			return fmt.Errorf("range %d+%d from origin (%d bytes read): %w", off, n, got, err)
		}
		f.log.Debug("origin read interrupted; resuming", "digest", d, "offset", off+got, "err", err, "after", backoff)
		select {
		case <-ctx.Done():
			return fmt.Errorf("range %d+%d from origin: %w", off, n, ctx.Err())
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// sourceError marks an error of the origin (opening or reading), which a
// retry may get past, as opposed to one of the cache.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return e.err.Error() }
func (e *sourceError) Unwrap() error { return e.err }

// copyRange copies n bytes at off of d from src into w once; it returns
// the bytes copied. Errors of the source are *sourceError.
func (f *fetcher) copyRange(ctx context.Context, d digest.Digest, w *cas.Writer, src rangeSource, off, n int64) (int64, error) {
	rc, err := src.OpenRange(ctx, d, off, n)
	if err != nil {
		return 0, &sourceError{err}
	}
	defer rc.Close()
	got, err := io.Copy(&offsetWriter{w: w, off: off}, sourceReader{io.LimitReader(rc, n)})
	f.onBytes("origin", got)
	f.pulls.fromOrigin(d, got)
	if err == nil && got != n {
		err = &sourceError{io.ErrUnexpectedEOF}
	}
	return got, err
}

// sourceReader marks its reader's errors as *sourceError.
type sourceReader struct{ r io.Reader }

func (s sourceReader) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err != nil && err != io.EOF {
		err = &sourceError{err}
	}
	return n, err
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
