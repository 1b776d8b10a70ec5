package objstore

import (
	"context"
	"fmt"
	"io"
)

// ContextReader returns a reader that fails with ctx's error once ctx is
// done, checked before every Read. Backends use it so that a cancelled
// context stops a stream between reads.
func ContextReader(ctx context.Context, r io.Reader) io.Reader {
	return &ctxReader{ctx: ctx, r: r}
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// LimitSize returns a reader that yields r's bytes and fails as soon as r
// holds more than size bytes (size < 0: no limit), so a Put never stores
// more than it was told. A short stream is for the caller to detect by
// counting.
func LimitSize(r io.Reader, size int64) io.Reader {
	if size < 0 {
		return r
	}
	return &sizeReader{r: r, left: size}
}

type sizeReader struct {
	r    io.Reader
	left int64
}

func (s *sizeReader) Read(p []byte) (int, error) {
	if s.left <= 0 {
		// Probe for one more byte: the stream must end here.
		var b [1]byte
		n, err := s.r.Read(b[:])
		if n > 0 {
			return 0, fmt.Errorf("stream is longer than its declared size")
		}
		return 0, err
	}
	if int64(len(p)) > s.left {
		p = p[:s.left]
	}
	n, err := s.r.Read(p)
	s.left -= int64(n)
	return n, err
}
