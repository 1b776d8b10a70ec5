package objstore_test

import (
	"context"
	"errors"
	"io"
	"iter"
	"slices"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/cas/objstore"
	"github.com/shoal-dev/shoal/cas/objstore/objstoretest"
)

// fakeStore answers every read with readErr, every write with writeErr and
// every listing with listErr, unless a function field overrides it.
type fakeStore struct {
	name                       string
	readErr, writeErr, listErr error
	put                        func(ctx context.Context, key string, r io.Reader, size int64) error
}

func (f *fakeStore) String() string { return f.name }

func (f *fakeStore) Stat(context.Context, string) (objstore.Info, error) {
	return objstore.Info{}, f.readErr
}

func (f *fakeStore) Get(context.Context, string, int64, int64) (io.ReadCloser, error) {
	return nil, f.readErr
}

func (f *fakeStore) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if f.put != nil {
		return f.put(ctx, key, r, size)
	}
	return f.writeErr
}

func (f *fakeStore) Delete(context.Context, string) error { return f.writeErr }

func (f *fakeStore) List(context.Context, string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		if f.listErr != nil {
			yield("", f.listErr)
		}
	}
}

// readOnly is an empty read-only store, like a pull-through upstream that
// has nothing.
func readOnly() *fakeStore {
	return &fakeStore{name: "ro", readErr: objstore.ErrNotFound, writeErr: objstore.ErrReadOnly}
}

func unavailable() *fakeStore {
	return &fakeStore{name: "down", readErr: objstore.ErrUnavailable, writeErr: objstore.ErrUnavailable, listErr: objstore.ErrUnavailable}
}

func TestChainConformance(t *testing.T) {
	t.Parallel()
	objstoretest.Run(t, func(*testing.T) objstore.Store {
		return objstore.Chain(readOnly(), objstore.NewMemory())
	})
}

func memWith(t *testing.T, kv ...string) *objstore.Memory {
	t.Helper()
	m := objstore.NewMemory()
	for i := 0; i < len(kv); i += 2 {
		if err := m.Put(t.Context(), kv[i], strings.NewReader(kv[i+1]), int64(len(kv[i+1]))); err != nil {
			t.Fatal(err)
		}
	}
	return m
}

func TestChainReads(t *testing.T) {
	t.Parallel()
	errBoom := errors.New("boom")
	tests := []struct {
		name    string
		stores  func(t *testing.T) []objstore.Store
		want    string
		wantErr error
	}{
		{"first hit wins", func(t *testing.T) []objstore.Store {
			return []objstore.Store{memWith(t, "k", "one"), memWith(t, "k", "two")}
		}, "one", nil},
		{"skips not found", func(t *testing.T) []objstore.Store {
			return []objstore.Store{readOnly(), memWith(t, "k", "two")}
		}, "two", nil},
		{"skips unavailable", func(t *testing.T) []objstore.Store {
			return []objstore.Store{unavailable(), memWith(t, "k", "two")}
		}, "two", nil},
		{"not found", func(t *testing.T) []objstore.Store {
			return []objstore.Store{readOnly(), objstore.NewMemory()}
		}, "", objstore.ErrNotFound},
		{"unavailable wins over not found", func(t *testing.T) []objstore.Store {
			return []objstore.Store{objstore.NewMemory(), unavailable()}
		}, "", objstore.ErrUnavailable},
		{"other errors stop", func(t *testing.T) []objstore.Store {
			return []objstore.Store{&fakeStore{readErr: errBoom}, memWith(t, "k", "two")}
		}, "", errBoom},
		{"empty chain", func(*testing.T) []objstore.Store { return nil }, "", objstore.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := objstore.Chain(tt.stores(t)...)
			info, err := c.Stat(t.Context(), "k")
			if !errors.Is(err, tt.wantErr) || err == nil && info.Size != int64(len(tt.want)) {
				t.Errorf("Stat = %+v, %v; want size %d, %v", info, err, len(tt.want), tt.wantErr)
			}
			rc, err := c.Get(t.Context(), "k", 0, -1)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Get error = %v, want %v", err, tt.wantErr)
			}
			if err == nil {
				defer rc.Close()
				if b, _ := io.ReadAll(rc); string(b) != tt.want {
					t.Errorf("Get = %q, want %q", b, tt.want)
				}
			}
		})
	}
}

