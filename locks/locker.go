package locks

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Locker acquires leases on named locks.
type Locker interface {
	// Acquire takes the lock name, waiting up to opts.Wait for it.
	Acquire(ctx context.Context, name string, opts AcquireOptions) (*Lease, error)
}

// AcquireOptions shape one [Locker.Acquire].
type AcquireOptions struct {
	// TTL is the lease's time to live without renewal. Zero: the locker's
	// default.
	TTL time.Duration
	// Limit makes the lock a counting semaphore of that size. Zero: 1, a
	// mutex. Every holder of a lock must use the same limit.
	Limit int
	// Wait is how long to wait for the lock, queued FIFO behind earlier
	// waiters. Zero: try once.
	Wait time.Duration
}

// grantFunc asks an owner once for a grant; waited is how long the owner
// queued the request.
type grantFunc func(ctx context.Context, r Request, wait time.Duration) (g Grant, waited time.Duration, err error)

// retryable reports whether an acquire may be retried at another moment or
// owner: everything but a definite answer.
func retryable(err error) bool {
	for _, final := range []error{ErrTimeout, ErrLimitMismatch, ErrInvalid, ErrNotHeld, context.Canceled, context.DeadlineExceeded} {
		if errors.Is(err, final) {
			return false
		}
	}
	return true
}

// acquire runs the client side of an acquisition: it retries transient
// failures (grace periods, moved ownership, unreachable proxies) with
// backoff until opts.Wait runs out, then wraps the grant in a renewing
// [Lease] whose deadline is bounded by the send time of the request.
func acquire(ctx context.Context, node, name string, opts AcquireOptions, ask grantFunc, b leaseBackend, m *metrics, logger *slog.Logger) (*Lease, error) {
	start := time.Now()
	r := Request{Name: name, Holder: Holder{Node: node, ID: rand.Text()}, Limit: max(opts.Limit, 1), TTL: opts.TTL}
	if err := validate(r.Name, r.Limit, r.TTL); err != nil {
		return nil, err
	}
	until := start.Add(opts.Wait)
	backoff := 10 * time.Millisecond
	for {
		sent := time.Now()
		g, waited, err := ask(ctx, r, max(0, until.Sub(sent)))
		if err == nil {
			m.observeAcquire(start, "ok")
			m.held.Inc()
			l := newLease(g, sent.Add(waited+g.TTL), b, logger)
			l.onEnd = m.held.Dec
			if tr, ok := b.(leaseTracker); ok {
				tr.track(l)
				l.onEnd = func() { m.held.Dec(); tr.untrack(l) }
			}
			l.start()
			return l, nil
		}
		left := time.Until(until)
		if !retryable(err) || ctx.Err() != nil || left <= 0 {
			result := "error"
			if errors.Is(err, ErrTimeout) || left <= 0 {
				result = "timeout"
			}
			m.observeAcquire(start, result)
			if retryable(err) && ctx.Err() == nil {
				return nil, fmt.Errorf("acquire %s: %w (last: %w)", name, ErrTimeout, err)
			}
			return nil, err
		}
		logger.Debug("acquire retry", "lock", name, "err", err)
		select {
		case <-ctx.Done():
			m.observeAcquire(start, "error")
			return nil, fmt.Errorf("acquire %s: %w", name, ctx.Err())
		case <-time.After(min(backoff, left)):
		}
		backoff = min(2*backoff, 250*time.Millisecond)
	}
}
