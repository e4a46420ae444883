// Package storetest is the conformance suite every projector.Store passes:
// one case per projection rule, a randomized order-freedom property test and
// a concurrent two-writer case. A store package runs it with one call from
// its own tests:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, storetest.Backend{Fresh: openFresh, Again: openAgain})
//	}
package storetest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
)

// Backend opens the stores under test.
type Backend struct {
	// Fresh returns a store on an empty database or table prefix. It
	// registers its own cleanup with t.
	Fresh func(t *testing.T) projector.Store
	// Again returns a second store on the same database and prefix as s,
	// as a second writer process would open it. Nil means s itself is used
	// from several goroutines.
	Again func(t *testing.T, s projector.Store) projector.Store
}

// Run runs the whole suite.
func Run(t *testing.T, b Backend) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.fn(t, b) })
	}
}

// testCase is one conformance case.
type testCase struct {
	name string
	fn   func(t *testing.T, b Backend)
}

var cases = []testCase{
	{"RoundTripExact", testRoundTripExact},
	{"DuplicateSameContent", testDuplicateSameContent},
	{"ConflictRecorded", testConflictRecorded},
	{"LowerSeqReplacesHigher", testLowerSeqReplacesHigher},
	{"RedeliveryIsNoop", testRedeliveryIsNoop},
	{"WritesHighestSeqWins", testWritesHighestSeqWins},
	{"WritesBeforeCheckpointAndChildBeforeParent", testOutOfOrderLineage},
	{"DeleteAndRecreate", testDeleteAndRecreate},
	{"PruneBelow", testPruneBelow},
	{"WatermarkPromotesSurvivor", testWatermarkPromotesSurvivor},
	{"LivePerNamespace", testLivePerNamespace},
	{"NewestFirstBySeq", testNewestFirstBySeq},
	{"ListQueries", testListQueries},
	{"WritesOrdering", testWritesOrdering},
	{"Ancestors", testAncestors},
	{"NotFound", testNotFound},
	{"OrderFreeProperty", testOrderFreeProperty},
	{"ConcurrentWriters", testConcurrentWriters},
	{"SQLTextIsData", testSQLTextIsData},
	{"ThreadRowAndParentPruned", testThreadRow},
}

// T0 is the producer clock of generated events.
var T0 = time.Date(2026, 11, 28, 13, 58, 0, 123456789, time.UTC)

// Put returns a checkpoint.put record.
func Put(seq uint64, thread, ns, id, parent, state, metadata string) projector.Record {
	return projector.Record{Seq: seq, Event: &events.Event{
		Kind: events.KindCheckpointPut, EventID: fmt.Sprintf("ev-%d", seq), Fleet: events.DefaultFleet,
		ThreadID: thread, CreatedAt: T0.Add(time.Duration(seq) * time.Millisecond),
		Checkpoint: &events.Checkpoint{NS: ns, ID: id, ParentID: parent, State: json.RawMessage(state), Metadata: json.RawMessage(metadata)},
	}}
}

// PutWrites returns a writes.put record; each write is "channel=json".
func PutWrites(seq uint64, thread, ns, checkpointID, task string, writes ...string) projector.Record {
	var ws []events.Write
	for i, w := range writes {
		ch, val, _ := strings.Cut(w, "=")
		ws = append(ws, events.Write{Idx: int64(i), Channel: ch, Value: json.RawMessage(val)})
	}
	return projector.Record{Seq: seq, Event: &events.Event{
		Kind: events.KindWritesPut, EventID: fmt.Sprintf("ev-%d", seq), Fleet: events.DefaultFleet,
		ThreadID: thread, CreatedAt: T0.Add(time.Duration(seq) * time.Millisecond),
		Writes: &events.Writes{NS: ns, CheckpointID: checkpointID, TaskID: task, Writes: ws},
	}}
}

// Delete returns a thread.delete record.
func Delete(seq uint64, thread string) projector.Record {
	return projector.Record{Seq: seq, Event: &events.Event{
		Kind: events.KindThreadDelete, EventID: fmt.Sprintf("ev-%d", seq), Fleet: events.DefaultFleet,
		ThreadID: thread, CreatedAt: T0.Add(time.Duration(seq) * time.Millisecond),
	}}
}

// Prune returns a thread.prune record.
func Prune(seq uint64, thread string, below uint64) projector.Record {
	return projector.Record{Seq: seq, Event: &events.Event{
		Kind: events.KindThreadPrune, EventID: fmt.Sprintf("ev-%d", seq), Fleet: events.DefaultFleet,
		ThreadID: thread, CreatedAt: T0.Add(time.Duration(seq) * time.Millisecond),
		Prune: &events.Prune{BelowSeq: below},
	}}
}

// MustApply applies recs as one batch and returns the outcomes.
func MustApply(t testing.TB, s projector.Store, recs ...projector.Record) []projector.Outcome {
	t.Helper()
	res, err := projector.New(s).Apply(context.Background(), recs)
	if err != nil {
		t.Fatalf("apply: %v", err)
	}
	for i, e := range res.Errors {
		if e != nil {
			t.Fatalf("apply: record %d (seq %d) failed: %v", i, recs[i].Seq, e)
		}
	}
	return res.Outcomes
}

// MustDump dumps s.
func MustDump(t testing.TB, s projector.Store) projector.Dump {
	t.Helper()
	d, err := s.Dump(context.Background())
	if err != nil {
		t.Fatalf("dump: %v", err)
	}
	return d
}

// AssertExpected fails t unless s holds exactly what the rules say recs
// produce.
func AssertExpected(t testing.TB, s projector.Store, recs []projector.Record) {
	t.Helper()
	want, err := projector.Expect(recs)
	if err != nil {
		t.Fatalf("expect: %v", err)
	}
	AssertSameDump(t, MustDump(t, s), want)
}

// AssertSameDump fails t with the first differences unless the dumps are
// identical.
func AssertSameDump(t testing.TB, got, want projector.Dump) {
	t.Helper()
	if diff := projector.DiffLines(want, got, 12); len(diff) > 0 {
		t.Fatalf("tables differ from expected (- expected only, + store only):\n%s", strings.Join(diff, "\n"))
	}
}

func mustCheckpoint(t *testing.T, s projector.Store, thread, ns, id string) projector.Version {
	t.Helper()
	v, err := s.Checkpoint(context.Background(), projector.CheckpointKey{ThreadID: thread, NS: ns, ID: id})
	if err != nil {
		t.Fatalf("checkpoint %s/%q/%s: %v", thread, ns, id, err)
	}
	return v
}

func ids(vs []projector.Version) []string {
	var out []string
	for _, v := range vs {
		out = append(out, v.ID)
	}
	return out
}

func wantOutcomes(t *testing.T, got []projector.Outcome, want ...projector.Outcome) {
	t.Helper()
	if !slices.Equal(got, want) {
		t.Fatalf("outcomes: got %v, want %v", got, want)
	}
}

func isRetryable(err error) bool { return errors.Is(err, events.ErrUnavailable) }
