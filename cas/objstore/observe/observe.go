// Package observe wraps an objstore.Store to measure it: request counts by
// result, latency, bytes moved, and a health summary for the status page.
//
// Wrap each origin on its own, before combining them with objstore.Chain,
// so that every origin gets its own series and Health:
//
//	m, err := observe.NewMetrics(reg)
//	s := observe.New(backend, "s3:bucket/prefix", m)
//
// The wrapper is transparent: it returns the wrapped store's values and
// errors unchanged, and String is the wrapped store's. The name labels the
// series and is shown by Health; the caller chooses it, so it must carry no
// credentials.
package observe

import (
	"context"
	"errors"
	"io"
	"iter"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/shoal-dev/shoal/cas/objstore"
)

// op is an objstore.Store operation, the op label.
type op uint8

const (
	opStat op = iota
	opGet
	opPut
	opDelete
	opList
	numOps
)

var opNames = [numOps]string{"stat", "get", "put", "delete", "list"}

// result classifies a call's error, the result label.
type result uint8

const (
	resultOK result = iota
	resultNotFound
	resultUnavailable
	resultError
	numResults
)

var resultNames = [numResults]string{"ok", "not_found", "unavailable", "error"}

// classify maps err to its result. An error that wraps both sentinels
// counts as unavailable: the origin could not say whether the key exists.
func classify(err error) result {
	switch {
	case err == nil:
		return resultOK
	case errors.Is(err, objstore.ErrUnavailable):
		return resultUnavailable
	case errors.Is(err, objstore.ErrNotFound):
		return resultNotFound
	default:
		return resultError
	}
}

// Store is an objstore.Store that measures the Store it wraps.
type Store struct {
	s    objstore.Store
	name string

	// Series resolved once by New, so a call only touches atomics.
	requests      [numOps][numResults]prometheus.Counter
	latency       [numOps]prometheus.Observer
	read, written prometheus.Counter

	mu     sync.Mutex
	health Health // Origin and OK are filled in by Health
}

var _ objstore.Store = (*Store)(nil)

// New wraps s; name labels its metrics (e.g. the redacted origin URL or
// "s3:bucket/prefix"). A nil m records health only.
func New(s objstore.Store, name string, m *Metrics) *Store {
	if m == nil {
		m, _ = NewMetrics(nil) // nothing to register, cannot fail
	}
	o := &Store{s: s, name: name}
	for op := range numOps {
		for r := range numResults {
			o.requests[op][r] = m.requests.WithLabelValues(name, opNames[op], resultNames[r])
		}
		o.latency[op] = m.latency.WithLabelValues(name, opNames[op])
	}
	o.read = m.bytes.WithLabelValues(name, "read")
	o.written = m.bytes.WithLabelValues(name, "written")
	return o
}

// Unwrap returns the wrapped Store.
func (s *Store) Unwrap() objstore.Store { return s.s }

// String is the wrapped store's String.
func (s *Store) String() string { return s.s.String() }

// Stat implements objstore.Store.
func (s *Store) Stat(ctx context.Context, key string) (objstore.Info, error) {
	start := time.Now()
	info, err := s.s.Stat(ctx, key)
	s.done(opStat, time.Since(start), err)
	return info, err
}

// Get implements objstore.Store. Its latency ends when the wrapped Get
// returns the reader; the bytes read from it are counted as they are read.
func (s *Store) Get(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	start := time.Now()
	rc, err := s.s.Get(ctx, key, offset, length)
	s.done(opGet, time.Since(start), err)
	if err != nil {
		return rc, err
	}
	return &getReader{rc: rc, s: s}, nil
}

// Put implements objstore.Store, counting the bytes the wrapped Put reads
// from r.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64) error {
	start := time.Now()
	err := s.s.Put(ctx, key, &putReader{r: r, n: s.written}, size)
	s.done(opPut, time.Since(start), err)
	return err
}

// Delete implements objstore.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	start := time.Now()
	err := s.s.Delete(ctx, key)
	s.done(opDelete, time.Since(start), err)
	return err
}

// List implements objstore.Store. Each iteration of the returned sequence
// is one request: its result is that of the first error yielded (ok if
// none, also when the caller stops early), its latency the time spent
// producing keys, not the time the caller spends on them. A sequence never
// iterated is not counted.
func (s *Store) List(ctx context.Context, prefix string) iter.Seq2[string, error] {
	seq := s.s.List(ctx, prefix)
	return func(yield func(string, error) bool) {
		start := time.Now()
		var caller time.Duration
		var first error
		for k, err := range seq {
			if err != nil && first == nil {
				first = err
			}
			t := time.Now()
			more := yield(k, err)
			caller += time.Since(t)
			if !more {
				break
			}
		}
		s.done(opList, time.Since(start)-caller, first)
	}
}

// done records a finished call.
func (s *Store) done(op op, d time.Duration, err error) {
	r := classify(err)
	s.requests[op][r].Inc()
	s.latency[op].Observe(d.Seconds())
	s.record(r, err)
}

// getReader counts the bytes read from a Get's reader and reports the
// first failure of the stream to Health.
type getReader struct {
	rc     io.ReadCloser
	s      *Store
	failed bool
}

func (g *getReader) Read(p []byte) (int, error) {
	n, err := g.rc.Read(p)
	if n > 0 {
		g.s.read.Add(float64(n))
	}
	if err != nil && !g.failed && !errors.Is(err, io.EOF) {
		g.failed = true
		if r := classify(err); r != resultNotFound {
			g.s.record(r, err)
		}
	}
	return n, err
}

func (g *getReader) Close() error { return g.rc.Close() }

// putReader counts the bytes a Put consumes.
type putReader struct {
	r io.Reader
	n prometheus.Counter
}

func (p *putReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	if n > 0 {
		p.n.Add(float64(n))
	}
	return n, err
}
