package storetest

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
)

// The lineage cases check projector.Lineage against references computed
// from the store's own Dump (so only the reads are under test here; the
// tables themselves are checked by the cases above). A store that does not
// implement Lineage has these cases skipped with a note, not failed.
func init() { cases = append(cases, lineageCases...) }

var lineageCases = []testCase{
	{"LineageThreads", testLineageThreads},
	{"LineageNodes", testLineageNodes},
	{"LineageForks", testLineageForks},
	{"LineageProperty", testLineageProperty},
}

// lineageOf returns a fresh store and its Lineage, or skips t.
func lineageOf(t *testing.T, b Backend) (projector.Store, projector.Lineage) {
	t.Helper()
	s := b.Fresh(t)
	l, ok := s.(projector.Lineage)
	if !ok {
		t.Skipf("store %T does not implement projector.Lineage: lineage reads (threads, tree, forks) are not served from it", s)
	}
	return s, l
}

// Fork returns the metadata of a checkpoint forked from (thread, ns, id).
func Fork(thread, ns, id string) string {
	return `{"forked_from":{"thread_id":` + string(events.AppendString(nil, thread)) +
		`,"checkpoint_ns":` + string(events.AppendString(nil, ns)) +
		`,"checkpoint_id":` + string(events.AppendString(nil, id)) + `}}`
}

func testLineageThreads(t *testing.T, b Backend) {
	s, l := lineageOf(t, b)
	ctx := context.Background()
	recs := []projector.Record{
		Put(1, "a", "", "v1", "", `{}`, `{}`),
		Put(2, "a", "", "v2", "v1", `{}`, `{}`),
		Put(3, "b", "", "b1", "", `{}`, `{}`),
		Put(4, "a", "sub", "s1", "", `{}`, `{}`),
		PutWrites(5, "c", "", "nope", "task", "x=1"), // writes only: no checkpoint, not listed
		Put(6, "d", "", "d1", "", `{}`, `{}`),
		Delete(7, "d"), // deleted: not listed
		Put(8, "ab", "", "x1", "", `{}`, `{}`),
		PutWrites(9, "b", "", "b1", "task", "y=2"), // activity without a checkpoint moves b first
		Put(10, "e ✓", "", "e1", "", `{}`, `{}`),
		Put(11, "e ✓", "", "e2", "e1", `{}`, `{}`),
		Prune(12, "e ✓", 11), // keeps e2 only
	}
	MustApply(t, s, recs...)
	d := MustDump(t, s)
	all := mustThreads(t, l, projector.ThreadQuery{Limit: 100})
	if got, want := threadLines(all), []string{
		`e ✓ last=12 n=1 ns=[""] latest=""/e2@11`,
		`b last=9 n=1 ns=[""] latest=""/b1@3`,
		`ab last=8 n=1 ns=[""] latest=""/x1@8`,
		`a last=4 n=3 ns=["" "sub"] latest="sub"/s1@4`,
	}; !slices.Equal(got, want) {
		t.Errorf("threads:\n got %q\nwant %q", got, want)
	}
	if want := T0.Add(11e6); len(all) > 0 && !all[0].LatestCreatedAt.Equal(want) {
		t.Errorf("latest created_at: got %v, want %v", all[0].LatestCreatedAt, want)
	}
	for _, q := range []projector.ThreadQuery{
		{Prefixes: []string{"a"}, Limit: 10},
		{Prefixes: []string{"ab"}, Limit: 10},
		{Prefixes: []string{"b", "e"}, Limit: 10},
		{Prefixes: []string{"e ✓"}, Limit: 10},
		{Prefixes: []string{"zzz"}, Limit: 10},
		{Prefixes: []string{"abc"}, Limit: 10},
		{BeforeSeq: 9, Limit: 10},
		{BeforeSeq: 12, Limit: 2},
	} {
		got := threadLines(mustThreads(t, l, q))
		if want := threadLines(ExpectThreads(d, q)); !slices.Equal(got, want) {
			t.Errorf("threads %+v:\n got %q\nwant %q", q, got, want)
		}
	}
	// A walk with limit 1 visits every thread once, in order.
	if got, want := walkThreads(t, l, nil, 1), threadLines(all); !slices.Equal(got, want) {
		t.Errorf("walk: got %q, want %q", got, want)
	}
	if _, err := l.Threads(ctx, projector.ThreadQuery{}); err == nil {
		t.Error("threads with limit 0: no error")
	}
}

