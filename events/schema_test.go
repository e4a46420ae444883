package events_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cairn-io/cairn/events"
	"github.com/santhosh-tekuri/jsonschema/v6"
)

// corpusDir holds one event per file: valid-* pass the schema and Decode,
// invalid-* fail both, strict-* pass the schema but fail Decode because they
// break a rule that JSON Schema cannot express.
const corpusDir = "testdata/corpus"

// MustCompileSchema compiles events.JSONSchema with format assertions on,
// as a publisher's validator should.
func MustCompileSchema(tb testing.TB) *jsonschema.Schema {
	tb.Helper()
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(events.JSONSchema))
	if err != nil {
		tb.Fatalf("parse schema: %v", err)
	}
	id, _ := doc.(map[string]any)["$id"].(string)
	if id == "" {
		tb.Fatal("schema has no $id")
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource(id, doc); err != nil {
		tb.Fatalf("add schema: %v", err)
	}
	sch, err := c.Compile(id)
	if err != nil {
		tb.Fatalf("compile schema: %v", err)
	}
	return sch
}

// schemaCheck validates data against sch; unparseable JSON is an error too.
func schemaCheck(sch *jsonschema.Schema, data []byte) error {
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(data))
	if err != nil {
		return err
	}
	return sch.Validate(inst)
}

func TestSchemaCompiles(t *testing.T) {
	MustCompileSchema(t)
}

// TestSchemaConstants ties the schema's numbers and names to the Go
// constants they copy.
func TestSchemaConstants(t *testing.T) {
	var s struct {
		Schema     string `json:"$schema"`
		Properties struct {
			Schema struct {
				Const int `json:"const"`
			} `json:"schema"`
			Kind struct {
				Enum []events.Kind `json:"enum"`
			} `json:"kind"`
		} `json:"properties"`
		Defs struct {
			ID struct {
				MaxLength int `json:"maxLength"`
			} `json:"id"`
			Encodable struct {
				MaxLength int `json:"maxLength"`
				Not       struct {
					Const string `json:"const"`
				} `json:"not"`
			} `json:"encodable"`
		} `json:"$defs"`
	}
	if err := json.Unmarshal(events.JSONSchema, &s); err != nil {
		t.Fatal(err)
	}
	if got, want := s.Schema, "https://json-schema.org/draft/2020-12/schema"; got != want {
		t.Errorf("$schema: got %q, want %q", got, want)
	}
	if got, want := s.Properties.Schema.Const, events.SchemaVersion; got != want {
		t.Errorf("schema const: got %d, want %d", got, want)
	}
	kinds := []events.Kind{events.KindCheckpointPut, events.KindWritesPut, events.KindThreadDelete, events.KindThreadPrune}
	if got, want := s.Properties.Kind.Enum, kinds; !slices.Equal(got, want) {
		t.Errorf("kind enum: got %q, want %q", got, want)
	}
	if got, want := s.Defs.ID.MaxLength, events.MaxIDBytes; got != want {
		t.Errorf("id maxLength: got %d, want %d", got, want)
	}
	if got, want := s.Defs.Encodable.MaxLength, events.MaxIDBytes; got != want {
		t.Errorf("encodable maxLength: got %d, want %d", got, want)
	}
	if got, want := s.Defs.Encodable.Not.Const, events.EmptySentinel; got != want {
		t.Errorf("reserved value: got %q, want %q", got, want)
	}
}

// corpusCase is one event of the corpus, from a file or built by the test.
type corpusCase struct {
	name string
	data []byte
}

func readCorpus(t *testing.T) []corpusCase {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(corpusDir, "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if got, min := len(paths), 40; got < min {
		t.Fatalf("corpus: got %d files, want at least %d", got, min)
	}
	var cases []corpusCase
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		cases = append(cases, corpusCase{name: filepath.Base(p), data: data})
	}
	return cases
}

