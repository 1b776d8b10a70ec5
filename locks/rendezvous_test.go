package locks

import (
	"fmt"
	"slices"
	"testing"
)

func TestOwnerStableAndBalanced(t *testing.T) {
	t.Parallel()
	nodes := []string{"a", "b", "c", "d", "e"}
	counts := map[string]int{}
	const keys = 5000
	for i := range keys {
		k := fmt.Sprintf("fetch/sha256:%d", i)
		o, ok := Owner(nodes, k)
		if !ok {
			t.Fatal("no owner")
		}
		// Order of candidates must not matter.
		rev := slices.Clone(nodes)
		slices.Reverse(rev)
		if o2, _ := Owner(rev, k); o2 != o {
			t.Fatalf("owner of %s depends on order: %s vs %s", k, o, o2)
		}
		counts[o]++
	}
	for n, c := range counts {
		if c < keys/len(nodes)*7/10 || c > keys/len(nodes)*13/10 {
			t.Errorf("node %s owns %d of %d keys: unbalanced", n, c, keys)
		}
	}
}

func TestOwnerMinimalMovement(t *testing.T) {
	t.Parallel()
	before := []string{"a", "b", "c", "d"}
	after := []string{"a", "b", "d"} // c removed
	for i := range 2000 {
		k := fmt.Sprintf("k%d", i)
		o1, _ := Owner(before, k)
		o2, _ := Owner(after, k)
		if o1 != "c" && o1 != o2 {
			t.Fatalf("key %s moved from %s to %s though %s stayed", k, o1, o2, o1)
		}
	}
	if _, ok := Owner(nil, "k"); ok {
		t.Fatal("Owner with no candidates reported an owner")
	}
}