func testLineageNodes(t *testing.T, b Backend) {
	s, l := lineageOf(t, b)
	ctx := context.Background()
	// v1 ← v2 ← v3, v2 ← v3b (a fork), v5 whose parent v4 is not stored,
	// and a namespace with its own tree.
	MustApply(t, s,
		Put(1, "t", "", "v1", "", `{"big":1}`, `{"step":1}`),
		Put(2, "t", "", "v2", "v1", `{}`, `{"step":2}`),
		Put(3, "t", "", "v3", "v2", `{}`, `{"step":3,  "x":[1.0]}`),
		Put(4, "t", "sub", "s1", "", `{}`, `{}`),
		Put(5, "t", "", "v3b", "v2", `{}`, `{}`),
		Put(6, "t", "", "v5", "v4", `{}`, `{}`),
		Put(7, "t", "sub", "s2", "s1", `{}`, `{}`),
		Put(8, "other", "", "v3", "v2", `{}`, `{}`),
	)
	d := MustDump(t, s)
	for _, q := range []projector.NodeQuery{
		{ThreadID: "t", AllNS: true, Limit: 100},
		{ThreadID: "t", Limit: 100},
		{ThreadID: "t", NS: "sub", Limit: 100},
		{ThreadID: "t", AllNS: true, BeforeSeq: 5, Limit: 2},
		{ThreadID: "t", ByParent: true, ParentID: "v2", Limit: 100},
		{ThreadID: "t", ByParent: true, ParentID: "v2", Limit: 1},
		{ThreadID: "t", ByParent: true, ParentID: "v4", Limit: 100}, // parent not stored
		{ThreadID: "t", ByParent: true, ParentID: "v3", Limit: 100}, // no children
		{ThreadID: "t", NS: "sub", ByParent: true, ParentID: "s1", Limit: 100},
		{ThreadID: "none", AllNS: true, Limit: 100},
	} {
		got, err := l.Nodes(ctx, q)
		if err != nil {
			t.Fatalf("nodes %+v: %v", q, err)
		}
		if got, want := nodeLines(got), nodeLines(ExpectNodes(d, q)); !slices.Equal(got, want) {
			t.Errorf("nodes %+v:\n got %q\nwant %q", q, got, want)
		}
	}
	// Exact text and fields of one node.
	ns, err := l.Nodes(ctx, projector.NodeQuery{ThreadID: "t", ByParent: true, ParentID: "v2", Limit: 1})
	if err != nil || len(ns) != 1 {
		t.Fatalf("children of v2, limit 1: got %v, %v", ns, err)
	}
	if n := ns[0]; n.ID != "v3b" || n.ParentID != "v2" || n.Seq != 5 || string(n.Metadata) != `{}` || !n.CreatedAt.Equal(T0.Add(5e6)) {
		t.Errorf("newest child of v2: got %+v", n)
	}
	ns, _ = l.Nodes(ctx, projector.NodeQuery{ThreadID: "t", Limit: 100})
	if last := ns[len(ns)-1]; last.ID != "v1" || last.ParentID != "" || string(last.Metadata) != `{"step":1}` {
		t.Errorf("root node: got %+v", last)
	}
	for _, q := range []projector.NodeQuery{{AllNS: true, Limit: 1}, {ThreadID: "t", Limit: 0}, {ThreadID: "t", AllNS: true, ByParent: true, Limit: 1}} {
		if _, err := l.Nodes(ctx, q); !errors.Is(err, events.ErrInvalid) {
			t.Errorf("nodes %+v: got %v, want invalid", q, err)
		}
	}
}

