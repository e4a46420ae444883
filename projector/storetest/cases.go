package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
)

const (
	A = projector.Applied
	D = projector.Duplicate
	C = projector.Conflict
	S = projector.Superseded
	I = projector.Ignored
)

// exotic JSON: big integers, decimals with trailing zeros, exponent forms,
// unusual key order, escapes, HTML characters, unicode and inner whitespace.
const exotic = `{"z":1, "a":[12345678901234567890123456789,0.10000,1E+400,-0.0],
 "m":{"b":"<&>","a":"\u00e9\ud83d\ude00 caf\u00e9","esc":"tab\there"},"n":null,"t":true}`

func testRoundTripExact(t *testing.T, b Backend) {
	s := b.Fresh(t)
	meta := `{"step":  3,"source":"loop","score":1.50}`
	wantOutcomes(t, MustApply(t, s, Put(7, "thread.with*dots> and spaces ✓", "", "v1", "", exotic, meta)), A)
	v := mustCheckpoint(t, s, "thread.with*dots> and spaces ✓", "", "v1")
	if string(v.State) != exotic {
		t.Errorf("checkpoint: got %s, want %s", v.State, exotic)
	}
	if string(v.Metadata) != meta {
		t.Errorf("metadata: got %s, want %s", v.Metadata, meta)
	}
	if v.Seq != 7 || v.EventID != "ev-7" || v.ParentID != "" {
		t.Errorf("row: got seq %d event %q parent %q, want 7 ev-7 \"\"", v.Seq, v.EventID, v.ParentID)
	}
	if want := T0.Add(7e6); !v.CreatedAt.Equal(want) {
		t.Errorf("created_at: got %v, want %v", v.CreatedAt, want)
	}
	l, err := s.Latest(context.Background(), "thread.with*dots> and spaces ✓", "")
	if err != nil || string(l.State) != exotic {
		t.Errorf("latest: got %s, %v", l.State, err)
	}
}

func testDuplicateSameContent(t *testing.T, b Backend) {
	recs := []projector.Record{Put(1, "t", "", "v1", "", `{"a":1}`, `{}`), Put(5, "t", "", "v1", "", `{"a":1}`, `{}`)}
	s := b.Fresh(t)
	wantOutcomes(t, MustApply(t, s, recs[0]), A)
	wantOutcomes(t, MustApply(t, s, recs[1]), D)
	v := mustCheckpoint(t, s, "t", "", "v1")
	if v.Seq != 1 || v.EventID != "ev-1" {
		t.Errorf("row: got seq %d %s, want 1 ev-1", v.Seq, v.EventID)
	}
	d := MustDump(t, s)
	if len(d.Conflicts) != 0 || len(d.Duplicates) != 1 {
		t.Errorf("got %d conflicts, %d duplicates; want 0, 1", len(d.Conflicts), len(d.Duplicates))
	}
	AssertExpected(t, s, recs)

	r := b.Fresh(t)
	wantOutcomes(t, MustApply(t, r, recs[1]), A)
	wantOutcomes(t, MustApply(t, r, recs[0]), A)
	AssertSameDump(t, MustDump(t, r), d)
}

func testConflictRecorded(t *testing.T, b Backend) {
	recs := []projector.Record{Put(1, "t", "", "v1", "", `{"a":1}`, `{}`), Put(2, "t", "", "v1", "", `{"a":2}`, `{}`),
		Put(3, "t", "", "v1", "", `{"a":2}`, `{}`), Put(4, "t", "", "v1", "v0", `{"a":1}`, `{}`)}
	s := b.Fresh(t)
	wantOutcomes(t, MustApply(t, s, recs...), A, C, C, C)
	d := MustDump(t, s)
	if got := len(d.Conflicts); got != 3 {
		t.Errorf("conflicts: got %d, want 3 (each differing event recorded)", got)
	}
	if v := mustCheckpoint(t, s, "t", "", "v1"); string(v.State) != `{"a":1}` || v.Seq != 1 {
		t.Errorf("row: got %s seq %d, want {\"a\":1} seq 1", v.State, v.Seq)
	}
	AssertExpected(t, s, recs)
}

