package agent

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"
)

// DemoPrompts are the three user turns of the demo incident, in order. The
// Offline model answers each sensibly, the later ones from what the earlier
// turns established.
var DemoPrompts = []string{
	"Open the incident: checkout-api p99 is up 4x over the last 15 minutes.",
	"What service did we deploy at 13:58 and is anything correlated?",
	"Draft a one-sentence customer-facing status update.",
}

// StatusPostPrompt is the turn that follows DemoPrompts in the runtime's
// demo: with post_status_update offered, the Offline model answers it with
// two tool calls in one step, posting the drafted update to customers and a
// briefing to the internal channel.
const StatusPostPrompt = "Post that update to the status page and brief the internal channel."

// Offline is a deterministic model that needs no network: it plays the
// on-call incident commander of SystemPrompt over a small built-in deploy
// log. It answers the latest user message from that message and the
// conversation before it, so a turn can only use what earlier turns said.
// Equal requests get equal responses; it uses no clock and no randomness,
// and counts tokens as whitespace-separated words.
//
// Offline calls tools only when the request offers them (see
// IncidentTools), and only as the first step of a turn: opening an incident
// it calls query_metrics, asked about deploys list_recent_deploys, and asked
// to post an update post_status_update twice (customers and internal). Once
// the results are in, it answers, citing them. Its tool call ids are
// call_<n>, n counting the tool calls of the whole conversation.
type Offline struct{}

var _ Model = Offline{}

// Complete implements Model.
func (Offline) Complete(ctx context.Context, req Request) (Response, error) {
	if err := ctx.Err(); err != nil {
		return Response{}, fmt.Errorf("offline model: %w", err)
	}
	last := -1
	for j := len(req.Messages) - 1; j >= 0; j-- {
		if req.Messages[j].Role == RoleUser {
			last = j
			break
		}
	}
	if last < 0 {
		return Response{}, errors.New("offline model: no user message")
	}
	prompt := 0
	for _, m := range req.Messages {
		prompt += messageOverhead + countTokens(m.Content)
	}
	for _, t := range req.Tools {
		prompt += countTokens(t.Name) + countTokens(t.Description)
	}
	user, history, turn := req.Messages[last].Content, req.Messages[:last], req.Messages[last+1:]
	if len(turn) == 0 {
		if calls := planTools(user, history, req.Tools, countToolCalls(req.Messages)); len(calls) > 0 {
			completion := 0
			for _, c := range calls {
				completion += countTokens(c.Name) + countTokens(string(c.Arguments))
			}
			return Response{
				Message:    Message{Role: RoleAssistant, ToolCalls: calls, Metadata: slices.Clone(emptyObject)},
				Usage:      Usage{PromptTokens: prompt, CompletionTokens: completion},
				StopReason: StopReasonToolCalls,
			}, nil
		}
	}
	reply := answerWithResults(user, history, turn)
	return Response{
		Message: Message{
			Role:      RoleAssistant,
			Content:   reply,
			ToolCalls: []ToolCall{},
			Metadata:  slices.Clone(emptyObject),
		},
		Usage:      Usage{PromptTokens: prompt, CompletionTokens: countTokens(reply)},
		StopReason: StopReasonStop,
	}, nil
}

// countToolCalls counts the tool calls asked for in ms.
func countToolCalls(ms []Message) int {
	n := 0
	for _, m := range ms {
		n += len(m.ToolCalls)
	}
	return n
}

// planTools returns the tool calls Offline makes at the start of a turn
// answering prompt, given the tools offered; none if it needs none. Call
// ids continue from the done calls of the conversation.
func planTools(prompt string, history []Message, offered []ToolSpec, done int) []ToolCall {
	has := func(name string) bool {
		return slices.ContainsFunc(offered, func(t ToolSpec) bool { return t.Name == name })
	}
	var calls []ToolCall
	add := func(name string, args any) {
		b, _ := marshalCompact(args) // maps and strings always marshal
		calls = append(calls, ToolCall{ID: fmt.Sprintf("call_%d", done+len(calls)+1), Name: name, Arguments: b})
	}
	p := strings.ToLower(prompt)
	switch {
	case asksToPost(p) && has(ToolPostStatusUpdate):
		add(ToolPostStatusUpdate, map[string]string{"audience": AudienceCustomers, "message": statusUpdate(history)})
		add(ToolPostStatusUpdate, map[string]string{"audience": AudienceInternal, "message": internalUpdate(history)})
	case strings.Contains(p, "incident") && has(ToolQueryMetrics):
		if inc, ok := parseIncident(prompt); ok {
			metric := inc.metric
			if metric == "latency" {
				metric = "p99"
			}
			window := "15m"
			if f := strings.Fields(inc.window); len(f) == 2 {
				window = f[0] + f[1][:1]
			}
			add(ToolQueryMetrics, map[string]string{"service": inc.service, "metric": metric, "window": window})
		}
	case strings.Contains(p, "deploy") && has(ToolListRecentDeploys):
		add(ToolListRecentDeploys, map[string]string{})
	}
	return calls
}

