package faults

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/cairn-io/cairn/broker"
	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
)

// Ledger records every event the broker acknowledged, with the stream
// sequence the acknowledgement carried. It is safe for concurrent use.
type Ledger struct {
	mu   sync.Mutex
	recs []projector.Record
}

// Add records an acknowledged event.
func (l *Ledger) Add(seq uint64, e *events.Event) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recs = append(l.recs, projector.Record{Seq: seq, Event: e})
}

// Len returns how many events are recorded.
func (l *Ledger) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.recs)
}

// Records returns the recorded events, by stream sequence.
func (l *Ledger) Records() []projector.Record {
	l.mu.Lock()
	defer l.mu.Unlock()
	recs := slices.Clone(l.recs)
	slices.SortFunc(recs, func(a, b projector.Record) int { return cmp.Compare(a.Seq, b.Seq) })
	return recs
}

// LoadConfig configures StartLoad.
type LoadConfig struct {
	// Agents publish concurrently, each one event at a time.
	Agents int
	// ThreadsPerAgent is how many threads each agent writes to.
	ThreadsPerAgent int
	// Events is how many events to publish in all.
	Events int
	// Rate paces the agents to about this many events per second in all;
	// 0 publishes as fast as the broker acknowledges.
	Rate int
	// Seed makes the mix of events repeatable; event ids include it.
	Seed uint64
}

// Load is a set of agents publishing through one broker.Publisher. Each
// agent records in the Ledger every event the broker acknowledged.
type Load struct {
	ledger  *Ledger
	stop    chan struct{}
	stopped sync.Once
	wg      sync.WaitGroup
	done    chan struct{} // closed when every agent has finished
	mu      sync.Mutex
	err     error
}

// StartLoad starts cfg.Agents goroutines publishing through pub. Each
// thread's events form a lineage of checkpoints with pending writes of a
// few tasks, and now and then a same-content republish (a duplicate), a
// different-content one (a conflict), a prune or a delete, so that every
// projection rule is exercised.
func StartLoad(ctx context.Context, pub *broker.Publisher, cfg LoadConfig, ledger *Ledger) *Load {
	l := &Load{ledger: ledger, stop: make(chan struct{}), done: make(chan struct{})}
	cfg.Agents = max(cfg.Agents, 1)
	cfg.ThreadsPerAgent = max(cfg.ThreadsPerAgent, 1)
	var interval time.Duration
	if cfg.Rate > 0 {
		interval = time.Second * time.Duration(cfg.Agents) / time.Duration(cfg.Rate)
	}
	for a := range cfg.Agents {
		n := cfg.Events / cfg.Agents
		if a < cfg.Events%cfg.Agents {
			n++
		}
		ag := &agent{
			id:      fmt.Sprintf("s%d-a%d", cfg.Seed, a),
			rng:     rand.New(rand.NewPCG(cfg.Seed, uint64(a))),
			threads: make([]*threadState, cfg.ThreadsPerAgent),
		}
		for i := range ag.threads {
			ag.threads[i] = &threadState{id: fmt.Sprintf("a%d-t%d", a, i)}
		}
		l.wg.Go(func() {
			start := time.Now()
			for i := range n {
				if interval > 0 {
					time.Sleep(time.Until(start.Add(time.Duration(i) * interval)))
				}
				select {
				case <-l.stop:
					return
				default:
				}
				th, e := ag.next()
				seq, err := pub.Publish(ctx, e)
				if err != nil {
					l.fail(fmt.Errorf("agent %s: publish %s: %w", ag.id, e.EventID, err))
					return
				}
				th.seqs = append(th.seqs, seq)
				l.ledger.Add(seq, e)
			}
		})
	}
	go func() {
		l.wg.Wait()
		close(l.done)
	}()
	return l
}

func (l *Load) fail(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.err == nil {
		l.err = err
	}
}

// Stop asks every agent to stop after its current publish (which completes:
// an event is never abandoned between publish and acknowledgement).
func (l *Load) Stop() { l.stopped.Do(func() { close(l.stop) }) }

// Wait waits for every agent to finish and returns the first publish
// error.
func (l *Load) Wait() error {
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.err
}

// Done reports whether every agent has finished.
func (l *Load) Done() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

// agent generates one agent's events; only its own goroutine uses it.
type agent struct {
	id      string
	rng     *rand.Rand
	seq     int // events generated
	threads []*threadState
}

type threadState struct {
	id   string
	n    int // checkpoints put
	last *events.Checkpoint
	seqs []uint64 // stream sequences of the thread's acknowledged events
}

var createdAt = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// next returns the agent's next event and its thread.
func (a *agent) next() (*threadState, *events.Event) {
	th := a.threads[a.rng.IntN(len(a.threads))]
	a.seq++
	e := &events.Event{
		EventID:   fmt.Sprintf("%s-e%d", a.id, a.seq),
		ThreadID:  th.id,
		CreatedAt: createdAt.Add(time.Duration(a.seq) * time.Millisecond),
	}
	r := a.rng.IntN(100)
	switch {
	case th.last != nil && r < 3: // the same checkpoint again: a duplicate
		e.Kind = events.KindCheckpointPut
		c := *th.last
		e.Checkpoint = &c
	case th.last != nil && r < 5: // other content for the same key: a conflict
		e.Kind = events.KindCheckpointPut
		c := *th.last
		c.State = json.RawMessage(fmt.Sprintf(`{"conflict":%q}`, e.EventID))
		e.Checkpoint = &c
	case len(th.seqs) > 4 && r < 7: // forget the older half of the thread
		e.Kind = events.KindThreadPrune
		e.Prune = &events.Prune{BelowSeq: th.seqs[len(th.seqs)/2]}
	case r < 8:
		e.Kind = events.KindThreadDelete
	case th.last != nil && r < 30:
		e.Kind = events.KindWritesPut
		w := &events.Writes{
			NS: th.last.NS, CheckpointID: th.last.ID,
			TaskID: fmt.Sprintf("task-%d", a.rng.IntN(3)), TaskPath: "plan/act",
		}
		for i := range 1 + a.rng.IntN(3) {
			w.Writes = append(w.Writes, events.Write{Idx: int64(i), Channel: "messages",
				Value: json.RawMessage(fmt.Sprintf(`{"write":%d,"of":%q}`, i, e.EventID))})
		}
		if a.rng.IntN(4) == 0 {
			w.Writes = append(w.Writes, events.Write{Idx: -1, Channel: "__error__", Value: json.RawMessage(`"tool timed out"`)})
		}
		e.Writes = w
	default:
		e.Kind = events.KindCheckpointPut
		th.n++
		c := &events.Checkpoint{ID: fmt.Sprintf("c%d", th.n), Metadata: json.RawMessage(fmt.Sprintf(`{"step":%d,"agent":%q}`, th.n, a.id))}
		if th.n%5 == 0 {
			c.NS = "sub"
		}
		if th.last != nil {
			c.ParentID = th.last.ID
		}
		c.State = json.RawMessage(fmt.Sprintf(`{"thread":%q,"step":%d,"note":%q,"pad":%q}`,
			th.id, th.n, "état ✓", strings.Repeat("x", a.rng.IntN(200))))
		e.Checkpoint = c
		th.last = c
	}
	return th, e
}
