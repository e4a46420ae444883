package agent_test

import (
	"bytes"
	"encoding/json"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/cairn-io/cairn/agent"
)

var t0 = time.Date(2026, 3, 14, 13, 58, 7, 123456789, time.UTC)

// richState exercises everything the JSON round trip can get wrong: tool
// calls, unicode, HTML characters, escapes, line separators, huge counters,
// and raw JSON with big numbers, odd key order and its own escapes.
func richState() *agent.State {
	s := agent.NewState("run-7f3a", "incident-commander", 12, t0)
	s.Append(agent.Message{Role: agent.RoleSystem, Content: agent.SystemPrompt})
	s.Append(agent.Message{Role: agent.RoleUser,
		Content: "checkout-api p99 > 4x & <rising> — 日本語 ✓ 🚨 \"quoted\" \\ tab\t new\nline \u2028 sep \x7f"})
	s.Append(agent.Message{
		Role: agent.RoleAssistant,
		ToolCalls: []agent.ToolCall{
			{ID: "call_1", Name: "deploy_log", Arguments: json.RawMessage(`{"since":"13:00","filter":"<b>&</b>","limit":18446744073709551616}`)},
			{ID: "call_2", Name: "metrics", Arguments: json.RawMessage(`{}`)},
		},
		Metadata: json.RawMessage(`{"cache_control":{"type":"ephemeral"}}`),
	})
	s.Append(agent.Message{Role: agent.RoleTool, Content: "payments-gateway v2.14.0 at 13:58", ToolCallID: "call_1", Name: "deploy_log"})
	s.Iteration = 7
	s.ToolExecutions = append(s.ToolExecutions, agent.ToolExecution{
		ToolCallID: "call_1",
		Name:       "deploy_log",
		Arguments:  json.RawMessage(`{"since":"13:00","filter":"<b>&</b>","limit":18446744073709551616}`),
		Result:     "payments-gateway v2.14.0 at 13:58 <ok>",
		StartedAt:  t0.Add(time.Millisecond),
		FinishedAt: t0.Add(1500 * time.Microsecond),
	}, agent.ToolExecution{
		ToolCallID: "call_2",
		Name:       "metrics",
		Arguments:  json.RawMessage(`{}`),
		Error:      "timeout after 5s",
		StartedAt:  t0.Add(2 * time.Millisecond),
		FinishedAt: t0.Add(5 * time.Second),
	})
	s.ReasoningSteps = []string{"iteration 1: asked for tools deploy_log, metrics", "p99 > 4x → roll back?"}
	s.Confidence = 0.8125
	s.PromptTokens = 1 << 62
	s.CompletionTokens = 1<<62 - 1
	s.TotalTokens = math.MaxInt64
	s.Errors = []string{"tool metrics: timeout after 5s"}
	s.ProviderState = json.RawMessage(`{"zeta":1,"alpha":123456789012345678901234567890,"f":1.0e400,"s":"\u003cescaped\u003e","nested":{"b":[],"a":null}}`)
	s.Metadata = json.RawMessage(`{"thread":"t-1","tags":["sev2"],"html":"<&>"}`)
	s.UpdatedAt = t0.Add(2 * time.Second)
	return s
}

func TestCheckpointRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		state func() *agent.State
	}{
		{"new state", func() *agent.State { return agent.NewState("r", "a", 0, t0) }},
		{"zero time and empty ids", func() *agent.State { return agent.NewState("", "", 1, time.Time{}) }},
		{"wall clock in another zone", func() *agent.State {
			return agent.NewState("r", "a", 3, time.Now().In(time.FixedZone("CET", 3600)))
		}},
		{"rich", richState},
		{"raw JSON null", func() *agent.State {
			s := richState()
			s.ProviderState = json.RawMessage(`null`)
			s.Messages[1].Metadata = json.RawMessage(`null`)
			return s
		}},
		{"demo conversation", func() *agent.State { return mustDemo(t, len(agent.DemoPrompts)) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := tt.state()
			b, err := s.ToCheckpoint()
			if err != nil {
				t.Fatalf("ToCheckpoint: %v", err)
			}
			got, err := agent.FromCheckpoint(b)
			if err != nil {
				t.Fatalf("FromCheckpoint: %v\n%s", err, b)
			}
			if !reflect.DeepEqual(got, s) {
				t.Errorf("FromCheckpoint(ToCheckpoint(s)) differs from s\ngot:  %#v\nwant: %#v", got, s)
			}
			b2, err := got.ToCheckpoint()
			if err != nil {
				t.Fatalf("ToCheckpoint again: %v", err)
			}
			if !bytes.Equal(b2, b) {
				t.Errorf("ToCheckpoint(FromCheckpoint(b)) != b\ngot:  %s\nwant: %s", b2, b)
			}
		})
	}
}

