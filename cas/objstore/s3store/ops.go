package s3store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/shoal-dev/shoal/cas/objstore"
)

// listPage is the number of keys List asks for per request.
const listPage = 1000

// object validates key and returns its object name in the bucket.
func (s *Store) object(key string) (string, error) {
	if err := objstore.ValidateKey(key); err != nil {
		return "", err
	}
	return s.prefix + key, nil
}

// Stat returns the object's size and modification time.
func (s *Store) Stat(ctx context.Context, key string) (objstore.Info, error) {
	name, err := s.object(key)
	if err != nil {
		return objstore.Info{}, err
	}
	var info minio.ObjectInfo
	err = s.do(ctx, call{op: "stat " + key, retry: true}, func(ctx context.Context) error {
		var err error
		info, err = s.client.StatObject(ctx, s.bucket, name, minio.StatObjectOptions{})
		return err
	})
	if err != nil {
		return objstore.Info{}, err
	}
	return objstore.Info{Size: info.Size, ModTime: info.LastModified}, nil
}

// Get returns a reader over length bytes from offset (length < 0: to the
// end) with one ranged GET. Options.Timeout bounds the wait for the
// response and every pause in the body; reads fail once ctx is done.
func (s *Store) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	name, err := s.object(key)
	if err != nil {
		return nil, err
	}
	if offset < 0 {
		return nil, fmt.Errorf("s3store: get %s: negative offset %d", key, offset)
	}
	if length == 0 {
		// S3 has no empty range; check the offset against the size.
		return s.emptyAt(ctx, key, offset)
	}
	var opts minio.GetObjectOptions
	switch {
	case length > 0:
		err = opts.SetRange(offset, offset+length-1)
	case offset > 0:
		err = opts.SetRange(offset, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("s3store: get %s: %w", key, err)
	}
	var body *bodyReader
	err = s.do(ctx, call{op: "get " + key, retry: true, untimed: true, keep: true}, func(actx context.Context) error {
		cancel := attemptOf(actx).cancel
		w := newWatchdog(s.opts.Timeout, cancel)
		rc, _, _, err := minio.Core{Client: s.client}.GetObject(actx, s.bucket, name, opts)
		w.stop()
		if err != nil {
			return err
		}
		body = &bodyReader{ctx: ctx, rc: rc, watchdog: w, cancel: cancel, key: key}
		return nil
	})
	var resp minio.ErrorResponse
	if errors.As(err, &resp) && resp.Code == "InvalidRange" {
		// The offset is at or past the end; at the end is an empty read.
		return s.emptyAt(ctx, key, offset)
	}
	if err != nil {
		return nil, err
	}
	return body, nil
}

// emptyAt returns an empty reader if offset is within key's size (or at
// its end), and an error otherwise.
func (s *Store) emptyAt(ctx context.Context, key string, offset int64) (io.ReadCloser, error) {
	info, err := s.Stat(ctx, key)
	if err != nil {
		return nil, err
	}
	if offset > info.Size {
		return nil, fmt.Errorf("s3store: get %s: offset %d outside object of %d bytes", key, offset, info.Size)
	}
	return io.NopCloser(strings.NewReader("")), nil
}

// Delete removes key; deleting a missing key is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	name, err := s.object(key)
	if err != nil {
		return err
	}
	err = s.do(ctx, call{op: "delete " + key, retry: true}, func(ctx context.Context) error {
		return s.client.RemoveObject(ctx, s.bucket, name, minio.RemoveObjectOptions{})
	})
	if errors.Is(err, objstore.ErrNotFound) {
		return nil
	}
	return err
}

// List yields the keys under prefix in lexical order, fetching pages of
// listPage keys; each page is one request with its own timeout, retries
// and breaker check, and resumes after the last key yielded.
func (s *Store) List(ctx context.Context, prefix string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		if err := objstore.ValidatePrefix(prefix); err != nil {
			yield("", err)
			return
		}
		after := ""
		for {
			keys, last, err := s.listPage(ctx, prefix, after)
			if err != nil {
				yield("", err)
				return
			}
			for _, k := range keys {
				if err := ctx.Err(); err != nil {
					yield("", fmt.Errorf("s3store: list %s: %w", prefix, err))
					return
				}
				if !yield(k, nil) {
					return
				}
			}
			if last == "" {
				return
			}
			after = last
		}
	}
}

// listPage returns the keys under prefix that sort after after ("" for
// the first page), from one page of up to listPage objects. last is the
// page's last object name if the listing may go on, else "".
func (s *Store) listPage(ctx context.Context, prefix, after string) (keys []string, last string, err error) {
	fetchOwner := false
	opts := minio.ListObjectsOptions{
		Prefix:     s.prefix + prefix,
		Recursive:  true,
		MaxKeys:    listPage,
		FetchOwner: &fetchOwner,
		StartAfter: after,
	}
	err = s.do(ctx, call{op: "list " + prefix, retry: true}, func(ctx context.Context) error {
		keys, last = keys[:0], ""
		n := 0
		for obj := range s.client.ListObjectsIter(ctx, s.bucket, opts) {
			if obj.Err != nil {
				return obj.Err
			}
			if k, ok := strings.CutPrefix(obj.Key, s.prefix); ok && objstore.ValidateKey(k) == nil {
				keys = append(keys, k)
			} // else not a key this store could have written
			if n++; n == listPage {
				last = obj.Key
				break
			}
		}
		// The iterator ends silently when its context is done.
		return ctx.Err()
	})
	return keys, last, err
}
