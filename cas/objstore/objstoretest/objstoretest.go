// Package objstoretest is the conformance suite every objstore.Store
// implementation must pass. A backend's test calls Run with a constructor
// that returns an empty store:
//
//	func TestConformance(t *testing.T) {
//		objstoretest.Run(t, func(t *testing.T) objstore.Store { return objstore.NewMemory() })
//	}
package objstoretest

import (
	"bytes"
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/cas/objstore"
)

// Run runs the conformance suite; newStore must return an empty store.
// Subtests run in parallel, each on its own store.
func Run(t *testing.T, newStore func(t *testing.T) objstore.Store) {
	t.Helper()
	tests := []struct {
		name string
		fn   func(t *testing.T, s objstore.Store)
	}{
		{"PutGetStat", testPutGetStat},
		{"RangedGet", testRangedGet},
		{"Overwrite", testOverwrite},
		{"UnknownSize", testUnknownSize},
		{"SizeMismatch", testSizeMismatch},
		{"Delete", testDelete},
		{"NotFound", testNotFound},
		{"List", testList},
		{"ListStop", testListStop},
		{"Layout", testLayout},
		{"InvalidKeys", testInvalidKeys},
		{"Large", testLarge},
		{"ConcurrentPut", testConcurrentPut},
		{"Cancelled", testCancelled},
		{"CancelledPut", testCancelledPut},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, newStore(t))
		})
	}
}

// put stores data under key or fails the test.
func put(t *testing.T, s objstore.Store, key, data string) {
	t.Helper()
	if err := s.Put(t.Context(), key, strings.NewReader(data), int64(len(data))); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

// get reads a range of key or fails the test.
func get(t *testing.T, s objstore.Store, key string, offset, length int64) string {
	t.Helper()
	rc, err := s.Get(t.Context(), key, offset, length)
	if err != nil {
		t.Fatalf("Get(%q, %d, %d): %v", key, offset, length, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatalf("read %q: %v", key, err)
	}
	return string(b)
}

// list collects the keys under prefix or fails the test.
func list(t *testing.T, s objstore.Store, prefix string) []string {
	t.Helper()
	keys := []string{}
	for k, err := range s.List(t.Context(), prefix) {
		if err != nil {
			t.Fatalf("List(%q): %v", prefix, err)
		}
		keys = append(keys, k)
	}
	return keys
}

func testPutGetStat(t *testing.T, s objstore.Store) {
	for _, data := range []string{"hello, world", ""} {
		key := "objects/" + string(rune('a'+len(data)%26))
		put(t, s, key, data)
		info, err := s.Stat(t.Context(), key)
		if err != nil {
			t.Fatalf("Stat: %v", err)
		}
		if info.Size != int64(len(data)) {
			t.Errorf("Stat size = %d, want %d", info.Size, len(data))
		}
		if info.ModTime.IsZero() {
			t.Error("Stat ModTime is zero")
		}
		if got := get(t, s, key, 0, -1); got != data {
			t.Errorf("Get = %q, want %q", got, data)
		}
	}
}

func testRangedGet(t *testing.T, s objstore.Store) {
	const data = "0123456789"
	put(t, s, "r", data)
	tests := []struct {
		offset, length int64
		want           string
		wantErr        bool
	}{
		{offset: 0, length: -1, want: data},
		{offset: 2, length: 3, want: "234"},
		{offset: 5, length: -1, want: "56789"},
		{offset: 7, length: 100, want: "789"},
		{offset: 4, length: 0, want: ""},
		{offset: 10, length: -1, want: ""},
		{offset: 11, length: -1, wantErr: true},
		{offset: -1, length: -1, wantErr: true},
	}
	for _, tt := range tests {
		rc, err := s.Get(t.Context(), "r", tt.offset, tt.length)
		if tt.wantErr {
			if err == nil {
				rc.Close()
				t.Errorf("Get(%d, %d) succeeded, want error", tt.offset, tt.length)
			}
			continue
		}
		if err != nil {
			t.Errorf("Get(%d, %d): %v", tt.offset, tt.length, err)
			continue
		}
		b, err := io.ReadAll(rc)
		rc.Close()
		if err != nil || string(b) != tt.want {
			t.Errorf("Get(%d, %d) = %q, %v; want %q", tt.offset, tt.length, b, err, tt.want)
		}
	}
}

func testOverwrite(t *testing.T, s objstore.Store) {
	put(t, s, "k", "first version")
	put(t, s, "k", "v2")
	if got := get(t, s, "k", 0, -1); got != "v2" {
		t.Errorf("Get = %q, want v2", got)
	}
	if info, err := s.Stat(t.Context(), "k"); err != nil || info.Size != 2 {
		t.Errorf("Stat = %+v, %v; want size 2", info, err)
	}
}

func testUnknownSize(t *testing.T, s objstore.Store) {
	data := strings.Repeat("unknown size ", 10000)
	// A reader that is not a *strings.Reader hides its length.
	r := io.MultiReader(strings.NewReader(data[:5]), strings.NewReader(data[5:]))
	if err := s.Put(t.Context(), "u", r, -1); err != nil {
		t.Fatalf("Put(size -1): %v", err)
	}
	if got := get(t, s, "u", 0, -1); got != data {
		t.Errorf("Get returned %d bytes, want %d", len(got), len(data))
	}
}

func testSizeMismatch(t *testing.T, s objstore.Store) {
	for _, size := range []int64{2, 5} {
		if err := s.Put(t.Context(), "m", strings.NewReader("abc"), size); err == nil {
			t.Errorf("Put of 3 bytes with size %d succeeded", size)
		}
		if _, err := s.Stat(t.Context(), "m"); !errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("after a failed Put, Stat error = %v, want ErrNotFound", err)
		}
	}
}

func testDelete(t *testing.T, s objstore.Store) {
	if err := s.Delete(t.Context(), "never/stored"); err != nil {
		t.Errorf("Delete of a missing key: %v", err)
	}
	put(t, s, "d/x", "x")
	put(t, s, "d/y", "y")
	for range 2 {
		if err := s.Delete(t.Context(), "d/x"); err != nil {
			t.Fatalf("Delete: %v", err)
		}
	}
	if _, err := s.Stat(t.Context(), "d/x"); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("Stat after Delete: %v, want ErrNotFound", err)
	}
	if got := list(t, s, ""); !slices.Equal(got, []string{"d/y"}) {
		t.Errorf("List after Delete = %q, want [d/y]", got)
	}
	// The same key can be written again after it was deleted.
	put(t, s, "d/x", "again")
	if got := get(t, s, "d/x", 0, -1); got != "again" {
		t.Errorf("Get = %q, want again", got)
	}
}