func testLowerSeqReplacesHigher(t *testing.T, b Backend) {
	hi := Put(9, "t", "", "v1", "", `{"late":true}`, `{}`)
	lo := Put(3, "t", "", "v1", "", `{"early":true}`, `{"x":1}`)
	s := b.Fresh(t)
	wantOutcomes(t, MustApply(t, s, hi), A)
	wantOutcomes(t, MustApply(t, s, lo), A)
	v := mustCheckpoint(t, s, "t", "", "v1")
	if v.Seq != 3 || string(v.State) != `{"early":true}` {
		t.Errorf("row: got seq %d %s, want seq 3 {\"early\":true}", v.Seq, v.State)
	}
	d := MustDump(t, s)
	if len(d.Conflicts) != 1 || d.Conflicts[0].Seq != 9 || string(d.Conflicts[0].State) != `{"late":true}` {
		t.Errorf("conflicts: got %+v, want the replaced seq 9 with its payload", d.Conflicts)
	}
	AssertExpected(t, s, []projector.Record{hi, lo})
}

func testRedeliveryIsNoop(t *testing.T, b Backend) {
	recs := []projector.Record{
		Put(1, "t", "", "v1", "", `{"a":1}`, `{}`), Put(2, "t", "", "v1", "", `{"a":2}`, `{}`),
		PutWrites(3, "t", "", "v1", "task", "c=1"), Put(4, "t", "", "v1", "", `{"a":1}`, `{}`), Prune(5, "t", 1),
	}
	s := b.Fresh(t)
	MustApply(t, s, recs...)
	before := MustDump(t, s)
	wantOutcomes(t, MustApply(t, s, recs...), D, D, D, D, A)
	wantOutcomes(t, MustApply(t, s, recs[2], recs[2]), D, D)
	AssertSameDump(t, MustDump(t, s), before)
	AssertExpected(t, s, recs)
}

func testWritesHighestSeqWins(t *testing.T, b Backend) {
	a := PutWrites(10, "t", "", "v1", "task", "x=1", "y=2", "z=3")
	bb := PutWrites(20, "t", "", "v1", "task", `x="only"`)
	for _, order := range [][]projector.Record{{a, bb}, {bb, a}} {
		s := b.Fresh(t)
		for _, r := range order {
			MustApply(t, s, r)
		}
		ws, err := s.Writes(context.Background(), projector.CheckpointKey{ThreadID: "t", ID: "v1"}, "")
		if err != nil {
			t.Fatal(err)
		}
		if len(ws) != 1 || string(ws[0].Value) != `"only"` || ws[0].Seq != 20 {
			t.Errorf("order %d,%d: got %+v, want the single write of seq 20", order[0].Seq, order[1].Seq, ws)
		}
		AssertExpected(t, s, order)
	}
	// Same values again under a new event id, later: it wins (and is equal).
	s := b.Fresh(t)
	wantOutcomes(t, MustApply(t, s, bb, a), A, S)
	wantOutcomes(t, MustApply(t, s, PutWrites(30, "t", "", "v1", "task", "x=1", "y=2", "z=3")), A)
	ws, _ := s.Writes(context.Background(), projector.CheckpointKey{ThreadID: "t", ID: "v1"}, "task")
	if len(ws) != 3 || ws[2].Channel != "z" {
		t.Errorf("got %+v, want the 3 writes of seq 30", ws)
	}
}

func testOutOfOrderLineage(t *testing.T, b Backend) {
	recs := []projector.Record{
		Put(1, "t", "", "v1", "", `{"n":1}`, `{}`), Put(2, "t", "", "v2", "v1", `{"n":2}`, `{}`),
		Put(3, "t", "", "v3", "v2", `{"n":3}`, `{}`), PutWrites(4, "t", "", "v3", "task", "status=\"ok\""),
	}
	s := b.Fresh(t)
	for _, i := range []int{3, 2, 1, 0} { // writes first, then children before parents
		MustApply(t, s, recs[i])
	}
	anc, err := s.Ancestors(context.Background(), projector.CheckpointKey{ThreadID: "t", ID: "v3"}, 10)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(anc), []string{"v2", "v1"}; !slices.Equal(got, want) {
		t.Errorf("ancestors: got %v, want %v", got, want)
	}
	if l, _ := s.Latest(context.Background(), "t", ""); l.ID != "v3" {
		t.Errorf("latest: got %q, want v3", l.ID)
	}
	AssertExpected(t, s, recs)
}