func TestChainWrites(t *testing.T) {
	t.Parallel()
	m1, m2 := objstore.NewMemory(), objstore.NewMemory()
	c := objstore.Chain(readOnly(), m1, m2)
	if err := c.Put(t.Context(), "k", strings.NewReader("v"), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := m1.Stat(t.Context(), "k"); err != nil {
		t.Errorf("Put did not reach the first writable store: %v", err)
	}
	if _, err := m2.Stat(t.Context(), "k"); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("Put reached the second writable store: %v", err)
	}
	if err := c.Delete(t.Context(), "k"); err != nil {
		t.Fatal(err)
	}
	if _, err := m1.Stat(t.Context(), "k"); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("Delete did not reach the first writable store: %v", err)
	}

	allRO := objstore.Chain(readOnly(), readOnly())
	if err := allRO.Put(t.Context(), "k", strings.NewReader("v"), 1); !errors.Is(err, objstore.ErrReadOnly) {
		t.Errorf("Put to read-only chain = %v, want ErrReadOnly", err)
	}
	if err := allRO.Delete(t.Context(), "k"); !errors.Is(err, objstore.ErrReadOnly) {
		t.Errorf("Delete from read-only chain = %v, want ErrReadOnly", err)
	}
	if err := objstore.Chain(unavailable(), m1).Put(t.Context(), "k", strings.NewReader("v"), 1); !errors.Is(err, objstore.ErrUnavailable) {
		t.Errorf("Put with an unavailable first store = %v, want ErrUnavailable", err)
	}

	// A store that consumed the stream before refusing cannot be skipped.
	greedy := &fakeStore{name: "greedy", put: func(_ context.Context, _ string, r io.Reader, _ int64) error {
		_, _ = io.ReadFull(r, make([]byte, 1))
		return objstore.ErrReadOnly
	}}
	err := objstore.Chain(greedy, m2).Put(t.Context(), "g", strings.NewReader("vv"), 2)
	if err == nil {
		t.Error("Put after a store consumed the stream succeeded")
	}
	if _, err := m2.Stat(t.Context(), "g"); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("partial stream was stored: %v", err)
	}
}

func TestChainList(t *testing.T) {
	t.Parallel()
	errBoom := errors.New("boom")
	a := memWith(t, "a/1", "", "a/3", "", "b", "")
	b := memWith(t, "a/2", "", "a/3", "", "a/4", "", "c", "")
	tests := []struct {
		name    string
		stores  []objstore.Store
		prefix  string
		want    []string
		wantErr error
	}{
		{"merged", []objstore.Store{a, b}, "", []string{"a/1", "a/2", "a/3", "a/4", "b", "c"}, nil},
		{"prefix", []objstore.Store{b, a}, "a/", []string{"a/1", "a/2", "a/3", "a/4"}, nil},
		{"skips unavailable", []objstore.Store{unavailable(), a}, "a/", []string{"a/1", "a/3"}, nil},
		{"all unavailable", []objstore.Store{unavailable(), unavailable()}, "", nil, objstore.ErrUnavailable},
		{"error", []objstore.Store{a, &fakeStore{listErr: errBoom}}, "", nil, errBoom},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var got []string
			var err error
			for k, e := range objstore.Chain(tt.stores...).List(t.Context(), tt.prefix) {
				if e != nil {
					err = e
					break
				}
				got = append(got, k)
			}
			if !errors.Is(err, tt.wantErr) || !slices.Equal(got, tt.want) {
				t.Errorf("List = %q, %v; want %q, %v", got, err, tt.want, tt.wantErr)
			}
		})
	}
}

func TestChainString(t *testing.T) {
	t.Parallel()
	if got := objstore.Chain(objstore.NewMemory(), readOnly()).String(); got != "chain(memory, ro)" {
		t.Errorf("String = %q", got)
	}
}
