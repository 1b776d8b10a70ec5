package locks

import (
	"context"
	"fmt"
	"sync"
	"time"
)

// tableServer serialises access to a [Table] and parks queued requests
// until the table wakes them. It is the owner side of both lockers.
type tableServer struct {
	mu    sync.Mutex
	table *Table
	waits map[Holder]chan Wake
}

func newTableServer() *tableServer {
	return &tableServer{table: NewTable(), waits: make(map[Holder]chan Wake)}
}

// deliver hands wakes to their parked requests. Callers hold s.mu.
func (s *tableServer) deliver(wakes []Wake) {
	for _, w := range wakes {
		if ch := s.waits[w.Holder]; ch != nil {
			delete(s.waits, w.Holder)
			ch <- w
		}
	}
}

// acquire grants r, waiting up to wait in the FIFO queue. It also returns
// how long the request waited before the grant, by the table's clock: a
// client adds that to its send time to bound the lease conservatively.
func (s *tableServer) acquire(ctx context.Context, r Request, wait time.Duration) (Grant, time.Duration, error) {
	start := time.Now()
	r.Queue = wait > 0
	s.mu.Lock()
	g, queued, err := s.table.Acquire(start, r)
	if err != nil || !queued {
		s.mu.Unlock()
		return g, 0, err
	}
	if old := s.waits[r.Holder]; old != nil {
		old <- Wake{Holder: r.Holder, Name: r.Name, Err: fmt.Errorf("acquire %s: superseded by a retry: %w", r.Name, ErrTimeout)}
	}
	ch := make(chan Wake, 1)
	s.waits[r.Holder] = ch
	s.mu.Unlock()

	timer := time.NewTimer(wait)
	defer timer.Stop()
	var (
		w     Wake
		woken bool
	)
	select {
	case w = <-ch:
		woken = true
	case <-timer.C:
	case <-ctx.Done():
	}
	if !woken {
		s.mu.Lock()
		if s.waits[r.Holder] == ch {
			delete(s.waits, r.Holder)
			s.table.Cancel(r.Name, r.Holder)
			s.mu.Unlock()
			if err := ctx.Err(); err != nil {
				return Grant{}, 0, fmt.Errorf("acquire %s: %w", r.Name, err)
			}
			return Grant{}, 0, fmt.Errorf("acquire %s: waited %v: %w", r.Name, wait, ErrTimeout)
		}
		s.mu.Unlock()
		w = <-ch // woken while we gave up: take what it says
	}
	if w.Err != nil {
		return Grant{}, 0, w.Err
	}
	if ctx.Err() != nil {
		// Nobody is left to hold the grant.
		_ = s.release(w.Grant)
		return Grant{}, 0, fmt.Errorf("acquire %s: %w", r.Name, ctx.Err())
	}
	granted := w.Grant.Expires.Add(-w.Grant.TTL)
	return w.Grant, max(0, granted.Sub(start)), nil
}

func (s *tableServer) renew(a Grant) (Grant, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.table.Renew(time.Now(), a)
}

func (s *tableServer) release(g Grant) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	wakes, err := s.table.Release(time.Now(), g.Name, g.Token, g.Holder)
	s.deliver(wakes)
	return err
}

// tick expires leases and ends grace periods; it returns the expired grants.
func (s *tableServer) tick() []Grant {
	s.mu.Lock()
	defer s.mu.Unlock()
	expired, wakes := s.table.Expire(time.Now())
	s.deliver(wakes)
	return expired
}

func (s *tableServer) dropNode(node string) []Grant {
	s.mu.Lock()
	defer s.mu.Unlock()
	dropped, wakes := s.table.DropNode(time.Now(), node)
	s.deliver(wakes)
	return dropped
}

func (s *tableServer) dropUnowned(owned func(string) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deliver(s.table.DropUnowned(owned))
}

func (s *tableServer) beginGrace(d time.Duration, minEpoch uint64, moved func(string) bool) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := time.Now()
	return s.table.BeginGrace(now, now.Add(d), minEpoch, moved)
}

// graceUntil is Table.GraceUntil now.
func (s *tableServer) graceUntil() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.table.GraceUntil(time.Now())
}

// raiseEpoch raises the epoch to at least e and returns the epoch now.
func (s *tableServer) raiseEpoch(e uint64) (uint64, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	raised := s.table.RaiseEpoch(e)
	return s.table.Epoch(), raised
}

// run ticks the table every interval until ctx ends.
func (s *tableServer) run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			s.tick()
		}
	}
}
