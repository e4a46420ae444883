// Package fleet drives many concurrent agents against the broker, the way a
// production fleet would: N agents, each on its own thread, play M turns of
// the offline incident commander, so that every thread grows a realistic
// message history; after each turn an agent publishes its checkpoint (the
// parent being its previous one) and the turn's pending writes. Publishing
// is asynchronous through a broker.AsyncPublisher: bounded in flight, at
// most one unacknowledged event per thread, blocking the agents when the
// broker falls behind. Run reports events published, the rate, and the
// publish-to-ack latency percentiles.
package fleet

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/cairn-io/cairn/agent"
	"github.com/cairn-io/cairn/broker"
	"github.com/cairn-io/cairn/events"
)

// Defaults for Config.
const (
	DefaultAgents = 100
	DefaultTurns  = 5
	DefaultWrites = 2
)

// Config configures Run.
type Config struct {
	// Agents is how many agents (threads) run at once; default DefaultAgents.
	Agents int
	// Turns is how many turns each agent plays; default DefaultTurns.
	Turns int
	// Writes is how many pending writes each turn publishes as one
	// writes.put (0 for none); default DefaultWrites. Negative means none.
	Writes int
	// CheckpointBytes, when above 0, pads each checkpoint (in the state's
	// metadata) to at least this many bytes, for benchmarks with a fixed
	// payload size.
	CheckpointBytes int
	// Workers is how many goroutines play turns; default GOMAXPROCS.
	Workers int
	// ThreadPrefix starts every thread id; default "fleet-<8 random hex>-",
	// so that runs do not collide. Thread i is ThreadPrefix + i (zero padded).
	ThreadPrefix string
	// Model answers the turns; default agent.Offline.
	Model agent.Model
	// Now is the clock; default time.Now.
	Now func() time.Time
}

func (c *Config) setDefaults() error {
	if c.Agents == 0 {
		c.Agents = DefaultAgents
	}
	if c.Turns == 0 {
		c.Turns = DefaultTurns
	}
	if c.Agents < 0 || c.Turns < 0 {
		return events.Errorf(events.Invalid, "fleet: agents and turns must be positive (got %d and %d)", c.Agents, c.Turns)
	}
	switch {
	case c.Writes == 0:
		c.Writes = DefaultWrites
	case c.Writes < 0:
		c.Writes = 0
	}
	if c.Workers <= 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	c.Workers = min(c.Workers, c.Agents)
	if c.ThreadPrefix == "" {
		c.ThreadPrefix = "fleet-" + strings.ReplaceAll(uuid.NewString(), "-", "")[:8] + "-"
	}
	if c.Model == nil {
		c.Model = agent.Offline{}
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return nil
}

// EventsPerTurn is how many events one turn publishes under cfg.
func (c Config) EventsPerTurn() int {
	if c.Writes > 0 {
		return 2
	}
	return 1
}

// Progress is a snapshot of a running fleet.
type Progress struct {
	// Total is the number of events the fleet will publish.
	Total int64
	// Acked events are stored (or recognised as duplicates); Failed ones
	// are not.
	Acked, Failed int64
}

// Result is what a fleet run did.
type Result struct {
	Agents, Turns int
	ThreadPrefix  string
	// Published counts acknowledged events; Checkpoints and WriteSets split
	// them by kind.
	Published, Checkpoints, WriteSets int64
	// Duplicates were acknowledged as already stored.
	Duplicates int64
	// Failed events were not stored; FirstError is the first reason.
	Failed     int64
	FirstError error
	Elapsed    time.Duration
	// Latency holds the publish-to-ack latencies.
	Latency *Histogram
	// Bytes is the total size of the published checkpoint bodies.
	Bytes int64
	// MaxSeq is the highest stream sequence acknowledged: a read with
	// min_seq=MaxSeq sees the whole fleet's work.
	MaxSeq uint64
}

// EventsPerSecond is the acknowledged event rate.
func (r Result) EventsPerSecond() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Published) / r.Elapsed.Seconds()
}

// ThreadID returns the thread of agent i.
func (r Result) ThreadID(i int) string { return threadID(r.ThreadPrefix, r.Agents, i) }

func threadID(prefix string, agents, i int) string {
	width := len(fmt.Sprint(agents - 1))
	return fmt.Sprintf("%s%0*d", prefix, width, i)
}

// CheckpointID is the id of an agent's checkpoint after turn (1-based).
func CheckpointID(turn int) string { return fmt.Sprintf("turn-%04d", turn) }

