package outbox

import (
	"sort"
	"strings"

	"go.etcd.io/bbolt"
)

// keyIndex remembers, for every key with queued items, the newest item and
// how many are queued, so readers can see this agent's pending changes
// (a pushed tag, a deleted manifest) before the store does.
type keyIndex struct {
	latest map[string]Item
	count  map[string]int
}

func newKeyIndex() keyIndex {
	return keyIndex{latest: map[string]Item{}, count: map[string]int{}}
}

func (x keyIndex) add(it Item) {
	x.latest[it.Key] = it
	x.count[it.Key]++
}

func (x keyIndex) remove(key string) {
	if x.count[key]--; x.count[key] <= 0 {
		delete(x.count, key)
		delete(x.latest, key)
	}
}

// load fills the index from the queued records.
func (x keyIndex) load(b *bbolt.Bucket) {
	_ = b.ForEach(func(_, v []byte) error {
		if it, err := decodeItem(v); err == nil {
			x.add(it)
		}
		return nil
	})
}

// Latest returns the newest queued item for key, if any is queued.
func (o *Outbox) Latest(key string) (Item, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	it, ok := o.index.latest[key]
	return it, ok
}

// LatestUnder returns the newest queued item of every key under prefix,
// ordered by key.
func (o *Outbox) LatestUnder(prefix string) []Item {
	o.mu.Lock()
	var out []Item
	for k, it := range o.index.latest {
		if strings.HasPrefix(k, prefix) {
			out = append(out, it)
		}
	}
	o.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Key < out[j].Key })
	return out
}
