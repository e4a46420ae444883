package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/cairn-io/cairn/agent"
	"github.com/cairn-io/cairn/cmd/internal/cli"
	"github.com/cairn-io/cairn/runner"
)

func init() {
	commands.Add("run", cli.Command{
		Summary: "run the agent with tools on a thread: resume it from its latest checkpoint, then play --prompt turns",
		Run:     runRun,
	})
}

// runFlags are the flags of the subcommands that run the agent (run, fork).
type runFlags struct {
	Prompts       []string
	ModelURL      string
	Model         string
	APIKey        string
	ModelTimeout  time.Duration
	ModelRetries  int
	ModelHeader   http.Header
	MaxIterations int
	StatusWebhook string
	// HaltAfterToolWrite is for tests: see register.
	HaltAfterToolWrite string

	fs *flag.FlagSet
}

// register adds the flags to fs; it is Main.Flags.
func (f *runFlags) register(fs *flag.FlagSet) {
	f.fs = fs
	f.ModelHeader = http.Header{}
	fs.Func("prompt", "a user turn to play after resuming (repeatable; played in order)", func(s string) error {
		f.Prompts = append(f.Prompts, s)
		return nil
	})
	cli.String(fs, &f.ModelURL, "model-url", "CAIRN_MODEL_URL", "",
		"base URL of an OpenAI-compatible chat completions API, e.g. http://127.0.0.1:11434/v1 (default: the built-in deterministic offline model)")
	cli.String(fs, &f.Model, "model", "CAIRN_MODEL", "", "model name served at --model-url")
	fs.StringVar(&f.APIKey, "model-api-key", "", "API key for --model-url, sent as a bearer token (env CAIRN_MODEL_API_KEY, else OPENAI_API_KEY)")
	cli.Duration(fs, &f.ModelTimeout, "model-timeout", "CAIRN_MODEL_TIMEOUT", agent.DefaultOpenAITimeout, "timeout of one model request")
	cli.Int(fs, &f.ModelRetries, "model-retries", "CAIRN_MODEL_RETRIES", agent.DefaultOpenAIRetries,
		"retries of a model request after a network error, a timeout, 408, 409, 429 or 5xx (honouring Retry-After)")
	fs.Func("model-header", `extra request header for --model-url, as "Name: value" (repeatable)`, func(s string) error {
		name, value, ok := strings.Cut(s, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return fmt.Errorf("want \"Name: value\", got %q", s)
		}
		f.ModelHeader.Add(strings.TrimSpace(name), strings.TrimSpace(value))
		return nil
	})
	cli.Int(fs, &f.MaxIterations, "max-iterations", "CAIRN_MAX_ITERATIONS", agent.DefaultMaxIterations,
		"model calls per turn (kept in the state of a new thread)")
	cli.String(fs, &f.StatusWebhook, "status-webhook", "CAIRN_STATUS_WEBHOOK", "",
		"URL that post_status_update POSTs each update to as JSON, with an Idempotency-Key header (default: none; updates stay in the checkpoint)")
	cli.String(fs, &f.HaltAfterToolWrite, "test-halt-after-tool-write", "CAIRN_TEST_HALT_AFTER_TOOL_WRITE", "",
		"for crash tests only: once the pending write of this tool call id is acknowledged, print a line and wait to be killed")
}

// isSet reports whether flag name was given on the command line.
func (f *runFlags) isSet(name string) bool {
	set := false
	f.fs.Visit(func(fl *flag.Flag) { set = set || fl.Name == name })
	return set
}

// model opens the model the flags choose, before anything else is started.
func (f *runFlags) model() (agent.Model, string, error) {
	if f.ModelURL == "" {
		if f.Model != "" {
			return nil, "", cli.Usagef("--model %q needs --model-url", f.Model)
		}
		return agent.Offline{}, "offline (built in, deterministic)", nil
	}
	if f.Model == "" {
		return nil, "", cli.Usagef("--model-url needs --model (the model name the endpoint serves)")
	}
	key := f.APIKey
	if key == "" {
		key = cli.Env("CAIRN_MODEL_API_KEY", cli.Env("OPENAI_API_KEY", ""))
	}
	retries := f.ModelRetries
	if retries == 0 {
		retries = -1 // none
	}
	m, err := agent.NewOpenAI(agent.OpenAIConfig{
		BaseURL: f.ModelURL, APIKey: key, Model: f.Model, Header: f.ModelHeader,
		Timeout: f.ModelTimeout, Retries: retries,
	})
	if err != nil {
		return nil, "", cli.Usagef("%v", err)
	}
	return m, fmt.Sprintf("%s at %s", f.Model, f.ModelURL), nil
}

