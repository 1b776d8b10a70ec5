package outbox

import (
	"encoding/binary"
	"slices"
	"strings"

	"go.etcd.io/bbolt"
)

// keyIndex remembers, for every key with queued items, the newest item and
// the sequences queued for it, so readers can see this agent's pending
// changes (a pushed tag, a deleted manifest) before the store does.
//
// Items are added by a commit handler, which runs after bbolt released its
// lock: the worker may replicate and remove an item before its handler
// ran, and handlers of consecutive commits may run in either order. So
// entries carry their sequence, the newest sequence wins, and a removal
// that arrives first leaves a tombstone the late add consumes.
type keyIndex struct {
	keys    map[uint64]string // queued sequence → key
	latest  map[string]indexed
	count   map[string]int
	removed map[uint64]struct{} // removed before their add arrived
}

type indexed struct {
	seq  uint64
	item Item
}

func newKeyIndex() keyIndex {
	return keyIndex{
		keys:    map[uint64]string{},
		latest:  map[string]indexed{},
		count:   map[string]int{},
		removed: map[uint64]struct{}{},
	}
}

func (x keyIndex) add(seq uint64, it Item) {
	if _, ok := x.removed[seq]; ok {
		delete(x.removed, seq)
		return
	}
	x.keys[seq] = it.Key
	x.count[it.Key]++
	if cur, ok := x.latest[it.Key]; !ok || seq > cur.seq {
		x.latest[it.Key] = indexed{seq: seq, item: it}
	}
}

func (x keyIndex) remove(seq uint64) {
	key, ok := x.keys[seq]
	if !ok {
		x.removed[seq] = struct{}{}
		return
	}
	delete(x.keys, seq)
	if x.count[key]--; x.count[key] > 0 {
		return
	}
	delete(x.count, key)
	delete(x.latest, key)
}

// load fills the index from the queued records.
func (x keyIndex) load(b *bbolt.Bucket) {
	_ = b.ForEach(func(k, v []byte) error {
		if it, err := decodeItem(v); err == nil && len(k) == 8 {
			x.add(binary.BigEndian.Uint64(k), it)
		}
		return nil
	})
}

// Latest returns the newest queued item for key, if any is queued.
func (o *Outbox) Latest(key string) (Item, bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	e, ok := o.index.latest[key]
	return e.item, ok
}

// LatestUnder returns the newest queued item of every key under prefix,
// ordered by key.
func (o *Outbox) LatestUnder(prefix string) []Item {
	o.mu.Lock()
	var out []Item
	for k, e := range o.index.latest {
		if strings.HasPrefix(k, prefix) {
			out = append(out, e.item)
		}
	}
	o.mu.Unlock()
	slices.SortFunc(out, func(a, b Item) int { return strings.Compare(a.Key, b.Key) })
	return out
}
