package agent_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-io/cairn/agent"
	"github.com/cairn-io/cairn/events"
)

// answer is one scripted answer of a chat completions endpoint: a status,
// headers and a body from testdata/openai (or inline), after an optional
// delay.
type answer struct {
	status int
	header map[string]string
	file   string
	body   string
	delay  time.Duration
}

// endpoint is an httptest chat completions server that replays a script
// and keeps the requests it got.
type endpoint struct {
	*httptest.Server
	mu       sync.Mutex
	script   []answer
	requests []recorded
}

type recorded struct {
	path, auth, extra string
	body              map[string]json.RawMessage
}

func mustEndpoint(t *testing.T, script ...answer) *endpoint {
	t.Helper()
	e := &endpoint{script: script}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		var body map[string]json.RawMessage
		if err := json.Unmarshal(b, &body); err != nil {
			t.Errorf("request body is not a JSON object: %v: %s", err, b)
		}
		e.mu.Lock()
		n := len(e.requests)
		e.requests = append(e.requests, recorded{path: r.URL.Path, auth: r.Header.Get("Authorization"), extra: r.Header.Get("X-Extra"), body: body})
		var a answer
		if n < len(e.script) {
			a = e.script[n]
		} else {
			t.Errorf("request %d beyond the script of %d answers", n+1, len(e.script))
			a = answer{status: 500, body: `{"error":{"message":"script exhausted"}}`}
		}
		e.mu.Unlock()
		if a.delay > 0 {
			select {
			case <-time.After(a.delay):
			case <-r.Context().Done():
				return
			}
		}
		for k, v := range a.header {
			w.Header().Set(k, v)
		}
		body2 := []byte(a.body)
		if a.file != "" {
			var err error
			if body2, err = os.ReadFile(filepath.Join("testdata", "openai", a.file)); err != nil {
				t.Error(err)
			}
		}
		w.WriteHeader(a.status)
		w.Write(body2)
	}))
	t.Cleanup(e.Close)
	return e
}

func (e *endpoint) calls() []recorded {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]recorded(nil), e.requests...)
}

