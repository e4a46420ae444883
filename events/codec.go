package events

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"math/big"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Decode parses and validates one encoded event. Every failure is an Invalid
// *Error whose message names the problem and the field. maxBytes <= 0 means
// DefaultMaxEventBytes.
func Decode(data []byte, maxBytes int) (*Event, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultMaxEventBytes
	}
	if len(data) > maxBytes {
		return nil, Errorf(Invalid, "event is %d bytes, over the %d-byte maximum", len(data), maxBytes)
	}
	// One pass validates the whole event as strict JSON, raw values
	// included, and collects the top-level fields.
	members, err := strictObject(data)
	if err == errNotObject {
		return nil, Errorf(Invalid, "event must be a JSON object")
	}
	if err != nil {
		return nil, Errorf(Invalid, "event is not strict JSON: %v", err)
	}
	f := make(map[string][]byte, len(members))
	for _, m := range members {
		f[m.key] = m.raw
	}

	raw, ok := f["schema"]
	if !ok {
		return nil, Errorf(Invalid, "schema: missing")
	}
	v, err := decodeInt(raw, 0, math.MaxInt64)
	if err != nil {
		return nil, Errorf(Invalid, "schema: %v", err)
	}
	if v != SchemaVersion {
		return nil, Errorf(Invalid, "schema: version %d is not supported (this build reads version %d)", v, SchemaVersion)
	}
	kindStr, err := requiredString(f, "kind")
	if err != nil {
		return nil, err
	}
	kind := Kind(kindStr)
	allowed, known := fieldsByKind[kind]
	if !known {
		return nil, Errorf(Invalid, "kind: unknown kind %q", kindStr)
	}
	for _, m := range members {
		if !commonFields[m.key] && !allowed[m.key] {
			return nil, Errorf(Invalid, "%s: unknown field for kind %s", m.key, kind)
		}
	}

	e := &Event{Kind: kind}
	if e.EventID, err = requiredString(f, "event_id"); err != nil {
		return nil, err
	}
	if e.Fleet, err = requiredString(f, "fleet"); err != nil {
		return nil, err
	}
	if e.ThreadID, err = requiredString(f, "thread_id"); err != nil {
		return nil, err
	}
	created, err := requiredString(f, "created_at")
	if err != nil {
		return nil, err
	}
	if !timestampRE.MatchString(created) {
		return nil, Errorf(Invalid, "created_at: not an RFC 3339 timestamp: %q", created)
	}
	if e.CreatedAt, err = time.Parse(time.RFC3339Nano, created); err != nil {
		return nil, Errorf(Invalid, "created_at: not an RFC 3339 timestamp: %q", created)
	}

	switch kind {
	case KindCheckpointPut:
		c := &Checkpoint{}
		if c.NS, err = optionalString(f, "checkpoint_ns"); err != nil {
			return nil, err
		}
		if c.ID, err = requiredString(f, "checkpoint_id"); err != nil {
			return nil, err
		}
		if c.ParentID, err = optionalString(f, "parent_checkpoint_id"); err != nil {
			return nil, err
		}
		if c.State, err = requiredObject(f, "checkpoint"); err != nil {
			return nil, err
		}
		if c.Metadata, err = requiredObject(f, "metadata"); err != nil {
			return nil, err
		}
		e.Checkpoint = c
	case KindWritesPut:
		w := &Writes{}
		if w.NS, err = optionalString(f, "checkpoint_ns"); err != nil {
			return nil, err
		}
		if w.CheckpointID, err = requiredString(f, "checkpoint_id"); err != nil {
			return nil, err
		}
		if w.TaskID, err = requiredString(f, "task_id"); err != nil {
			return nil, err
		}
		if w.TaskPath, err = optionalString(f, "task_path"); err != nil {
			return nil, err
		}
		if w.Writes, err = decodeWrites(f["writes"]); err != nil {
			return nil, err
		}
		e.Writes = w
	case KindThreadPrune:
		raw, ok := f["below_seq"]
		if !ok {
			return nil, Errorf(Invalid, "below_seq: missing")
		}
		n, err := decodeInt(raw, 1, math.MaxInt64)
		if err != nil {
			return nil, Errorf(Invalid, "below_seq: %v", err)
		}
		e.Prune = &Prune{BelowSeq: uint64(n)}
	}
	// The raw JSON values were checked with the whole event above.
	if err := e.validate(false); err != nil {
		return nil, err
	}
	return e, nil
}

