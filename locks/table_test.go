package locks

import (
	"errors"
	"testing"
	"time"
)

var t0 = time.UnixMilli(1_700_000_000_000)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func req(name, holder string, limit int, queue bool) Request {
	return Request{Name: name, Holder: Holder{Node: holder, ID: holder}, Limit: limit, TTL: time.Second, Queue: queue}
}

func mustAcquire(t *testing.T, tb *Table, now time.Time, r Request) Grant {
	t.Helper()
	g, queued, err := tb.Acquire(now, r)
	if err != nil || queued {
		t.Fatalf("Acquire(%v) = %v, queued %v, %v", r, g, queued, err)
	}
	return g
}

func TestTableMutex(t *testing.T) {
	t.Parallel()
	tb := NewTable()
	g1 := mustAcquire(t, tb, at(0), req("l", "a", 1, false))
	if _, _, err := tb.Acquire(at(1), req("l", "b", 1, false)); !errors.Is(err, ErrTimeout) {
		t.Fatalf("second acquire: %v, want ErrTimeout", err)
	}
	if again := mustAcquire(t, tb, at(2), req("l", "a", 1, false)); again.Token != g1.Token {
		t.Fatalf("idempotent acquire changed token %d -> %d", g1.Token, again.Token)
	}
	other := mustAcquire(t, tb, at(2), req("other", "c", 1, false))
	again := mustAcquire(t, tb, at(2), req("l", "a", 1, false))
	if again.Token <= other.Token {
		t.Fatalf("retried acquire kept token %d below later grant %d", again.Token, other.Token)
	}
	g1 = again
	if _, err := tb.Release(at(3), "l", g1.Token, g1.Holder); err != nil {
		t.Fatal(err)
	}
	if _, err := tb.Release(at(3), "l", g1.Token, g1.Holder); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("double release: %v, want ErrNotHeld", err)
	}
	g2 := mustAcquire(t, tb, at(4), req("l", "b", 1, false))
	if g2.Token <= g1.Token {
		t.Fatalf("token went backwards: %d then %d", g1.Token, g2.Token)
	}
}

func TestTableFIFOWaiters(t *testing.T) {
	t.Parallel()
	tb := NewTable()
	g := mustAcquire(t, tb, at(0), req("l", "a", 1, false))
	for _, h := range []string{"b", "c", "d"} {
		if _, queued, err := tb.Acquire(at(1), req("l", h, 1, true)); !queued || err != nil {
			t.Fatalf("queue %s: queued %v, %v", h, queued, err)
		}
	}
	if !tb.Cancel("l", Holder{"c", "c"}) {
		t.Fatal("cancel c: not queued")
	}
	wakes, err := tb.Release(at(2), "l", g.Token, g.Holder)
	if err != nil || len(wakes) != 1 || wakes[0].Holder.Node != "b" {
		t.Fatalf("release woke %v, %v; want b", wakes, err)
	}
	// A newcomer queues behind d even though it asks without queueing.
	if _, _, err := tb.Acquire(at(3), req("l", "e", 1, false)); !errors.Is(err, ErrTimeout) {
		t.Fatalf("newcomer: %v", err)
	}
	expired, wakes := tb.Expire(at(2 + 1000))
	if len(expired) != 1 || expired[0].Holder.Node != "b" || len(wakes) != 1 || wakes[0].Holder.Node != "d" {
		t.Fatalf("expire: %v woke %v; want b expired, d woken", expired, wakes)
	}
}

func TestTableSemaphore(t *testing.T) {
	t.Parallel()
	tb := NewTable()
	a := mustAcquire(t, tb, at(0), req("s", "a", 2, false))
	mustAcquire(t, tb, at(0), req("s", "b", 2, false))
	if _, _, err := tb.Acquire(at(0), req("s", "c", 2, false)); !errors.Is(err, ErrTimeout) {
		t.Fatalf("third holder: %v", err)
	}
	if _, _, err := tb.Acquire(at(0), req("s", "c", 3, false)); !errors.Is(err, ErrLimitMismatch) {
		t.Fatalf("other limit: %v", err)
	}
	tb.Acquire(at(0), req("s", "c", 2, true))
	wakes, _ := tb.Release(at(1), "s", a.Token, a.Holder)
	if len(wakes) != 1 || wakes[0].Holder.Node != "c" || len(tb.Held("s")) != 2 {
		t.Fatalf("release woke %v, holders %v", wakes, tb.Held("s"))
	}
}

