package s3store

import "time"

// breakerState is where a breaker stands.
type breakerState int

const (
	// closed lets every request through and counts consecutive failures.
	closed breakerState = iota
	// open fails every request until the cool-down has passed.
	open
	// halfOpen lets one probe through; its outcome closes or reopens.
	halfOpen
)

func (s breakerState) String() string {
	switch s {
	case closed:
		return "closed"
	case open:
		return "open"
	case halfOpen:
		return "half-open"
	}
	return "unknown"
}

// outcome is what a finished request says about the server's health.
type outcome int

const (
	// answered: the server responded (including 404 and other 4xx).
	answered outcome = iota
	// failed: a network error, a timeout or a 5xx.
	failed
	// neutral: says nothing about the server, e.g. the caller cancelled
	// or its body reader failed.
	neutral
)

// breaker is a circuit breaker: after threshold consecutive failures it
// opens and refuses requests for cooldown, then lets a single probe through
// (half-open); the probe's success closes it, its failure reopens it.
//
// It is a pure state machine: time comes in as arguments and callers
// serialise access.
type breaker struct {
	threshold int
	cooldown  time.Duration

	state    breakerState
	failures int       // consecutive failures while closed
	openedAt time.Time // when the breaker last opened
	probing  bool      // half-open: the probe is in flight
}

// allow reports whether a request may go out at now. In the half-open
// state only the first caller gets true; it must report its outcome with
// record.
func (b *breaker) allow(now time.Time) bool {
	switch b.state {
	case open:
		if now.Sub(b.openedAt) < b.cooldown {
			return false
		}
		b.state, b.probing = halfOpen, true
		return true
	case halfOpen:
		if b.probing {
			return false
		}
		b.probing = true
		return true
	default:
		return true
	}
}

// record takes the outcome of a request that allow let through and returns
// the state before and after, so the caller can log transitions.
func (b *breaker) record(now time.Time, o outcome) (from, to breakerState) {
	from = b.state
	switch o {
	case answered:
		b.failures, b.probing, b.state = 0, false, closed
	case failed:
		b.failures++
		if b.state == halfOpen || (b.state == closed && b.failures >= b.threshold) {
			b.state, b.openedAt, b.probing = open, now, false
		}
	case neutral:
		// A probe that proved nothing frees the slot for the next caller.
		if b.state == halfOpen {
			b.probing = false
		}
	}
	return from, b.state
}
