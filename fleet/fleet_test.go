package fleet_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/cairn-io/cairn/agent"
	"github.com/cairn-io/cairn/broker"
	"github.com/cairn-io/cairn/fleet"
	"github.com/cairn-io/cairn/pipeline"
	"github.com/cairn-io/cairn/pipeline/pipelinetest"
	"github.com/cairn-io/cairn/projector"
)

// MustAsyncPublisher returns an async publisher on p, closed at cleanup.
func MustAsyncPublisher(tb testing.TB, p *pipeline.Pipeline, cfg broker.AsyncConfig) *broker.AsyncPublisher {
	tb.Helper()
	pub, err := broker.NewAsyncPublisher(p.JS, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(pub.Close)
	return pub
}

func TestFleetOf200AgentsEndToEnd(t *testing.T) {
	p := pipelinetest.MustStart(t, pipeline.Config{})
	// A small in-flight bound so that backpressure is exercised.
	pub := MustAsyncPublisher(t, p, broker.AsyncConfig{MaxInFlight: 32, MaxQueued: 64})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	const agents, turns = 200, 3
	var reports int
	res, err := fleet.Run(ctx, pub, fleet.Config{Agents: agents, Turns: turns, Writes: 2, CheckpointBytes: 2048},
		time.Millisecond, func(fleet.Progress) { reports++ })
	if err != nil {
		t.Fatalf("fleet: %v", err)
	}
	if got, want := res.Published, int64(agents*turns*2); got != want || res.Failed != 0 || res.Duplicates != 0 {
		t.Fatalf("published %d (failed %d, duplicates %d), want %d, 0, 0", got, res.Failed, res.Duplicates, want)
	}
	if res.Latency.Count() != res.Published || res.Latency.Percentile(0.99) <= 0 || reports == 0 {
		t.Errorf("latency samples %d p99 %v, progress reports %d", res.Latency.Count(), res.Latency.Percentile(0.99), reports)
	}
	d := pipelinetest.MustDump(t, p)
	counts := map[string]int{
		"threads": len(d.Threads), "checkpoints": len(d.Checkpoints), "conflicts": len(d.Conflicts),
		"duplicates": len(d.Duplicates), "write_sets": len(d.WriteSets), "writes": len(d.Writes), "live": len(d.Live),
	}
	want := map[string]int{
		"threads": agents, "checkpoints": agents * turns, "conflicts": 0, "duplicates": 0,
		"write_sets": agents * turns, "writes": agents * turns * 2, "live": agents,
	}
	for table, n := range want {
		if counts[table] != n {
			t.Errorf("%s: %d rows, want %d", table, counts[table], n)
		}
	}
	// Every thread's lineage is a chain turn-0001 <- ... <- turn-0003, the
	// live row is the last turn, and each checkpoint holds at least the
	// padded size and a growing message history.
	byKey := make(map[projector.CheckpointKey]projector.Version)
	for _, v := range d.Checkpoints {
		byKey[v.CheckpointKey] = v
	}
	for _, l := range d.Live {
		if l.CheckpointID != fleet.CheckpointID(turns) {
			t.Errorf("live of %s is %s, want %s", l.ThreadID, l.CheckpointID, fleet.CheckpointID(turns))
		}
	}
	for i := range agents {
		thread := res.ThreadID(i)
		prevMsgs := 0
		for turn := 1; turn <= turns; turn++ {
			v, ok := byKey[projector.CheckpointKey{ThreadID: thread, ID: fleet.CheckpointID(turn)}]
			if !ok {
				t.Fatalf("%s: no checkpoint %s", thread, fleet.CheckpointID(turn))
			}
			wantParent := ""
			if turn > 1 {
				wantParent = fleet.CheckpointID(turn - 1)
			}
			var st struct {
				Messages []json.RawMessage `json:"messages"`
			}
			if err := json.Unmarshal(v.State, &st); err != nil {
				t.Fatal(err)
			}
			if v.ParentID != wantParent || len(v.State) < 2048 || len(st.Messages) <= prevMsgs {
				t.Fatalf("%s/%s: parent %q (want %q), %d bytes, %d messages after %d",
					thread, v.ID, v.ParentID, wantParent, len(v.State), len(st.Messages), prevMsgs)
			}
			prevMsgs = len(st.Messages)
		}
	}
}

func TestPaddedCheckpointIsTheStatesEncoding(t *testing.T) {
	p := pipelinetest.MustStart(t, pipeline.Config{})
	pub := MustAsyncPublisher(t, p, broker.AsyncConfig{})
	ctx := context.Background()
	res, err := fleet.Run(ctx, pub, fleet.Config{Agents: 2, Turns: 2, Writes: -1, CheckpointBytes: 5000}, 0, nil)
	if err != nil || res.Published != 4 {
		t.Fatalf("fleet: %+v, %v", res, err)
	}
	d := pipelinetest.MustDump(t, p)
	for _, v := range d.Checkpoints {
		st, err := agent.FromCheckpoint(v.State)
		if err != nil {
			t.Fatalf("%s/%s: %v", v.ThreadID, v.ID, err)
		}
		again, err := st.ToCheckpoint()
		if err != nil || !bytes.Equal(again, v.State) || len(v.State) < 5000 || len(v.State) > 5010 {
			t.Errorf("%s/%s: %d bytes; re-encoded equal: %v (%v)", v.ThreadID, v.ID, len(v.State), bytes.Equal(again, v.State), err)
		}
	}
}