func testLineageForks(t *testing.T, b Backend) {
	s, l := lineageOf(t, b)
	ctx := context.Background()
	MustApply(t, s,
		Put(1, "origin", "", "v1", "", `{}`, `{}`),
		Put(2, "origin", "", "v2", "v1", `{}`, `{}`),
		Put(3, "fork-1", "", "f1", "", `{}`, Fork("origin", "", "v2")),
		Put(4, "fork-2", "", "g1", "", `{}`, Fork("origin", "sub", "s1")),
		Put(5, "fork-3", "", "h1", "", `{}`, `{"turn":1, "forked_from": {"checkpoint_id":"v1","thread_id":"origin","extra":true}}`),
		Put(6, "not-a-fork", "", "n1", "", `{}`, `{"note":"forked_from"}`),
		Put(7, "not-a-fork", "", "n2", "n1", `{}`, `{"forked_from":"origin"}`),
		Put(8, "not-a-fork", "", "n3", "n2", `{}`, `{"forked_from":{"thread_id":"origin"}}`),
		Put(9, "not-a-fork", "", "n4", "n3", `{}`, `{"forked_from":{"thread_id":"","checkpoint_id":"v1"}}`),
		Put(10, "elsewhere", "", "x1", "", `{}`, Fork("other", "", "v2")),
		Put(11, "fork-1", "", "f2", "f1", `{}`, Fork("origin", "", "v2")), // a second fork of v2, with a parent
		Put(12, "origin", "", "v3", "v2", `{}`, Fork("origin", "", "v1")), // a fork within the thread
		Put(13, "gone", "", "z1", "", `{}`, Fork("origin", "", "v1")),
		Delete(14, "gone"),
	)
	d := MustDump(t, s)
	for _, q := range []projector.ForkQuery{
		{ThreadID: "origin", AllNS: true, Limit: 100},
		{ThreadID: "origin", Limit: 100},
		{ThreadID: "origin", NS: "sub", Limit: 100},
		{ThreadID: "origin", CheckpointID: "v2", Limit: 100},
		{ThreadID: "origin", CheckpointID: "v1", Limit: 100},
		{ThreadID: "origin", AllNS: true, Prefixes: []string{"fork-1", "fork-3"}, Limit: 100},
		{ThreadID: "origin", AllNS: true, BeforeSeq: 11, Limit: 1},
		{ThreadID: "other", AllNS: true, Limit: 100},
		{ThreadID: "none", AllNS: true, Limit: 100},
	} {
		got, err := l.Forks(ctx, q)
		if err != nil {
			t.Fatalf("forks %+v: %v", q, err)
		}
		if got, want := nodeLines(got), nodeLines(ExpectForks(d, q)); !slices.Equal(got, want) {
			t.Errorf("forks %+v:\n got %q\nwant %q", q, got, want)
		}
	}
	got, _ := l.Forks(ctx, projector.ForkQuery{ThreadID: "origin", AllNS: true, Limit: 100})
	if ids, want := nodeIDs(got), []string{"v3", "f2", "h1", "g1", "f1"}; !slices.Equal(ids, want) {
		t.Errorf("forks of origin: got %v, want %v", ids, want)
	}
}

