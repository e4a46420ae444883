package query_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/cairn-io/cairn/broker"
	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
	"github.com/cairn-io/cairn/query"
	"github.com/cairn-io/cairn/writer"
)

func TestMetrics(t *testing.T) {
	f := newLineageFixture(t)
	reg := prometheus.NewRegistry()
	// A writer in the same process registers in the same registry, and
	// /metrics serves both.
	if _, err := writer.NewMetrics(reg); err != nil {
		t.Fatal(err)
	}
	srv := MustServe(t, query.NewService(f.store, nil, query.Config{Registry: reg, Logger: quietLogger()}))
	for _, path := range []string{"/v1/threads/incident-a/latest", "/v1/threads/incident-a/latest", "/v1/threads/secret-thread/latest", "/nothing/here", "/v1/threads/incident-a/tree"} {
		get(t, srv, path)
	}
	status, h, body := get(t, srv, "/metrics")
	if status != 200 || !strings.HasPrefix(h.Get("Content-Type"), "text/plain") {
		t.Fatalf("metrics: got %d %q", status, h.Get("Content-Type"))
	}
	text := string(body)
	for _, want := range []string{
		`cairn_query_requests_total{code="200",route="GET /v1/threads/{thread}/latest"} 2`,
		`cairn_query_requests_total{code="404",route="GET /v1/threads/{thread}/latest"} 1`,
		`cairn_query_requests_total{code="404",route="unmatched"} 1`,
		`cairn_query_requests_total{code="200",route="GET /v1/threads/{thread}/tree"} 1`,
		`cairn_query_request_duration_seconds_count{code="200",route="GET /v1/threads/{thread}/latest"} 2`,
		`cairn_writer_events_total{outcome="applied"} 0`,
		`cairn_writer_apply_seconds_count 0`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %q", want)
		}
	}
	if strings.Contains(text, "secret-thread") || strings.Contains(text, "incident-a") {
		t.Error("a thread id appears in the metrics")
	}
	// Two services on one registry share the collectors.
	query.NewService(f.store, nil, query.Config{Registry: reg, Logger: quietLogger()})
}

// natsHarness is an embedded nats-server with the cairn streams.
type natsHarness struct {
	srv *broker.Embedded
	nc  *nats.Conn
	js  jetstream.JetStream
	st  jetstream.Stream
}

func mustNATS(t *testing.T) *natsHarness {
	t.Helper()
	ctx := testContext(t)
	srv, err := broker.StartEmbedded(broker.EmbeddedConfig{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	nc, err := broker.Connect(ctx, broker.ConnConfig{URL: srv.URL(), Name: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	st, err := broker.EnsureStreams(ctx, js, broker.StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	return &natsHarness{srv: srv, nc: nc, js: js, st: st}
}

func TestReadyzAndLag(t *testing.T) {
	ctx := testContext(t)
	nh := mustNATS(t)
	lag, err := query.NewConsumerLag(ctx, nh.js, events.DefaultRoot, events.DefaultFleet, projector.DefaultPrefix)
	if err != nil {
		t.Fatal(err)
	}
	store := MustOpenStore(t)
	srv := MustServe(t, query.NewService(store, nil, query.Config{Lag: lag, Logger: quietLogger()}))
	type ready struct {
		Store, NATS, Status string
		Lag                 *struct {
			Events     *uint64
			AppliedSeq *uint64 `json:"applied_seq"`
			Seconds    *float64
			LastSeq    uint64 `json:"last_seq"`
			Note       string
		}
	}
	readyz := func(wantStatus int) ready {
		t.Helper()
		status, _, body := get(t, srv, "/readyz")
		var r ready
		if err := json.Unmarshal(body, &r); err != nil || status != wantStatus {
			t.Fatalf("readyz: got %d %s, want %d", status, body, wantStatus)
		}
		return r
	}
	// No writer yet: ready, lag unknown.
	r := readyz(200)
	if r.Store != "ok" || r.NATS != "ok" || r.Status != "ready" || r.Lag == nil || r.Lag.Events != nil || r.Lag.Note == "" {
		t.Errorf("before any writer: %+v", r)
	}

	// A writer consumer with three events it has not acknowledged.
	if _, err := nh.st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable: broker.DurableName(events.DefaultFleet, projector.DefaultPrefix), AckPolicy: jetstream.AckExplicitPolicy,
		FilterSubject: events.FleetFilter(events.DefaultRoot, events.DefaultFleet),
	}); err != nil {
		t.Fatal(err)
	}
	pub, err := broker.NewPublisher(nh.js, broker.PublisherConfig{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := pub.Publish(ctx, checkpointEvent("lag-"+string(rune('a'+i)), "t", "", "v", "", `{}`, `{}`)); err != nil {
			t.Fatal(err)
		}
	}
	// The server counts pending messages a moment after a publish: poll.
	deadline := time.Now().Add(10 * time.Second)
	for r = readyz(200); r.Lag == nil || r.Lag.Events == nil || *r.Lag.Events != 3; r = readyz(200) {
		if time.Now().After(deadline) {
			t.Fatalf("three events behind: lag %+v", r.Lag)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if *r.Lag.AppliedSeq != 0 || r.Lag.LastSeq != 3 || r.Lag.Seconds == nil || *r.Lag.Seconds < 0 || *r.Lag.Seconds > 60 {
		t.Errorf("three events behind: applied %d, last %d, seconds %v", *r.Lag.AppliedSeq, r.Lag.LastSeq, r.Lag.Seconds)
	}
	_, _, body := get(t, srv, "/metrics")
	for _, want := range []string{"cairn_query_projection_lag_events 3", "cairn_query_nats_up 1", "cairn_query_projection_lag_seconds "} {
		if !strings.Contains(string(body), want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	// NATS gone: not ready.
	nh.nc.Close()
	r = readyz(503)
	if r.NATS != "unreachable" || r.Store != "ok" || r.Status != "not ready" {
		t.Errorf("NATS down: %+v", r)
	}
	if _, _, body := get(t, srv, "/metrics"); !strings.Contains(string(body), "cairn_query_nats_up 0") {
		t.Error("metrics: cairn_query_nats_up is not 0 with NATS down")
	}
	// Store gone too.
	store.Close()
	if r = readyz(503); r.Store != "unreachable" {
		t.Errorf("store closed: %+v", r)
	}
	if status, _, _ := get(t, srv, "/healthz"); status != 200 {
		t.Errorf("healthz with everything down: %d, want 200 (the process is up)", status)
	}
}
