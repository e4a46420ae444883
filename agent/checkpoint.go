package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// ToCheckpoint returns the checkpoint JSON of s: compact, fields in
// declaration order, HTML characters (<, >, &) unescaped, no trailing
// newline. It fails if s is not in canonical form (see State), naming the
// offending field. FromCheckpoint(ToCheckpoint(s)) deep-equals s.
func (s *State) ToCheckpoint() (json.RawMessage, error) {
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("encode checkpoint: %w", err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(s); err != nil {
		return nil, fmt.Errorf("encode checkpoint: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// FromCheckpoint decodes a checkpoint into a canonical State. It is strict:
// it rejects invalid UTF-8, object keys that are unknown, misspelt in case
// or repeated, values of the wrong type, unknown roles and anything after the
// JSON value but whitespace. Absent or null lists become empty, absent
// objects {}, times UTC, and embedded raw JSON is compacted, so
// ToCheckpoint(FromCheckpoint(b)) equals b byte for byte whenever b came from
// ToCheckpoint.
func FromCheckpoint(b json.RawMessage) (*State, error) {
	if !utf8.Valid(b) {
		return nil, errors.New("decode checkpoint: invalid UTF-8")
	}
	if err := checkKeys(b); err != nil {
		return nil, fmt.Errorf("decode checkpoint: %w", err)
	}
	var s State
	if err := json.Unmarshal(b, &s); err != nil {
		return nil, fmt.Errorf("decode checkpoint: %w", err)
	}
	s.normalize()
	if err := s.check(); err != nil {
		return nil, fmt.Errorf("decode checkpoint: %w", err)
	}
	return &s, nil
}

// normalize puts s in canonical form where that is possible without losing
// information.
func (s *State) normalize() {
	s.Messages = nonNil(s.Messages)
	for i := range s.Messages {
		s.Messages[i].normalize()
	}
	s.ToolExecutions = nonNil(s.ToolExecutions)
	for i := range s.ToolExecutions {
		e := &s.ToolExecutions[i]
		e.Arguments = normalizeRaw(e.Arguments)
		e.StartedAt = normalizeTime(e.StartedAt)
		e.FinishedAt = normalizeTime(e.FinishedAt)
	}
	s.ReasoningSteps = nonNil(s.ReasoningSteps)
	s.Errors = nonNil(s.Errors)
	s.ProviderState = normalizeRaw(s.ProviderState)
	s.Metadata = normalizeRaw(s.Metadata)
	s.StartedAt = normalizeTime(s.StartedAt)
	s.UpdatedAt = normalizeTime(s.UpdatedAt)
}

func (m *Message) normalize() {
	m.ToolCalls = nonNil(m.ToolCalls)
	for i := range m.ToolCalls {
		m.ToolCalls[i].Arguments = normalizeRaw(m.ToolCalls[i].Arguments)
	}
	m.Metadata = normalizeRaw(m.Metadata)
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// normalizeRaw returns {} for nil or empty raw JSON, raw compacted if it is
// valid, and raw unchanged otherwise.
func normalizeRaw(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 {
		return slices.Clone(emptyObject)
	}
	var buf bytes.Buffer
	if err := json.Compact(&buf, raw); err != nil {
		return raw
	}
	if bytes.Equal(buf.Bytes(), raw) {
		return raw
	}
	return buf.Bytes()
}

// normalizeTime returns t in UTC without its monotonic clock reading.
func normalizeTime(t time.Time) time.Time { return t.UTC().Round(0) }

// check reports the first way in which s is not canonical.
func (s *State) check() error {
	var c checker
	c.str("run_id", s.RunID)
	c.str("agent_id", s.AgentID)
	c.slice("messages", s.Messages == nil)
	for i, m := range s.Messages {
		p := "messages[" + strconv.Itoa(i) + "]"
		if !m.Role.valid() {
			c.fail(p+".role", fmt.Sprintf("unknown role %q", m.Role))
		}
		c.str(p+".content", m.Content)
		c.slice(p+".tool_calls", m.ToolCalls == nil)
		for j, tc := range m.ToolCalls {
			q := p + ".tool_calls[" + strconv.Itoa(j) + "]"
			c.str(q+".id", tc.ID)
			c.str(q+".name", tc.Name)
			c.raw(q+".arguments", tc.Arguments)
		}
		c.str(p+".tool_call_id", m.ToolCallID)
		c.str(p+".name", m.Name)
		c.raw(p+".metadata", m.Metadata)
	}
	c.slice("tool_executions", s.ToolExecutions == nil)
	for i, e := range s.ToolExecutions {
		p := "tool_executions[" + strconv.Itoa(i) + "]"
		c.str(p+".tool_call_id", e.ToolCallID)
		c.str(p+".name", e.Name)
		c.raw(p+".arguments", e.Arguments)
		c.str(p+".result", e.Result)
		c.str(p+".error", e.Error)
		c.time(p+".started_at", e.StartedAt)
		c.time(p+".finished_at", e.FinishedAt)
	}
	c.slice("reasoning_steps", s.ReasoningSteps == nil)
	for i, r := range s.ReasoningSteps {
		c.str("reasoning_steps["+strconv.Itoa(i)+"]", r)
	}
	c.slice("errors", s.Errors == nil)
	for i, e := range s.Errors {
		c.str("errors["+strconv.Itoa(i)+"]", e)
	}
	c.raw("provider_state", s.ProviderState)
	c.raw("metadata", s.Metadata)
	c.time("started_at", s.StartedAt)
	c.time("updated_at", s.UpdatedAt)
	return c.err
}

// checker collects the first canonical-form violation.
type checker struct{ err error }

func (c *checker) fail(path, msg string) {
	if c.err == nil {
		c.err = fmt.Errorf("%s: %s", path, msg)
	}
}

func (c *checker) str(path, s string) {
	if !utf8.ValidString(s) {
		c.fail(path, "invalid UTF-8")
	}
}

func (c *checker) slice(path string, isNil bool) {
	if isNil {
		c.fail(path, "nil, want an empty slice")
	}
}

func (c *checker) raw(path string, raw json.RawMessage) {
	switch {
	case raw == nil:
		c.fail(path, "nil, want JSON such as {}")
	case !utf8.Valid(raw):
		c.fail(path, "invalid UTF-8")
	case !json.Valid(raw):
		c.fail(path, "invalid JSON")
	default:
		var buf bytes.Buffer
		_ = json.Compact(&buf, raw) // raw is valid
		if !bytes.Equal(buf.Bytes(), raw) {
			c.fail(path, "JSON not compact")
		}
	}
}

// time checks that t is in UTC. Such a time has no monotonic clock reading:
// only time.Now sets one, in time.Local, and UTC, In and Round(0) strip it.
func (c *checker) time(path string, t time.Time) {
	if t.Location() != time.UTC {
		c.fail(path, "time not in UTC")
	}
}

// Strict key checking. encoding/json matches object keys case-insensitively
// and lets a repeated key overwrite the first, so two readers of the same
// checkpoint could disagree about it; checkKeys walks the JSON first and
// accepts only the exact key names of State and its parts, each at most once.

var (
	rawMessageType = reflect.TypeFor[json.RawMessage]()
	timeType       = reflect.TypeFor[time.Time]()
)

// jsonFields maps each struct type reachable from State to its fields' JSON
// names and types.
var jsonFields = sync.OnceValue(func() map[reflect.Type]map[string]reflect.Type {
	out := make(map[reflect.Type]map[string]reflect.Type)
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Slice && t != rawMessageType {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct || t == timeType || out[t] != nil {
			return
		}
		fields := make(map[string]reflect.Type)
		out[t] = fields
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if !f.IsExported() || name == "-" || name == "" {
				continue
			}
			fields[name] = f.Type
			walk(f.Type)
		}
	}
	walk(reflect.TypeFor[State]())
	return out
})

// checkKeys reports whether b is one JSON object, optionally surrounded by
// whitespace, whose keys at every level are exactly State's JSON names, none
// repeated. Value types are left to json.Unmarshal.
func checkKeys(b []byte) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	k := keyChecker{dec: dec, fields: jsonFields()}
	if err := k.value(reflect.TypeFor[State](), ""); err != nil {
		return err
	}
	if _, err := dec.Token(); err != io.EOF {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}

type keyChecker struct {
	dec    *json.Decoder
	fields map[reflect.Type]map[string]reflect.Type
}

// token returns the next token; the input may not end before it.
func (k *keyChecker) token(path string) (json.Token, error) {
	tok, err := k.dec.Token()
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", pathOrRoot(path), err)
	}
	return tok, nil
}

func (k *keyChecker) value(t reflect.Type, path string) error {
	if t == rawMessageType {
		var raw json.RawMessage
		if err := k.dec.Decode(&raw); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return fmt.Errorf("%s: %w", pathOrRoot(path), err)
		}
		return nil
	}
	tok, err := k.token(path)
	if err != nil {
		return err
	}
	if tok == nil {
		if path == "" {
			return errors.New("checkpoint: want a JSON object, not null")
		}
		return nil // null: json.Unmarshal leaves the zero value
	}
	switch {
	case t.Kind() == reflect.Struct && t != timeType:
		if tok != json.Delim('{') {
			return fmt.Errorf("%s: want a JSON object", pathOrRoot(path))
		}
		fields := k.fields[t]
		seen := make(map[string]bool, len(fields))
		for k.dec.More() {
			tok, err := k.token(path)
			if err != nil {
				return err
			}
			key := tok.(string) // object keys are always strings
			ft, ok := fields[key]
			if !ok {
				return fmt.Errorf("%s: unknown field %q", pathOrRoot(path), key)
			}
			if seen[key] {
				return fmt.Errorf("%s: repeated field %q", pathOrRoot(path), key)
			}
			seen[key] = true
			if err := k.value(ft, joinPath(path, key)); err != nil {
				return err
			}
		}
	case t.Kind() == reflect.Slice:
		if tok != json.Delim('[') {
			return fmt.Errorf("%s: want a JSON array", pathOrRoot(path))
		}
		for i := 0; k.dec.More(); i++ {
			if err := k.value(t.Elem(), path+"["+strconv.Itoa(i)+"]"); err != nil {
				return err
			}
		}
	default:
		if _, ok := tok.(json.Delim); ok {
			return fmt.Errorf("%s: want a JSON %s", pathOrRoot(path), scalarName(t))
		}
		return nil
	}
	_, err = k.token(path) // the closing '}' or ']'
	return err
}

func joinPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func pathOrRoot(path string) string {
	if path == "" {
		return "checkpoint"
	}
	return path
}

func scalarName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String, reflect.Struct: // Struct: time.Time
		return "string"
	default:
		return "number"
	}
}