// Run plays the fleet and returns once every event has its ack (or ctx
// ends). progress, if not nil, is called from Run's goroutine at most every
// interval. A run whose events did not all land returns its Result and an
// error naming the first failure.
func Run(ctx context.Context, pub *broker.AsyncPublisher, cfg Config, interval time.Duration, progress func(Progress)) (Result, error) {
	if err := cfg.setDefaults(); err != nil {
		return Result{}, err
	}
	res := Result{Agents: cfg.Agents, Turns: cfg.Turns, ThreadPrefix: cfg.ThreadPrefix, Latency: &Histogram{}}
	total := int64(cfg.Agents) * int64(cfg.Turns) * int64(cfg.EventsPerTurn())
	var (
		acked, failed, dups, cps, sets, bytes atomic.Int64
		maxSeq                                atomic.Uint64
		errOnce                               sync.Once
		firstErr                              error
	)
	done := func(kind events.Kind) func(broker.Ack) {
		return func(a broker.Ack) {
			if a.Err != nil {
				failed.Add(1)
				errOnce.Do(func() { firstErr = a.Err })
				return
			}
			res.Latency.Record(a.Latency)
			acked.Add(1)
			for cur := maxSeq.Load(); a.Seq > cur && !maxSeq.CompareAndSwap(cur, a.Seq); cur = maxSeq.Load() {
			}
			if a.Duplicate {
				dups.Add(1)
			}
			if kind == events.KindCheckpointPut {
				cps.Add(1)
			} else {
				sets.Add(1)
			}
		}
	}
	ckptDone, writesDone := done(events.KindCheckpointPut), done(events.KindWritesPut)

	start := time.Now()
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, cfg.Workers)
	for w := range cfg.Workers {
		wg.Go(func() {
			// Worker w plays agents w, w+Workers, ... turn by turn, so that
			// every thread has an event in flight while others are played.
			var agents []*player
			for i := w; i < cfg.Agents; i += cfg.Workers {
				agents = append(agents, newPlayer(cfg, i))
			}
			for turn := 1; turn <= cfg.Turns; turn++ {
				for _, a := range agents {
					n, err := a.turn(runCtx, pub, turn, ckptDone, writesDone)
					if err != nil {
						errs <- err
						cancel()
						return
					}
					bytes.Add(int64(n))
				}
			}
		})
	}
	finished := make(chan struct{})
	go func() {
		wg.Wait()
		close(finished)
	}()
	var tick <-chan time.Time
	if progress != nil && interval > 0 {
		t := time.NewTicker(interval)
		defer t.Stop()
		tick = t.C
	}
	report := func() {
		if progress != nil {
			progress(Progress{Total: total, Acked: acked.Load(), Failed: failed.Load()})
		}
	}
	flushed := make(chan error, 1)
	for waiting := true; waiting; {
		select {
		case <-finished:
			waiting = false
		case <-tick:
			report()
		}
	}
	go func() { flushed <- pub.Flush(ctx) }()
	var runErr error
	select {
	case runErr = <-errs:
	default:
	}
	for waiting := true; waiting; {
		select {
		case err := <-flushed:
			if runErr == nil {
				runErr = err
			}
			waiting = false
		case <-tick:
			report()
		}
	}
	res.Elapsed = time.Since(start)
	report()
	res.Published, res.Failed, res.Duplicates = acked.Load(), failed.Load(), dups.Load()
	res.Checkpoints, res.WriteSets, res.Bytes = cps.Load(), sets.Load(), bytes.Load()
	res.FirstError = firstErr
	res.MaxSeq = maxSeq.Load()
	switch {
	case runErr != nil:
		return res, runErr
	case res.Failed > 0:
		return res, fmt.Errorf("fleet: %d of %d events were not stored; first: %w", res.Failed, total, firstErr)
	}
	return res, nil
}

// player is one agent of the fleet.
type player struct {
	cfg    Config
	i      int
	thread string
	state  *agent.State
	parent string
}

func newPlayer(cfg Config, i int) *player {
	thread := threadID(cfg.ThreadPrefix, cfg.Agents, i)
	return &player{
		cfg: cfg, i: i, thread: thread,
		state: agent.NewState(thread, fmt.Sprintf("agent-%d", i), agent.DefaultMaxIterations, cfg.Now().UTC()),
	}
}

