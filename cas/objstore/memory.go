package objstore

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"iter"
	"slices"
	"strings"
	"sync"
	"time"
)

// Memory is an in-memory Store for tests and the simulator. It is safe for
// concurrent use. Objects are immutable once stored: Put replaces the value.
type Memory struct {
	mu      sync.RWMutex
	objects map[string]memObject
}

type memObject struct {
	data    []byte
	modTime time.Time
}

var _ Store = (*Memory)(nil)

// NewMemory returns an empty in-memory Store.
func NewMemory() *Memory {
	return &Memory{objects: make(map[string]memObject)}
}

func (m *Memory) lookup(ctx context.Context, key string) (memObject, error) {
	if err := ValidateKey(key); err != nil {
		return memObject{}, err
	}
	if err := ctx.Err(); err != nil {
		return memObject{}, err
	}
	m.mu.RLock()
	obj, ok := m.objects[key]
	m.mu.RUnlock()
	if !ok {
		return memObject{}, fmt.Errorf("memory: %s: %w", key, ErrNotFound)
	}
	return obj, nil
}

// Stat returns the object's size and modification time.
func (m *Memory) Stat(ctx context.Context, key string) (Info, error) {
	obj, err := m.lookup(ctx, key)
	if err != nil {
		return Info{}, err
	}
	return Info{Size: int64(len(obj.data)), ModTime: obj.modTime}, nil
}

// Get returns a reader over length bytes from offset (length < 0: to the
// end). Reads fail once ctx is done.
func (m *Memory) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	obj, err := m.lookup(ctx, key)
	if err != nil {
		return nil, err
	}
	n, err := rangeLength(int64(len(obj.data)), offset, length)
	if err != nil {
		return nil, fmt.Errorf("memory: get %s: %w", key, err)
	}
	r := bytes.NewReader(obj.data[offset : offset+n])
	return io.NopCloser(ContextReader(ctx, r)), nil
}

// rangeLength returns how many bytes a read of length bytes at offset
// yields from an object of size bytes.
func rangeLength(size, offset, length int64) (int64, error) {
	if offset < 0 || offset > size {
		return 0, fmt.Errorf("offset %d outside object of %d bytes", offset, size)
	}
	n := size - offset
	if length >= 0 && length < n {
		n = length
	}
	return n, nil
}

// Put reads r to the end and stores it under key. If size >= 0 and r does
// not hold exactly size bytes, nothing is stored.
func (m *Memory) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	var buf bytes.Buffer
	if size > 0 {
		buf.Grow(int(size))
	}
	n, err := buf.ReadFrom(LimitSize(ContextReader(ctx, r), size))
	if err != nil {
		return fmt.Errorf("memory: put %s: %w", key, err)
	}
	if size >= 0 && n != size {
		return fmt.Errorf("memory: put %s: read %d bytes, want %d", key, n, size)
	}
	m.mu.Lock()
	m.objects[key] = memObject{data: buf.Bytes(), modTime: time.Now()}
	m.mu.Unlock()
	return nil
}

// Delete removes key; a missing key is not an error.
func (m *Memory) Delete(ctx context.Context, key string) error {
	if err := ValidateKey(key); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	delete(m.objects, key)
	m.mu.Unlock()
	return nil
}

// List yields the keys under prefix in lexical order, from a snapshot taken
// when iteration starts.
func (m *Memory) List(ctx context.Context, prefix string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		if err := ValidatePrefix(prefix); err != nil {
			yield("", err)
			return
		}
		m.mu.RLock()
		var keys []string
		for k := range m.objects {
			if strings.HasPrefix(k, prefix) {
				keys = append(keys, k)
			}
		}
		m.mu.RUnlock()
		slices.Sort(keys)
		for _, k := range keys {
			if err := ctx.Err(); err != nil {
				yield("", err)
				return
			}
			if !yield(k, nil) {
				return
			}
		}
		if err := ctx.Err(); err != nil {
			yield("", err)
		}
	}
}

// String names the store.
func (m *Memory) String() string { return "memory" }
