package locks

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors returned by this package; test with [errors.Is].
var (
	// ErrNotHeld reports that a lease is not (or no longer) held.
	ErrNotHeld = errors.New("lock not held")
	// ErrTimeout reports that a lock was not acquired within the wait time.
	ErrTimeout = errors.New("lock wait timed out")
	// ErrGrace reports that the owner is in its failover grace period and
	// grants nothing new for the lock yet.
	ErrGrace = errors.New("lock owner in grace period")
	// ErrLimitMismatch reports a request whose semaphore limit differs from
	// the limit the lock is held with.
	ErrLimitMismatch = errors.New("lock limit mismatch")
	// ErrNotOwner reports a request that reached a member which neither owns
	// the lock nor may forward it further.
	ErrNotOwner = errors.New("not the lock owner")
	// ErrNoProxy reports that no proxy is known to send a request to.
	ErrNoProxy = errors.New("no lock proxy")
	// ErrInvalid reports a malformed request: empty name, bad TTL or limit.
	ErrInvalid = errors.New("invalid lock request")
)

// HeldError reports a lock that a try-once acquire ([AcquireOptions].Wait
// zero) found held: it names the holders' nodes, so that a caller that
// wanted the lock to do some work once for everyone (read a blob from the
// origin) can go to the node doing it. It matches [ErrTimeout].
type HeldError struct {
	Name    string
	Holders []string // node names
}

func (e *HeldError) Error() string {
	return fmt.Sprintf("acquire %s: busy, held by %s: %v", e.Name, strings.Join(e.Holders, ", "), ErrTimeout)
}

func (e *HeldError) Unwrap() error { return ErrTimeout }