func testDeleteAndRecreate(t *testing.T, b Backend) {
	recs := []projector.Record{
		Put(1, "t", "", "v1", "", `{"n":1}`, `{}`), Put(2, "t", "", "v2", "v1", `{"n":2}`, `{}`),
		PutWrites(3, "t", "", "v2", "task", "c=1"), Put(4, "t", "sub", "s1", "", `{}`, `{}`), Delete(5, "t"),
		Put(6, "other", "", "v1", "", `{}`, `{}`),
	}
	s := b.Fresh(t)
	wantOutcomes(t, MustApply(t, s, recs...), I, I, I, I, A, A)
	d := MustDump(t, s)
	if len(d.Checkpoints) != 1 || d.Checkpoints[0].ThreadID != "other" || len(d.Writes) != 0 || len(d.Live) != 1 {
		t.Fatalf("after delete: got %d checkpoints, %d writes, %d live; want only thread other's", len(d.Checkpoints), len(d.Writes), len(d.Live))
	}
	if _, err := s.Latest(context.Background(), "t", ""); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("latest after delete: got %v, want not found", err)
	}
	// Late (redelivered or replayed) events below the watermark change nothing.
	wantOutcomes(t, MustApply(t, s, recs[0], recs[2]), I, I)
	AssertSameDump(t, MustDump(t, s), d)
	// Events above it recreate.
	again := Put(7, "t", "", "v1", "", `{"n":"new"}`, `{}`)
	wantOutcomes(t, MustApply(t, s, again), A)
	if l, err := s.Latest(context.Background(), "t", ""); err != nil || l.Seq != 7 {
		t.Errorf("latest after recreate: got %+v, %v; want seq 7", l, err)
	}
	AssertExpected(t, s, append(recs, again))
}

func testPruneBelow(t *testing.T, b Backend) {
	recs := []projector.Record{
		Put(1, "t", "", "v1", "", `{"n":1}`, `{}`), PutWrites(2, "t", "", "v1", "task", "c=1"),
		Put(3, "t", "", "v2", "v1", `{"n":2}`, `{}`), PutWrites(4, "t", "", "v2", "task", "c=2"),
		Prune(5, "t", 3),
		Prune(6, "u", 100), // above its own seq: prunes below 6 only
		Put(7, "u", "", "u1", "", `{}`, `{}`),
	}
	for _, perm := range [][]int{{0, 1, 2, 3, 4, 5, 6}, {6, 5, 4, 3, 2, 1, 0}, {4, 0, 3, 1, 6, 2, 5}} {
		s := b.Fresh(t)
		for _, i := range perm {
			MustApply(t, s, recs[i])
		}
		if _, err := s.Checkpoint(context.Background(), projector.CheckpointKey{ThreadID: "t", ID: "v1"}); !errors.Is(err, events.ErrNotFound) {
			t.Errorf("perm %v: v1 should be pruned, got %v", perm, err)
		}
		anc, err := s.Ancestors(context.Background(), projector.CheckpointKey{ThreadID: "t", ID: "v2"}, 5)
		if err != nil || len(anc) != 0 {
			t.Errorf("perm %v: ancestors of v2 after its parent was pruned: got %v, %v", perm, ids(anc), err)
		}
		if _, err := s.Checkpoint(context.Background(), projector.CheckpointKey{ThreadID: "u", ID: "u1"}); err != nil {
			t.Errorf("perm %v: u1 (seq 7, above the clamped prune) should stay: %v", perm, err)
		}
		AssertExpected(t, s, recs)
	}
}

func testWatermarkPromotesSurvivor(t *testing.T, b Backend) {
	// A version at seq 8 survives a delete at 5 that removes the winner at 1,
	// whether it was recorded as a duplicate or as a conflict first.
	for _, second := range []string{`{"same":1}`, `{"other":2}`} {
		recs := []projector.Record{
			Put(1, "t", "", "v1", "", `{"same":1}`, `{}`), Put(3, "t", "", "v1", "", `{"third":3}`, `{}`),
			Delete(5, "t"), Put(8, "t", "", "v1", "", second, `{}`), Put(9, "t", "", "v1", "", `{"same":1}`, `{}`),
		}
		for _, perm := range [][]int{{0, 1, 3, 4, 2}, {3, 4, 1, 0, 2}, {2, 0, 1, 3, 4}, {4, 3, 2, 1, 0}} {
			s := b.Fresh(t)
			for _, i := range perm {
				MustApply(t, s, recs[i])
			}
			v := mustCheckpoint(t, s, "t", "", "v1")
			if v.Seq != 8 || string(v.State) != second {
				t.Errorf("second %s perm %v: got seq %d %s, want seq 8 %s", second, perm, v.Seq, v.State, second)
			}
			AssertExpected(t, s, recs)
		}
	}
}

func testLivePerNamespace(t *testing.T, b Backend) {
	recs := []projector.Record{
		Put(1, "t", "", "a", "", `{}`, `{}`), Put(2, "t", "sub", "x", "", `{}`, `{}`),
		Put(3, "t", "", "b", "a", `{}`, `{}`), Put(4, "t", "sub", "y", "x", `{}`, `{}`), Put(5, "t", "", "a2", "a", `{}`, `{}`),
	}
	s := b.Fresh(t)
	MustApply(t, s, recs[4], recs[0], recs[3], recs[1], recs[2])
	for ns, want := range map[string]string{"": "a2", "sub": "y"} {
		l, err := s.Latest(context.Background(), "t", ns)
		if err != nil || l.ID != want {
			t.Errorf("latest ns %q: got %q, %v; want %s", ns, l.ID, err, want)
		}
	}
	AssertExpected(t, s, recs)
}

