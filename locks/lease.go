package locks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// leaseBackend renews and releases leases for a [Lease].
type leaseBackend interface {
	renew(ctx context.Context, g Grant) error
	release(ctx context.Context, g Grant) error
}

// leaseTracker is a leaseBackend that wants to know its live leases, to make
// them renew at once when lock ownership moves.
type leaseTracker interface {
	track(l *Lease)
	untrack(l *Lease)
}

// Lease is a held lock. It renews itself in the background until
// [Lease.Release] or until it is lost: the owner refused a renewal, or no
// renewal succeeded before the lease's deadline.
type Lease struct {
	// Name is the lock's name.
	Name string
	// Token is the fencing token: it grows with every grant of the lock.
	// Pass it to the resources the lock guards so they can reject a stale
	// holder.
	Token uint64
	// Limit is the semaphore size the lock is held with.
	Limit int
	// TTL is the lease's time to live without renewal.
	TTL time.Duration

	grant   Grant
	backend leaseBackend
	logger  *slog.Logger
	onEnd   func()

	mu       sync.Mutex
	deadline time.Time

	kick    chan struct{} // asks the renew loop to renew now
	ended   chan struct{} // closed when the lease is lost or released
	endOnce sync.Once
	stopCtx context.Context // canceled by Release
	stop    context.CancelFunc
	done    chan struct{} // closed when the renew loop exits
}

// newLease returns a lease whose renewals have not started: set onEnd, then
// call start.
func newLease(g Grant, deadline time.Time, b leaseBackend, logger *slog.Logger) *Lease {
	l := &Lease{
		Name: g.Name, Token: g.Token, Limit: g.Limit, TTL: g.TTL,
		grant: g, backend: b, logger: logger, deadline: deadline,
		kick: make(chan struct{}, 1), ended: make(chan struct{}), done: make(chan struct{}),
	}
	l.stopCtx, l.stop = context.WithCancel(context.Background())
	return l
}

func (l *Lease) start() { go l.renewLoop() }

// renewNow makes the lease renew without waiting for its next turn: its
// owner may have moved, and re-asserting early keeps well inside the new
// owner's grace period.
func (l *Lease) renewNow() {
	select {
	case l.kick <- struct{}{}:
	default:
	}
}

// Lost returns a channel that is closed when the lease ends: lost or
// released. Stop using what the lock guards when it closes.
func (l *Lease) Lost() <-chan struct{} { return l.ended }

// Deadline returns the time until which the lease is known to be held: the
// send time of the last successful renewal plus the TTL. A lost lease keeps
// the deadline it had.
func (l *Lease) Deadline() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.deadline
}

func (l *Lease) end() {
	l.endOnce.Do(func() {
		close(l.ended)
		if l.onEnd != nil {
			l.onEnd()
		}
	})
}

// Release gives the lock up. It returns an error wrapping [ErrNotHeld] if
// the lease was already lost or released.
func (l *Lease) Release(ctx context.Context) error {
	l.stop()
	<-l.done
	select {
	case <-l.ended:
		return fmt.Errorf("release %s token %d: lease ended: %w", l.Name, l.Token, ErrNotHeld)
	default:
	}
	l.end()
	if err := l.backend.release(ctx, l.grant); err != nil {
		return fmt.Errorf("release %s token %d: %w", l.Name, l.Token, err)
	}
	return nil
}

// renewLoop renews every TTL/3, retrying sooner after a failure, until the
// lease is released or lost.
func (l *Lease) renewLoop() {
	defer close(l.done)
	interval := l.TTL / 3
	timer := time.NewTimer(interval)
	defer timer.Stop()
	for {
		deadline := l.Deadline()
		timer.Reset(min(interval, time.Until(deadline)))
		select {
		case <-l.stopCtx.Done():
			return
		case <-l.kick:
		case <-timer.C:
		}
		sent := time.Now()
		if !sent.Before(deadline) {
			l.logger.Warn("lease expired before renewal", "lock", l.Name, "token", l.Token)
			l.end()
			return
		}
		// One attempt may take a third of the TTL: a stuck connection
		// must not use up the time left for retries.
		ctx, cancel := context.WithDeadline(l.stopCtx, minTime(deadline, sent.Add(l.TTL/3)))
		err := l.backend.renew(ctx, l.grant)
		cancel()
		switch {
		case l.stopCtx.Err() != nil:
			return
		case err == nil:
			l.mu.Lock()
			l.deadline = sent.Add(l.TTL)
			l.mu.Unlock()
			interval = l.TTL / 3
		case errors.Is(err, ErrNotHeld), errors.Is(err, ErrLimitMismatch), errors.Is(err, ErrInvalid):
			l.logger.Warn("lease lost", "lock", l.Name, "token", l.Token, "err", err)
			l.end()
			return
		default:
			l.logger.Debug("renew lease", "lock", l.Name, "token", l.Token, "err", err)
			interval = max(l.TTL/20, time.Millisecond)
		}
	}
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
