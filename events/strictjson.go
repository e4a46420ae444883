package events

import (
	"fmt"
	"slices"
	"unicode/utf16"
	"unicode/utf8"
)

// MaxJSONDepth is how deeply arrays and objects may nest in an event.
const MaxJSONDepth = 1000

// jsonError is a strict-JSON syntax error at a byte offset.
type jsonError struct {
	off int
	msg string
}

func (e *jsonError) Error() string { return fmt.Sprintf("%s at byte %d", e.msg, e.off) }

// scanner validates strict JSON (RFC 8259 plus: valid UTF-8 everywhere, no
// duplicate object keys, no unpaired surrogate escapes) and hands out the raw
// bytes of object members. encoding/json accepts all three of those faults
// silently (it keeps the last duplicate and substitutes U+FFFD), which would
// let two stores, or a store and an auditor, read different things from the
// same event; so cairn checks every payload with this scanner first.
type scanner struct {
	data []byte
	pos  int
}

// checkJSON reports whether data is exactly one strict JSON value, with
// optional surrounding whitespace.
func checkJSON(data []byte) error { return checkNestedJSON(data, 0) }

// checkNestedJSON is checkJSON for a value that sits inside depth arrays and
// objects of an event, which count towards MaxJSONDepth.
func checkNestedJSON(data []byte, depth int) error {
	s := &scanner{data: data}
	s.skipSpace()
	if err := s.value(depth, nil); err != nil {
		return err
	}
	s.skipSpace()
	if s.pos != len(s.data) {
		return s.errorf("unexpected data after the JSON value")
	}
	return nil
}

// member is one object member: its decoded key and the raw bytes of its value.
type member struct {
	key string
	raw []byte
}

// objectMembers returns the members of the JSON object in data, in order.
// data must be strict JSON; an error is returned if it is not an object.
func objectMembers(data []byte) ([]member, error) {
	s := &scanner{data: data}
	s.skipSpace()
	if s.pos >= len(s.data) || s.data[s.pos] != '{' {
		return nil, &jsonError{off: s.pos, msg: "not a JSON object"}
	}
	var out []member
	err := s.object(0, func(key string, raw []byte) { out = append(out, member{key, raw}) })
	return out, err
}

// strictObject checks that data is exactly one strict JSON object and
// returns its members, in one pass. errNotObject reports strict JSON of
// another type.
func strictObject(data []byte) ([]member, error) {
	s := &scanner{data: data}
	s.skipSpace()
	if s.pos >= len(s.data) || s.data[s.pos] != '{' {
		if err := checkJSON(data); err != nil {
			return nil, err
		}
		return nil, errNotObject
	}
	var out []member
	if err := s.object(0, func(key string, raw []byte) { out = append(out, member{key, raw}) }); err != nil {
		return nil, err
	}
	s.skipSpace()
	if s.pos != len(s.data) {
		return nil, s.errorf("unexpected data after the JSON value")
	}
	return out, nil
}

var errNotObject = &jsonError{msg: "not a JSON object"}

// arrayElements returns the raw bytes of each element of the JSON array in data.
func arrayElements(data []byte) ([][]byte, error) {
	s := &scanner{data: data}
	s.skipSpace()
	if s.pos >= len(s.data) || s.data[s.pos] != '[' {
		return nil, &jsonError{off: s.pos, msg: "not a JSON array"}
	}
	var out [][]byte
	err := s.array(0, func(raw []byte) { out = append(out, raw) })
	return out, err
}

func (s *scanner) errorf(format string, args ...any) error {
	return &jsonError{off: s.pos, msg: fmt.Sprintf(format, args...)}
}

func (s *scanner) skipSpace() {
	for s.pos < len(s.data) {
		switch s.data[s.pos] {
		case ' ', '\t', '\n', '\r':
			s.pos++
		default:
			return
		}
	}
}

