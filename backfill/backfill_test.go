package backfill_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-io/cairn/backfill"
	"github.com/cairn-io/cairn/broker"
	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/pipeline"
	"github.com/cairn-io/cairn/pipeline/pipelinetest"
	"github.com/cairn-io/cairn/query"
	"github.com/cairn-io/cairn/replay"
)

// MustAsyncPublisher returns an async publisher on p.
func MustAsyncPublisher(tb testing.TB, p *pipeline.Pipeline) *broker.AsyncPublisher {
	tb.Helper()
	pub, err := broker.NewAsyncPublisher(p.JS, broker.AsyncConfig{MaxInFlight: 16})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pub.Close)
	return pub
}

// history is a JSON Lines file: two threads, children listed before their
// parents, a fork, a namespace, writes, and bad lines.
const history = `{"kind":"checkpoint.put","event_id":"h-3","thread_id":"case-1","created_at":"2025-03-01T10:03:00Z","checkpoint_id":"c3","parent_checkpoint_id":"c2","checkpoint":{"n":3},"metadata":{"step":3}}
{"kind":"writes.put","event_id":"h-w2","thread_id":"case-1","created_at":"2025-03-01T10:02:30Z","checkpoint_id":"c2","task_id":"t2","writes":[{"channel":"messages","value":{"role":"tool","content":"ok"}},{"channel":"status","value":"open","idx":-1}]}
{"kind":"checkpoint.put","event_id":"h-2","thread_id":"case-1","created_at":"2025-03-01T10:02:00Z","checkpoint_id":"c2","parent_checkpoint_id":"c1","checkpoint":{"n":2},"metadata":{"step":2}}

{"schema":1,"fleet":"default","kind":"checkpoint.put","event_id":"h-1","thread_id":"case-1","created_at":"2025-03-01T10:01:00Z","checkpoint_id":"c1","checkpoint":{"n":1},"metadata":{"step":1}}
{"kind":"checkpoint.put","event_id":"h-fork","thread_id":"case-1","created_at":"2025-03-01T09:00:00Z","checkpoint_id":"f1","parent_checkpoint_id":"c1","checkpoint":{"fork":true},"metadata":{}}
{"kind":"checkpoint.put","event_id":"h-sub","thread_id":"case-1","created_at":"2025-03-01T10:00:00Z","checkpoint_ns":"sub:a","checkpoint_id":"s1","checkpoint":{"sub":1},"metadata":{}}
{"kind":"checkpoint.put","event_id":"k-1","thread_id":"case-2","created_at":"2025-02-01T00:00:00.5Z","checkpoint_id":"k1","checkpoint":{"k":1},"metadata":{}}
not json at all
{"kind":"thread.delete","event_id":"h-del","thread_id":"case-1","created_at":"2025-03-02T00:00:00Z"}
{"kind":"checkpoint.put","event_id":"h-x","fleet":"other","thread_id":"case-1","created_at":"2025-03-01T10:00:00Z","checkpoint_id":"x","checkpoint":{},"metadata":{}}
{"kind":"checkpoint.put","event_id":"h-bad","thread_id":"case-1","created_at":"yesterday","checkpoint_id":"x","checkpoint":{},"metadata":{}}
{"kind":"checkpoint.put","event_id":"h-1","thread_id":"case-1","created_at":"2025-03-01T10:01:00Z","checkpoint_id":"c1","checkpoint":{"n":"changed"},"metadata":{"step":1}}
`

