package agent

import (
	"fmt"
	"testing"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/opencontainers/go-digest"
)

func TestShunList(t *testing.T) {
	now := time.Unix(1000, 0)
	s := newShunList()
	s.now = func() time.Time { return now }
	d1, d2 := digest.FromString("one"), digest.FromString("two")
	provs := []peer.AddrInfo{{ID: "a"}, {ID: "b"}, {ID: "c"}}
	ids := func(ps []peer.AddrInfo) string { return fmt.Sprint(ps) }

	s.add(d1, "b")
	if got := s.filter(d1, provs); len(got) != 2 || got[0].ID != "a" || got[1].ID != "c" {
		t.Fatalf("filter(d1) = %s, want a and c", ids(got))
	}
	if got := s.filter(d2, provs); len(got) != 3 {
		t.Fatalf("filter(d2) = %s: a shun for one blob left out a provider of another", ids(got))
	}
	now = now.Add(shunFor - time.Second)
	if got := s.filter(d1, provs); len(got) != 2 {
		t.Fatalf("filter(d1) before expiry = %s", ids(got))
	}
	now = now.Add(2 * time.Second)
	if got := s.filter(d1, provs); len(got) != 3 {
		t.Fatalf("filter(d1) after expiry = %s, want all three", ids(got))
	}
	s.add(d2, "a")
	if _, ok := s.until[d1]; ok {
		t.Fatal("expired entries were not pruned")
	}
}

func TestShunListBounded(t *testing.T) {
	now := time.Unix(1000, 0)
	s := newShunList()
	s.now = func() time.Time { return now }
	first := digest.FromString("0")
	for i := range maxShunned + 10 {
		s.add(digest.FromString(fmt.Sprint(i)), "p")
		now = now.Add(time.Millisecond)
	}
	if n := len(s.until); n > maxShunned {
		t.Fatalf("%d digests remembered, want at most %d", n, maxShunned)
	}
	if _, ok := s.until[first]; ok {
		t.Fatal("the oldest digest was kept over newer ones")
	}
	last := digest.FromString(fmt.Sprint(maxShunned + 9))
	if got := s.filter(last, []peer.AddrInfo{{ID: "p"}}); len(got) != 0 {
		t.Fatal("the newest shun was dropped")
	}
}
