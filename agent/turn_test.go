package agent_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/cairn-io/cairn/agent"
)

// ticker is an injectable clock that advances one second per reading.
func ticker(start time.Time) func() time.Time {
	t := start
	return func() time.Time {
		t = t.Add(time.Second)
		return t
	}
}

// mustDemo plays the first n demo prompts against the Offline model.
func mustDemo(tb testing.TB, n int) *agent.State {
	tb.Helper()
	s := agent.NewState("run-demo", "incident-commander", 0, t0)
	now := ticker(t0)
	for _, p := range agent.DemoPrompts[:n] {
		if _, err := agent.RunTurn(context.Background(), agent.Offline{}, s, p, now); err != nil {
			tb.Fatalf("RunTurn(%q): %v", p, err)
		}
	}
	return s
}

func lastContent(s *agent.State) string { return s.Messages[len(s.Messages)-1].Content }

func roles(s *agent.State) []agent.Role {
	var out []agent.Role
	for _, m := range s.Messages {
		out = append(out, m.Role)
	}
	return out
}

var sentenceEnd = regexp.MustCompile(`[.!?](\s|$)`)

func TestDemoConversation(t *testing.T) {
	s := agent.NewState("run-demo", "incident-commander", 0, t0)
	now := ticker(t0)
	answers := make([]string, len(agent.DemoPrompts))
	for i, p := range agent.DemoPrompts {
		res, err := agent.RunTurn(context.Background(), agent.Offline{}, s, p, now)
		if err != nil {
			t.Fatalf("turn %d: %v", i+1, err)
		}
		if want := (agent.TurnResult{Iterations: 1, StopReason: agent.StopReasonStop}); res != want {
			t.Errorf("turn %d: got %+v, want %+v", i+1, res, want)
		}
		answers[i] = lastContent(s)
		t.Logf("turn %d: %s\n=> %s", i+1, p, answers[i])
	}

	wantRoles := []agent.Role{agent.RoleSystem, agent.RoleUser, agent.RoleAssistant,
		agent.RoleUser, agent.RoleAssistant, agent.RoleUser, agent.RoleAssistant}
	if got := roles(s); !reflect.DeepEqual(got, wantRoles) {
		t.Errorf("roles: got %v, want %v", got, wantRoles)
	}
	if got := s.Messages[0].Content; got != agent.SystemPrompt {
		t.Errorf("system message: got %q, want SystemPrompt", got)
	}
	for _, want := range []string{"checkout-api", "p99", "4x", "15 minutes"} {
		if !strings.Contains(answers[0], want) {
			t.Errorf("turn 1 answer %q lacks %q", answers[0], want)
		}
	}
	// Turn 2 must use what turn 1 established, not only its own prompt.
	for _, want := range []string{"payments-gateway v2.14.0", "13:58", "checkout-api", "p99", "4x", "roll back"} {
		if !strings.Contains(answers[1], want) {
			t.Errorf("turn 2 answer %q lacks %q", answers[1], want)
		}
	}
	if n := len(sentenceEnd.FindAllString(answers[2], -1)); n != 1 || !strings.HasSuffix(answers[2], ".") {
		t.Errorf("turn 3 answer %q: got %d sentences, want 1 ending in a full stop", answers[2], n)
	}
	for _, want := range []string{"checkout", "investigating", "rolling back"} {
		if !strings.Contains(answers[2], want) {
			t.Errorf("turn 3 answer %q lacks %q", answers[2], want)
		}
	}
	for _, internal := range []string{"checkout-api", "payments-gateway", "p99"} {
		if strings.Contains(answers[2], internal) {
			t.Errorf("customer-facing turn 3 answer %q names internal %q", answers[2], internal)
		}
	}

	if got, want := s.Iteration, 3; got != want {
		t.Errorf("iteration: got %d, want %d", got, want)
	}
	if got, want := len(s.ReasoningSteps), 3; got != want {
		t.Errorf("reasoning steps: got %d, want %d", got, want)
	}
	if s.PromptTokens <= 0 || s.CompletionTokens <= 0 || s.TotalTokens != s.PromptTokens+s.CompletionTokens {
		t.Errorf("tokens: got total %d, prompt %d, completion %d; want positive, total = prompt + completion",
			s.TotalTokens, s.PromptTokens, s.CompletionTokens)
	}
	if got, want := s.UpdatedAt, t0.Add(3*time.Second); !got.Equal(want) {
		t.Errorf("updated_at: got %v, want %v", got, want)
	}
	if got, want := len(s.ToolExecutions), 0; got != want {
		t.Errorf("tool executions: got %d, want %d", got, want)
	}
}

