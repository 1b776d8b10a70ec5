package observe

import (
	"context"
	"errors"
	"time"

	"github.com/shoal-dev/shoal/cas/objstore"
)

// Health summarises an origin's recent calls for a status page.
type Health struct {
	// Origin is the name given to New.
	Origin string `json:"origin"`
	// OK is false after a failed call until a call succeeds, and while the
	// wrapped store reports itself unhealthy (see Store.Health).
	OK bool `json:"ok"`
	// LastError is the message of the most recent failure ("" if none).
	LastError string `json:"last_error,omitempty"`
	// LastErrorAt is when it happened (zero if never).
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	// LastSuccessAt is when a call last succeeded (zero if never).
	LastSuccessAt time.Time `json:"last_success_at,omitzero"`
	// ConsecutiveFailures counts the failures since the last success.
	ConsecutiveFailures int `json:"consecutive_failures"`
}

// healthReporter is implemented by stores that track their own health,
// such as s3store.Store (its circuit breaker).
type healthReporter interface {
	Health() (ok bool, lastErr error, at time.Time)
}

// Health reports the origin's health. A call succeeds when it returns nil
// or ErrNotFound (the origin answered). It fails with ErrUnavailable or any
// other error, and so does a Get's stream that breaks while being read.
// Calls that say nothing about the origin leave Health unchanged: those
// the caller cancelled (context.Canceled) and those refused before
// reaching it (ErrInvalidKey, ErrReadOnly).
//
// If the wrapped store has a method Health() (ok bool, lastErr error, at
// time.Time), as s3store.Store does, OK also requires its ok, and its
// lastErr is reported when it is more recent than this Store's own.
func (s *Store) Health() Health {
	s.mu.Lock()
	h := s.health
	s.mu.Unlock()
	h.Origin = s.name
	h.OK = h.ConsecutiveFailures == 0
	if hr, ok := s.s.(healthReporter); ok {
		innerOK, lastErr, at := hr.Health()
		h.OK = h.OK && innerOK
		if lastErr != nil && at.After(h.LastErrorAt) {
			h.LastError, h.LastErrorAt = lastErr.Error(), at
		}
	}
	return h
}

// record feeds a call's outcome to the health state.
func (s *Store) record(r result, err error) {
	switch {
	case r == resultOK || r == resultNotFound:
		now := time.Now()
		s.mu.Lock()
		s.health.LastSuccessAt = now
		s.health.ConsecutiveFailures = 0
		s.mu.Unlock()
	case errors.Is(err, context.Canceled), errors.Is(err, objstore.ErrInvalidKey), errors.Is(err, objstore.ErrReadOnly):
	default:
		now := time.Now()
		msg := err.Error()
		s.mu.Lock()
		s.health.LastError, s.health.LastErrorAt = msg, now
		s.health.ConsecutiveFailures++
		s.mu.Unlock()
	}
}