func TestCheckpointText(t *testing.T) {
	b, err := richState().ToCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		`"content":"checkout-api p99 > 4x & <rising> — 日本語 ✓ 🚨 \"quoted\" \\ tab\t new\nline \u2028 sep ` + "\x7f" + `"`,
		`"arguments":{"since":"13:00","filter":"<b>&</b>","limit":18446744073709551616}`,
		`"provider_state":{"zeta":1,"alpha":123456789012345678901234567890,"f":1.0e400,"s":"\u003cescaped\u003e","nested":{"b":[],"a":null}}`,
		`"total_tokens":9223372036854775807,"prompt_tokens":4611686018427387904,"completion_tokens":4611686018427387903`,
		`"started_at":"2026-03-14T13:58:07.123456789Z"`,
		`"reasoning_steps":["iteration 1: asked for tools deploy_log, metrics","p99 > 4x → roll back?"]`,
	} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("checkpoint lacks %s\ngot: %s", want, b)
		}
	}
	if bytes.HasSuffix(b, []byte("\n")) {
		t.Errorf("checkpoint ends in a newline")
	}
}

// golden is the checkpoint of a small state: the wire format, field order
// included, that other languages read.
const golden = `{"run_id":"run-1","agent_id":"commander","messages":[` +
	`{"role":"user","content":"p99 > 4x","tool_calls":[],"tool_call_id":"","name":"","metadata":{}},` +
	`{"role":"assistant","content":"","tool_calls":[{"id":"c1","name":"deploys","arguments":{"at":"13:58"}}],"tool_call_id":"","name":"","metadata":{}},` +
	`{"role":"tool","content":"error: no tools available","tool_calls":[],"tool_call_id":"c1","name":"deploys","metadata":{}}],` +
	`"iteration":1,"max_iterations":20,` +
	`"tool_executions":[{"tool_call_id":"c1","name":"deploys","arguments":{"at":"13:58"},"result":"","error":"no tools available",` +
	`"started_at":"2026-03-14T13:58:08Z","finished_at":"2026-03-14T13:58:08Z"}],` +
	`"reasoning_steps":["iteration 1: asked for tools deploys; none available"],"confidence":0.5,` +
	`"total_tokens":30,"prompt_tokens":20,"completion_tokens":10,"errors":[],"provider_state":{},"metadata":{},` +
	`"started_at":"2026-03-14T13:58:07Z","updated_at":"2026-03-14T13:58:09.5Z"}`

func TestCheckpointGolden(t *testing.T) {
	start := t0.Truncate(time.Second)
	s := agent.NewState("run-1", "commander", 0, start)
	s.Append(agent.Message{Role: agent.RoleUser, Content: "p99 > 4x"})
	s.Append(agent.Message{Role: agent.RoleAssistant, ToolCalls: []agent.ToolCall{
		{ID: "c1", Name: "deploys", Arguments: json.RawMessage(`{ "at": "13:58" }`)}}})
	s.Append(agent.Message{Role: agent.RoleTool, Content: "error: no tools available", ToolCallID: "c1", Name: "deploys"})
	s.Iteration = 1
	s.ToolExecutions = append(s.ToolExecutions, agent.ToolExecution{ToolCallID: "c1", Name: "deploys",
		Arguments: json.RawMessage(`{"at":"13:58"}`), Error: "no tools available",
		StartedAt: start.Add(time.Second), FinishedAt: start.Add(time.Second)})
	s.ReasoningSteps = append(s.ReasoningSteps, "iteration 1: asked for tools deploys; none available")
	s.Confidence = 0.5
	s.TotalTokens, s.PromptTokens, s.CompletionTokens = 30, 20, 10
	s.UpdatedAt = start.Add(2500 * time.Millisecond)

	got, err := s.ToCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != golden {
		t.Errorf("ToCheckpoint:\ngot:  %s\nwant: %s", got, golden)
	}
	back, err := agent.FromCheckpoint(json.RawMessage(golden))
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, s) {
		t.Errorf("FromCheckpoint(golden):\ngot:  %#v\nwant: %#v", back, s)
	}
}

