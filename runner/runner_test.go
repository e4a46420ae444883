package runner_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cairn-io/cairn/agent"
	"github.com/cairn-io/cairn/events"
	"github.com/cairn-io/cairn/pipeline"
	"github.com/cairn-io/cairn/pipeline/pipelinetest"
	"github.com/cairn-io/cairn/query"
	"github.com/cairn-io/cairn/runner"
	"github.com/cairn-io/cairn/saver"
)

// MustStart starts an in-process pipeline (embedded JetStream, a writer on
// SQLite, the query service) in a temp dir.
func MustStart(tb testing.TB) *pipeline.Pipeline {
	tb.Helper()
	return pipelinetest.MustStart(tb, pipeline.Config{})
}

// newSaver returns a saver with no memory of earlier publishes, as a
// restarted agent has.
func newSaver(p *pipeline.Pipeline) *saver.Saver {
	return saver.New(p.Publisher, query.NewClient(p.QueryURL, nil))
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// statusServer is a status webhook receiver that counts the posts of each
// idempotency key: the side-effect counter.
type statusServer struct {
	*httptest.Server
	mu    sync.Mutex
	posts map[string]int
}

func mustStatusServer(t *testing.T) *statusServer {
	s := &statusServer{posts: make(map[string]int)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var u struct{ Key, Audience, Message string }
		if err := json.NewDecoder(r.Body).Decode(&u); err != nil || u.Key != r.Header.Get("Idempotency-Key") {
			t.Errorf("status post: %v, key %q header %q", err, u.Key, r.Header.Get("Idempotency-Key"))
		}
		s.mu.Lock()
		s.posts[u.Key]++
		n := s.posts[u.Key]
		s.mu.Unlock()
		io.WriteString(w, `{"id":"upd-`+u.Audience+`","count":`+string(rune('0'+n))+`}`)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *statusServer) count(key string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.posts[key]
}

func (s *statusServer) total() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, c := range s.posts {
		n += c
	}
	return n
}

func mustRunner(t *testing.T, cfg runner.Config) *runner.Runner {
	t.Helper()
	if cfg.Model == nil {
		cfg.Model = agent.Offline{}
	}
	if cfg.Out == nil {
		cfg.Out = testWriter{t}
	}
	r, err := runner.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// testWriter sends the runner's progress lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

func TestToolResultsArePendingWritesBeforeTheNextCheckpoint(t *testing.T) {
	p := MustStart(t)
	ctx := ctxT(t)
	r := mustRunner(t, runner.Config{Saver: newSaver(p), Tools: agent.IncidentTools(nil)})
	th, err := r.Load(ctx, "incident-writes")
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Run(ctx, th, agent.DemoPrompts[:1])
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, c := range res.Checkpoints {
		ids = append(ids, c.ID+" "+c.Metadata.Source+" "+c.Metadata.StopReason)
	}
	if want := []string{"000001 input ", "000002 loop tool_calls", "000003 loop stop"}; !slices.Equal(ids, want) {
		t.Fatalf("checkpoints: got %q, want %q", ids, want)
	}

	// Read back through the query API.
	api := query.NewClient(p.QueryURL, nil)
	first, err := api.Checkpoint(ctx, "incident-writes", "", "000001", query.MinSeq{Head: true})
	if err != nil {
		t.Fatal(err)
	}
	second, err := api.Checkpoint(ctx, "incident-writes", "", "000002", query.MinSeq{})
	if err != nil {
		t.Fatal(err)
	}
	if second.ParentID != "000001" || second.Seq <= first.Seq {
		t.Errorf("000002: parent %q seq %d, want parent 000001 and a seq after %d", second.ParentID, second.Seq, first.Seq)
	}
	var tasks []string
	for _, w := range first.PendingWrites {
		tasks = append(tasks, w.TaskID+"/"+w.Channel)
		if w.Seq <= first.Seq || w.Seq >= second.Seq {
			t.Errorf("pending write %s at seq %d: want it between the step's checkpoint (%d) and the next (%d)", w.TaskID, w.Seq, first.Seq, second.Seq)
		}
	}
	if want := []string{"call_1/" + runner.ToolChannel, agent.ModelTaskID + "/" + runner.ResponseChannel}; !slices.Equal(tasks, want) {
		t.Fatalf("pending writes of 000001: got %v, want %v", tasks, want)
	}
	model, tool := first.PendingWrites[1], first.PendingWrites[0]
	if model.Seq >= tool.Seq {
		t.Errorf("model response at seq %d, tool result at %d: want the response recorded first", model.Seq, tool.Seq)
	}
	exec, err := agent.DecodeToolExecution(tool.Value)
	if err != nil {
		t.Fatal(err)
	}
	if exec.Name != agent.ToolQueryMetrics || !strings.Contains(exec.Result, "1840 ms") || exec.Error != "" {
		t.Errorf("recorded tool execution: %+v", exec)
	}
	// The next checkpoint carries the same execution and answers the call.
	st, err := agent.FromCheckpoint(second.State)
	if err != nil {
		t.Fatal(err)
	}
	last := st.Messages[len(st.Messages)-1]
	if len(st.ToolExecutions) != 1 || st.ToolExecutions[0].Result != exec.Result || last.Role != agent.RoleTool || last.ToolCallID != "call_1" {
		t.Errorf("checkpoint 000002: executions %+v, last message %+v", st.ToolExecutions, last)
	}
	var meta runner.Metadata
	if err := json.Unmarshal(second.Metadata, &meta); err != nil || meta != (runner.Metadata{Source: "loop", Step: 2, Turn: 1, StopReason: "tool_calls"}) {
		t.Errorf("000002 metadata %s: %v", second.Metadata, err)
	}
}

var errCrash = errors.New("simulated crash")

func TestResumeRunsEachToolExactlyOnce(t *testing.T) {
	p := MustStart(t)
	ctx := ctxT(t)
	status := mustStatusServer(t)
	tools := agent.IncidentTools(runner.StatusWebhook{URL: status.URL})
	prompts := append(slices.Clone(agent.DemoPrompts), agent.StatusPostPrompt)
	thread := "incident-resume"
	first, second := runner.InvocationKey(thread, "call_3"), runner.InvocationKey(thread, "call_4")

	// The first incarnation stops right after the first post's pending
	// write is acknowledged, before the second post starts.
	r1 := mustRunner(t, runner.Config{Saver: newSaver(p), Tools: tools,
		AfterToolWrite: func(_ context.Context, w runner.ToolWrite) error {
			if w.Call.ID == "call_3" {
				return errCrash
			}
			return nil
		}})
	th, err := r1.Load(ctx, thread)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r1.Run(ctx, th, prompts); !errors.Is(err, errCrash) {
		t.Fatalf("first run: got %v, want the simulated crash", err)
	}
	if got1, got2 := status.count(first), status.count(second); got1 != 1 || got2 != 0 {
		t.Fatalf("at the crash: posts %d and %d, want 1 and 0", got1, got2)
	}

	// A new incarnation: a new saver (no memory of its seqs: head reads)
	// and a model that counts its calls.
	calls := 0
	counting := modelFunc(func(ctx context.Context, req agent.Request) (agent.Response, error) {
		calls++
		return agent.Offline{}.Complete(ctx, req)
	})
	r2 := mustRunner(t, runner.Config{Saver: newSaver(p), Tools: tools, Model: counting})
	th, err = r2.Load(ctx, thread)
	if err != nil {
		t.Fatal(err)
	}
	if !th.State.InTurn() || !slices.Equal(th.Recorded(), []string{"call_3", agent.ModelTaskID}) {
		t.Fatalf("loaded %s: in turn %v, recorded %v; want the interrupted step with its model response and call_3", th.Head, th.State.InTurn(), th.Recorded())
	}
	res, err := r2.Run(ctx, th, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got1, got2 := status.count(first), status.count(second); got1 != 1 || got2 != 1 || status.total() != 2 {
		t.Errorf("after the resume: posts %d and %d (total %d), want exactly 1 and 1", got1, got2, status.total())
	}
	if !slices.Equal(res.ToolsReused, []string{"call_3"}) || !slices.Equal(res.ToolsRun, []string{"call_4"}) {
		t.Errorf("resume: reused %v, ran %v; want call_3 reused, call_4 run", res.ToolsReused, res.ToolsRun)
	}
	if res.ResponsesReused != 1 || calls != 1 || res.ModelCalls != 1 {
		t.Errorf("resume: %d responses reused, %d model calls (counted %d); want the recorded one reused and one call for the answer",
			res.ResponsesReused, res.ModelCalls, calls)
	}

	// The thread reads as if nothing had happened: each tool once, the
	// turn answered, ids monotonic along the lineage.
	s := newSaver(p)
	latest, err := s.Get(ctx, saver.Ref{ThreadID: thread})
	if err != nil {
		t.Fatal(err)
	}
	st, err := agent.FromCheckpoint(latest.State)
	if err != nil {
		t.Fatal(err)
	}
	var execs []string
	for _, e := range st.ToolExecutions {
		execs = append(execs, e.ToolCallID)
	}
	if want := []string{"call_1", "call_2", "call_3", "call_4"}; !slices.Equal(execs, want) {
		t.Errorf("tool executions: got %v, want %v", execs, want)
	}
	if st.InTurn() || !strings.HasPrefix(st.Messages[len(st.Messages)-1].Content, "Status updates, 2: posted to customers") {
		t.Errorf("final answer: %q", st.Messages[len(st.Messages)-1].Content)
	}
	list, err := s.List(ctx, saver.Ref{ThreadID: thread}, saver.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for i, c := range list {
		if want := runner.CheckpointID(len(list) - i); c.ID != want {
			t.Errorf("lineage[%d]: got %s, want %s", i, c.ID, want)
		}
		if i+1 < len(list) && c.ParentID != list[i+1].ID {
			t.Errorf("%s: parent %s, want %s", c.ID, c.ParentID, list[i+1].ID)
		}
	}
	if len(list) != 11 {
		t.Errorf("lineage: %d checkpoints, want 11 (4 inputs, 7 steps)", len(list))
	}

	// Nothing left to resume: loading again finds an idle thread.
	th, err = r2.Load(ctx, thread)
	if err != nil || th.State.InTurn() {
		t.Errorf("reload: %v, in turn %v", err, th != nil && th.State.InTurn())
	}
}

// modelFunc adapts a function to agent.Model.
type modelFunc func(ctx context.Context, req agent.Request) (agent.Response, error)

func (f modelFunc) Complete(ctx context.Context, req agent.Request) (agent.Response, error) {
	return f(ctx, req)
}

func TestResumeAfterTheModelResponseOnly(t *testing.T) {
	// Stopped between the model's recorded response and its first tool:
	// the resumed step takes the response and runs the tool.
	p := MustStart(t)
	ctx := ctxT(t)
	failing := modelFunc(func(ctx context.Context, req agent.Request) (agent.Response, error) {
		return agent.Offline{}.Complete(ctx, req)
	})
	stopTool := agent.Toolbox{{Spec: agent.IncidentTools(nil)[0].Spec, Run: func(ctx context.Context, _ agent.Invocation) (string, error) {
		<-ctx.Done() // the process dies while the tool runs
		return "", ctx.Err()
	}}}
	runCtx, cancel := context.WithCancel(ctx)
	r1 := mustRunner(t, runner.Config{Saver: newSaver(p), Tools: stopTool, Model: failing,
		Out: writerFunc(func(b []byte) {
			if bytes.Contains(b, []byte("model: calls")) {
				cancel()
			}
		})})
	th, err := r1.Load(ctx, "incident-model-only")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r1.Run(runCtx, th, agent.DemoPrompts[:1]); !errors.Is(err, context.Canceled) {
		t.Fatalf("first run: got %v, want context.Canceled", err)
	}
	r2 := mustRunner(t, runner.Config{Saver: newSaver(p), Tools: agent.IncidentTools(nil)})
	th, err = r2.Load(ctx, "incident-model-only")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(th.Recorded(), []string{agent.ModelTaskID}) {
		t.Fatalf("recorded: got %v, want only the model response", th.Recorded())
	}
	res, err := r2.Run(ctx, th, nil)
	if err != nil {
		t.Fatal(err)
	}
	if res.ResponsesReused != 1 || !slices.Equal(res.ToolsRun, []string{"call_1"}) || len(res.Checkpoints) != 2 {
		t.Errorf("resume: %+v", res)
	}
}

type writerFunc func([]byte)

func (f writerFunc) Write(b []byte) (int, error) { f(b); return len(b), nil }

func TestForkLineage(t *testing.T) {
	p := MustStart(t)
	ctx := ctxT(t)
	r := mustRunner(t, runner.Config{Saver: newSaver(p), Tools: agent.IncidentTools(nil)})
	th, err := r.Load(ctx, "incident-main")
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Run(ctx, th, agent.DemoPrompts[:2])
	if err != nil {
		t.Fatal(err)
	}
	// Turn 1 ends at 000003; turn 2 at 000006.
	if got := res.Checkpoints[2]; got.ID != "000003" || got.Metadata.StopReason != agent.StopReasonStop {
		t.Fatalf("turn 1 ended at %+v", got)
	}

	// A second agent process forks turn 1's end onto a new thread and asks
	// another question there.
	r2 := mustRunner(t, runner.Config{Saver: newSaver(p), Tools: agent.IncidentTools(nil)})
	from := saver.Ref{ThreadID: "incident-main", CheckpointID: "000003"}
	branch, fres, err := r2.Fork(ctx, from, "incident-branch")
	if err != nil {
		t.Fatal(err)
	}
	if branch.Head != "000004" || branch.State.InTurn() {
		t.Fatalf("fork head %s, in turn %v; want 000004, idle", branch.Head, branch.State.InTurn())
	}
	if _, err := r2.Run(ctx, branch, []string{"What did we deploy at 13:12?"}); err != nil {
		t.Fatal(err)
	}
	if len(fres.Checkpoints) != 1 {
		t.Fatalf("fork put %d checkpoints", len(fres.Checkpoints))
	}

	s := newSaver(p)
	api := query.NewClient(p.QueryURL, nil)
	src, err := s.Get(ctx, from)
	if err != nil {
		t.Fatal(err)
	}
	forked, err := s.Get(ctx, saver.Ref{ThreadID: "incident-branch", CheckpointID: "000004"})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(forked.State, src.State) {
		t.Errorf("fork state differs from the source checkpoint's:\n%s\n%s", forked.State, src.State)
	}
	if want := `{"source":"fork","step":4,"turn":1,"forked_from":{"thread_id":"incident-main","checkpoint_ns":"","checkpoint_id":"000003"}}`; string(forked.Metadata) != want {
		t.Errorf("fork metadata:\n got %s\nwant %s", forked.Metadata, want)
	}
	if forked.ParentID != "" {
		t.Errorf("fork parent: got %q, want none (the lineage crosses threads through forked_from)", forked.ParentID)
	}
	// The query service finds the branch by its metadata...
	branches, _, err := api.List(ctx, query.ListParams{Filter: json.RawMessage(`{"source":"fork"}`), MinSeq: query.MinSeq{Seq: forked.Seq}})
	if err != nil {
		t.Fatal(err)
	}
	if len(branches) != 1 || branches[0].ThreadID != "incident-branch" || branches[0].ID != "000004" {
		t.Errorf("checkpoints with source fork: %+v", branches)
	}
	// ...walks the branch back through the fork point into its origin...
	latest, err := s.Get(ctx, saver.Ref{ThreadID: "incident-branch"})
	if err != nil {
		t.Fatal(err)
	}
	anc, err := api.Ancestors(ctx, "incident-branch", "", latest.ID, 100, query.MinSeq{})
	if err != nil {
		t.Fatal(err)
	}
	var lineage []string
	for _, a := range anc {
		lineage = append(lineage, a.ThreadID+"/"+a.ID)
	}
	want := []string{"incident-branch/000006", "incident-branch/000005", "incident-branch/000004",
		"incident-main/000003", "incident-main/000002", "incident-main/000001"}
	if latest.ID != "000007" || !slices.Equal(lineage, want) {
		t.Errorf("branch: latest %s, ancestors %v; want 000007 and %v", latest.ID, lineage, want)
	}
	// ...and lists it among the origin's forks.
	var forks struct {
		Forks []struct {
			ThreadID string `json:"thread_id"`
			ID       string `json:"checkpoint_id"`
		} `json:"forks"`
	}
	resp, err := http.Get(p.QueryURL + "/v1/threads/incident-main/forks")
	if err != nil {
		t.Fatal(err)
	}
	err = json.NewDecoder(resp.Body).Decode(&forks)
	resp.Body.Close()
	if err != nil || len(forks.Forks) != 1 || forks.Forks[0].ThreadID != "incident-branch" || forks.Forks[0].ID != "000004" {
		t.Errorf("forks of incident-main: %+v, %v", forks, err)
	}
	st, err := agent.FromCheckpoint(latest.State)
	if err != nil {
		t.Fatal(err)
	}
	answer := st.Messages[len(st.Messages)-1].Content
	if !strings.Contains(answer, "search-indexer v7.3.1") || strings.Contains(answer, "roll back") {
		t.Errorf("branch answer %q: want the 13:12 deploy, and nothing of the main thread's turn 2", answer)
	}
	// The main thread is untouched.
	mainList, err := s.List(ctx, saver.Ref{ThreadID: "incident-main"}, saver.ListOptions{})
	if err != nil || len(mainList) != 6 || mainList[0].ID != "000006" {
		t.Errorf("main thread after the fork: %d checkpoints, %v", len(mainList), err)
	}

	// Forking onto an existing thread, or from a missing checkpoint, fails.
	if _, _, err := r2.Fork(ctx, from, "incident-branch"); !errors.Is(err, events.ErrConflict) {
		t.Errorf("fork onto an existing thread: got %v, want conflict", err)
	}
	if _, _, err := r2.Fork(ctx, saver.Ref{ThreadID: "incident-main", CheckpointID: "000099"}, "incident-other"); !errors.Is(err, events.ErrNotFound) {
		t.Errorf("fork from a missing checkpoint: got %v, want not found", err)
	}
}

func TestForkMidTurnRunsTheStepAfresh(t *testing.T) {
	p := MustStart(t)
	ctx := ctxT(t)
	status := mustStatusServer(t)
	tools := agent.IncidentTools(runner.StatusWebhook{URL: status.URL})
	r := mustRunner(t, runner.Config{Saver: newSaver(p), Tools: tools})
	th, err := r.Load(ctx, "incident-a")
	if err != nil {
		t.Fatal(err)
	}
	prompts := append(slices.Clone(agent.DemoPrompts), agent.StatusPostPrompt)
	if _, err := r.Run(ctx, th, prompts); err != nil {
		t.Fatal(err)
	}
	// 000009 is the input checkpoint of turn 4, whose pending writes are the
	// two posts. The branch posts again, under its own keys.
	branch, _, err := r.Fork(ctx, saver.Ref{ThreadID: "incident-a", CheckpointID: "000009"}, "incident-b")
	if err != nil {
		t.Fatal(err)
	}
	if !branch.State.InTurn() || len(branch.Recorded()) != 0 {
		t.Fatalf("branch: in turn %v, recorded %v", branch.State.InTurn(), branch.Recorded())
	}
	res, err := r.Run(ctx, branch, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(res.ToolsRun, []string{"call_3", "call_4"}) {
		t.Errorf("branch ran %v", res.ToolsRun)
	}
	for _, key := range []string{runner.InvocationKey("incident-a", "call_3"), runner.InvocationKey("incident-b", "call_3")} {
		if got := status.count(key); got != 1 {
			t.Errorf("posts of %s: got %d, want 1", key, got)
		}
	}
}

func TestOpenAIModelThroughThePipeline(t *testing.T) {
	// A chat completions endpoint that asks for a tool, is rate-limited
	// once, then answers from the tool's result.
	var mu sync.Mutex
	var requests []json.RawMessage
	endpoint := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body struct {
			Messages json.RawMessage `json:"messages"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			t.Error(err)
		}
		mu.Lock()
		requests = append(requests, body.Messages)
		n := len(requests)
		mu.Unlock()
		switch n {
		case 1:
			io.WriteString(w, `{"id":"chatcmpl-1","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant","content":null,`+
				`"tool_calls":[{"id":"call_k2Jd81","type":"function","function":{"name":"query_metrics","arguments":"{\"service\":\"checkout-api\",\"metric\":\"p99\"}"}}]},"finish_reason":"tool_calls"}],`+
				`"usage":{"prompt_tokens":300,"completion_tokens":25,"total_tokens":325}}`)
		case 2:
			w.Header().Set("Retry-After-Ms", "20")
			w.WriteHeader(http.StatusTooManyRequests)
			io.WriteString(w, `{"error":{"message":"Rate limit reached","type":"requests","code":"rate_limit_exceeded"}}`)
		default:
			io.WriteString(w, `{"id":"chatcmpl-3","object":"chat.completion","model":"m","choices":[{"index":0,"message":{"role":"assistant",`+
				`"content":"checkout-api p99 is 1840 ms, 4x its baseline: incident opened."},"finish_reason":"stop"}],"usage":{"prompt_tokens":350,"completion_tokens":15,"total_tokens":365}}`)
		}
	}))
	defer endpoint.Close()
	model, err := agent.NewOpenAI(agent.OpenAIConfig{BaseURL: endpoint.URL + "/v1", Model: "m", APIKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	p := MustStart(t)
	ctx := ctxT(t)
	r := mustRunner(t, runner.Config{Saver: newSaver(p), Tools: agent.IncidentTools(nil), Model: model})
	th, err := r.Load(ctx, "incident-openai")
	if err != nil {
		t.Fatal(err)
	}
	res, err := r.Run(ctx, th, agent.DemoPrompts[:1])
	if err != nil {
		t.Fatal(err)
	}
	if res.ModelCalls != 2 || !slices.Equal(res.ToolsRun, []string{"call_k2Jd81"}) {
		t.Errorf("result: %+v", res)
	}
	// The third request carried the tool's answer to the model's call id.
	if len(requests) != 3 || !bytes.Contains(requests[2], []byte(`"role":"tool","content":"checkout-api p99 over the last 15m: 1840 ms`)) ||
		!bytes.Contains(requests[2], []byte(`"tool_call_id":"call_k2Jd81"`)) {
		t.Errorf("requests: %d, last %s", len(requests), requests[len(requests)-1])
	}
	latest, err := newSaver(p).Get(ctx, saver.Ref{ThreadID: "incident-openai"})
	if err != nil {
		t.Fatal(err)
	}
	st, err := agent.FromCheckpoint(latest.State)
	if err != nil {
		t.Fatal(err)
	}
	if st.TotalTokens != 690 || st.Messages[len(st.Messages)-1].Content != "checkout-api p99 is 1840 ms, 4x its baseline: incident opened." {
		t.Errorf("latest %s: tokens %d, last message %+v", latest.ID, st.TotalTokens, st.Messages[len(st.Messages)-1])
	}
}
