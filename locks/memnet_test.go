package locks

import (
	"errors"
	"testing"
	"time"
)

// TestMemoryTransportCrashedSendsNothing: a shut-down transport is a
// crashed host: it neither receives nor sends (a leave broadcast from a
// crashed member once marked its restarted self "leaving" for good).
func TestMemoryTransportCrashedSendsNothing(t *testing.T) {
	t.Parallel()
	var mn MemoryNetwork
	a, b := mn.NewTransport("a"), mn.NewTransport("b")
	defer b.Shutdown()
	if _, err := a.WriteTo([]byte("hello"), b.Addr()); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-b.PacketCh():
		if string(p.Buf) != "hello" {
			t.Fatalf("got %q", p.Buf)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("packet from a live transport not delivered")
	}
	if err := a.Shutdown(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.WriteTo([]byte("leaving"), b.Addr()); err != nil {
		t.Fatal(err)
	}
	select {
	case p := <-b.PacketCh():
		t.Fatalf("a shut-down transport sent %q", p.Buf)
	case <-time.After(100 * time.Millisecond):
	}
	if _, err := a.DialTimeout(b.Addr(), time.Second); !errors.Is(err, errUnreachable) {
		t.Fatalf("dial from a shut-down transport: %v, want unreachable", err)
	}
}
