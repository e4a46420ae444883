package broker_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cairn-io/cairn/broker"
	"github.com/cairn-io/cairn/events"
)

// MustStartEmbedded starts an embedded nats-server and stops it when the
// test ends.
func MustStartEmbedded(tb testing.TB, cfg broker.EmbeddedConfig) *broker.Embedded {
	tb.Helper()
	if cfg.Dir == "" {
		cfg.Dir = tb.TempDir()
	}
	srv, err := broker.StartEmbedded(cfg)
	if err != nil {
		tb.Fatalf("start embedded nats-server: %v", err)
	}
	tb.Cleanup(srv.Close)
	return srv
}

// MustConnect connects to url and returns a JetStream context; the
// connection is closed when the test ends.
func MustConnect(tb testing.TB, url string) (*nats.Conn, jetstream.JetStream) {
	tb.Helper()
	nc, err := broker.Connect(context.Background(), broker.ConnConfig{URL: url, Name: tb.Name()})
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		tb.Fatalf("jetstream: %v", err)
	}
	return nc, js
}

// MustStreams starts a server, connects and creates the streams.
func MustStreams(tb testing.TB) (jetstream.JetStream, jetstream.Stream) {
	tb.Helper()
	srv := MustStartEmbedded(tb, broker.EmbeddedConfig{})
	_, js := MustConnect(tb, srv.URL())
	st, err := broker.EnsureStreams(context.Background(), js, broker.StreamConfig{})
	if err != nil {
		tb.Fatalf("ensure streams: %v", err)
	}
	return js, st
}

// MustPublisher returns a publisher into fleet that logs nothing.
func MustPublisher(tb testing.TB, js jetstream.JetStream, cfg broker.PublisherConfig) *broker.Publisher {
	tb.Helper()
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	p, err := broker.NewPublisher(js, cfg)
	if err != nil {
		tb.Fatalf("new publisher: %v", err)
	}
	return p
}

func testContext(tb testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	tb.Cleanup(cancel)
	return ctx
}

// checkpoint returns a valid checkpoint.put event.
func checkpoint(eventID, thread, id, state string) *events.Event {
	return &events.Event{
		Kind:      events.KindCheckpointPut,
		EventID:   eventID,
		ThreadID:  thread,
		CreatedAt: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
		Checkpoint: &events.Checkpoint{
			ID:       id,
			State:    json.RawMessage(state),
			Metadata: json.RawMessage(`{}`),
		},
	}
}

// storedMsg is one message of a stream as read back.
type storedMsg struct {
	Seq     uint64
	Subject string
	MsgID   string
	Data    []byte
}

// readStream reads every message of a stream, in order, with an ordered
// consumer.
func readStream(tb testing.TB, ctx context.Context, js jetstream.JetStream, stream string) []storedMsg {
	tb.Helper()
	st, err := js.Stream(ctx, stream)
	if err != nil {
		tb.Fatalf("stream %s: %v", stream, err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		tb.Fatalf("stream %s info: %v", stream, err)
	}
	if info.State.Msgs == 0 {
		return nil
	}
	cons, err := js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{})
	if err != nil {
		tb.Fatalf("ordered consumer: %v", err)
	}
	var out []storedMsg
	for uint64(len(out)) < info.State.Msgs {
		m, err := cons.Next(jetstream.FetchMaxWait(5 * time.Second))
		if err != nil {
			tb.Fatalf("read %s after %d of %d messages: %v", stream, len(out), info.State.Msgs, err)
		}
		md, err := m.Metadata()
		if err != nil {
			tb.Fatalf("metadata: %v", err)
		}
		out = append(out, storedMsg{Seq: md.Sequence.Stream, Subject: m.Subject(), MsgID: m.Headers().Get(jetstream.MsgIDHeader), Data: m.Data()})
	}
	return out
}

func streamMsgs(tb testing.TB, ctx context.Context, st jetstream.Stream) uint64 {
	tb.Helper()
	info, err := st.Info(ctx)
	if err != nil {
		tb.Fatalf("stream info: %v", err)
	}
	return info.State.Msgs
}

