package observe_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	"github.com/shoal-dev/shoal/cas/objstore"
	"github.com/shoal-dev/shoal/cas/objstore/objstoretest"
	"github.com/shoal-dev/shoal/cas/objstore/observe"
)

// TestConformance shows the wrapper is transparent: a wrapped store still
// passes the suite.
func TestConformance(t *testing.T) {
	t.Parallel()
	m, _ := newMetrics(t)
	objstoretest.Run(t, func(t *testing.T) objstore.Store {
		return observe.New(objstore.NewMemory(), t.Name(), m)
	})
}

func TestResults(t *testing.T) {
	t.Parallel()
	other := errors.New("disk on fire")
	tests := []struct {
		name   string
		err    error
		result string
		// failure is whether Health counts the call as a failure.
		failure bool
	}{
		{"ok", nil, "ok", false},
		{"not found", fmt.Errorf("fake: k: %w", objstore.ErrNotFound), "not_found", false},
		{"unavailable", fmt.Errorf("fake: k: %w", objstore.ErrUnavailable), "unavailable", true},
		{"both sentinels", fmt.Errorf("fake: %w: %w", objstore.ErrNotFound, objstore.ErrUnavailable), "unavailable", true},
		{"other", other, "error", true},
		{"cancelled", fmt.Errorf("fake: %w", context.Canceled), "error", false},
		{"deadline", fmt.Errorf("fake: %w", context.DeadlineExceeded), "error", true},
		{"read-only", fmt.Errorf("fake: %w", objstore.ErrReadOnly), "error", false},
		{"invalid key", fmt.Errorf("fake: %w", objstore.ErrInvalidKey), "error", false},
	}
	for _, tt := range tests {
		for _, op := range ops {
			t.Run(tt.name+"/"+op, func(t *testing.T) {
				t.Parallel()
				m, reg := newMetrics(t)
				s := observe.New(failing(tt.err), "origin-a", m)
				// Errors pass through as the very same value, unwrapped.
				if err := call(t.Context(), s, op); err != tt.err { // identity: never rewritten
					t.Fatalf("%s error = %v, want %v unchanged", op, err, tt.err)
				}
				for _, r := range []string{"ok", "not_found", "unavailable", "error"} {
					want := 0.0
					if r == tt.result {
						want = 1
					}
					if got := requests(t, reg, "origin-a", op, r); got != want {
						t.Errorf("requests{op=%s,result=%s} = %v, want %v", op, r, got, want)
					}
				}
				if n, _ := histogram(t, reg, "origin-a", op); n != 1 {
					t.Errorf("latency{op=%s} has %d observations, want 1", op, n)
				}
				h := s.Health()
				if h.OK == tt.failure || (h.ConsecutiveFailures == 1) != tt.failure {
					t.Errorf("Health = %+v, want failure %v", h, tt.failure)
				}
				if tt.failure && h.LastError != tt.err.Error() {
					t.Errorf("Health.LastError = %q, want %q", h.LastError, tt.err.Error())
				}
				if success := !tt.failure && !strings.Contains(tt.result, "error"); success == h.LastSuccessAt.IsZero() {
					t.Errorf("Health.LastSuccessAt = %v after a %s call", h.LastSuccessAt, tt.result)
				}
			})
		}
	}
}

// TestSeries checks every series exists from New on, so rates start at
// zero, and that the metrics pass promlint.
func TestSeries(t *testing.T) {
	t.Parallel()
	m, reg := newMetrics(t)
	observe.New(objstore.NewMemory(), "a", m)
	observe.New(objstore.NewMemory(), "b", m)
	tests := []struct {
		metric string
		want   int
	}{
		{"shoal_origin_requests_total", 2 * 5 * 4},
		{"shoal_origin_latency_seconds", 2 * 5},
		{"shoal_origin_bytes_total", 2 * 2},
	}
	for _, tt := range tests {
		t.Run(tt.metric, func(t *testing.T) {
			t.Parallel()
			if got := series(t, reg, tt.metric); got != tt.want {
				t.Errorf("%s has %d series, want %d", tt.metric, got, tt.want)
			}
		})
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	if problems, err := promlint.NewWithMetricFamilies(mfs).Lint(); err != nil || len(problems) > 0 {
		t.Errorf("lint: %v %+v", err, problems)
	}
}

func TestNewMetrics(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"same registry twice shares the series", func(t *testing.T) {
			reg := prometheus.NewRegistry()
			m1, err := observe.NewMetrics(reg)
			if err != nil {
				t.Fatal(err)
			}
			m2, err := observe.NewMetrics(reg)
			if err != nil {
				t.Fatalf("second NewMetrics: %v", err)
			}
			_ = call(t.Context(), observe.New(objstore.NewMemory(), "a", m1), "delete")
			_ = call(t.Context(), observe.New(objstore.NewMemory(), "a", m2), "delete")
			if got := requests(t, reg, "a", "delete", "ok"); got != 2 {
				t.Errorf("requests = %v, want 2", got)
			}
		}},
		{"nil registry, registered later", func(t *testing.T) {
			m, err := observe.NewMetrics(nil)
			if err != nil {
				t.Fatal(err)
			}
			_ = call(t.Context(), observe.New(objstore.NewMemory(), "a", m), "stat")
			reg := prometheus.NewRegistry()
			if err := reg.Register(m); err != nil {
				t.Fatalf("Register: %v", err)
			}
			if got := requests(t, reg, "a", "stat", "not_found"); got != 1 {
				t.Errorf("requests = %v, want 1", got)
			}
		}},
		{"name taken by another kind", func(t *testing.T) {
			reg := prometheus.NewRegistry()
			reg.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "shoal_origin_bytes_total", Help: "h"}))
			if _, err := observe.NewMetrics(reg); err == nil {
				t.Error("NewMetrics succeeded over a conflicting metric")
			}
		}},
		{"nil metrics records health only", func(t *testing.T) {
			s := observe.New(failing(objstore.ErrUnavailable), "a", nil)
			_ = call(t.Context(), s, "get")
			if h := s.Health(); h.OK || h.ConsecutiveFailures != 1 {
				t.Errorf("Health = %+v, want one failure", h)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.run(t)
		})
	}
}

func TestTransparent(t *testing.T) {
	t.Parallel()
	inner := objstore.NewMemory()
	s := observe.New(inner, "label", nil)
	if s.String() != inner.String() {
		t.Errorf("String = %q, want the wrapped store's %q", s.String(), inner.String())
	}
	if s.Unwrap() != objstore.Store(inner) {
		t.Error("Unwrap does not return the wrapped store")
	}
}