var rePost = regexp.MustCompile(`\bpost\b`)

// asksToPost reports whether a lower-cased prompt asks to post something.
func asksToPost(p string) bool { return rePost.MatchString(p) }

// answerWithResults is Offline's reply to prompt once the tool results of
// the turn so far (turn: the messages after the prompt) are in.
func answerWithResults(prompt string, history, turn []Message) string {
	var results []Message
	for _, m := range turn {
		if m.Role == RoleTool {
			results = append(results, m)
		}
	}
	if asksToPost(strings.ToLower(prompt)) {
		if len(results) == 0 {
			return "I have no status page tool here, so nothing was posted. The update to post: " + statusUpdate(history)
		}
		var parts []string
		for _, r := range results {
			parts = append(parts, r.Content)
		}
		return fmt.Sprintf("Status updates, %d: %s. The customer-facing one reads: %q",
			len(results), strings.Join(parts, "; "), statusUpdate(history))
	}
	reply := answer(prompt, history)
	if len(results) > 0 {
		var parts []string
		for _, r := range results {
			parts = append(parts, r.Name+": "+r.Content)
		}
		reply += " Checked with " + strings.Join(parts, "; ") + "."
	}
	return reply
}

// messageOverhead is the tokens Offline charges per message for its framing.
const messageOverhead = 4

// countTokens counts the whitespace-separated words of s, as
// len(strings.Fields(s)) would, without allocating: the offline model
// counts its whole prompt at every call.
func countTokens(s string) int {
	n, inWord := 0, false
	for _, r := range s {
		if unicode.IsSpace(r) {
			inWord = false
		} else if !inWord {
			inWord = true
			n++
		}
	}
	return n
}

// deploy is one entry of Offline's deploy log.
type deploy struct {
	at, service, version, previous string
	// callers are the services that call service on their request path.
	callers []string
}

var deployLog = []deploy{
	{at: "13:12", service: "search-indexer", version: "v7.3.1", previous: "v7.3.0", callers: []string{"catalog-api"}},
	{at: "13:58", service: "payments-gateway", version: "v2.14.0", previous: "v2.13.4", callers: []string{"checkout-api"}},
}

// incident is what a user said is wrong.
type incident struct {
	service string // "checkout-api"
	metric  string // "p99", "latency", "error rate"
	factor  string // "4x"; "" when not given
	window  string // "15 minutes"; "" when not given
}

var (
	reSymptom = regexp.MustCompile(`([a-z0-9][a-z0-9-]*)\s+(p\d{2,3}|latency|error rate)\b`)
	reFactor  = regexp.MustCompile(`\b(\d+(?:\.\d+)?x)\b`)
	reWindow  = regexp.MustCompile(`\blast (\d+ (?:seconds?|minutes?|hours?))\b`)
	reClock   = regexp.MustCompile(`\b\d{1,2}:\d{2}\b`)
)

// parseIncident finds a service and symptom in text.
func parseIncident(text string) (incident, bool) {
	t := strings.ToLower(text)
	m := reSymptom.FindStringSubmatch(t)
	if m == nil {
		return incident{}, false
	}
	inc := incident{service: m[1], metric: m[2]}
	if f := reFactor.FindStringSubmatch(t); f != nil {
		inc.factor = f[1]
	}
	if w := reWindow.FindStringSubmatch(t); w != nil {
		inc.window = w[1]
	}
	return inc, true
}

// knownIncident returns the incident opened most recently in history.
func knownIncident(history []Message) (incident, bool) {
	for _, m := range slices.Backward(history) {
		if m.Role != RoleUser || !strings.Contains(strings.ToLower(m.Content), "incident") {
			continue
		}
		if inc, ok := parseIncident(m.Content); ok {
			return inc, true
		}
	}
	return incident{}, false
}

// symptom describes inc for engineers: "p99 latency is up 4x over the last
// 15 minutes".
func (inc incident) symptom() string {
	s := inc.metric
	if strings.HasPrefix(s, "p") {
		s += " latency"
	}
	if inc.factor != "" {
		s += " is up " + inc.factor
	} else {
		s += " is elevated"
	}
	if inc.window != "" {
		s += " over the last " + inc.window
	}
	return s
}

