// Package runner runs an agent on a thread of checkpoints, through a
// saver.Saver: it is the I/O side of package agent, which stays pure. Every
// step (one model call and the tools it asked for) ends in a checkpoint
// whose id is the step number. Within a step, the model's response and then
// each tool's result are published as pending writes against the step's
// checkpoint (the one the step started from), each acknowledged before the
// next tool starts and all before the step's checkpoint is put. A runner
// that loads a thread (Load) finds the latest checkpoint and its pending
// writes, and finishes an interrupted step from them: a recorded model
// response is not asked again and a recorded tool result is not run again.
// Fork starts a new thread from any historical checkpoint, recording where
// it came from in the new thread's first checkpoint.
//
// One runner at a time may continue a thread: two would put the same
// checkpoint ids with different content, which the projection records as
// conflicts.
package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/cairn-io/cairn/agent"
	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/query"
	"github.com/cairn-io/cairn/saver"
)

// Channels of the pending writes a runner publishes. The model's response
// is written under task agent.ModelTaskID, each tool's execution under its
// tool call id.
const (
	// ResponseChannel holds a model response (agent.EncodeResponse).
	ResponseChannel = "response"
	// ToolChannel holds a tool execution (agent.EncodeToolExecution).
	ToolChannel = "tool_execution"
)

// Sources of a checkpoint, in its metadata.
const (
	// SourceInput: a user prompt was appended (a turn began).
	SourceInput = "input"
	// SourceLoop: a step was applied (a model call and its tools).
	SourceLoop = "loop"
	// SourceFork: the state of another thread's checkpoint, the first
	// checkpoint of a forked thread.
	SourceFork = "fork"
)

// Defaults for Config.
const (
	// DefaultAgentID is the agent id of new threads' states.
	DefaultAgentID = "incident-commander"
	// DefaultCatchUp is how long a read waits for the projection.
	DefaultCatchUp = 2 * time.Minute
)

// Metadata is the metadata of a runner's checkpoints.
type Metadata struct {
	Source string `json:"source"`
	// Step numbers the thread's checkpoints from 1; a forked thread goes on
	// from the step of the checkpoint it was forked from.
	Step int `json:"step"`
	// Turn counts the user prompts in the state.
	Turn int `json:"turn"`
	// StopReason is, on a loop checkpoint, how the step ended:
	// agent.StopReasonToolCalls while the turn goes on.
	StopReason string `json:"stop_reason,omitempty"`
	// ForkedFrom is set on the first checkpoint of a forked thread.
	ForkedFrom *ForkedFrom `json:"forked_from,omitempty"`
}

// ForkedFrom addresses the checkpoint a thread was forked from.
type ForkedFrom struct {
	ThreadID     string `json:"thread_id"`
	NS           string `json:"checkpoint_ns"`
	CheckpointID string `json:"checkpoint_id"`
}

// CheckpointID is the id of a step's checkpoint: the step number, zero
// padded to six digits so that ids also sort as text ("000010" after
// "000009").
func CheckpointID(step int) string { return fmt.Sprintf("%06d", step) }

// Config configures New.
type Config struct {
	// Saver publishes and reads checkpoints; required.
	Saver *saver.Saver
	// Model answers; required.
	Model agent.Model
	// Tools are offered to the model; none when empty.
	Tools agent.Toolbox
	// AgentID and MaxIterations go into the state of new threads; defaults
	// DefaultAgentID and agent.DefaultMaxIterations.
	AgentID       string
	MaxIterations int
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Out receives a line per checkpoint, pending write and answer; nil
	// discards them.
	Out io.Writer
	// CatchUp bounds how long Load and Fork keep reading while the query
	// service answers Unavailable (the writer has not yet projected the
	// thread's last events, as after a restart); default DefaultCatchUp.
	CatchUp time.Duration
	// Logger gets debug lines; default slog.Default().
	Logger *slog.Logger
	// AfterToolWrite, if set, is called after each tool result's pending
	// write is acknowledged and before anything else happens; an error it
	// returns stops the run with that error. It exists so that tests can
	// stop an agent at that exact point.
	AfterToolWrite func(ctx context.Context, w ToolWrite) error
}

// ToolWrite is a tool result acknowledged as a pending write.
type ToolWrite struct {
	ThreadID, CheckpointID string
	Call                   agent.ToolCall
	Seq                    uint64
}

// Runner runs agents on threads. It holds no thread state of its own and
// may run several threads at once.
type Runner struct {
	cfg Config
	out io.Writer
}