func TestTableRenewAndExpire(t *testing.T) {
	t.Parallel()
	tb := NewTable()
	g := mustAcquire(t, tb, at(0), req("l", "a", 1, false))
	if _, err := tb.Renew(at(900), g); err != nil {
		t.Fatal(err)
	}
	if exp, _ := tb.Expire(at(1500)); len(exp) != 0 {
		t.Fatalf("renewed lease expired: %v", exp)
	}
	if exp, _ := tb.Expire(at(1900)); len(exp) != 1 {
		t.Fatalf("lease did not expire: %v", exp)
	}
	if _, err := tb.Renew(at(2000), g); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("renew after expiry: %v", err)
	}
	if tb.Len() != 0 {
		t.Fatalf("table keeps %d empty locks", tb.Len())
	}
}

func TestTableDropNode(t *testing.T) {
	t.Parallel()
	tb := NewTable()
	mustAcquire(t, tb, at(0), req("l", "a", 1, false))
	tb.Acquire(at(0), req("l", "a2", 1, true))
	tb.Acquire(at(0), req("l", "b", 1, true))
	r := req("l", "a", 1, true)
	r.Holder.ID = "other"
	tb.Acquire(at(0), r)
	dropped, wakes := tb.DropNode(at(1), "a")
	if len(dropped) != 1 {
		t.Fatalf("dropped %v", dropped)
	}
	var granted, failed []string
	for _, w := range wakes {
		if w.Err != nil {
			failed = append(failed, w.Holder.ID)
		} else {
			granted = append(granted, w.Holder.Node)
		}
	}
	if len(failed) != 1 || failed[0] != "other" || len(granted) != 1 || granted[0] != "a2" {
		t.Fatalf("wakes %v", wakes)
	}
}

func TestTableGraceAndReassert(t *testing.T) {
	t.Parallel()
	old := NewTable()
	old.BeginGrace(at(0), at(0), 0, nil)
	g := mustAcquire(t, old, at(10), req("l", "a", 1, false))
	s1 := mustAcquire(t, old, at(10), req("s", "a", 2, false))

	// A new owner takes over 5 ms later (its clock); it grants nothing new
	// until the grace period ends, but accepts re-assertions.
	nw := NewTable()
	nw.BeginGrace(at(5), at(2000), 0, func(name string) bool { return name != "free" })
	if _, _, err := nw.Acquire(at(20), req("l", "b", 1, false)); !errors.Is(err, ErrGrace) {
		t.Fatalf("acquire in grace: %v", err)
	}
	if _, queued, _ := nw.Acquire(at(20), req("l", "b", 1, true)); !queued {
		t.Fatal("queued acquire in grace not queued")
	}
	mustAcquire(t, nw, at(20), req("free", "b", 1, false)) // not moved: no grace
	if _, err := nw.Renew(at(30), g); err != nil {
		t.Fatalf("re-assert: %v", err)
	}
	if _, err := nw.Renew(at(30), s1); err != nil {
		t.Fatalf("re-assert semaphore: %v", err)
	}
	dup := g
	dup.Holder = Holder{"x", "x"}
	if _, err := nw.Renew(at(31), dup); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("re-assert of a taken token: %v", err)
	}
	if nw.LastToken() < g.Token || nw.LastToken() < s1.Token {
		t.Fatalf("last token %d below re-asserted %d", nw.LastToken(), g.Token)
	}
	// Grace ends: b stays queued behind the re-asserted holder, then wins
	// with a token above every earlier one.
	if _, err := nw.Renew(at(1500), g); err != nil {
		t.Fatalf("renew re-asserted lease: %v", err)
	}
	_, wakes := nw.Expire(at(2000))
	if len(wakes) != 0 {
		t.Fatalf("woke %v while l is held", wakes)
	}
	wakes, err := nw.Release(at(2001), "l", g.Token, g.Holder)
	if err != nil || len(wakes) != 1 || wakes[0].Grant.Token <= s1.Token {
		t.Fatalf("release: %v %v", wakes, err)
	}
	late := s1
	late.Holder = Holder{"y", "y"}
	if _, err := nw.Renew(at(2002), late); !errors.Is(err, ErrNotHeld) {
		t.Fatalf("re-assert after grace: %v", err)
	}
}