// TestOfflineNeedsHistory shows that turns 2 and 3 take their facts from the
// conversation: asked cold, the model does not know them.
func TestOfflineNeedsHistory(t *testing.T) {
	tests := []struct {
		name       string
		prompt     string
		want, deny []string
	}{
		{"deploy question without an incident", agent.DemoPrompts[1],
			[]string{"payments-gateway v2.14.0", "No incident is open"}, []string{"checkout-api", "4x"}},
		{"status update without an incident", agent.DemoPrompts[2],
			[]string{"investigating"}, []string{"checkout", "rolling back"}},
		{"unknown prompt", "Order pizza for the war room <now> & fast",
			[]string{`"Order pizza for the war room <now> & fast"`}, nil},
		{"deploy at an unknown time", "What did we deploy at 09:15?",
			[]string{"nothing at 09:15"}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := agent.NewState("r", "a", 0, t0)
			if _, err := agent.RunTurn(context.Background(), agent.Offline{}, s, tt.prompt, ticker(t0)); err != nil {
				t.Fatal(err)
			}
			got := lastContent(s)
			for _, w := range tt.want {
				if !strings.Contains(got, w) {
					t.Errorf("answer %q lacks %q", got, w)
				}
			}
			for _, d := range tt.deny {
				if strings.Contains(got, d) {
					t.Errorf("answer %q contains %q, which only earlier turns could tell it", got, d)
				}
			}
		})
	}
}

func TestDemoDeterministic(t *testing.T) {
	run := func() [][]byte {
		s := agent.NewState("run-demo", "incident-commander", 0, t0)
		now := ticker(t0)
		var out [][]byte
		for _, p := range agent.DemoPrompts {
			if _, err := agent.RunTurn(context.Background(), agent.Offline{}, s, p, now); err != nil {
				t.Fatal(err)
			}
			b, err := s.ToCheckpoint()
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
		return out
	}
	a, b := run(), run()
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			t.Errorf("turn %d checkpoints differ:\nfirst:  %s\nsecond: %s", i+1, a[i], b[i])
		}
	}
}

func TestOfflineHonoursContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	req := agent.Request{Messages: []agent.Message{{Role: agent.RoleUser, Content: agent.DemoPrompts[0]}}}
	if _, err := (agent.Offline{}).Complete(ctx, req); !errors.Is(err, context.Canceled) {
		t.Errorf("got %v, want context.Canceled", err)
	}
}

// modelFunc is a scripted fake Model.
type modelFunc func(ctx context.Context, req agent.Request) (agent.Response, error)

func (f modelFunc) Complete(ctx context.Context, req agent.Request) (agent.Response, error) {
	return f(ctx, req)
}

func toolCallReply(n int) agent.Response {
	return agent.Response{
		Message: agent.Message{Role: agent.RoleAssistant, ToolCalls: []agent.ToolCall{{
			ID:        "call_" + string(rune('0'+n)),
			Name:      "deploy_log",
			Arguments: json.RawMessage(`{ "since" : "13:00" }`),
		}}},
		Usage:      agent.Usage{PromptTokens: 10, CompletionTokens: 3},
		StopReason: agent.StopReasonToolCalls,
	}
}

func TestRunTurnToolCall(t *testing.T) {
	var requests []agent.Request
	m := modelFunc(func(_ context.Context, req agent.Request) (agent.Response, error) {
		requests = append(requests, req)
		if len(requests) == 1 {
			return toolCallReply(1), nil
		}
		return agent.Response{
			Message:    agent.Message{Content: "No tools, so: roll back payments-gateway."},
			Usage:      agent.Usage{PromptTokens: 20, CompletionTokens: 7},
			StopReason: agent.StopReasonStop,
		}, nil
	})
	s := agent.NewState("r", "a", 5, t0)
	res, err := agent.RunTurn(context.Background(), m, s, "What changed?", ticker(t0))
	if err != nil {
		t.Fatal(err)
	}
	if want := (agent.TurnResult{Iterations: 2, StopReason: agent.StopReasonStop}); res != want {
		t.Errorf("result: got %+v, want %+v", res, want)
	}
	wantRoles := []agent.Role{agent.RoleSystem, agent.RoleUser, agent.RoleAssistant, agent.RoleTool, agent.RoleAssistant}
	if got := roles(s); !reflect.DeepEqual(got, wantRoles) {
		t.Errorf("roles: got %v, want %v", got, wantRoles)
	}
	wantExec := []agent.ToolExecution{{
		ToolCallID: "call_1",
		Name:       "deploy_log",
		Arguments:  json.RawMessage(`{"since":"13:00"}`),
		Error:      agent.NoToolsError,
		StartedAt:  t0.Add(time.Second),
		FinishedAt: t0.Add(time.Second),
	}}
	if !reflect.DeepEqual(s.ToolExecutions, wantExec) {
		t.Errorf("tool executions:\ngot:  %#v\nwant: %#v", s.ToolExecutions, wantExec)
	}
	tool := s.Messages[3]
	if tool.ToolCallID != "call_1" || tool.Name != "deploy_log" || !strings.Contains(tool.Content, agent.NoToolsError) {
		t.Errorf("tool message: got %+v, want an answer to call_1 (deploy_log) saying %q", tool, agent.NoToolsError)
	}
	if got, want := len(requests[1].Messages), 4; got != want {
		t.Errorf("second model call saw %d messages, want %d (with the tool answer)", got, want)
	}
	if got, want := s.Messages[4].Role, agent.RoleAssistant; got != want {
		t.Errorf("final message role: got %q, want %q (filled in)", got, want)
	}
	tests := []struct {
		name      string
		got, want int
	}{
		{"iteration", s.Iteration, 2},
		{"prompt tokens", s.PromptTokens, 30},
		{"completion tokens", s.CompletionTokens, 10},
		{"total tokens", s.TotalTokens, 40},
		{"reasoning steps", len(s.ReasoningSteps), 2},
		{"errors", len(s.Errors), 0},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("%s: got %d, want %d", tt.name, tt.got, tt.want)
		}
	}
	if _, err := s.ToCheckpoint(); err != nil {
		t.Errorf("ToCheckpoint: %v", err)
	}
}