func TestPublishPerThreadOrderAndDedup(t *testing.T) {
	ctx := testContext(t, 60*time.Second)
	js, st := MustStreams(t)
	pub := MustPublisher(t, js, broker.PublisherConfig{})

	const threads, perThread = 20, 50
	type published struct {
		ids  []string
		seqs []uint64
	}
	got := make([]published, threads)
	errs := make(chan error, threads)
	var wg sync.WaitGroup
	for g := range threads {
		wg.Go(func() {
			thread := fmt.Sprintf("thread-%02d", g)
			for i := range perThread {
				id := fmt.Sprintf("%s-e%02d", thread, i)
				seq, err := pub.Publish(ctx, checkpoint(id, thread, fmt.Sprintf("v%d", i), fmt.Sprintf(`{"i":%d}`, i)))
				if err != nil {
					errs <- fmt.Errorf("publish %s: %w", id, err)
					return
				}
				got[g].ids = append(got[g].ids, id)
				got[g].seqs = append(got[g].seqs, seq)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}

	want := make(map[string]uint64) // event id -> seq Publish returned
	for _, p := range got {
		for i, id := range p.ids {
			want[id] = p.seqs[i]
		}
	}
	msgs := readStream(t, ctx, js, st.CachedInfo().Config.Name)
	if len(msgs) != threads*perThread {
		t.Fatalf("stream holds %d messages, want %d", len(msgs), threads*perThread)
	}
	bySubject := make(map[string][]string)
	for _, m := range msgs {
		if seq, ok := want[m.MsgID]; !ok || seq != m.Seq {
			t.Errorf("message %q at seq %d: Publish returned seq %d (known %v)", m.MsgID, m.Seq, seq, ok)
		}
		e, err := events.Decode(m.Data, 0)
		if err != nil {
			t.Fatalf("decode seq %d: %v", m.Seq, err)
		}
		if e.EventID != m.MsgID {
			t.Errorf("seq %d: Nats-Msg-Id %q, event id %q", m.Seq, m.MsgID, e.EventID)
		}
		if want := events.Subject(events.DefaultRoot, events.DefaultFleet, e.ThreadID); m.Subject != want {
			t.Errorf("seq %d: subject %q, want %q", m.Seq, m.Subject, want)
		}
		bySubject[m.Subject] = append(bySubject[m.Subject], m.MsgID)
	}
	for g, p := range got {
		subject := events.Subject(events.DefaultRoot, events.DefaultFleet, fmt.Sprintf("thread-%02d", g))
		if !slices.Equal(bySubject[subject], p.ids) {
			t.Errorf("thread %d: stream order %v, want publish order %v", g, bySubject[subject], p.ids)
		}
	}

	// The same event again: the stream recognises its id.
	e := checkpoint("dedup-1", "dedup", "v1", `{}`)
	seq1, err := pub.Publish(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	seq2, err := pub.Publish(ctx, e)
	if err != nil {
		t.Fatal(err)
	}
	if seq1 != seq2 {
		t.Errorf("republished event: got seq %d, want the original %d", seq2, seq1)
	}
	if n := streamMsgs(t, ctx, st); n != threads*perThread+1 {
		t.Errorf("after a duplicate publish the stream holds %d messages, want %d", n, threads*perThread+1)
	}
}

// freePort returns a TCP port that was free a moment ago.
func freePort(tb testing.TB) int {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// waitFor polls cond until it holds or d passes.
func waitFor(tb testing.TB, d time.Duration, what string, cond func() bool) {
	tb.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			tb.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestPublishRidesOutBrokerRestart(t *testing.T) {
	ctx := testContext(t, 60*time.Second)
	dir, port := t.TempDir(), freePort(t)
	var srvMu sync.Mutex
	srv, err := broker.StartEmbedded(broker.EmbeddedConfig{Dir: dir, Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		srvMu.Lock()
		defer srvMu.Unlock()
		if srv != nil {
			srv.Close()
		}
	})
	_, js := MustConnect(t, srv.URL())
	st, err := broker.EnsureStreams(ctx, js, broker.StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	pub := MustPublisher(t, js, broker.PublisherConfig{AttemptTimeout: time.Second})

	const workers = 4
	var (
		stop      = make(chan struct{})
		wg        sync.WaitGroup
		mu        sync.Mutex
		seqByID   = make(map[string]uint64)
		failures  []error
		completed atomic.Int64
		restartAt atomic.Int64 // unix nanos when the new server was being started
		crossed   atomic.Int64 // publishes that began before it and ended after
		order     = make([][]uint64, workers)
	)
	for w := range workers {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				// Two threads per worker so that events interleave across
				// subjects as well as across workers.
				thread := fmt.Sprintf("w%d-t%d", w, i%2)
				id := fmt.Sprintf("w%d-e%d", w, i)
				began := time.Now().UnixNano()
				seq, err := pub.Publish(ctx, checkpoint(id, thread, fmt.Sprintf("v%d", i), `{}`))
				if r := restartAt.Load(); r != 0 && began < r {
					crossed.Add(1)
				}
				mu.Lock()
				if err != nil {
					failures = append(failures, fmt.Errorf("publish %s: %w", id, err))
				} else {
					seqByID[id] = seq
					order[w] = append(order[w], seq)
				}
				mu.Unlock()
				if err != nil {
					return
				}
				completed.Add(1)
			}
		})
	}
	stopWorkers := sync.OnceFunc(func() { close(stop); wg.Wait() })
	t.Cleanup(stopWorkers)

	waitFor(t, 20*time.Second, "publishes before the restart", func() bool { return completed.Load() >= 100 })
	srvMu.Lock()
	srv.Close()
	srv = nil
	srvMu.Unlock()
	before := completed.Load()
	time.Sleep(time.Second) // the broker is down for a while, publishes pile up
	restartAt.Store(time.Now().UnixNano())
	next, err := broker.StartEmbedded(broker.EmbeddedConfig{Dir: dir, Port: port})
	if err != nil {
		t.Fatalf("restart: %v", err)
	}
	srvMu.Lock()
	srv = next
	srvMu.Unlock()
	waitFor(t, 30*time.Second, "publishes after the restart", func() bool { return completed.Load() >= before+100 })
	stopWorkers()

	if len(failures) > 0 {
		t.Fatalf("%d publishes failed, first: %v", len(failures), failures[0])
	}
	if n := crossed.Load(); n < workers {
		t.Errorf("%d publishes were in flight across the restart, want at least one per worker (%d)", n, workers)
	}
	for w, seqs := range order {
		if !slices.IsSorted(seqs) {
			t.Errorf("worker %d: sequences of its one-at-a-time publishes are not increasing: %v", w, seqs)
		}
	}
	msgs := readStream(t, ctx, js, st.CachedInfo().Config.Name)
	seen := make(map[string]uint64)
	for _, m := range msgs {
		if prev, dup := seen[m.MsgID]; dup {
			t.Errorf("event %s stored twice, at seq %d and %d", m.MsgID, prev, m.Seq)
		}
		seen[m.MsgID] = m.Seq
	}
	if len(msgs) != len(seqByID) || len(seen) != len(seqByID) {
		t.Errorf("stream holds %d messages with %d distinct ids, want %d (one per published event)", len(msgs), len(seen), len(seqByID))
	}
	for id, seq := range seqByID {
		if got, ok := seen[id]; !ok {
			t.Errorf("event %s (acknowledged at seq %d) is missing from the stream", id, seq)
		} else if got != seq {
			t.Errorf("event %s: Publish returned seq %d, stream holds it at %d", id, seq, got)
		}
	}
	t.Logf("%d events published, %d before the restart, %d across it", len(seqByID), before, crossed.Load())
}

func TestPublishMaxPayload(t *testing.T) {
	ctx := testContext(t, 60*time.Second)
	js, st := MustStreams(t)
	pub := MustPublisher(t, js, broker.PublisherConfig{})

	bigState := func(n int) string { return `{"s":"` + strings.Repeat("x", n) + `"}` }
	if _, err := pub.Publish(ctx, checkpoint("under", "big", "v1", bigState(events.DefaultMaxEventBytes-1024))); err != nil {
		t.Fatalf("event just under DefaultMaxEventBytes: %v", err)
	}
	n := streamMsgs(t, ctx, st)

	_, err := pub.Publish(ctx, checkpoint("over", "big", "v2", bigState(events.DefaultMaxEventBytes)))
	if !errors.Is(err, events.ErrInvalid) {
		t.Errorf("event over MaxEventBytes: got %v, want an invalid error", err)
	}
	small := MustPublisher(t, js, broker.PublisherConfig{MaxEventBytes: 1000})
	_, err = small.Publish(ctx, checkpoint("over-small", "big", "v3", bigState(1000)))
	if !errors.Is(err, events.ErrInvalid) {
		t.Errorf("event over a configured MaxEventBytes of 1000: got %v, want an invalid error", err)
	}
	if got := streamMsgs(t, ctx, st); got != n {
		t.Errorf("refused events were published: stream holds %d messages, want %d", got, n)
	}

	msg := &nats.Msg{Subject: events.Subject(events.DefaultRoot, events.DefaultFleet, "big"), Data: make([]byte, broker.DefaultMaxPayload+1), Header: nats.Header{}}
	_, err = broker.PublishMsg(ctx, js, msg, "over-payload", time.Second, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if !errors.Is(err, events.ErrInvalid) || !strings.Contains(err.Error(), "max_payload") {
		t.Errorf("message over the broker's max_payload: got %v, want an invalid error mentioning max_payload", err)
	}
	if got := streamMsgs(t, ctx, st); got != n {
		t.Errorf("stream holds %d messages, want %d", got, n)
	}
}

func TestEnsureStreams(t *testing.T) {
	ctx := testContext(t, 60*time.Second)
	srv := MustStartEmbedded(t, broker.EmbeddedConfig{})
	_, js := MustConnect(t, srv.URL())

	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i := range errs {
		wg.Go(func() { _, errs[i] = broker.EnsureStreams(ctx, js, broker.StreamConfig{}) })
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("concurrent EnsureStreams %d: %v", i, err)
		}
	}
	for _, tt := range []struct{ name, subject string }{
		{broker.StreamName(events.DefaultRoot), events.DefaultRoot + ".>"},
		{broker.DLQStreamName(events.DefaultRoot), events.DefaultRoot + "_dlq.>"},
	} {
		st, err := js.Stream(ctx, tt.name)
		if err != nil {
			t.Fatalf("stream %s: %v", tt.name, err)
		}
		cfg := st.CachedInfo().Config
		if cfg.Retention != jetstream.LimitsPolicy || cfg.Storage != jetstream.FileStorage {
			t.Errorf("stream %s: retention %v storage %v, want limits and file", tt.name, cfg.Retention, cfg.Storage)
		}
		if !slices.Equal(cfg.Subjects, []string{tt.subject}) {
			t.Errorf("stream %s: subjects %v, want [%s]", tt.name, cfg.Subjects, tt.subject)
		}
		if cfg.Duplicates != broker.DefaultDuplicates {
			t.Errorf("stream %s: duplicates window %v, want %v", tt.name, cfg.Duplicates, broker.DefaultDuplicates)
		}
	}

	// An operator's stream is left as it is.
	tuned := jetstream.StreamConfig{
		Name:        broker.StreamName("tuned"),
		Description: "tuned by an operator",
		Subjects:    []string{"tuned.>"},
		Storage:     jetstream.FileStorage,
		MaxMsgs:     1234,
		Duplicates:  time.Minute,
	}
	if _, err := js.CreateStream(ctx, tuned); err != nil {
		t.Fatal(err)
	}
	st, err := broker.EnsureStreams(ctx, js, broker.StreamConfig{Root: "tuned", MaxAge: time.Hour, Duplicates: 5 * time.Minute})
	if err != nil {
		t.Fatalf("ensure streams over an existing one: %v", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := info.Config; c.Description != tuned.Description || c.MaxMsgs != 1234 || c.MaxAge != 0 || c.Duplicates != time.Minute {
		t.Errorf("existing stream changed: description %q max msgs %d max age %v duplicates %v", c.Description, c.MaxMsgs, c.MaxAge, c.Duplicates)
	}
	if _, err := js.Stream(ctx, broker.DLQStreamName("tuned")); err != nil {
		t.Errorf("the missing dead-letter stream beside an existing stream was not created: %v", err)
	}

	if _, err := broker.EnsureStreams(ctx, js, broker.StreamConfig{Root: "bad.root"}); !errors.Is(err, events.ErrInvalid) {
		t.Errorf("root with a dot: got %v, want an invalid error", err)
	}
}

func TestPositionCoveredPerFleet(t *testing.T) {
	ctx := testContext(t, 60*time.Second)
	js, st := MustStreams(t)
	root := events.DefaultRoot
	// The consumer of fleet a, configured as writer.EnsureConsumer does.
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       broker.DurableName("a", "cairn"),
		FilterSubject: events.FleetFilter(root, "a"),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxDeliver:    -1,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	pos, err := broker.NewPosition(ctx, js, root, "a", "cairn")
	if err != nil {
		t.Fatal(err)
	}
	pubA := MustPublisher(t, js, broker.PublisherConfig{Fleet: "a"})
	pubB := MustPublisher(t, js, broker.PublisherConfig{Fleet: "b"})
	publish := func(p *broker.Publisher, id, thread string) uint64 {
		t.Helper()
		seq, err := p.Publish(ctx, checkpoint(id, thread, id, `{}`))
		if err != nil {
			t.Fatalf("publish %s: %v", id, err)
		}
		return seq
	}
	a1 := publish(pubA, "a1", "ta")
	b1 := publish(pubB, "b1", "tb")
	b2 := publish(pubB, "b2", "tb")
	a2 := publish(pubA, "a2", "ta")

	covered := func(seq uint64) bool {
		t.Helper()
		ok, _, err := pos.Covered(ctx, seq)
		if err != nil {
			t.Fatalf("covered(%d): %v", seq, err)
		}
		return ok
	}
	fetch := func(wantSeq uint64) jetstream.Msg {
		t.Helper()
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var got []jetstream.Msg
		for m := range batch.Messages() {
			got = append(got, m)
		}
		if len(got) != 1 {
			t.Fatalf("fetch: got %d messages (%v), want 1", len(got), batch.Error())
		}
		md, err := got[0].Metadata()
		if err != nil {
			t.Fatal(err)
		}
		if md.Sequence.Stream != wantSeq {
			t.Fatalf("fetch: got seq %d, want %d", md.Sequence.Stream, wantSeq)
		}
		return got[0]
	}

	if covered(a1) || covered(b1) {
		t.Errorf("nothing acknowledged yet, but a1 or b1 is covered")
	}
	m1 := fetch(a1)
	if covered(a1) {
		t.Errorf("a1 delivered but not acknowledged is covered")
	}
	if err := m1.DoubleAck(ctx); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name string
		seq  uint64
		want bool
	}{
		{"a1", a1, true},
		{"b1", b1, true}, // fleet b has no consumer here: only fleet a counts
		{"b2", b2, true},
		{"a2", a2, false}, // delivered to nobody yet
		{"past the end", a2 + 1, false},
	} {
		if got := covered(tt.seq); got != tt.want {
			t.Errorf("after acking a1: covered(%s=%d) = %v, want %v", tt.name, tt.seq, got, tt.want)
		}
	}
	m2 := fetch(a2)
	if covered(a2) {
		t.Errorf("a2 delivered but not acknowledged is covered")
	}
	if err := m2.DoubleAck(ctx); err != nil {
		t.Fatal(err)
	}
	if !covered(a2) {
		t.Errorf("a2 acknowledged but not covered")
	}
	if covered(a2 + 1) {
		t.Errorf("a sequence beyond the stream's last is covered")
	}
	if _, floor, _ := pos.Covered(ctx, a2); floor != a2 {
		t.Errorf("ack floor: got %d, want %d", floor, a2)
	}

	// A terminated (dead-lettered) message counts as done.
	a3 := publish(pubA, "a3", "ta2")
	m3 := fetch(a3)
	if covered(a3) {
		t.Errorf("a3 delivered but not terminated is covered")
	}
	if err := m3.TermWithReason("poison"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "a terminated message to be covered", func() bool { return covered(a3) })

	// Head: the last sequence on a thread's subject.
	for _, tt := range []struct {
		pos    *broker.Position
		thread string
		want   uint64
	}{
		{pos, "ta", a2},
		{pos, "ta2", a3},
		{pos, "never-seen", 0},
		{pos, "tb", 0}, // fleet b's thread is not on fleet a's subjects
	} {
		got, err := tt.pos.Head(ctx, tt.thread)
		if err != nil || got != tt.want {
			t.Errorf("head(%q) = %d, %v; want %d", tt.thread, got, err, tt.want)
		}
	}
	posB, err := broker.NewPosition(ctx, js, root, "b", "cairn")
	if err != nil {
		t.Fatal(err)
	}
	if got, err := posB.Head(ctx, "tb"); err != nil || got != b2 {
		t.Errorf("fleet b head(tb) = %d, %v; want %d", got, err, b2)
	}
	if _, _, err := posB.Covered(ctx, b1); !errors.Is(err, events.ErrUnavailable) {
		t.Errorf("covered without a consumer: got %v, want an unavailable error", err)
	}
}
