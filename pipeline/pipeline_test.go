package pipeline_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/pipeline"
	"github.com/cairn-io/cairn/pipeline/pipelinetest"
	"github.com/cairn-io/cairn/query"
	"github.com/cairn-io/cairn/saver"
)

// MustStart starts an in-process pipeline in a temp dir.
var MustStart = pipelinetest.MustStart

func newSaver(p *pipeline.Pipeline) *saver.Saver {
	return saver.New(p.Publisher, query.NewClient(p.QueryURL, nil))
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestSaverRoundTripExactWithReadYourWrites(t *testing.T) {
	p := MustStart(t, pipeline.Config{Writers: 2})
	s := newSaver(p)
	ctx := ctxT(t)
	state := json.RawMessage(`{"zeta":1,"alpha":{"big":123456789012345678901234567890,"dec":0.10,"exp":1E+2},` +
		"\n  " + `"html":"<b>&</b>","uni":"\u00e9 ✓ \ud83d\ude00"}`)
	meta := json.RawMessage(`{"turn":1, "score":2.50}`)
	for _, thread := range []string{"plain-1", "a.b.c", "star*", "gt>", "with spaces", "ünïcødé ✓", "slash/and%percent?q=1#h",
		strings.Repeat("長", 170)} { // 510 bytes
		ref, seq, err := s.Put(ctx, saver.Ref{ThreadID: thread}, "v1", state, meta)
		if err != nil {
			t.Fatalf("put %q: %v", thread, err)
		}
		if seq == 0 || ref.CheckpointID != "v1" {
			t.Fatalf("put %q: got seq %d ref %+v", thread, seq, ref)
		}
		// Read-your-writes: the read waits until the writer committed seq.
		got, err := s.Get(ctx, saver.Ref{ThreadID: thread})
		if err != nil {
			t.Fatalf("get %q: %v", thread, err)
		}
		if got.ThreadID != thread || got.ID != "v1" || got.Seq != seq {
			t.Errorf("get %q: got thread %q id %q seq %d, want seq %d", thread, got.ThreadID, got.ID, got.Seq, seq)
		}
		if string(got.State) != string(state) || string(got.Metadata) != string(meta) {
			t.Errorf("get %q: state or metadata not byte-exact:\n got %s %s\nwant %s %s", thread, got.State, got.Metadata, state, meta)
		}
	}
}

func TestLineageNewestFirstBySeq(t *testing.T) {
	p := MustStart(t, pipeline.Config{})
	s := newSaver(p)
	ctx := ctxT(t)
	ref := saver.Ref{ThreadID: "lineage"}
	for i := 1; i <= 12; i++ {
		var err error
		ref, _, err = s.Put(ctx, ref, fmt.Sprintf("v%d", i), json.RawMessage(fmt.Sprintf(`{"i":%d}`, i)), json.RawMessage(fmt.Sprintf(`{"turn":%d}`, i)))
		if err != nil {
			t.Fatal(err)
		}
	}
	list, err := s.List(ctx, saver.Ref{ThreadID: "lineage"}, saver.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, c := range list {
		got = append(got, c.ID)
	}
	want := []string{"v12", "v11", "v10", "v9", "v8", "v7", "v6", "v5", "v4", "v3", "v2", "v1"}
	if !slices.Equal(got, want) {
		t.Errorf("list: got %v, want %v", got, want)
	}
	if list[0].ParentID != "v11" || list[11].ParentID != "" {
		t.Errorf("parents: got %q and %q, want v11 and none", list[0].ParentID, list[11].ParentID)
	}
	// Filter by typed metadata, before, limit.
	page, err := s.List(ctx, saver.Ref{ThreadID: "lineage"}, saver.ListOptions{Filter: json.RawMessage(`{"turn":7}`)})
	if err != nil || len(page) != 1 || page[0].ID != "v7" {
		t.Errorf("filter turn=7: got %v, %v", page, err)
	}
	page, err = s.List(ctx, saver.Ref{ThreadID: "lineage"}, saver.ListOptions{Filter: json.RawMessage(`{"turn":"7"}`)})
	if err != nil || len(page) != 0 {
		t.Errorf("filter turn=\"7\" (a string): got %d results, %v; want none", len(page), err)
	}
	page, err = s.List(ctx, saver.Ref{ThreadID: "lineage"}, saver.ListOptions{Before: "v10", Limit: 2})
	if err != nil || len(page) != 2 || page[0].ID != "v9" || page[1].ID != "v8" {
		t.Errorf("before v10 limit 2: got %v, %v", page, err)
	}
	anc, err := query.NewClient(p.QueryURL, nil).Ancestors(ctx, "lineage", "", "v12", 3, query.MinSeq{})
	if err != nil || len(anc) != 3 || anc[0].ID != "v11" || anc[2].ID != "v9" {
		t.Errorf("ancestors: got %v, %v", anc, err)
	}
}

func TestWritesAndDelete(t *testing.T) {
	p := MustStart(t, pipeline.Config{})
	s := newSaver(p)
	ctx := ctxT(t)
	ref, _, err := s.Put(ctx, saver.Ref{ThreadID: "w"}, "v1", json.RawMessage(`{}`), json.RawMessage(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	neg := int64(-1)
	if _, err := s.PutWrites(ctx, ref, "status-page-update", "", []saver.Write{
		{Channel: "status", Value: json.RawMessage(`"we are investigating"`)},
		{Channel: "pagerduty", Value: json.RawMessage(`"warmed"`)},
		{Channel: "__error__", Value: json.RawMessage(`{"msg":"x"}`), Idx: &neg},
	}); err != nil {
		t.Fatal(err)
	}
	ws, err := s.GetWrites(ctx, ref, "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, w := range ws {
		got = append(got, fmt.Sprintf("%d:%s=%s", w.Idx, w.Channel, w.Value))
	}
	if want := []string{`-1:__error__={"msg":"x"}`, `0:status="we are investigating"`, `1:pagerduty="warmed"`}; !slices.Equal(got, want) {
		t.Errorf("writes: got %v, want %v", got, want)
	}
	cp, err := s.Get(ctx, ref)
	if err != nil || len(cp.PendingWrites) != 3 {
		t.Errorf("get with pending writes: got %d writes, %v", len(cp.PendingWrites), err)
	}
	if _, err := s.DeleteThread(ctx, "w"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, saver.Ref{ThreadID: "w"}); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("get after delete: got %v, want not found", err)
	}
}

func TestHTTPErrors(t *testing.T) {
	p := MustStart(t, pipeline.Config{})
	for _, tt := range []struct {
		path   string
		status int
		code   string
	}{
		{"/v1/threads/none/latest", 404, "not_found"},
		{"/v1/threads/none/checkpoints/v1", 404, "not_found"},
		{"/v1/threads/t/checkpoints?limit=0", 400, "invalid"},
		{"/v1/threads/t/checkpoints?limit=100000", 400, "invalid"},
		{"/v1/threads/t/checkpoints?limt=3", 400, "invalid"},
		{"/v1/threads/t/checkpoints?filter=[1]", 400, "invalid"},
		{"/v1/threads/t/checkpoints?filter={\"a\":1,\"a\":2}", 400, "invalid"},
		{"/v1/threads/t/latest?min_seq=soon", 400, "invalid"},
		{"/v1/threads/t/latest?min_seq=-1", 400, "invalid"},
		{"/v1/checkpoints?before_seq=x", 400, "invalid"},
		{"/v1/threads/t/checkpoints/v1/ancestors?depth=-3", 400, "invalid"},
		{"/v1/threads/%ff/latest", 400, "invalid"},
		{"/v1/nothing", 404, "not_found"},
	} {
		resp, err := http.Get(p.QueryURL + tt.path)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		var e struct{ Code, Message string }
		if err := json.Unmarshal(body, &e); err != nil {
			t.Errorf("%s: body %q is not a JSON error", tt.path, body)
		}
		if resp.StatusCode != tt.status || e.Code != tt.code || e.Message == "" {
			t.Errorf("%s: got %d %+v, want %d %s", tt.path, resp.StatusCode, e, tt.status, tt.code)
		}
	}
}

func TestMetricsShowWriterAndQuery(t *testing.T) {
	p := MustStart(t, pipeline.Config{})
	s := newSaver(p)
	ctx := ctxT(t)
	if _, _, err := s.Put(ctx, saver.Ref{ThreadID: "m"}, "v1", json.RawMessage(`{}`), json.RawMessage(`{}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, saver.Ref{ThreadID: "m"}); err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(p.QueryURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{`cairn_writer_events_total{outcome="applied"} 1`, "cairn_writer_apply_seconds_count 1"} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
}
