package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/shoal-dev/shoal/cas/objstore"
)

// watchdog calls fire unless it is stopped within timeout of being armed.
type watchdog struct {
	timer   *time.Timer
	timeout time.Duration
}

// newWatchdog returns an armed watchdog.
func newWatchdog(timeout time.Duration, fire func()) *watchdog {
	return &watchdog{timer: time.AfterFunc(timeout, fire), timeout: timeout}
}

func (w *watchdog) arm()  { w.timer.Reset(w.timeout) }
func (w *watchdog) stop() { w.timer.Stop() }

// bodyReader is a Get's response body. The watchdog runs only while a Read
// waits for the service, so a slow consumer is not mistaken for a stalled
// server; when it fires, the request's context is cancelled.
type bodyReader struct {
	ctx      context.Context // the caller's
	rc       io.ReadCloser
	watchdog *watchdog
	cancel   context.CancelFunc // the request's
	key      string
}

// Read reads from the response, failing once the caller's context is done
// and mapping a broken or stalled stream to objstore.ErrUnavailable.
func (b *bodyReader) Read(p []byte) (int, error) {
	if err := b.ctx.Err(); err != nil {
		return 0, fmt.Errorf("s3store: read %s: %w", b.key, err)
	}
	b.watchdog.arm()
	n, err := b.rc.Read(p)
	b.watchdog.stop()
	switch {
	case err == nil || err == io.EOF:
		return n, err
	case b.ctx.Err() != nil:
		return n, fmt.Errorf("s3store: read %s: %w", b.key, b.ctx.Err())
	}
	return n, fmt.Errorf("s3store: read %s: %w: %w", b.key, objstore.ErrUnavailable, err)
}

// Close releases the response and its connection.
func (b *bodyReader) Close() error {
	b.watchdog.stop()
	err := b.rc.Close()
	b.cancel()
	return err
}

// source is a Put's reader as Put consumes it, part by part. It enforces
// the declared size (if any): a short stream fails, and so does a longer
// one, which it detects by reading one byte past the end before the last
// part goes out.
type source struct {
	r    io.Reader
	size int64 // -1: unknown
	n    int64 // bytes read so far
}

// Read implements io.Reader, reading no further than the declared size.
func (s *source) Read(p []byte) (int, error) {
	if s.size >= 0 {
		p = p[:min(int64(len(p)), s.size-s.n)]
	}
	n, err := s.r.Read(p)
	s.n += int64(n)
	if errors.Is(err, io.EOF) && s.size >= 0 && s.n < s.size {
		err = fmt.Errorf("stream ended after %d bytes, want %d", s.n, s.size)
	}
	return n, err
}

// readPart fills buf (or, for a declared size, as much of it as the rest
// of the object needs). last reports that the object ends with this part.
func (s *source) readPart(buf []byte) (n int, last bool, err error) {
	if s.size >= 0 {
		buf = buf[:min(int64(len(buf)), s.size-s.n)]
	}
	n, err = io.ReadFull(s, buf)
	switch {
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return n, true, nil // unknown size: the stream ended
	case err != nil:
		return n, false, err
	case s.size >= 0 && s.n == s.size:
		return n, true, s.checkEnd()
	}
	return n, false, nil
}

// checkEnd returns nil if the reader holds no more bytes.
func (s *source) checkEnd() error {
	var one [1]byte
	n, err := io.ReadAtLeast(s.r, one[:], 1)
	switch {
	case n > 0:
		return fmt.Errorf("stream is longer than its declared %d bytes", s.size)
	case errors.Is(err, io.EOF):
		return nil
	}
	return err
}
