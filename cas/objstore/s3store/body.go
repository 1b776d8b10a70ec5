package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
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

// putBody is a Put's source as the S3 client reads it. It enforces the
// declared size: a short stream fails, and before the last declared byte
// goes out it checks that the stream ends there, withholding that data if
// not, so a wrong size never completes an upload. Its first error is kept
// in err so Put can tell the caller's failures from the service's.
type putBody struct {
	r    io.Reader
	size int64 // -1: unknown
	n    atomic.Int64

	mu  sync.Mutex
	err error
}

// untouched reports whether nothing has been read yet, so the upload can
// be retried from the start.
func (b *putBody) untouched() bool { return b.n.Load() == 0 && b.failure() == nil }

// failure returns the first error the source produced, if any.
func (b *putBody) failure() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

func (b *putBody) fail(err error) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.err == nil {
		b.err = err
	}
	return err
}

// Read implements io.Reader.
func (b *putBody) Read(p []byte) (int, error) {
	done := b.n.Load()
	if b.size >= 0 {
		left := b.size - done
		if left <= 0 {
			return 0, b.checkEnd()
		}
		if int64(len(p)) > left {
			p = p[:left]
		}
	}
	n, err := b.r.Read(p)
	done = b.n.Add(int64(n))
	switch {
	case errors.Is(err, io.EOF) && b.size >= 0 && done < b.size:
		return n, b.fail(fmt.Errorf("stream ended after %d bytes, want %d", done, b.size))
	case err != nil && !errors.Is(err, io.EOF):
		return n, b.fail(err)
	case err == nil && b.size >= 0 && done == b.size:
		if err := b.checkEnd(); err != io.EOF {
			return 0, err // withhold the last bytes
		}
		return n, io.EOF
	}
	return n, err
}

// checkEnd returns io.EOF if the source holds no more bytes.
func (b *putBody) checkEnd() error {
	var one [1]byte
	n, err := io.ReadAtLeast(b.r, one[:], 1)
	switch {
	case n > 0:
		return b.fail(fmt.Errorf("stream is longer than its declared %d bytes", b.size))
	case errors.Is(err, io.EOF):
		return io.EOF
	}
	return b.fail(err)
}
