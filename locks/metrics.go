package locks

import (
	"errors"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the lockers' Prometheus collectors.
type metrics struct {
	acquire   *prometheus.HistogramVec
	held      prometheus.Gauge
	proxySelf prometheus.Gauge
}

// newMetrics builds the collectors and registers them with reg, if not nil:
// shoal_lock_acquire_seconds{result}, shoal_lock_held, shoal_proxy_is_self.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		acquire: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "shoal_lock_acquire_seconds",
			Help:    "Time to acquire a lock, including waiting, by result (ok, timeout, error).",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"result"}),
		held: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shoal_lock_held",
			Help: "Leases this member holds.",
		}),
		proxySelf: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "shoal_proxy_is_self",
			Help: "1 if this member is its group's proxy, else 0.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.acquire, err = register(reg, m.acquire); err != nil {
		return nil, err
	}
	if m.held, err = register(reg, m.held); err != nil {
		return nil, err
	}
	if m.proxySelf, err = register(reg, m.proxySelf); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c with reg, or returns the collector already
// registered in its place, so that several lockers can share a registry.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, fmt.Errorf("register lock metrics: %w", err)
}

func (m *metrics) observeAcquire(start time.Time, result string) {
	m.acquire.WithLabelValues(result).Observe(time.Since(start).Seconds())
}
