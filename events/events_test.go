package events_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cairn-io/cairn/events"
)

// eventJSON returns a valid envelope of kind followed by body, a JSON
// fragment that is empty or starts with a comma.
func eventJSON(kind events.Kind, body string) string {
	return `{"schema":1,"kind":"` + string(kind) + `","event_id":"evt-1","fleet":"default",` +
		`"thread_id":"thread-1","created_at":"2025-01-02T03:04:05Z"` + body + `}`
}

// checkpointJSON returns a checkpoint.put event whose checkpoint is state.
func checkpointJSON(state string) string {
	return eventJSON(events.KindCheckpointPut, `,"checkpoint_id":"c1","checkpoint":`+state+`,"metadata":{}`)
}

// writesJSON returns a writes.put event whose writes array is writes.
func writesJSON(writes string) string {
	return eventJSON(events.KindWritesPut, `,"checkpoint_id":"c1","task_id":"task-1","writes":`+writes)
}

// MustDecode decodes data with the default size limit or fails the test.
func MustDecode(tb testing.TB, data string) *events.Event {
	tb.Helper()
	e, err := events.Decode([]byte(data), 0)
	if err != nil {
		tb.Fatalf("Decode: %v", err)
	}
	return e
}

// MustEncode encodes e with the default size limit or fails the test.
func MustEncode(tb testing.TB, e *events.Event) []byte {
	tb.Helper()
	b, err := events.Encode(e, 0)
	if err != nil {
		tb.Fatalf("Encode: %v", err)
	}
	return b
}

// wantInvalid fails the test unless err is an Invalid error.
func wantInvalid(tb testing.TB, what string, err error) {
	tb.Helper()
	switch {
	case err == nil:
		tb.Errorf("%s: got no error, want an invalid error", what)
	case !errors.Is(err, events.ErrInvalid):
		tb.Errorf("%s: got %v (code %s), want code %s", what, err, events.ErrorCode(err), events.Invalid)
	}
}

var created = time.Date(2025, 1, 2, 3, 4, 5, 123456789, time.UTC)

func newCheckpoint(state, metadata string) *events.Event {
	return &events.Event{
		Kind: events.KindCheckpointPut, EventID: "evt-1", Fleet: "default", ThreadID: "thread-1", CreatedAt: created,
		Checkpoint: &events.Checkpoint{ID: "c1", State: json.RawMessage(state), Metadata: json.RawMessage(metadata)},
	}
}

func newWrites(writes ...events.Write) *events.Event {
	return &events.Event{
		Kind: events.KindWritesPut, EventID: "evt-2", Fleet: "default", ThreadID: "thread-1", CreatedAt: created,
		Writes: &events.Writes{CheckpointID: "c1", TaskID: "task-1", Writes: writes},
	}
}

// sameEvent reports whether a and b are equal, their times compared with
// time.Time.Equal and their raw JSON byte for byte.
func sameEvent(a, b *events.Event) bool {
	if !a.CreatedAt.Equal(b.CreatedAt) {
		return false
	}
	a2, b2 := *a, *b
	a2.CreatedAt, b2.CreatedAt = time.Time{}, time.Time{}
	return reflect.DeepEqual(a2, b2)
}

// show formats e for failure messages, raw JSON as text.
func show(e *events.Event) string {
	s := fmt.Sprintf("{%s %q %q %q %s", e.Kind, e.EventID, e.Fleet, e.ThreadID, e.CreatedAt.Format(time.RFC3339Nano))
	if c := e.Checkpoint; c != nil {
		s += fmt.Sprintf(" checkpoint{ns=%q id=%q parent=%q state=%s metadata=%s}", c.NS, c.ID, c.ParentID, c.State, c.Metadata)
	}
	if w := e.Writes; w != nil {
		s += fmt.Sprintf(" writes{ns=%q checkpoint=%q task=%q path=%q", w.NS, w.CheckpointID, w.TaskID, w.TaskPath)
		for _, wr := range w.Writes {
			s += fmt.Sprintf(" [%d %q %s]", wr.Idx, wr.Channel, wr.Value)
		}
		s += "}"
	}
	if p := e.Prune; p != nil {
		s += fmt.Sprintf(" prune{below_seq=%d}", p.BelowSeq)
	}
	return s + "}"
}

func TestEncodeDecodeRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		e    *events.Event
	}{
		{"big integers and decimals", newCheckpoint(
			`{"big":12345678901234567890123,"neg":-98765432109876543210,"dec":0.1000,"exp":1E+400,"tiny":5e-324}`,
			`{"step":18446744073709551616,"pi":3.14159265358979323846264338327950288}`)},
		{"unusual key order", newCheckpoint(`{"z":1,"a":2,"m":{"y":[3,2,1],"b":null}}`, `{"step":1,"source":"loop"}`)},
		{"html characters", newCheckpoint(`{"html":"<script>alert('&')</script>","esc":"\u003c\u003e\u0026"}`, `{"<>&":"<>&"}`)},
		{"unicode", newCheckpoint(`{"ja":"日本語","emoji":"😀","pair":"\ud83d\ude00","sep":"\u2028"}`, `{"é":"ü"}`)},
		{"whitespace inside values", newCheckpoint("{ \"a\" :\t[ 1 ,\n2 ] ,\r\n \"b\" : { } }", "{\n}")},
		{"ids with special characters", &events.Event{
			Kind: events.KindCheckpointPut, EventID: `evt "quoted" \ back`, Fleet: "f_1-A",
			ThreadID: "スレッド.1 *> \u2028 😀", CreatedAt: created,
			Checkpoint: &events.Checkpoint{NS: "parent:1|child:2", ID: "c/1", ParentID: "  ", State: json.RawMessage(`{}`), Metadata: json.RawMessage(`{}`)},
		}},
		{"writes", &events.Event{
			Kind: events.KindWritesPut, EventID: "evt-2", Fleet: "default", ThreadID: "thread-1", CreatedAt: created,
			Writes: &events.Writes{NS: "sub:1", CheckpointID: "c1", TaskID: "task-1", TaskPath: "~__pregel_pull, agent", Writes: []events.Write{
				{Idx: -1, Channel: "__error__", Value: json.RawMessage(`"boom <&>"`)},
				{Idx: 0, Channel: "messages", Value: json.RawMessage(`[ {"type" : "ai"} ]`)},
				{Idx: 7, Channel: "n", Value: json.RawMessage(`12345678901234567890123`)},
				{Idx: 2147483647, Channel: "null", Value: json.RawMessage(`null`)},
				{Idx: -2147483648, Channel: "e", Value: json.RawMessage(`1E+2`)},
			}},
		}},
		{"empty writes", newWrites([]events.Write{}...)},
		{"thread delete", &events.Event{Kind: events.KindThreadDelete, EventID: "e", Fleet: "default", ThreadID: "t", CreatedAt: created}},
		{"thread prune", &events.Event{Kind: events.KindThreadPrune, EventID: "e", Fleet: "default", ThreadID: "t", CreatedAt: created,
			Prune: &events.Prune{BelowSeq: 1<<63 - 1}}},
		{"offset time", &events.Event{Kind: events.KindThreadDelete, EventID: "e", Fleet: "default", ThreadID: "t",
			CreatedAt: time.Date(2024, 2, 29, 23, 59, 59, 1, time.FixedZone("", 5*3600+1800))}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.e.Writes != nil && tt.e.Writes.Writes == nil {
				tt.e.Writes.Writes = []events.Write{}
			}
			data := MustEncode(t, tt.e)
			got := MustDecode(t, string(data))
			if !sameEvent(got, tt.e) {
				t.Errorf("round trip:\ngot  %s\nwant %s", show(got), show(tt.e))
			}
			if again := MustEncode(t, got); !bytes.Equal(again, data) {
				t.Errorf("re-encode:\ngot  %s\nwant %s", again, data)
			}
		})
	}
}

// TestEncodeNoHTMLEscape checks that Encode writes raw values and ids as
// given, unlike encoding/json, which escapes <, > and &.
func TestEncodeNoHTMLEscape(t *testing.T) {
	e := newCheckpoint(`{"a":"<>&"}`, `{}`)
	e.ThreadID = "<t&>"
	data := MustEncode(t, e)
	for _, want := range []string{`"thread_id":"<t&>"`, `"checkpoint":{"a":"<>&"}`} {
		if !bytes.Contains(data, []byte(want)) {
			t.Errorf("Encode: got %s, want it to contain %s", data, want)
		}
	}
}

