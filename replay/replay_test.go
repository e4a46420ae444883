package replay_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/pipeline"
	"github.com/cairn-io/cairn/pipeline/pipelinetest"
	"github.com/cairn-io/cairn/projector"
	"github.com/cairn-io/cairn/replay"
	"github.com/cairn-io/cairn/sqlite"
)

// MustOpenSQLite opens another prefix of the pipeline's database file.
func MustOpenSQLite(tb testing.TB, dir, prefix string) *sqlite.DB {
	tb.Helper()
	db, err := sqlite.Open(context.Background(), sqlite.Config{Path: filepath.Join(dir, "cairn.db"), Prefix: prefix})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { db.Close() })
	return db
}

var n int

func ev(kind events.Kind, thread string) *events.Event {
	n++
	return &events.Event{Kind: kind, EventID: fmt.Sprintf("ev-%d", n), ThreadID: thread, CreatedAt: time.Unix(1_700_000_000+int64(n), 0).UTC()}
}

func ckpt(thread, id, parent, state string) *events.Event {
	e := ev(events.KindCheckpointPut, thread)
	e.Checkpoint = &events.Checkpoint{ID: id, ParentID: parent, State: json.RawMessage(state), Metadata: json.RawMessage(`{"id":"` + id + `"}`)}
	return e
}

func writes(thread, id, task string, vals ...string) *events.Event {
	e := ev(events.KindWritesPut, thread)
	ws := make([]events.Write, len(vals))
	for i, v := range vals {
		ws[i] = events.Write{Idx: int64(i), Channel: "c", Value: json.RawMessage(v)}
	}
	e.Writes = &events.Writes{CheckpointID: id, TaskID: task, Writes: ws}
	return e
}

// publishMix publishes a history with every rule at work: chains, a
// conflict, a duplicate, replaced write sets, a delete and a prune.
func publishMix(t *testing.T, p *pipeline.Pipeline, threads int) uint64 {
	t.Helper()
	ctx := context.Background()
	var last uint64
	pub := func(e *events.Event) uint64 {
		seq, err := p.Publisher.Publish(ctx, e)
		if err != nil {
			t.Fatal(err)
		}
		last = seq
		return seq
	}
	for i := range threads {
		th := fmt.Sprintf("t-%d", i)
		pub(ckpt(th, "v1", "", `{"n":1}`))
		pub(writes(th, "v1", "a", `1`, `2`))
		pub(ckpt(th, "v2", "v1", `{"n":2}`))
		pub(writes(th, "v1", "a", `3`))
		pub(ckpt(th, "v2", "v1", `{"n":2}`))       // duplicate
		pub(ckpt(th, "v2", "v1", `{"n":"other"}`)) // conflict
		keep := pub(ckpt(th, "v3", "v2", `{"n":3}`))
		switch i % 3 {
		case 1:
			pr := ev(events.KindThreadPrune, th)
			pr.Prune = &events.Prune{BelowSeq: keep}
			pub(pr)
		case 2:
			pub(ev(events.KindThreadDelete, th))
			pub(ckpt(th, "v9", "", `{"n":9}`))
		}
	}
	return last
}