// generatedStrictCases are strict-* cases that are awkward to keep as
// files: invalid UTF-8 bytes, and an event over the default size limit.
func generatedStrictCases() []corpusCase {
	deleteWith := func(threadID string) []byte {
		return []byte(`{"schema":1,"kind":"thread.delete","event_id":"e","fleet":"default","thread_id":"` +
			threadID + `","created_at":"2025-01-02T03:04:05Z"}`)
	}
	big := checkpointJSON(`{"s":"` + strings.Repeat("x", events.DefaultMaxEventBytes) + `"}`)
	return []corpusCase{
		{"strict-invalid-utf8-byte-ff (generated)", deleteWith("t\xff")},
		{"strict-invalid-utf8-overlong (generated)", deleteWith("t\xc0\xaf")},
		{"strict-invalid-utf8-encoded-surrogate (generated)", deleteWith("t\xed\xa0\x80")},
		{"strict-invalid-utf8-truncated (generated)", deleteWith("t\xe6\x97")},
		{"strict-invalid-utf8-in-checkpoint (generated)", []byte(checkpointJSON("{\"k\":\"\x80\"}"))},
		{"strict-over-default-size (generated)", []byte(big)},
	}
}

// TestCorpus checks that the JSON Schema and events.Decode agree on every
// corpus event, and that strict-* events break only what the schema cannot
// express.
func TestCorpus(t *testing.T) {
	sch := MustCompileSchema(t)
	cases := append(readCorpus(t), generatedStrictCases()...)
	seen := map[string]int{}
	for _, c := range cases {
		prefix, _, _ := strings.Cut(c.name, "-")
		seen[prefix]++
		t.Run(c.name, func(t *testing.T) {
			schemaErr := schemaCheck(sch, c.data)
			_, decodeErr := events.Decode(c.data, 0)
			if decodeErr != nil && !errors.Is(decodeErr, events.ErrInvalid) {
				t.Errorf("Decode error: got %v (code %s), want code %s", decodeErr, events.ErrorCode(decodeErr), events.Invalid)
			}
			switch prefix {
			case "valid":
				if schemaErr != nil {
					t.Errorf("schema: got %v, want valid", schemaErr)
				}
				if decodeErr != nil {
					t.Errorf("Decode: got %v, want valid", decodeErr)
				}
			case "invalid":
				if schemaErr == nil {
					t.Error("schema: got valid, want invalid")
				}
				if decodeErr == nil {
					t.Error("Decode: got valid, want invalid")
				}
			case "strict":
				if schemaErr != nil {
					t.Errorf("schema: got %v, want valid (a strict case must break only rules the schema cannot express)", schemaErr)
				}
				if decodeErr == nil {
					t.Error("Decode: got valid, want invalid")
				}
			default:
				t.Errorf("file name: got prefix %q, want valid, invalid or strict", prefix)
			}
			if testing.Verbose() {
				t.Logf("schema: %v; Decode: %v", schemaErr, decodeErr)
			}
		})
	}
	for _, prefix := range []string{"valid", "invalid", "strict"} {
		if seen[prefix] == 0 {
			t.Errorf("corpus: no %s-* cases", prefix)
		}
	}
}

// FuzzDecode checks, from the corpus outwards, that the schema never refuses
// an event that Decode accepts, that every Decode error is Invalid, and that
// an accepted event survives Encode and Decode unchanged.
func FuzzDecode(f *testing.F) {
	paths, err := filepath.Glob(filepath.Join(corpusDir, "*.json"))
	if err != nil {
		f.Fatal(err)
	}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	sch := MustCompileSchema(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		e, err := events.Decode(data, 1<<16)
		if err != nil {
			if !errors.Is(err, events.ErrInvalid) {
				t.Fatalf("Decode error: got %v (code %s), want code %s", err, events.ErrorCode(err), events.Invalid)
			}
			return
		}
		if err := schemaCheck(sch, data); err != nil {
			t.Fatalf("schema: got %v, want valid (Decode accepts %q)", err, data)
		}
		again, err := events.Decode(MustEncode(t, e), 0)
		if err != nil {
			t.Fatalf("Decode of the encoding: %v", err)
		}
		if !sameEvent(again, e) {
			t.Fatalf("round trip:\ngot  %s\nwant %s", show(again), show(e))
		}
	})
}
