package observe_test

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/cas/objstore"
	"github.com/shoal-dev/shoal/cas/objstore/observe"
)

// rewindReader yields its data again after every Close, so one value
// serves every Get without allocating.
type rewindReader struct {
	data string
	r    strings.Reader
}

func (r *rewindReader) Read(p []byte) (int, error) { return r.r.Read(p) }
func (r *rewindReader) Close() error               { r.r.Reset(r.data); return nil }

// TestGetAllocs keeps the Get path allocation-light: the only allocation
// a Get, its reads and Close add is the counting reader. Not parallel:
// testing.AllocsPerRun counts the whole process's allocations.
func TestGetAllocs(t *testing.T) {
	rc := &rewindReader{data: "0123456789"}
	rc.r.Reset(rc.data)
	m, _ := newMetrics(t)
	s := observe.New(&fakeStore{get: func(context.Context, string, int64, int64) (io.ReadCloser, error) {
		return rc, nil
	}}, "o", m)
	buf := make([]byte, 4)
	ctx := t.Context()
	allocs := testing.AllocsPerRun(100, func() {
		r, err := s.Get(ctx, "k", 0, -1)
		if err != nil {
			t.Fatal(err)
		}
		for {
			if _, err := r.Read(buf); err != nil {
				break
			}
		}
		r.Close()
	})
	if allocs > 1 {
		t.Errorf("Get, Read, Close allocate %v times, want at most 1", allocs)
	}
}

// BenchmarkGet compares a Get of a 64 KiB object from a memory store
// through the wrapper with the same Get without it.
func BenchmarkGet(b *testing.B) {
	data := strings.Repeat("x", 64<<10)
	mem := objstore.NewMemory()
	if err := mem.Put(b.Context(), "k", strings.NewReader(data), int64(len(data))); err != nil {
		b.Fatal(err)
	}
	m, err := observe.NewMetrics(nil)
	if err != nil {
		b.Fatal(err)
	}
	for _, bb := range []struct {
		name string
		s    objstore.Store
	}{
		{"memory", mem},
		{"observed", observe.New(mem, "o", m)},
	} {
		b.Run(bb.name, func(b *testing.B) {
			buf := make([]byte, 32<<10)
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			for b.Loop() {
				rc, err := bb.s.Get(b.Context(), "k", 0, -1)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.CopyBuffer(io.Discard, struct{ io.Reader }{rc}, buf); err != nil {
					b.Fatal(err)
				}
				rc.Close()
			}
		})
	}
}
