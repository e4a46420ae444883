package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// A turn is one user prompt and the model calls that answer it; an
// iteration (a step) is one model call and the tools it asked for. The
// functions below move a State through a turn one step at a time, so that a
// caller can checkpoint between steps and resume from any checkpoint: the
// state alone says whether a turn is in progress (InTurn), and a step is
// applied whole (ApplyStep), from a model response and tool executions that
// the caller may have recorded before a crash.

// ModelTaskID is reserved: it is the task id under which a runtime records a
// step's model response as a pending write, next to the tool results, whose
// task ids are the tool call ids. PrepareResponse never lets a tool call
// have this id.
const ModelTaskID = "model"

// maxCallIDBytes bounds a tool call id kept as the model gave it; longer ids
// are replaced (see PrepareResponse).
const maxCallIDBytes = 128

// InTurn reports whether s is in the middle of a turn: its last message is a
// user prompt or a tool result, and the turn has model calls left (it has
// made fewer than MaxIterations). A state that is not in a turn is idle: it
// waits for the next prompt.
func (s *State) InTurn() bool {
	if len(s.Messages) == 0 {
		return false
	}
	switch s.Messages[len(s.Messages)-1].Role {
	case RoleUser, RoleTool:
		return s.turnModelCalls() < s.MaxIterations
	}
	return false
}

// turnModelCalls counts the assistant messages after the last user message.
func (s *State) turnModelCalls() int {
	n := 0
	for _, m := range slices.Backward(s.Messages) {
		switch m.Role {
		case RoleUser:
			return n
		case RoleAssistant:
			n++
		}
	}
	return n
}

// Turns counts the user prompts of the conversation.
func (s *State) Turns() int {
	n := 0
	for _, m := range s.Messages {
		if m.Role == RoleUser {
			n++
		}
	}
	return n
}

// BeginTurn starts a turn: it puts SystemPrompt first if the conversation
// has no system message, then appends prompt as a user message. It fails,
// leaving s unchanged, if prompt is blank, MaxIterations is less than 1, or
// s is still in a turn. It does not touch UpdatedAt.
func (s *State) BeginTurn(prompt string) error {
	switch {
	case strings.TrimSpace(prompt) == "":
		return errors.New("empty prompt")
	case s.MaxIterations <= 0:
		return fmt.Errorf("max_iterations is %d, want more than 0", s.MaxIterations)
	case s.InTurn():
		return errors.New("the previous turn is not finished")
	}
	if !slices.ContainsFunc(s.Messages, func(x Message) bool { return x.Role == RoleSystem }) {
		sys := Message{Role: RoleSystem, Content: SystemPrompt}
		sys.normalize()
		s.Messages = slices.Insert(s.Messages, 0, sys)
	}
	s.Append(Message{Role: RoleUser, Content: prompt})
	return nil
}

// PrepareResponse checks a model's response to the conversation in s and
// returns it in the form ApplyStep records: role assistant (an empty role
// becomes assistant; any other is an error), JSON compacted (arguments that
// are not valid JSON are an error), no nil slices. A tool call id that is
// empty, longer than 128 bytes, not valid UTF-8, holds control characters,
// repeats another call's id in the message or is ModelTaskID is replaced
// by "call_<iteration>_<n>", so that every id can name a pending write.
// PrepareResponse is deterministic and idempotent, so a recorded response
// prepared again is unchanged.
func (s *State) PrepareResponse(resp Response) (Response, error) {
	msg := resp.Message.clone()
	switch msg.Role {
	case "":
		msg.Role = RoleAssistant
	case RoleAssistant:
	default:
		return Response{}, fmt.Errorf("model returned a %q message", msg.Role)
	}
	msg.normalize()
	seen := make(map[string]bool, len(msg.ToolCalls))
	for i := range msg.ToolCalls {
		tc := &msg.ToolCalls[i]
		if !usableCallID(tc.ID) || seen[tc.ID] {
			base := "call_" + strconv.Itoa(s.Iteration+1) + "_" + strconv.Itoa(i+1)
			tc.ID = base
			for k := 2; seen[tc.ID]; k++ {
				tc.ID = base + "_" + strconv.Itoa(k)
			}
		}
		seen[tc.ID] = true
	}
	var c checker
	c.str("content", msg.Content)
	for i, tc := range msg.ToolCalls {
		p := "tool_calls[" + strconv.Itoa(i) + "]"
		c.str(p+".name", tc.Name)
		c.raw(p+".arguments", tc.Arguments)
	}
	c.raw("metadata", msg.Metadata)
	if c.err != nil {
		return Response{}, fmt.Errorf("model response: %w", c.err)
	}
	resp.Message = msg
	return resp, nil
}

