package writer

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-io/cairn/projector"
)

// Metrics are a writer's Prometheus metrics. Create them once per
// registry with NewMetrics and pass them in Config.Metrics; several writers
// in one process may share them. A nil *Metrics records nothing.
type Metrics struct {
	events   *prometheus.CounterVec
	batch    prometheus.Histogram
	apply    prometheus.Histogram
	retries  prometheus.Counter
	pending  prometheus.Gauge
	appliedT prometheus.Gauge
}

// Outcome labels of cairn_writer_events_total besides the projector's
// outcomes (applied, duplicate, conflict, superseded, ignored).
const (
	// OutcomeInvalid: the event did not decode or did not match its
	// subject; it was dead-lettered.
	OutcomeInvalid = "invalid"
	// OutcomeRefused: the store refused the event on its own; it was
	// dead-lettered.
	OutcomeRefused = "refused"
)

// NewMetrics creates the writer metrics and registers them with reg.
func NewMetrics(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "cairn_writer_events_total",
			Help: "Events the writer finished with, by outcome: applied, duplicate, conflict, superseded, ignored (below a watermark), invalid or refused (both dead-lettered).",
		}, []string{"outcome"}),
		batch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cairn_writer_batch_events",
			Help:    "Events per applied batch (one store transaction).",
			Buckets: []float64{1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000},
		}),
		apply: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "cairn_writer_apply_seconds",
			Help:    "Time of a successful batch apply (the store transaction), retries excluded.",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5},
		}),
		retries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "cairn_writer_apply_retries_total",
			Help: "Batch applies that failed with the store unavailable and were retried.",
		}),
		pending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cairn_writer_consumer_pending_events",
			Help: "Consumer lag: events of the fleet not yet delivered to a writer, as of the last message this writer received.",
		}),
		appliedT: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "cairn_writer_last_applied_event_timestamp_seconds",
			Help: "When the newest event this writer committed was stored in the stream (Unix time); now minus this is the projection delay.",
		}),
	}
	for _, c := range []prometheus.Collector{m.events, m.batch, m.apply, m.retries, m.pending, m.appliedT} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	// Every outcome is exported from the start, at 0.
	for _, o := range []string{projector.Applied.String(), projector.Duplicate.String(), projector.Conflict.String(),
		projector.Superseded.String(), projector.Ignored.String(), OutcomeInvalid, OutcomeRefused} {
		m.events.WithLabelValues(o)
	}
	return m, nil
}

func (m *Metrics) outcome(o string) {
	if m != nil {
		m.events.WithLabelValues(o).Inc()
	}
}

// applyTook records the time of a successful batch apply.
func (m *Metrics) applyTook(d time.Duration) {
	if m != nil {
		m.apply.Observe(d.Seconds())
	}
}

// batchDone records a committed batch of n events whose newest was stored
// at t in the stream, with pending events still to deliver.
func (m *Metrics) batchDone(n int, t time.Time, pending uint64) {
	if m == nil {
		return
	}
	m.batch.Observe(float64(n))
	m.pending.Set(float64(pending))
	if !t.IsZero() {
		m.appliedT.Set(float64(t.UnixNano()) / 1e9)
	}
}

func (m *Metrics) retried() {
	if m != nil {
		m.retries.Inc()
	}
}