func TestRunTurnMaxIterations(t *testing.T) {
	for _, max := range []int{1, 3} {
		calls := 0
		m := modelFunc(func(context.Context, agent.Request) (agent.Response, error) {
			calls++
			return toolCallReply(calls), nil
		})
		s := agent.NewState("r", "a", max, t0)
		res, err := agent.RunTurn(context.Background(), m, s, "loop forever", ticker(t0))
		if err != nil {
			t.Fatal(err)
		}
		if want := (agent.TurnResult{Iterations: max, StopReason: agent.StopReasonMaxIterations}); res != want {
			t.Errorf("max %d: result: got %+v, want %+v", max, res, want)
		}
		tests := []struct {
			name      string
			got, want int
		}{
			{"model calls", calls, max},
			{"tool executions", len(s.ToolExecutions), max},
			{"messages", len(s.Messages), 2 + 2*max},
			{"errors", len(s.Errors), 1},
		}
		for _, tt := range tests {
			if tt.got != tt.want {
				t.Errorf("max %d: %s: got %d, want %d", max, tt.name, tt.got, tt.want)
			}
		}
	}
}

func TestRunTurnFailureLeavesStateUnchanged(t *testing.T) {
	boom := errors.New("provider down")
	calls := 0
	m := modelFunc(func(context.Context, agent.Request) (agent.Response, error) {
		calls++
		if calls == 1 {
			return toolCallReply(1), nil
		}
		return agent.Response{}, boom
	})
	s := mustDemo(t, 1)
	before, err := s.ToCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := agent.RunTurn(context.Background(), m, s, "again", ticker(t0)); !errors.Is(err, boom) {
		t.Fatalf("got error %v, want %v", err, boom)
	}
	after, err := s.ToCheckpoint()
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(after, before) {
		t.Errorf("failed turn changed the state\ngot:  %s\nwant: %s", after, before)
	}
}

func TestRunTurnRejects(t *testing.T) {
	ctx := context.Background()
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	tests := []struct {
		name    string
		ctx     context.Context
		model   agent.Model
		state   *agent.State
		prompt  string
		wantErr string
	}{
		{"nil model", ctx, nil, agent.NewState("r", "a", 0, t0), "hi", "nil model"},
		{"nil state", ctx, agent.Offline{}, nil, "hi", "nil state"},
		{"empty prompt", ctx, agent.Offline{}, agent.NewState("r", "a", 0, t0), " \n", "empty prompt"},
		{"no iterations", ctx, agent.Offline{}, &agent.State{}, "hi", "max_iterations is 0"},
		{"canceled", canceled, agent.Offline{}, agent.NewState("r", "a", 0, t0), "hi", "context canceled"},
		{"model answers as user", ctx, modelFunc(func(context.Context, agent.Request) (agent.Response, error) {
			return agent.Response{Message: agent.Message{Role: agent.RoleUser}}, nil
		}), agent.NewState("r", "a", 0, t0), "hi", `model returned a "user" message`},
		{"invalid tool arguments", ctx, modelFunc(func(context.Context, agent.Request) (agent.Response, error) {
			return agent.Response{Message: agent.Message{ToolCalls: []agent.ToolCall{{ID: "c", Name: "n", Arguments: json.RawMessage(`{`)}}}}, nil
		}), agent.NewState("r", "a", 0, t0), "hi", "arguments: invalid JSON"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := agent.RunTurn(tt.ctx, tt.model, tt.state, tt.prompt, ticker(t0))
			if err == nil || !strings.HasPrefix(err.Error(), "run turn: ") || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got error %v, want %q after %q", err, tt.wantErr, "run turn: ")
			}
		})
	}
}
