package writer_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/cairn-io/cairn/broker"
	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
	"github.com/cairn-io/cairn/projector/storetest"
	"github.com/cairn-io/cairn/sqlite"
	"github.com/cairn-io/cairn/writer"
)

const (
	root  = events.DefaultRoot
	fleet = events.DefaultFleet
	// waitFor bounds every wait in these tests.
	waitFor = 20 * time.Second
)

var quiet = slog.New(slog.DiscardHandler)

// durable is the name of the writers' consumer with the default prefix.
var durable = broker.DurableName(fleet, projector.DefaultPrefix)

// harness is an embedded nats-server with the cairn streams, a client
// connection and a SQLite file, all closed when the test ends.
type harness struct {
	ctx    context.Context // bounds the whole test
	js     jetstream.JetStream
	stream jetstream.Stream // events
	dlq    jetstream.Stream // dead letters
	db     *sqlite.DB
	pub    *broker.Publisher
}

func mustHarness(t *testing.T) *harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	dir := t.TempDir()
	srv, err := broker.StartEmbedded(broker.EmbeddedConfig{Dir: filepath.Join(dir, "nats")})
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
	dlq, err := js.Stream(ctx, broker.DLQStreamName(root))
	if err != nil {
		t.Fatal(err)
	}
	db, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, "cairn.db")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	pub, err := broker.NewPublisher(js, broker.PublisherConfig{Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	return &harness{ctx: ctx, js: js, stream: st, dlq: dlq, db: db, pub: pub}
}

// eventually polls cond until it holds, failing t after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// running is a writer.Writer whose Run is running in a goroutine.
type running struct {
	w      *writer.Writer
	cancel context.CancelFunc
	done   chan struct{}
	err    error // Run's result, once done is closed
}

// startWriter starts a writer on store; it is stopped when the test ends.
func startWriter(t *testing.T, js jetstream.JetStream, store projector.Store, cfg writer.Config) *running {
	t.Helper()
	if cfg.Logger == nil {
		cfg.Logger = quiet
	}
	w, err := writer.New(js, store, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{w: w, cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		r.err = w.Run(ctx)
	}()
	t.Cleanup(func() {
		if err := r.stop(t); err != nil {
			t.Errorf("writer run: %v", err)
		}
	})
	return r
}

// stop cancels Run and returns what it returned.
func (r *running) stop(t *testing.T) error {
	t.Helper()
	r.cancel()
	select {
	case <-r.done:
		return r.err
	case <-time.After(waitFor):
		t.Fatalf("writer did not stop within %v", waitFor)
		return nil
	}
}

// checkAlive fails t if Run has returned.
func (r *running) checkAlive(t *testing.T) {
	t.Helper()
	select {
	case <-r.done:
		t.Fatalf("writer stopped unexpectedly: Run returned %v", r.err)
	default:
	}
}

func (h *harness) consumerInfo(t *testing.T) *jetstream.ConsumerInfo {
	t.Helper()
	cons, err := h.stream.Consumer(h.ctx, durable)
	if err != nil {
		t.Fatalf("consumer %s: %v", durable, err)
	}
	info, err := cons.Info(h.ctx)
	if err != nil {
		t.Fatalf("consumer info: %v", err)
	}
	return info
}

// waitAcked waits until the writers' consumer has acknowledged (or
// terminated) everything up to seq, failing early if r stops.
func (h *harness) waitAcked(t *testing.T, r *running, seq uint64) {
	t.Helper()
	eventually(t, waitFor, fmt.Sprintf("the ack floor to reach %d", seq), func() bool {
		r.checkAlive(t)
		cons, err := h.stream.Consumer(h.ctx, durable)
		if err != nil {
			return false
		}
		info, err := cons.Info(h.ctx)
		return err == nil && info.AckFloor.Stream >= seq
	})
}

func (h *harness) lastSeq(t *testing.T, st jetstream.Stream) uint64 {
	t.Helper()
	info, err := st.Info(h.ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

// stored is one message as a stream holds it.
type stored struct {
	Seq     uint64
	Subject string
	Header  nats.Header
	Data    []byte
}

// readAll reads every message of st with an ordered consumer.
func (h *harness) readAll(t *testing.T, st jetstream.Stream) []stored {
	t.Helper()
	ctx := h.ctx
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.State.Msgs == 0 {
		return nil
	}
	cons, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	var out []stored
	deadline := time.Now().Add(waitFor)
	for uint64(len(out)) < info.State.Msgs {
		if time.Now().After(deadline) {
			t.Fatalf("read %s: got %d of %d messages", info.Config.Name, len(out), info.State.Msgs)
		}
		batch, err := cons.Fetch(int(min(info.State.Msgs-uint64(len(out)), 64)), jetstream.FetchMaxWait(time.Second))
		if err != nil {
			t.Fatal(err)
		}
		for m := range batch.Messages() {
			md, err := m.Metadata()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, stored{Seq: md.Sequence.Stream, Subject: m.Subject(), Header: m.Headers(), Data: m.Data()})
		}
	}
	return out
}

// validRecords decodes the event stream as the writer does (default
// maximum), keeping the events that decode and match their subject.
func validRecords(t *testing.T, h *harness) []projector.Record {
	t.Helper()
	var recs []projector.Record
	for _, m := range h.readAll(t, h.stream) {
		e, err := events.Decode(m.Data, 0)
		if err == nil {
			err = events.CheckSubject(root, m.Subject, e)
		}
		if err == nil {
			recs = append(recs, projector.Record{Seq: m.Seq, Event: e})
		}
	}
	return recs
}

// dlqBySeq returns the dead letters keyed by the stream sequence of the
// event they copy.
func dlqBySeq(t *testing.T, h *harness) map[uint64]stored {
	t.Helper()
	out := make(map[uint64]stored)
	for _, m := range h.readAll(t, h.dlq) {
		seq, err := strconv.ParseUint(m.Header.Get(writer.HeaderStreamSeq), 10, 64)
		if err != nil {
			t.Fatalf("dead letter %d: %s header %q: %v", m.Seq, writer.HeaderStreamSeq, m.Header.Get(writer.HeaderStreamSeq), err)
		}
		if _, dup := out[seq]; dup {
			t.Fatalf("two dead letters for stream seq %d", seq)
		}
		out[seq] = m
	}
	return out
}

var (
	t0     = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	lastID atomic.Int64
)

func nextID() string { return fmt.Sprintf("ev-%d", lastID.Add(1)) }

func checkpoint(thread, id, parent, state string) *events.Event {
	return &events.Event{
		Kind: events.KindCheckpointPut, EventID: nextID(), Fleet: fleet, ThreadID: thread, CreatedAt: t0,
		Checkpoint: &events.Checkpoint{ID: id, ParentID: parent, State: json.RawMessage(state), Metadata: json.RawMessage(`{"source":"test"}`)},
	}
}

func writes(thread, checkpointID, task string, values ...string) *events.Event {
	var ws []events.Write
	for i, v := range values {
		ws = append(ws, events.Write{Idx: int64(i), Channel: "ch", Value: json.RawMessage(v)})
	}
	return &events.Event{
		Kind: events.KindWritesPut, EventID: nextID(), Fleet: fleet, ThreadID: thread, CreatedAt: t0,
		Writes: &events.Writes{CheckpointID: checkpointID, TaskID: task, Writes: ws},
	}
}

func (h *harness) publish(t *testing.T, e *events.Event) uint64 {
	t.Helper()
	seq, err := h.pub.Publish(h.ctx, e)
	if err != nil {
		t.Fatalf("publish %s: %v", e.EventID, err)
	}
	return seq
}

// publishRaw publishes bytes as they are, with msgID as the Nats-Msg-Id.
func (h *harness) publishRaw(t *testing.T, subject, msgID string, data []byte) uint64 {
	t.Helper()
	ack, err := h.js.PublishMsg(h.ctx, &nats.Msg{Subject: subject, Data: data, Header: nats.Header{}}, jetstream.WithMsgID(msgID))
	if err != nil {
		t.Fatalf("publish raw %s: %v", msgID, err)
	}
	return ack.Sequence
}

func mustEncode(t *testing.T, e *events.Event) []byte {
	t.Helper()
	b, err := events.Encode(e, 0)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustExpect(t *testing.T, recs []projector.Record) projector.Dump {
	t.Helper()
	d, err := projector.Expect(recs)
	if err != nil {
		t.Fatalf("expect: %v", err)
	}
	return d
}

// letter is a bad event and what its dead letter must say.
type letter struct {
	name    string
	subject string
	msgID   string
	data    []byte
	reason  string // a substring of the Cairn-Reason header
	seq     uint64 // stream seq once published
	// omitted: the dead letter carries no payload, since the event with
	// the dead-letter headers is over the broker's max_payload.
	omitted bool
}

// checkLetter fails t unless dl is the dead letter of l.
func checkLetter(t *testing.T, l letter, dl stored) {
	t.Helper()
	if got, want := dl.Subject, broker.DLQSubject(root, l.subject); got != want {
		t.Errorf("%s: dead-letter subject: got %q, want %q", l.name, got, want)
	}
	if got := dl.Header.Get(writer.HeaderReason); !strings.Contains(got, l.reason) {
		t.Errorf("%s: reason: got %q, want it to contain %q", l.name, got, l.reason)
	}
	if got := dl.Header.Get(writer.HeaderSubject); got != l.subject {
		t.Errorf("%s: %s: got %q, want %q", l.name, writer.HeaderSubject, got, l.subject)
	}
	if got, want := dl.Header.Get(writer.HeaderStreamSeq), fmt.Sprint(l.seq); got != want {
		t.Errorf("%s: %s: got %q, want %q", l.name, writer.HeaderStreamSeq, got, want)
	}
	if _, err := time.Parse(time.RFC3339Nano, dl.Header.Get(writer.HeaderFailedAt)); err != nil {
		t.Errorf("%s: %s: %v", l.name, writer.HeaderFailedAt, err)
	}
	if got := dl.Header.Get(writer.HeaderOriginalPrefix + jetstream.MsgIDHeader); got != l.msgID {
		t.Errorf("%s: original message id: got %q, want %q", l.name, got, l.msgID)
	}
	if got := dl.Header.Get(jetstream.MsgIDHeader); got == "" || got == l.msgID {
		t.Errorf("%s: dead letter's own Nats-Msg-Id is %q: want one of its own, not the original's", l.name, got)
	}
	omitted := dl.Header.Get(writer.HeaderPayloadOmitted)
	switch {
	case l.omitted && (omitted == "" || len(dl.Data) != 0):
		t.Errorf("%s: got %d payload bytes and %s %q, want the payload omitted", l.name, len(dl.Data), writer.HeaderPayloadOmitted, omitted)
	case !l.omitted && omitted != "":
		t.Errorf("%s: payload omitted (%s), want it kept", l.name, omitted)
	case !l.omitted && !bytes.Equal(dl.Data, l.data):
		t.Errorf("%s: payload differs from the original (%d bytes, want %d)", l.name, len(dl.Data), len(l.data))
	}
}

func TestDeadLetterThenRedrive(t *testing.T) {
	h := mustHarness(t)
	ctx := h.ctx
	w1 := startWriter(t, h.js, h.db, writer.Config{MaxEventBytes: 2048})

	evA := checkpoint("A", "a1", "", `{"n":1}`)
	seqA := h.publish(t, evA)

	badJSON := letter{name: "invalid JSON", subject: events.Subject(root, fleet, "bad"), msgID: "bad-json",
		data: []byte(`{"schema":1,`), reason: "not strict JSON"}
	badJSON.seq = h.publishRaw(t, badJSON.subject, badJSON.msgID, badJSON.data)

	evBig := checkpoint("big", "big1", "", fmt.Sprintf(`{"blob":%q}`, strings.Repeat("x", 3000)))
	bigData := mustEncode(t, evBig)
	big := letter{name: "3 KB event", subject: events.Subject(root, fleet, "big"), msgID: evBig.EventID, data: bigData,
		reason: fmt.Sprintf("event is %d bytes, over the 2048-byte maximum", len(bigData))}
	big.seq = h.publishRaw(t, big.subject, big.msgID, big.data)

	evLie := checkpoint("claimed", "c1", "", `{}`)
	lie := letter{name: "thread does not match subject", subject: events.Subject(root, fleet, "actual"), msgID: evLie.EventID,
		data: mustEncode(t, evLie), reason: "does not match"}
	lie.seq = h.publishRaw(t, lie.subject, lie.msgID, lie.data)

	evB := checkpoint("B", "b1", "", `{"n":2}`)
	seqB := h.publish(t, evB)

	h.waitAcked(t, w1, seqB)
	storetest.AssertSameDump(t, storetest.MustDump(t, h.db), mustExpect(t, []projector.Record{{Seq: seqA, Event: evA}, {Seq: seqB, Event: evB}}))
	for _, thread := range []string{"A", "B"} {
		if _, err := h.db.Latest(ctx, thread, ""); err != nil {
			t.Errorf("latest of %s: %v", thread, err)
		}
	}
	letters := dlqBySeq(t, h)
	if len(letters) != 3 {
		t.Fatalf("dead letters: got %d, want 3", len(letters))
	}
	for _, l := range []letter{badJSON, big, lie} {
		dl, ok := letters[l.seq]
		if !ok {
			t.Errorf("%s (seq %d): no dead letter", l.name, l.seq)
			continue
		}
		checkLetter(t, l, dl)
	}
	if got := w1.w.Stats.DeadLettered.Load(); got != 3 {
		t.Errorf("writer 1 dead-lettered %d, want 3", got)
	}
	if got := w1.w.Stats.Applied.Load(); got != 2 {
		t.Errorf("writer 1 applied %d, want 2", got)
	}
	if err := w1.stop(t); err != nil {
		t.Fatalf("writer 1: Run returned %v", err)
	}

	// The upgrade: a writer with the default maximum, then a redrive.
	w2 := startWriter(t, h.js, h.db, writer.Config{})
	lastBefore := h.lastSeq(t, h.stream)
	dry, err := writer.Redrive(ctx, h.js, writer.RedriveConfig{DryRun: true, Logger: quiet})
	if err != nil {
		t.Fatalf("dry-run redrive: %v", err)
	}
	if dry.Redriven != 1 || dry.StillInvalid != 2 {
		t.Errorf("dry-run redrive: got %+v, want 1 redriven, 2 still invalid", dry)
	}
	if got := h.lastSeq(t, h.stream); got != lastBefore {
		t.Fatalf("dry-run redrive published: last seq %d, want %d", got, lastBefore)
	}
	if got := len(dlqBySeq(t, h)); got != 3 {
		t.Fatalf("dry-run redrive removed dead letters: %d left, want 3", got)
	}

	res, err := writer.Redrive(ctx, h.js, writer.RedriveConfig{Logger: quiet})
	if err != nil {
		t.Fatalf("redrive: %v", err)
	}
	if res.Redriven != 1 || res.StillInvalid != 2 || len(res.Reasons) != 2 {
		t.Fatalf("redrive: got %+v, want 1 redriven, 2 still invalid with reasons", res)
	}
	for i, want := range []string{"not strict JSON", "does not match"} {
		if !strings.Contains(res.Reasons[i], want) {
			t.Errorf("redrive reason %d: got %q, want it to contain %q", i, res.Reasons[i], want)
		}
	}
	redrivenSeq := h.lastSeq(t, h.stream)
	if redrivenSeq != lastBefore+1 {
		t.Fatalf("redrive: stream last seq %d, want exactly one new event at %d", redrivenSeq, lastBefore+1)
	}
	msgs := h.readAll(t, h.stream)
	re := msgs[len(msgs)-1]
	if re.Seq != redrivenSeq || re.Subject != big.subject || !bytes.Equal(re.Data, bigData) {
		t.Errorf("redriven event: got seq %d subject %q %d bytes, want seq %d subject %q and the original %d bytes",
			re.Seq, re.Subject, len(re.Data), redrivenSeq, big.subject, len(bigData))
	}
	if id := re.Header.Get(jetstream.MsgIDHeader); !strings.HasPrefix(id, "redrive-") {
		t.Errorf("redriven event: Nats-Msg-Id %q, want a redrive- id", id)
	}
	for k := range re.Header {
		if strings.HasPrefix(k, "Cairn-") {
			t.Errorf("redriven event carries dead-letter header %s", k)
		}
	}

	h.waitAcked(t, w2, redrivenSeq)
	got, err := h.db.Checkpoint(ctx, projector.CheckpointKey{ThreadID: "big", ID: "big1"})
	if err != nil {
		t.Fatalf("redriven checkpoint: %v", err)
	}
	if got.Seq != redrivenSeq || !bytes.Equal(got.State, evBig.Checkpoint.State) {
		t.Errorf("redriven checkpoint: got seq %d and %d state bytes, want seq %d and the published state", got.Seq, len(got.State), redrivenSeq)
	}
	want := mustExpect(t, []projector.Record{{Seq: seqA, Event: evA}, {Seq: seqB, Event: evB}, {Seq: redrivenSeq, Event: evBig}})
	dump := storetest.MustDump(t, h.db)
	storetest.AssertSameDump(t, dump, want)

	letters = dlqBySeq(t, h)
	if len(letters) != 2 {
		t.Fatalf("dead letters after redrive: got %d, want 2", len(letters))
	}
	for _, l := range []letter{badJSON, lie} {
		if dl, ok := letters[l.seq]; !ok {
			t.Errorf("%s: dead letter gone after redrive", l.name)
		} else {
			checkLetter(t, l, dl)
		}
	}

	// Again: nothing left to redrive, nothing published, nothing projected.
	res, err = writer.Redrive(ctx, h.js, writer.RedriveConfig{Logger: quiet})
	if err != nil {
		t.Fatalf("second redrive: %v", err)
	}
	if res.Redriven != 0 || res.StillInvalid != 2 {
		t.Errorf("second redrive: got %+v, want 0 redriven, 2 still invalid", res)
	}
	if got := h.lastSeq(t, h.stream); got != redrivenSeq {
		t.Errorf("second redrive published: last seq %d, want %d", got, redrivenSeq)
	}
	if got := len(dlqBySeq(t, h)); got != 2 {
		t.Errorf("dead letters after the second redrive: got %d, want 2", got)
	}
	h.waitAcked(t, w2, redrivenSeq)
	storetest.AssertSameDump(t, storetest.MustDump(t, h.db), dump)
	if a, d := w2.w.Stats.Applied.Load(), w2.w.Stats.DeadLettered.Load(); a != 1 || d != 0 {
		t.Errorf("writer 2: applied %d, dead-lettered %d; want 1 and 0", a, d)
	}
}

func TestRedeliveryAfterRestartChangesNothing(t *testing.T) {
	h := mustHarness(t)
	ctx := h.ctx
	w1 := startWriter(t, h.js, h.db, writer.Config{})

	var puts, marks int64 // checkpoint/writes events; delete/prune events
	seqOf := make(map[string]uint64)
	publish := func(e *events.Event) uint64 {
		seq := h.publish(t, e)
		switch e.Kind {
		case events.KindCheckpointPut, events.KindWritesPut:
			puts++
		default:
			marks++
		}
		return seq
	}
	threads := []string{"t-0", "t-1", "t-2", "t-3"}
	parent := make(map[string]string)
	for i := range 30 {
		for _, th := range threads {
			id := fmt.Sprintf("c%d", i)
			state := fmt.Sprintf(`{"i":%d,"thread":%q}`, i, th)
			seqOf[th+"/"+id] = publish(checkpoint(th, id, parent[th], state))
			switch {
			case i%9 == 3: // same content again: a duplicate
				publish(checkpoint(th, id, parent[th], state))
			case i%11 == 5: // other content for the same key: a conflict
				publish(checkpoint(th, id, parent[th], `{"i":-1}`))
			}
			if i%4 == 1 {
				publish(writes(th, id, "task-a", `"first"`, `{"n":1}`))
				if i%8 == 1 { // a later set replaces the earlier one
					publish(writes(th, id, "task-a", `"second"`))
				}
			}
			parent[th] = id
		}
		if i == 20 {
			publish(&events.Event{Kind: events.KindThreadPrune, EventID: nextID(), Fleet: fleet, ThreadID: "t-1", CreatedAt: t0,
				Prune: &events.Prune{BelowSeq: seqOf["t-1/c10"]}})
		}
		if i == 25 {
			publish(&events.Event{Kind: events.KindThreadDelete, EventID: nextID(), Fleet: fleet, ThreadID: "t-2", CreatedAt: t0})
		}
	}
	last := h.lastSeq(t, h.stream)
	if total := puts + marks; total < 190 || uint64(total) != last {
		t.Fatalf("published %d events, stream last seq %d", total, last)
	}
	h.waitAcked(t, w1, last)
	before := storetest.MustDump(t, h.db)
	recs := validRecords(t, h)
	if len(recs) != int(last) {
		t.Fatalf("read %d records from the stream, want %d", len(recs), last)
	}
	storetest.AssertSameDump(t, before, mustExpect(t, recs))
	s1 := &w1.w.Stats
	if sum := s1.Applied.Load() + s1.Duplicate.Load() + s1.Conflict.Load() + s1.Superseded.Load() + s1.Ignored.Load(); sum != puts+marks {
		t.Errorf("writer 1 outcomes add up to %d, want %d", sum, puts+marks)
	}
	if s1.Conflict.Load() == 0 || s1.Duplicate.Load() == 0 {
		t.Errorf("writer 1: %d conflicts and %d duplicates; the mix should produce both", s1.Conflict.Load(), s1.Duplicate.Load())
	}
	if len(before.Conflicts) == 0 || len(before.Duplicates) == 0 || len(before.WriteSets) == 0 {
		t.Errorf("dump has %d conflicts, %d duplicates, %d write sets; the mix should produce all three",
			len(before.Conflicts), len(before.Duplicates), len(before.WriteSets))
	}
	if err := w1.stop(t); err != nil {
		t.Fatalf("writer 1: Run returned %v", err)
	}

	// Forget every acknowledgement: the next writer gets every event again.
	if err := h.stream.DeleteConsumer(ctx, durable); err != nil {
		t.Fatalf("delete consumer: %v", err)
	}
	w2 := startWriter(t, h.js, h.db, writer.Config{})
	h.waitAcked(t, w2, last)
	storetest.AssertSameDump(t, storetest.MustDump(t, h.db), before)
	s2 := &w2.w.Stats
	if got := s2.Applied.Load(); got != marks {
		t.Errorf("writer 2 applied %d, want %d (only the deletes and prunes, which always count as applied)", got, marks)
	}
	if got := s2.Duplicate.Load() + s2.Ignored.Load() + s2.Superseded.Load() + s2.Conflict.Load(); got != puts {
		t.Errorf("writer 2: duplicate+ignored+superseded+conflict = %d, want every checkpoint and writes event (%d)", got, puts)
	}
	if got := s2.Conflict.Load(); got != 0 {
		t.Errorf("writer 2 recorded %d conflicts on redelivery, want 0 (a redelivered conflict is a duplicate)", got)
	}
	if got := s2.DeadLettered.Load(); got != 0 {
		t.Errorf("writer 2 dead-lettered %d, want 0", got)
	}
}

// flakyStore is a store that is unavailable while down is set.
type flakyStore struct {
	*sqlite.DB
	down atomic.Bool
}

func (s *flakyStore) Update(ctx context.Context, fn func(ctx context.Context, tx projector.Tx) error) error {
	if s.down.Load() {
		return events.Errorf(events.Unavailable, "test store is down")
	}
	return s.DB.Update(ctx, fn)
}

func TestStoreOutageBacksOffAndCatchesUp(t *testing.T) {
	h := mustHarness(t)
	store := &flakyStore{DB: h.db}
	w := startWriter(t, h.js, store, writer.Config{})
	first := h.publish(t, checkpoint("up", "c0", "", `{}`))
	h.waitAcked(t, w, first)

	store.down.Store(true)
	const n = 20
	for i := range n {
		h.publish(t, checkpoint(fmt.Sprintf("t-%d", i%3), fmt.Sprintf("c%d", i), "", fmt.Sprintf(`{"i":%d}`, i)))
	}
	last := h.lastSeq(t, h.stream)
	eventually(t, waitFor, "a failed attempt", func() bool { return w.w.Stats.Retries.Load() > 0 })
	eventually(t, waitFor, fmt.Sprintf("%d messages delivered and unacknowledged", n), func() bool {
		return h.consumerInfo(t).NumAckPending == n
	})
	start := w.w.Stats.Retries.Load()
	observe := time.Now().Add(3 * time.Second)
	for time.Now().Before(observe) {
		w.checkAlive(t)
		info := h.consumerInfo(t)
		if info.AckFloor.Stream != first || info.NumAckPending != n {
			t.Fatalf("store down: ack floor %d with %d pending, want %d with %d", info.AckFloor.Stream, info.NumAckPending, first, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
	retries := w.w.Stats.Retries.Load() - start
	if retries < 2 || retries >= 40 {
		t.Errorf("store down for 3s: %d retries, want a few (backoff), at least 2 and fewer than 40", retries)
	}
	if got := len(storetest.MustDump(t, h.db).Checkpoints); got != 1 {
		t.Errorf("store down: %d checkpoints stored, want 1", got)
	}

	store.down.Store(false)
	h.waitAcked(t, w, last)
	storetest.AssertSameDump(t, storetest.MustDump(t, h.db), mustExpect(t, validRecords(t, h)))
	if got := w.w.Stats.Applied.Load(); got != n+1 {
		t.Errorf("applied %d, want %d", got, n+1)
	}
	if got := w.w.Stats.DeadLettered.Load(); got != 0 {
		t.Errorf("dead-lettered %d, want 0", got)
	}
}

// gateStore is a store whose Update, while hold is set, blocks until
// release is closed; entered receives once when an Update blocks.
type gateStore struct {
	*sqlite.DB
	hold    atomic.Bool
	entered chan struct{}
	release chan struct{}
}

func (s *gateStore) Update(ctx context.Context, fn func(ctx context.Context, tx projector.Tx) error) error {
	if s.hold.Load() {
		select {
		case s.entered <- struct{}{}:
		default:
		}
		<-s.release
	}
	return s.DB.Update(ctx, fn)
}

func TestShutdownNeverAcksUncommitted(t *testing.T) {
	h := mustHarness(t)
	gate := &gateStore{DB: h.db, entered: make(chan struct{}, 1), release: make(chan struct{})}
	w1 := startWriter(t, h.js, gate, writer.Config{})
	var committed uint64
	for i := range 5 {
		committed = h.publish(t, checkpoint("early", fmt.Sprintf("c%d", i), "", `{}`))
	}
	h.waitAcked(t, w1, committed)

	gate.hold.Store(true)
	const n = 20
	for i := range n {
		h.publish(t, checkpoint(fmt.Sprintf("late-%d", i%4), fmt.Sprintf("c%d", i), "", fmt.Sprintf(`{"i":%d}`, i)))
	}
	last := h.lastSeq(t, h.stream)
	select {
	case <-gate.entered:
	case <-time.After(waitFor):
		t.Fatal("no batch reached the store")
	}
	// Cancel while the batch is inside Update, then let Update go on with
	// the cancelled context: the transaction cannot begin.
	w1.cancel()
	close(gate.release)
	if err := w1.stop(t); err != nil {
		t.Fatalf("Run returned %v, want nil on cancellation", err)
	}
	if got := w1.w.Stats.Applied.Load(); got != 5 {
		t.Errorf("writer 1 applied %d, want 5", got)
	}
	if info := h.consumerInfo(t); info.AckFloor.Stream != committed {
		t.Fatalf("after shutdown: ack floor %d, want %d (the last committed event; %d..%d are not committed)",
			info.AckFloor.Stream, committed, committed+1, last)
	}
	recs := validRecords(t, h)
	storetest.AssertSameDump(t, storetest.MustDump(t, h.db), mustExpect(t, recs[:committed]))

	start := time.Now()
	w2 := startWriter(t, h.js, h.db, writer.Config{})
	h.waitAcked(t, w2, last)
	storetest.AssertSameDump(t, storetest.MustDump(t, h.db), mustExpect(t, recs))
	if got := w2.w.Stats.Applied.Load(); got != n {
		t.Errorf("writer 2 applied %d, want all %d uncommitted events", got, n)
	}
	t.Logf("the next writer projected the uncommitted events in %v", time.Since(start))
}

func TestPoisonMixKeepsFlowing(t *testing.T) {
	h := mustHarness(t)
	ctx := h.ctx
	w := startWriter(t, h.js, h.db, writer.Config{})

	poison := events.Subject(root, fleet, "poison")
	const head = `{"schema":1,"kind":"checkpoint.put","event_id":"p","fleet":"default","thread_id":"poison","created_at":"2026-03-01T12:00:00Z"`
	const body = `,"checkpoint_ns":"","checkpoint_id":"c","checkpoint":{},"metadata":{}}`
	big := func(size int) []byte { // a valid checkpoint of exactly size bytes
		b := []byte(head + `,"checkpoint_id":"c","checkpoint":{"pad":"`)
		tail := `"},"metadata":{}}`
		b = append(b, bytes.Repeat([]byte("x"), size-len(b)-len(tail))...)
		return append(b, tail...)
	}
	cases := []letter{
		// Fits the broker with its message id, but not with the
		// dead-letter headers added.
		{name: "at the broker's max_payload", data: big(broker.DefaultMaxPayload - 100),
			reason: fmt.Sprintf("over the %d-byte maximum", events.DefaultMaxEventBytes), omitted: true},
		{name: "invalid JSON", data: []byte(`{"schema":1,`), reason: "not strict JSON"},
		{name: "not an object", data: []byte(`[1,2]`), reason: "must be a JSON object"},
		{name: "duplicate key", data: []byte(`{"schema":1,"kind":"thread.delete","event_id":"p","fleet":"default","thread_id":"poison","thread_id":"poison","created_at":"2026-03-01T12:00:00Z"}`),
			reason: `duplicate object key "thread_id"`},
		{name: "wrong type", data: []byte(strings.Replace(head, `"event_id":"p"`, `"event_id":7`, 1) + body), reason: "event_id: must be a string"},
		{name: "unknown kind", data: []byte(strings.Replace(head, "checkpoint.put", "checkpoint.erase", 1) + `}`), reason: `unknown kind "checkpoint.erase"`},
		{name: "schema 2", data: []byte(strings.Replace(head, `"schema":1`, `"schema":2`, 1) + body), reason: "version 2 is not supported"},
		{name: "empty event id", data: []byte(strings.Replace(head, `"event_id":"p"`, `"event_id":""`, 1) + body), reason: "event_id: must not be empty"},
		{name: "600-byte id", data: []byte(head + strings.Replace(body, `"checkpoint_id":"c"`, `"checkpoint_id":"`+strings.Repeat("i", 600)+`"`, 1)),
			reason: "checkpoint_id: 600 bytes, over the 512-byte maximum"},
		{name: "invalid UTF-8", data: []byte(head + strings.Replace(body, `"checkpoint_id":"c"`, "\"checkpoint_id\":\"c\xff\xfe\"", 1)), reason: "invalid UTF-8"},
		{name: "control character in thread_id", data: []byte(strings.Replace(head, `"thread_id":"poison"`, `"thread_id":"poi\u0007son"`, 1) + body),
			reason: "thread_id: control character U+0007"},
		{name: "checkpoint is an array", data: []byte(head + strings.Replace(body, `"checkpoint":{}`, `"checkpoint":[]`, 1)), reason: "checkpoint: must be a JSON object"},
		{name: "metadata is a string", data: []byte(head + strings.Replace(body, `"metadata":{}`, `"metadata":"{}"`, 1)), reason: "metadata: must be a JSON object"},
		{name: "reserved namespace", data: []byte(head + strings.Replace(body, `"checkpoint_ns":""`, `"checkpoint_ns":" "`, 1)), reason: `checkpoint_ns: " " is reserved`},
		{name: "unknown field", data: []byte(head + strings.Replace(body, `"metadata":{}`, `"metadata":{},"extra":1`, 1)), reason: "extra: unknown field for kind checkpoint.put"},
		{name: "bad timestamp", data: []byte(strings.Replace(head, "2026-03-01T12", "2026-02-30T12", 1) + body), reason: "created_at: not an RFC 3339 timestamp"},
		{name: "prune below 0", data: []byte(strings.Replace(head, "checkpoint.put", "thread.prune", 1) + `,"below_seq":0}`), reason: "below_seq: must be an integer in [1,"},
		{name: "duplicate write idx", data: []byte(strings.Replace(head, "checkpoint.put", "writes.put", 1) +
			`,"checkpoint_id":"c","task_id":"t","writes":[{"idx":1,"channel":"a","value":1},{"idx":1,"channel":"b","value":2}]}`),
			reason: "is already used by writes[0]"},
		{name: "thread does not match subject", subject: events.Subject(root, fleet, "elsewhere"), data: []byte(head + body), reason: "does not match"},
		{name: "over cairn's maximum", data: big(events.DefaultMaxEventBytes + 1<<20),
			reason: fmt.Sprintf("over the %d-byte maximum", events.DefaultMaxEventBytes)},
	}
	if broker.DefaultMaxPayload <= events.DefaultMaxEventBytes+1<<20 {
		t.Fatalf("broker max_payload %d leaves no room above cairn's maximum %d", broker.DefaultMaxPayload, events.DefaultMaxEventBytes)
	}

	var valid []projector.Record
	publishValid := func(i int) {
		e := checkpoint(fmt.Sprintf("good-%d", i), "c", "", fmt.Sprintf(`{"i":%d}`, i))
		valid = append(valid, projector.Record{Seq: h.publish(t, e), Event: e})
	}
	for i := range cases {
		publishValid(i)
		c := &cases[i]
		if c.subject == "" {
			c.subject = poison
		}
		c.msgID = fmt.Sprintf("poison-%d", i)
		c.seq = h.publishRaw(t, c.subject, c.msgID, c.data)
	}
	publishValid(len(cases))

	last := h.lastSeq(t, h.stream)
	h.waitAcked(t, w, last)
	storetest.AssertSameDump(t, storetest.MustDump(t, h.db), mustExpect(t, valid))
	letters := dlqBySeq(t, h)
	if len(letters) != len(cases) {
		t.Errorf("dead letters: got %d, want %d", len(letters), len(cases))
	}
	for _, c := range cases {
		dl, ok := letters[c.seq]
		if !ok {
			t.Errorf("%s (seq %d): no dead letter", c.name, c.seq)
			continue
		}
		checkLetter(t, c, dl)
	}
	if got := w.w.Stats.DeadLettered.Load(); got != int64(len(cases)) {
		t.Errorf("dead-lettered %d, want %d", got, len(cases))
	}
	if got := w.w.Stats.Applied.Load(); got != int64(len(valid)) {
		t.Errorf("applied %d, want %d", got, len(valid))
	}
	// This build cannot fix any of them: a redrive leaves every one.
	res, err := writer.Redrive(ctx, h.js, writer.RedriveConfig{Logger: quiet})
	if err != nil || res.Redriven != 0 || res.StillInvalid != len(cases) {
		t.Errorf("redrive: got %+v, %v; want 0 redriven, %d still invalid", res, err, len(cases))
	}

	// Over the broker's max_payload: refused before anything is sent, both
	// by the payload alone and by payload plus headers.
	for _, size := range []int{broker.DefaultMaxPayload + 1, broker.DefaultMaxPayload - 8} {
		msg := &nats.Msg{Subject: poison, Data: make([]byte, size), Header: nats.Header{}}
		_, err := broker.PublishMsg(ctx, h.js, msg, fmt.Sprintf("huge-%d", size), time.Second, quiet)
		if !errors.Is(err, events.ErrInvalid) || !strings.Contains(err.Error(), "max_payload") {
			t.Errorf("publish %d bytes: got %v, want an invalid error naming max_payload", size, err)
		}
	}
	if got := h.lastSeq(t, h.stream); got != last {
		t.Errorf("refused publishes changed the stream: last seq %d, want %d", got, last)
	}
	w.checkAlive(t)
}
