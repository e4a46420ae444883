// Package projector turns events into store rows. It owns cairn's projection
// rules (which checkpoint wins a key, which write set wins a task, what a
// watermark removes, which checkpoint is live) and the Store contract that
// every database adapter implements. The rules are order-free: any
// permutation of a set of records, with any duplicates, applied in any batch
// sizes, by one writer or several at once, yields identical tables. That is
// what lets several writers share one consumer and lets a replay be trusted.
package projector

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"

	"github.com/cairn-io/cairn/events"
)

// Record is an event with the JetStream stream sequence it was stored at.
// The sequence is what orders a thread's events; it is unique per message,
// so a redelivered record (same Seq) is recognised by data, not timing.
type Record struct {
	Seq   uint64
	Event *events.Event
}

// Outcome is what applying one record did.
type Outcome int

// Outcomes.
const (
	// Applied: the record's effect is in the tables (it won its key or task,
	// or moved a watermark).
	Applied Outcome = iota + 1
	// Duplicate: a checkpoint with the same content was already recorded at
	// a lower seq, or the record itself was applied before (redelivery).
	Duplicate
	// Conflict: a checkpoint with different content holds the key; the
	// record is kept in the conflicts table.
	Conflict
	// Superseded: a write set with a higher seq holds the task.
	Superseded
	// Ignored: the record is below its thread's watermark.
	Ignored
	// Failed: the store refused the record on its own; see Result.Errors.
	Failed
)

var outcomeNames = map[Outcome]string{
	Applied: "applied", Duplicate: "duplicate", Conflict: "conflict",
	Superseded: "superseded", Ignored: "ignored", Failed: "failed",
}

func (o Outcome) String() string {
	if s, ok := outcomeNames[o]; ok {
		return s
	}
	return fmt.Sprintf("outcome(%d)", int(o))
}

// Result reports, per record of a batch (same index), what happened.
type Result struct {
	Outcomes []Outcome
	// Errors holds, for Failed records, the store's error; nil otherwise.
	Errors []error
}

// Projector applies batches of records to a store.
type Projector struct {
	store Store
}

// New returns a projector over store.
func New(store Store) *Projector { return &Projector{store: store} }

// Apply applies recs. Normally that is one transaction. If the store fails
// the batch with an error that is not Unavailable, the batch is split and
// retried in halves, so that a record the store cannot take on its own ends
// up Failed with the store's error while every other record is applied.
// An Unavailable error (or the context's) is returned as is: nothing of the
// batch was committed, and the caller should back off and retry it.
func (p *Projector) Apply(ctx context.Context, recs []Record) (Result, error) {
	res := Result{Outcomes: make([]Outcome, len(recs)), Errors: make([]error, len(recs))}
	err := p.applySplit(ctx, recs, res.Outcomes, res.Errors)
	return res, err
}

func (p *Projector) applySplit(ctx context.Context, recs []Record, outs []Outcome, errs []error) error {
	if len(recs) == 0 {
		return nil
	}
	var got []Outcome
	err := p.store.Update(ctx, func(ctx context.Context, tx Tx) error {
		var err error
		got, err = ApplyTx(ctx, tx, recs)
		return err
	})
	if err == nil {
		copy(outs, got)
		return nil
	}
	if ctx.Err() != nil || errors.Is(err, events.ErrUnavailable) {
		return err
	}
	if len(recs) == 1 {
		outs[0], errs[0] = Failed, err
		return nil
	}
	mid := len(recs) / 2
	if err := p.applySplit(ctx, recs[:mid], outs[:mid], errs[:mid]); err != nil {
		return err
	}
	return p.applySplit(ctx, recs[mid:], outs[mid:], errs[mid:])
}

// ContentHash identifies a checkpoint's content: its parent, state and
// metadata, byte for byte. Two checkpoint.put events for one key with equal
// hashes are duplicates; with different hashes, conflicts.
func ContentHash(parentID string, state, metadata []byte) string {
	h := sha256.New()
	var n [8]byte
	for _, part := range [][]byte{[]byte(parentID), state, metadata} {
		binary.BigEndian.PutUint64(n[:], uint64(len(part)))
		h.Write(n[:])
		h.Write(part)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// watermarkOf returns the watermark an event sets, 0 for none: a delete at
// seq D removes everything below D; a prune below W removes everything below
// W, but never above its own seq.
func watermarkOf(r Record) uint64 {
	switch r.Event.Kind {
	case events.KindThreadDelete:
		return r.Seq
	case events.KindThreadPrune:
		return min(r.Event.Prune.BelowSeq, r.Seq)
	}
	return 0
}

func checkpointKeyOf(r Record) CheckpointKey {
	return CheckpointKey{ThreadID: r.Event.ThreadID, NS: r.Event.Checkpoint.NS, ID: r.Event.Checkpoint.ID}
}

func taskKeyOf(r Record) TaskKey {
	w := r.Event.Writes
	return TaskKey{ThreadID: r.Event.ThreadID, NS: w.NS, CheckpointID: w.CheckpointID, TaskID: w.TaskID}
}

func versionOf(r Record) Version {
	c := r.Event.Checkpoint
	return Version{
		CheckpointKey: checkpointKeyOf(r),
		ParentID:      c.ParentID,
		State:         c.State,
		Metadata:      c.Metadata,
		CreatedAt:     r.Event.CreatedAt,
		Seq:           r.Seq,
		EventID:       r.Event.EventID,
		Hash:          ContentHash(c.ParentID, c.State, c.Metadata),
	}
}

func writeSetOf(r Record) WriteSet {
	w := r.Event.Writes
	key := taskKeyOf(r)
	rows := make([]WriteRow, len(w.Writes))
	for i, wr := range w.Writes {
		rows[i] = WriteRow{TaskKey: key, TaskPath: w.TaskPath, Idx: wr.Idx, Channel: wr.Channel, Value: wr.Value, Seq: r.Seq}
	}
	slices.SortFunc(rows, func(a, b WriteRow) int { return cmpInt(a.Idx, b.Idx) })
	return WriteSet{TaskKey: key, TaskPath: w.TaskPath, Seq: r.Seq, EventID: r.Event.EventID, CreatedAt: r.Event.CreatedAt, Writes: rows}
}

func cmpInt[T int64 | uint64](a, b T) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}