// open opens the model the flags choose (first, so that a bad flag fails
// before anything starts), then m's connections or in-process pipeline, and
// returns a runner on m's saver. On success the caller closes m.
func (f *runFlags) open(ctx context.Context, m *Main) (*runner.Runner, error) {
	model, modelName, err := f.model()
	if err != nil {
		return nil, err
	}
	if err := m.Open(ctx); err != nil {
		return nil, err
	}
	r, err := f.runner(m, model, modelName)
	if err != nil {
		m.Close()
		return nil, err
	}
	return r, nil
}

// runner builds the runner on m's saver.
func (f *runFlags) runner(m *Main, model agent.Model, modelName string) (*runner.Runner, error) {
	var page agent.StatusPage = agent.NoStatusPage{}
	pageName := "none (updates stay in the checkpoint)"
	if f.StatusWebhook != "" {
		page, pageName = runner.StatusWebhook{URL: f.StatusWebhook}, f.StatusWebhook
	}
	tools := agent.IncidentTools(page)
	var names []string
	for _, s := range tools.Specs() {
		names = append(names, s.Name)
	}
	fmt.Fprintf(m.Stdout, "model: %s\ntools: %s; status page: %s\n", modelName, strings.Join(names, ", "), pageName)
	cfg := runner.Config{
		Saver: m.saver, Model: model, Tools: tools, MaxIterations: f.MaxIterations,
		Out: m.Stdout, Logger: m.logger,
	}
	if halt := f.HaltAfterToolWrite; halt != "" {
		cfg.AfterToolWrite = func(ctx context.Context, w runner.ToolWrite) error {
			if w.Call.ID != halt {
				return nil
			}
			fmt.Fprintf(m.Stdout, "test halt: the pending write of tool call %s is acknowledged (stream seq %d); waiting to be killed\n", w.Call.ID, w.Seq)
			<-ctx.Done()
			return fmt.Errorf("halted for a test after tool call %s: %w", w.Call.ID, ctx.Err())
		}
	}
	return runner.New(cfg)
}

func runRun(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var f runFlags
	m := &Main{Stdout: stdout, Stderr: stderr, Flags: f.register}
	if err := m.ParseFlags("run", args); err != nil {
		return err
	}
	r, err := f.open(ctx, m)
	if err != nil {
		return err
	}
	defer m.Close()
	th, err := r.Load(ctx, m.Thread)
	if err != nil {
		return err
	}
	prompts := f.Prompts
	switch {
	case th.New() && len(prompts) == 0:
		prompts = append(slices.Clone(agent.DemoPrompts), agent.StatusPostPrompt)
		fmt.Fprintf(stdout, "no --prompt: playing the incident demo's %d prompts\n", len(prompts))
	case !th.State.InTurn() && len(prompts) == 0:
		fmt.Fprintf(stdout, "nothing to resume: the last turn is finished; give --prompt to play another\n")
		return nil
	}
	res, err := r.Run(ctx, th, prompts)
	if err != nil {
		return err
	}
	return finish(ctx, stdout, r, th, res)
}

// finish reads the thread back through the query service and reports what
// the run did and how to go on.
func finish(ctx context.Context, w io.Writer, r *runner.Runner, th *runner.Thread, res runner.Result) error {
	if _, err := r.ReadBack(ctx, th); err != nil {
		return err
	}
	fmt.Fprintf(w, "\nthread %s: latest checkpoint %s (stream seq %d), read back through the query service\n", th.ID, th.Head, th.Seq)
	fmt.Fprintf(w, "this run put %d checkpoints, made %d model calls, ran %d tools", len(res.Checkpoints), res.ModelCalls, len(res.ToolsRun))
	if res.ResponsesReused > 0 || len(res.ToolsReused) > 0 {
		fmt.Fprintf(w, ", reused %d recorded model responses and %d recorded tool results", res.ResponsesReused, len(res.ToolsReused))
	}
	fmt.Fprintf(w, "\ncontinue: agent run --thread %s --prompt \"...\"\n", th.ID)
	fmt.Fprintf(w, "branch:   agent fork --thread %s --at <checkpoint> --new-thread <new thread> [--prompt \"...\"]\n", th.ID)
	return nil
}
