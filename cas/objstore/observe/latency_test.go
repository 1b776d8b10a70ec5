package observe_test

import (
	"context"
	"io"
	"iter"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shoal-dev/shoal/cas/objstore"
	"github.com/shoal-dev/shoal/cas/objstore/observe"
)

// slowReader sleeps before every Read.
type slowReader struct {
	r io.Reader
	d time.Duration
}

func (s *slowReader) Read(p []byte) (int, error) {
	time.Sleep(s.d)
	return s.r.Read(p)
}

// TestLatency checks what each op's latency covers, in a synctest bubble
// where sleeps take exactly their time: the wrapped call only, not the
// reading of a Get's body nor the caller's work between listed keys.
func TestLatency(t *testing.T) {
	t.Parallel()
	const call, caller = 5 * time.Millisecond, time.Second
	slow := &fakeStore{
		stat: func(context.Context, string) (objstore.Info, error) { time.Sleep(call); return objstore.Info{}, nil },
		get: func(context.Context, string, int64, int64) (io.ReadCloser, error) {
			time.Sleep(call)
			return io.NopCloser(&slowReader{strings.NewReader("body"), caller}), nil
		},
		put: func(_ context.Context, _ string, r io.Reader, _ int64) error {
			time.Sleep(call)
			_, err := io.Copy(io.Discard, r)
			return err
		},
		del: func(context.Context, string) error { time.Sleep(call); return objstore.ErrNotFound },
		list: func(context.Context, string) iter.Seq2[string, error] {
			return func(yield func(string, error) bool) {
				for _, k := range []string{"a", "b", "c", "d", "e"} {
					time.Sleep(call / 5)
					if !yield(k, nil) {
						return
					}
				}
			}
		},
	}
	tests := []struct {
		op  string
		run func(t *testing.T, s objstore.Store)
	}{
		{"stat", func(t *testing.T, s objstore.Store) { _, _ = s.Stat(t.Context(), "k") }},
		{"get", func(t *testing.T, s objstore.Store) {
			rc, err := s.Get(t.Context(), "k", 0, -1)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			if _, err := io.Copy(io.Discard, rc); err != nil {
				t.Fatal(err)
			}
		}},
		{"put", func(t *testing.T, s objstore.Store) {
			_ = s.Put(t.Context(), "k", &slowReader{strings.NewReader("x"), 0}, 1)
		}},
		{"delete", func(t *testing.T, s objstore.Store) { _ = s.Delete(t.Context(), "k") }},
		{"list", func(t *testing.T, s objstore.Store) {
			for range s.List(t.Context(), "") {
				time.Sleep(caller)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.op, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				m, reg := newMetrics(t)
				s := observe.New(slow, "o", m)
				tt.run(t, s)
				n, sum := histogram(t, reg, "o", tt.op)
				if n != 1 || sum != call.Seconds() {
					t.Errorf("latency{op=%s} = %d observations summing to %vs, want 1 of %vs", tt.op, n, sum, call.Seconds())
				}
			})
		})
	}
}

// TestListEarlyStop checks a listing the caller stops early is one ok
// request, and one that is never ranged over is none.
func TestListEarlyStop(t *testing.T) {
	t.Parallel()
	m, reg := newMetrics(t)
	s := observe.New(objstore.NewMemory(), "o", m)
	for _, k := range []string{"a", "b", "c"} {
		if err := s.Put(t.Context(), k, strings.NewReader(k), 1); err != nil {
			t.Fatal(err)
		}
	}
	_ = s.List(t.Context(), "")
	for range s.List(t.Context(), "") {
		break
	}
	if got := requests(t, reg, "o", "list", "ok"); got != 1 {
		t.Errorf("requests{op=list,result=ok} = %v, want 1", got)
	}
}