func testNewestFirstBySeq(t *testing.T, b Backend) {
	s := b.Fresh(t)
	var recs []projector.Record
	for i := 1; i <= 12; i++ {
		parent := ""
		if i > 1 {
			parent = fmt.Sprintf("v%d", i-1)
		}
		recs = append(recs, Put(uint64(100+i), "t", "", fmt.Sprintf("v%d", i), parent, fmt.Sprintf(`{"i":%d}`, i), `{}`))
	}
	perm := []int{11, 0, 5, 3, 9, 1, 10, 2, 8, 4, 7, 6}
	for _, i := range perm {
		MustApply(t, s, recs[i])
	}
	got, err := s.List(context.Background(), projector.ListQuery{ThreadID: "t", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"v12", "v11", "v10", "v9", "v8", "v7", "v6", "v5", "v4", "v3", "v2", "v1"}
	if !slices.Equal(ids(got), want) {
		t.Errorf("list: got %v, want %v", ids(got), want)
	}
	if l, _ := s.Latest(context.Background(), "t", ""); l.ID != "v12" {
		t.Errorf("latest: got %s, want v12", l.ID)
	}
}

func testListQueries(t *testing.T, b Backend) {
	s := b.Fresh(t)
	recs := []projector.Record{
		Put(1, "a", "", "a1", "", `{}`, `{}`), Put(2, "b", "", "b1", "", `{}`, `{}`), Put(3, "a", "sub", "s1", "", `{}`, `{}`),
		Put(4, "a", "", "a2", "a1", `{}`, `{}`), Put(5, "b", "", "b2", "b1", `{}`, `{}`),
	}
	MustApply(t, s, recs...)
	tests := []struct {
		q    projector.ListQuery
		want []string
	}{
		{projector.ListQuery{ThreadID: "a", Limit: 10}, []string{"a2", "a1"}},
		{projector.ListQuery{ThreadID: "a", AllNS: true, Limit: 10}, []string{"a2", "s1", "a1"}},
		{projector.ListQuery{ThreadID: "a", NS: "sub", Limit: 10}, []string{"s1"}},
		{projector.ListQuery{AllNS: true, Limit: 10}, []string{"b2", "a2", "s1", "b1", "a1"}},
		{projector.ListQuery{Limit: 10}, []string{"b2", "a2", "b1", "a1"}},
		{projector.ListQuery{AllNS: true, Limit: 2}, []string{"b2", "a2"}},
		{projector.ListQuery{AllNS: true, BeforeSeq: 4, Limit: 2}, []string{"s1", "b1"}},
		{projector.ListQuery{ThreadID: "a", BeforeSeq: 4, Limit: 10}, []string{"a1"}},
		{projector.ListQuery{ThreadID: "zzz", Limit: 10}, nil},
	}
	for _, tt := range tests {
		got, err := s.List(context.Background(), tt.q)
		if err != nil {
			t.Fatalf("%+v: %v", tt.q, err)
		}
		if !slices.Equal(ids(got), tt.want) {
			t.Errorf("%+v: got %v, want %v", tt.q, ids(got), tt.want)
		}
	}
	if _, err := s.List(context.Background(), projector.ListQuery{}); !errors.Is(err, events.ErrInvalid) {
		t.Errorf("limit 0: got %v, want invalid", err)
	}
}

func testWritesOrdering(t *testing.T, b Backend) {
	s := b.Fresh(t)
	w := PutWrites(2, "t", "", "v1", "task-b", "x=1", "y=2")
	w.Event.Writes.Writes[0].Idx, w.Event.Writes.Writes[1].Idx = 5, -1 // LangGraph error/interrupt writes use negatives
	w.Event.Writes.TaskPath = "path|1"
	MustApply(t, s, w, PutWrites(1, "t", "", "v1", "task-a", `z={"deep":[1,2]}`), PutWrites(3, "t", "sub", "v1", "task-c", "q=0"))
	all, err := s.Writes(context.Background(), projector.CheckpointKey{ThreadID: "t", ID: "v1"}, "")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range all {
		got = append(got, fmt.Sprintf("%s/%d/%s=%s/%s", r.TaskID, r.Idx, r.Channel, r.Value, r.TaskPath))
	}
	want := []string{`task-a/0/z={"deep":[1,2]}/`, "task-b/-1/y=2/path|1", "task-b/5/x=1/path|1"}
	if !slices.Equal(got, want) {
		t.Errorf("writes: got %v, want %v", got, want)
	}
	one, _ := s.Writes(context.Background(), projector.CheckpointKey{ThreadID: "t", ID: "v1"}, "task-a")
	if len(one) != 1 || one[0].TaskID != "task-a" {
		t.Errorf("writes of task-a: got %+v", one)
	}
}

func testAncestors(t *testing.T, b Backend) {
	s := b.Fresh(t)
	var recs []projector.Record
	for i := 1; i <= 30; i++ {
		parent := ""
		if i > 1 {
			parent = fmt.Sprintf("c%02d", i-1)
		}
		recs = append(recs, Put(uint64(i), "t", "", fmt.Sprintf("c%02d", i), parent, `{}`, `{}`))
	}
	// A cycle (bad data) and a fork.
	recs = append(recs, Put(31, "t", "", "x", "y", `{}`, `{}`), Put(32, "t", "", "y", "x", `{}`, `{}`),
		Put(33, "t", "", "fork", "c10", `{}`, `{}`))
	MustApply(t, s, recs...)
	anc, err := s.Ancestors(context.Background(), projector.CheckpointKey{ThreadID: "t", ID: "c30"}, 5)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ids(anc), []string{"c29", "c28", "c27", "c26", "c25"}; !slices.Equal(got, want) {
		t.Errorf("depth 5: got %v, want %v", got, want)
	}
	anc, _ = s.Ancestors(context.Background(), projector.CheckpointKey{ThreadID: "t", ID: "fork"}, 100)
	if len(anc) != 10 || anc[0].ID != "c10" || anc[9].ID != "c01" {
		t.Errorf("fork ancestors: got %v", ids(anc))
	}
	anc, _ = s.Ancestors(context.Background(), projector.CheckpointKey{ThreadID: "t", ID: "x"}, 7)
	if len(anc) != 7 {
		t.Errorf("cycle: got %d ancestors, want the depth bound 7", len(anc))
	}
	if _, err := s.Ancestors(context.Background(), projector.CheckpointKey{ThreadID: "t", ID: "nope"}, 3); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("missing start: got %v, want not found", err)
	}
}

