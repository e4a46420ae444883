package events

import (
	"encoding/json"
	"math/big"
	"strings"
)

// CheckJSON reports whether data is one strict JSON value: valid UTF-8, no
// duplicate object keys, no unpaired surrogate escapes, nesting within
// MaxJSONDepth. The error is Invalid.
func CheckJSON(data []byte) error {
	if err := checkJSON(data); err != nil {
		return Errorf(Invalid, "not strict JSON: %v", err)
	}
	return nil
}

// Member is one member of a JSON object: its key and its value's raw text.
type Member struct {
	Key   string
	Value json.RawMessage
}

// ObjectMembers returns the members of a strict JSON object, in order. The
// error is Invalid if data is not one.
func ObjectMembers(data []byte) ([]Member, error) {
	if err := CheckJSON(data); err != nil {
		return nil, err
	}
	ms, err := objectMembers(data)
	if err != nil {
		return nil, Errorf(Invalid, "not a JSON object")
	}
	out := make([]Member, len(ms))
	for i, m := range ms {
		out[i] = Member{Key: m.key, Value: m.raw}
	}
	return out, nil
}

// JSONEqual reports whether two strict JSON texts hold equal values: the
// same type; strings equal after unescaping; numbers numerically equal
// (1 = 1.0 = 1e0, but 1 ≠ "1"); arrays equal element by element; objects
// with the same keys and equal values, in any order.
func JSONEqual(a, b []byte) bool {
	var va, vb any
	if !decodeNumbers(a, &va) || !decodeNumbers(b, &vb) {
		return false
	}
	return valuesEqual(va, vb)
}

func decodeNumbers(data []byte, v *any) bool {
	if checkJSON(data) != nil {
		return false
	}
	dec := json.NewDecoder(strings.NewReader(string(data)))
	dec.UseNumber()
	return dec.Decode(v) == nil
}

func valuesEqual(a, b any) bool {
	switch x := a.(type) {
	case map[string]any:
		y, ok := b.(map[string]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for k, v := range x {
			w, ok := y[k]
			if !ok || !valuesEqual(v, w) {
				return false
			}
		}
		return true
	case []any:
		y, ok := b.([]any)
		if !ok || len(x) != len(y) {
			return false
		}
		for i := range x {
			if !valuesEqual(x[i], y[i]) {
				return false
			}
		}
		return true
	case json.Number:
		y, ok := b.(json.Number)
		return ok && numbersEqual(string(x), string(y))
	default: // string, bool, nil
		return a == b
	}
}

// numbersEqual compares two JSON numbers exactly. Exponents beyond ±4096
// are compared as text, to bound the work.
func numbersEqual(a, b string) bool {
	if a == b {
		return true
	}
	if hugeExponent(a) || hugeExponent(b) {
		return false
	}
	ra, ok1 := new(big.Rat).SetString(a)
	rb, ok2 := new(big.Rat).SetString(b)
	return ok1 && ok2 && ra.Cmp(rb) == 0
}

func hugeExponent(s string) bool {
	i := strings.IndexAny(s, "eE")
	if i < 0 {
		return false
	}
	exp := strings.TrimLeft(s[i+1:], "+-")
	exp = strings.TrimLeft(exp, "0")
	return len(exp) > 4 || (len(exp) == 4 && exp > "4096")
}