// TestDecodeEncodeCorpus decodes every valid corpus event, encodes it and
// decodes it again: the two events must be equal.
func TestDecodeEncodeCorpus(t *testing.T) {
	paths, err := filepath.Glob(filepath.Join(corpusDir, "valid-*.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		t.Run(filepath.Base(p), func(t *testing.T) {
			data, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			want := MustDecode(t, string(data))
			got := MustDecode(t, string(MustEncode(t, want)))
			if !sameEvent(got, want) {
				t.Errorf("round trip:\ngot  %s\nwant %s", show(got), show(want))
			}
		})
	}
}

func TestDecodeKeepsRawValues(t *testing.T) {
	state := "{ \"big\" : 12345678901234567890123, \"dec\": 0.1000, \"b\":1, \"a\":[ ], \"h\":\"<>&\" }"
	metadata := `{"z":"\u00e9","a":-0.0}`
	value := "[ 1.50 , \"\\u2028\" ]"
	e := MustDecode(t, eventJSON(events.KindCheckpointPut, `,"checkpoint_id":"c1","checkpoint":`+state+`,"metadata":`+metadata))
	if got, want := string(e.Checkpoint.State), state; got != want {
		t.Errorf("checkpoint: got %s, want %s", got, want)
	}
	if got, want := string(e.Checkpoint.Metadata), metadata; got != want {
		t.Errorf("metadata: got %s, want %s", got, want)
	}
	w := MustDecode(t, writesJSON(`[{"value":`+value+`,"channel":"c"}]`))
	if got, want := string(w.Writes.Writes[0].Value), value; got != want {
		t.Errorf("value: got %s, want %s", got, want)
	}
}

func TestDecode(t *testing.T) {
	t.Run("checkpoint", func(t *testing.T) {
		e := MustDecode(t, eventJSON(events.KindCheckpointPut,
			`,"checkpoint_ns":"ns","checkpoint_id":"c2","parent_checkpoint_id":"c1","checkpoint":{"v":1},"metadata":{"step":2}`))
		want := &events.Event{
			Kind: events.KindCheckpointPut, EventID: "evt-1", Fleet: "default", ThreadID: "thread-1",
			CreatedAt:  time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC),
			Checkpoint: &events.Checkpoint{NS: "ns", ID: "c2", ParentID: "c1", State: json.RawMessage(`{"v":1}`), Metadata: json.RawMessage(`{"step":2}`)},
		}
		if !sameEvent(e, want) {
			t.Errorf("got  %s\nwant %s", show(e), show(want))
		}
	})
	t.Run("null optionals", func(t *testing.T) {
		e := MustDecode(t, eventJSON(events.KindCheckpointPut, `,"checkpoint_ns":null,"checkpoint_id":"c","parent_checkpoint_id":null,"checkpoint":{},"metadata":{}`))
		if got, want := e.Checkpoint.NS+e.Checkpoint.ParentID, ""; got != want {
			t.Errorf("ns and parent: got %q, want %q", got, want)
		}
	})
	t.Run("prune", func(t *testing.T) {
		e := MustDecode(t, eventJSON(events.KindThreadPrune, `,"below_seq":9223372036854775807`))
		if got, want := e.Prune.BelowSeq, uint64(1<<63-1); got != want {
			t.Errorf("below_seq: got %d, want %d", got, want)
		}
	})
	t.Run("created_at offset", func(t *testing.T) {
		e := MustDecode(t, strings.Replace(eventJSON(events.KindThreadDelete, ""), "2025-01-02T03:04:05Z", "2025-01-02T08:34:05.5+05:30", 1))
		if got, want := e.CreatedAt, time.Date(2025, 1, 2, 3, 4, 5, 5e8, time.UTC); !got.Equal(want) {
			t.Errorf("created_at: got %v, want %v", got, want)
		}
	})
}

