package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Tool is a function a model may call.
type Tool struct {
	Spec ToolSpec
	// Run runs the tool and returns its result for the model. An error is
	// the tool's failure, reported to the model and recorded; it does not
	// fail the turn.
	Run func(ctx context.Context, inv Invocation) (string, error)
}

// Invocation is one run of a tool.
type Invocation struct {
	Call ToolCall
	// Key identifies the invocation across retries and restarts: the same
	// tool call of the same thread always has the same key, and no other
	// has it. A tool with side effects passes it on as an idempotency key.
	Key string
}

// Toolbox is the set of tools a model is offered.
type Toolbox []Tool

// Specs returns the tools' specs, for a Request.
func (tb Toolbox) Specs() []ToolSpec {
	specs := make([]ToolSpec, len(tb))
	for i, t := range tb {
		specs[i] = t.Spec
	}
	return specs
}

// Execute runs the tool inv.Call names and records the run: result or
// error, and start and finish times read from now. A call of a tool not in
// the toolbox, or a tool that fails, gives an execution with Error set. The
// only error Execute returns is ctx's, when ctx ended during the run: the
// run's outcome is then unknown and must not be recorded.
func (tb Toolbox) Execute(ctx context.Context, inv Invocation, now func() time.Time) (ToolExecution, error) {
	e := ToolExecution{
		ToolCallID: inv.Call.ID,
		Name:       inv.Call.Name,
		Arguments:  normalizeRaw(bytes.Clone(inv.Call.Arguments)),
		StartedAt:  normalizeTime(now()),
	}
	i := slices.IndexFunc(tb, func(t Tool) bool { return t.Spec.Name == inv.Call.Name })
	var err error
	if i < 0 {
		err = fmt.Errorf("unknown tool %q", inv.Call.Name)
	} else {
		e.Result, err = tb[i].Run(ctx, inv)
	}
	if ctx.Err() != nil {
		return ToolExecution{}, fmt.Errorf("run tool %s (%s): %w", inv.Call.Name, inv.Call.ID, ctx.Err())
	}
	if err != nil {
		e.Result, e.Error = "", err.Error()
	}
	e.FinishedAt = normalizeTime(now())
	return e, nil
}

// The incident demo's tools.
const (
	ToolQueryMetrics      = "query_metrics"
	ToolListRecentDeploys = "list_recent_deploys"
	ToolPostStatusUpdate  = "post_status_update"
)

// Audiences of post_status_update.
const (
	AudienceCustomers = "customers"
	AudienceInternal  = "internal"
)

// StatusUpdate is one update for a status page.
type StatusUpdate struct {
	// Key is the invocation's key (see Invocation): a page that supports
	// idempotency keys publishes one update per key.
	Key string
	// Audience is AudienceCustomers (the public status page) or
	// AudienceInternal (the incident channel).
	Audience string
	Message  string
}

// StatusPage publishes status updates.
type StatusPage interface {
	// Post publishes u and returns a short receipt for the model.
	Post(ctx context.Context, u StatusUpdate) (string, error)
}

// NoStatusPage is the StatusPage used when none is configured: it publishes
// nothing and says so in its receipt, so the update is kept only in the
// checkpoint.
type NoStatusPage struct{}

// Post implements StatusPage.
func (NoStatusPage) Post(_ context.Context, u StatusUpdate) (string, error) {
	return fmt.Sprintf("not sent: no status page is configured; the %s update is kept in the checkpoint only", u.Audience), nil
}

