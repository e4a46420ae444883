package storetest

import (
	"context"
	"errors"
	"testing"

	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/projector"
)

// testThreadRow checks projector.ThreadReader; a store that does not
// implement it has the case skipped with a note.

func testThreadRow(t *testing.T, b Backend) {
	s := b.Fresh(t)
	tr, ok := s.(projector.ThreadReader)
	if !ok {
		t.Skipf("%T does not implement projector.ThreadReader", s)
	}
	ctx := context.Background()
	if _, err := tr.Thread(ctx, "t"); !errors.Is(err, events.ErrNotFound) {
		t.Fatalf("thread before any event: got %v, want not found", err)
	}
	recs := []projector.Record{
		Put(1, "t", "", "v1", "", `{}`, `{}`), Put(2, "t", "", "v2", "v1", `{}`, `{}`),
		Put(3, "t", "", "v3", "v2", `{}`, `{}`), Prune(4, "t", 3),
		Put(5, "u", "", "orphan", "never-stored", `{}`, `{}`),
	}
	MustApply(t, s, recs...)
	th, err := tr.Thread(ctx, "t")
	if err != nil || th.Watermark != 3 || th.LastSeq != 4 {
		t.Fatalf("thread t: got %+v, %v; want watermark 3, last seq 4", th, err)
	}
	for _, tt := range []struct {
		thread, id string
		want       bool
	}{
		{"t", "v3", true},      // v2 was pruned
		{"u", "orphan", false}, // its parent was never stored: no watermark
	} {
		v := mustCheckpoint(t, s, tt.thread, "", tt.id)
		_, err := s.Checkpoint(ctx, projector.CheckpointKey{ThreadID: tt.thread, ID: v.ParentID})
		th, terr := tr.Thread(ctx, tt.thread)
		if terr != nil {
			t.Fatal(terr)
		}
		if got := projector.ParentPruned(v, err == nil, th); got != tt.want {
			t.Errorf("%s/%s: parent pruned %v, want %v", tt.thread, tt.id, got, tt.want)
		}
	}
}