func testNotFound(t *testing.T, s objstore.Store) {
	put(t, s, "present/a", "a")
	for _, key := range []string{"missing", "present/b", "present/a/deeper"} {
		if _, err := s.Stat(t.Context(), key); !errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("Stat(%q) = %v, want ErrNotFound", key, err)
		}
		rc, err := s.Get(t.Context(), key, 0, -1)
		if !errors.Is(err, objstore.ErrNotFound) {
			t.Errorf("Get(%q) = %v, want ErrNotFound", key, err)
		}
		if err == nil {
			rc.Close()
		}
	}
	// A prefix of other keys is not an object.
	if _, err := s.Stat(t.Context(), "present"); !errors.Is(err, objstore.ErrNotFound) {
		t.Errorf("Stat(prefix) = %v, want ErrNotFound", err)
	}
}

func testList(t *testing.T, s objstore.Store) {
	keys := []string{"x/a0", "x/a/c/d", "y/z", "x/a.b", "xx", "x/a/b", "x/a-b", "x/b"}
	for _, k := range keys {
		put(t, s, k, k)
	}
	tests := []struct {
		prefix string
		want   []string
	}{
		{"", []string{"x/a-b", "x/a.b", "x/a/b", "x/a/c/d", "x/a0", "x/b", "xx", "y/z"}},
		{"x/", []string{"x/a-b", "x/a.b", "x/a/b", "x/a/c/d", "x/a0", "x/b"}},
		{"x", []string{"x/a-b", "x/a.b", "x/a/b", "x/a/c/d", "x/a0", "x/b", "xx"}},
		{"x/a/", []string{"x/a/b", "x/a/c/d"}},
		{"x/a/c/d", []string{"x/a/c/d"}},
		{"x/a/c/", []string{"x/a/c/d"}},
		{"nothing/", []string{}},
		{"z", []string{}},
	}
	for _, tt := range tests {
		if got := list(t, s, tt.prefix); !slices.Equal(got, tt.want) {
			t.Errorf("List(%q) = %q, want %q", tt.prefix, got, tt.want)
		}
	}
}

