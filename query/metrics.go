package query

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// metrics are the service's Prometheus metrics. Routes are labelled by
// their pattern ("GET /v1/threads/{thread}/tree"), never by the path, so
// thread ids stay out of the metrics and the label set stays small.
type metrics struct {
	reg      *prometheus.Registry
	requests *prometheus.CounterVec
	latency  *prometheus.HistogramVec
}

// register registers c in reg, or returns the collector already registered
// under the same description (two services sharing one registry).
func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
		panic("query metrics: " + err.Error())
	}
	return c
}

func newMetrics(reg *prometheus.Registry, lag LagProber) *metrics {
	m := &metrics{reg: reg}
	m.requests = register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "cairn_query_requests_total",
		Help: "HTTP requests answered by the query service, by route pattern and status code.",
	}, []string{"route", "code"}))
	m.latency = register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name:    "cairn_query_request_duration_seconds",
		Help:    "Time to answer an HTTP request (read-your-writes waits included), by route pattern and status code.",
		Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10},
	}, []string{"route", "code"}))
	if lag != nil {
		register(reg, &lagCollector{lag: lag})
	}
	return m
}

func (m *metrics) handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{})
}

// statusWriter remembers the status a handler wrote.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// instrument counts and times every request by its route pattern.
func (s *Service) instrument(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, pattern := mux.Handler(r)
		if pattern == "" || pattern == "/" {
			pattern = "unmatched"
		}
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		mux.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		code := strconv.Itoa(sw.status)
		s.metrics.requests.WithLabelValues(pattern, code).Inc()
		s.metrics.latency.WithLabelValues(pattern, code).Observe(time.Since(start).Seconds())
	})
}

// lagCollector asks for the projection lag when scraped.
type lagCollector struct{ lag LagProber }

var (
	lagEventsDesc = prometheus.NewDesc("cairn_query_projection_lag_events",
		"Events of the fleet not yet committed or dead-lettered by the writers (the consumer's pending and unacknowledged messages).", nil, nil)
	lagSecondsDesc = prometheus.NewDesc("cairn_query_projection_lag_seconds",
		"Age of the oldest event not yet committed or dead-lettered; 0 when caught up.", nil, nil)
	lagUpDesc = prometheus.NewDesc("cairn_query_nats_up",
		"1 when the last scrape could read the writers' consumer position from NATS, else 0.", nil, nil)
)

func (c *lagCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- lagEventsDesc
	ch <- lagSecondsDesc
	ch <- lagUpDesc
}

func (c *lagCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	l, err := c.lag.Lag(ctx)
	if err != nil {
		ch <- prometheus.MustNewConstMetric(lagUpDesc, prometheus.GaugeValue, 0)
		return
	}
	ch <- prometheus.MustNewConstMetric(lagUpDesc, prometheus.GaugeValue, 1)
	if l.Known {
		ch <- prometheus.MustNewConstMetric(lagEventsDesc, prometheus.GaugeValue, float64(l.Events))
		ch <- prometheus.MustNewConstMetric(lagSecondsDesc, prometheus.GaugeValue, l.Seconds)
	}
}