func usableCallID(id string) bool {
	if id == "" || id == ModelTaskID || len(id) > maxCallIDBytes || !utf8.ValidString(id) {
		return false
	}
	return !strings.ContainsFunc(id, unicode.IsControl)
}

// ApplyStep records one iteration in s: the model's response (prepared by
// PrepareResponse for this state) as an assistant message, then, for each
// tool call it asked for, in order, its execution and a tool message with
// the result ("error: ..." if the tool failed). It adds one model call to
// Iteration, the usage to the token counters and a line to ReasoningSteps,
// and sets UpdatedAt to now in UTC. If the model asked for tools but the turn
// has used its last model call, the turn ends there with a line in Errors.
//
// It returns how the step ended: StopReasonToolCalls if the turn goes on
// (s is still InTurn), StopReasonMaxIterations, or else the model's stop
// reason (StopReasonStop when it gave none). If it fails (s not in a turn,
// executions that do not match the calls one for one, a response that is
// not prepared), s is unchanged.
func (s *State) ApplyStep(resp Response, execs []ToolExecution, now time.Time) (string, error) {
	if !s.InTurn() {
		return "", errors.New("apply step: not in a turn")
	}
	prepared, err := s.PrepareResponse(resp)
	if err != nil {
		return "", fmt.Errorf("apply step: %w", err)
	}
	msg := prepared.Message
	if len(execs) != len(msg.ToolCalls) {
		return "", fmt.Errorf("apply step: %d tool executions for %d tool calls", len(execs), len(msg.ToolCalls))
	}
	for i, tc := range msg.ToolCalls {
		if execs[i].ToolCallID != tc.ID || execs[i].Name != tc.Name {
			return "", fmt.Errorf("apply step: execution %d is of call %s (%s), want %s (%s)",
				i, execs[i].ToolCallID, execs[i].Name, tc.ID, tc.Name)
		}
	}

	w := s.Clone()
	w.Iteration++
	w.PromptTokens += resp.Usage.PromptTokens
	w.CompletionTokens += resp.Usage.CompletionTokens
	w.TotalTokens += resp.Usage.PromptTokens + resp.Usage.CompletionTokens
	w.Append(msg)
	usage := fmt.Sprintf("%d prompt + %d completion tokens", resp.Usage.PromptTokens, resp.Usage.CompletionTokens)
	if len(msg.ToolCalls) == 0 {
		stop := resp.StopReason
		if stop == "" || stop == StopReasonToolCalls {
			stop = StopReasonStop
		}
		w.ReasoningSteps = append(w.ReasoningSteps, fmt.Sprintf("iteration %d: answered (%s, %s)", w.Iteration, stop, usage))
		return stop, s.commit(w, now)
	}
	names := make([]string, len(msg.ToolCalls))
	for i, tc := range msg.ToolCalls {
		names[i] = tc.Name
	}
	w.ReasoningSteps = append(w.ReasoningSteps, fmt.Sprintf("iteration %d: called %s (%s)", w.Iteration, strings.Join(names, ", "), usage))
	for _, e := range execs {
		e.Arguments = normalizeRaw(bytes.Clone(e.Arguments))
		e.StartedAt = normalizeTime(e.StartedAt)
		e.FinishedAt = normalizeTime(e.FinishedAt)
		w.ToolExecutions = append(w.ToolExecutions, e)
		content := e.Result
		if e.Error != "" {
			content = "error: " + e.Error
		}
		w.Append(Message{Role: RoleTool, Content: content, ToolCallID: e.ToolCallID, Name: e.Name})
	}
	stop := StopReasonToolCalls
	if !w.InTurn() {
		stop = StopReasonMaxIterations
		w.Errors = append(w.Errors, fmt.Sprintf("turn stopped after %d model calls: max_iterations reached", w.turnModelCalls()))
	}
	return stop, s.commit(w, now)
}