func TestFromCheckpointNormalizes(t *testing.T) {
	in := `
	{"run_id":"r","messages":[{"role":"user","content":"hi","metadata":{ "k" : [ 1, 2 ] }}],
	 "provider_state":{ "b" : 1, "a" : 2 },"errors":null,
	 "started_at":"2026-03-14T14:58:07+01:00"}
	`
	s, err := agent.FromCheckpoint(json.RawMessage(in))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name      string
		got, want any
	}{
		{"tool_calls", s.Messages[0].ToolCalls, []agent.ToolCall{}},
		{"message metadata", s.Messages[0].Metadata, json.RawMessage(`{"k":[1,2]}`)},
		{"tool_executions", s.ToolExecutions, []agent.ToolExecution{}},
		{"reasoning_steps", s.ReasoningSteps, []string{}},
		{"errors", s.Errors, []string{}},
		{"provider_state", s.ProviderState, json.RawMessage(`{"b":1,"a":2}`)},
		{"metadata", s.Metadata, json.RawMessage(`{}`)},
		{"started_at", s.StartedAt, time.Date(2026, 3, 14, 13, 58, 7, 0, time.UTC)},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s: got %#v, want %#v", tt.name, tt.got, tt.want)
		}
	}
	if _, err := s.ToCheckpoint(); err != nil {
		t.Errorf("ToCheckpoint of a normalized state: %v", err)
	}
}

func TestFromCheckpointRejects(t *testing.T) {
	valid, err := richState().ToCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, in, wantErr string
	}{
		{"empty", ``, "unexpected EOF"},
		{"garbage", `garbage`, "invalid character"},
		{"truncated", string(valid[:len(valid)-1]), "unexpected EOF"},
		{"array", `[]`, "want a JSON object"},
		{"null", `null`, "want a JSON object"},
		{"trailing object", string(valid) + `{}`, "unexpected data after the JSON value"},
		{"trailing garbage", string(valid) + `x`, "unexpected data after the JSON value"},
		{"unknown field", `{"run_id":"r","thread":"t"}`, `unknown field "thread"`},
		{"unknown nested field", `{"messages":[{"role":"user","text":"hi"}]}`, `messages[0]: unknown field "text"`},
		{"unknown tool call field", `{"messages":[{"role":"assistant","tool_calls":[{"id":"c","args":{}}]}]}`,
			`messages[0].tool_calls[0]: unknown field "args"`},
		{"key in another case", `{"RUN_ID":"r"}`, `unknown field "RUN_ID"`},
		{"repeated key", `{"run_id":"a","run_id":"b"}`, `repeated field "run_id"`},
		{"wrong type", `{"iteration":"7"}`, "cannot unmarshal string"},
		{"object for a list", `{"errors":{}}`, "errors: want a JSON array"},
		{"list for a string", `{"run_id":[]}`, "run_id: want a JSON string"},
		{"bad time", `{"started_at":"yesterday"}`, "cannot parse"},
		{"unknown role", `{"messages":[{"role":"robot"}]}`, `messages[0].role: unknown role "robot"`},
		{"missing role", `{"messages":[{}]}`, `messages[0].role: unknown role ""`},
		{"invalid UTF-8", "{\"run_id\":\"\xff\"}", "invalid UTF-8"},
		{"invalid raw JSON", `{"metadata":{"a":}}`, "invalid character"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := agent.FromCheckpoint(json.RawMessage(tt.in))
			if err == nil {
				t.Fatalf("got state %+v, want error containing %q", s, tt.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "decode checkpoint: ") || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got error %q, want %q after %q", err, tt.wantErr, "decode checkpoint: ")
			}
		})
	}
	if _, err := agent.FromCheckpoint(append(bytes.Clone(valid), " \n\t"...)); err != nil {
		t.Errorf("trailing whitespace: got %v, want no error", err)
	}
}

