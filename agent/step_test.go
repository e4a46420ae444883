package agent_test

import (
	"context"
	"encoding/json"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/cairn-io/cairn/agent"
)

// countingPage is a status page that keeps what it was asked to post.
type countingPage struct{ posts []agent.StatusUpdate }

func (p *countingPage) Post(_ context.Context, u agent.StatusUpdate) (string, error) {
	p.posts = append(p.posts, u)
	return "posted #" + string(rune('0'+len(p.posts))), nil
}

// playTurn plays one turn step by step, as a runtime does, with tools.
func playTurn(t *testing.T, s *agent.State, m agent.Model, tools agent.Toolbox, prompt string, now func() time.Time) []string {
	t.Helper()
	if err := s.BeginTurn(prompt); err != nil {
		t.Fatal(err)
	}
	var stops []string
	for s.InTurn() {
		resp, err := m.Complete(context.Background(), agent.Request{Messages: s.Messages, Tools: tools.Specs()})
		if err != nil {
			t.Fatal(err)
		}
		if resp, err = s.PrepareResponse(resp); err != nil {
			t.Fatal(err)
		}
		var execs []agent.ToolExecution
		for _, c := range resp.Message.ToolCalls {
			e, err := tools.Execute(context.Background(), agent.Invocation{Call: c, Key: "thread/" + c.ID}, now)
			if err != nil {
				t.Fatal(err)
			}
			execs = append(execs, e)
		}
		stop, err := s.ApplyStep(resp, execs, now())
		if err != nil {
			t.Fatal(err)
		}
		stops = append(stops, stop)
	}
	return stops
}

func TestOfflineUsesIncidentTools(t *testing.T) {
	page := &countingPage{}
	tools := agent.IncidentTools(page)
	s := agent.NewState("r", "a", 0, t0)
	now := ticker(t0)
	prompts := append(slices.Clone(agent.DemoPrompts), agent.StatusPostPrompt)
	wantStops := [][]string{
		{agent.StopReasonToolCalls, agent.StopReasonStop},
		{agent.StopReasonToolCalls, agent.StopReasonStop},
		{agent.StopReasonStop},
		{agent.StopReasonToolCalls, agent.StopReasonStop},
	}
	for i, p := range prompts {
		if got := playTurn(t, s, agent.Offline{}, tools, p, now); !slices.Equal(got, wantStops[i]) {
			t.Errorf("turn %d stops: got %v, want %v", i+1, got, wantStops[i])
		}
		t.Logf("turn %d => %s", i+1, lastContent(s))
	}
	var calls []string
	for _, e := range s.ToolExecutions {
		if e.Error != "" {
			t.Errorf("tool %s (%s) failed: %s", e.Name, e.ToolCallID, e.Error)
		}
		calls = append(calls, e.ToolCallID+" "+e.Name)
	}
	want := []string{"call_1 query_metrics", "call_2 list_recent_deploys", "call_3 post_status_update", "call_4 post_status_update"}
	if !slices.Equal(calls, want) {
		t.Errorf("tool calls: got %v, want %v", calls, want)
	}
	if !strings.Contains(s.ToolExecutions[0].Result, "1840 ms against a baseline of 460 ms (4.0x)") {
		t.Errorf("query_metrics result: %q", s.ToolExecutions[0].Result)
	}
	if got := len(page.posts); got != 2 {
		t.Fatalf("posts: got %d, want 2", got)
	}
	customers, internal := page.posts[0], page.posts[1]
	if customers.Audience != agent.AudienceCustomers || internal.Audience != agent.AudienceInternal {
		t.Errorf("audiences: got %q and %q", customers.Audience, internal.Audience)
	}
	if customers.Key != "thread/call_3" || internal.Key != "thread/call_4" {
		t.Errorf("keys: got %q and %q, want the invocation keys", customers.Key, internal.Key)
	}
	// The posted customer update is the one drafted in turn 3.
	draft := s.Messages[slices.IndexFunc(s.Messages, func(m agent.Message) bool {
		return m.Role == agent.RoleUser && m.Content == agent.DemoPrompts[2]
	})+1].Content
	if customers.Message != draft {
		t.Errorf("posted %q, want the turn 3 draft %q", customers.Message, draft)
	}
	for _, w := range []string{"checkout-api", "payments-gateway v2.14.0 to v2.13.4"} {
		if !strings.Contains(internal.Message, w) {
			t.Errorf("internal update %q lacks %q", internal.Message, w)
		}
	}
	if _, err := s.ToCheckpoint(); err != nil {
		t.Errorf("ToCheckpoint: %v", err)
	}
}

