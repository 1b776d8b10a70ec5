package agent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/locks"
)

// HeldLock is a lock held through the admin API for a local client.
type HeldLock struct {
	Name  string    `json:"name"`
	Token uint64    `json:"token"`
	Limit int       `json:"limit"`
	Since time.Time `json:"since"`
}

// holds tracks the locks held for local clients (shoal lock run).
type holds struct {
	mu   sync.Mutex
	held map[*locks.Lease]HeldLock
}

func (h *holds) add(l *locks.Lease) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.held == nil {
		h.held = map[*locks.Lease]HeldLock{}
	}
	h.held[l] = HeldLock{Name: l.Name, Token: l.Token, Limit: l.Limit, Since: time.Now().UTC()}
}

func (h *holds) remove(l *locks.Lease) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.held, l)
}

func (h *holds) list() []HeldLock {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]HeldLock, 0, len(h.held))
	for _, v := range h.held {
		out = append(out, v)
	}
	return out
}

// serveLockHold is POST /v1/locks/hold?name=&limit=&ttl=&wait=: it takes
// the lock, answers "held token=N" and keeps the lock while the client
// keeps the response open. The lock is released when the client goes away;
// if the lease is lost, the agent writes "lost" and ends the response.
func (a *Agent) serveLockHold(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	name := q.Get("name")
	opts := locks.AcquireOptions{Limit: 1}
	var err error
	if v := q.Get("limit"); v != "" {
		if opts.Limit, err = strconv.Atoi(v); err != nil || opts.Limit < 1 {
			http.Error(w, "limit: want a positive integer", http.StatusBadRequest)
			return
		}
	}
	for key, dst := range map[string]*time.Duration{"ttl": &opts.TTL, "wait": &opts.Wait} {
		if v := q.Get(key); v != "" {
			if *dst, err = time.ParseDuration(v); err != nil || *dst < 0 {
				http.Error(w, key+": want a duration such as 30s", http.StatusBadRequest)
				return
			}
		}
	}
	if name == "" {
		http.Error(w, "name: required", http.StatusBadRequest)
		return
	}
	// A request still waiting for the lock ends when the agent starts
	// draining, so it does not hold the shutdown up.
	actx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		select {
		case <-a.draining:
			cancel()
		case <-actx.Done():
		}
	}()
	lease, err := a.locker.Acquire(actx, name, opts)
	switch {
	case err != nil && isClosed(a.draining):
		http.Error(w, "the agent is stopping", http.StatusServiceUnavailable)
		return
	case errors.Is(err, locks.ErrTimeout):
		http.Error(w, fmt.Sprintf("lock %s: not acquired within %s", name, opts.Wait), http.StatusConflict)
		return
	case errors.Is(err, locks.ErrInvalid), errors.Is(err, locks.ErrLimitMismatch):
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	case err != nil:
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	a.holds.add(lease)
	defer a.holds.remove(lease)
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintf(w, "held token=%d\n", lease.Token)
	http.NewResponseController(w).Flush()
	select {
	case <-r.Context().Done():
	case <-lease.Lost():
		fmt.Fprintf(w, "lost\n")
		return
	case <-a.draining:
		// The agent is stopping (often because the command holding the
		// lock restarts it). Keep the lease: it is renewed until this
		// process exits and expires one TTL later, so the lock still
		// covers the restart; the client lets its command finish.
		fmt.Fprintf(w, "draining ttl=%s\n", lease.TTL)
		a.log.Info("agent stopping while a lock is held: the lease expires one TTL after exit", "lock", name, "ttl", lease.TTL)
		return
	}
	if err := lease.Release(context.WithoutCancel(r.Context())); err != nil {
		a.log.Warn("release lock", "lock", name, "err", err)
	}
}

// isClosed reports whether ch is closed.
func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}