func testNotFound(t *testing.T, b Backend) {
	s := b.Fresh(t)
	ctx := context.Background()
	if _, err := s.Latest(ctx, "none", ""); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("latest: got %v, want not found", err)
	}
	if _, err := s.Checkpoint(ctx, projector.CheckpointKey{ThreadID: "none", ID: "v1"}); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("checkpoint: got %v, want not found", err)
	}
	if ws, err := s.Writes(ctx, projector.CheckpointKey{ThreadID: "none", ID: "v1"}, ""); err != nil || len(ws) != 0 {
		t.Errorf("writes: got %v, %v; want none", ws, err)
	}
}

// testSQLTextIsData stores ids, namespaces, channels and JSON that carry
// SQL: values travel as bind variables, so they come back as plain data.
func testSQLTextIsData(t *testing.T, b Backend) {
	s := b.Fresh(t)
	sqlText := []string{
		"t1'); DROP TABLE cairn_checkpoints; --",
		`" OR ""="`,
		"' OR 1=1 --",
		"%' ESCAPE '\\",
		"v1'; UPDATE cairn_live SET seq = 0; --",
		"x' || (SELECT 1 FROM dual) || '",
	}
	var recs []projector.Record
	for i, q := range sqlText {
		seq := uint64(10 + 2*i)
		w := PutWrites(seq+1, q, q, q, q, fmt.Sprintf("ch=%q", q))
		w.Event.Writes.Writes[0].Channel = q
		recs = append(recs, Put(seq, q, q, q, q, fmt.Sprintf(`{"sql":%q}`, q), fmt.Sprintf(`{%q:1}`, q)), w)
	}
	MustApply(t, s, recs...)
	AssertExpected(t, s, recs)
	for _, q := range sqlText {
		v, err := s.Checkpoint(context.Background(), projector.CheckpointKey{ThreadID: q, NS: q, ID: q})
		if err != nil || v.ParentID != q {
			t.Errorf("checkpoint %q: got %+v, %v; want it stored with its id as parent", q, v, err)
		}
		ws, err := s.Writes(context.Background(), projector.CheckpointKey{ThreadID: q, NS: q, ID: q}, q)
		if err != nil || len(ws) != 1 || ws[0].Channel != q {
			t.Errorf("writes of %q: got %+v, %v", q, ws, err)
		}
	}
}