func TestOfflineWithoutToolsUnchanged(t *testing.T) {
	// Offered no tools, the Offline model answers as it always did: the
	// demo's checkpoints do not change.
	with, without := agent.NewState("run-demo", "incident-commander", 0, t0), mustDemo(t, 3)
	now := ticker(t0)
	for _, p := range agent.DemoPrompts {
		playTurn(t, with, agent.Offline{}, nil, p, now)
	}
	a, _ := with.ToCheckpoint()
	b, _ := without.ToCheckpoint()
	if !reflect.DeepEqual(a, b) {
		t.Errorf("step-by-step without tools differs from RunTurn:\n%s\n%s", a, b)
	}
}

func TestPrepareResponseRepairsCallIDs(t *testing.T) {
	s := agent.NewState("r", "a", 0, t0)
	if err := s.BeginTurn("hi"); err != nil {
		t.Fatal(err)
	}
	call := func(id string) agent.ToolCall {
		return agent.ToolCall{ID: id, Name: "query_metrics", Arguments: json.RawMessage(`{ "a" : 1 }`)}
	}
	resp := agent.Response{Message: agent.Message{ToolCalls: []agent.ToolCall{
		call(""), call("ok"), call("ok"), call(agent.ModelTaskID), call("bad\nid"), call(strings.Repeat("x", 200)),
	}}}
	got, err := s.PrepareResponse(resp)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range got.Message.ToolCalls {
		ids = append(ids, c.ID)
		if string(c.Arguments) != `{"a":1}` {
			t.Errorf("arguments not compacted: %s", c.Arguments)
		}
	}
	want := []string{"call_1_1", "ok", "call_1_3", "call_1_4", "call_1_5", "call_1_6"}
	if !slices.Equal(ids, want) {
		t.Errorf("ids: got %v, want %v", ids, want)
	}
	if got.Message.Role != agent.RoleAssistant {
		t.Errorf("role: got %q, want assistant", got.Message.Role)
	}
	again, err := s.PrepareResponse(got)
	if err != nil || !reflect.DeepEqual(again, got) {
		t.Errorf("PrepareResponse not idempotent: %v\n%+v\n%+v", err, again, got)
	}
}

func TestApplyStepRejects(t *testing.T) {
	idle := agent.NewState("r", "a", 0, t0)
	s := agent.NewState("r", "a", 0, t0)
	if err := s.BeginTurn("hi"); err != nil {
		t.Fatal(err)
	}
	withCall := agent.Response{Message: agent.Message{ToolCalls: []agent.ToolCall{{ID: "c1", Name: "n", Arguments: json.RawMessage(`{}`)}}}}
	tests := []struct {
		name    string
		state   *agent.State
		resp    agent.Response
		execs   []agent.ToolExecution
		wantErr string
	}{
		{"idle state", idle, agent.Response{}, nil, "not in a turn"},
		{"missing execution", s, withCall, nil, "0 tool executions for 1 tool calls"},
		{"wrong execution", s, withCall, []agent.ToolExecution{{ToolCallID: "c2", Name: "n"}}, "execution 0 is of call c2"},
		{"user message", s, agent.Response{Message: agent.Message{Role: agent.RoleUser}}, nil, `model returned a "user" message`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, _ := tt.state.ToCheckpoint()
			_, err := tt.state.ApplyStep(tt.resp, tt.execs, t0)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("got %v, want an error with %q", err, tt.wantErr)
			}
			after, _ := tt.state.ToCheckpoint()
			if string(before) != string(after) {
				t.Error("failed ApplyStep changed the state")
			}
		})
	}
	if err := s.BeginTurn("again"); err == nil {
		t.Error("BeginTurn during a turn: got nil error")
	}
}

