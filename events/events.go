// Package events is cairn's vocabulary: the event types that agents publish,
// their JSON encoding and its strict validation, the NATS subjects they travel
// on, and the closed set of error kinds. Every publisher (in any language, via
// the embedded JSON Schema) and every store agrees on what is valid here, once.
// The package imports only the standard library.
package events

import (
	"encoding/json"
	"time"
)

// SchemaVersion is the only envelope schema version this build understands.
// Events with another version are invalid, never guessed at.
const SchemaVersion = 1

// DefaultMaxEventBytes is the default largest encoded event accepted, 8 MiB.
const DefaultMaxEventBytes = 8 << 20

// MaxIDBytes is the longest id (event, thread, checkpoint, task, channel,
// namespace) in bytes.
const MaxIDBytes = 512

// EmptySentinel is the value stores may use internally to stand for the empty
// string where their database cannot hold one (Oracle stores an empty
// string as NULL).
// Because of that it is rejected wherever a user could send it: as a
// checkpoint namespace and as a task path.
const EmptySentinel = " "

// Kind names what an event does.
type Kind string

// The event kinds.
const (
	// KindCheckpointPut records one checkpoint (a state snapshot) of a thread.
	KindCheckpointPut Kind = "checkpoint.put"
	// KindWritesPut records the pending writes of one task against a
	// checkpoint, replacing the task's earlier set.
	KindWritesPut Kind = "writes.put"
	// KindThreadDelete removes everything the thread's earlier events produced.
	KindThreadDelete Kind = "thread.delete"
	// KindThreadPrune removes what the thread's events below a stream
	// sequence produced.
	KindThreadPrune Kind = "thread.prune"
)

// Event is one validated event. Exactly one of Checkpoint, Writes and Prune
// is set for the kinds that carry a body; thread.delete carries none.
type Event struct {
	Kind Kind
	// EventID is assigned by the producer and is the JetStream Nats-Msg-Id:
	// reused when the same publish is retried, never for a different event.
	EventID  string
	Fleet    string
	ThreadID string
	// CreatedAt is the producer's clock; informational, never used to order.
	CreatedAt time.Time

	Checkpoint *Checkpoint // KindCheckpointPut
	Writes     *Writes     // KindWritesPut
	Prune      *Prune      // KindThreadPrune
}

// Checkpoint is the body of a checkpoint.put event.
type Checkpoint struct {
	NS       string // checkpoint_ns; "" is the root namespace
	ID       string // checkpoint_id
	ParentID string // parent_checkpoint_id; "" for none
	// State is the checkpoint JSON object (the "checkpoint" field), kept as
	// the exact text published.
	State json.RawMessage
	// Metadata is the metadata JSON object, kept as the exact text published.
	Metadata json.RawMessage
}

// Writes is the body of a writes.put event: the complete set of pending
// writes of one task against one checkpoint.
type Writes struct {
	NS           string // checkpoint_ns
	CheckpointID string
	TaskID       string
	TaskPath     string // optional; "" for none
	Writes       []Write
}

// Write is one pending write.
type Write struct {
	// Idx orders the writes of a task. When an event omits it, it is the
	// write's position in the list. Negative values are allowed (LangGraph
	// uses them for error and interrupt writes).
	Idx     int64
	Channel string
	// Value is any JSON value, kept as the exact text published.
	Value json.RawMessage
}

// Prune is the body of a thread.prune event.
type Prune struct {
	// BelowSeq: what the thread's events with a stream sequence below it
	// produced is removed. A value above the prune event's own sequence is
	// treated as that sequence.
	BelowSeq uint64
}