// value scans one value starting at s.pos (no leading whitespace). If onRaw
// is not nil it receives the value's raw bytes.
func (s *scanner) value(depth int, onRaw func([]byte)) error {
	if s.pos >= len(s.data) {
		return s.errorf("unexpected end of JSON")
	}
	start := s.pos
	var err error
	switch c := s.data[s.pos]; {
	case c == '{':
		err = s.object(depth, nil)
	case c == '[':
		err = s.array(depth, nil)
	case c == '"':
		_, err = s.scanString(false)
	case c == '-' || (c >= '0' && c <= '9'):
		err = s.number()
	case c == 't':
		err = s.literal("true")
	case c == 'f':
		err = s.literal("false")
	case c == 'n':
		err = s.literal("null")
	default:
		if c >= utf8.RuneSelf {
			r, _ := utf8.DecodeRune(s.data[s.pos:])
			if r == utf8.RuneError {
				return s.errorf("invalid UTF-8")
			}
		}
		return s.errorf("unexpected character %q", s.data[s.pos])
	}
	if err != nil {
		return err
	}
	if onRaw != nil {
		onRaw(s.data[start:s.pos])
	}
	return nil
}

func (s *scanner) literal(lit string) error {
	if len(s.data)-s.pos < len(lit) || string(s.data[s.pos:s.pos+len(lit)]) != lit {
		return s.errorf("invalid literal")
	}
	s.pos += len(lit)
	return nil
}

func (s *scanner) object(depth int, onMember func(key string, raw []byte)) error {
	if depth >= MaxJSONDepth {
		return s.errorf("nested deeper than %d", MaxJSONDepth)
	}
	s.pos++ // '{'
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == '}' {
		s.pos++
		return nil
	}
	// Keys seen so far: a slice for the usual small object, a map once it
	// grows.
	var few [8]string
	keys := few[:0]
	var many map[string]struct{}
	for {
		if s.pos >= len(s.data) || s.data[s.pos] != '"' {
			return s.errorf("expected an object key")
		}
		keyAt := s.pos
		key, err := s.str()
		if err != nil {
			return err
		}
		dup := false
		if many != nil {
			_, dup = many[key]
			many[key] = struct{}{}
		} else {
			dup = slices.Contains(keys, key)
			keys = append(keys, key)
			if len(keys) > 16 {
				many = make(map[string]struct{}, 2*len(keys))
				for _, k := range keys {
					many[k] = struct{}{}
				}
			}
		}
		if dup {
			return &jsonError{off: keyAt, msg: fmt.Sprintf("duplicate object key %q", key)}
		}
		s.skipSpace()
		if s.pos >= len(s.data) || s.data[s.pos] != ':' {
			return s.errorf("expected ':' after object key")
		}
		s.pos++
		s.skipSpace()
		var raw []byte
		if err := s.value(depth+1, func(b []byte) { raw = b }); err != nil {
			return err
		}
		if onMember != nil {
			onMember(key, raw)
		}
		s.skipSpace()
		if s.pos >= len(s.data) {
			return s.errorf("unexpected end of JSON in object")
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
			s.skipSpace()
		case '}':
			s.pos++
			return nil
		default:
			return s.errorf("expected ',' or '}' in object")
		}
	}
}

func (s *scanner) array(depth int, onElem func(raw []byte)) error {
	if depth >= MaxJSONDepth {
		return s.errorf("nested deeper than %d", MaxJSONDepth)
	}
	s.pos++ // '['
	s.skipSpace()
	if s.pos < len(s.data) && s.data[s.pos] == ']' {
		s.pos++
		return nil
	}
	for {
		if err := s.value(depth+1, onElem); err != nil {
			return err
		}
		s.skipSpace()
		if s.pos >= len(s.data) {
			return s.errorf("unexpected end of JSON in array")
		}
		switch s.data[s.pos] {
		case ',':
			s.pos++
			s.skipSpace()
		case ']':
			s.pos++
			return nil
		default:
			return s.errorf("expected ',' or ']' in array")
		}
	}
}

// str scans a string and returns its decoded value.
func (s *scanner) str() (string, error) { return s.scanString(true) }