// IncidentTools returns the tools of the incident demo: query_metrics and
// list_recent_deploys answer from built-in incident data (the deploy log the
// Offline model knows and a small table of metrics), deterministically;
// post_status_update publishes through page (NoStatusPage when nil).
func IncidentTools(page StatusPage) Toolbox {
	if page == nil {
		page = NoStatusPage{}
	}
	return Toolbox{
		{
			Spec: ToolSpec{
				Name:        ToolQueryMetrics,
				Description: "Read a service metric now and its baseline over a recent window.",
				Parameters: json.RawMessage(`{"type":"object","properties":{` +
					`"service":{"type":"string","description":"service name, e.g. checkout-api"},` +
					`"metric":{"type":"string","enum":["p99","error rate"]},` +
					`"window":{"type":"string","description":"how far back, e.g. 15m"}},` +
					`"required":["service","metric"],"additionalProperties":false}`),
			},
			Run: queryMetrics,
		},
		{
			Spec: ToolSpec{
				Name:        ToolListRecentDeploys,
				Description: "List today's production deploys, oldest first.",
				Parameters: json.RawMessage(`{"type":"object","properties":{` +
					`"since":{"type":"string","description":"only deploys at or after this time, HH:MM"}},` +
					`"additionalProperties":false}`),
			},
			Run: listRecentDeploys,
		},
		{
			Spec: ToolSpec{
				Name:        ToolPostStatusUpdate,
				Description: "Publish a status update to customers (the public status page) or internally (the incident channel).",
				Parameters: json.RawMessage(`{"type":"object","properties":{` +
					`"audience":{"type":"string","enum":["customers","internal"]},` +
					`"message":{"type":"string"}},` +
					`"required":["audience","message"],"additionalProperties":false}`),
			},
			Run: func(ctx context.Context, inv Invocation) (string, error) {
				var args struct{ Audience, Message string }
				if err := decodeArgs(inv.Call.Arguments, &args); err != nil {
					return "", err
				}
				if args.Audience != AudienceCustomers && args.Audience != AudienceInternal {
					return "", fmt.Errorf("audience %q: want %q or %q", args.Audience, AudienceCustomers, AudienceInternal)
				}
				if strings.TrimSpace(args.Message) == "" {
					return "", fmt.Errorf("empty message")
				}
				return page.Post(ctx, StatusUpdate{Key: inv.Key, Audience: args.Audience, Message: args.Message})
			},
		},
	}
}

// decodeArgs decodes a tool's arguments object strictly: unknown fields are
// an error the model can correct.
func decodeArgs(raw json.RawMessage, v any) error {
	if err := strictUnmarshal(raw, v); err != nil {
		return fmt.Errorf("arguments: %w", err)
	}
	return nil
}

// metric is one row of the demo's metrics.
type metric struct {
	service, name     string
	baseline, current float64
	unit              string
}

var metrics = []metric{
	{"checkout-api", "p99", 460, 1840, "ms"},
	{"checkout-api", "error rate", 0.4, 0.6, "%"},
	{"payments-gateway", "p99", 180, 1320, "ms"},
	{"payments-gateway", "error rate", 0.2, 3.1, "%"},
	{"catalog-api", "p99", 120, 125, "ms"},
	{"search-indexer", "error rate", 0.1, 0.1, "%"},
}

func queryMetrics(_ context.Context, inv Invocation) (string, error) {
	var args struct{ Service, Metric, Window string }
	if err := decodeArgs(inv.Call.Arguments, &args); err != nil {
		return "", err
	}
	if args.Metric == "latency" {
		args.Metric = "p99"
	}
	if args.Window == "" {
		args.Window = "15m"
	}
	i := slices.IndexFunc(metrics, func(m metric) bool { return m.service == args.Service && m.name == args.Metric })
	if i < 0 {
		return "", fmt.Errorf("no %q metric for service %q", args.Metric, args.Service)
	}
	m := metrics[i]
	return fmt.Sprintf("%s %s over the last %s: %g %s against a baseline of %g %s (%.1fx)",
		m.service, m.name, args.Window, m.current, m.unit, m.baseline, m.unit, m.current/m.baseline), nil
}

func listRecentDeploys(_ context.Context, inv Invocation) (string, error) {
	var args struct{ Since string }
	if err := decodeArgs(inv.Call.Arguments, &args); err != nil {
		return "", err
	}
	if args.Since != "" && !reClock.MatchString(args.Since) {
		return "", fmt.Errorf("since %q: want HH:MM", args.Since)
	}
	var lines []string
	for _, d := range deployLog {
		if args.Since == "" || clockMinutes(d.at) >= clockMinutes(args.Since) {
			lines = append(lines, fmt.Sprintf("%s %s %s (previous %s)", d.at, d.service, d.version, d.previous))
		}
	}
	if len(lines) == 0 {
		return "no deploys since " + args.Since, nil
	}
	return strings.Join(lines, "; "), nil
}

// clockMinutes returns the minutes since midnight of an H:MM or HH:MM time.
func clockMinutes(hhmm string) int {
	var h, m int
	fmt.Sscanf(hhmm, "%d:%d", &h, &m)
	return h*60 + m
}