// testLineageProperty compares every lineage read with the references over
// random records (forks, deletes and prunes included), walking pages.
func testLineageProperty(t *testing.T, b Backend) {
	s, l := lineageOf(t, b)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(5, 5))
	recs := RandomRecords(rng, 400)
	// Turn some checkpoints into cross-thread forks.
	for i, r := range recs {
		if r.Event.Kind == events.KindCheckpointPut && rng.IntN(5) == 0 {
			c := *r.Event.Checkpoint
			c.Metadata = []byte(Fork([]string{"alpha", "gamma ✓"}[rng.IntN(2)], []string{"", "sub:1"}[rng.IntN(2)], fmt.Sprintf("v%d", rng.IntN(8))))
			e := *r.Event
			e.Checkpoint = &c
			recs[i].Event = &e
		}
	}
	for _, batch := range Reshuffle(rng, recs) {
		MustApply(t, s, batch...)
	}
	d := MustDump(t, s)
	for _, limit := range []int{1, 3, 1000} {
		for _, prefixes := range [][]string{nil, {"alpha", "gam"}, {"beta"}} {
			got := walkThreads(t, l, prefixes, limit)
			if want := threadLines(ExpectThreads(d, projector.ThreadQuery{Prefixes: prefixes, Limit: 1000})); !slices.Equal(got, want) {
				t.Errorf("threads %v, limit %d:\n got %q\nwant %q", prefixes, limit, got, want)
			}
		}
		for _, th := range []string{"alpha", "beta.with.dots", "gamma ✓"} {
			for _, q := range []projector.NodeQuery{
				{ThreadID: th, AllNS: true}, {ThreadID: th, NS: "sub:1"}, {ThreadID: th, ByParent: true, ParentID: "v3"},
			} {
				got := walkNodes(t, limit, func(before uint64) ([]projector.Node, error) {
					q.BeforeSeq, q.Limit = before, limit
					return l.Nodes(ctx, q)
				})
				q.BeforeSeq, q.Limit = 0, 1000
				if got, want := nodeLines(got), nodeLines(ExpectNodes(d, q)); !slices.Equal(got, want) {
					t.Errorf("nodes %+v, limit %d:\n got %q\nwant %q", q, limit, got, want)
				}
			}
			for _, q := range []projector.ForkQuery{{ThreadID: th, AllNS: true}, {ThreadID: th, CheckpointID: "v2"}} {
				got := walkNodes(t, limit, func(before uint64) ([]projector.Node, error) {
					q.BeforeSeq, q.Limit = before, limit
					return l.Forks(ctx, q)
				})
				q.BeforeSeq, q.Limit = 0, 1000
				if got, want := nodeLines(got), nodeLines(ExpectForks(d, q)); !slices.Equal(got, want) {
					t.Errorf("forks %+v, limit %d:\n got %q\nwant %q", q, limit, got, want)
				}
			}
		}
	}
}

// ExpectThreads computes Lineage.Threads from a dump.
func ExpectThreads(d projector.Dump, q projector.ThreadQuery) []projector.ThreadSummary {
	byID := make(map[string]*projector.ThreadSummary)
	for _, lr := range d.Live {
		ts := byID[lr.ThreadID]
		if ts == nil {
			ts = &projector.ThreadSummary{ID: lr.ThreadID}
			byID[lr.ThreadID] = ts
		}
		ts.Namespaces = append(ts.Namespaces, lr.NS)
		if lr.Seq > ts.Latest.Seq {
			ts.Latest = lr
		}
	}
	for _, c := range d.Checkpoints {
		if ts := byID[c.ThreadID]; ts != nil {
			ts.Checkpoints++
			if c.NS == ts.Latest.NS && c.ID == ts.Latest.CheckpointID {
				ts.LatestCreatedAt = c.CreatedAt
			}
		}
	}
	var out []projector.ThreadSummary
	for _, th := range d.Threads {
		ts := byID[th.ID]
		if ts == nil || (q.BeforeSeq > 0 && th.LastSeq >= q.BeforeSeq) || !projector.HasPrefix(th.ID, q.Prefixes) {
			continue
		}
		ts.LastSeq = th.LastSeq
		slices.Sort(ts.Namespaces)
		out = append(out, *ts)
	}
	slices.SortFunc(out, func(a, b projector.ThreadSummary) int { return cmp.Compare(b.LastSeq, a.LastSeq) })
	return out[:min(len(out), q.Limit)]
}

// ExpectNodes computes Lineage.Nodes from a dump.
func ExpectNodes(d projector.Dump, q projector.NodeQuery) []projector.Node {
	var out []projector.Node
	for _, c := range d.Checkpoints {
		if c.ThreadID != q.ThreadID || (!q.AllNS && c.NS != q.NS) || (q.ByParent && c.ParentID != q.ParentID) || (q.BeforeSeq > 0 && c.Seq >= q.BeforeSeq) {
			continue
		}
		out = append(out, nodeOf(c))
	}
	return newestFirst(out, q.Limit)
}

