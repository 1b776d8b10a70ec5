package filestore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/shoal-dev/shoal/cas/objstore"
)

// renameAttempts bounds retries of a rename whose parent directory a
// concurrent Delete pruned.
const renameAttempts = 5

// Put writes r to a temporary file, fsyncs it and renames it to key, so
// readers see the whole object or none. If size >= 0 and r does not hold
// exactly size bytes, nothing is stored.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) (err error) {
	dst, err := s.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.CreateTemp(filepath.Join(s.root, tmpDir), "put-*")
	if err != nil {
		return fmt.Errorf("filestore: put %s: %w", key, err)
	}
	tmp := f.Name()
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(tmp)
		}
	}()
	n, err := io.Copy(f, objstore.LimitSize(objstore.ContextReader(ctx, r), size))
	if err != nil {
		return fmt.Errorf("filestore: put %s: %w", key, err)
	}
	if size >= 0 && n != size {
		return fmt.Errorf("filestore: put %s: read %d bytes, want %d", key, n, size)
	}
	if err := f.Chmod(0o644); err != nil {
		return fmt.Errorf("filestore: put %s: %w", key, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("filestore: put %s: sync: %w", key, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("filestore: put %s: close: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := s.rename(tmp, dst); err != nil {
		return fmt.Errorf("filestore: put %s: %w", key, err)
	}
	return nil
}

// rename moves tmp to dst, creating dst's parents and fsyncing the parent
// directory so the new name survives a crash.
func (s *Store) rename(tmp, dst string) error {
	dir := filepath.Dir(dst)
	var err error
	for range renameAttempts {
		if err = os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		err = os.Rename(tmp, dst)
		if !errors.Is(err, fs.ErrNotExist) {
			break
		}
		// A concurrent Delete pruned dir between MkdirAll and Rename.
	}
	if err != nil {
		return err
	}
	return syncDir(dir)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", dir, err)
	}
	return nil
}

// Delete removes key and prunes directories it leaves empty; a missing key
// is not an error.
func (s *Store) Delete(ctx context.Context, key string) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	if info, err := os.Lstat(p); err == nil && info.IsDir() {
		return nil // a prefix of other keys, not an object
	}
	if err := os.Remove(p); err != nil {
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return nil
		}
		return fmt.Errorf("filestore: delete %s: %w", key, err)
	}
	s.prune(filepath.Dir(p))
	return nil
}

// prune removes dir and its parents up to the root while they are empty.
// Failures (a directory is not empty, or a Put just created it) end it.
func (s *Store) prune(dir string) {
	for dir != s.root && len(dir) > len(s.root) {
		if os.Remove(dir) != nil {
			return
		}
		dir = filepath.Dir(dir)
	}
}
