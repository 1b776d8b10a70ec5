package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/shoal-dev/shoal/agent/outbox"
	"github.com/shoal-dev/shoal/cas"
	"github.com/shoal-dev/shoal/cas/objstore"
)

// queue is what the origin view needs from the replication outbox: the
// newest queued item for a key, and for every key under a prefix.
type queue interface {
	Latest(key string) (outbox.Item, bool)
	LatestUnder(prefix string) []outbox.Item
}

// origin is the object store as this agent sees it: changes it has queued
// for replication but not yet written override what the store says, so a
// push is visible at once and a delete hides the object at once.
type origin struct {
	store objstore.Store
	queue queue
	cas   *cas.Store
}

// Stat returns an object's size.
func (o *origin) Stat(ctx context.Context, key string) (int64, error) {
	if it, ok := o.queue.Latest(key); ok {
		switch {
		case it.Delete:
			return 0, fmt.Errorf("%s: deleted: %w", key, objstore.ErrNotFound)
		case it.Blob != "":
			info, err := o.cas.Stat(ctx, it.Blob)
			if err == nil {
				return info.Size, nil
			}
		default:
			return int64(len(it.Data)), nil
		}
	}
	info, err := o.store.Stat(ctx, key)
	if err != nil {
		return 0, err
	}
	return info.Size, nil
}

// Get reads an object from offset (length < 0: to the end).
func (o *origin) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if it, ok := o.queue.Latest(key); ok {
		switch {
		case it.Delete:
			return nil, fmt.Errorf("%s: deleted: %w", key, objstore.ErrNotFound)
		case it.Blob != "":
			if f, info, err := o.cas.Open(ctx, it.Blob); err == nil {
				return section(f, f, info.Size, offset, length)
			}
		default:
			return section(bytes.NewReader(it.Data), io.NopCloser(nil), int64(len(it.Data)), offset, length)
		}
	}
	return o.store.Get(ctx, key, offset, length)
}

// ReadSmall reads a whole small object, refusing anything over limit bytes.
func (o *origin) ReadSmall(ctx context.Context, key string, limit int64) ([]byte, error) {
	rc, err := o.Get(ctx, key, 0, -1)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, limit+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("read %s: larger than %d bytes", key, limit)
	}
	return b, nil
}

// List returns the keys under prefix in lexical order.
func (o *origin) List(ctx context.Context, prefix string) ([]string, error) {
	keys := map[string]bool{}
	for k, err := range o.store.List(ctx, prefix) {
		if err != nil {
			return nil, err
		}
		keys[k] = true
	}
	for _, it := range o.queue.LatestUnder(prefix) {
		keys[it.Key] = !it.Delete
	}
	out := make([]string, 0, len(keys))
	for k, present := range keys {
		if present {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out, nil
}

// Exists reports whether key exists; a store error other than not-found is returned.
func (o *origin) Exists(ctx context.Context, key string) (bool, error) {
	_, err := o.Stat(ctx, key)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, objstore.ErrNotFound):
		return false, nil
	default:
		return false, err
	}
}

// section limits ra to [offset, offset+length) and closes c when done.
func section(ra io.ReaderAt, c io.Closer, size, offset, length int64) (io.ReadCloser, error) {
	if offset < 0 || offset > size {
		c.Close()
		return nil, fmt.Errorf("offset %d outside object of %d bytes", offset, size)
	}
	if length < 0 || offset+length > size {
		length = size - offset
	}
	return struct {
		io.Reader
		io.Closer
	}{io.NewSectionReader(ra, offset, length), c}, nil
}

// keyRepoName extracts the repository name from a key under repositories/:
// .../manifests/<hex>, .../tags/<tag> or .../referrers/<subject>/<hex>.
func keyRepoName(key string) (string, bool) {
	parts := strings.Split(key, "/")
	n := len(parts)
	if n < 4 || parts[0] != "repositories" {
		return "", false
	}
	switch {
	case parts[n-2] == "manifests" || parts[n-2] == "tags":
		return strings.Join(parts[1:n-2], "/"), true
	case n >= 5 && parts[n-3] == "referrers":
		return strings.Join(parts[1:n-3], "/"), true
	}
	return "", false
}
