package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cairn-io/cairn/events"
)

// Defaults for OpenAIConfig.
const (
	DefaultOpenAITimeout    = 120 * time.Second
	DefaultOpenAIRetries    = 4
	DefaultOpenAIMinBackoff = 500 * time.Millisecond
	DefaultOpenAIMaxBackoff = 10 * time.Second
	DefaultOpenAIMaxWait    = 60 * time.Second
)

// maxAnswerBytes bounds the answer body read from an endpoint.
const maxAnswerBytes = 32 << 20

// OpenAIConfig configures NewOpenAI. Zero fields take the defaults.
type OpenAIConfig struct {
	// BaseURL is the API root that /chat/completions is appended to, such as
	// https://api.openai.com/v1 or http://127.0.0.1:11434/v1. Required.
	BaseURL string
	// APIKey is sent as "Authorization: Bearer <key>"; none when "".
	APIKey string
	// Model is the model name the endpoint serves. Required.
	Model string
	// Header holds extra request headers, sent with every request.
	Header http.Header
	// Temperature, when set, is sent; otherwise the endpoint's default.
	Temperature *float64
	// MaxTokens, when above 0, caps each completion.
	MaxTokens int
	// Timeout bounds one attempt (connect, send, answer); default
	// DefaultOpenAITimeout. A timed-out attempt is retried.
	Timeout time.Duration
	// Retries is how many times a failed attempt (network error, timeout,
	// 408, 409, 429 or 5xx) is retried; default DefaultOpenAIRetries, and a
	// negative value means none.
	Retries int
	// MinBackoff and MaxBackoff bound the exponential, jittered wait
	// between attempts when the endpoint sets no Retry-After; defaults
	// DefaultOpenAIMinBackoff and DefaultOpenAIMaxBackoff.
	MinBackoff, MaxBackoff time.Duration
	// MaxWait is the longest Retry-After the client waits for; an endpoint
	// asking for more fails the call at once. Default DefaultOpenAIMaxWait.
	MaxWait time.Duration
	// HTTPClient sends the requests; default a new http.Client (Timeout
	// bounds each attempt through its context).
	HTTPClient *http.Client
}

// OpenAI is a Model that calls an endpoint speaking the OpenAI chat
// completions API (POST <base>/chat/completions), with tool calling. It is
// the only part of package agent that does network I/O. It is safe for
// concurrent use.
//
// Errors carry a kind: events.Invalid for answers that retrying cannot
// change (400, 401, 403, 404, 422 and other 4xx: a bad key, an unknown
// model, a request the endpoint refuses), events.Unavailable when the
// endpoint stayed unreachable, rate-limited or failing through every retry,
// or answered with a body that is not a chat completion.
type OpenAI struct {
	cfg OpenAIConfig
	url string
}

var _ Model = (*OpenAI)(nil)

// NewOpenAI returns a client for the endpoint cfg describes.
func NewOpenAI(cfg OpenAIConfig) (*OpenAI, error) {
	if cfg.BaseURL == "" {
		return nil, events.Errorf(events.Invalid, "openai: no base URL")
	}
	if !strings.HasPrefix(cfg.BaseURL, "http://") && !strings.HasPrefix(cfg.BaseURL, "https://") {
		return nil, events.Errorf(events.Invalid, "openai: base URL %q: want http:// or https://", cfg.BaseURL)
	}
	if cfg.Model == "" {
		return nil, events.Errorf(events.Invalid, "openai: no model name")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultOpenAITimeout
	}
	switch {
	case cfg.Retries == 0:
		cfg.Retries = DefaultOpenAIRetries
	case cfg.Retries < 0:
		cfg.Retries = 0
	}
	if cfg.MinBackoff <= 0 {
		cfg.MinBackoff = DefaultOpenAIMinBackoff
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = DefaultOpenAIMaxBackoff
	}
	if cfg.MaxWait <= 0 {
		cfg.MaxWait = DefaultOpenAIMaxWait
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{}
	}
	return &OpenAI{cfg: cfg, url: strings.TrimRight(cfg.BaseURL, "/") + "/chat/completions"}, nil
}

