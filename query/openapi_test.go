package query_test

import (
	"bytes"
	"encoding/json"
	"maps"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"github.com/cairn-io/cairn/query"
)

// openAPIDoc is the part of the OpenAPI document the checks read.
type openAPIDoc struct {
	OpenAPI string `json:"openapi"`
	Paths   map[string]map[string]struct {
		Parameters []struct {
			Ref string `json:"$ref"`
		} `json:"parameters"`
		Responses map[string]struct {
			Ref     string                     `json:"$ref"`
			Content map[string]json.RawMessage `json:"content"`
		} `json:"responses"`
		Security *[]any `json:"security"`
	} `json:"paths"`
	Components struct {
		Parameters map[string]struct {
			Name     string `json:"name"`
			In       string `json:"in"`
			Required bool   `json:"required"`
		} `json:"parameters"`
		Responses map[string]struct {
			Content map[string]json.RawMessage `json:"content"`
		} `json:"responses"`
	} `json:"components"`
}

func mustOpenAPI(t *testing.T) openAPIDoc {
	t.Helper()
	var doc openAPIDoc
	dec := json.NewDecoder(bytes.NewReader(query.OpenAPI()))
	if err := dec.Decode(&doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if doc.OpenAPI != "3.1.0" {
		t.Fatalf("openapi: got %q, want 3.1.0", doc.OpenAPI)
	}
	return doc
}

func refName(ref, kind string) string {
	return strings.TrimPrefix(ref, "#/components/"+kind+"/")
}

// TestOpenAPIMatchesRoutes checks that the document lists exactly the
// served routes, each with exactly its parameters and the right security.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	doc := mustOpenAPI(t)
	svc := query.NewService(MustOpenStore(t), nil, query.Config{Logger: quietLogger()})
	served := make(map[string]query.Route)
	for _, rt := range svc.Routes() {
		served[rt.Method+" "+rt.Path] = rt
	}
	documented := make(map[string]bool)
	for path, ops := range doc.Paths {
		for method, op := range ops {
			key := strings.ToUpper(method) + " " + path
			documented[key] = true
			rt, ok := served[key]
			if !ok {
				t.Errorf("%s is documented but not served", key)
				continue
			}
			var gotQuery, gotPath []string
			for _, p := range op.Parameters {
				cp, ok := doc.Components.Parameters[refName(p.Ref, "parameters")]
				if !ok {
					t.Errorf("%s: parameter %s does not resolve", key, p.Ref)
					continue
				}
				switch cp.In {
				case "query":
					gotQuery = append(gotQuery, cp.Name)
				case "path":
					gotPath = append(gotPath, cp.Name)
					if !cp.Required || !strings.Contains(path, "{"+cp.Name+"}") {
						t.Errorf("%s: path parameter %s is not required or not in the path", key, cp.Name)
					}
				}
			}
			slices.Sort(gotQuery)
			wantQuery := slices.Sorted(slices.Values(rt.Params))
			if !slices.Equal(gotQuery, wantQuery) {
				t.Errorf("%s: documented query parameters %v, served %v", key, gotQuery, wantQuery)
			}
			if want := strings.Count(path, "{"); len(gotPath) != want {
				t.Errorf("%s: %d path parameters documented, want %d", key, len(gotPath), want)
			}
			if public := op.Security != nil && len(*op.Security) == 0; public != rt.Public {
				t.Errorf("%s: documented as public %v, served as public %v", key, public, rt.Public)
			}
			for status, r := range op.Responses {
				if r.Ref != "" {
					if _, ok := doc.Components.Responses[refName(r.Ref, "responses")]; !ok {
						t.Errorf("%s %s: response %s does not resolve", key, status, r.Ref)
					}
				}
			}
		}
	}
	for key := range served {
		if !documented[key] {
			t.Errorf("%s is served but not documented", key)
		}
	}
}

