package observe_test

import (
	"context"
	"io"
	"iter"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shoal-dev/shoal/cas/objstore"
	"github.com/shoal-dev/shoal/cas/objstore/observe"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// fakeStore is an objstore.Store whose methods call its fields; a nil
// field succeeds with zero values (List yields nothing).
type fakeStore struct {
	stat func(ctx context.Context, key string) (objstore.Info, error)
	get  func(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
	put  func(ctx context.Context, key string, r io.Reader, size int64) error
	del  func(ctx context.Context, key string) error
	list func(ctx context.Context, prefix string) iter.Seq2[string, error]
}

var _ objstore.Store = (*fakeStore)(nil)

func (f *fakeStore) Stat(ctx context.Context, key string) (objstore.Info, error) {
	if f.stat == nil {
		return objstore.Info{}, nil
	}
	return f.stat(ctx, key)
}

func (f *fakeStore) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if f.get == nil {
		return io.NopCloser(eofReader{}), nil
	}
	return f.get(ctx, key, offset, length)
}

func (f *fakeStore) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	if f.put == nil {
		_, err := io.Copy(io.Discard, r)
		return err
	}
	return f.put(ctx, key, r, size)
}

func (f *fakeStore) Delete(ctx context.Context, key string) error {
	if f.del == nil {
		return nil
	}
	return f.del(ctx, key)
}

func (f *fakeStore) List(ctx context.Context, prefix string) iter.Seq2[string, error] {
	if f.list == nil {
		return func(func(string, error) bool) {}
	}
	return f.list(ctx, prefix)
}

func (f *fakeStore) String() string { return "fake" }

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

// failing returns a store whose every operation fails with err (or
// succeeds if err is nil; List then yields one key).
func failing(err error) *fakeStore {
	return &fakeStore{
		stat: func(context.Context, string) (objstore.Info, error) { return objstore.Info{}, err },
		get: func(context.Context, string, int64, int64) (io.ReadCloser, error) {
			if err != nil {
				return nil, err
			}
			return io.NopCloser(eofReader{}), nil
		},
		put: func(context.Context, string, io.Reader, int64) error { return err },
		del: func(context.Context, string) error { return err },
		list: func(context.Context, string) iter.Seq2[string, error] {
			return func(yield func(string, error) bool) {
				if err != nil {
					yield("", err)
					return
				}
				yield("k", nil)
			}
		},
	}
}

// ops are the operation labels, in the order call knows them.
var ops = []string{"stat", "get", "put", "delete", "list"}

// call runs op on s the way a caller would and returns its error: Get's
// reader is drained and closed, List is ranged over to its first error.
func call(ctx context.Context, s objstore.Store, op string) error {
	switch op {
	case "stat":
		_, err := s.Stat(ctx, "k")
		return err
	case "get":
		rc, err := s.Get(ctx, "k", 0, -1)
		if err != nil {
			return err
		}
		defer rc.Close()
		_, err = io.Copy(io.Discard, rc)
		return err
	case "put":
		return s.Put(ctx, "k", eofReader{}, 0)
	case "delete":
		return s.Delete(ctx, "k")
	case "list":
		for _, err := range s.List(ctx, "") {
			if err != nil {
				return err
			}
		}
		return nil
	}
	panic("unknown op " + op)
}

// newMetrics returns Metrics on a fresh registry.
func newMetrics(t *testing.T) (*observe.Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := observe.NewMetrics(reg)
	if err != nil {
		t.Fatalf("NewMetrics: %v", err)
	}
	return m, reg
}

// histogram returns the sample count and sum of
// shoal_origin_latency_seconds{origin,op}.
func histogram(t *testing.T, reg prometheus.Gatherer, origin, op string) (uint64, float64) {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "shoal_origin_latency_seconds" {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["origin"] == origin && labels["op"] == op {
				h := m.GetHistogram()
				return h.GetSampleCount(), h.GetSampleSum()
			}
		}
	}
	t.Fatalf("no latency series for origin %q op %q", origin, op)
	return 0, 0
}

// requests returns shoal_origin_requests_total{origin,op,result}.
func requests(t *testing.T, reg prometheus.Gatherer, origin, op, result string) float64 {
	t.Helper()
	return counter(t, reg, "shoal_origin_requests_total", "origin", origin, "op", op, "result", result)
}

// bytesTotal returns shoal_origin_bytes_total{origin,direction}.
func bytesTotal(t *testing.T, reg prometheus.Gatherer, origin, direction string) float64 {
	t.Helper()
	return counter(t, reg, "shoal_origin_bytes_total", "origin", origin, "direction", direction)
}

// counter returns the value of the counter name whose labels are the
// name/value pairs kv.
func counter(t *testing.T, reg prometheus.Gatherer, name string, kv ...string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	metrics:
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			for i := 0; i < len(kv); i += 2 {
				if labels[kv[i]] != kv[i+1] {
					continue metrics
				}
			}
			return m.GetCounter().GetValue()
		}
	}
	t.Fatalf("no series %s%q", name, kv)
	return 0
}

// series returns how many series the metric named name has.
func series(t *testing.T, reg prometheus.Gatherer, name string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}
