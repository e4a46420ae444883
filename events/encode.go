package events

import (
	"bytes"
	"strconv"
	"time"
)

// TimeFormat is how cairn writes timestamps: RFC 3339 in UTC with nanoseconds
// when present.
const TimeFormat = time.RFC3339Nano

// Encode validates e and returns its JSON encoding. Raw JSON values
// (checkpoint, metadata, write values) are embedded byte for byte, less any
// whitespace around them (a json.Encoder's trailing newline), so a reader
// gets back exactly the text the producer gave. maxBytes <= 0 means
// DefaultMaxEventBytes; a larger encoding is an Invalid error, refused before
// anything is published.
func Encode(e *Event, maxBytes int) ([]byte, error) {
	if err := e.Validate(); err != nil {
		return nil, err
	}
	if maxBytes <= 0 {
		maxBytes = DefaultMaxEventBytes
	}
	b := make([]byte, 0, 256+e.bodySize())
	b = append(b, `{"schema":`...)
	b = strconv.AppendInt(b, SchemaVersion, 10)
	b = appendField(b, "kind", string(e.Kind))
	b = appendField(b, "event_id", e.EventID)
	b = appendField(b, "fleet", e.Fleet)
	b = appendField(b, "thread_id", e.ThreadID)
	b = appendField(b, "created_at", e.CreatedAt.UTC().Format(TimeFormat))
	switch e.Kind {
	case KindCheckpointPut:
		c := e.Checkpoint
		b = appendField(b, "checkpoint_ns", c.NS)
		b = appendField(b, "checkpoint_id", c.ID)
		if c.ParentID != "" {
			b = appendField(b, "parent_checkpoint_id", c.ParentID)
		}
		b = append(b, `,"checkpoint":`...)
		b = append(b, bytes.TrimSpace(c.State)...)
		b = append(b, `,"metadata":`...)
		b = append(b, bytes.TrimSpace(c.Metadata)...)
	case KindWritesPut:
		w := e.Writes
		b = appendField(b, "checkpoint_ns", w.NS)
		b = appendField(b, "checkpoint_id", w.CheckpointID)
		b = appendField(b, "task_id", w.TaskID)
		if w.TaskPath != "" {
			b = appendField(b, "task_path", w.TaskPath)
		}
		b = append(b, `,"writes":[`...)
		for i, wr := range w.Writes {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"idx":`...)
			b = strconv.AppendInt(b, wr.Idx, 10)
			b = appendField(b, "channel", wr.Channel)
			b = append(b, `,"value":`...)
			b = append(b, bytes.TrimSpace(wr.Value)...)
			b = append(b, '}')
		}
		b = append(b, ']')
	case KindThreadPrune:
		b = append(b, `,"below_seq":`...)
		b = strconv.AppendUint(b, e.Prune.BelowSeq, 10)
	}
	b = append(b, '}')
	if len(b) > maxBytes {
		return nil, Errorf(Invalid, "event is %d bytes, over the %d-byte maximum", len(b), maxBytes)
	}
	return b, nil
}

func (e *Event) bodySize() int {
	n := 0
	if e.Checkpoint != nil {
		n += len(e.Checkpoint.State) + len(e.Checkpoint.Metadata)
	}
	if e.Writes != nil {
		for _, w := range e.Writes.Writes {
			n += len(w.Value) + len(w.Channel) + 40
		}
	}
	return n
}

func appendField(b []byte, key, value string) []byte {
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return AppendString(b, value)
}

// AppendString appends s as a JSON string: quotes, backslashes and control
// characters escaped, everything else (including non-ASCII and HTML
// characters) written as is.
func AppendString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xF])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