func TestRecordedStepRoundTrip(t *testing.T) {
	s := agent.NewState("r", "a", 0, t0)
	if err := s.BeginTurn(agent.DemoPrompts[0]); err != nil {
		t.Fatal(err)
	}
	tools := agent.IncidentTools(nil)
	resp, err := agent.Offline{}.Complete(context.Background(), agent.Request{Messages: s.Messages, Tools: tools.Specs()})
	if err != nil {
		t.Fatal(err)
	}
	if resp, err = s.PrepareResponse(resp); err != nil {
		t.Fatal(err)
	}
	exec, err := tools.Execute(context.Background(), agent.Invocation{Call: resp.Message.ToolCalls[0]}, ticker(t0))
	if err != nil {
		t.Fatal(err)
	}
	rb, err := agent.EncodeResponse(resp)
	if err != nil {
		t.Fatal(err)
	}
	eb, err := agent.EncodeToolExecution(exec)
	if err != nil {
		t.Fatal(err)
	}
	resp2, err := agent.DecodeResponse(rb)
	if err != nil {
		t.Fatal(err)
	}
	exec2, err := agent.DecodeToolExecution(eb)
	if err != nil {
		t.Fatal(err)
	}
	// Applying the decoded step gives the same checkpoint as applying the
	// original: a resumed agent rebuilds exactly what it lost.
	a, b := s.Clone(), s.Clone()
	if _, err := a.ApplyStep(resp, []agent.ToolExecution{exec}, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.ApplyStep(resp2, []agent.ToolExecution{exec2}, t0); err != nil {
		t.Fatal(err)
	}
	ca, _ := a.ToCheckpoint()
	cb, _ := b.ToCheckpoint()
	if string(ca) != string(cb) {
		t.Errorf("decoded step differs:\n%s\n%s", ca, cb)
	}
	if _, err := agent.DecodeResponse(json.RawMessage(`{"message":{},"usage":{},"stop_reason":"stop","extra":1}`)); err == nil {
		t.Error("DecodeResponse accepted an unknown field")
	}
}

func TestIncidentToolErrors(t *testing.T) {
	tools := agent.IncidentTools(nil)
	tests := []struct {
		name, tool, args, wantErr, wantResult string
	}{
		{"unknown tool", "restart_everything", `{}`, `unknown tool "restart_everything"`, ""},
		{"unknown argument", agent.ToolQueryMetrics, `{"service":"checkout-api","metric":"p99","zone":"eu"}`, `unknown field "zone"`, ""},
		{"unknown metric", agent.ToolQueryMetrics, `{"service":"checkout-api","metric":"qps"}`, `no "qps" metric`, ""},
		{"arguments not an object", agent.ToolListRecentDeploys, `"since 13:00"`, "arguments:", ""},
		{"bad since", agent.ToolListRecentDeploys, `{"since":"noon"}`, `since "noon"`, ""},
		{"since filters", agent.ToolListRecentDeploys, `{"since":"13:30"}`, "", "13:58 payments-gateway v2.14.0 (previous v2.13.4)"},
		{"bad audience", agent.ToolPostStatusUpdate, `{"audience":"press","message":"x"}`, `audience "press"`, ""},
		{"no status page", agent.ToolPostStatusUpdate, `{"audience":"customers","message":"x"}`, "", "not sent: no status page is configured"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := tools.Execute(context.Background(), agent.Invocation{
				Call: agent.ToolCall{ID: "c", Name: tt.tool, Arguments: json.RawMessage(tt.args)}}, ticker(t0))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(e.Error, tt.wantErr) || (tt.wantErr == "") != (e.Error == "") {
				t.Errorf("error: got %q, want %q", e.Error, tt.wantErr)
			}
			if !strings.Contains(e.Result, tt.wantResult) {
				t.Errorf("result: got %q, want %q", e.Result, tt.wantResult)
			}
			if !e.FinishedAt.After(e.StartedAt) {
				t.Errorf("times: started %v, finished %v", e.StartedAt, e.FinishedAt)
			}
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tools.Execute(ctx, agent.Invocation{Call: agent.ToolCall{ID: "c", Name: agent.ToolQueryMetrics}}, ticker(t0)); err == nil {
		t.Error("Execute with a cancelled context: got nil error")
	}
}