func mustOpenAI(t *testing.T, e *endpoint, cfg agent.OpenAIConfig) *agent.OpenAI {
	t.Helper()
	cfg.BaseURL = e.URL + "/v1/"
	if cfg.Model == "" {
		cfg.Model = "gpt-4.1-mini"
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff, cfg.MaxBackoff = time.Millisecond, 2*time.Millisecond
	}
	c, err := agent.NewOpenAI(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// conversation is a request in the middle of a turn: a tool was called and
// answered, so the wire format of every message kind is exercised.
func conversation() agent.Request {
	return agent.Request{
		Messages: []agent.Message{
			{Role: agent.RoleSystem, Content: agent.SystemPrompt},
			{Role: agent.RoleUser, Content: agent.DemoPrompts[0]},
			{Role: agent.RoleAssistant, ToolCalls: []agent.ToolCall{{ID: "call_1", Name: "query_metrics", Arguments: json.RawMessage(`{"service":"checkout-api","metric":"p99"}`)}}},
			{Role: agent.RoleTool, ToolCallID: "call_1", Name: "query_metrics", Content: "checkout-api p99 over the last 15m: 1840 ms"},
		},
		Tools: agent.IncidentTools(nil).Specs(),
	}
}

func TestOpenAIText(t *testing.T) {
	e := mustEndpoint(t, answer{status: 200, file: "text.json"})
	temp := 0.2
	c := mustOpenAI(t, e, agent.OpenAIConfig{APIKey: "sk-test", Temperature: &temp, MaxTokens: 256,
		Header: http.Header{"X-Extra": {"compartment-1"}}})
	resp, err := c.Complete(context.Background(), conversation())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := resp.Message.Content, "Roll back payments-gateway to v2.13.4 and watch checkout-api p99."; got != want {
		t.Errorf("content: got %q, want %q", got, want)
	}
	if resp.StopReason != agent.StopReasonStop || resp.Usage != (agent.Usage{PromptTokens: 412, CompletionTokens: 19}) {
		t.Errorf("stop %q usage %+v", resp.StopReason, resp.Usage)
	}
	req := e.calls()[0]
	if req.path != "/v1/chat/completions" || req.auth != "Bearer sk-test" || req.extra != "compartment-1" {
		t.Errorf("request: path %q auth %q extra header %q", req.path, req.auth, req.extra)
	}
	for key, want := range map[string]string{
		"model":       `"gpt-4.1-mini"`,
		"temperature": `0.2`,
		"max_tokens":  `256`,
	} {
		if got := string(req.body[key]); got != want {
			t.Errorf("request %s: got %s, want %s", key, got, want)
		}
	}
	var msgs []struct {
		Role       string          `json:"role"`
		Content    json.RawMessage `json:"content"`
		ToolCallID string          `json:"tool_call_id"`
		ToolCalls  []struct {
			ID       string `json:"id"`
			Type     string `json:"type"`
			Function struct{ Name, Arguments string }
		} `json:"tool_calls"`
	}
	if err := json.Unmarshal(req.body["messages"], &msgs); err != nil || len(msgs) != 4 {
		t.Fatalf("messages: %v: %s", err, req.body["messages"])
	}
	tc := msgs[2].ToolCalls
	if string(msgs[2].Content) != "null" || len(tc) != 1 || tc[0].ID != "call_1" || tc[0].Type != "function" ||
		tc[0].Function.Arguments != `{"service":"checkout-api","metric":"p99"}` {
		t.Errorf("assistant tool call message: %+v content %s", msgs[2], msgs[2].Content)
	}
	if msgs[3].Role != "tool" || msgs[3].ToolCallID != "call_1" {
		t.Errorf("tool message: %+v", msgs[3])
	}
	var tools []struct {
		Type     string `json:"type"`
		Function struct {
			Name       string          `json:"name"`
			Parameters json.RawMessage `json:"parameters"`
		} `json:"function"`
	}
	if err := json.Unmarshal(req.body["tools"], &tools); err != nil || len(tools) != 3 || tools[0].Type != "function" ||
		tools[0].Function.Name != agent.ToolQueryMetrics || !json.Valid(tools[0].Function.Parameters) {
		t.Errorf("tools: %v: %s", err, req.body["tools"])
	}
}

func TestOpenAIToolCalls(t *testing.T) {
	tests := []struct {
		file      string
		wantCalls []agent.ToolCall
	}{
		{"tool_calls.json", []agent.ToolCall{
			{ID: "call_Xq3vY8bTn0Lk2PzR5sWm1Hcd", Name: "query_metrics", Arguments: json.RawMessage(`{"service":"checkout-api","metric":"p99","window":"15m"}`)},
			{ID: "call_Bf7Ue2Ka9Mn4Qr1Zt6Yx3Wpv", Name: "list_recent_deploys", Arguments: json.RawMessage(`{}`)},
		}},
		{"ollama_tool_call.json", []agent.ToolCall{
			{ID: "call_mq4sd1x0", Name: "post_status_update", Arguments: json.RawMessage(`{"audience":"customers","message":"We are investigating slow checkout."}`)},
		}},
		// Arguments that are not JSON are kept as a JSON string: the tool
		// tells the model, instead of the turn failing.
		{"bad_arguments.json", []agent.ToolCall{
			{ID: "call_1", Name: "query_metrics", Arguments: json.RawMessage(`"{\"service\": \"checkout-api\", \"metric\": "`)},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			c := mustOpenAI(t, mustEndpoint(t, answer{status: 200, file: tt.file}), agent.OpenAIConfig{})
			resp, err := c.Complete(context.Background(), conversation())
			if err != nil {
				t.Fatal(err)
			}
			if resp.StopReason != agent.StopReasonToolCalls || resp.Message.Content != "" {
				t.Errorf("stop %q content %q", resp.StopReason, resp.Message.Content)
			}
			if len(resp.Message.ToolCalls) != len(tt.wantCalls) {
				t.Fatalf("tool calls: got %+v", resp.Message.ToolCalls)
			}
			for i, got := range resp.Message.ToolCalls {
				want := tt.wantCalls[i]
				if got.ID != want.ID || got.Name != want.Name || string(got.Arguments) != string(want.Arguments) {
					t.Errorf("call %d: got %s %s %s, want %s %s %s", i, got.ID, got.Name, got.Arguments, want.ID, want.Name, want.Arguments)
				}
			}
		})
	}
	// A text answer given as a list of parts, cut short by the token limit.
	c := mustOpenAI(t, mustEndpoint(t, answer{status: 200, file: "vllm_text_parts.json"}), agent.OpenAIConfig{})
	resp, err := c.Complete(context.Background(), conversation())
	if err != nil {
		t.Fatal(err)
	}
	if resp.Message.Content != "Checkout is slow; we are rolling back." || resp.StopReason != "length" {
		t.Errorf("parts: got %q, stop %q", resp.Message.Content, resp.StopReason)
	}
}

func TestOpenAIRetries(t *testing.T) {
	tests := []struct {
		name     string
		script   []answer
		minWait  time.Duration
		wantErr  error
		contains string
	}{
		{"429 honours retry-after-ms", []answer{
			{status: 429, header: map[string]string{"Retry-After-Ms": "150"}, file: "error_429.json"},
			{status: 200, file: "text.json"},
		}, 150 * time.Millisecond, nil, ""},
		{"503 then 502 from a proxy, then success", []answer{
			{status: 503, header: map[string]string{"Retry-After": "0"}, file: "error_503.json"},
			{status: 502, file: "bad_gateway.html"},
			{status: 200, file: "text.json"},
		}, 0, nil, ""},
		{"a slow attempt times out and is retried", []answer{
			{status: 200, file: "text.json", delay: 5 * time.Second},
			{status: 200, file: "text.json"},
		}, 0, nil, ""},
		{"429 through every retry", []answer{
			{status: 429, file: "error_429.json"}, {status: 429, file: "error_429.json"}, {status: 429, file: "error_429.json"},
		}, 0, events.ErrUnavailable, "gave up after 3 attempts"},
		{"retry-after longer than MaxWait", []answer{
			{status: 429, header: map[string]string{"Retry-After": "120"}, file: "error_429.json"},
		}, 0, events.ErrUnavailable, "retry after 2m0s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustEndpoint(t, tt.script...)
			c := mustOpenAI(t, e, agent.OpenAIConfig{Retries: 2, Timeout: 300 * time.Millisecond, MaxWait: time.Minute})
			start := time.Now()
			resp, err := c.Complete(context.Background(), conversation())
			if elapsed := time.Since(start); elapsed < tt.minWait {
				t.Errorf("returned after %v, before the %v the endpoint asked for", elapsed, tt.minWait)
			}
			if tt.wantErr == nil {
				if err != nil || resp.Message.Content == "" {
					t.Fatalf("got %+v, %v", resp, err)
				}
				if got := len(e.calls()); got != len(tt.script) {
					t.Errorf("requests: got %d, want %d", got, len(tt.script))
				}
				return
			}
			if !errors.Is(err, tt.wantErr) || !strings.Contains(err.Error(), tt.contains) {
				t.Errorf("got %v, want %v containing %q", err, tt.wantErr, tt.contains)
			}
			if !strings.Contains(err.Error(), "rate_limit_exceeded") {
				t.Errorf("error %q does not carry the endpoint's message", err)
			}
		})
	}
}

func TestOpenAIErrors(t *testing.T) {
	tests := []struct {
		name     string
		answer   answer
		wantErr  error
		contains []string
	}{
		{"401 bad key", answer{status: 401, file: "error_401.json"}, events.ErrInvalid,
			[]string{"401 Unauthorized", "Incorrect API key provided", "invalid_api_key", "check the API key"}},
		{"400 context too long", answer{status: 400, file: "error_400_vllm.json"}, events.ErrInvalid,
			[]string{"400 Bad Request", "maximum context length is 8192 tokens"}},
		{"404 unknown model", answer{status: 404, file: "error_404_ollama.json"}, events.ErrInvalid,
			[]string{`model "llama3.3:70b" not found`, "check the base URL and the model name"}},
		{"truncated body", answer{status: 200, file: "truncated.json"}, events.ErrUnavailable,
			[]string{"malformed answer", "unexpected end of JSON input"}},
		{"not JSON", answer{status: 200, file: "bad_gateway.html"}, events.ErrUnavailable,
			[]string{"malformed answer", "502 Bad Gateway"}},
		{"no choices", answer{status: 200, file: "no_choices.json"}, events.ErrUnavailable,
			[]string{"malformed answer (no choices)"}},
		{"wrong role", answer{status: 200, body: `{"choices":[{"message":{"role":"user","content":"hi"}}]}`}, events.ErrUnavailable,
			[]string{`message role "user"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustEndpoint(t, tt.answer)
			c := mustOpenAI(t, e, agent.OpenAIConfig{})
			_, err := c.Complete(context.Background(), conversation())
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("got %v, want kind %v", err, tt.wantErr)
			}
			for _, w := range tt.contains {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if got := len(e.calls()); got != 1 {
				t.Errorf("requests: got %d, want 1 (not retried)", got)
			}
		})
	}
}

func TestOpenAIContextAndConfig(t *testing.T) {
	e := mustEndpoint(t, answer{status: 200, file: "text.json", delay: 5 * time.Second})
	c := mustOpenAI(t, e, agent.OpenAIConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := c.Complete(ctx, conversation()); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("cancelled call: got %v, want context.DeadlineExceeded", err)
	}
	for _, cfg := range []agent.OpenAIConfig{
		{Model: "m"},
		{BaseURL: "127.0.0.1:11434/v1", Model: "m"},
		{BaseURL: "http://127.0.0.1:11434/v1"},
	} {
		if _, err := agent.NewOpenAI(cfg); !errors.Is(err, events.ErrInvalid) {
			t.Errorf("NewOpenAI(%+v): got %v, want invalid", cfg, err)
		}
	}
}
