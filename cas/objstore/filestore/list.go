package filestore

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/shoal-dev/shoal/cas/objstore"
)

// List yields the keys under prefix in lexical order. It walks only the
// directories that can hold such keys, sorting each directory's entries as
// keys sort: a directory "a" as "a/", so "a.b" < "a/x" < "a0".
func (s *Store) List(ctx context.Context, prefix string) iter.Seq2[string, error] {
	return func(yield func(string, error) bool) {
		if err := objstore.ValidatePrefix(prefix); err != nil {
			yield("", err)
			return
		}
		if _, err := s.walk(ctx, "", prefix, yield); err != nil {
			yield("", err)
		}
	}
}

// walk lists the directory holding keys that start with dirKey ("" or
// ending in "/"). It returns false when yield asked to stop.
func (s *Store) walk(ctx context.Context, dirKey, prefix string, yield func(string, error) bool) (bool, error) {
	if err := ctx.Err(); err != nil {
		return false, err
	}
	entries, err := os.ReadDir(filepath.Join(s.root, filepath.FromSlash(dirKey)))
	if errors.Is(err, fs.ErrNotExist) {
		return true, nil // pruned by a concurrent Delete
	}
	if err != nil {
		return false, fmt.Errorf("filestore: list %s: %w", prefix, err)
	}
	type entry struct {
		key string
		dir bool
	}
	keys := make([]entry, 0, len(entries))
	for _, e := range entries {
		if dirKey == "" && e.Name() == tmpDir {
			continue
		}
		k := entry{key: dirKey + e.Name()}
		switch {
		case e.IsDir():
			k.key, k.dir = k.key+"/", true
			if !strings.HasPrefix(k.key, prefix) && !strings.HasPrefix(prefix, k.key) {
				continue
			}
		case e.Type().IsRegular():
			if !strings.HasPrefix(k.key, prefix) {
				continue
			}
		default:
			continue
		}
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b entry) int { return strings.Compare(a.key, b.key) })
	for _, k := range keys {
		if k.dir {
			if more, err := s.walk(ctx, k.key, prefix, yield); !more || err != nil {
				return more, err
			}
			continue
		}
		if err := ctx.Err(); err != nil {
			return false, err
		}
		if !yield(k.key, nil) {
			return false, nil
		}
	}
	return true, nil
}
