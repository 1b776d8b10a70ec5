// Package filestore is an objstore.Store on a local or shared filesystem,
// the embedded default origin (file:///var/lib/shoal/origin).
//
// Each key is a file under the root; writes go to a temporary file that is
// fsynced and renamed into place, so readers (on this host or another one
// sharing the mount) see a whole object or none:
//
//	<root>/
//	├── .tmp/<random>                      writes in progress
//	├── blobs/sha256/<hex>
//	└── repositories/<name>/tags/<tag>
//
// Because keys are paths, a key cannot also be a prefix of another key
// ("a" and "a/b"); the layout in package objstore never needs that.
package filestore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/shoal-dev/shoal/cas/objstore"
)

// tmpDir is the directory under the root that holds writes in progress.
const tmpDir = ".tmp"

// staleAfter is the age after which New removes a leftover temporary file.
// Other agents sharing the mount may be writing younger ones.
const staleAfter = time.Hour

// Store is an objstore.Store rooted at a directory.
type Store struct {
	root string
}

var _ objstore.Store = (*Store)(nil)

// New opens (creating if needed) a store rooted at root and removes
// temporary files older than an hour, left by writers that crashed.
func New(root string) (*Store, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("filestore: root %s: %w", root, err)
	}
	if err := os.MkdirAll(filepath.Join(abs, tmpDir), 0o755); err != nil {
		return nil, fmt.Errorf("filestore: %w", err)
	}
	s := &Store{root: abs}
	if err := s.removeStale(time.Now().Add(-staleAfter)); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Store) removeStale(before time.Time) error {
	dir := filepath.Join(s.root, tmpDir)
	entries, err := os.ReadDir(dir)
	if err != nil {
		return fmt.Errorf("filestore: %w", err)
	}
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !info.ModTime().Before(before) {
			continue
		}
		if err := os.RemoveAll(filepath.Join(dir, e.Name())); err != nil {
			return fmt.Errorf("filestore: remove stale %s: %w", e.Name(), err)
		}
	}
	return nil
}

// String names the store by its URL.
func (s *Store) String() string { return "file://" + filepath.ToSlash(s.root) }

// path validates key and returns its file path.
func (s *Store) path(key string) (string, error) {
	if err := objstore.ValidateKey(key); err != nil {
		return "", err
	}
	if key == tmpDir || strings.HasPrefix(key, tmpDir+"/") {
		return "", fmt.Errorf("%w: %q is reserved", objstore.ErrInvalidKey, key)
	}
	return filepath.Join(s.root, filepath.FromSlash(key)), nil
}

// open validates key, checks ctx and opens the object's file.
func (s *Store) open(ctx context.Context, key string) (*os.File, fs.FileInfo, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, nil, err
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, nil, notFound(key, err)
	}
	info, err := f.Stat()
	if err == nil && !info.Mode().IsRegular() {
		err = fs.ErrNotExist
	}
	if err != nil {
		f.Close()
		return nil, nil, notFound(key, err)
	}
	return f, info, nil
}

// notFound maps a missing file (or a file where a directory should be) to
// objstore.ErrNotFound.
func notFound(key string, err error) error {
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return fmt.Errorf("filestore: %s: %w", key, objstore.ErrNotFound)
	}
	return fmt.Errorf("filestore: %s: %w", key, err)
}

// Stat returns the object's size and modification time.
func (s *Store) Stat(ctx context.Context, key string) (objstore.Info, error) {
	f, info, err := s.open(ctx, key)
	if err != nil {
		return objstore.Info{}, err
	}
	f.Close()
	return objstore.Info{Size: info.Size(), ModTime: info.ModTime()}, nil
}

// Get returns a reader over length bytes from offset (length < 0: to the
// end). The reader keeps the file open, so a concurrent Put or Delete of
// the key does not disturb it. Reads fail once ctx is done.
func (s *Store) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	f, info, err := s.open(ctx, key)
	if err != nil {
		return nil, err
	}
	size := info.Size()
	if offset < 0 || offset > size {
		f.Close()
		return nil, fmt.Errorf("filestore: get %s: offset %d outside object of %d bytes", key, offset, size)
	}
	n := size - offset
	if length >= 0 && length < n {
		n = length
	}
	return &fileReader{
		Reader: objstore.ContextReader(ctx, io.NewSectionReader(f, offset, n)),
		f:      f,
	}, nil
}

type fileReader struct {
	io.Reader
	f *os.File
}

func (r *fileReader) Close() error { return r.f.Close() }
