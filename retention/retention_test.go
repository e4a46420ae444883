package retention_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/pipeline"
	"github.com/cairn-io/cairn/pipeline/pipelinetest"
	"github.com/cairn-io/cairn/projector"
	"github.com/cairn-io/cairn/replay"
	"github.com/cairn-io/cairn/retention"
	"github.com/cairn-io/cairn/sqlite"
	"github.com/cairn-io/cairn/writer"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

func ckpt(thread, id, parent string, at time.Time) *events.Event {
	return &events.Event{
		Kind: events.KindCheckpointPut, EventID: thread + "/" + id, Fleet: "default", ThreadID: thread, CreatedAt: at,
		Checkpoint: &events.Checkpoint{ID: id, ParentID: parent, State: json.RawMessage(`{"id":"` + id + `"}`), Metadata: json.RawMessage(`{}`)},
	}
}

// MustOpenMemory opens an in-memory SQLite store.
func MustOpenMemory(tb testing.TB) *sqlite.DB {
	tb.Helper()
	db, err := sqlite.Open(context.Background(), sqlite.Config{Path: sqlite.MemoryPath})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

func TestResolve(t *testing.T) {
	ctx := context.Background()
	db := MustOpenMemory(t)
	// Thread "a": v1..v6 at seqs 10..15, one hour apart, v4's created_at
	// out of order (older than v3).
	var recs []projector.Record
	ages := []time.Duration{0, time.Hour, 2 * time.Hour, time.Hour / 2, 4 * time.Hour, 5 * time.Hour}
	parent := ""
	for i, a := range ages {
		id := fmt.Sprintf("v%d", i+1)
		recs = append(recs, projector.Record{Seq: uint64(10 + i), Event: ckpt("a", id, parent, t0.Add(a))})
		parent = id
	}
	recs = append(recs, projector.Record{Seq: 20, Event: ckpt("one", "only", "", t0)})
	if _, err := projector.New(db).Apply(ctx, recs); err != nil {
		t.Fatal(err)
	}
	now := t0.Add(5 * time.Hour)
	for _, tc := range []struct {
		thread string
		p      retention.Policy
		below  uint64
		ok     bool
	}{
		{"a", retention.Policy{}, 0, false},
		{"a", retention.Policy{KeepLast: 2}, 14, true},
		{"a", retention.Policy{KeepLast: 6}, 10, false},
		{"a", retention.Policy{KeepLast: 7}, 0, false},
		// Younger than 90 minutes: v5 (1h old), v6 (0). v4 is 4.5h old.
		{"a", retention.Policy{MaxAge: 90 * time.Minute}, 14, true},
		// Younger than 3.5h: v3 (3h), v5, v6; v4 (4.5h) stays between them.
		{"a", retention.Policy{MaxAge: 210 * time.Minute}, 12, true},
		// Either rule keeps: the longer suffix wins.
		{"a", retention.Policy{KeepLast: 1, MaxAge: 210 * time.Minute}, 12, true},
		{"a", retention.Policy{KeepLast: 5, MaxAge: 90 * time.Minute}, 11, true},
		// The newest is always kept, however old.
		{"a", retention.Policy{MaxAge: time.Minute}, 15, true},
		{"one", retention.Policy{MaxAge: time.Minute}, 20, false},
		{"none", retention.Policy{KeepLast: 1}, 0, false},
	} {
		below, ok, err := retention.Resolve(ctx, db, tc.thread, tc.p, now)
		if err != nil || below != tc.below || ok != tc.ok {
			t.Errorf("%s %v: got %d %v %v, want %d %v", tc.thread, tc.p, below, ok, err, tc.below, tc.ok)
		}
	}
	if _, _, err := retention.Resolve(ctx, db, "a", retention.Policy{KeepLast: -1}, now); err == nil {
		t.Error("a negative policy resolved")
	}
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not after 60s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func mustDump(t *testing.T, r projector.Reader) projector.Dump {
	t.Helper()
	d, err := r.Dump(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func publishChain(t *testing.T, p *pipeline.Pipeline, thread string, n int) uint64 {
	t.Helper()
	var seq uint64
	parent := ""
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("v%d", i)
		var err error
		if seq, err = p.Publisher.Publish(context.Background(), ckpt(thread, id, parent, t0.Add(time.Duration(i)*time.Minute))); err != nil {
			t.Fatal(err)
		}
		w := &events.Event{Kind: events.KindWritesPut, EventID: thread + "/w/" + id, ThreadID: thread, CreatedAt: t0,
			Writes: &events.Writes{CheckpointID: id, TaskID: "t", Writes: []events.Write{{Channel: "c", Value: json.RawMessage(`1`)}}}}
		if seq, err = p.Publisher.Publish(context.Background(), w); err != nil {
			t.Fatal(err)
		}
		parent = id
	}
	return seq
}

func TestPruneThenReplayFromStartIsIdentical(t *testing.T) {
	dir := t.TempDir()
	p := pipelinetest.MustStart(t, pipeline.Config{Dir: dir})
	ctx := context.Background()
	for i := range 3 {
		pipelinetest.WaitProjected(t, p, publishChain(t, p, fmt.Sprintf("th-%d", i), 6))
	}
	pr := retention.Pruner{Reader: p.Store, Publisher: p.Publisher}
	var last uint64
	for i := range 2 {
		out, err := pr.Prune(ctx, fmt.Sprintf("th-%d", i), retention.Policy{KeepLast: 2}, false)
		if err != nil || !out.Pruned || out.Seq == 0 {
			t.Fatalf("prune th-%d: %+v, %v", i, out, err)
		}
		last = out.Seq
	}
	pipelinetest.WaitProjected(t, p, last)
	live := mustDump(t, p.Store)
	perThread := make(map[string]int)
	for _, v := range live.Checkpoints {
		perThread[v.ThreadID]++
	}
	if perThread["th-0"] != 2 || perThread["th-1"] != 2 || perThread["th-2"] != 6 {
		t.Fatalf("checkpoints per thread after prune: %v", perThread)
	}
	// v4's writes (published after v4, so above the watermark) are kept
	// with it; v5's parent v4 is gone, and reads can tell it was pruned.
	var wm projector.Thread
	for _, th := range live.Threads {
		if th.ID == "th-0" {
			wm = th
		}
	}
	for _, v := range live.Checkpoints {
		if v.ThreadID != "th-0" {
			continue
		}
		_, err := p.Store.Checkpoint(ctx, projector.CheckpointKey{ThreadID: v.ThreadID, ID: v.ParentID})
		stored := err == nil
		if got, want := retention.ParentPruned(v, stored, wm), v.ID == "v5"; got != want {
			t.Errorf("ParentPruned(%s) = %v, want %v (watermark %d)", v.ID, got, want, wm.Watermark)
		}
	}
	if n := len(live.Writes); n != 2+2+6 {
		t.Errorf("writes after prune: %d rows, want 10", n)
	}

	// Replay from the start into a fresh prefix: the prunes are events
	// like any other, so the rebuilt tables are the same.
	target, err := sqlite.Open(ctx, sqlite.Config{Path: filepath.Join(dir, "cairn.db"), Prefix: "rebuilt"})
	if err != nil {
		t.Fatal(err)
	}
	defer target.Close()
	if _, err := replay.Run(ctx, p.JS, target, replay.Config{Prefix: "rebuilt"}); err != nil {
		t.Fatal(err)
	}
	if c := replay.Compare(live, mustDump(t, target), 10); !c.Identical {
		t.Fatalf("replay after prune differs: %v", c.Diff)
	}
	// Pruning again to the same watermark removes nothing more: no event.
	out, err := pr.Prune(ctx, "th-0", retention.Policy{KeepLast: 2}, false)
	if err != nil || out.Pruned {
		t.Errorf("second prune: %+v, %v; want nothing to prune", out, err)
	}
}

func TestWriterSidePolicy(t *testing.T) {
	p := pipelinetest.MustStart(t, pipeline.Config{Writer: writer.Config{
		Retention: retention.Policy{KeepLast: 3}, RetentionInterval: 20 * time.Millisecond, RetentionSweep: -1,
	}})
	ctx := context.Background()
	publishChain(t, p, "busy", 8)
	publishChain(t, p, "quiet", 2)
	count := func() map[string]int {
		d := mustDump(t, p.Store)
		m := make(map[string]int)
		for _, v := range d.Checkpoints {
			m[v.ThreadID]++
		}
		return m
	}
	waitFor(t, "busy pruned to 3 checkpoints", func() bool { m := count(); return m["busy"] == 3 && m["quiet"] == 2 })
	latest, err := p.Store.Latest(ctx, "busy", "")
	if err != nil || latest.ID != "v8" {
		t.Errorf("latest of busy: %+v, %v", latest.CheckpointKey, err)
	}
}
