// Package saver is cairn's checkpoint saver for Go agents: the method
// surface of the reference savers (Put, PutWrites, Get, List, GetWrites,
// DeleteThread), writing by publishing events to JetStream and reading
// through the query service with read-your-writes. A Put returns once the
// broker has acknowledged the event; it never waits for a database.
package saver

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/cairn-io/cairn/broker"
	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/query"
)

// Ref addresses a thread, a namespace and optionally a checkpoint, like a
// LangGraph config's configurable section.
type Ref struct {
	ThreadID     string
	NS           string
	CheckpointID string // "" for the latest
}

// Write is one pending write to put: a channel and any JSON value.
type Write struct {
	Channel string
	Value   json.RawMessage
	// Idx, when set, is the write's explicit index (negative for LangGraph's
	// error and interrupt writes); otherwise its position is used.
	Idx *int64
}

// Saver publishes checkpoints and reads them back. It is safe for
// concurrent use; events of one thread are published one at a time, in
// call order per goroutine.
type Saver struct {
	pub *broker.Publisher
	api *query.Client
	now func() time.Time

	mu      sync.Mutex
	seqs    map[string]uint64 // highest acknowledged seq per thread
	highest uint64
}

// New returns a saver publishing through pub and reading through api.
func New(pub *broker.Publisher, api *query.Client) *Saver {
	return &Saver{pub: pub, api: api, now: time.Now, seqs: make(map[string]uint64)}
}

func (s *Saver) publish(ctx context.Context, e *events.Event) (uint64, error) {
	id, err := uuid.NewV7()
	if err != nil {
		return 0, fmt.Errorf("new event id: %w", err)
	}
	e.EventID = id.String()
	e.Fleet = s.pub.Fleet()
	e.CreatedAt = s.now().UTC()
	seq, err := s.pub.Publish(ctx, e)
	if err != nil {
		return 0, err
	}
	s.mu.Lock()
	s.seqs[e.ThreadID] = max(s.seqs[e.ThreadID], seq)
	s.highest = max(s.highest, seq)
	s.mu.Unlock()
	return seq, nil
}

// minSeq is what a read of thread must wait for: this saver's last
// acknowledged event of the thread, or, if it has published none (a
// restarted agent), the head of the thread's subject.
func (s *Saver) minSeq(thread string) query.MinSeq {
	s.mu.Lock()
	defer s.mu.Unlock()
	if thread == "" {
		return query.MinSeq{Seq: s.highest}
	}
	if seq, ok := s.seqs[thread]; ok {
		return query.MinSeq{Seq: seq}
	}
	return query.MinSeq{Head: true}
}

// Put publishes a checkpoint of ref's thread and namespace with parent
// ref.CheckpointID ("" for none). It returns the ref of the new checkpoint
// and its stream sequence once the broker has acknowledged it.
func (s *Saver) Put(ctx context.Context, ref Ref, checkpointID string, state, metadata json.RawMessage) (Ref, uint64, error) {
	seq, err := s.publish(ctx, &events.Event{
		Kind:     events.KindCheckpointPut,
		ThreadID: ref.ThreadID,
		Checkpoint: &events.Checkpoint{
			NS: ref.NS, ID: checkpointID, ParentID: ref.CheckpointID, State: state, Metadata: metadata,
		},
	})
	if err != nil {
		return Ref{}, 0, fmt.Errorf("put checkpoint %q: %w", checkpointID, err)
	}
	return Ref{ThreadID: ref.ThreadID, NS: ref.NS, CheckpointID: checkpointID}, seq, nil
}

// PutWrites publishes the complete set of pending writes of one task
// against ref's checkpoint, replacing the task's earlier set.
func (s *Saver) PutWrites(ctx context.Context, ref Ref, taskID, taskPath string, writes []Write) (uint64, error) {
	ws := make([]events.Write, len(writes))
	for i, w := range writes {
		ws[i] = events.Write{Idx: int64(i), Channel: w.Channel, Value: w.Value}
		if w.Idx != nil {
			ws[i].Idx = *w.Idx
		}
	}
	seq, err := s.publish(ctx, &events.Event{
		Kind:     events.KindWritesPut,
		ThreadID: ref.ThreadID,
		Writes:   &events.Writes{NS: ref.NS, CheckpointID: ref.CheckpointID, TaskID: taskID, TaskPath: taskPath, Writes: ws},
	})
	if err != nil {
		return 0, fmt.Errorf("put writes of task %q: %w", taskID, err)
	}
	return seq, nil
}

// DeleteThread publishes a thread.delete: everything the thread's earlier
// events produced is removed.
func (s *Saver) DeleteThread(ctx context.Context, threadID string) (uint64, error) {
	seq, err := s.publish(ctx, &events.Event{Kind: events.KindThreadDelete, ThreadID: threadID})
	if err != nil {
		return 0, fmt.Errorf("delete thread %q: %w", threadID, err)
	}
	return seq, nil
}

// Get returns a checkpoint with its pending writes: ref.CheckpointID, or
// the latest of the thread's namespace when it is "". It sees every event
// this saver has published.
func (s *Saver) Get(ctx context.Context, ref Ref) (query.Checkpoint, error) {
	m := s.minSeq(ref.ThreadID)
	if ref.CheckpointID == "" {
		return s.api.Latest(ctx, ref.ThreadID, ref.NS, m)
	}
	return s.api.Checkpoint(ctx, ref.ThreadID, ref.NS, ref.CheckpointID, m)
}

// ListOptions narrows List.
type ListOptions struct {
	// AllNS lists every namespace instead of ref.NS.
	AllNS bool
	// Filter is a JSON object that metadata must match key by key.
	Filter json.RawMessage
	// Before lists only checkpoints older than this checkpoint id.
	Before string
	// Limit caps the page; 0 means the service's default.
	Limit int
}

// List returns checkpoints newest first: of ref's thread (every thread if
// ref.ThreadID is ""), in ref.NS unless opts.AllNS.
func (s *Saver) List(ctx context.Context, ref Ref, opts ListOptions) ([]query.Checkpoint, error) {
	cps, _, err := s.api.List(ctx, query.ListParams{
		ThreadID: ref.ThreadID, NS: ref.NS, AllNS: opts.AllNS, Filter: opts.Filter,
		Before: opts.Before, Limit: opts.Limit, MinSeq: s.minSeq(ref.ThreadID),
	})
	return cps, err
}

// GetWrites returns the pending writes of ref's checkpoint, ordered by
// task id then idx; of one task when taskID is not "".
func (s *Saver) GetWrites(ctx context.Context, ref Ref, taskID string) ([]query.Write, error) {
	return s.api.Writes(ctx, ref.ThreadID, ref.NS, ref.CheckpointID, taskID, s.minSeq(ref.ThreadID))
}
