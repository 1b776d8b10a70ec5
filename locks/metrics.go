package locks

import (
	"errors"
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
	if reg != nil {
		for _, c := range []prometheus.Collector{m.acquire, m.held, m.proxySelf} {
			if err := reg.Register(c); err != nil {
				var are prometheus.AlreadyRegisteredError
				if !errors.As(err, &are) {
					return nil, err
				}
			}
		}
	}
	return m, nil
}

func (m *metrics) observeAcquire(start time.Time, result string) {
	m.acquire.WithLabelValues(result).Observe(time.Since(start).Seconds())
}
