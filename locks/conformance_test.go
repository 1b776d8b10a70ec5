package locks

import (
	"context"
	"errors"
	"testing"
	"time"
)

// lockerSuite runs the Locker conformance cases. newLockers returns fresh
// lockers that share one lock space (several members of one fleet, or one
// local locker several times).
func lockerSuite(t *testing.T, newLockers func(t *testing.T) []Locker) {
	ctx := t.Context()
	type tc struct {
		name string
		run  func(t *testing.T, a, b Locker)
	}
	cases := []tc{
		{"acquire release", func(t *testing.T, a, _ Locker) {
			l, err := a.Acquire(ctx, "x", AcquireOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if l.Token == 0 || l.Name != "x" || l.Limit != 1 {
				t.Fatalf("lease %+v", l)
			}
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if err := l.Release(ctx); !errors.Is(err, ErrNotHeld) {
				t.Fatalf("second release: %v, want ErrNotHeld", err)
			}
			select {
			case <-l.Lost():
			default:
				t.Fatal("Lost not closed after release")
			}
		}},
		{"mutual exclusion", func(t *testing.T, a, b Locker) {
			l1, err := a.Acquire(ctx, "m", AcquireOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := b.Acquire(ctx, "m", AcquireOptions{}); !errors.Is(err, ErrTimeout) {
				t.Fatalf("second holder: %v, want ErrTimeout", err)
			}
			if err := l1.Release(ctx); err != nil {
				t.Fatal(err)
			}
			l2, err := b.Acquire(ctx, "m", AcquireOptions{Wait: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			if l2.Token <= l1.Token {
				t.Fatalf("token did not grow: %d then %d", l1.Token, l2.Token)
			}
			_ = l2.Release(ctx)
		}},
		{"waiter woken on release", func(t *testing.T, a, b Locker) {
			l1, err := a.Acquire(ctx, "w", AcquireOptions{TTL: 2 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			got := make(chan error, 1)
			start := time.Now()
			go func() {
				l2, err := b.Acquire(ctx, "w", AcquireOptions{Wait: 5 * time.Second})
				if err == nil {
					err = l2.Release(ctx)
				}
				got <- err
			}()
			if err := l1.Release(ctx); err != nil {
				t.Fatal(err)
			}
			if err := <-got; err != nil {
				t.Fatal(err)
			}
			if el := time.Since(start); el > 1500*time.Millisecond {
				t.Fatalf("waiter took %v: woken by expiry, not release", el)
			}
		}},
		{"semaphore", func(t *testing.T, a, b Locker) {
			var ls []*Lease
			for i := range 3 {
				l, err := []Locker{a, b}[i%2].Acquire(ctx, "s", AcquireOptions{Limit: 3})
				if err != nil {
					t.Fatal(err)
				}
				if len(ls) > 0 && l.Token <= ls[len(ls)-1].Token {
					t.Fatalf("tokens not increasing")
				}
				ls = append(ls, l)
			}
			if _, err := b.Acquire(ctx, "s", AcquireOptions{Limit: 3}); !errors.Is(err, ErrTimeout) {
				t.Fatalf("fourth holder: %v", err)
			}
			if _, err := b.Acquire(ctx, "s", AcquireOptions{Limit: 2}); !errors.Is(err, ErrLimitMismatch) {
				t.Fatalf("other limit: %v", err)
			}
			for _, l := range ls {
				_ = l.Release(ctx)
			}
		}},
		{"wait times out", func(t *testing.T, a, b Locker) {
			l, err := a.Acquire(ctx, "t", AcquireOptions{})
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			if _, err := b.Acquire(ctx, "t", AcquireOptions{Wait: 200 * time.Millisecond}); !errors.Is(err, ErrTimeout) {
				t.Fatalf("wait: %v", err)
			}
			if el := time.Since(start); el < 200*time.Millisecond {
				t.Fatalf("gave up after %v", el)
			}
			_ = l.Release(ctx)
		}},
		{"context canceled", func(t *testing.T, a, b Locker) {
			l, err := a.Acquire(ctx, "c", AcquireOptions{})
			if err != nil {
				t.Fatal(err)
			}
			cctx, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
			defer cancel()
			if _, err := b.Acquire(cctx, "c", AcquireOptions{Wait: 5 * time.Second}); !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("canceled acquire: %v", err)
			}
			_ = l.Release(ctx)
		}},
		{"lease renews past its TTL", func(t *testing.T, a, b Locker) {
			l, err := a.Acquire(ctx, "r", AcquireOptions{TTL: 1500 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			select {
			case <-l.Lost():
				t.Fatal("lease lost while renewing")
			case <-time.After(3 * time.Second):
			}
			if _, err := b.Acquire(ctx, "r", AcquireOptions{}); !errors.Is(err, ErrTimeout) {
				t.Fatalf("renewed lock taken: %v", err)
			}
			if err := l.Release(ctx); err != nil {
				t.Fatal(err)
			}
		}},
		{"invalid", func(t *testing.T, a, _ Locker) {
			if _, err := a.Acquire(ctx, "", AcquireOptions{}); !errors.Is(err, ErrInvalid) {
				t.Fatalf("empty name: %v", err)
			}
			if _, err := a.Acquire(ctx, "x", AcquireOptions{Limit: -1, TTL: -time.Second}); !errors.Is(err, ErrInvalid) {
				t.Fatalf("negative ttl: %v", err)
			}
		}},
	}
	lockers := newLockers(t)
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.run(t, lockers[0], lockers[len(lockers)-1])
		})
	}
}

func TestLocalConformance(t *testing.T) {
	t.Parallel()
	lockerSuite(t, func(t *testing.T) []Locker {
		cfg := DefaultLocalConfig()
		cfg.TickInterval = 10 * time.Millisecond
		l, err := NewLocal(cfg)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() { defer close(done); _ = l.Run(ctx) }()
		t.Cleanup(func() { cancel(); <-done })
		return []Locker{l, l}
	})
}

func TestServiceConformance(t *testing.T) {
	t.Parallel()
	lockerSuite(t, func(t *testing.T) []Locker {
		f := newLockFleet(t, testServiceConfig())
		f.startGroups(3, 2)
		f.waitSettled(10 * time.Second)
		// g0-n0 is not a proxy; g2-n1 is one: requests travel member →
		// proxy → owner and proxy → owner.
		return []Locker{f.node("g0-n0").svc, f.node("g2-n1").svc}
	})
}
