package cas

import (
	"sync"

	"github.com/opencontainers/go-digest"
)

// keyLocks serializes the operations that change whether and how one digest
// is committed (commit, delete, eviction, pin, state), without making
// operations on different digests wait for each other.
type keyLocks struct {
	mu sync.Mutex
	m  map[digest.Digest]*keyLock
}

type keyLock struct {
	mu   sync.Mutex
	refs int
}

// lock locks d and returns the function that unlocks it.
func (k *keyLocks) lock(d digest.Digest) (unlock func()) {
	k.mu.Lock()
	if k.m == nil {
		k.m = make(map[digest.Digest]*keyLock)
	}
	l := k.m[d]
	if l == nil {
		l = &keyLock{}
		k.m[d] = l
	}
	l.refs++
	k.mu.Unlock()

	l.mu.Lock()
	return func() {
		l.mu.Unlock()
		k.mu.Lock()
		l.refs--
		if l.refs == 0 {
			delete(k.m, d)
		}
		k.mu.Unlock()
	}
}