// TestDecodeErrorNamesField checks that Decode's errors say where the
// problem is.
func TestDecodeErrorNamesField(t *testing.T) {
	tests := []struct {
		data, want string
	}{
		{`[]`, "must be a JSON object"},
		{strings.Replace(eventJSON(events.KindThreadDelete, ""), `"schema":1`, `"schema":2`, 1), "schema: version 2"},
		{eventJSON("thread.undelete", ""), `kind: unknown kind "thread.undelete"`},
		{eventJSON(events.KindThreadDelete, `,"below_seq":1`), "below_seq: unknown field"},
		{eventJSON(events.KindThreadPrune, `,"below_seq":0`), "below_seq: must be an integer in [1, "},
		{strings.Replace(eventJSON(events.KindThreadDelete, ""), `"fleet":"default"`, `"fleet":"a.b"`, 1), "fleet:"},
		{strings.Replace(eventJSON(events.KindThreadDelete, ""), `"thread-1"`, `""`, 1), "thread_id: must not be empty"},
		{strings.Replace(eventJSON(events.KindThreadDelete, ""), `Z"`, `"`, 1), "created_at: not an RFC 3339 timestamp"},
		{writesJSON(`[{"channel":"a","value":1},{"channel":"b","value":2,"x":0}]`), "writes[1].x: unknown field"},
		{writesJSON(`[{"channel":"a","value":1,"idx":2.5}]`), "writes[0].idx: must be an integer"},
		{writesJSON(`[{"channel":"a"}]`), "writes[0].value: missing"},
		{writesJSON(`[{"channel":"a","value":1,"idx":1},{"channel":"b","value":2}]`), "writes[1].idx: 1 is already used by writes[0]"},
		{checkpointJSON(`[]`), "checkpoint: must be a JSON object"},
		{eventJSON(events.KindCheckpointPut, `,"checkpoint_ns":" ","checkpoint_id":"c","checkpoint":{},"metadata":{}`), "checkpoint_ns:"},
		{eventJSON(events.KindWritesPut, `,"checkpoint_id":"c","task_id":"t","task_path":" ","writes":[]`), "task_path:"},
		{eventJSON(events.KindWritesPut, `,"checkpoint_id":"c","task_id":"t\u0085","writes":[]`), "task_id: control character U+0085"},
	}
	for _, tt := range tests {
		_, err := events.Decode([]byte(tt.data), 0)
		wantInvalid(t, tt.data, err)
		if err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Decode(%s):\ngot  %v\nwant it to contain %q", tt.data, err, tt.want)
		}
	}
}

func TestMaxSize(t *testing.T) {
	// padded returns a checkpoint event whose encoding is exactly size bytes.
	padded := func(t *testing.T, size int) *events.Event {
		t.Helper()
		base := len(MustEncode(t, newCheckpoint(`{"s":""}`, `{}`)))
		return newCheckpoint(`{"s":"`+strings.Repeat("x", size-base)+`"}`, `{}`)
	}
	for _, tt := range []struct {
		name     string
		maxBytes int // as passed to Encode and Decode
		limit    int // in effect
	}{
		{"default", 0, events.DefaultMaxEventBytes},
		{"negative means default", -1, events.DefaultMaxEventBytes},
		{"explicit", 1000, 1000},
	} {
		t.Run(tt.name, func(t *testing.T) {
			data, err := events.Encode(padded(t, tt.limit), tt.maxBytes)
			if err != nil {
				t.Fatalf("Encode at the limit: %v", err)
			}
			if got, want := len(data), tt.limit; got != want {
				t.Fatalf("encoded size: got %d, want %d", got, want)
			}
			if _, err := events.Decode(data, tt.maxBytes); err != nil {
				t.Errorf("Decode at the limit: %v", err)
			}

			_, err = events.Encode(padded(t, tt.limit+1), tt.maxBytes)
			wantInvalid(t, "Encode over the limit", err)
			_, err = events.Decode(append(data, ' '), tt.maxBytes)
			wantInvalid(t, "Decode over the limit", err)
		})
	}
}

func TestWritesIdx(t *testing.T) {
	tests := []struct {
		name   string
		writes string
		want   []int64 // nil: invalid
	}{
		{"default is the position", `[{"channel":"a","value":1},{"channel":"b","value":2},{"channel":"a","value":3}]`, []int64{0, 1, 2}},
		{"explicit negatives", `[{"idx":-1,"channel":"a","value":1},{"idx":-3,"channel":"b","value":2},{"channel":"c","value":3}]`, []int64{-1, -3, 2}},
		{"explicit and default mixed", `[{"idx":5,"channel":"a","value":1},{"channel":"b","value":2}]`, []int64{5, 1}},
		{"explicit equal to a later default", `[{"idx":1,"channel":"a","value":1},{"channel":"b","value":2}]`, nil},
		{"duplicate explicit", `[{"idx":3,"channel":"a","value":1},{"idx":3,"channel":"b","value":2}]`, nil},
		{"int32 bounds", `[{"idx":-2147483648,"channel":"a","value":1},{"idx":2147483647,"channel":"b","value":2}]`, []int64{-2147483648, 2147483647}},
		{"over int32", `[{"idx":2147483648,"channel":"a","value":1}]`, nil},
		{"under int32", `[{"idx":-2147483649,"channel":"a","value":1}]`, nil},
		{"empty", `[]`, []int64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := events.Decode([]byte(writesJSON(tt.writes)), 0)
			if tt.want == nil {
				wantInvalid(t, "Decode", err)
				return
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			got := []int64{}
			for _, w := range e.Writes.Writes {
				got = append(got, w.Idx)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("idx: got %v, want %v", got, tt.want)
			}
		})
	}
}

