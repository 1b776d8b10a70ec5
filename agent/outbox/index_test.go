package outbox

import "testing"

// TestKeyIndexOrdering covers commit handlers that run late or out of
// order: the newest sequence wins and an early removal is not lost.
func TestKeyIndexOrdering(t *testing.T) {
	t.Parallel()
	x := newKeyIndex()
	x.add(2, Item{Key: "k", Data: []byte("two")})
	x.add(1, Item{Key: "k", Data: []byte("one")}) // older commit's handler ran late
	if e := x.latest["k"]; string(e.item.Data) != "two" {
		t.Errorf("latest = %q, want two", e.item.Data)
	}
	x.remove(1)
	if _, ok := x.latest["k"]; !ok {
		t.Error("key dropped while item 2 is queued")
	}
	x.remove(2)
	if _, ok := x.latest["k"]; ok {
		t.Error("key still indexed after its items were removed")
	}

	// The worker removed item 3 before its commit handler added it.
	x.remove(3)
	x.add(3, Item{Key: "j"})
	if _, ok := x.latest["j"]; ok {
		t.Error("item removed before its add stayed in the index")
	}
	if len(x.keys) != 0 || len(x.count) != 0 || len(x.removed) != 0 {
		t.Errorf("index not empty: %+v", x)
	}
}
