package observe

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics holds the series every observed Store reports to. One Metrics
// serves any number of origins, told apart by the origin label.
type Metrics struct {
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
	bytes    *prometheus.CounterVec
}

var _ prometheus.Collector = (*Metrics)(nil)

// NewMetrics creates the origin series and registers them with reg:
//
//	shoal_origin_requests_total{origin,op,result}  counter
//	shoal_origin_latency_seconds{origin,op}        histogram
//	shoal_origin_bytes_total{origin,direction}     counter
//
// Calling it again with the same registry returns Metrics that share the
// series already registered there. With a nil reg nothing is registered;
// the Metrics is itself a prometheus.Collector, to be registered later.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_origin_requests_total",
			Help: "Object store requests by origin, operation (stat, get, put, delete, list) and result (ok, not_found, unavailable, error).",
		}, []string{"origin", "op", "result"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "shoal_origin_latency_seconds",
			Help: "Object store request duration by origin and operation: until the call returns; " +
				"for get until the reader is returned, for list the time spent producing keys.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 4, 10),
		}, []string{"origin", "op"}),
		bytes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "shoal_origin_bytes_total",
			Help: "Object bytes read from (get) or consumed by writes to (put) an origin.",
		}, []string{"origin", "direction"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	m.requests = register(reg, m.requests, &err)
	m.latency = register(reg, m.latency, &err)
	m.bytes = register(reg, m.bytes, &err)
	if err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c with reg and returns it, or the collector of the
// same type already registered in its place. A failure is stored in *errp
// (the first one wins) and c is returned.
func register[C prometheus.Collector](reg prometheus.Registerer, c C, errp *error) C {
	err := reg.Register(c)
	if err == nil {
		return c
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing
		}
	}
	if *errp == nil {
		*errp = err
	}
	return c
}

// Describe implements prometheus.Collector.
func (m *Metrics) Describe(ch chan<- *prometheus.Desc) {
	m.requests.Describe(ch)
	m.latency.Describe(ch)
	m.bytes.Describe(ch)
}

// Collect implements prometheus.Collector.
func (m *Metrics) Collect(ch chan<- prometheus.Metric) {
	m.requests.Collect(ch)
	m.latency.Collect(ch)
	m.bytes.Collect(ch)
}
