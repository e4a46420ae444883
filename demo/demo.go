// Package demo runs the seed notebook's scenario through a saver: an
// on-call incident commander agent plays three turns on one thread,
// checkpointing after each; then the lineage is listed newest first, the
// first checkpoint is rehydrated, pending writes are put and read back, and
// optionally the thread is deleted. Every read goes through the query API.
package demo

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cairn-io/cairn/agent"
	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/saver"
)

// Config configures Run.
type Config struct {
	// ThreadID is the thread the agent writes; required.
	ThreadID string
	// RunID and AgentID go into the agent state.
	RunID, AgentID string
	// Cleanup deletes the thread at the end and shows that it is gone.
	Cleanup bool
	// Model answers the turns; default agent.Offline.
	Model agent.Model
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Out receives the report; required.
	Out io.Writer
}

// Result is what a run produced, for callers and tests.
type Result struct {
	Seqs    []uint64 // stream sequence of each turn's checkpoint
	Lineage []string // checkpoint ids, newest first
}

// metadata is the metadata of each turn's checkpoint.
type metadata struct {
	Turn       int    `json:"turn"`
	Iterations int    `json:"iterations"`
	StopReason string `json:"stop_reason"`
}

// Run plays the scenario. It returns an error, after printing what it got
// to, if any step fails.
func Run(ctx context.Context, s *saver.Saver, cfg Config) (Result, error) {
	var res Result
	if cfg.ThreadID == "" || cfg.Out == nil {
		return res, errors.New("demo: thread id and output are required")
	}
	if cfg.Model == nil {
		cfg.Model = agent.Offline{}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	out := cfg.Out
	section := func(title string) { fmt.Fprintf(out, "\n== %s ==\n", title) }

	section("1. Agent and saver")
	fmt.Fprintf(out, "thread:  %s\nagent:   %s (offline incident commander)\nrun:     %s\n", cfg.ThreadID, cfg.AgentID, cfg.RunID)

	section("2. Three turns, a checkpoint after each")
	state := agent.NewState(cfg.RunID, cfg.AgentID, agent.DefaultMaxIterations, cfg.Now())
	ref := saver.Ref{ThreadID: cfg.ThreadID}
	for i, prompt := range agent.DemoPrompts {
		turn := i + 1
		tr, err := agent.RunTurn(ctx, cfg.Model, state, prompt, cfg.Now)
		if err != nil {
			return res, fmt.Errorf("turn %d: %w", turn, err)
		}
		body, err := state.ToCheckpoint()
		if err != nil {
			return res, fmt.Errorf("turn %d: %w", turn, err)
		}
		meta, err := json.Marshal(metadata{Turn: turn, Iterations: tr.Iterations, StopReason: tr.StopReason})
		if err != nil {
			return res, fmt.Errorf("turn %d metadata: %w", turn, err)
		}
		parent := ref.CheckpointID
		var seq uint64
		ref, seq, err = s.Put(ctx, ref, fmt.Sprintf("v%d", turn), body, meta)
		if err != nil {
			return res, fmt.Errorf("turn %d: %w", turn, err)
		}
		res.Seqs = append(res.Seqs, seq)
		reply := state.Messages[len(state.Messages)-1].Content
		fmt.Fprintf(out, "turn %d  user:      %s\n        assistant: %s\n        saved:     checkpoint %s (parent %s), stream seq %d, acknowledged by the broker\n",
			turn, prompt, reply, ref.CheckpointID, orNone(parent), seq)
	}

	section("3. Lineage, newest first")
	list, err := s.List(ctx, saver.Ref{ThreadID: cfg.ThreadID}, saver.ListOptions{})
	if err != nil {
		return res, fmt.Errorf("list: %w", err)
	}
	for i, c := range list {
		arrow := ""
		if i < len(list)-1 {
			arrow = " →"
		}
		fmt.Fprintf(out, "%-4s parent=%-4s seq=%-6d metadata=%s%s\n", c.ID, orNone(c.ParentID), c.Seq, c.Metadata, arrow)
		res.Lineage = append(res.Lineage, c.ID)
	}

	section("4. Rehydrate v1")
	v1, err := s.Get(ctx, saver.Ref{ThreadID: cfg.ThreadID, CheckpointID: "v1"})
	if err != nil {
		return res, fmt.Errorf("get v1: %w", err)
	}
	st, err := agent.FromCheckpoint(v1.State)
	if err != nil {
		return res, fmt.Errorf("rehydrate v1: %w", err)
	}
	fmt.Fprintf(out, "v1 holds %d messages (iteration %d, %d tokens):\n", len(st.Messages), st.Iteration, st.TotalTokens)
	for _, m := range st.Messages {
		fmt.Fprintf(out, "  [%s] %s\n", m.Role, truncate(m.Content, 160))
	}

	section("5. Pending writes on v3")
	v3 := saver.Ref{ThreadID: cfg.ThreadID, CheckpointID: ref.CheckpointID}
	if _, err := s.PutWrites(ctx, v3, "status-page-update", "", []saver.Write{
		{Channel: "status", Value: json.RawMessage(`"we are investigating"`)},
		{Channel: "pagerduty", Value: json.RawMessage(`"warmed"`)},
	}); err != nil {
		return res, fmt.Errorf("put writes: %w", err)
	}
	writes, err := s.GetWrites(ctx, v3, "")
	if err != nil {
		return res, fmt.Errorf("get writes: %w", err)
	}
	for _, w := range writes {
		fmt.Fprintf(out, "  task=%s idx=%d channel=%s value=%s\n", w.TaskID, w.Idx, w.Channel, w.Value)
	}

	if cfg.Cleanup {
		section("6. Cleanup")
		seq, err := s.DeleteThread(ctx, cfg.ThreadID)
		if err != nil {
			return res, err
		}
		_, err = s.Get(ctx, saver.Ref{ThreadID: cfg.ThreadID})
		if !errors.Is(err, events.ErrNotFound) {
			return res, fmt.Errorf("thread %s still readable after delete (seq %d): %v", cfg.ThreadID, seq, err)
		}
		fmt.Fprintf(out, "thread deleted (stream seq %d); the query API now answers: %v\n", seq, err)
	}
	return res, nil
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func truncate(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if len([]rune(s)) <= n {
		return s
	}
	return string([]rune(s)[:n-1]) + "…"
}
