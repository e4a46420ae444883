package query_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/cairn-io/cairn/broker"
	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
	"github.com/cairn-io/cairn/projector/storetest"
	"github.com/cairn-io/cairn/query"
	"github.com/cairn-io/cairn/sqlite"
)

// MustOpenStore opens an in-memory SQLite store, closed when the test ends.
func MustOpenStore(tb testing.TB) *sqlite.DB {
	tb.Helper()
	db, err := sqlite.Open(context.Background(), sqlite.Config{Path: sqlite.MemoryPath})
	if err != nil {
		tb.Fatalf("open sqlite: %v", err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

// MustServe serves svc's HTTP API until the test ends.
func MustServe(tb testing.TB, svc *query.Service) *httptest.Server {
	tb.Helper()
	srv := httptest.NewServer(svc.Handler())
	tb.Cleanup(srv.Close)
	return srv
}

// MustApply projects recs into store as one batch, each Applied.
func MustApply(tb testing.TB, store projector.Store, recs ...projector.Record) {
	tb.Helper()
	res, err := projector.New(store).Apply(context.Background(), recs)
	if err != nil {
		tb.Fatalf("apply: %v", err)
	}
	for i, o := range res.Outcomes {
		if o != projector.Applied {
			tb.Fatalf("apply record %d (seq %d): outcome %v, %v", i, recs[i].Seq, o, res.Errors[i])
		}
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func testContext(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

var createdAt = time.Date(2025, 3, 4, 5, 6, 7, 123456789, time.UTC)

func checkpointEvent(eventID, thread, ns, id, parent, state, metadata string) *events.Event {
	return &events.Event{
		Kind: events.KindCheckpointPut, EventID: eventID, Fleet: events.DefaultFleet, ThreadID: thread, CreatedAt: createdAt,
		Checkpoint: &events.Checkpoint{NS: ns, ID: id, ParentID: parent, State: json.RawMessage(state), Metadata: json.RawMessage(metadata)},
	}
}

func writesEvent(eventID, thread, ns, checkpointID, task, path string, ws ...events.Write) *events.Event {
	return &events.Event{
		Kind: events.KindWritesPut, EventID: eventID, Fleet: events.DefaultFleet, ThreadID: thread, CreatedAt: createdAt,
		Writes: &events.Writes{NS: ns, CheckpointID: checkpointID, TaskID: task, TaskPath: path, Writes: ws},
	}
}

// get fetches path from srv and returns the status, the headers and the
// body.
func get(tb testing.TB, srv *httptest.Server, path string) (int, http.Header, []byte) {
	tb.Helper()
	resp, err := srv.Client().Get(srv.URL + path)
	if err != nil {
		tb.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatalf("GET %s: read body: %v", path, err)
	}
	return resp.StatusCode, resp.Header, body
}

// object decodes a JSON object into its members, keeping each value's text.
func object(tb testing.TB, what string, b []byte) map[string]json.RawMessage {
	tb.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		tb.Fatalf("%s: %q is not a JSON object: %v", what, b, err)
	}
	return m
}

func keys(m map[string]json.RawMessage) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

// ---- Read-your-writes against JetStream ----

func TestReadYourWritesWaitsForTheSlowerWriter(t *testing.T) {
	ctx := testContext(t)
	nh := mustNATS(t)
	js, st := nh.js, nh.st
	cons, err := st.CreateOrUpdateConsumer(ctx, jetstream.ConsumerConfig{
		Durable:       broker.DurableName(events.DefaultFleet, projector.DefaultPrefix),
		FilterSubject: events.FleetFilter(events.DefaultRoot, events.DefaultFleet),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxDeliver:    -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	pos, err := broker.NewPosition(ctx, js, events.DefaultRoot, events.DefaultFleet, projector.DefaultPrefix)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := broker.NewPublisher(js, broker.PublisherConfig{Logger: quietLogger()})
	if err != nil {
		t.Fatal(err)
	}
	s1, err := pub.Publish(ctx, checkpointEvent("ea", "slow", "", "A", "", `{"who":"A"}`, `{}`))
	if err != nil {
		t.Fatal(err)
	}
	s2, err := pub.Publish(ctx, checkpointEvent("eb", "fast", "", "B", "", `{"who":"B"}`, `{}`))
	if err != nil {
		t.Fatal(err)
	}

	// Two writers, one message each: writer 1 holds A, writer 2 holds B.
	fetchOne := func() (jetstream.Msg, projector.Record) {
		t.Helper()
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		var msgs []jetstream.Msg
		for m := range batch.Messages() {
			msgs = append(msgs, m)
		}
		if len(msgs) != 1 {
			t.Fatalf("fetch: got %d messages (%v), want 1", len(msgs), batch.Error())
		}
		md, err := msgs[0].Metadata()
		if err != nil {
			t.Fatal(err)
		}
		e, err := events.Decode(msgs[0].Data(), 0)
		if err != nil {
			t.Fatal(err)
		}
		return msgs[0], projector.Record{Seq: md.Sequence.Stream, Event: e}
	}
	msgA, recA := fetchOne()
	msgB, recB := fetchOne()
	if recA.Seq != s1 || recB.Seq != s2 {
		t.Fatalf("fetched seqs %d and %d, want %d and %d", recA.Seq, recB.Seq, s1, s2)
	}
	store := MustOpenStore(t)
	// The later batch commits first.
	MustApply(t, store, recB)
	if err := msgB.DoubleAck(ctx); err != nil {
		t.Fatal(err)
	}

	// A short wait: A is not committed, so the read cannot be answered.
	short := MustServe(t, query.NewService(store, pos, query.Config{WaitTimeout: 300 * time.Millisecond, Logger: quietLogger()}))
	for _, minSeq := range []string{fmt.Sprint(s2), "head"} {
		path := "/v1/threads/slow/latest?min_seq=" + minSeq
		status, h, body := get(t, short, path)
		if status != http.StatusServiceUnavailable || h.Get("Retry-After") == "" {
			t.Errorf("%s before A commits: got %d with Retry-After %q, want 503 with Retry-After", path, status, h.Get("Retry-After"))
		}
		m := object(t, path, body)
		var code string
		var applied json.Number
		if err := json.Unmarshal(m["code"], &code); err != nil || code != "unavailable" {
			t.Errorf("%s: code %s, want \"unavailable\"", path, m["code"])
		}
		if err := json.Unmarshal(m["applied_seq"], &applied); err != nil {
			t.Errorf("%s: applied_seq %s is not a number", path, m["applied_seq"])
		} else if n, err := applied.Int64(); err != nil || uint64(n) >= s1 {
			t.Errorf("%s: applied_seq %s, want below %d (A is not acknowledged)", path, applied, s1)
		}
		if _, ok := m["message"]; !ok {
			t.Errorf("%s: no message in %s", path, body)
		}
	}

	// A long wait: the reads block until writer 1 commits and acks A.
	long := MustServe(t, query.NewService(store, pos, query.Config{WaitTimeout: 10 * time.Second, Logger: quietLogger()}))
	type answer struct {
		path   string
		status int
		body   []byte
	}
	answers := make(chan answer, 2)
	for _, minSeq := range []string{fmt.Sprint(s2), "head"} {
		path := "/v1/threads/slow/latest?min_seq=" + minSeq
		go func() {
			resp, err := long.Client().Get(long.URL + path)
			if err != nil {
				answers <- answer{path: path, status: -1, body: []byte(err.Error())}
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			answers <- answer{path, resp.StatusCode, body}
		}()
	}
	select {
	case a := <-answers:
		t.Fatalf("%s answered %d %s before A was committed", a.path, a.status, a.body)
	case <-time.After(200 * time.Millisecond):
	}
	MustApply(t, store, recA)
	if err := msgA.DoubleAck(ctx); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		select {
		case a := <-answers:
			if a.status != http.StatusOK {
				t.Errorf("%s after A committed: got %d %s, want 200", a.path, a.status, a.body)
				continue
			}
			m := object(t, a.path, a.body)
			if string(m["checkpoint_id"]) != `"A"` || string(m["checkpoint"]) != `{"who":"A"}` || string(m["seq"]) != fmt.Sprint(s1) {
				t.Errorf("%s: got %s, want checkpoint A at seq %d", a.path, a.body, s1)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("read-your-writes requests did not answer within 10s of A's commit")
		}
	}
}

// ---- The HTTP API over a store filled through the projector ----

// fixture fills a store and remembers what it put there.
type fixture struct {
	store *sqlite.DB
	seq   uint64
	recs  []projector.Record
	total int // checkpoints in the store
}

func (f *fixture) put(e *events.Event) uint64 {
	f.seq++
	f.recs = append(f.recs, projector.Record{Seq: f.seq, Event: e})
	if e.Kind == events.KindCheckpointPut {
		f.total++
	}
	return f.seq
}

func (f *fixture) checkpoint(thread, ns, id, parent, state, metadata string) uint64 {
	return f.put(checkpointEvent(fmt.Sprintf("e%d", f.seq+1), thread, ns, id, parent, state, metadata))
}

// weirdIDs are thread (and checkpoint) ids that need escaping in a URL or
// mean something to NATS, to a path cleaner or to a shell.
var weirdIDs = []string{
	"plain", "a/b", "/leading", "trailing/", "100%", "%2F", "what?x=1", "frag#1", "a.b.c", ".", "..", "a/../b", "./x",
	"star*", "gt>", "with spaces", " padded ", "plus+sign", "semi;colon", "amp&eq=", "ünïcødé ✓ 長", "emoji 😀",
	`quote"back\slash`, "tab-less~tilde",
}

const (
	t1State = `{"z": 1,  "a":[1.0, 2e3, "\u00e9é"], "nested": {"b": null, "a": true}}`
	t1Meta  = `{"step": 1, "source": "input"}`
)

func newFixture(tb testing.TB) *fixture {
	f := &fixture{store: MustOpenStore(tb)}
	// Thread t1: a lineage in the root namespace, one checkpoint in "sub",
	// pending writes of two tasks against v2.
	f.checkpoint("t1", "", "v1", "", t1State, t1Meta)
	f.checkpoint("t1", "", "v2", "v1", `{"i":2}`, `{"step":2}`)
	f.checkpoint("t1", "sub", "s1", "", `{"sub":true}`, `{}`)
	f.put(writesEvent("w-b", "t1", "", "v2", "task-b", "path/b",
		events.Write{Idx: 0, Channel: "c0", Value: json.RawMessage(`"x"`)},
		events.Write{Idx: -1, Channel: "__error__", Value: json.RawMessage(`{"e": 1.50}`)}))
	f.put(writesEvent("w-a", "t1", "", "v2", "task-a", "",
		events.Write{Idx: 0, Channel: "c", Value: json.RawMessage(`[1, 2]`)}))
	f.checkpoint("t1", "", "v3", "v2", `{"i":3}`, `{"step":3}`)

	// Typed metadata.
	f.checkpoint("meta", "", "m1", "", `{}`, `{"n":1,"o":{"x":1,"y":[1,"a"]}}`)
	f.checkpoint("meta", "", "m2", "", `{}`, `{"n":"1"}`)
	f.checkpoint("meta", "", "m3", "", `{}`, `{"o":{"y":[1,"a"],"x":1.0},"n":1.0}`)
	f.checkpoint("meta", "", "m4", "", `{}`, `{"n":10,"o":{"x":1}}`)
	f.checkpoint("meta", "", "m5", "", `{}`, `{"n":1e0,"o":{"x":1,"y":[1,"a"],"z":0}}`)

	// A long thread to page through.
	for i := range 23 {
		parent := ""
		if i > 0 {
			parent = fmt.Sprintf("p%02d", i-1)
		}
		f.checkpoint("page", "", fmt.Sprintf("p%02d", i), parent, `{}`, fmt.Sprintf(`{"even":%t,"i":%d}`, i%2 == 0, i))
	}

	// Weird ids: checkpoint <id> (also the task id of its writes) and a
	// child checkpoint of it.
	for _, id := range weirdIDs {
		f.checkpoint(id, "", id, "", `{"id":`+string(events.AppendString(nil, id))+`}`, `{}`)
		f.put(writesEvent("w-"+id, id, "", id, id, "", events.Write{Channel: id, Value: json.RawMessage(`1`)}))
		f.checkpoint(id, "", "child", id, `{}`, `{}`)
	}
	MustApply(tb, f.store, f.recs...)
	return f
}

func TestHTTPShapes(t *testing.T) {
	f := newFixture(t)
	srv := MustServe(t, query.NewService(f.store, nil, query.Config{Logger: quietLogger()}))

	checkpointKeys := []string{"checkpoint", "checkpoint_id", "checkpoint_ns", "created_at", "event_id", "metadata", "parent_checkpoint_id", "seq", "thread_id"}
	withWrites := append(slices.Clone(checkpointKeys), "pending_writes", "parent_pruned")
	slices.Sort(withWrites)
	writeKeys := []string{"channel", "idx", "seq", "task_id", "task_path", "value"}

	// checkCheckpoint compares one checkpoint object with its want members
	// (their JSON text, byte for byte) and its key set.
	checkCheckpoint := func(what string, m map[string]json.RawMessage, wantKeys []string, want map[string]string) {
		t.Helper()
		if got := keys(m); !slices.Equal(got, wantKeys) {
			t.Errorf("%s: keys %v, want %v", what, got, wantKeys)
		}
		for k, v := range want {
			if string(m[k]) != v {
				t.Errorf("%s: %s is %s, want %s", what, k, m[k], v)
			}
		}
	}
	v1 := map[string]string{
		"thread_id": `"t1"`, "checkpoint_ns": `""`, "checkpoint_id": `"v1"`, "parent_checkpoint_id": `null`,
		"checkpoint": t1State, "metadata": t1Meta, "created_at": `"2025-03-04T05:06:07.123456789Z"`, "seq": `1`, "event_id": `"e1"`,
	}

	t.Run("checkpoint", func(t *testing.T) {
		status, h, body := get(t, srv, "/v1/threads/t1/checkpoints/v1")
		if status != 200 || h.Get("Content-Type") != "application/json" {
			t.Fatalf("got %d %q %s", status, h.Get("Content-Type"), body)
		}
		m := object(t, "v1", body)
		checkCheckpoint("v1", m, withWrites, v1)
		if string(m["pending_writes"]) != `[]` {
			t.Errorf("v1 pending_writes: got %s, want []", m["pending_writes"])
		}
	})

	t.Run("pending writes", func(t *testing.T) {
		_, _, body := get(t, srv, "/v1/threads/t1/checkpoints/v2")
		m := object(t, "v2", body)
		checkCheckpoint("v2", m, withWrites, map[string]string{"parent_checkpoint_id": `"v1"`, "checkpoint": `{"i":2}`, "seq": "2"})
		var ws []map[string]json.RawMessage
		if err := json.Unmarshal(m["pending_writes"], &ws); err != nil {
			t.Fatal(err)
		}
		want := []map[string]string{
			{"task_id": `"task-a"`, "task_path": `""`, "idx": `0`, "channel": `"c"`, "value": `[1, 2]`, "seq": `5`},
			{"task_id": `"task-b"`, "task_path": `"path/b"`, "idx": `-1`, "channel": `"__error__"`, "value": `{"e": 1.50}`, "seq": `4`},
			{"task_id": `"task-b"`, "task_path": `"path/b"`, "idx": `0`, "channel": `"c0"`, "value": `"x"`, "seq": `4`},
		}
		if len(ws) != len(want) {
			t.Fatalf("pending writes: got %d, want %d: %s", len(ws), len(want), m["pending_writes"])
		}
		for i, w := range ws {
			checkCheckpoint(fmt.Sprintf("write %d", i), w, writeKeys, want[i])
		}
		// The writes endpoint returns the same rows; task= narrows them.
		_, _, body = get(t, srv, "/v1/threads/t1/checkpoints/v2/writes")
		wm := object(t, "writes", body)
		if got := keys(wm); !slices.Equal(got, []string{"writes"}) || string(wm["writes"]) != string(m["pending_writes"]) {
			t.Errorf("writes endpoint: got %s, want {\"writes\":%s}", body, m["pending_writes"])
		}
		_, _, body = get(t, srv, "/v1/threads/t1/checkpoints/v2/writes?task=task-b")
		if err := json.Unmarshal(object(t, "writes", body)["writes"], &ws); err != nil || len(ws) != 2 || string(ws[0]["task_id"]) != `"task-b"` {
			t.Errorf("writes of task-b: got %s", body)
		}
	})

	t.Run("latest", func(t *testing.T) {
		_, _, body := get(t, srv, "/v1/threads/t1/latest")
		checkCheckpoint("latest", object(t, "latest", body), withWrites, map[string]string{"checkpoint_id": `"v3"`, "parent_checkpoint_id": `"v2"`, "pending_writes": `[]`})
		_, _, body = get(t, srv, "/v1/threads/t1/latest?ns=sub")
		checkCheckpoint("latest sub", object(t, "latest", body), withWrites, map[string]string{"checkpoint_ns": `"sub"`, "checkpoint_id": `"s1"`})
	})

	t.Run("ancestors", func(t *testing.T) {
		_, _, body := get(t, srv, "/v1/threads/t1/checkpoints/v3/ancestors")
		m := object(t, "ancestors", body)
		if got := keys(m); !slices.Equal(got, []string{"ancestors"}) {
			t.Fatalf("ancestors: keys %v", got)
		}
		var as []map[string]json.RawMessage
		if err := json.Unmarshal(m["ancestors"], &as); err != nil || len(as) != 2 {
			t.Fatalf("ancestors: got %s, %v", m["ancestors"], err)
		}
		checkCheckpoint("ancestor 0", as[0], checkpointKeys, map[string]string{"checkpoint_id": `"v2"`})
		checkCheckpoint("ancestor 1", as[1], checkpointKeys, v1)
		_, _, body = get(t, srv, "/v1/threads/t1/checkpoints/v3/ancestors?depth=1")
		if err := json.Unmarshal(object(t, "ancestors", body)["ancestors"], &as); err != nil || len(as) != 1 {
			t.Errorf("ancestors depth 1: got %s", body)
		}
	})

	t.Run("lists", func(t *testing.T) {
		for _, path := range []string{"/v1/threads/t1/checkpoints?ns=", "/v1/checkpoints?thread=t1&ns="} {
			_, _, body := get(t, srv, path)
			m := object(t, path, body)
			if got := keys(m); !slices.Equal(got, []string{"checkpoints", "next_before_seq"}) || string(m["next_before_seq"]) != "null" {
				t.Errorf("%s: keys %v, next_before_seq %s", path, got, m["next_before_seq"])
			}
			var cs []map[string]json.RawMessage
			if err := json.Unmarshal(m["checkpoints"], &cs); err != nil || len(cs) != 3 {
				t.Fatalf("%s: got %s, %v", path, m["checkpoints"], err)
			}
			checkCheckpoint(path+" [2]", cs[2], checkpointKeys, v1)
		}
		_, _, body := get(t, srv, "/v1/threads/t1/checkpoints?ns=&limit=2")
		if m := object(t, "page", body); string(m["next_before_seq"]) != "2" {
			t.Errorf("full page of 2: next_before_seq %s, want 2 (the seq of its last checkpoint)", m["next_before_seq"])
		}
	})

	t.Run("healthz", func(t *testing.T) {
		status, _, body := get(t, srv, "/healthz")
		if status != 200 || string(body) != "{\"status\":\"ok\"}\n" {
			t.Errorf("healthz: got %d %q", status, body)
		}
	})
}

func TestClientRoundTripsIDs(t *testing.T) {
	f := newFixture(t)
	srv := MustServe(t, query.NewService(f.store, nil, query.Config{Logger: quietLogger()}))
	c := query.NewClient(srv.URL, srv.Client())
	ctx := testContext(t)
	for _, id := range weirdIDs {
		t.Run(url.PathEscape(id), func(t *testing.T) {
			state := `{"id":` + string(events.AppendString(nil, id)) + `}`
			latest, err := c.Latest(ctx, id, "", query.MinSeq{})
			if err != nil || latest.ThreadID != id || latest.ID != "child" || latest.ParentID != id {
				t.Errorf("latest: got thread %q id %q parent %q, %v", latest.ThreadID, latest.ID, latest.ParentID, err)
			}
			cp, err := c.Checkpoint(ctx, id, "", id, query.MinSeq{})
			if err != nil || cp.ThreadID != id || cp.ID != id || string(cp.State) != state || cp.ParentID != "" {
				t.Errorf("checkpoint: got %+v, %v", cp, err)
			}
			if len(cp.PendingWrites) != 1 || cp.PendingWrites[0].TaskID != id || cp.PendingWrites[0].Channel != id {
				t.Errorf("checkpoint pending writes: got %+v", cp.PendingWrites)
			}
			ws, err := c.Writes(ctx, id, "", id, id, query.MinSeq{})
			if err != nil || len(ws) != 1 || ws[0].TaskID != id || string(ws[0].Value) != "1" {
				t.Errorf("writes of task %q: got %+v, %v", id, ws, err)
			}
			anc, err := c.Ancestors(ctx, id, "", "child", 0, query.MinSeq{})
			if err != nil || len(anc) != 1 || anc[0].ID != id {
				t.Errorf("ancestors: got %+v, %v", anc, err)
			}
			list, next, err := c.List(ctx, query.ListParams{ThreadID: id})
			if err != nil || next != 0 || len(list) != 2 || list[0].ID != "child" || list[1].ID != id {
				t.Errorf("list: got %+v next %d, %v", list, next, err)
			}
			// The global listing takes the thread as a query parameter.
			status, _, body := get(t, srv, "/v1/checkpoints?thread="+url.QueryEscape(id))
			var out struct{ Checkpoints []query.Checkpoint }
			if err := json.Unmarshal(body, &out); status != 200 || err != nil || len(out.Checkpoints) != 2 || out.Checkpoints[1].ThreadID != id {
				t.Errorf("global list of thread: got %d %s", status, body)
			}
		})
	}
}

func TestListNamespaces(t *testing.T) {
	f := newFixture(t)
	srv := MustServe(t, query.NewService(f.store, nil, query.Config{Logger: quietLogger()}))
	c := query.NewClient(srv.URL, srv.Client())
	ctx := testContext(t)
	ids := func(cs []query.Checkpoint) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.ID)
		}
		return out
	}
	for _, tt := range []struct {
		path string
		want []string
	}{
		{"/v1/threads/t1/checkpoints", []string{"v3", "s1", "v2", "v1"}}, // ns absent: every namespace
		{"/v1/threads/t1/checkpoints?ns=", []string{"v3", "v2", "v1"}},   // ns=: the root namespace
		{"/v1/threads/t1/checkpoints?ns=sub", []string{"s1"}},
		{"/v1/threads/t1/checkpoints?ns=none", nil},
		{"/v1/checkpoints?thread=t1", []string{"v3", "s1", "v2", "v1"}},
		{"/v1/checkpoints?thread=t1&ns=", []string{"v3", "v2", "v1"}},
		{"/v1/checkpoints?thread=t1&ns=sub", []string{"s1"}},
		{"/v1/threads/t1/checkpoints?ns=&before=v3", []string{"v2", "v1"}},
	} {
		status, _, body := get(t, srv, tt.path)
		var out struct{ Checkpoints []query.Checkpoint }
		if err := json.Unmarshal(body, &out); status != 200 || err != nil {
			t.Errorf("%s: got %d %s", tt.path, status, body)
			continue
		}
		if got := ids(out.Checkpoints); !slices.Equal(got, tt.want) {
			t.Errorf("%s: got %v, want %v", tt.path, got, tt.want)
		}
	}
	all, _, err := c.List(ctx, query.ListParams{ThreadID: "t1", AllNS: true})
	if got := ids(all); err != nil || !slices.Equal(got, []string{"v3", "s1", "v2", "v1"}) {
		t.Errorf("client list, all namespaces: got %v, %v", got, err)
	}
	root, _, err := c.List(ctx, query.ListParams{ThreadID: "t1"})
	if got := ids(root); err != nil || !slices.Equal(got, []string{"v3", "v2", "v1"}) {
		t.Errorf("client list, root namespace: got %v, %v", got, err)
	}
	// Single reads: ns absent is the root namespace.
	if cp, err := c.Latest(ctx, "t1", "sub", query.MinSeq{}); err != nil || cp.ID != "s1" || cp.NS != "sub" {
		t.Errorf("client latest in sub: got %+v, %v", cp, err)
	}
	if _, err := c.Checkpoint(ctx, "t1", "sub", "v1", query.MinSeq{}); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("v1 in namespace sub: got %v, want not found", err)
	}
}

func TestListMetadataFilterIsTyped(t *testing.T) {
	f := newFixture(t)
	srv := MustServe(t, query.NewService(f.store, nil, query.Config{Logger: quietLogger()}))
	c := query.NewClient(srv.URL, srv.Client())
	ctx := testContext(t)
	for _, tt := range []struct {
		filter string
		want   []string
	}{
		{`{"n":1}`, []string{"m5", "m3", "m1"}},
		{`{"n":1.0}`, []string{"m5", "m3", "m1"}},
		{`{"n":100e-2}`, []string{"m5", "m3", "m1"}},
		{`{"n":"1"}`, []string{"m2"}},
		{`{"n":10}`, []string{"m4"}},
		{`{"n":true}`, nil},
		{`{"o":{"x":1,"y":[1,"a"]}}`, []string{"m3", "m1"}},
		{`{"o":{"y":[1,"a"],"x":1.00}}`, []string{"m3", "m1"}},
		{`{"o":{"x":1}}`, []string{"m4"}},
		{`{"o":{"y":["a",1],"x":1}}`, nil},
		{`{"n":1,"o":{"x":1}}`, nil},
		{`{"missing":null}`, nil},
		{`{}`, []string{"m5", "m4", "m3", "m2", "m1"}},
	} {
		got, next, err := c.List(ctx, query.ListParams{ThreadID: "meta", Filter: []byte(tt.filter)})
		var ids []string
		for _, c := range got {
			ids = append(ids, c.ID)
		}
		if err != nil || next != 0 || !slices.Equal(ids, tt.want) {
			t.Errorf("filter %s: got %v next %d, %v; want %v", tt.filter, ids, next, err, tt.want)
		}
	}
}

func TestListPagingWalksEveryCheckpointOnce(t *testing.T) {
	f := newFixture(t)
	ctx := testContext(t)
	walk := func(t *testing.T, c *query.Client, p query.ListParams) []string {
		t.Helper()
		var ids []string
		for pages := 0; ; pages++ {
			if pages > 1000 {
				t.Fatalf("paging does not end; %d ids so far", len(ids))
			}
			cs, next, err := c.List(ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			if len(cs) > p.Limit {
				t.Fatalf("page of %d, limit %d", len(cs), p.Limit)
			}
			for _, cp := range cs {
				ids = append(ids, cp.ThreadID+"/"+cp.NS+"/"+cp.ID)
			}
			if next == 0 {
				return ids
			}
			if p.BeforeSeq != 0 && next >= p.BeforeSeq {
				t.Fatalf("cursor did not move: %d after %d", next, p.BeforeSeq)
			}
			p.BeforeSeq = next
		}
	}
	var pageIDs, evenIDs []string
	for i := 22; i >= 0; i-- {
		pageIDs = append(pageIDs, fmt.Sprintf("page//p%02d", i))
		if i%2 == 0 {
			evenIDs = append(evenIDs, fmt.Sprintf("page//p%02d", i))
		}
	}
	for _, scan := range []int{0, 4} { // the default scan limit, and one that cuts filtered pages short
		srv := MustServe(t, query.NewService(f.store, nil, query.Config{ScanLimit: scan, Logger: quietLogger()}))
		c := query.NewClient(srv.URL, srv.Client())
		t.Run(fmt.Sprintf("scan %d", scan), func(t *testing.T) {
			for _, limit := range []int{1, 5, 23, 100} {
				if got := walk(t, c, query.ListParams{ThreadID: "page", Limit: limit}); !slices.Equal(got, pageIDs) {
					t.Errorf("limit %d: got %v, want %v", limit, got, pageIDs)
				}
				if got := walk(t, c, query.ListParams{ThreadID: "page", Limit: limit, Filter: []byte(`{"even":true}`)}); !slices.Equal(got, evenIDs) {
					t.Errorf("limit %d, even only: got %v, want %v", limit, got, evenIDs)
				}
				all := walk(t, c, query.ListParams{AllNS: true, Limit: limit})
				seen := make(map[string]bool)
				for _, id := range all {
					if seen[id] {
						t.Errorf("limit %d, all threads: %s listed twice", limit, id)
					}
					seen[id] = true
				}
				if len(seen) != f.total {
					t.Errorf("limit %d, all threads: %d checkpoints listed, want %d", limit, len(seen), f.total)
				}
			}
		})
	}
}

func TestHTTPErrors(t *testing.T) {
	f := newFixture(t)
	srv := MustServe(t, query.NewService(f.store, nil, query.Config{Logger: quietLogger()}))
	long := url.PathEscape(strings.Repeat("x", events.MaxIDBytes+1))
	for _, tt := range []struct {
		path   string
		status int
		code   string
	}{
		{"/v1/threads/t1/checkpoints?limit=1001", 400, "invalid"},
		{"/v1/checkpoints?limit=1001", 400, "invalid"},
		{"/v1/threads/t1/checkpoints?limit=0", 400, "invalid"},
		{"/v1/threads/t1/checkpoints/v3/ancestors?depth=10001", 400, "invalid"},
		{"/v1/threads/t1/latest?min_seq=1", 503, "unavailable"},
		{"/v1/threads/t1/latest?min_seq=head", 503, "unavailable"},
		{"/v1/threads/t1/checkpoints?min_seq=3", 503, "unavailable"},
		{"/v1/checkpoints?min_seq=3", 503, "unavailable"},
		{"/v1/threads/t1/checkpoints/v1/writes?min_seq=1", 503, "unavailable"},
		{"/v1/threads/t1/checkpoints/v1/ancestors?min_seq=1", 503, "unavailable"},
		{"/v1/threads/t1/latest?min_seq=0", 200, ""}, // no requirement
		{"/v1/threads/t1/latest?bogus=1", 400, "invalid"},
		{"/v1/threads/t1/latest?depth=1", 400, "invalid"},
		{"/v1/checkpoints?before=v1", 400, "invalid"},
		{"/v1/threads/t1/checkpoints?thread=t1", 400, "invalid"},
		{"/v1/threads/t1/latest?ns=a&ns=b", 400, "invalid"},
		{"/v1/threads/t1/latest?ns=&ns=", 400, "invalid"},
		{"/v1/threads/t1/checkpoints?limit=1&limit=1", 400, "invalid"},
		{"/v1/threads/t1/latest?ns=%ff", 400, "invalid"},
		{"/v1/threads/t1/checkpoints/v1/writes?task=%c3%28", 400, "invalid"},
		{"/v1/threads/t1/checkpoints?filter=%7B%22a%22%3A%22%ff%22%7D", 400, "invalid"},
		{"/v1/threads/%ff/latest", 400, "invalid"},
		{"/v1/threads/t1/checkpoints/%ff", 400, "invalid"},
		{"/v1/threads/t1/latest?ns=%zz", 400, "invalid"},
		{"/v1/threads/t1/latest?ns=a;b", 400, "invalid"},
		{"/v1/threads/" + long + "/latest", 400, "invalid"},
		{"/v1/threads/t1/checkpoints?filter=%5B1%5D", 400, "invalid"},
		{"/v1/threads/t1/checkpoints?before_seq=-1", 400, "invalid"},
		{"/v1/threads/t1/checkpoints?ns=&before=nope", 404, "not_found"},
		{"/v1/threads/t1/latest?ns=nope", 404, "not_found"},
		{"/v1/threads/nope/latest", 404, "not_found"},
		{"/v1/threads/t1/checkpoints/nope", 404, "not_found"},
		{"/v1/nothing", 404, "not_found"},
	} {
		status, h, body := get(t, srv, tt.path)
		if status != tt.status {
			t.Errorf("%s: got %d %s, want %d", tt.path, status, body, tt.status)
			continue
		}
		if h.Get("Content-Type") != "application/json" {
			t.Errorf("%s: content type %q", tt.path, h.Get("Content-Type"))
		}
		if tt.status == 200 {
			continue
		}
		m := object(t, tt.path, body)
		var e struct{ Code, Message string }
		if err := json.Unmarshal(body, &e); err != nil || !slices.Equal(keys(m), []string{"code", "message"}) || e.Code != tt.code || e.Message == "" {
			t.Errorf("%s: body %s, want {code: %q, message}", tt.path, body, tt.code)
		}
		if tt.status == 503 && h.Get("Retry-After") == "" {
			t.Errorf("%s: 503 without Retry-After", tt.path)
		}
	}

	// Through the client: error kinds survive the trip.
	c := query.NewClient(srv.URL, srv.Client())
	c.RetryFor = 0
	ctx := testContext(t)
	if _, err := c.Latest(ctx, "t1", "", query.MinSeq{Seq: 1}); !errors.Is(err, events.ErrUnavailable) {
		t.Errorf("client min_seq without a positioner: got %v, want unavailable", err)
	}
	if _, err := c.Latest(ctx, "nope", "", query.MinSeq{}); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("client latest of a missing thread: got %v, want not found", err)
	}
	if _, _, err := c.List(ctx, query.ListParams{Limit: 1001}); !errors.Is(err, events.ErrInvalid) {
		t.Errorf("client list over the limit cap: got %v, want invalid", err)
	}
}

func TestParentPrunedInReads(t *testing.T) {
	store, err := sqlite.Open(context.Background(), sqlite.Config{Path: sqlite.MemoryPath})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	storetest.MustApply(t, store,
		storetest.Put(1, "t", "", "v1", "", `{}`, `{}`), storetest.Put(2, "t", "", "v2", "v1", `{}`, `{}`),
		storetest.Put(3, "t", "", "v3", "v2", `{}`, `{}`), storetest.Prune(4, "t", 3),
		storetest.Put(5, "u", "", "u2", "u1", `{}`, `{}`))
	srv := httptest.NewServer(query.NewService(store, nil, query.Config{}).Handler())
	defer srv.Close()
	c := query.NewClient(srv.URL, nil)
	for _, tt := range []struct {
		thread, id string
		want       bool
	}{
		{"t", "v3", true},  // v2 was pruned
		{"t", "", true},    // latest is v3
		{"u", "u2", false}, // u1 was never stored
	} {
		var cp query.Checkpoint
		var err error
		if tt.id == "" {
			cp, err = c.Latest(context.Background(), tt.thread, "", query.MinSeq{})
		} else {
			cp, err = c.Checkpoint(context.Background(), tt.thread, "", tt.id, query.MinSeq{})
		}
		if err != nil {
			t.Fatalf("%s/%s: %v", tt.thread, tt.id, err)
		}
		if cp.ParentPruned != tt.want {
			t.Errorf("%s/%s: parent_pruned %v, want %v", tt.thread, tt.id, cp.ParentPruned, tt.want)
		}
	}
}