// New returns a runner.
func New(cfg Config) (*Runner, error) {
	if cfg.Saver == nil || cfg.Model == nil {
		return nil, errors.New("runner: a saver and a model are required")
	}
	if cfg.AgentID == "" {
		cfg.AgentID = DefaultAgentID
	}
	if cfg.MaxIterations <= 0 {
		cfg.MaxIterations = agent.DefaultMaxIterations
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.CatchUp <= 0 {
		cfg.CatchUp = DefaultCatchUp
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	out := cfg.Out
	if out == nil {
		out = io.Discard
	}
	return &Runner{cfg: cfg, out: out}, nil
}

// Thread is a thread's head, as a runner continues it.
type Thread struct {
	ID string
	// Head is the latest checkpoint's id; "" while the thread has none.
	Head string
	// Seq is Head's stream sequence.
	Seq uint64
	// Step is Head's step (see Metadata); 0 while the thread has none.
	Step int
	// State is the agent state at Head.
	State *agent.State
	// writes are Head's pending writes of the runner's channels, by task.
	writes map[string]json.RawMessage
}

// New reports whether the thread has no checkpoint yet.
func (t *Thread) New() bool { return t.Head == "" }

// Recorded returns the task ids of Head's pending writes that a resumed
// step will use, sorted: agent.ModelTaskID for a recorded model response,
// tool call ids for recorded tool results.
func (t *Thread) Recorded() []string {
	ids := make([]string, 0, len(t.writes))
	for id := range t.writes {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// Load reads a thread's latest checkpoint and its pending writes through the
// query API. The saver waits for the head of the thread's subject when it
// has not published to the thread itself, so a restarted agent sees every
// event its previous incarnation had acknowledged. A thread with no
// checkpoint is returned empty (New), with a fresh state.
func (r *Runner) Load(ctx context.Context, threadID string) (*Thread, error) {
	cp, err := r.get(ctx, saver.Ref{ThreadID: threadID})
	if errors.Is(err, events.ErrNotFound) {
		st := agent.NewState(uuid.NewString(), r.cfg.AgentID, r.cfg.MaxIterations, r.cfg.Now())
		fmt.Fprintf(r.out, "thread %s: new\n", threadID)
		return &Thread{ID: threadID, State: st}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("load thread %s: %w", threadID, err)
	}
	th, err := threadAt(cp)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(r.out, "thread %s: latest checkpoint %s (stream seq %d), turn %d, %s\n",
		threadID, th.Head, th.Seq, th.State.Turns(), describeHead(th))
	return th, nil
}

// get reads a checkpoint, retrying for up to CatchUp while the query
// service answers Unavailable.
func (r *Runner) get(ctx context.Context, ref saver.Ref) (query.Checkpoint, error) {
	deadline := time.Now().Add(r.cfg.CatchUp)
	for said := false; ; said = true {
		cp, err := r.cfg.Saver.Get(ctx, ref)
		if !errors.Is(err, events.ErrUnavailable) || ctx.Err() != nil || time.Now().After(deadline) {
			return cp, err
		}
		if !said {
			fmt.Fprintf(r.out, "waiting for the writer to project thread %s's last events (%v)\n", ref.ThreadID, err)
		}
	}
}

// ReadBack reads th's latest checkpoint through the query service, waiting
// until the writer has projected everything this runner published to the
// thread, and checks that it is th's head. Reading back before a process
// exits also leaves no event in the writer's hands.
func (r *Runner) ReadBack(ctx context.Context, th *Thread) (query.Checkpoint, error) {
	cp, err := r.get(ctx, saver.Ref{ThreadID: th.ID})
	if err != nil {
		return cp, fmt.Errorf("read back thread %s: %w", th.ID, err)
	}
	if cp.ID != th.Head || cp.Seq != th.Seq {
		return cp, events.Errorf(events.Conflict, "read back thread %s: latest checkpoint is %s (seq %d), want %s (seq %d): is another agent running on it?",
			th.ID, cp.ID, cp.Seq, th.Head, th.Seq)
	}
	return cp, nil
}

// threadAt makes a Thread of a checkpoint read with its pending writes.
func threadAt(cp query.Checkpoint) (*Thread, error) {
	st, err := agent.FromCheckpoint(cp.State)
	if err != nil {
		return nil, events.Errorf(events.Invalid, "thread %s checkpoint %s is not an agent state: %w", cp.ThreadID, cp.ID, err)
	}
	th := &Thread{ID: cp.ThreadID, Head: cp.ID, Seq: cp.Seq, Step: stepOf(cp.Metadata), State: st,
		writes: make(map[string]json.RawMessage)}
	for _, w := range cp.PendingWrites {
		if (w.TaskID == agent.ModelTaskID && w.Channel == ResponseChannel) || (w.TaskID != agent.ModelTaskID && w.Channel == ToolChannel) {
			th.writes[w.TaskID] = w.Value
		}
	}
	return th, nil
}

// stepOf reads the step of a checkpoint's metadata; 0 when it has none (a
// checkpoint not put by a runner).
func stepOf(metadata json.RawMessage) int {
	var m struct {
		Step int `json:"step"`
	}
	if json.Unmarshal(metadata, &m) != nil || m.Step < 0 {
		return 0
	}
	return m.Step
}

func describeHead(th *Thread) string {
	if !th.State.InTurn() {
		return "idle"
	}
	if rec := th.Recorded(); len(rec) > 0 {
		return "in the middle of a step; recorded pending writes: " + strings.Join(rec, ", ")
	}
	return "in the middle of a turn"
}

// Result is what a Run or Fork did.
type Result struct {
	// Checkpoints are the checkpoints put, in order.
	Checkpoints []Put
	// ModelCalls counts the model calls made.
	ModelCalls int
	// ResponsesReused counts model responses taken from pending writes
	// instead of calling the model.
	ResponsesReused int
	// ToolsRun are the tool call ids run, in order.
	ToolsRun []string
	// ToolsReused are the tool call ids whose recorded results were used
	// instead of running them again.
	ToolsReused []string
}

// Put is one checkpoint put.
type Put struct {
	ID, ParentID string
	Seq          uint64
	Metadata     Metadata
}

// Run continues th: it finishes the turn in progress, if any (resuming an
// interrupted step from its pending writes), then plays each prompt as a
// turn. th follows along: after Run it is the thread's new head. A new
// thread needs a prompt. If Run fails, everything acknowledged so far is
// kept; Load and Run again to go on.
func (r *Runner) Run(ctx context.Context, th *Thread, prompts []string) (Result, error) {
	var res Result
	if th.New() && len(prompts) == 0 {
		return res, events.Errorf(events.Invalid, "thread %s has no checkpoint yet: give a prompt", th.ID)
	}
	if err := r.finishTurn(ctx, th, &res); err != nil {
		return res, err
	}
	for _, p := range prompts {
		st := th.State.Clone()
		if err := st.BeginTurn(p); err != nil {
			return res, events.Errorf(events.Invalid, "thread %s: %w", th.ID, err)
		}
		st.UpdatedAt = r.cfg.Now().UTC()
		fmt.Fprintf(r.out, "\nturn %d user: %s\n", st.Turns(), p)
		if err := r.put(ctx, th, st, Metadata{Source: SourceInput}, &res); err != nil {
			return res, err
		}
		if err := r.finishTurn(ctx, th, &res); err != nil {
			return res, err
		}
	}
	return res, nil
}

// finishTurn runs steps until th's state is idle.
func (r *Runner) finishTurn(ctx context.Context, th *Thread, res *Result) error {
	for th.State.InTurn() {
		if err := r.step(ctx, th, res); err != nil {
			return fmt.Errorf("thread %s step %d: %w", th.ID, th.Step+1, err)
		}
	}
	return nil
}

// step runs one step from th's head and puts its checkpoint.
func (r *Runner) step(ctx context.Context, th *Thread, res *Result) error {
	head := saver.Ref{ThreadID: th.ID, CheckpointID: th.Head}
	resp, err := r.response(ctx, th, head, res)
	if err != nil {
		return err
	}
	execs := make([]agent.ToolExecution, len(resp.Message.ToolCalls))
	for i, call := range resp.Message.ToolCalls {
		if execs[i], err = r.tool(ctx, th, head, call, res); err != nil {
			return err
		}
	}
	st := th.State.Clone()
	stop, err := st.ApplyStep(resp, execs, r.cfg.Now())
	if err != nil {
		return err
	}
	if err := r.put(ctx, th, st, Metadata{Source: SourceLoop, StopReason: stop}, res); err != nil {
		return err
	}
	if stop != agent.StopReasonToolCalls {
		fmt.Fprintf(r.out, "  assistant: %s\n", st.Messages[len(st.Messages)-1].Content)
	}
	return nil
}

// response returns the step's model response: the recorded one, or a new
// one, recorded before it is used.
func (r *Runner) response(ctx context.Context, th *Thread, head saver.Ref, res *Result) (agent.Response, error) {
	if b, ok := th.writes[agent.ModelTaskID]; ok {
		resp, err := agent.DecodeResponse(b)
		if err == nil {
			resp, err = th.State.PrepareResponse(resp)
		}
		if err != nil {
			return agent.Response{}, events.Errorf(events.Invalid, "recorded model response of checkpoint %s: %w", th.Head, err)
		}
		res.ResponsesReused++
		fmt.Fprintf(r.out, "  model: %s (recorded before, not asked again)\n", describeResponse(resp))
		return resp, nil
	}
	resp, err := r.cfg.Model.Complete(ctx, agent.Request{Messages: th.State.Messages, Tools: r.cfg.Tools.Specs()})
	if err != nil {
		return agent.Response{}, fmt.Errorf("model: %w", err)
	}
	res.ModelCalls++
	if resp, err = th.State.PrepareResponse(resp); err != nil {
		return agent.Response{}, fmt.Errorf("model: %w", err)
	}
	value, err := agent.EncodeResponse(resp)
	if err != nil {
		return agent.Response{}, err
	}
	seq, err := r.cfg.Saver.PutWrites(ctx, head, agent.ModelTaskID, "", []saver.Write{{Channel: ResponseChannel, Value: value}})
	if err != nil {
		return agent.Response{}, err
	}
	r.cfg.Logger.Debug("model response recorded", "thread_id", th.ID, "stream_seq", seq)
	fmt.Fprintf(r.out, "  model: %s [pending write on %s, seq %d]\n", describeResponse(resp), th.Head, seq)
	return resp, nil
}

// tool returns a tool call's execution: the recorded one, or a new one,
// recorded before it is used.
func (r *Runner) tool(ctx context.Context, th *Thread, head saver.Ref, call agent.ToolCall, res *Result) (agent.ToolExecution, error) {
	if b, ok := th.writes[call.ID]; ok {
		e, err := agent.DecodeToolExecution(b)
		if err != nil {
			return agent.ToolExecution{}, events.Errorf(events.Invalid, "recorded result of tool call %s: %w", call.ID, err)
		}
		res.ToolsReused = append(res.ToolsReused, call.ID)
		fmt.Fprintf(r.out, "  tool:  %s %s: result recorded before, not run again\n", call.ID, call.Name)
		return e, nil
	}
	e, err := r.cfg.Tools.Execute(ctx, agent.Invocation{Call: call, Key: InvocationKey(th.ID, call.ID)}, r.cfg.Now)
	if err != nil {
		return agent.ToolExecution{}, err
	}
	res.ToolsRun = append(res.ToolsRun, call.ID)
	value, err := agent.EncodeToolExecution(e)
	if err != nil {
		return agent.ToolExecution{}, err
	}
	seq, err := r.cfg.Saver.PutWrites(ctx, head, call.ID, "", []saver.Write{{Channel: ToolChannel, Value: value}})
	if err != nil {
		return agent.ToolExecution{}, err
	}
	r.cfg.Logger.Debug("tool result recorded", "thread_id", th.ID, "stream_seq", seq, "tool_call_id", call.ID)
	outcome := e.Result
	if e.Error != "" {
		outcome = "error: " + e.Error
	}
	fmt.Fprintf(r.out, "  tool:  %s %s → %s [pending write on %s, seq %d]\n", call.ID, call.Name, outcome, th.Head, seq)
	if r.cfg.AfterToolWrite != nil {
		if err := r.cfg.AfterToolWrite(ctx, ToolWrite{ThreadID: th.ID, CheckpointID: th.Head, Call: call, Seq: seq}); err != nil {
			return agent.ToolExecution{}, err
		}
	}
	return e, nil
}

// InvocationKey is the agent.Invocation key of a tool call of a thread:
// both ids, path-escaped and joined by "/", so no two calls share one.
func InvocationKey(threadID, callID string) string {
	return escapeKey(threadID) + "/" + escapeKey(callID)
}

func escapeKey(s string) string {
	return strings.NewReplacer("%", "%25", "/", "%2F").Replace(s)
}

func describeResponse(resp agent.Response) string {
	if len(resp.Message.ToolCalls) == 0 {
		return "answers (" + resp.StopReason + ")"
	}
	calls := make([]string, len(resp.Message.ToolCalls))
	for i, c := range resp.Message.ToolCalls {
		calls[i] = fmt.Sprintf("%s %s %s", c.ID, c.Name, c.Arguments)
	}
	return "calls " + strings.Join(calls, ", ")
}

// put publishes st as th's next checkpoint and makes it th's head.
func (r *Runner) put(ctx context.Context, th *Thread, st *agent.State, meta Metadata, res *Result) error {
	meta.Step, meta.Turn = th.Step+1, st.Turns()
	body, err := st.ToCheckpoint()
	if err != nil {
		return err
	}
	mb, err := json.Marshal(meta)
	if err != nil {
		return fmt.Errorf("encode metadata: %w", err)
	}
	id, parent := CheckpointID(meta.Step), th.Head
	_, seq, err := r.cfg.Saver.Put(ctx, saver.Ref{ThreadID: th.ID, CheckpointID: parent}, id, body, mb)
	if err != nil {
		return err
	}
	r.cfg.Logger.Debug("checkpoint put", "thread_id", th.ID, "stream_seq", seq, "checkpoint_id", id)
	what := meta.Source
	if meta.StopReason != "" {
		what += ", " + meta.StopReason
	}
	fmt.Fprintf(r.out, "  checkpoint %s (parent %s), seq %d: %s\n", id, orNone(parent), seq, what)
	res.Checkpoints = append(res.Checkpoints, Put{ID: id, ParentID: parent, Seq: seq, Metadata: meta})
	th.Head, th.Seq, th.Step, th.State, th.writes = id, seq, meta.Step, st, nil
	return nil
}

// Fork starts thread newThread from the checkpoint at from (its
// CheckpointID is required): the new thread's first checkpoint holds that
// checkpoint's state byte for byte, with metadata source "fork", the next
// step number and forked_from. The source's pending writes are not carried
// over: a step in progress there runs afresh on the new thread. Run the
// returned thread to continue it. newThread must have no checkpoint yet
// (a Conflict error otherwise).
func (r *Runner) Fork(ctx context.Context, from saver.Ref, newThread string) (*Thread, Result, error) {
	var res Result
	switch {
	case from.CheckpointID == "":
		return nil, res, events.Errorf(events.Invalid, "fork: no checkpoint id to fork from")
	case newThread == from.ThreadID:
		return nil, res, events.Errorf(events.Invalid, "fork: the new thread must differ from %s", from.ThreadID)
	}
	src, err := r.get(ctx, from)
	if err != nil {
		return nil, res, fmt.Errorf("fork: read %s of thread %s: %w", from.CheckpointID, from.ThreadID, err)
	}
	switch existing, err := r.get(ctx, saver.Ref{ThreadID: newThread}); {
	case err == nil:
		return nil, res, events.Errorf(events.Conflict, "fork: thread %s already exists (latest checkpoint %s): choose a new thread id", newThread, existing.ID)
	case !errors.Is(err, events.ErrNotFound):
		return nil, res, fmt.Errorf("fork: read thread %s: %w", newThread, err)
	}
	st, err := agent.FromCheckpoint(src.State)
	if err != nil {
		return nil, res, events.Errorf(events.Invalid, "fork: thread %s checkpoint %s is not an agent state: %w", from.ThreadID, from.CheckpointID, err)
	}
	meta := Metadata{Source: SourceFork, Step: stepOf(src.Metadata) + 1, Turn: st.Turns(),
		ForkedFrom: &ForkedFrom{ThreadID: from.ThreadID, NS: from.NS, CheckpointID: from.CheckpointID}}
	mb, err := json.Marshal(meta)
	if err != nil {
		return nil, res, fmt.Errorf("encode metadata: %w", err)
	}
	id := CheckpointID(meta.Step)
	_, seq, err := r.cfg.Saver.Put(ctx, saver.Ref{ThreadID: newThread}, id, src.State, mb)
	if err != nil {
		return nil, res, err
	}
	state := "idle"
	if st.InTurn() {
		state = "in the middle of a turn"
	}
	fmt.Fprintf(r.out, "thread %s: forked from thread %s checkpoint %s (stream seq %d, turn %d, %s)\n",
		newThread, from.ThreadID, from.CheckpointID, src.Seq, st.Turns(), state)
	if n := len(src.PendingWrites); n > 0 {
		fmt.Fprintf(r.out, "  (its %d pending writes stay with thread %s; a step in progress runs afresh here)\n", n, from.ThreadID)
	}
	ff, _ := json.Marshal(meta.ForkedFrom) // marshalled above as part of meta
	fmt.Fprintf(r.out, "  checkpoint %s (parent -), seq %d: fork, forked_from %s\n", id, seq, ff)
	res.Checkpoints = append(res.Checkpoints, Put{ID: id, Seq: seq, Metadata: meta})
	return &Thread{ID: newThread, Head: id, Seq: seq, Step: meta.Step, State: st}, res, nil
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