var commonFields = map[string]bool{
	"schema": true, "kind": true, "event_id": true, "fleet": true, "thread_id": true, "created_at": true,
}

var fieldsByKind = map[Kind]map[string]bool{
	KindCheckpointPut: {"checkpoint_ns": true, "checkpoint_id": true, "parent_checkpoint_id": true, "checkpoint": true, "metadata": true},
	KindWritesPut:     {"checkpoint_ns": true, "checkpoint_id": true, "task_id": true, "task_path": true, "writes": true},
	KindThreadDelete:  {},
	KindThreadPrune:   {"below_seq": true},
}

func decodeWrites(raw []byte) ([]Write, error) {
	if raw == nil {
		return nil, Errorf(Invalid, "writes: missing")
	}
	elems, err := arrayElements(raw)
	if err != nil {
		return nil, Errorf(Invalid, "writes: must be an array")
	}
	out := make([]Write, 0, len(elems))
	for i, el := range elems {
		field := fmt.Sprintf("writes[%d]", i)
		members, err := objectMembers(el)
		if err != nil {
			return nil, Errorf(Invalid, "%s: must be an object", field)
		}
		f := make(map[string][]byte, len(members))
		for _, m := range members {
			switch m.key {
			case "channel", "value", "idx":
				f[m.key] = m.raw
			default:
				return nil, Errorf(Invalid, "%s.%s: unknown field", field, m.key)
			}
		}
		w := Write{Idx: int64(i)}
		ch, ok := f["channel"]
		if !ok {
			return nil, Errorf(Invalid, "%s.channel: missing", field)
		}
		if w.Channel, err = decodeString(ch); err != nil {
			return nil, Errorf(Invalid, "%s.channel: %v", field, err)
		}
		if w.Value, ok = f["value"]; !ok {
			return nil, Errorf(Invalid, "%s.value: missing", field)
		}
		if idx, ok := f["idx"]; ok {
			if w.Idx, err = decodeInt(idx, math.MinInt32, math.MaxInt32); err != nil {
				return nil, Errorf(Invalid, "%s.idx: %v", field, err)
			}
		}
		out = append(out, w)
	}
	return out, nil
}

func requiredString(f map[string][]byte, key string) (string, error) {
	raw, ok := f[key]
	if !ok {
		return "", Errorf(Invalid, "%s: missing", key)
	}
	s, err := decodeString(raw)
	if err != nil {
		return "", Errorf(Invalid, "%s: %v", key, err)
	}
	return s, nil
}

// optionalString returns "" for an absent or null field.
func optionalString(f map[string][]byte, key string) (string, error) {
	raw, ok := f[key]
	if !ok || string(raw) == "null" {
		return "", nil
	}
	s, err := decodeString(raw)
	if err != nil {
		return "", Errorf(Invalid, "%s: %v", key, err)
	}
	return s, nil
}

func requiredObject(f map[string][]byte, key string) (json.RawMessage, error) {
	raw, ok := f[key]
	if !ok {
		return nil, Errorf(Invalid, "%s: missing", key)
	}
	if len(raw) == 0 || raw[0] != '{' {
		return nil, Errorf(Invalid, "%s: must be a JSON object", key)
	}
	return json.RawMessage(raw), nil
}

// decodeString decodes a raw JSON value that must be a string. raw is
// already known to be strict JSON.
func decodeString(raw []byte) (string, error) {
	if len(raw) == 0 || raw[0] != '"' {
		return "", fmt.Errorf("must be a string")
	}
	s := &scanner{data: raw}
	return s.str()
}

