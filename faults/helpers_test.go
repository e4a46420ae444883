package faults_test

import (
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/cairn-io/cairn/events"
)

var quiet = slog.New(slog.DiscardHandler)

// eventually polls cond until it holds, failing t after timeout.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// checkpointEvent returns a valid checkpoint.put event.
func checkpointEvent(eventID, thread string) *events.Event {
	return &events.Event{
		Kind: events.KindCheckpointPut, EventID: eventID, ThreadID: thread,
		CreatedAt:  time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC),
		Checkpoint: &events.Checkpoint{ID: "c1", State: json.RawMessage(`{"n":1}`), Metadata: json.RawMessage(`{}`)},
	}
}