// answer is Offline's reply to prompt given the conversation before it.
func answer(prompt string, history []Message) string {
	p := strings.ToLower(prompt)
	switch {
	case strings.Contains(p, "incident"):
		if inc, ok := parseIncident(prompt); ok {
			return openIncident(inc)
		}
	case strings.Contains(p, "deploy"):
		return deployAnswer(reClock.FindString(p), history)
	case strings.Contains(p, "status update") || strings.Contains(p, "customer"):
		return statusUpdate(history)
	}
	return fmt.Sprintf("Noted: %q. As incident commander I need a symptom, an affected service or a time to act on; tell me what you are seeing.", prompt)
}

func openIncident(inc incident) string {
	return fmt.Sprintf("Incident opened for %s: %s. "+
		"I am incident commander; severity is SEV-2 until we know how many orders are affected. "+
		"Next: pull the deploy log for the last hour, compare %s error rates, and check its downstream dependencies.",
		inc.service, inc.symptom(), inc.service)
}

func deployAnswer(at string, history []Message) string {
	if at == "" {
		var b strings.Builder
		b.WriteString("Deploys today:")
		for i, d := range deployLog {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, " %s %s at %s", d.service, d.version, d.at)
		}
		b.WriteString(". Give me a time and I will check it against the incident.")
		return b.String()
	}
	i := slices.IndexFunc(deployLog, func(d deploy) bool { return d.at == at })
	if i < 0 {
		return fmt.Sprintf("The deploy log has nothing at %s, so no deploy explains it.", at)
	}
	d := deployLog[i]
	inc, ok := knownIncident(history)
	if !ok {
		return fmt.Sprintf("At %s we deployed %s %s. No incident is open in this conversation, so there is nothing to correlate it with yet.",
			d.at, d.service, d.version)
	}
	if !slices.Contains(d.callers, inc.service) {
		return fmt.Sprintf("At %s we deployed %s %s, but %s does not call %s, so it does not explain why %s %s.",
			d.at, d.service, d.version, inc.service, d.service, inc.service, inc.symptom())
	}
	var others []string
	for _, o := range deployLog {
		if o.at != d.at && !slices.Contains(o.callers, inc.service) {
			others = append(others, fmt.Sprintf("%s %s at %s", o.service, o.version, o.at))
		}
	}
	s := fmt.Sprintf("At %s we deployed %s %s. It is the likely correlated change: %s calls %s on every order, "+
		"and the trouble started right after it: %s %s.",
		d.at, d.service, d.version, inc.service, d.service, inc.service, inc.symptom())
	switch len(others) {
	case 0:
	case 1:
		s += fmt.Sprintf(" The other deploy today (%s) does not touch %s.", others[0], inc.service)
	default:
		s += fmt.Sprintf(" The other deploys today (%s) do not touch %s.", strings.Join(others, ", "), inc.service)
	}
	return s + fmt.Sprintf(" Recommendation: roll back %s to %s and watch %s %s for ten minutes.",
		d.service, d.previous, inc.service, inc.metric)
}

// internalUpdate briefs the incident channel on what history established.
func internalUpdate(history []Message) string {
	inc, ok := knownIncident(history)
	if !ok {
		return "Incident update: we are investigating degraded service; next update within 30 minutes."
	}
	s := fmt.Sprintf("SEV-2 update: %s %s.", inc.service, inc.symptom())
	for _, d := range deployLog {
		if slices.Contains(d.callers, inc.service) && slices.ContainsFunc(history, func(m Message) bool {
			return m.Role == RoleAssistant && strings.Contains(m.Content, "roll back "+d.service)
		}) {
			s += fmt.Sprintf(" Mitigation: rolling back %s %s to %s.", d.service, d.version, d.previous)
		}
	}
	return s + " Next update within 30 minutes."
}

func statusUpdate(history []Message) string {
	inc, ok := knownIncident(history)
	if !ok {
		return "We are investigating reports of degraded service and will post the next update within 30 minutes."
	}
	product := strings.TrimSuffix(inc.service, "-api")
	what := "slow " + product + " for some customers"
	if inc.metric == "error rate" {
		what = "errors in " + product + " for some customers"
	}
	rollingBack := slices.ContainsFunc(history, func(m Message) bool {
		return m.Role == RoleAssistant && strings.Contains(m.Content, "roll back")
	})
	if rollingBack {
		return "We are investigating " + what + " and are rolling back a recent change to mitigate it, with the next update within 30 minutes."
	}
	return "We are investigating " + what + " and will post the next update within 30 minutes."
}
