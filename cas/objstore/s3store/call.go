package s3store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/shoal-dev/shoal/cas/objstore"
)

// call describes one logical operation for do.
type call struct {
	op    string // for errors and logs: "stat blobs/sha256/ab…"
	retry bool   // whether a transient failure may be retried
	// untimed: the attempt function bounds its own time (Get, Put).
	untimed bool
	// keep: on success the attempt's context lives on, and fn has handed
	// attemptOf(ctx).cancel to whoever ends it (a Get's body).
	keep bool
}

// do runs fn under the breaker, retrying transient failures with jittered
// exponential backoff. Each attempt gets its own context, cancelled when it
// ends (see attempt), with Options.Timeout unless c.untimed.
// It returns nil, the caller's context error, objstore.ErrNotFound,
// objstore.ErrUnavailable or another error, each wrapped with context.
func (s *Store) do(ctx context.Context, c call, fn func(ctx context.Context) error) error {
	for try := 1; ; try++ {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("s3store: %s: %w", c.op, err)
		}
		if !s.allow() {
			return fmt.Errorf("s3store: %s: %w: circuit breaker open", c.op, objstore.ErrUnavailable)
		}
		a := &attempt{}
		var actx context.Context
		if c.untimed {
			actx, a.cancel = context.WithCancel(ctx)
		} else {
			actx, a.cancel = context.WithTimeout(ctx, s.opts.Timeout)
		}
		err := fn(withAttempt(actx, a))
		if failure := a.failure(); err != nil && failure != nil {
			err = failure // the client saw only the cancellation that ended its wait
		}
		if err != nil || !c.keep {
			a.cancel()
		}
		o := classify(ctx, err)
		s.record(o, err)
		switch {
		case err == nil:
			return nil
		case ctx.Err() != nil:
			return fmt.Errorf("s3store: %s: %w", c.op, ctx.Err())
		case o != failed:
			return mapAnswer(c.op, err)
		case try >= s.opts.Attempts || !c.retry:
			return fmt.Errorf("s3store: %s: %w: %w", c.op, objstore.ErrUnavailable, err)
		}
		delay := s.backoff(try)
		s.log.Debug("s3store: retrying", "op", c.op, "attempt", try, "delay", delay, "err", err)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("s3store: %s: %w", c.op, ctx.Err())
		case <-t.C:
		}
	}
}

// backoff returns the delay before retry number attempt (1-based): drawn
// uniformly from [0, min(MaxBackoff, Backoff·2^(attempt-1))).
func (s *Store) backoff(attempt int) time.Duration {
	ceiling := s.opts.Backoff << min(attempt-1, 30)
	if ceiling <= 0 || ceiling > s.opts.MaxBackoff {
		ceiling = s.opts.MaxBackoff
	}
	if ceiling <= 0 {
		return 0
	}
	return rand.N(ceiling)
}

// allow asks the breaker whether a request may go out now.
func (s *Store) allow() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.breaker.allow(time.Now())
}

// record feeds an attempt's outcome to the breaker and the health state,
// logging breaker transitions.
func (s *Store) record(o outcome, err error) {
	now := time.Now()
	s.mu.Lock()
	from, to := s.breaker.record(now, o)
	switch o {
	case answered:
		s.lastOK = true
	case failed:
		s.lastOK, s.lastErr, s.lastErrAt = false, err, now
	}
	s.mu.Unlock()
	switch {
	case from == to:
	case to == open:
		s.log.Warn("s3store: circuit breaker open", "from", from.String(), "cooldown", s.opts.BreakerCooldown, "err", err)
	default:
		s.log.Info("s3store: circuit breaker "+to.String(), "from", from.String())
	}
}

// classify says what an attempt's error tells about the service. parent is
// the caller's context: its cancellation says nothing.
func classify(parent context.Context, err error) outcome {
	if err == nil {
		return answered
	}
	if parent.Err() != nil {
		return neutral
	}
	var resp minio.ErrorResponse
	if !errors.As(err, &resp) {
		return failed // network errors, timeouts, truncated responses
	}
	switch {
	case resp.StatusCode == 0:
		return neutral // rejected by the client before sending
	case resp.StatusCode >= 500, resp.StatusCode == http.StatusTooManyRequests,
		resp.StatusCode == http.StatusRequestTimeout,
		resp.Code == "SlowDown", resp.Code == "RequestTimeout":
		return failed
	}
	return answered
}

// mapAnswer wraps an error the service answered with (or a client-side
// rejection), mapping a missing object to objstore.ErrNotFound.
func mapAnswer(op string, err error) error {
	if isNotFound(err) {
		return fmt.Errorf("s3store: %s: %w", op, objstore.ErrNotFound)
	}
	return fmt.Errorf("s3store: %s: %w", op, err)
}

// isNotFound reports whether err is the service saying the object does not
// exist. (A missing bucket or upload is a different matter.)
func isNotFound(err error) bool {
	switch errorCode(err) {
	case "NoSuchKey", "NotFound":
		return true
	}
	var resp minio.ErrorResponse
	return errors.As(err, &resp) && resp.StatusCode == http.StatusNotFound && resp.Code == ""
}

// errorCode returns the S3 error code in err, or "".
func errorCode(err error) string {
	var resp minio.ErrorResponse
	if errors.As(err, &resp) {
		return resp.Code
	}
	return ""
}
