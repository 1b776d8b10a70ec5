package p2p

import "time"

// Budget is a token bucket: rate tokens per second, holding at most burst.
// Pure: time is passed in; not safe for concurrent use.
type Budget struct {
	rate, burst, tokens float64
	last                time.Time
}

// NewBudget returns a full bucket at now.
func NewBudget(rate, burst float64, now time.Time) *Budget {
	return &Budget{rate: rate, burst: burst, tokens: burst, last: now}
}

func (b *Budget) refill(now time.Time) {
	if dt := now.Sub(b.last); dt > 0 {
		b.tokens = min(b.burst, b.tokens+b.rate*dt.Seconds())
		b.last = now
	}
}

// Take removes n tokens if the bucket holds them and reports whether it did.
func (b *Budget) Take(n float64, now time.Time) bool {
	b.refill(now)
	if b.tokens < n {
		return false
	}
	b.tokens -= n
	return true
}

// Borrow removes n tokens even if that leaves the bucket in debt (at most
// one burst deep): on-demand probes go first, and scheduled ones wait
// until the debt is paid back. It reports false, taking nothing, when the
// debt would exceed that bound.
func (b *Budget) Borrow(n float64, now time.Time) bool {
	b.refill(now)
	if b.tokens-n < -b.burst {
		return false
	}
	b.tokens -= n
	return true
}

// Refund returns n unused tokens (a test download that ended early).
func (b *Budget) Refund(n float64, now time.Time) {
	b.refill(now)
	b.tokens = min(b.burst, b.tokens+n)
}

// Tokens is the balance at now (negative while in debt).
func (b *Budget) Tokens(now time.Time) float64 {
	b.refill(now)
	return b.tokens
}