// decodeInt decodes a raw JSON number that must be an integer within
// [min, max]. Like JSON Schema's "integer", every number whose value is an
// integer counts, whatever its form: 2.0, 2e0 and 200e-2 are all 2.
func decodeInt(raw []byte, min, max int64) (int64, error) {
	if len(raw) == 0 || !(raw[0] == '-' || (raw[0] >= '0' && raw[0] <= '9')) {
		return 0, fmt.Errorf("must be an integer")
	}
	s := string(raw)
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	mant, expText, hasExp := strings.Cut(strings.ReplaceAll(s, "E", "e"), "e")
	intPart, frac, _ := strings.Cut(mant, ".")
	n := new(big.Int)
	if digits := strings.TrimLeft(intPart+frac, "0"); digits != "" {
		// The value is sig × 10^scale, sig ending in a non-zero digit.
		sig := strings.TrimRight(digits, "0")
		scale := int64(len(digits)-len(sig)) - int64(len(frac))
		if hasExp {
			exp, err := strconv.ParseInt(expText, 10, 32)
			switch {
			case err != nil && strings.HasPrefix(expText, "-"):
				return 0, fmt.Errorf("must be an integer")
			case err != nil:
				return 0, fmt.Errorf("must be an integer in [%d, %d]", min, max)
			}
			scale += exp
		}
		if scale < 0 {
			return 0, fmt.Errorf("must be an integer")
		}
		if int64(len(sig))+scale > 19 {
			return 0, fmt.Errorf("must be an integer in [%d, %d]", min, max)
		}
		n.SetString(sig+strings.Repeat("0", int(scale)), 10)
	}
	if neg {
		n.Neg(n)
	}
	if !n.IsInt64() || n.Int64() < min || n.Int64() > max {
		return 0, fmt.Errorf("must be an integer in [%d, %d]", min, max)
	}
	return n.Int64(), nil
}

// timestampRE is RFC 3339's date-time with an upper-case T and Z, as the
// JSON Schema's pattern for created_at spells it. time.Parse alone is more
// lenient: it takes one-digit hours, offsets such as +24:00 and a comma
// before the fraction.
var timestampRE = regexp.MustCompile(`^[0-9]{4}-[0-9]{2}-[0-9]{2}T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\.[0-9]+)?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$`)

var nameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,64}$`)

// ValidName reports whether s is a safe name for a subject root or a fleet:
// 1 to 64 ASCII letters, digits, '_' or '-'.
func ValidName(s string) bool { return nameRE.MatchString(s) }

// checkID validates an id: non-empty, at most MaxIDBytes bytes, valid UTF-8,
// no control characters.
func checkID(field, s string) error {
	if s == "" {
		return Errorf(Invalid, "%s: must not be empty", field)
	}
	return checkText(field, s)
}

// checkText validates optional text (may be empty) with the id rules.
func checkText(field, s string) error {
	if len(s) > MaxIDBytes {
		return Errorf(Invalid, "%s: %d bytes, over the %d-byte maximum", field, len(s), MaxIDBytes)
	}
	if !utf8.ValidString(s) {
		return Errorf(Invalid, "%s: not valid UTF-8", field)
	}
	for i, r := range s {
		if unicode.IsControl(r) {
			return Errorf(Invalid, "%s: control character U+%04X at byte %d", field, r, i)
		}
	}
	return nil
}

// checkEncodable validates an optional field that stores may encode with
// EmptySentinel: any id-like text except the sentinel itself.
func checkEncodable(field, s string) error {
	if s == EmptySentinel {
		return Errorf(Invalid, "%s: %q is reserved (stores use it to encode the empty string)", field, s)
	}
	return checkText(field, s)
}

// checkJSONText validates raw JSON given by a Go producer, which an encoded
// event holds inside depth arrays and objects.
func checkJSONText(field string, raw json.RawMessage, depth int, wantObject bool) error {
	if len(raw) == 0 {
		return Errorf(Invalid, "%s: missing", field)
	}
	if err := checkNestedJSON(raw, depth); err != nil {
		return Errorf(Invalid, "%s: not strict JSON: %v", field, err)
	}
	// Strict JSON that starts with '{' is an object.
	if wantObject && bytes.TrimLeft(raw, " \t\r\n")[0] != '{' {
		return Errorf(Invalid, "%s: must be a JSON object", field)
	}
	return nil
}

// Validate checks every rule an event must satisfy, whether it was decoded
// or built in Go. Errors are Invalid and name the field.
func (e *Event) Validate() error { return e.validate(true) }

// validate checks e; checkRaw says whether the raw JSON values still need
// their strict-JSON check (Decode has already checked them).
func (e *Event) validate(checkRaw bool) error {
	if err := checkID("event_id", e.EventID); err != nil {
		return err
	}
	if !ValidName(e.Fleet) {
		return Errorf(Invalid, "fleet: %q is not a valid name (1-64 of A-Z a-z 0-9 _ -)", e.Fleet)
	}
	if err := checkID("thread_id", e.ThreadID); err != nil {
		return err
	}
	if e.CreatedAt.IsZero() {
		return Errorf(Invalid, "created_at: missing")
	}
	if y := e.CreatedAt.UTC().Year(); y < 0 || y > 9999 {
		return Errorf(Invalid, "created_at: year %d out of range", y)
	}
	bodies := 0
	for _, set := range []bool{e.Checkpoint != nil, e.Writes != nil, e.Prune != nil} {
		if set {
			bodies++
		}
	}
	switch e.Kind {
	case KindCheckpointPut:
		if e.Checkpoint == nil || bodies != 1 {
			return Errorf(Invalid, "kind %s needs exactly a checkpoint body", e.Kind)
		}
		return e.Checkpoint.validate(checkRaw)
	case KindWritesPut:
		if e.Writes == nil || bodies != 1 {
			return Errorf(Invalid, "kind %s needs exactly a writes body", e.Kind)
		}
		return e.Writes.validate(checkRaw)
	case KindThreadDelete:
		if bodies != 0 {
			return Errorf(Invalid, "kind %s carries no body", e.Kind)
		}
		return nil
	case KindThreadPrune:
		if e.Prune == nil || bodies != 1 {
			return Errorf(Invalid, "kind %s needs exactly a prune body", e.Kind)
		}
		if e.Prune.BelowSeq < 1 || e.Prune.BelowSeq > math.MaxInt64 {
			return Errorf(Invalid, "below_seq: must be an integer in [1, %d]", int64(math.MaxInt64))
		}
		return nil
	default:
		return Errorf(Invalid, "kind: unknown kind %q", e.Kind)
	}
}

func (c *Checkpoint) validate(checkRaw bool) error {
	if err := checkEncodable("checkpoint_ns", c.NS); err != nil {
		return err
	}
	if err := checkID("checkpoint_id", c.ID); err != nil {
		return err
	}
	if c.ParentID != "" {
		if err := checkID("parent_checkpoint_id", c.ParentID); err != nil {
			return err
		}
	}
	if !checkRaw {
		return nil
	}
	if err := checkJSONText("checkpoint", c.State, 1, true); err != nil {
		return err
	}
	return checkJSONText("metadata", c.Metadata, 1, true)
}

func (w *Writes) validate(checkRaw bool) error {
	if err := checkEncodable("checkpoint_ns", w.NS); err != nil {
		return err
	}
	if err := checkID("checkpoint_id", w.CheckpointID); err != nil {
		return err
	}
	if err := checkID("task_id", w.TaskID); err != nil {
		return err
	}
	if err := checkEncodable("task_path", w.TaskPath); err != nil {
		return err
	}
	seen := make(map[int64]int, len(w.Writes))
	for i, wr := range w.Writes {
		field := fmt.Sprintf("writes[%d]", i)
		if err := checkID(field+".channel", wr.Channel); err != nil {
			return err
		}
		if checkRaw {
			if err := checkJSONText(field+".value", wr.Value, 3, false); err != nil {
				return err
			}
		}
		if wr.Idx < math.MinInt32 || wr.Idx > math.MaxInt32 {
			return Errorf(Invalid, "%s.idx: must be an integer in [%d, %d]", field, math.MinInt32, math.MaxInt32)
		}
		if j, dup := seen[wr.Idx]; dup {
			return Errorf(Invalid, "%s.idx: %d is already used by writes[%d]", field, wr.Idx, j)
		}
		seen[wr.Idx] = i
	}
	return nil
}