func testListStop(t *testing.T, s objstore.Store) {
	for _, k := range []string{"a/1", "a/2", "b/1", "c"} {
		put(t, s, k, k)
	}
	var got []string
	for k, err := range s.List(t.Context(), "") {
		if err != nil {
			t.Fatalf("List: %v", err)
		}
		got = append(got, k)
		if len(got) == 2 {
			break
		}
	}
	if !slices.Equal(got, []string{"a/1", "a/2"}) {
		t.Errorf("List stopped after %q, want [a/1 a/2]", got)
	}
}

func testInvalidKeys(t *testing.T, s objstore.Store) {
	ctx := t.Context()
	bad := []string{"", "/abs", "trail/", "a//b", "./a", "a/./b", "a/..", "../a", "..",
		`a\b`, "a\x00b", "\xff", strings.Repeat("k", objstore.MaxKeyLength+1)}
	for _, key := range bad {
		if _, err := s.Stat(ctx, key); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("Stat(%q) = %v, want ErrInvalidKey", key, err)
		}
		if rc, err := s.Get(ctx, key, 0, -1); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("Get(%q) = %v, want ErrInvalidKey", key, err)
			if err == nil {
				rc.Close()
			}
		}
		if err := s.Put(ctx, key, strings.NewReader("x"), 1); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("Put(%q) = %v, want ErrInvalidKey", key, err)
		}
		if err := s.Delete(ctx, key); !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("Delete(%q) = %v, want ErrInvalidKey", key, err)
		}
	}
	for _, prefix := range []string{"/", "/a", "../", "a//", "a/../b", "a\x00"} {
		var err error
		for _, e := range s.List(ctx, prefix) {
			err = e
		}
		if !errors.Is(err, objstore.ErrInvalidKey) {
			t.Errorf("List(%q) error = %v, want ErrInvalidKey", prefix, err)
		}
	}
	if got := list(t, s, ""); len(got) != 0 {
		t.Errorf("invalid Puts stored %q", got)
	}
}

func testCancelled(t *testing.T, s objstore.Store) {
	put(t, s, "c", "content")
	ctx, cancel := context.WithCancel(t.Context())
	rc, err := s.Get(ctx, "c", 0, -1)
	if err != nil {
		t.Fatalf("Get: %v", err)
	}
	defer rc.Close()
	cancel()
	if _, err := s.Stat(ctx, "c"); !errors.Is(err, context.Canceled) {
		t.Errorf("Stat = %v, want context.Canceled", err)
	}
	if rc, err := s.Get(ctx, "c", 0, -1); !errors.Is(err, context.Canceled) {
		t.Errorf("Get = %v, want context.Canceled", err)
		if err == nil {
			rc.Close()
		}
	}
	if err := s.Put(ctx, "c2", strings.NewReader("x"), 1); !errors.Is(err, context.Canceled) {
		t.Errorf("Put = %v, want context.Canceled", err)
	}
	if err := s.Delete(ctx, "c"); !errors.Is(err, context.Canceled) {
		t.Errorf("Delete = %v, want context.Canceled", err)
	}
	var listErr error
	for _, err := range s.List(ctx, "") {
		listErr = err
	}
	if !errors.Is(listErr, context.Canceled) {
		t.Errorf("List error = %v, want context.Canceled", listErr)
	}
	if _, err := io.ReadAll(rc); err == nil {
		t.Error("reading a Get body after its context was cancelled succeeded")
	}
	if got := get(t, s, "c", 0, -1); got != "content" {
		t.Errorf("after cancelled calls, Get = %q, want content", got)
	}
}

// cancelReader cancels its context once it has been read from, then keeps
// serving data.
type cancelReader struct {
	r      io.Reader
	cancel context.CancelFunc
}

func (c *cancelReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p[:min(len(p), 1024)])
	c.cancel()
	return n, err
}

func testCancelledPut(t *testing.T, s objstore.Store) {
	put(t, s, "cp", "old")
	data := bytes.Repeat([]byte("new"), 1<<16)
	ctx, cancel := context.WithCancel(t.Context())
	r := &cancelReader{r: bytes.NewReader(data), cancel: cancel}
	if err := s.Put(ctx, "cp", r, int64(len(data))); err == nil {
		t.Fatal("Put whose context was cancelled mid-stream succeeded")
	}
	if got := get(t, s, "cp", 0, -1); got != "old" {
		t.Errorf("after a cancelled Put, Get returned %d bytes, want the old value", len(got))
	}
}