func TestToCheckpointRejects(t *testing.T) {
	tests := []struct {
		name    string
		change  func(s *agent.State)
		wantErr string
	}{
		{"nil messages", func(s *agent.State) { s.Messages = nil }, "messages: nil"},
		{"nil tool calls", func(s *agent.State) { s.Messages[1].ToolCalls = nil }, "messages[1].tool_calls: nil"},
		{"nil errors", func(s *agent.State) { s.Errors = nil }, "errors: nil"},
		{"nil provider state", func(s *agent.State) { s.ProviderState = nil }, "provider_state: nil"},
		{"empty raw", func(s *agent.State) { s.Metadata = json.RawMessage{} }, "metadata: invalid JSON"},
		{"raw not compact", func(s *agent.State) { s.Metadata = json.RawMessage(`{"a": 1}`) }, "metadata: JSON not compact"},
		{"raw invalid", func(s *agent.State) { s.Messages[2].ToolCalls[0].Arguments = json.RawMessage(`{`) },
			"messages[2].tool_calls[0].arguments: invalid JSON"},
		{"unknown role", func(s *agent.State) { s.Messages[0].Role = "robot" }, `messages[0].role: unknown role "robot"`},
		{"invalid UTF-8", func(s *agent.State) { s.Errors = []string{"\xff"} }, "errors[0]: invalid UTF-8"},
		{"local time", func(s *agent.State) { s.UpdatedAt = t0.In(time.FixedZone("CET", 3600)) }, "updated_at: time not in UTC"},
		{"wall clock time", func(s *agent.State) { s.ToolExecutions[0].StartedAt = time.Now() },
			"tool_executions[0].started_at: time not in UTC"},
		{"UTC by another name", func(s *agent.State) { s.StartedAt = t0.In(time.FixedZone("UTC", 0)) },
			"started_at: time not in UTC"},
		{"NaN", func(s *agent.State) { s.Confidence = math.NaN() }, "unsupported value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := richState()
			tt.change(s)
			b, err := s.ToCheckpoint()
			if err == nil {
				t.Fatalf("got %s, want error containing %q", b, tt.wantErr)
			}
			if !strings.HasPrefix(err.Error(), "encode checkpoint: ") || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got error %q, want %q after %q", err, tt.wantErr, "encode checkpoint: ")
			}
		})
	}
}

func TestNewState(t *testing.T) {
	cet := time.FixedZone("CET", 3600)
	s := agent.NewState("r", "a", 0, time.Now().In(cet))
	tests := []struct {
		name      string
		got, want any
	}{
		{"max_iterations default", s.MaxIterations, agent.DefaultMaxIterations},
		{"started_at location", s.StartedAt.Location(), time.UTC},
		{"started_at monotonic stripped", s.StartedAt, s.StartedAt.Round(0)},
		{"messages", s.Messages, []agent.Message{}},
		{"provider_state", s.ProviderState, json.RawMessage(`{}`)},
	}
	for _, tt := range tests {
		if !reflect.DeepEqual(tt.got, tt.want) {
			t.Errorf("%s: got %#v, want %#v", tt.name, tt.got, tt.want)
		}
	}
}

func TestAppendNormalizes(t *testing.T) {
	s := agent.NewState("r", "a", 0, t0)
	args := json.RawMessage(`{ "q" : "x" }`)
	m := agent.Message{Role: agent.RoleAssistant, ToolCalls: []agent.ToolCall{{ID: "c", Name: "n", Arguments: args}}}
	s.Append(m)
	s.Append(agent.Message{Role: agent.RoleUser, Content: "hi"})

	got := s.Messages
	want := []agent.Message{
		{Role: agent.RoleAssistant, ToolCalls: []agent.ToolCall{{ID: "c", Name: "n", Arguments: json.RawMessage(`{"q":"x"}`)}},
			Metadata: json.RawMessage(`{}`)},
		{Role: agent.RoleUser, Content: "hi", ToolCalls: []agent.ToolCall{}, Metadata: json.RawMessage(`{}`)},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Messages:\ngot:  %#v\nwant: %#v", got, want)
	}
	m.ToolCalls[0].Name = "changed"
	if got := s.Messages[0].ToolCalls[0].Name; got != "n" {
		t.Errorf("Append kept a reference to the caller's message: tool name is %q, want %q", got, "n")
	}
	if _, err := s.ToCheckpoint(); err != nil {
		t.Errorf("ToCheckpoint after Append: %v", err)
	}
}

func TestClone(t *testing.T) {
	s := richState()
	want, err := s.ToCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	c := s.Clone()
	if !reflect.DeepEqual(c, s) {
		t.Fatalf("Clone differs from the original")
	}
	c.Messages[2].ToolCalls[0].Arguments[2] = 'X'
	c.Messages[2].ToolCalls[0].Name = "changed"
	c.Messages[2].Metadata[2] = 'X'
	c.ToolExecutions[0].Arguments[2] = 'X'
	c.ReasoningSteps[0] = "changed"
	c.Errors[0] = "changed"
	c.ProviderState[2] = 'X'
	c.Metadata[2] = 'X'
	c.Append(agent.Message{Role: agent.RoleUser, Content: "more"})
	got, err := s.ToCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("changing the clone changed the original\ngot:  %s\nwant: %s", got, want)
	}
}