func mustDump(t *testing.T, r projector.Reader) projector.Dump {
	t.Helper()
	d, err := r.Dump(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func mustIdentical(t *testing.T, what string, a, b projector.Dump) {
	t.Helper()
	c := replay.Compare(a, b, 10)
	if !c.Identical {
		t.Fatalf("%s: not identical (counts %v vs %v):\n%v", what, c.CountsA, c.CountsB, c.Diff)
	}
	if c.CountsA[1] == 0 {
		t.Fatalf("%s: no checkpoints at all", what)
	}
}

func TestReplayIntoFreshPrefixThenVerifyIdentical(t *testing.T) {
	dir := t.TempDir()
	p := pipelinetest.MustStart(t, pipeline.Config{Dir: dir})
	ctx := context.Background()
	last := publishMix(t, p, 9)
	pipelinetest.WaitProjected(t, p, last)

	// An interrupted replay: cancel after the first committed batch.
	target := MustOpenSQLite(t, dir, "rebuilt")
	cctx, cancel := context.WithCancel(ctx)
	_, err := replay.Run(cctx, p.JS, target, replay.Config{
		Prefix: "rebuilt", BatchSize: 7, ProgressEvery: time.Nanosecond,
		Progress: func(replay.Progress) { cancel() },
	})
	cancel()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted replay: got %v, want context.Canceled", err)
	}
	res, err := replay.Run(ctx, p.JS, target, replay.Config{Prefix: "rebuilt", BatchSize: 7})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Resumed || res.StartSeq <= 1 || res.AppliedSeq != last || res.Invalid+res.Failed != 0 {
		t.Fatalf("resumed replay: %+v", res)
	}
	live := mustDump(t, p.Store)
	mustIdentical(t, "live vs replayed", live, mustDump(t, target))

	// Against the stream: the rules applied to the stream's events.
	want, si, err := replay.StreamDump(ctx, p.JS, "", "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if si.Events != int64(last) || si.FirstSeq != 1 {
		t.Errorf("stream info %+v, want %d events from seq 1", si, last)
	}
	mustIdentical(t, "stream vs replayed", want, mustDump(t, target))

	// More events arrive; a second run applies only those.
	p2 := ckpt("t-0", "v4", "v3", `{"n":4}`)
	seq, err := p.Publisher.Publish(ctx, p2)
	if err != nil {
		t.Fatal(err)
	}
	pipelinetest.WaitProjected(t, p, seq)
	res, err = replay.Run(ctx, p.JS, target, replay.Config{Prefix: "rebuilt"})
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 1 || res.StartSeq != last+1 || res.Applied != 1 {
		t.Errorf("catch-up replay: %+v, want one event from %d", res, last+1)
	}
	mustIdentical(t, "live vs caught-up replay", mustDump(t, p.Store), mustDump(t, target))
}

func TestReplayRefusesLiveOrUsedPrefix(t *testing.T) {
	dir := t.TempDir()
	p := pipelinetest.MustStart(t, pipeline.Config{Dir: dir})
	ctx := context.Background()
	pipelinetest.WaitProjected(t, p, publishMix(t, p, 1))
	// The live writer's own prefix.
	if _, err := replay.Run(ctx, p.JS, p.Store, replay.Config{Prefix: "cairn"}); !errors.Is(err, events.ErrConflict) {
		t.Errorf("replay into the live prefix: got %v, want a conflict", err)
	}
	// A prefix with checkpoints that no replay wrote.
	other := MustOpenSQLite(t, dir, "other")
	if _, err := projector.New(other).Apply(ctx, []projector.Record{{Seq: 1, Event: ckpt("x", "v1", "", `{}`)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := replay.Run(ctx, p.JS, other, replay.Config{Prefix: "other"}); !errors.Is(err, events.ErrConflict) {
		t.Errorf("replay into a used prefix: got %v, want a conflict", err)
	}
}

func TestReplayFromSeqAndTime(t *testing.T) {
	dir := t.TempDir()
	p := pipelinetest.MustStart(t, pipeline.Config{Dir: dir})
	ctx := context.Background()
	last := publishMix(t, p, 2)
	pipelinetest.WaitProjected(t, p, last)
	target := MustOpenSQLite(t, dir, "tail")
	res, err := replay.Run(ctx, p.JS, target, replay.Config{Prefix: "tail", FromSeq: last - 2})
	if err != nil {
		t.Fatal(err)
	}
	if res.Events != 3 || res.StartSeq != last-2 {
		t.Errorf("from seq %d: %+v", last-2, res)
	}
	// A start time after every event replays nothing.
	target2 := MustOpenSQLite(t, dir, "future")
	res, err = replay.Run(ctx, p.JS, target2, replay.Config{Prefix: "future", FromTime: time.Now().Add(time.Hour)})
	if err != nil || res.Events != 0 {
		t.Errorf("from the future: %+v, %v", res, err)
	}
	target3 := MustOpenSQLite(t, dir, "past")
	res, err = replay.Run(ctx, p.JS, target3, replay.Config{Prefix: "past", FromTime: time.Now().Add(-time.Hour)})
	if err != nil || res.Events != int64(last) {
		t.Errorf("from an hour ago: %+v, %v; want all %d events", res, err, last)
	}
}
