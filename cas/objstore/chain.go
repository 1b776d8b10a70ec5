package objstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"slices"
	"strings"
)

// chain is the Store Chain returns.
type chain struct {
	stores []Store
}

// Chain combines stores, first hit wins. Stat and Get try each store in
// order, skipping those that return ErrNotFound or ErrUnavailable; if none
// has the key the error wraps ErrUnavailable when any store was
// unavailable, ErrNotFound otherwise. Put and Delete go to the first store
// that does not return ErrReadOnly (a read-only store must refuse a Put
// before reading from r). List merges every store's keys, dropping
// duplicates, in lexical order; a store that is unavailable is left out of
// the listing, which fails with ErrUnavailable only if every store is.
func Chain(stores ...Store) Store {
	if len(stores) == 1 {
		return stores[0]
	}
	return &chain{stores: stores}
}

func (c *chain) String() string {
	names := make([]string, len(c.stores))
	for i, s := range c.stores {
		names[i] = s.String()
	}
	return "chain(" + strings.Join(names, ", ") + ")"
}

// read runs op on each store until one answers with something other than
// ErrNotFound or ErrUnavailable.
func read[T any](c *chain, key string, op func(Store) (T, error)) (T, error) {
	var zero T
	var unavailable error
	for _, s := range c.stores {
		v, err := op(s)
		switch {
		case err == nil:
			return v, nil
		case errors.Is(err, ErrUnavailable):
			if unavailable == nil {
				unavailable = err
			}
		case !errors.Is(err, ErrNotFound):
			return zero, err
		}
	}
	if unavailable != nil {
		return zero, fmt.Errorf("%s: %s: %w", c, key, unavailable)
	}
	return zero, fmt.Errorf("%s: %s: %w", c, key, ErrNotFound)
}

func (c *chain) Stat(ctx context.Context, key string) (Info, error) {
	return read(c, key, func(s Store) (Info, error) { return s.Stat(ctx, key) })
}

func (c *chain) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	return read(c, key, func(s Store) (io.ReadCloser, error) { return s.Get(ctx, key, offset, length) })
}

func (c *chain) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	cr := &countReader{r: r}
	for _, s := range c.stores {
		err := s.Put(ctx, key, cr, size)
		if !errors.Is(err, ErrReadOnly) {
			return err
		}
		if cr.n > 0 {
			return fmt.Errorf("%s: put %s: %s read %d bytes, then refused: %w", c, key, s, cr.n, err)
		}
	}
	return fmt.Errorf("%s: put %s: %w", c, key, ErrReadOnly)
}

func (c *chain) Delete(ctx context.Context, key string) error {
	for _, s := range c.stores {
		if err := s.Delete(ctx, key); !errors.Is(err, ErrReadOnly) {
			return err
		}
	}
	return fmt.Errorf("%s: delete %s: %w", c, key, ErrReadOnly)
}

type countReader struct {
	r io.Reader
	n int64
}

func (c *countReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// List merges the stores' sorted listings.
func (c *chain) List(ctx context.Context, prefix string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		type head struct {
			next func() (string, error, bool)
			stop func()
			key  string
			ok   bool
			// unavailable is set once the store failed with ErrUnavailable.
			unavailable error
		}
		heads := make([]*head, 0, len(c.stores))
		defer func() {
			for _, h := range heads {
				h.stop()
			}
		}()
		// advance moves h to its next key; it returns false with an error
		// that ends the listing.
		advance := func(h *head) error {
			k, err, ok := h.next()
			switch {
			case !ok:
				h.ok = false
			case errors.Is(err, ErrUnavailable):
				h.unavailable, h.ok = err, false
			case err != nil:
				return err
			default:
				h.key, h.ok = k, true
			}
			return nil
		}
		for _, s := range c.stores {
			next, stop := iter.Pull2(s.List(ctx, prefix))
			h := &head{next: next, stop: stop}
			heads = append(heads, h)
			if err := advance(h); err != nil {
				yield("", err)
				return
			}
		}
		if len(heads) > 0 && !slices.ContainsFunc(heads, func(h *head) bool { return h.unavailable == nil }) {
			yield("", fmt.Errorf("%s: list %s: %w", c, prefix, heads[0].unavailable))
			return
		}
		for {
			var minKey string
			found := false
			for _, h := range heads {
				if h.ok && (!found || h.key < minKey) {
					minKey, found = h.key, true
				}
			}
			if !found {
				return
			}
			if !yield(minKey, nil) {
				return
			}
			for _, h := range heads {
				if h.ok && h.key == minKey {
					if err := advance(h); err != nil {
						yield("", err)
						return
					}
				}
			}
		}
	}
}
