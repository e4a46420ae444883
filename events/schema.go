package events

import _ "embed"

// JSONSchema is the JSON Schema (draft 2020-12) of an encoded event, for
// publishers in any language. It accepts exactly what Decode accepts, apart
// from the rules its description lists because JSON Schema cannot express
// them (strict JSON, ids of at most MaxIDBytes bytes, unique write indexes,
// the size and depth limits, the subject); publishers must follow those too.
// Callers must not modify the slice.
//
//go:embed schema.json
var JSONSchema []byte
