package events_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/cairn-io/cairn/events"
)

// benchEvent returns an encoded checkpoint.put with a state of about n bytes.
func benchEvent(b *testing.B, n int) []byte {
	b.Helper()
	var sb strings.Builder
	sb.WriteString(`{"messages":[`)
	for i := 0; sb.Len() < n; i++ {
		if i > 0 {
			sb.WriteByte(',')
		}
		fmt.Fprintf(&sb, `{"role":"assistant","content":"turn %d: checkout-api p99 is up 4x, \u00e9 ✓","tokens":%d}`, i, i*7)
	}
	sb.WriteString(`]}`)
	data, err := events.Encode(&events.Event{
		Kind: events.KindCheckpointPut, EventID: "0193d6e4-7b1c-7000-8000-000000000001", Fleet: "default",
		ThreadID: "incident-42", CreatedAt: time.Unix(1764338280, 0),
		Checkpoint: &events.Checkpoint{ID: "v2", ParentID: "v1", State: json.RawMessage(sb.String()), Metadata: json.RawMessage(`{"turn":2}`)},
	}, 0)
	if err != nil {
		b.Fatal(err)
	}
	return data
}

func BenchmarkDecode4KiB(b *testing.B) {
	data := benchEvent(b, 4096)
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := events.Decode(data, 0); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncode4KiB(b *testing.B) {
	data := benchEvent(b, 4096)
	e, err := events.Decode(data, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, err := events.Encode(e, 0); err != nil {
			b.Fatal(err)
		}
	}
}
