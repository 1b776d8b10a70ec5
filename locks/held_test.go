package locks

import (
	"errors"
	"slices"
	"testing"
	"time"
)

// A try-once acquire of a held lock names the holder, so that a host that
// wanted to do the work once for everyone can go to the one doing it.
func TestTableHeldNamesHolders(t *testing.T) {
	t.Parallel()
	tb := NewTable()
	mustAcquire(t, tb, at(0), req("l", "a", 2, false))
	mustAcquire(t, tb, at(0), req("l", "b", 2, false))
	_, _, err := tb.Acquire(at(1), req("l", "c", 2, false))
	var held *HeldError
	if !errors.As(err, &held) || !errors.Is(err, ErrTimeout) {
		t.Fatalf("acquire of a full semaphore: %v, want a HeldError matching ErrTimeout", err)
	}
	if got := slices.Sorted(slices.Values(held.Holders)); !slices.Equal(got, []string{"a", "b"}) {
		t.Fatalf("holders %v, want [a b]", got)
	}
}

// Across the fleet, the HeldError survives the RPC to the owning proxy
// (and a forward through a member that is not the owner).
func TestServiceHeldNamesHolder(t *testing.T) {
	t.Parallel()
	f := newLockFleet(t, testServiceConfig())
	f.startGroups(2, 3)
	f.waitSettled(10 * time.Second)
	ctx := t.Context()

	l, err := f.node("g0-n1").svc.Acquire(ctx, "fetch/held", AcquireOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(ctx)
	for _, asker := range []string{"g0-n2", "g1-n1", "g1-n0"} {
		_, err := f.node(asker).svc.Acquire(ctx, "fetch/held", AcquireOptions{})
		var held *HeldError
		if !errors.As(err, &held) || !errors.Is(err, ErrTimeout) {
			t.Fatalf("%s: try-once acquire of a held lock: %v, want a HeldError", asker, err)
		}
		if !slices.Equal(held.Holders, []string{"g0-n1"}) {
			t.Fatalf("%s: holders %v, want [g0-n1]", asker, held.Holders)
		}
	}
	// Waiting acquires are unchanged: they queue, and time out plainly.
	_, err = f.node("g1-n2").svc.Acquire(ctx, "fetch/held", AcquireOptions{Wait: 200 * time.Millisecond})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("waiting acquire: %v, want ErrTimeout", err)
	}
}
