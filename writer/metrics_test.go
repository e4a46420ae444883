package writer_test

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/cairn-io/cairn/writer"
)

// gathered returns the metric families of reg by name.
func gathered(t *testing.T, reg *prometheus.Registry) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]*dto.MetricFamily)
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func TestMetricsCountOutcomesBatchesAndLag(t *testing.T) {
	h := mustHarness(t)
	reg := prometheus.NewRegistry()
	m, err := writer.NewMetrics(reg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := writer.NewMetrics(reg); err == nil {
		t.Error("registering the writer metrics twice in one registry: no error")
	}
	w := startWriter(t, h.js, h.db, writer.Config{Metrics: m})
	v1 := checkpoint("m", "v1", "", `{"a":1}`)
	h.publish(t, v1)
	dup := checkpoint("m", "v1", "", `{"a":1}`) // same content, another event
	h.publish(t, dup)
	h.publish(t, checkpoint("m", "v1", "", `{"a":2}`)) // conflict
	h.publish(t, checkpoint("m", "v2", "v1", `{}`))
	last := h.publishRaw(t, "cairn.default.m", "raw-1", []byte(`{"not":"an event"}`))
	h.waitAcked(t, w, last)

	want := map[string]float64{"applied": 2, "duplicate": 1, "conflict": 1, "invalid": 1, "superseded": 0, "ignored": 0, "refused": 0}
	var mfs map[string]*dto.MetricFamily
	eventually(t, waitFor, "outcome counters", func() bool {
		mfs = gathered(t, reg)
		got := make(map[string]float64)
		for _, mt := range mfs["cairn_writer_events_total"].GetMetric() {
			got[mt.GetLabel()[0].GetValue()] = mt.GetCounter().GetValue()
		}
		for k, v := range want {
			if got[k] != v {
				return false
			}
		}
		return len(got) == len(want)
	})
	batch := mfs["cairn_writer_batch_events"].GetMetric()[0].GetHistogram()
	apply := mfs["cairn_writer_apply_seconds"].GetMetric()[0].GetHistogram()
	if batch.GetSampleCount() == 0 || batch.GetSampleSum() != 4 {
		t.Errorf("batch sizes: %d batches summing to %v events, want at least one batch and 4 valid events", batch.GetSampleCount(), batch.GetSampleSum())
	}
	if apply.GetSampleCount() != batch.GetSampleCount() || apply.GetSampleSum() <= 0 {
		t.Errorf("apply latency: %d samples (sum %vs), want one per batch (%d)", apply.GetSampleCount(), apply.GetSampleSum(), batch.GetSampleCount())
	}
	if got := mfs["cairn_writer_consumer_pending_events"].GetMetric()[0].GetGauge().GetValue(); got != 0 {
		t.Errorf("consumer lag after catching up: %v, want 0", got)
	}
	ts := mfs["cairn_writer_last_applied_event_timestamp_seconds"].GetMetric()[0].GetGauge().GetValue()
	if age := time.Since(time.Unix(int64(ts), 0)); ts == 0 || age < -time.Minute || age > time.Minute {
		t.Errorf("last applied event timestamp %v: want about now", ts)
	}
	if got := mfs["cairn_writer_apply_retries_total"].GetMetric()[0].GetCounter().GetValue(); got != 0 {
		t.Errorf("retries: %v, want 0", got)
	}
}
