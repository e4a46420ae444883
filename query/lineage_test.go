package query_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
	"github.com/cairn-io/cairn/query"
)

// agentState renders an agent checkpoint state: messages "role: content".
func agentState(iteration int, messages ...string) string {
	var b strings.Builder
	b.WriteString(`{"messages":[`)
	for i, m := range messages {
		role, content, _ := strings.Cut(m, ": ")
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"role":%s,"content":%s}`, events.AppendString(nil, role), events.AppendString(nil, content))
	}
	fmt.Fprintf(&b, `],"iteration":%d,"confidence":0.5}`, iteration)
	return b.String()
}

// forkMeta is checkpoint metadata recording a cross-thread fork.
func forkMeta(thread, ns, id string) string {
	return fmt.Sprintf(`{"source":"fork","forked_from":{"thread_id":%s,"checkpoint_ns":%s,"checkpoint_id":%s}}`,
		events.AppendString(nil, thread), events.AppendString(nil, ns), events.AppendString(nil, id))
}

// lineageFixture is a store with a forked lineage:
//
//	incident-a: a1 ← a2 ← a3 (pending writes), a2 ← a3b (a fork in the thread); sub: s1
//	incident-b: b1 (forked from incident-a a2) ← b2
//	other-c:    c1 (forked from incident-a a3)
//	gone:       deleted
type lineageFixture struct {
	*fixture
	seqs map[string]uint64 // by checkpoint id
}

func newLineageFixture(tb testing.TB) *lineageFixture {
	tb.Helper()
	f := &lineageFixture{fixture: &fixture{store: MustOpenStore(tb)}, seqs: make(map[string]uint64)}
	put := func(thread, ns, id, parent, state, meta string) {
		f.seqs[id] = f.checkpoint(thread, ns, id, parent, state, meta)
	}
	put("incident-a", "", "a1", "", agentState(1, "system: you are on call", "user: the site is down"), `{"turn":1}`)
	put("incident-a", "", "a2", "a1", agentState(2, "system: you are on call", "user: the site is down", "assistant: checking the load balancer"), `{"turn":2}`)
	put("incident-a", "", "a3", "a2", agentState(3, "system: you are on call", "user: the site is down", "assistant: checking the load balancer",
		"user: any news?", "assistant: rolled back the deploy"), `{"turn":3,"stop_reason":"done"}`)
	f.put(writesEvent("w-a3", "incident-a", "", "a3", "status-page-update", "", events.Write{Channel: "status", Value: json.RawMessage(`"we are investigating"`)}))
	put("incident-a", "sub", "s1", "", `{}`, `{}`)
	put("incident-a", "", "a3b", "a2", agentState(3, "system: you are on call", "user: the site is down", "assistant: paging the database team"), `{"turn":3}`)
	put("incident-b", "", "b1", "", agentState(2, "system: you are on call", "user: the site is down", "assistant: checking the load balancer"), forkMeta("incident-a", "", "a2"))
	put("incident-b", "", "b2", "b1", agentState(3, "system: you are on call", "user: the site is down", "assistant: checking DNS"), `{"turn":3}`)
	put("other-c", "", "c1", "", `{}`, forkMeta("incident-a", "", "a3"))
	put("gone", "", "g1", "", `{}`, `{}`)
	MustApply(tb, f.store, f.recs...)
	seq := f.put(&events.Event{Kind: events.KindThreadDelete, EventID: "del-gone", Fleet: events.DefaultFleet, ThreadID: "gone", CreatedAt: createdAt})
	MustApply(tb, f.store, f.recs[len(f.recs)-1])
	f.seqs["delete gone"] = seq
	return f
}

// getJSON fetches path, wants status, and decodes the body into out.
func getJSON(tb testing.TB, srv interface {
	Client() *http.Client
}, base, path string, status int, out any) []byte {
	tb.Helper()
	resp, err := srv.Client().Get(base + path)
	if err != nil {
		tb.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	var raw json.RawMessage
	if err := json.NewDecoder(resp.Body).Decode(&raw); err != nil {
		tb.Fatalf("GET %s: %d, body not JSON: %v", path, resp.StatusCode, err)
	}
	if resp.StatusCode != status {
		tb.Fatalf("GET %s: got %d %s, want %d", path, resp.StatusCode, raw, status)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			tb.Fatalf("GET %s: decode %s: %v", path, raw, err)
		}
	}
	return raw
}

// changeLines renders changes as "op path old new".
func changeLines(cs []query.Change) []string {
	var out []string
	for _, ch := range cs {
		out = append(out, fmt.Sprintf("%s %s %s %s", ch.Op, ch.Path, ch.Old, ch.New))
	}
	return out
}

func nodeIDs(ns []query.Node) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.ID)
	}
	return out
}

func TestThreadsListing(t *testing.T) {
	f := newLineageFixture(t)
	srv := MustServe(t, query.NewService(f.store, nil, query.Config{Logger: quietLogger()}))
	c := query.NewClient(srv.URL, srv.Client())
	ctx := testContext(t)

	ts, next, err := c.Threads(ctx, query.ThreadsParams{})
	if err != nil || next != 0 {
		t.Fatalf("threads: %v, next %d", err, next)
	}
	var got []string
	for _, th := range ts {
		got = append(got, fmt.Sprintf("%s n=%d ns=%q latest=%s@%d last=%d", th.ThreadID, th.Checkpoints, th.Namespaces, th.Latest.ID, th.Latest.Seq, th.LastSeq))
	}
	want := []string{
		fmt.Sprintf("other-c n=1 ns=[\"\"] latest=c1@%d last=%d", f.seqs["c1"], f.seqs["c1"]),
		fmt.Sprintf("incident-b n=2 ns=[\"\"] latest=b2@%d last=%d", f.seqs["b2"], f.seqs["b2"]),
		fmt.Sprintf("incident-a n=5 ns=[\"\" \"sub\"] latest=a3b@%d last=%d", f.seqs["a3b"], f.seqs["a3b"]),
	}
	if !slices.Equal(got, want) {
		t.Errorf("threads (newest activity first, deleted thread gone):\n got %q\nwant %q", got, want)
	}
	if !ts[2].Latest.CreatedAt.Equal(createdAt) {
		t.Errorf("latest created_at: got %v, want %v", ts[2].Latest.CreatedAt, createdAt)
	}
	for prefix, want := range map[string][]string{"incident-": {"incident-b", "incident-a"}, "other": {"other-c"}, "nope": nil, "incident-a": {"incident-a"}} {
		ts, _, err := c.Threads(ctx, query.ThreadsParams{Prefix: prefix})
		var got []string
		for _, th := range ts {
			got = append(got, th.ThreadID)
		}
		if err != nil || !slices.Equal(got, want) {
			t.Errorf("prefix %q: got %v, %v; want %v", prefix, got, err, want)
		}
	}

	// A walk with limit 1 while a new checkpoint arrives: no thread twice;
	// the thread that became active moves to the front, so this walk
	// (which is past it) does not list it again.
	page, next, err := c.Threads(ctx, query.ThreadsParams{Limit: 1})
	if err != nil || len(page) != 1 || page[0].ThreadID != "other-c" || next != f.seqs["c1"] {
		t.Fatalf("first page: got %+v next %d, %v", page, next, err)
	}
	MustApply(t, f.store, projector.Record{Seq: 1000, Event: checkpointEvent("late", "other-c", "", "c2", "c1", `{}`, `{}`)})
	seen := []string{page[0].ThreadID}
	for next != 0 {
		if page, next, err = c.Threads(ctx, query.ThreadsParams{Limit: 1, BeforeSeq: next}); err != nil {
			t.Fatal(err)
		}
		for _, th := range page {
			seen = append(seen, th.ThreadID)
		}
	}
	if want := []string{"other-c", "incident-b", "incident-a"}; !slices.Equal(seen, want) {
		t.Errorf("walk while other-c grows: got %v, want %v", seen, want)
	}
	if ts, _, _ := c.Threads(ctx, query.ThreadsParams{Limit: 1}); len(ts) != 1 || ts[0].ThreadID != "other-c" || ts[0].Checkpoints != 2 || ts[0].LastSeq != 1000 {
		t.Errorf("after the new checkpoint: got %+v, want other-c with 2 checkpoints at last_seq 1000", ts)
	}
}

func TestTreeChildrenAndForks(t *testing.T) {
	f := newLineageFixture(t)
	srv := MustServe(t, query.NewService(f.store, nil, query.Config{Logger: quietLogger()}))
	c := query.NewClient(srv.URL, srv.Client())
	ctx := testContext(t)

	nodes, next, err := c.Tree(ctx, query.TreeParams{ThreadID: "incident-a", AllNS: true})
	if err != nil || next != 0 {
		t.Fatalf("tree: %v next %d", err, next)
	}
	if got, want := nodeIDs(nodes), []string{"a3b", "s1", "a3", "a2", "a1"}; !slices.Equal(got, want) {
		t.Errorf("tree, every namespace: got %v, want %v", got, want)
	}
	nodes, _, _ = c.Tree(ctx, query.TreeParams{ThreadID: "incident-a"})
	parents := make(map[string]string)
	for _, n := range nodes {
		if n.ParentID != nil {
			parents[n.ID] = *n.ParentID
		}
		if n.ForkedFrom != nil || n.NS != "" {
			t.Errorf("root tree node %s: ns %q forked_from %+v", n.ID, n.NS, n.ForkedFrom)
		}
	}
	if want := map[string]string{"a2": "a1", "a3": "a2", "a3b": "a2"}; len(parents) != 3 || parents["a2"] != want["a2"] || parents["a3"] != want["a3"] || parents["a3b"] != want["a3b"] {
		t.Errorf("parents: got %v, want %v (a2 has two children: a fork)", parents, want)
	}
	// The raw node: state left out, metadata exact, forked_from parsed.
	var tree struct {
		ThreadID string                       `json:"thread_id"`
		Nodes    []map[string]json.RawMessage `json:"nodes"`
	}
	getJSON(t, srv, srv.URL, "/v1/threads/incident-b/tree", 200, &tree)
	if len(tree.Nodes) != 2 || tree.ThreadID != "incident-b" {
		t.Fatalf("incident-b tree: got %+v", tree)
	}
	b1 := tree.Nodes[1]
	if _, ok := b1["checkpoint"]; ok {
		t.Error("tree node carries the state")
	}
	if got, want := string(b1["metadata"]), forkMeta("incident-a", "", "a2"); got != want {
		t.Errorf("b1 metadata: got %s, want %s", got, want)
	}
	if got := string(b1["forked_from"]); got != `{"thread_id":"incident-a","checkpoint_ns":"","checkpoint_id":"a2"}` {
		t.Errorf("b1 forked_from: got %s", got)
	}
	if got := string(tree.Nodes[0]["forked_from"]); got != "null" {
		t.Errorf("b2 forked_from: got %s, want null", got)
	}

	// Tree pages stay correct while checkpoints arrive.
	page, next, err := c.Tree(ctx, query.TreeParams{ThreadID: "incident-a", AllNS: true, Limit: 2})
	if err != nil || next != f.seqs["s1"] || !slices.Equal(nodeIDs(page), []string{"a3b", "s1"}) {
		t.Fatalf("tree page 1: got %v next %d, %v", nodeIDs(page), next, err)
	}
	MustApply(t, f.store, projector.Record{Seq: 1000, Event: checkpointEvent("late", "incident-a", "", "a4", "a3", `{}`, `{}`)})
	page, next, err = c.Tree(ctx, query.TreeParams{ThreadID: "incident-a", AllNS: true, Limit: 2, BeforeSeq: next})
	if err != nil || !slices.Equal(nodeIDs(page), []string{"a3", "a2"}) {
		t.Fatalf("tree page 2 after a4 arrived: got %v, %v", nodeIDs(page), err)
	}
	if page, next, _ = c.Tree(ctx, query.TreeParams{ThreadID: "incident-a", AllNS: true, Limit: 2, BeforeSeq: next}); !slices.Equal(nodeIDs(page), []string{"a1"}) || next != 0 {
		t.Errorf("tree page 3: got %v next %d, want [a1] and no cursor", nodeIDs(page), next)
	}

	kids, _, err := c.Children(ctx, query.ChildrenParams{CheckpointKey: projector.CheckpointKey{ThreadID: "incident-a", ID: "a2"}})
	if err != nil || !slices.Equal(nodeIDs(kids), []string{"a3b", "a3"}) {
		t.Errorf("children of a2: got %v, %v", nodeIDs(kids), err)
	}
	kids, next, _ = c.Children(ctx, query.ChildrenParams{CheckpointKey: projector.CheckpointKey{ThreadID: "incident-a", ID: "a2"}, Limit: 1})
	if !slices.Equal(nodeIDs(kids), []string{"a3b"}) || next != f.seqs["a3b"] {
		t.Errorf("children of a2, limit 1: got %v next %d", nodeIDs(kids), next)
	}
	if kids, _, err = c.Children(ctx, query.ChildrenParams{CheckpointKey: projector.CheckpointKey{ThreadID: "incident-a", ID: "nope"}}); err != nil || len(kids) != 0 {
		t.Errorf("children of an unknown checkpoint: got %v, %v; want none", kids, err)
	}

	forks, _, err := c.Forks(ctx, query.ForksParams{ThreadID: "incident-a", AllNS: true})
	if err != nil || !slices.Equal(nodeIDs(forks), []string{"c1", "b1"}) {
		t.Errorf("forks of incident-a: got %v, %v", nodeIDs(forks), err)
	}
	if forks[0].ThreadID != "other-c" || forks[0].ForkedFrom == nil || forks[0].ForkedFrom.ID != "a3" {
		t.Errorf("fork c1: got %+v", forks[0])
	}
	forks, _, _ = c.Forks(ctx, query.ForksParams{ThreadID: "incident-a", CheckpointID: "a2"})
	if !slices.Equal(nodeIDs(forks), []string{"b1"}) {
		t.Errorf("forks of a2: got %v, want [b1]", nodeIDs(forks))
	}
	getJSON(t, srv, srv.URL, "/v1/threads/incident-a/forks?checkpoint=a2", 200, nil)
	if forks, _, _ = c.Forks(ctx, query.ForksParams{ThreadID: "incident-b", AllNS: true}); len(forks) != 0 {
		t.Errorf("forks of incident-b: got %v, want none", nodeIDs(forks))
	}
}

func TestAncestorsFollowForks(t *testing.T) {
	f := newLineageFixture(t)
	srv := MustServe(t, query.NewService(f.store, nil, query.Config{Logger: quietLogger()}))
	c := query.NewClient(srv.URL, srv.Client())
	ctx := testContext(t)
	ids := func(cs []query.Checkpoint) []string {
		var out []string
		for _, c := range cs {
			out = append(out, c.ThreadID+"/"+c.ID)
		}
		return out
	}
	for _, tt := range []struct {
		thread, id string
		depth      int
		want       []string
	}{
		{"incident-b", "b2", 0, []string{"incident-b/b1", "incident-a/a2", "incident-a/a1"}},
		{"incident-b", "b2", 2, []string{"incident-b/b1", "incident-a/a2"}},
		{"incident-b", "b2", 1, []string{"incident-b/b1"}},
		{"incident-b", "b1", 0, []string{"incident-a/a2", "incident-a/a1"}},
		{"other-c", "c1", 0, []string{"incident-a/a3", "incident-a/a2", "incident-a/a1"}},
		{"incident-a", "a3b", 0, []string{"incident-a/a2", "incident-a/a1"}},
	} {
		got, err := c.Ancestors(ctx, tt.thread, "", tt.id, tt.depth, query.MinSeq{})
		if err != nil || !slices.Equal(ids(got), tt.want) {
			t.Errorf("ancestors of %s/%s depth %d: got %v, %v; want %v", tt.thread, tt.id, tt.depth, ids(got), err, tt.want)
		}
	}
	var out struct{ Ancestors []query.Checkpoint }
	getJSON(t, srv, srv.URL, "/v1/threads/incident-b/checkpoints/b2/ancestors?follow_forks=false", 200, &out)
	if got := ids(out.Ancestors); !slices.Equal(got, []string{"incident-b/b1"}) {
		t.Errorf("follow_forks=false: got %v, want [incident-b/b1]", got)
	}
	getJSON(t, srv, srv.URL, "/v1/threads/incident-b/checkpoints/b2/ancestors?follow_forks=maybe", 400, nil)

	// A fork whose origin is gone, and a fork cycle, end the lineage.
	MustApply(t, f.store,
		projector.Record{Seq: 1001, Event: checkpointEvent("o1", "orphan", "", "o1", "", `{}`, forkMeta("nowhere", "", "x"))},
		projector.Record{Seq: 1002, Event: checkpointEvent("y1", "loop-x", "", "x1", "", `{}`, forkMeta("loop-y", "", "y1"))},
		projector.Record{Seq: 1003, Event: checkpointEvent("y2", "loop-y", "", "y1", "", `{}`, forkMeta("loop-x", "", "x1"))},
	)
	if got, err := c.Ancestors(ctx, "orphan", "", "o1", 0, query.MinSeq{}); err != nil || len(got) != 0 {
		t.Errorf("ancestors of a fork of a missing origin: got %v, %v", ids(got), err)
	}
	if got, err := c.Ancestors(ctx, "loop-x", "", "x1", 50, query.MinSeq{}); err != nil || !slices.Equal(ids(got), []string{"loop-y/y1"}) {
		t.Errorf("ancestors through a fork cycle: got %v, %v; want [loop-y/y1]", ids(got), err)
	}
}

func TestDiff(t *testing.T) {
	f := newLineageFixture(t)
	srv := MustServe(t, query.NewService(f.store, nil, query.Config{Logger: quietLogger()}))
	c := query.NewClient(srv.URL, srv.Client())
	ctx := testContext(t)

	d, err := c.Diff(ctx, "incident-a", "", "a1", "a3", query.MinSeq{})
	if err != nil {
		t.Fatal(err)
	}
	got := changeLines(d.Changes)
	want := []string{
		`add /messages/2  {"role":"assistant","content":"checking the load balancer"}`,
		`add /messages/3  {"role":"user","content":"any news?"}`,
		`add /messages/4  {"role":"assistant","content":"rolled back the deploy"}`,
		`replace /iteration 1 3`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("a1 → a3 changes:\n got %q\nwant %q", got, want)
	}
	var roles []string
	for _, m := range d.Messages.Added {
		roles = append(roles, m.Role+"@"+m.Path)
	}
	if !slices.Equal(roles, []string{"assistant@/messages/2", "user@/messages/3", "assistant@/messages/4"}) || len(d.Messages.Removed) != 0 {
		t.Errorf("messages: added %v, removed %+v", roles, d.Messages.Removed)
	}
	if meta, want := changeLines(d.MetadataChanges), []string{"replace /turn 1 3", `add /stop_reason  "done"`}; !slices.Equal(meta, want) {
		t.Errorf("metadata changes: got %q, want %q", meta, want)
	}
	if d.From.ID != "a1" || d.To.ID != "a3" || d.From.Seq != f.seqs["a1"] || d.To.Seq != f.seqs["a3"] || d.Truncated {
		t.Errorf("diff ends: from %+v to %+v truncated %v", d.From, d.To, d.Truncated)
	}

	// The fork within the thread: the third message differs in place.
	d, err = c.Diff(ctx, "incident-a", "", "a3", "a3b", query.MinSeq{})
	if err != nil {
		t.Fatal(err)
	}
	got = nil
	for _, ch := range d.Changes {
		got = append(got, ch.Op+" "+ch.Path)
	}
	if want := []string{"remove /messages/2", "remove /messages/3", "remove /messages/4", "add /messages/2"}; !slices.Equal(got, want) {
		t.Errorf("a3 → a3b: got %q, want %q", got, want)
	}
	if len(d.Messages.Removed) != 3 || d.Messages.Removed[2].Role != "assistant" || len(d.Messages.Added) != 1 {
		t.Errorf("a3 → a3b messages: %+v", d.Messages)
	}
	d, _ = c.Diff(ctx, "incident-a", "", "a2", "a2", query.MinSeq{})
	if len(d.Changes) != 0 || len(d.MetadataChanges) != 0 {
		t.Errorf("a2 → a2: got changes %+v %+v", d.Changes, d.MetadataChanges)
	}
	for path, status := range map[string]int{
		"/v1/threads/incident-a/diff?from=a1&to=nope":      404,
		"/v1/threads/incident-a/diff?from=a1":              400,
		"/v1/threads/incident-a/diff?to=a1&from=":          400,
		"/v1/threads/incident-a/diff?from=s1&to=a1":        404, // s1 is in namespace sub
		"/v1/threads/incident-a/diff?from=s1&to=s1&ns=sub": 200,
	} {
		getJSON(t, srv, srv.URL, path, status, nil)
	}
}

func TestDiffValues(t *testing.T) {
	f := &fixture{store: MustOpenStore(t)}
	for i, st := range []string{
		`{"a":1,"b":{"c":[1,2,3],"d":"x"},"e":[{"k":1},{"k":2}],"n":1.0,"gone":true,"we/ird~key":1}`,
		`{"b":{"d":"y","c":[1,3]},"a":1,"e":[{"k":1},{"k":3}],"n":1,"new":null,"we/ird~key":2}`,
	} {
		f.checkpoint("v", "", fmt.Sprint(i), "", st, `{}`)
	}
	MustApply(t, f.store, f.recs...)
	srv := MustServe(t, query.NewService(f.store, nil, query.Config{Logger: quietLogger()}))
	d, err := query.NewClient(srv.URL, srv.Client()).Diff(testContext(t), "v", "", "0", "1", query.MinSeq{})
	if err != nil {
		t.Fatal(err)
	}
	got := changeLines(d.Changes)
	want := []string{
		"remove /b/c/1 2 ",
		`replace /b/d "x" "y"`,
		"replace /e/1/k 2 3",
		"remove /gone true ",
		"replace /we~1ird~0key 1 2",
		"add /new  null",
	}
	if !slices.Equal(got, want) {
		t.Errorf("changes:\n got %q\nwant %q", got, want)
	}
}

func TestLineageLimitsMinSeqAndStoreSupport(t *testing.T) {
	f := newLineageFixture(t)
	srv := MustServe(t, query.NewService(f.store, nil, query.Config{Logger: quietLogger()}))
	for path, status := range map[string]int{
		"/v1/threads?limit=1001":                                       400,
		"/v1/threads?limit=1000":                                       200,
		"/v1/threads/incident-a/tree?limit=10001":                      400,
		"/v1/threads/incident-a/tree?limit=10000":                      200,
		"/v1/threads/incident-a/checkpoints/a2/children?limit=1001":    400,
		"/v1/threads/incident-a/forks?limit=1001":                      400,
		"/v1/threads?min_seq=3":                                        503,
		"/v1/threads?min_seq=head":                                     400, // head needs a thread
		"/v1/threads/incident-a/tree?min_seq=head":                     503,
		"/v1/threads/incident-a/checkpoints/a2/children?min_seq=1":     503,
		"/v1/threads/incident-a/forks?min_seq=1":                       503,
		"/v1/threads/incident-a/diff?from=a1&to=a2&min_seq=1":          503,
		"/v1/threads/incident-a/checkpoints/a3/ancestors?min_seq=head": 503,
		"/v1/threads?bogus=1":                                          400,
		"/v1/threads/incident-a/tree?ns=a&ns=b":                        400,
		"/v1/threads/incident-a/tree?before_seq=x":                     400,
		"/v1/threads/%ff/tree":                                         400,
		"/v1/threads?prefix=%ff":                                       400,
	} {
		raw := getJSON(t, srv, srv.URL, path, status, nil)
		if status == 400 && !strings.Contains(string(raw), `"code":"invalid"`) {
			t.Errorf("%s: got %s, want an invalid error", path, raw)
		}
		if status == 503 && !strings.Contains(string(raw), `"code":"unavailable"`) {
			t.Errorf("%s: got %s, want an unavailable error", path, raw)
		}
	}
	var e struct{ Message string }
	getJSON(t, srv, srv.URL, "/v1/threads?limit=1001", 400, &e)
	if !strings.Contains(e.Message, "above the maximum 1000") {
		t.Errorf("limit error: %q does not name the cap", e.Message)
	}

	// A store without projector.Lineage serves the other reads and says
	// plainly that it lacks these.
	plain := MustServe(t, query.NewService(struct{ projector.Reader }{f.store}, nil, query.Config{Logger: quietLogger()}))
	getJSON(t, plain, plain.URL, "/v1/threads/incident-a/latest", 200, nil)
	for _, path := range []string{"/v1/threads", "/v1/threads/incident-a/tree", "/v1/threads/incident-a/forks", "/v1/threads/incident-a/checkpoints/a2/children"} {
		getJSON(t, plain, plain.URL, path, 404, &e)
		if !strings.Contains(e.Message, "not available") {
			t.Errorf("%s without lineage support: message %q", path, e.Message)
		}
	}
}