func TestTableEpochOrdersOwners(t *testing.T) {
	t.Parallel()
	a := NewTable()
	a.BeginGrace(at(0), at(0), 0, nil)
	var last uint64
	for i := range 100 {
		g := mustAcquire(t, a, at(1), req("l", string(rune('a'+i%26))+string(rune(i)), 100, false))
		last = g.Token
	}
	// A successor whose clock reads only 1 ms later still starts above.
	b := NewTable()
	b.BeginGrace(at(1), at(1), 0, nil)
	if g := mustAcquire(t, b, at(2), req("m", "z", 1, false)); g.Token <= last {
		t.Fatalf("successor token %d not above %d", g.Token, last)
	}
	// Repeated grace periods within one millisecond still advance the epoch.
	before := b.LastToken()
	e := b.BeginGrace(at(1), at(1), 0, nil)
	if b.LastToken() <= before {
		t.Fatal("epoch did not advance")
	}
	// A successor whose clock lags still starts above the epoch it was
	// told of (the predecessor's advertised epoch plus one).
	c := NewTable()
	c.BeginGrace(at(-60_000), at(-60_000), e+1, nil)
	if g := mustAcquire(t, c, at(-59_000), req("m", "y", 1, false)); g.Token <= b.LastToken() {
		t.Fatalf("lagging successor's token %d not above %d", g.Token, b.LastToken())
	}
}

func TestTableDropUnowned(t *testing.T) {
	t.Parallel()
	tb := NewTable()
	mustAcquire(t, tb, at(0), req("mine", "a", 1, false))
	mustAcquire(t, tb, at(0), req("theirs", "a", 1, false))
	tb.Acquire(at(0), req("theirs", "b", 1, true))
	wakes := tb.DropUnowned(func(n string) bool { return n == "mine" })
	if len(wakes) != 1 || !errors.Is(wakes[0].Err, ErrNotOwner) || tb.Len() != 1 {
		t.Fatalf("wakes %v, len %d", wakes, tb.Len())
	}
}

func TestTableInvalid(t *testing.T) {
	t.Parallel()
	tb := NewTable()
	for _, r := range []Request{
		{Name: "", Limit: 1, TTL: time.Second},
		{Name: "x", Limit: 0, TTL: time.Second},
		{Name: "x", Limit: 1, TTL: 0},
	} {
		if _, _, err := tb.Acquire(at(0), r); !errors.Is(err, ErrInvalid) {
			t.Errorf("Acquire(%+v) = %v, want ErrInvalid", r, err)
		}
	}
}

func TestTableRaiseEpoch(t *testing.T) {
	t.Parallel()
	tb := NewTable()
	e := tb.BeginGrace(at(0), at(0), 0, nil)
	if tb.RaiseEpoch(e) || tb.RaiseEpoch(e-1) {
		t.Fatal("raised to an epoch not above the current one")
	}
	if !tb.RaiseEpoch(e+10) || tb.Epoch() != e+10 {
		t.Fatalf("epoch %d after raise to %d", tb.Epoch(), e+10)
	}
	if g := mustAcquire(t, tb, at(1), req("l", "a", 1, false)); g.Token>>epochShift != e+10 {
		t.Fatalf("token %d not in raised epoch %d", g.Token, e+10)
	}
}

func TestTableGraceUntil(t *testing.T) {
	tb := NewTable()
	if u := tb.GraceUntil(at(0)); !u.IsZero() {
		t.Fatalf("GraceUntil with no grace = %v, want zero", u)
	}
	tb.BeginGrace(at(0), at(100), 0, nil)
	tb.BeginGrace(at(10), at(300), 0, func(string) bool { return false })
	if u := tb.GraceUntil(at(50)); !u.Equal(at(300)) {
		t.Fatalf("GraceUntil = %v, want the later end %v", u, at(300))
	}
	if u := tb.GraceUntil(at(300)); !u.IsZero() {
		t.Fatalf("GraceUntil after every grace = %v, want zero", u)
	}
}