// TestOpenAPIDescribesAnswers sends a request to every route (and the
// error answers) and validates each body against the schema the document
// gives for its status.
func TestOpenAPIDescribesAnswers(t *testing.T) {
	doc := mustOpenAPI(t)
	f := newLineageFixture(t)
	toks, err := query.ParseTokens("ops " + opsSecret + " *")
	if err != nil {
		t.Fatal(err)
	}
	svc := query.NewService(f.store, nil, query.Config{Tokens: toks, Logger: quietLogger()})
	srv := MustServe(t, svc)

	raw, err := jsonschema.UnmarshalJSON(bytes.NewReader(query.OpenAPI()))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.DefaultDraft(jsonschema.Draft2020)
	c.AssertFormat()
	if err := c.AddResource("openapi.json", raw); err != nil {
		t.Fatal(err)
	}
	escape := func(s string) string { return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1") }

	for _, tt := range []struct {
		route, path string
		token       string
		status      int
	}{
		{"/v1/threads", "/v1/threads", opsSecret, 200},
		{"/v1/threads", "/v1/threads?limit=1", opsSecret, 200},
		{"/v1/threads", "/v1/threads?limit=1001", opsSecret, 400},
		{"/v1/threads", "/v1/threads", "", 401},
		{"/v1/threads/{thread}/latest", "/v1/threads/incident-a/latest", opsSecret, 200},
		{"/v1/threads/{thread}/latest", "/v1/threads/nope/latest", opsSecret, 404},
		{"/v1/threads/{thread}/latest", "/v1/threads/incident-a/latest?min_seq=1", opsSecret, 503},
		{"/v1/threads/{thread}/checkpoints", "/v1/threads/incident-a/checkpoints?limit=2", opsSecret, 200},
		{"/v1/threads/{thread}/checkpoints/{id}", "/v1/threads/incident-a/checkpoints/a3", opsSecret, 200},
		{"/v1/threads/{thread}/checkpoints/{id}/writes", "/v1/threads/incident-a/checkpoints/a3/writes", opsSecret, 200},
		{"/v1/threads/{thread}/checkpoints/{id}/ancestors", "/v1/threads/incident-b/checkpoints/b2/ancestors", opsSecret, 200},
		{"/v1/threads/{thread}/checkpoints/{id}/children", "/v1/threads/incident-a/checkpoints/a2/children?limit=1", opsSecret, 200},
		{"/v1/threads/{thread}/tree", "/v1/threads/incident-b/tree", opsSecret, 200},
		{"/v1/threads/{thread}/tree", "/v1/threads/incident-a/tree?limit=2", opsSecret, 200},
		{"/v1/threads/{thread}/forks", "/v1/threads/incident-a/forks", opsSecret, 200},
		{"/v1/threads/{thread}/diff", "/v1/threads/incident-a/diff?from=a1&to=a3", opsSecret, 200},
		{"/v1/threads/{thread}/diff", "/v1/threads/incident-a/diff?from=a1", opsSecret, 400},
		{"/v1/checkpoints", "/v1/checkpoints?limit=2", opsSecret, 200},
		{"/healthz", "/healthz", "", 200},
		{"/readyz", "/readyz", "", 200},
		{"/metrics", "/metrics", "", 200},
		{"/openapi.json", "/openapi.json", "", 200},
	} {
		ops, ok := doc.Paths[tt.route]
		if !ok {
			t.Errorf("%s: not documented", tt.route)
			continue
		}
		status, h, body := do(t, srv, tt.path, tt.token)
		if status != tt.status {
			t.Errorf("GET %s: got %d %s, want %d", tt.path, status, body, tt.status)
			continue
		}
		r, ok := ops["get"].Responses[strconv.Itoa(status)]
		if !ok {
			t.Errorf("GET %s: status %d is not documented", tt.path, status)
			continue
		}
		ptr := "#/paths/" + escape(tt.route) + "/get/responses/" + strconv.Itoa(status)
		content := r.Content
		if r.Ref != "" {
			name := refName(r.Ref, "responses")
			ptr, content = "#/components/responses/"+name, doc.Components.Responses[name].Content
		}
		ct := strings.TrimSpace(strings.Split(h.Get("Content-Type"), ";")[0])
		if _, ok := content[ct]; !ok {
			t.Errorf("GET %s: content type %q, documented %v", tt.path, ct, slices.Collect(maps.Keys(content)))
			continue
		}
		if ct != "application/json" {
			continue
		}
		sch, err := c.Compile("openapi.json" + ptr + "/content/application~1json/schema")
		if err != nil {
			t.Fatalf("compile the schema of %s %d: %v", tt.route, status, err)
		}
		inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
		if err != nil {
			t.Errorf("GET %s: body is not JSON: %v", tt.path, err)
			continue
		}
		if err := sch.Validate(inst); err != nil {
			t.Errorf("GET %s (%d): the answer does not match the documented schema: %v\n%s", tt.path, status, err, body)
		}
	}
}
