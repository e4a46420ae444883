package sqlite_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
	"github.com/cairn-io/cairn/sqlite"
)

// BenchmarkApply measures projection into a SQLite file: batches of 500
// new 4 KiB checkpoints over 1,000 threads, each batch one transaction.
// Compare events/s with the raw insert ceiling in docs/BENCHMARKS.md.
func BenchmarkApply(b *testing.B) {
	db := MustOpen(b, sqlite.Config{Path: filepath.Join(b.TempDir(), "bench.db")})
	p := projector.New(db)
	state := json.RawMessage(`{"pad":"` + strings.Repeat("x", 4080) + `"}`)
	const batch = 500
	seq := uint64(0)
	b.ResetTimer()
	for i := 0; i < b.N; i += batch {
		n := min(batch, b.N-i)
		recs := make([]projector.Record, n)
		for j := range recs {
			seq++
			th := fmt.Sprintf("thread-%d", seq%1000)
			recs[j] = projector.Record{Seq: seq, Event: &events.Event{
				Kind: events.KindCheckpointPut, EventID: fmt.Sprint(seq), Fleet: "default", ThreadID: th,
				CreatedAt:  time.Unix(int64(seq), 0),
				Checkpoint: &events.Checkpoint{ID: fmt.Sprintf("c%d", seq), ParentID: fmt.Sprintf("c%d", seq-1000), State: state, Metadata: json.RawMessage(`{"turn":1}`)},
			}}
		}
		if _, err := p.Apply(b.Context(), recs); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