// prompt returns the user prompt of a turn: the demo incident's three
// prompts, then status updates.
func prompt(turn int) string {
	if turn <= len(agent.DemoPrompts) {
		return agent.DemoPrompts[turn-1]
	}
	return fmt.Sprintf("Turn %d: draft the next customer status update.", turn)
}

// turn plays one turn and publishes its checkpoint and writes. It returns
// the checkpoint's size.
func (a *player) turn(ctx context.Context, pub *broker.AsyncPublisher, turn int, ckptDone, writesDone func(broker.Ack)) (int, error) {
	tr, err := agent.RunTurn(ctx, a.cfg.Model, a.state, prompt(turn), a.cfg.Now)
	if err != nil {
		return 0, fmt.Errorf("agent %d turn %d: %w", a.i, turn, err)
	}
	body, err := a.checkpoint()
	if err != nil {
		return 0, fmt.Errorf("agent %d turn %d: %w", a.i, turn, err)
	}
	now := a.cfg.Now().UTC()
	id := CheckpointID(turn)
	meta := fmt.Appendf(nil, `{"turn":%d,"iterations":%d,"stop_reason":%q,"agent":%d}`, turn, tr.Iterations, tr.StopReason, a.i)
	e := &events.Event{
		Kind: events.KindCheckpointPut, EventID: newID(), ThreadID: a.thread, CreatedAt: now,
		Checkpoint: &events.Checkpoint{ID: id, ParentID: a.parent, State: body, Metadata: meta},
	}
	if err := pub.Publish(ctx, e, ckptDone); err != nil {
		return 0, fmt.Errorf("agent %d turn %d: publish checkpoint: %w", a.i, turn, err)
	}
	a.parent = id
	if a.cfg.Writes == 0 {
		return len(body), nil
	}
	last := a.state.Messages[len(a.state.Messages)-1]
	reply, err := json.Marshal(last.Content)
	if err != nil {
		return 0, fmt.Errorf("agent %d turn %d: %w", a.i, turn, err)
	}
	ws := make([]events.Write, a.cfg.Writes)
	for k := range ws {
		switch k {
		case 0:
			ws[k] = events.Write{Idx: 0, Channel: "messages", Value: reply}
		case 1:
			ws[k] = events.Write{Idx: 1, Channel: "status", Value: json.RawMessage(`"investigating"`)}
		default:
			ws[k] = events.Write{Idx: int64(k), Channel: fmt.Sprintf("note-%d", k), Value: fmt.Appendf(nil, `{"turn":%d,"n":%d}`, turn, k)}
		}
	}
	w := &events.Event{
		Kind: events.KindWritesPut, EventID: newID(), ThreadID: a.thread, CreatedAt: now,
		Writes: &events.Writes{CheckpointID: id, TaskID: fmt.Sprintf("turn-%04d-tools", turn), Writes: ws},
	}
	if err := pub.Publish(ctx, w, writesDone); err != nil {
		return 0, fmt.Errorf("agent %d turn %d: publish writes: %w", a.i, turn, err)
	}
	return len(body), nil
}

// checkpoint encodes the state, padded to CheckpointBytes through the
// state's opaque metadata. The pad is spliced into the encoded state's
// top-level "metadata" (encoding twice costs as much as the turn itself);
// the result is exactly what ToCheckpoint gives for the padded state.
func (a *player) checkpoint() (json.RawMessage, error) {
	a.state.Metadata = json.RawMessage(`{}`)
	body, err := a.state.ToCheckpoint()
	if err != nil || a.cfg.CheckpointBytes <= len(body) {
		return body, err
	}
	const empty, next = `"metadata":{}`, `,"started_at":`
	const overhead = len(`{"pad":""}`) - len(`{}`)
	pad := strings.Repeat("x", max(a.cfg.CheckpointBytes-len(body)-overhead, 0))
	a.state.Metadata = json.RawMessage(`{"pad":"` + pad + `"}`)
	at := bytes.LastIndex(body, []byte(empty+next))
	if at < 0 {
		return a.state.ToCheckpoint()
	}
	out := make([]byte, 0, len(body)+overhead+len(pad))
	out = append(out, body[:at]...)
	out = append(out, `"metadata":`...)
	out = append(out, a.state.Metadata...)
	out = append(out, body[at+len(empty):]...)
	return out, nil
}

func newID() string {
	id, err := uuid.NewV7()
	if err != nil {
		return uuid.NewString()
	}
	return id.String()
}
