package observe_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/cas/objstore"
	"github.com/shoal-dev/shoal/cas/objstore/observe"
)

// brokenReader yields data, then fails with err.
type brokenReader struct {
	data string
	err  error
}

func (b *brokenReader) Read(p []byte) (int, error) {
	if b.data == "" {
		return 0, b.err
	}
	n := copy(p, b.data)
	b.data = b.data[n:]
	return n, nil
}

// TestBytes checks that only the bytes actually read from a Get's reader,
// and actually consumed by a Put, are counted.
func TestBytes(t *testing.T) {
	t.Parallel()
	const object = "0123456789"
	unavailable := fmt.Errorf("fake: read: %w", objstore.ErrUnavailable)
	tests := []struct {
		name          string
		store         func() objstore.Store // holds object under "k"
		run           func(t *testing.T, s objstore.Store)
		read, written float64
	}{
		{"get all", memoryWithObject, func(t *testing.T, s objstore.Store) { readN(t, s, 0, -1, -1) }, 10, 0},
		{"get partly, then close", memoryWithObject, func(t *testing.T, s objstore.Store) { readN(t, s, 0, -1, 4) }, 4, 0},
		{"ranged get", memoryWithObject, func(t *testing.T, s objstore.Store) { readN(t, s, 2, 5, -1) }, 5, 0},
		{"get not found", memoryWithObject, func(t *testing.T, s objstore.Store) {
			if _, err := s.Get(t.Context(), "missing", 0, -1); !errors.Is(err, objstore.ErrNotFound) {
				t.Fatalf("Get(missing) = %v", err)
			}
		}, 0, 0},
		{"stream breaks", func() objstore.Store {
			return &fakeStore{get: func(context.Context, string, int64, int64) (io.ReadCloser, error) {
				return io.NopCloser(&brokenReader{"abc", unavailable}), nil
			}}
		}, func(t *testing.T, s objstore.Store) {
			rc, _ := s.Get(t.Context(), "k", 0, -1)
			defer rc.Close()
			if _, err := io.ReadAll(rc); err != unavailable { // identity: never rewritten
				t.Fatalf("read = %v, want %v unchanged", err, unavailable)
			}
		}, 3, 0},
		{"put", memory, func(t *testing.T, s objstore.Store) {
			if err := s.Put(t.Context(), "k", strings.NewReader(object), 10); err != nil {
				t.Fatal(err)
			}
		}, 0, 10},
		{"put fails midway", func() objstore.Store {
			return &fakeStore{put: func(_ context.Context, _ string, r io.Reader, _ int64) error {
				if _, err := io.CopyN(io.Discard, r, 3); err != nil {
					return err
				}
				return unavailable
			}}
		}, func(t *testing.T, s objstore.Store) {
			_ = s.Put(t.Context(), "k", strings.NewReader(object), 10)
		}, 0, 3},
		{"put size mismatch", memory, func(t *testing.T, s objstore.Store) {
			if err := s.Put(t.Context(), "k", strings.NewReader(object), 4); err == nil {
				t.Fatal("Put of 10 bytes declared as 4 succeeded")
			}
		}, 0, 5}, // LimitSize reads the 4 bytes and probes one more
		{"put refused before reading", func() objstore.Store {
			return failing(objstore.ErrReadOnly)
		}, func(t *testing.T, s objstore.Store) {
			_ = s.Put(t.Context(), "k", strings.NewReader(object), 10)
		}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, reg := newMetrics(t)
			tt.run(t, observe.New(tt.store(), "o", m))
			if got := bytesTotal(t, reg, "o", "read"); got != tt.read {
				t.Errorf("bytes{direction=read} = %v, want %v", got, tt.read)
			}
			if got := bytesTotal(t, reg, "o", "written"); got != tt.written {
				t.Errorf("bytes{direction=written} = %v, want %v", got, tt.written)
			}
		})
	}
}

// memoryWithObject returns a memory store holding "0123456789" under "k".
func memoryWithObject() objstore.Store {
	s := objstore.NewMemory()
	if err := s.Put(context.Background(), "k", strings.NewReader("0123456789"), 10); err != nil {
		panic(err)
	}
	return s
}

// readN gets key "k" and reads n bytes of it (n < 0: all), then closes it.
func readN(t *testing.T, s objstore.Store, offset, length, n int64) {
	t.Helper()
	rc, err := s.Get(t.Context(), "k", offset, length)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	defer rc.Close()
	var r io.Reader = rc
	if n >= 0 {
		r = io.LimitReader(rc, n)
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		t.Fatalf("read: %v", err)
	}
}

// memory returns an empty memory store.
func memory() objstore.Store { return objstore.NewMemory() }