// TestIntegerForms checks that a number counts as an integer by its value,
// as in JSON Schema, for idx, below_seq and schema alike.
func TestIntegerForms(t *testing.T) {
	tests := []struct {
		num  string
		want int64
		ok   bool
	}{
		{"2", 2, true},
		{"2.0", 2, true},
		{"2e0", 2, true},
		{"2E+0", 2, true},
		{"200e-2", 2, true},
		{"0.2e1", 2, true},
		{"0.02E2", 2, true},
		{"-0", 0, true},
		{"-0.0e5", 0, true},
		{"0e999999999999999999999", 0, true},
		{"-2.000", -2, true},
		{"1" + strings.Repeat("0", 70) + "e-70", 1, true},
		{"0." + strings.Repeat("0", 70) + "3e71", 3, true},
		{"2147483647.0", 2147483647, true},
		{"2.147483647e9", 2147483647, true},
		{"-2.147483648e9", -2147483648, true},
		{"2.5", 0, false},
		{"2.5e0", 0, false},
		{"25e-1", 0, false},
		{"1e-400", 0, false},
		{"1e-99999999999999999999", 0, false},
		{"1e400", 0, false},
		{"1e99999999999999999999", 0, false},
		{"2.147483648e9", 0, false},
		{`"2"`, 0, false},
		{"true", 0, false},
		{"null", 0, false},
		{"[2]", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.num, func(t *testing.T) {
			e, err := events.Decode([]byte(writesJSON(`[{"idx":`+tt.num+`,"channel":"a","value":1}]`)), 0)
			if !tt.ok {
				wantInvalid(t, "Decode", err)
				return
			}
			if err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if got := e.Writes.Writes[0].Idx; got != tt.want {
				t.Errorf("idx: got %d, want %d", got, tt.want)
			}
		})
	}

	for _, tt := range []struct {
		field, num string
		ok         bool
	}{
		{"below_seq", "1.0", true},
		{"below_seq", "1e1", true},
		{"below_seq", "9.223372036854775807e18", true},
		{"below_seq", "9223372036854775808", false},
		{"below_seq", "0e5", false},
		{"below_seq", "0.5", false},
		{"schema", "1.0", true},
		{"schema", "1e0", true},
		{"schema", "10e-1", true},
		{"schema", "1.5", false},
		{"schema", "0", false},
	} {
		data := eventJSON(events.KindThreadPrune, `,"below_seq":1`)
		data = strings.Replace(data, `"`+tt.field+`":1`, `"`+tt.field+`":`+tt.num, 1)
		_, err := events.Decode([]byte(data), 0)
		switch {
		case tt.ok && err != nil:
			t.Errorf("%s %s: got %v, want valid", tt.field, tt.num, err)
		case !tt.ok:
			wantInvalid(t, tt.field+" "+tt.num, err)
		}
	}
}