// Complete implements Model.
func (c *OpenAI) Complete(ctx context.Context, req Request) (Response, error) {
	body, err := c.encode(req)
	if err != nil {
		return Response{}, err
	}
	for attempt := 0; ; attempt++ {
		resp, retry, err := c.attempt(ctx, body)
		if err == nil {
			return resp, nil
		}
		if ctx.Err() != nil {
			return Response{}, fmt.Errorf("model %s: %w", c.cfg.Model, ctx.Err())
		}
		if retry < 0 || attempt == c.cfg.Retries {
			if retry >= 0 {
				err = events.Errorf(events.Unavailable, "%w (gave up after %d attempts)", err, attempt+1)
			}
			return Response{}, err
		}
		wait := retry
		if wait == 0 {
			wait = c.backoff(attempt)
		}
		if wait > c.cfg.MaxWait {
			return Response{}, events.Errorf(events.Unavailable, "%w; the endpoint asks to retry after %v, longer than %v", err, wait, c.cfg.MaxWait)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return Response{}, fmt.Errorf("model %s: %w", c.cfg.Model, ctx.Err())
		case <-t.C:
		}
	}
}

// backoff is the wait before retry attempt+1: MinBackoff doubled per
// attempt, capped at MaxBackoff, with full jitter on its upper half.
func (c *OpenAI) backoff(attempt int) time.Duration {
	d := c.cfg.MinBackoff << min(attempt, 30)
	if d <= 0 || d > c.cfg.MaxBackoff {
		d = c.cfg.MaxBackoff
	}
	return d/2 + rand.N(d/2+1)
}

// attempt sends one request. On failure, retry is -1 if the error is
// final, 0 to retry after the client's backoff, or the wait the endpoint
// asked for.
func (c *OpenAI) attempt(ctx context.Context, body []byte) (_ Response, retry time.Duration, _ error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	hr, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, bytes.NewReader(body))
	if err != nil {
		return Response{}, -1, events.Errorf(events.Invalid, "model request: %w", err)
	}
	for k, vs := range c.cfg.Header {
		for _, v := range vs {
			hr.Header.Add(k, v)
		}
	}
	hr.Header.Set("Content-Type", "application/json")
	hr.Header.Set("Accept", "application/json")
	if c.cfg.APIKey != "" {
		hr.Header.Set("Authorization", "Bearer "+c.cfg.APIKey)
	}
	res, err := c.cfg.HTTPClient.Do(hr)
	if err != nil {
		return Response{}, 0, events.Errorf(events.Unavailable, "model endpoint %s: %w", c.url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, maxAnswerBytes))
	if err != nil {
		return Response{}, 0, events.Errorf(events.Unavailable, "model endpoint %s: read answer: %w", c.url, err)
	}
	if res.StatusCode/100 == 2 {
		resp, err := decodeCompletion(b)
		if err != nil {
			return Response{}, -1, events.Errorf(events.Unavailable, "model endpoint %s: malformed answer (%w): %.200q", c.url, err, b)
		}
		return resp, 0, nil
	}
	msg := fmt.Sprintf("model endpoint %s answered %s: %s", c.url, res.Status, errorMessage(b))
	switch code := res.StatusCode; {
	case code == http.StatusRequestTimeout, code == http.StatusConflict, code == http.StatusTooManyRequests, code >= 500:
		return Response{}, retryAfter(res.Header, time.Now()), events.Errorf(events.Unavailable, "%s", msg)
	case code == http.StatusUnauthorized, code == http.StatusForbidden:
		return Response{}, -1, events.Errorf(events.Invalid, "%s (check the API key)", msg)
	case code == http.StatusNotFound:
		return Response{}, -1, events.Errorf(events.Invalid, "%s (check the base URL and the model name %q)", msg, c.cfg.Model)
	default:
		return Response{}, -1, events.Errorf(events.Invalid, "%s", msg)
	}
}