// commit sets w's UpdatedAt, checks it and makes it s.
func (s *State) commit(w *State, now time.Time) error {
	w.UpdatedAt = normalizeTime(now)
	if err := w.check(); err != nil {
		return fmt.Errorf("apply step: %w", err)
	}
	*s = *w
	return nil
}

// EncodeToolExecution returns the JSON of e, as a runtime records it in a
// pending write.
func EncodeToolExecution(e ToolExecution) (json.RawMessage, error) {
	e.Arguments = normalizeRaw(e.Arguments)
	e.StartedAt = normalizeTime(e.StartedAt)
	e.FinishedAt = normalizeTime(e.FinishedAt)
	b, err := marshalCompact(e)
	if err != nil {
		return nil, fmt.Errorf("encode tool execution: %w", err)
	}
	return b, nil
}

// DecodeToolExecution decodes what EncodeToolExecution returned.
func DecodeToolExecution(b json.RawMessage) (ToolExecution, error) {
	var e ToolExecution
	if err := strictUnmarshal(b, &e); err != nil {
		return ToolExecution{}, fmt.Errorf("decode tool execution: %w", err)
	}
	if e.ToolCallID == "" || e.Name == "" {
		return ToolExecution{}, errors.New("decode tool execution: no tool_call_id or name")
	}
	e.Arguments = normalizeRaw(e.Arguments)
	e.StartedAt = normalizeTime(e.StartedAt)
	e.FinishedAt = normalizeTime(e.FinishedAt)
	return e, nil
}

// responseJSON is the recorded form of a Response.
type responseJSON struct {
	Message    Message   `json:"message"`
	Usage      usageJSON `json:"usage"`
	StopReason string    `json:"stop_reason"`
}

type usageJSON struct {
	PromptTokens     int `json:"prompt_tokens"`
	CompletionTokens int `json:"completion_tokens"`
}

// EncodeResponse returns the JSON of a prepared response, as a runtime
// records it in a pending write:
// {"message":{...},"usage":{"prompt_tokens":..,"completion_tokens":..},"stop_reason":".."}.
func EncodeResponse(resp Response) (json.RawMessage, error) {
	m := resp.Message.clone()
	m.normalize()
	b, err := marshalCompact(responseJSON{
		Message:    m,
		Usage:      usageJSON{resp.Usage.PromptTokens, resp.Usage.CompletionTokens},
		StopReason: resp.StopReason,
	})
	if err != nil {
		return nil, fmt.Errorf("encode model response: %w", err)
	}
	return b, nil
}

// DecodeResponse decodes what EncodeResponse returned.
func DecodeResponse(b json.RawMessage) (Response, error) {
	var r responseJSON
	if err := strictUnmarshal(b, &r); err != nil {
		return Response{}, fmt.Errorf("decode model response: %w", err)
	}
	r.Message.normalize()
	return Response{
		Message:    r.Message,
		Usage:      Usage{PromptTokens: r.Usage.PromptTokens, CompletionTokens: r.Usage.CompletionTokens},
		StopReason: r.StopReason,
	}, nil
}

func marshalCompact(v any) (json.RawMessage, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// strictUnmarshal decodes one JSON value into v, refusing unknown fields and
// trailing data.
func strictUnmarshal(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("unexpected data after the JSON value")
	}
	return nil
}
