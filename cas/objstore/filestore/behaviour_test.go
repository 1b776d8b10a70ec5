package filestore_test

import (
	"errors"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/cas/objstore"
	"github.com/shoal-dev/shoal/cas/objstore/filestore"
)

// tmpEntries returns the names in the store's temporary directory.
func tmpEntries(t *testing.T, root string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(root, ".tmp"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestNewRemovesStaleTemporaryFiles(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	tmp := filepath.Join(root, ".tmp")
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"stale", "fresh"} {
		if err := os.WriteFile(filepath.Join(tmp, name), []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(filepath.Join(tmp, "stale"), old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := filestore.New(root); err != nil {
		t.Fatal(err)
	}
	if got := tmpEntries(t, root); len(got) != 1 || got[0] != "fresh" {
		t.Errorf(".tmp holds %q, want only the fresh file (another writer's)", got)
	}
}

func TestNoTemporaryFilesLeft(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	s, err := filestore.New(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	if err := s.Put(ctx, "ok", strings.NewReader("abc"), 3); err != nil {
		t.Fatal(err)
	}
	if err := s.Put(ctx, "short", strings.NewReader("abc"), 4); err == nil {
		t.Error("short Put succeeded")
	}
	if err := s.Put(ctx, "ok/child", strings.NewReader("abc"), 3); err == nil {
		t.Error("Put under an existing object succeeded")
	}
	if got := tmpEntries(t, root); len(got) != 0 {
		t.Errorf(".tmp holds %q after Puts finished", got)
	}
}

func TestKeysStayInsideRoot(t *testing.T) {
	t.Parallel()
	root := filepath.Join(t.TempDir(), "root")
	s, err := filestore.New(root)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"../escape", "a/../../escape", ".tmp/x", ".tmp"} {
		if err := s.Put(t.Context(), key, strings.NewReader("x"), 1); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(root), "escape")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a key escaped the root: %v", err)
	}
}

func TestDeletePrunesEmptyDirectories(t *testing.T) {
	t.Parallel()
	root := t.TempDir()
	s, err := filestore.New(root)
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	for _, k := range []string{"a/b/c/d", "a/x"} {
		if err := s.Put(ctx, k, strings.NewReader(""), 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, "a/b/c/d"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "a", "b")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("empty directory a/b left behind: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "a", "x")); err != nil {
		t.Errorf("sibling removed: %v", err)
	}
	if err := s.Delete(ctx, "a"); err != nil { // a directory, not an object
		t.Errorf("Delete(prefix) = %v", err)
	}
	if got := s.String(); got != "file://"+filepath.ToSlash(root) {
		t.Errorf("String = %q", got)
	}
}

// TestPutGetStreams checks that a large Put and Get allocate far less than
// the object's size. It does not call t.Parallel: it reads the process's
// allocation counter.
func TestPutGetStreams(t *testing.T) {
	s, err := filestore.New(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const size = 64 << 20
	src := io.LimitReader(rand.NewChaCha8([32]byte{7}), size)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	if err := s.Put(t.Context(), "big", src, size); err != nil {
		t.Fatal(err)
	}
	rc, err := s.Get(t.Context(), "big", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, rc)
	rc.Close()
	runtime.ReadMemStats(&after)
	if err != nil || n != size {
		t.Fatalf("Get copied %d bytes, %v", n, err)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > size/8 {
		t.Errorf("Put and Get of %d bytes allocated %d bytes", size, alloc)
	}
}
