package storetest

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
)

// BenchApply measures projection into s the way a writer meets a fleet:
// batches of 500 new 4 KiB checkpoints over 1,000 threads (each the child
// of the thread's previous one), each batch one Projector.Apply. It reports
// events/s, to compare with the raw insert ceiling in docs/BENCHMARKS.md.
// The records are built before the timer runs.
func BenchApply(b *testing.B, s projector.Store) {
	state := json.RawMessage(`{"pad":"` + strings.Repeat("x", 4080) + `"}`)
	const batch = 500
	var batches [][]projector.Record
	for seq := uint64(1); seq <= uint64(b.N); {
		recs := make([]projector.Record, 0, batch)
		for ; len(recs) < batch && seq <= uint64(b.N); seq++ {
			recs = append(recs, projector.Record{Seq: seq, Event: &events.Event{
				Kind: events.KindCheckpointPut, EventID: fmt.Sprint(seq), Fleet: events.DefaultFleet,
				ThreadID: fmt.Sprintf("thread-%d", seq%1000), CreatedAt: time.Unix(int64(seq), 0),
				Checkpoint: &events.Checkpoint{ID: fmt.Sprintf("c%d", seq), ParentID: fmt.Sprintf("c%d", seq-1000),
					State: state, Metadata: json.RawMessage(`{"turn":1}`)},
			}})
		}
		batches = append(batches, recs)
	}
	p := projector.New(s)
	b.ResetTimer()
	for _, recs := range batches {
		if _, err := p.Apply(b.Context(), recs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