// scanString scans a string; it builds the decoded value only when decode
// is set (object keys), so that checking a large payload allocates little.
func (s *scanner) scanString(decode bool) (string, error) {
	s.pos++ // opening quote
	var buf []byte
	plainFrom := s.pos
	for {
		// Fast path: plain ASCII.
		for s.pos < len(s.data) {
			c := s.data[s.pos]
			if c < 0x20 || c == '"' || c == '\\' || c >= utf8.RuneSelf {
				break
			}
			s.pos++
		}
		if s.pos >= len(s.data) {
			return "", s.errorf("unterminated string")
		}
		c := s.data[s.pos]
		switch {
		case c == '"':
			s.pos++
			if !decode {
				return "", nil
			}
			if buf == nil {
				return string(s.data[plainFrom : s.pos-1]), nil
			}
			buf = append(buf, s.data[plainFrom:s.pos-1]...)
			return string(buf), nil
		case c < 0x20:
			return "", s.errorf("control character in string")
		case c == '\\':
			if decode {
				buf = append(buf, s.data[plainFrom:s.pos]...)
			}
			r, err := s.escape()
			if err != nil {
				return "", err
			}
			if decode {
				buf = utf8.AppendRune(buf, r)
			}
			plainFrom = s.pos
		default:
			r, size := utf8.DecodeRune(s.data[s.pos:])
			if r == utf8.RuneError && size <= 1 {
				return "", s.errorf("invalid UTF-8 in string")
			}
			s.pos += size
		}
	}
}

// escape decodes one escape sequence starting at the backslash.
func (s *scanner) escape() (rune, error) {
	if s.pos+1 >= len(s.data) {
		return 0, s.errorf("unterminated escape")
	}
	c := s.data[s.pos+1]
	s.pos += 2
	switch c {
	case '"', '\\', '/':
		return rune(c), nil
	case 'b':
		return '\b', nil
	case 'f':
		return '\f', nil
	case 'n':
		return '\n', nil
	case 'r':
		return '\r', nil
	case 't':
		return '\t', nil
	case 'u':
		r, err := s.hex4()
		if err != nil {
			return 0, err
		}
		switch {
		case utf16.IsSurrogate(r) && r < 0xDC00:
			if s.pos+1 < len(s.data) && s.data[s.pos] == '\\' && s.data[s.pos+1] == 'u' {
				s.pos += 2
				lo, err := s.hex4()
				if err != nil {
					return 0, err
				}
				if lo >= 0xDC00 && lo <= 0xDFFF {
					return utf16.DecodeRune(r, lo), nil
				}
			}
			return 0, s.errorf("unpaired surrogate escape")
		case utf16.IsSurrogate(r):
			return 0, s.errorf("unpaired surrogate escape")
		}
		return r, nil
	}
	s.pos--
	return 0, s.errorf("invalid escape")
}

func (s *scanner) hex4() (rune, error) {
	if len(s.data)-s.pos < 4 {
		return 0, s.errorf("short \\u escape")
	}
	var r rune
	for _, c := range s.data[s.pos : s.pos+4] {
		r <<= 4
		switch {
		case c >= '0' && c <= '9':
			r |= rune(c - '0')
		case c >= 'a' && c <= 'f':
			r |= rune(c - 'a' + 10)
		case c >= 'A' && c <= 'F':
			r |= rune(c - 'A' + 10)
		default:
			return 0, s.errorf("invalid \\u escape")
		}
	}
	s.pos += 4
	return r, nil
}

func (s *scanner) number() error {
	if s.data[s.pos] == '-' {
		s.pos++
	}
	switch {
	case s.pos < len(s.data) && s.data[s.pos] == '0':
		s.pos++
	case s.pos < len(s.data) && s.data[s.pos] >= '1' && s.data[s.pos] <= '9':
		s.digits()
	default:
		return s.errorf("invalid number")
	}
	if s.pos < len(s.data) && s.data[s.pos] == '.' {
		s.pos++
		if s.digits() == 0 {
			return s.errorf("invalid number: no digits after '.'")
		}
	}
	if s.pos < len(s.data) && (s.data[s.pos] == 'e' || s.data[s.pos] == 'E') {
		s.pos++
		if s.pos < len(s.data) && (s.data[s.pos] == '+' || s.data[s.pos] == '-') {
			s.pos++
		}
		if s.digits() == 0 {
			return s.errorf("invalid number: no digits in exponent")
		}
	}
	return nil
}

func (s *scanner) digits() int {
	n := 0
	for s.pos < len(s.data) && s.data[s.pos] >= '0' && s.data[s.pos] <= '9' {
		s.pos++
		n++
	}
	return n
}