// retryAfter reads how long the endpoint asks to wait: retry-after-ms
// (milliseconds), else Retry-After (seconds or an HTTP date); 0 when it
// asks for nothing.
func retryAfter(h http.Header, now time.Time) time.Duration {
	if v := h.Get("Retry-After-Ms"); v != "" {
		if ms, err := strconv.ParseFloat(v, 64); err == nil && ms > 0 {
			return time.Duration(ms * float64(time.Millisecond))
		}
	}
	v := h.Get("Retry-After")
	if v == "" {
		return 0
	}
	if s, err := strconv.ParseFloat(v, 64); err == nil {
		if s <= 0 {
			return 0
		}
		return time.Duration(s * float64(time.Second))
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// errorMessage extracts the message of an error answer: OpenAI's
// {"error":{"message":...}}, the {"message":...} or {"error":"..."} of
// other servers, else the body's start.
func errorMessage(b []byte) string {
	var e struct {
		Error   json.RawMessage `json:"error"`
		Message string          `json:"message"`
	}
	if json.Unmarshal(b, &e) == nil {
		var inner struct {
			Message string          `json:"message"`
			Code    json.RawMessage `json:"code"`
		}
		var s, code string
		switch {
		case json.Unmarshal(e.Error, &inner) == nil && inner.Message != "":
			if json.Unmarshal(inner.Code, &code) == nil && code != "" {
				return inner.Message + " (" + code + ")"
			}
			return inner.Message
		case json.Unmarshal(e.Error, &s) == nil && s != "":
			return s
		case e.Message != "":
			return e.Message
		}
	}
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	if s == "" {
		return "(empty body)"
	}
	return s
}

// Wire format of the chat completions API.

type chatRequest struct {
	Model       string        `json:"model"`
	Messages    []chatMessage `json:"messages"`
	Tools       []chatTool    `json:"tools,omitempty"`
	Temperature *float64      `json:"temperature,omitempty"`
	MaxTokens   int           `json:"max_tokens,omitempty"`
}

type chatMessage struct {
	Role       string          `json:"role"`
	Content    json.RawMessage `json:"content"`
	ToolCalls  []chatToolCall  `json:"tool_calls,omitempty"`
	ToolCallID string          `json:"tool_call_id,omitempty"`
}

type chatToolCall struct {
	ID       string `json:"id"`
	Type     string `json:"type"`
	Function struct {
		Name      string          `json:"name"`
		Arguments json.RawMessage `json:"arguments"`
	} `json:"function"`
}

type chatTool struct {
	Type     string `json:"type"`
	Function struct {
		Name        string          `json:"name"`
		Description string          `json:"description,omitempty"`
		Parameters  json.RawMessage `json:"parameters,omitempty"`
	} `json:"function"`
}

type chatCompletion struct {
	Choices []struct {
		Message struct {
			Role      string          `json:"role"`
			Content   json.RawMessage `json:"content"`
			ToolCalls []chatToolCall  `json:"tool_calls"`
		} `json:"message"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *struct {
		PromptTokens     int `json:"prompt_tokens"`
		CompletionTokens int `json:"completion_tokens"`
	} `json:"usage"`
}

// encode builds the request body. Tool arguments, JSON objects in a State,
// are sent as the JSON strings the API expects.
func (c *OpenAI) encode(req Request) ([]byte, error) {
	cr := chatRequest{Model: c.cfg.Model, Temperature: c.cfg.Temperature, MaxTokens: c.cfg.MaxTokens}
	for _, m := range req.Messages {
		cm := chatMessage{Role: string(m.Role), ToolCallID: m.ToolCallID}
		content, _ := json.Marshal(m.Content) // a string always marshals
		if m.Content == "" && len(m.ToolCalls) > 0 {
			content = json.RawMessage("null")
		}
		cm.Content = content
		for _, tc := range m.ToolCalls {
			var w chatToolCall
			w.ID, w.Type, w.Function.Name = tc.ID, "function", tc.Name
			args := string(tc.Arguments)
			if len(tc.Arguments) > 0 && tc.Arguments[0] == '"' {
				_ = json.Unmarshal(tc.Arguments, &args) // arguments the model sent as text: send them back as they were
			}
			w.Function.Arguments, _ = json.Marshal(args)
			cm.ToolCalls = append(cm.ToolCalls, w)
		}
		cr.Messages = append(cr.Messages, cm)
	}
	for _, t := range req.Tools {
		var w chatTool
		w.Type, w.Function.Name, w.Function.Description, w.Function.Parameters = "function", t.Name, t.Description, t.Parameters
		cr.Tools = append(cr.Tools, w)
	}
	b, err := json.Marshal(cr)
	if err != nil {
		return nil, events.Errorf(events.Invalid, "encode model request: %w", err)
	}
	return b, nil
}

// decodeCompletion turns a chat completion into a Response. Content may be
// a string, null or a list of text parts. Tool arguments may be a JSON
// string (the API's form) or an object (some servers'); a string that is
// not valid JSON is kept as a JSON string, so the tool reports the problem
// to the model instead of the turn failing.
func decodeCompletion(b []byte) (Response, error) {
	var cc chatCompletion
	if err := json.Unmarshal(b, &cc); err != nil {
		return Response{}, err
	}
	if len(cc.Choices) == 0 {
		return Response{}, errors.New("no choices")
	}
	ch := cc.Choices[0]
	if ch.Message.Role != "" && ch.Message.Role != string(RoleAssistant) {
		return Response{}, fmt.Errorf("message role %q", ch.Message.Role)
	}
	content, err := decodeContent(ch.Message.Content)
	if err != nil {
		return Response{}, err
	}
	msg := Message{Role: RoleAssistant, Content: content, ToolCalls: []ToolCall{}}
	for i, tc := range ch.Message.ToolCalls {
		if tc.Type != "" && tc.Type != "function" {
			return Response{}, fmt.Errorf("tool call %d: type %q", i, tc.Type)
		}
		if tc.Function.Name == "" {
			return Response{}, fmt.Errorf("tool call %d: no function name", i)
		}
		msg.ToolCalls = append(msg.ToolCalls, ToolCall{ID: tc.ID, Name: tc.Function.Name, Arguments: decodeArguments(tc.Function.Arguments)})
	}
	msg.normalize()
	resp := Response{Message: msg, StopReason: StopReasonStop}
	if ch.FinishReason != nil && *ch.FinishReason != "" {
		resp.StopReason = *ch.FinishReason
	}
	switch {
	case len(msg.ToolCalls) > 0, resp.StopReason == "function_call":
		resp.StopReason = StopReasonToolCalls
	case resp.StopReason == StopReasonToolCalls:
		resp.StopReason = StopReasonStop
	}
	if cc.Usage != nil {
		resp.Usage = Usage{PromptTokens: cc.Usage.PromptTokens, CompletionTokens: cc.Usage.CompletionTokens}
	}
	return resp, nil
}

func decodeContent(raw json.RawMessage) (string, error) {
	if len(raw) == 0 || string(raw) == "null" {
		return "", nil
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		return s, nil
	}
	var parts []struct {
		Type string `json:"type"`
		Text string `json:"text"`
	}
	if err := json.Unmarshal(raw, &parts); err != nil {
		return "", errors.New("content is neither a string nor a list of parts")
	}
	var b strings.Builder
	for _, p := range parts {
		if p.Type == "text" || p.Type == "output_text" {
			b.WriteString(p.Text)
		}
	}
	return b.String(), nil
}

func decodeArguments(raw json.RawMessage) json.RawMessage {
	raw = bytes.TrimSpace(raw)
	var s string
	if len(raw) == 0 || string(raw) == "null" {
		return json.RawMessage(`{}`)
	}
	if json.Unmarshal(raw, &s) != nil {
		return raw // an object, as some servers send
	}
	if strings.TrimSpace(s) == "" {
		return json.RawMessage(`{}`)
	}
	if json.Valid([]byte(s)) {
		return json.RawMessage(s)
	}
	b, _ := json.Marshal(s) // a string always marshals
	return b
}