// ExpectForks computes Lineage.Forks from a dump.
func ExpectForks(d projector.Dump, q projector.ForkQuery) []projector.Node {
	var out []projector.Node
	for _, c := range d.Checkpoints {
		o, ok := projector.ForkedFrom(c.Metadata)
		if !ok || o.ThreadID != q.ThreadID || (!q.AllNS && o.NS != q.NS) || (q.CheckpointID != "" && o.ID != q.CheckpointID) ||
			!projector.HasPrefix(c.ThreadID, q.Prefixes) || (q.BeforeSeq > 0 && c.Seq >= q.BeforeSeq) {
			continue
		}
		out = append(out, nodeOf(c))
	}
	return newestFirst(out, q.Limit)
}

func nodeOf(v projector.Version) projector.Node {
	return projector.Node{CheckpointKey: v.CheckpointKey, ParentID: v.ParentID, Metadata: v.Metadata, CreatedAt: v.CreatedAt, Seq: v.Seq}
}

func newestFirst(ns []projector.Node, limit int) []projector.Node {
	slices.SortFunc(ns, func(a, b projector.Node) int { return cmp.Compare(b.Seq, a.Seq) })
	return ns[:min(len(ns), limit)]
}

func mustThreads(t *testing.T, l projector.Lineage, q projector.ThreadQuery) []projector.ThreadSummary {
	t.Helper()
	ts, err := l.Threads(context.Background(), q)
	if err != nil {
		t.Fatalf("threads %+v: %v", q, err)
	}
	return ts
}

// walkThreads pages through the threads listing with the LastSeq cursor.
func walkThreads(t *testing.T, l projector.Lineage, prefixes []string, limit int) []string {
	t.Helper()
	q := projector.ThreadQuery{Prefixes: prefixes, Limit: limit}
	var out []string
	for {
		page := mustThreads(t, l, q)
		out = append(out, threadLines(page)...)
		if len(page) < limit {
			return out
		}
		next := page[len(page)-1].LastSeq
		if q.BeforeSeq != 0 && next >= q.BeforeSeq {
			t.Fatalf("threads cursor does not move down: %d after %d", next, q.BeforeSeq)
		}
		q.BeforeSeq = next
	}
}

// walkNodes pages through nodes with the seq cursor, failing t if the
// cursor does not move down.
func walkNodes(t *testing.T, limit int, fetch func(before uint64) ([]projector.Node, error)) []projector.Node {
	t.Helper()
	var out []projector.Node
	var before uint64
	for {
		page, err := fetch(before)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, page...)
		if len(page) < limit {
			return out
		}
		next := page[len(page)-1].Seq
		if before != 0 && next >= before {
			t.Fatalf("cursor does not move down: %d after %d", next, before)
		}
		before = next
	}
}

func threadLines(ts []projector.ThreadSummary) []string {
	var out []string
	for _, th := range ts {
		out = append(out, fmt.Sprintf("%s last=%d n=%d ns=%q latest=%q/%s@%d", th.ID, th.LastSeq, th.Checkpoints, th.Namespaces,
			th.Latest.NS, th.Latest.CheckpointID, th.Latest.Seq))
	}
	return out
}

func nodeLines(ns []projector.Node) []string {
	var out []string
	for _, n := range ns {
		out = append(out, fmt.Sprintf("%s/%q/%s parent=%q seq=%d at=%s meta=%s", n.ThreadID, n.NS, n.ID, n.ParentID, n.Seq,
			n.CreatedAt.UTC().Format(events.TimeFormat), n.Metadata))
	}
	return out
}

func nodeIDs(ns []projector.Node) []string {
	var out []string
	for _, n := range ns {
		out = append(out, n.ID)
	}
	return out
}
