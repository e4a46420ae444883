package events_test

import (
	"strings"
	"testing"

	"github.com/cairn-io/cairn/events"
)

func TestDecodeStrictJSON(t *testing.T) {
	deleteEvent := eventJSON(events.KindThreadDelete, "")
	nest := func(n int) string { return strings.Repeat("[", n) + strings.Repeat("]", n) }
	tests := []struct {
		name string
		data string
		ok   bool
	}{
		// Duplicate keys, compared after unescaping.
		{"duplicate top-level key", strings.Replace(deleteEvent, `"fleet"`, `"thread_id":"x","fleet"`, 1), false},
		{"duplicate key in checkpoint", checkpointJSON(`{"a":1,"b":2,"a":1}`), false},
		{"duplicate key deep inside", checkpointJSON(`{"x":[{"a":1,"a":2}]}`), false},
		{"escaped-equal keys", checkpointJSON(`{"a":1,"\u0061":2}`), false},
		{"escaped-equal keys, escape first", checkpointJSON(`{"\u0061":1,"a":2}`), false},
		{"escaped-equal top-level key", strings.Replace(deleteEvent, `"fleet"`, `"\u006bind":"thread.delete","fleet"`, 1), false},
		{"escaped-equal keys with a surrogate pair", checkpointJSON(`{"😀":1,"\ud83d\ude00":2}`), false},
		{"same key in sibling objects", checkpointJSON(`{"a":{"a":1},"b":[{"a":1},{"a":2}]}`), true},
		{"keys differing in case", checkpointJSON(`{"a":1,"A":2}`), true},

		// UTF-8.
		{"invalid UTF-8 byte in a string", checkpointJSON("{\"a\":\"\xff\"}"), false},
		{"invalid UTF-8 in a key", checkpointJSON("{\"\xfe\":1}"), false},
		{"invalid UTF-8 in an id", strings.Replace(deleteEvent, "thread-1", "thread-\xc3", 1), false},
		{"overlong encoding", checkpointJSON("{\"a\":\"\xc0\xaf\"}"), false},
		{"UTF-8 encoded surrogate", checkpointJSON("{\"a\":\"\xed\xa0\x80\"}"), false},
		{"truncated multi-byte character", checkpointJSON("{\"a\":\"\xe6\x97\"}"), false},
		{"invalid UTF-8 outside strings", checkpointJSON("{\"a\":1\xa0}"), false},
		{"byte order mark", "\xef\xbb\xbf" + deleteEvent, false},
		{"literal U+FFFD", checkpointJSON("{\"a\":\"\xef\xbf\xbd\"}"), true},
		{"four-byte character", checkpointJSON(`{"a":"😀"}`), true},

		// Surrogate escapes.
		{"lone high surrogate", checkpointJSON(`{"a":"\ud800"}`), false},
		{"lone high surrogate before text", checkpointJSON(`{"a":"\ud83dx"}`), false},
		{"high surrogate then a non-surrogate escape", checkpointJSON(`{"a":"\ud83d\u0041"}`), false},
		{"high surrogate then another high", checkpointJSON(`{"a":"\ud83d\ud83d"}`), false},
		{"high surrogate then a short escape", checkpointJSON(`{"a":"\ud83d\ude0"}`), false},
		{"lone low surrogate", checkpointJSON(`{"a":"\udc00"}`), false},
		{"reversed pair", checkpointJSON(`{"a":"\ude00\ud83d"}`), false},
		{"lone surrogate in a key", checkpointJSON(`{"\udfff":1}`), false},
		{"valid surrogate pair", checkpointJSON(`{"a":"\ud83d\ude00"}`), true},
		{"valid surrogate pair, upper case", checkpointJSON(`{"a":"\uD83D\uDE00"}`), true},
		{"escaped NUL in a value", checkpointJSON(`{"a":"\u0000"}`), true},

		// Syntax.
		{"trailing data", deleteEvent + ` {}`, false},
		{"trailing garbage", deleteEvent + `x`, false},
		{"surrounding whitespace", " \t\r\n" + deleteEvent + "\n ", true},
		{"trailing comma", checkpointJSON(`{"a":1,}`), false},
		{"single quotes", checkpointJSON(`{'a':1}`), false},
		{"raw control character in a string", checkpointJSON("{\"a\":\"\t\"}"), false},
		{"invalid escape", checkpointJSON(`{"a":"\x41"}`), false},
		{"leading zero", checkpointJSON(`{"a":01}`), false},
		{"no digits after the point", checkpointJSON(`{"a":1.}`), false},
		{"NaN", checkpointJSON(`{"a":NaN}`), false},
		{"plus sign", checkpointJSON(`{"a":+1}`), false},
		{"comment", checkpointJSON(`{"a":1/*x*/}`), false},
		{"truncated", deleteEvent[:len(deleteEvent)-1], false},
		{"empty", ``, false},

		// Depth: the event object is level 1, the checkpoint object level 2.
		{"depth 1000", checkpointJSON(`{"d":` + nest(events.MaxJSONDepth-2) + `}`), true},
		{"depth 1001", checkpointJSON(`{"d":` + nest(events.MaxJSONDepth-1) + `}`), false},
		{"depth 1001 of objects", checkpointJSON(strings.Repeat(`{"a":`, events.MaxJSONDepth-1) + `{}` + strings.Repeat(`}`, events.MaxJSONDepth-1)), false},
		{"very deep", checkpointJSON(`{"d":` + nest(100000) + `}`), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := events.Decode([]byte(tt.data), 0)
			if tt.ok {
				if err != nil {
					t.Errorf("Decode: got %v, want valid", err)
				}
				return
			}
			wantInvalid(t, "Decode", err)
		})
	}
}
