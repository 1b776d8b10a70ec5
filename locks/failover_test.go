package locks

import (
	"errors"
	"testing"
	"time"
)

// ownerOf returns the name of the proxy that owns lock in the fleet's view.
func (f *lockFleet) ownerOf(lock string) string {
	o, _ := OwnerProxy(Proxies(f.mm.Members()), lock)
	return o.Name
}

func TestServiceHolderFailureFreesLock(t *testing.T) {
	t.Parallel()
	cfg := testServiceConfig()
	cfg.DefaultTTL, cfg.MaxTTL, cfg.Grace = 3*time.Second, 3*time.Second, 3500*time.Millisecond
	f := newLockFleet(t, cfg)
	f.startGroups(2, 3)
	f.waitSettled(10 * time.Second)
	ctx := t.Context()

	held, err := f.node("g0-n0").svc.Acquire(ctx, "fetch/a", AcquireOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan *Lease, 1)
	go func() {
		l, err := f.node("g1-n0").svc.Acquire(ctx, "fetch/a", AcquireOptions{Wait: 5 * time.Second})
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	// The owner keeps the lease at least until the holder's own deadline:
	// a waiter that gets the lock before it was let in by membership.
	expiry := held.Deadline()
	start := time.Now()
	f.kill("g0-n0")
	l := <-got
	if l == nil {
		t.FailNow()
	}
	if now := time.Now(); !now.Before(expiry) {
		t.Errorf("waiter got the lock %v after the holder failed, not before the lease's expiry", now.Sub(start))
	}
	if l.Token <= held.Token {
		t.Errorf("token %d not above failed holder's %d", l.Token, held.Token)
	}
	_ = l.Release(ctx)
	_ = held.Release(ctx) // stops the crashed holder's renewer
}

func TestServiceProxyFailover(t *testing.T) {
	t.Parallel()
	cfg := testServiceConfig()
	f := newLockFleet(t, cfg)
	f.startGroups(3, 3)
	f.waitSettled(10 * time.Second)
	ctx := t.Context()

	// Pick a lock owned by a proxy outside the holder's group g0.
	lock := ""
	for _, c := range []string{"a", "b", "c", "d", "e", "f", "g", "h"} {
		if o := f.ownerOf(c); o != "g0-n2" {
			lock = c
			break
		}
	}
	owner := f.ownerOf(lock)
	holder := f.node("g0-n0").svc
	l, err := holder.Acquire(ctx, lock, AcquireOptions{})
	if err != nil {
		t.Fatal(err)
	}

	f.kill(owner)
	newOwner := f.ownerOf(lock)
	if newOwner == owner || newOwner == "" {
		t.Fatalf("owner did not move from %s", owner)
	}
	other := f.node("g0-n1").svc
	// In the grace period the new owner grants nothing new...
	if _, err := other.Acquire(ctx, lock, AcquireOptions{}); !errors.Is(err, ErrTimeout) {
		t.Fatalf("acquire during grace: %v", err)
	}
	// ...while the holder re-asserts its lease and keeps it past the TTL.
	select {
	case <-l.Lost():
		t.Fatal("lease lost across failover")
	case <-time.After(cfg.MaxTTL * 3 / 2):
	}
	f.waitSettled(10 * time.Second)
	if _, err := other.Acquire(ctx, lock, AcquireOptions{}); !errors.Is(err, ErrTimeout) {
		t.Fatalf("acquire of a re-asserted lock: %v", err)
	}
	if err := l.Release(ctx); err != nil {
		t.Fatalf("release after failover: %v", err)
	}
	l2, err := other.Acquire(ctx, lock, AcquireOptions{Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if l2.Token <= l.Token {
		t.Fatalf("new owner's token %d not above %d", l2.Token, l.Token)
	}

	// The old proxy comes back: ownership returns to it, the holder
	// re-asserts again, and tokens keep growing.
	f.start(owner, f.mm.View(owner).Self().Group, 2, true)
	if o := f.ownerOf(lock); o != owner {
		t.Fatalf("restarted proxy %s does not own %s again (owner %s)", owner, lock, o)
	}
	select {
	case <-l2.Lost():
		t.Fatal("lease lost across restart of the old owner")
	case <-time.After(cfg.MaxTTL * 3 / 2):
	}
	f.waitSettled(10 * time.Second)
	if err := l2.Release(ctx); err != nil {
		t.Fatal(err)
	}
	l3, err := holder.Acquire(ctx, lock, AcquireOptions{Wait: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if l3.Token <= l2.Token {
		t.Fatalf("restarted owner's token %d not above %d", l3.Token, l2.Token)
	}
	_ = l3.Release(ctx)
}
