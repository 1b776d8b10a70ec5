package observe_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"iter"
	"testing"
	"testing/synctest"
	"time"

	"github.com/shoal-dev/shoal/cas/objstore"
	"github.com/shoal-dev/shoal/cas/objstore/observe"
)

// TestHealthTransitions runs one store through a sequence of outcomes, a
// second apart in a synctest bubble, checking Health after each.
func TestHealthTransitions(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		start := time.Now()
		at := func(s int) time.Time { return start.Add(time.Duration(s) * time.Second) }
		down := fmt.Errorf("fake: %w: connection refused", objstore.ErrUnavailable)
		broken := fmt.Errorf("fake: read: %w: reset", objstore.ErrUnavailable)
		var next error       // what the next call returns
		var stream io.Reader // what the next Get's reader yields
		fake := &fakeStore{
			stat: func(context.Context, string) (objstore.Info, error) { return objstore.Info{}, next },
			get: func(context.Context, string, int64, int64) (io.ReadCloser, error) {
				if next != nil {
					return nil, next
				}
				return io.NopCloser(stream), nil
			},
			list: func(context.Context, string) iter.Seq2[string, error] {
				return func(yield func(string, error) bool) {
					if next != nil {
						yield("", next)
					}
				}
			},
		}
		s := observe.New(fake, "s3:bucket/prefix", nil)
		steps := []struct {
			name   string
			op     string
			err    error
			stream io.Reader
			want   observe.Health
		}{
			{"unavailable", "stat", down, nil, observe.Health{
				LastError: down.Error(), LastErrorAt: at(1), ConsecutiveFailures: 1}},
			{"another failure", "list", errors.New("boom"), nil, observe.Health{
				LastError: "boom", LastErrorAt: at(2), ConsecutiveFailures: 2}},
			{"cancelled: no change", "stat", context.Canceled, nil, observe.Health{
				LastError: "boom", LastErrorAt: at(2), ConsecutiveFailures: 2}},
			{"not found is a success", "stat", objstore.ErrNotFound, nil, observe.Health{OK: true,
				LastError: "boom", LastErrorAt: at(2), LastSuccessAt: at(4)}},
			{"get answers, then its stream breaks", "get", nil, &brokenReader{"abc", broken}, observe.Health{
				LastError: broken.Error(), LastErrorAt: at(5), LastSuccessAt: at(5), ConsecutiveFailures: 1}},
			{"recovered", "get", nil, eofReader{}, observe.Health{OK: true,
				LastError: broken.Error(), LastErrorAt: at(5), LastSuccessAt: at(6)}},
		}
		if got, want := s.Health(), (observe.Health{Origin: "s3:bucket/prefix", OK: true}); !equal(got, want) {
			t.Errorf("initial Health = %+v, want %+v", got, want)
		}
		for _, st := range steps {
			time.Sleep(time.Second)
			next, stream = st.err, st.stream
			_ = call(t.Context(), s, st.op)
			st.want.Origin = "s3:bucket/prefix"
			if got := s.Health(); !equal(got, st.want) {
				t.Errorf("after %s: Health = %+v, want %+v", st.name, got, st.want)
			}
		}
	})
}

// reportingStore is a fakeStore that also reports its own health, as
// s3store.Store does.
type reportingStore struct {
	*fakeStore
	ok  bool
	err error
	at  time.Time
}

// Health mirrors s3store.Store.Health.
//
//lint:ignore ST1008 the error is data, as in s3store.
func (r *reportingStore) Health() (bool, error, time.Time) { return r.ok, r.err, r.at }

func TestInnerHealth(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	own := errors.New("own failure")
	tests := []struct {
		name    string
		inner   *reportingStore
		ownFail bool // the wrapper saw a failure at t0
		want    observe.Health
	}{
		{"both healthy", &reportingStore{ok: true}, false, observe.Health{OK: true}},
		{"inner unhealthy", &reportingStore{ok: false, err: errors.New("breaker open"), at: t0},
			false, observe.Health{LastError: "breaker open", LastErrorAt: t0}},
		{"inner healthy after an older error", &reportingStore{ok: true, err: errors.New("retried"), at: t0},
			false, observe.Health{OK: true, LastError: "retried", LastErrorAt: t0}},
		{"inner error older than own", &reportingStore{ok: true, err: errors.New("old"), at: t0.Add(-time.Hour)},
			true, observe.Health{LastError: "own failure", LastErrorAt: t0, ConsecutiveFailures: 1}},
		{"inner error newer than own", &reportingStore{ok: false, err: errors.New("new"), at: t0.Add(time.Hour)},
			true, observe.Health{LastError: "new", LastErrorAt: t0.Add(time.Hour), ConsecutiveFailures: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				tt.inner.fakeStore = failing(own)
				s := observe.New(tt.inner, "o", nil)
				if tt.ownFail {
					time.Sleep(time.Until(t0)) // the bubble starts at 2000-01-01
					_ = call(t.Context(), s, "delete")
				}
				tt.want.Origin = "o"
				if got := s.Health(); !equal(got, tt.want) {
					t.Errorf("Health = %+v, want %+v", got, tt.want)
				}
			})
		})
	}
}

// equal compares Healths, times by instant.
func equal(a, b observe.Health) bool {
	return a.LastErrorAt.Equal(b.LastErrorAt) && a.LastSuccessAt.Equal(b.LastSuccessAt) &&
		a.Origin == b.Origin && a.OK == b.OK && a.LastError == b.LastError && a.ConsecutiveFailures == b.ConsecutiveFailures
}