func gz(t *testing.T, s string) []byte {
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	if _, err := zw.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestReadJSONLAndOrder(t *testing.T) {
	for name, input := range map[string][]byte{"plain": []byte(history), "gzip": gz(t, history)} {
		src, err := backfill.ReadJSONL(bytes.NewReader(input), "default", 0)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var rejectedLines []string
		for _, r := range src.Rejected {
			rejectedLines = append(rejectedLines, r.Where)
		}
		if want := []string{"line 9", "line 10", "line 11", "line 12"}; !slices.Equal(rejectedLines, want) {
			t.Errorf("%s: rejected %v, want %v (%v)", name, rejectedLines, want, src.Rejected)
		}
		ordered, rejected := backfill.Order(src.Items)
		var ids []string
		for _, it := range ordered {
			ids = append(ids, it.Event.EventID)
		}
		// Per thread: parents first, otherwise by created_at; threads in
		// order of appearance.
		want := []string{"h-sub", "h-1", "h-fork", "h-2", "h-w2", "h-3", "k-1"}
		if !slices.Equal(ids, want) {
			t.Errorf("%s: order %v, want %v", name, ids, want)
		}
		if len(rejected) != 1 || rejected[0].Where != "line 13" || !strings.Contains(rejected[0].Reason, "different event") {
			t.Errorf("%s: order rejected %v, want line 13 (a reused event id)", name, rejected)
		}
	}
}

func TestOrderRejectsCycles(t *testing.T) {
	mk := func(id, parent string) backfill.Item {
		return backfill.Item{Where: id, Event: &events.Event{Kind: events.KindCheckpointPut, EventID: id, ThreadID: "t",
			Checkpoint: &events.Checkpoint{ID: id, ParentID: parent, State: json.RawMessage(`{}`), Metadata: json.RawMessage(`{}`)}}}
	}
	ordered, rejected := backfill.Order([]backfill.Item{mk("a", "b"), mk("b", "a"), mk("c", "")})
	if len(ordered) != 1 || ordered[0].Event.EventID != "c" || len(rejected) != 2 {
		t.Errorf("got ordered %d, rejected %v", len(ordered), rejected)
	}
}

func TestBackfillTwiceAddsNothing(t *testing.T) {
	p := pipelinetest.MustStart(t, pipeline.Config{})
	pub := MustAsyncPublisher(t, p)
	api := query.NewClient(p.QueryURL, nil)
	ctx := context.Background()
	src, err := backfill.ReadJSONL(bytes.NewReader(gz(t, history)), "default", 0)
	if err != nil {
		t.Fatal(err)
	}
	var reports int
	res, err := backfill.Run(ctx, pub, api, src, backfill.Config{Progress: func(backfill.Progress) { reports++ }})
	if err != nil {
		t.Fatal(err)
	}
	if res.Published != 7 || res.Skipped != 0 || len(res.Rejected) != 5 || res.Threads != 2 || reports == 0 {
		t.Fatalf("first run: %+v", res)
	}
	first := pipelinetest.MustDump(t, p)
	if got := replay.Counts(first); got[1] != 6 || got[5] != 2 {
		t.Fatalf("after the first run: counts %v, want 6 checkpoints and 2 writes", got)
	}
	// The stream holds each thread's events in historical order: seq
	// order equals the order computed above.
	seqs := make(map[string]uint64)
	for _, v := range first.Checkpoints {
		seqs[v.EventID] = v.Seq
	}
	if !(seqs["h-sub"] < seqs["h-1"] && seqs["h-1"] < seqs["h-fork"] && seqs["h-fork"] < seqs["h-2"] && seqs["h-2"] < seqs["h-3"]) {
		t.Errorf("publish order by seq: %v", seqs)
	}
	latest, err := api.Latest(ctx, "case-1", "", query.MinSeq{})
	if err != nil || latest.ID != "c3" || !latest.CreatedAt.Equal(time.Date(2025, 3, 1, 10, 3, 0, 0, time.UTC)) || latest.EventID != "h-3" {
		t.Errorf("latest of case-1: %s %s %s, %v; want c3 with its original id and time", latest.ID, latest.EventID, latest.CreatedAt, err)
	}

	// Twice: nothing published, everything skipped, tables unchanged.
	res, err = backfill.Run(ctx, pub, api, src, backfill.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Published != 0 || res.Skipped != 7 {
		t.Fatalf("second run: published %d skipped %d, want 0 and 7", res.Published, res.Skipped)
	}
	if c := replay.Compare(first, pipelinetest.MustDump(t, p), 10); !c.Identical {
		t.Fatalf("second run changed the tables: %v", c.Diff)
	}
}

func TestBackfillRefusesThreadWithNewerEvents(t *testing.T) {
	p := pipelinetest.MustStart(t, pipeline.Config{})
	pub := MustAsyncPublisher(t, p)
	api := query.NewClient(p.QueryURL, nil)
	ctx := context.Background()
	now := &events.Event{Kind: events.KindCheckpointPut, EventID: "live-1", ThreadID: "case-2", CreatedAt: time.Now().UTC(),
		Checkpoint: &events.Checkpoint{ID: "live", State: json.RawMessage(`{}`), Metadata: json.RawMessage(`{}`)}}
	if _, err := p.Publisher.Publish(ctx, now); err != nil {
		t.Fatal(err)
	}
	line := `{"kind":"checkpoint.put","event_id":"old-1","thread_id":"case-2","created_at":"2020-01-01T00:00:00Z","checkpoint_id":"old","checkpoint":{},"metadata":{}}` + "\n" +
		`{"kind":"checkpoint.put","event_id":"live-1","thread_id":"case-2","created_at":"2020-01-01T00:00:00Z","checkpoint_id":"live","checkpoint":{"other":1},"metadata":{}}`
	src, err := backfill.ReadJSONL(strings.NewReader(line), "default", 0)
	if err != nil {
		t.Fatal(err)
	}
	res, err := backfill.Run(ctx, pub, api, src, backfill.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Published != 0 || len(res.RefusedThreads) != 1 || len(res.Rejected) != 2 || !strings.Contains(res.Rejected[0].Reason, "newer events") {
		t.Fatalf("refusal: %+v", res)
	}
	res, err = backfill.Run(ctx, pub, api, src, backfill.Config{Force: true})
	if err != nil {
		t.Fatal(err)
	}
	// Forced: the old checkpoint is published; the stored event (same
	// event id) is skipped.
	if res.Published != 1 || res.Skipped != 1 || len(res.RefusedThreads) != 0 {
		t.Fatalf("forced: %+v", res)
	}
	got := fmt.Sprint(replay.Counts(pipelinetest.MustDump(t, p)))
	if got != "[1 2 0 0 0 0 1]" {
		t.Errorf("counts after forced backfill: %s", got)
	}
}