// TestValidate checks events built in Go, which Encode validates before
// anything is published.
func TestValidate(t *testing.T) {
	valid := func() *events.Event { return newCheckpoint(`{}`, `{}`) }
	tests := []struct {
		name   string
		modify func(e *events.Event)
	}{
		{"no kind", func(e *events.Event) { e.Kind = "" }},
		{"unknown kind", func(e *events.Event) { e.Kind = "thread.undelete" }},
		{"two bodies", func(e *events.Event) { e.Prune = &events.Prune{BelowSeq: 1} }},
		{"wrong body", func(e *events.Event) { e.Kind = events.KindWritesPut }},
		{"delete with a body", func(e *events.Event) { e.Kind = events.KindThreadDelete }},
		{"prune below_seq 0", func(e *events.Event) {
			e.Kind, e.Checkpoint, e.Prune = events.KindThreadPrune, nil, &events.Prune{BelowSeq: 0}
		}},
		{"prune below_seq over int64", func(e *events.Event) {
			e.Kind, e.Checkpoint, e.Prune = events.KindThreadPrune, nil, &events.Prune{BelowSeq: 1 << 63}
		}},
		{"no created_at", func(e *events.Event) { e.CreatedAt = time.Time{} }},
		{"created_at before year 0 in UTC", func(e *events.Event) {
			e.CreatedAt = time.Date(0, 1, 1, 0, 30, 0, 0, time.FixedZone("", 3600))
		}},
		{"created_at after year 9999 in UTC", func(e *events.Event) {
			e.CreatedAt = time.Date(9999, 12, 31, 23, 30, 0, 0, time.FixedZone("", -3600))
		}},
		{"no event id", func(e *events.Event) { e.EventID = "" }},
		{"bad fleet", func(e *events.Event) { e.Fleet = "a b" }},
		{"thread id of 513 bytes", func(e *events.Event) { e.ThreadID = strings.Repeat("t", 512) + "t" }},
		{"thread id of invalid UTF-8", func(e *events.Event) { e.ThreadID = "t\xff" }},
		{"thread id with a control character", func(e *events.Event) { e.ThreadID = "t\x7f" }},
		{"reserved namespace", func(e *events.Event) { e.Checkpoint.NS = events.EmptySentinel }},
		{"parent with a newline", func(e *events.Event) { e.Checkpoint.ParentID = "p\n" }},
		{"no state", func(e *events.Event) { e.Checkpoint.State = nil }},
		{"state not an object", func(e *events.Event) { e.Checkpoint.State = json.RawMessage(`[]`) }},
		{"state not JSON", func(e *events.Event) { e.Checkpoint.State = json.RawMessage(`{a:1}`) }},
		{"state with duplicate keys", func(e *events.Event) { e.Checkpoint.State = json.RawMessage(`{"a":1,"a":2}`) }},
		{"metadata with a lone surrogate", func(e *events.Event) { e.Checkpoint.Metadata = json.RawMessage(`{"a":"\ud800"}`) }},
		{"state nested too deep once embedded", func(e *events.Event) {
			e.Checkpoint.State = json.RawMessage(`{"d":` + strings.Repeat("[", events.MaxJSONDepth-1) + strings.Repeat("]", events.MaxJSONDepth-1) + `}`)
		}},
	}
	if err := valid().Validate(); err != nil {
		t.Fatalf("Validate of the base event: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := valid()
			tt.modify(e)
			wantInvalid(t, "Validate", e.Validate())
			_, err := events.Encode(e, 0)
			wantInvalid(t, "Encode", err)
		})
	}

	for _, tt := range []struct {
		name   string
		writes []events.Write
	}{
		{"empty channel", []events.Write{{Channel: "", Value: json.RawMessage(`1`)}}},
		{"no value", []events.Write{{Channel: "a"}}},
		{"blank value", []events.Write{{Channel: "a", Value: json.RawMessage(` `)}}},
		{"value of invalid UTF-8", []events.Write{{Channel: "a", Value: json.RawMessage("\"\xff\"")}}},
		{"duplicate idx", []events.Write{{Channel: "a", Value: json.RawMessage(`1`)}, {Channel: "b", Value: json.RawMessage(`2`)}}},
		{"idx over int32", []events.Write{{Idx: 1 << 31, Channel: "a", Value: json.RawMessage(`1`)}}},
		{"value nested too deep once embedded", []events.Write{{Channel: "a",
			Value: json.RawMessage(strings.Repeat("[", events.MaxJSONDepth-2) + strings.Repeat("]", events.MaxJSONDepth-2))}}},
	} {
		t.Run("writes "+tt.name, func(t *testing.T) {
			wantInvalid(t, "Validate", newWrites(tt.writes...).Validate())
		})
	}
}

// TestValidateDepthLimit checks that Validate allows exactly the nesting
// that Decode allows once the raw values sit inside the event.
func TestValidateDepthLimit(t *testing.T) {
	nest := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	// The event object, the checkpoint object, then arrays.
	e := newCheckpoint(`{"d":`+nest(events.MaxJSONDepth-2)+`}`, `{}`)
	MustDecode(t, string(MustEncode(t, e)))
	// The event object, the writes array, the write object, then arrays.
	w := newWrites(events.Write{Channel: "a", Value: json.RawMessage(nest(events.MaxJSONDepth - 3))})
	MustDecode(t, string(MustEncode(t, w)))
}
