package agent

import (
	"bytes"
	"encoding/json"
	"slices"
	"time"
)

// Role is who wrote a message.
type Role string

// The message roles.
const (
	RoleSystem    Role = "system"
	RoleUser      Role = "user"
	RoleAssistant Role = "assistant"
	RoleTool      Role = "tool"
)

func (r Role) valid() bool {
	switch r {
	case RoleSystem, RoleUser, RoleAssistant, RoleTool:
		return true
	}
	return false
}

// State is an agent's state as one checkpoint carries it: the conversation so
// far, what the agent did, and what it cost. Its JSON mirrors the reference
// Locus AgentState.to_checkpoint(): snake_case names, every field always
// present, nothing omitted.
//
// A State is in canonical form when every slice is non-nil (empty, not
// null, when there is nothing), every json.RawMessage is compact, valid
// UTF-8 JSON, every string is valid UTF-8, every role is known and every time
// is UTC without a monotonic clock reading. NewState, Append, Clone,
// FromCheckpoint and RunTurn keep a State canonical; ToCheckpoint refuses one
// that is not, because only canonical states survive the JSON round trip
// exactly.
//
// A State is not safe for concurrent use.
type State struct {
	RunID   string `json:"run_id"`
	AgentID string `json:"agent_id"`
	// Messages is the conversation, oldest first.
	Messages []Message `json:"messages"`
	// Iteration counts the model calls made over the whole run.
	Iteration int `json:"iteration"`
	// MaxIterations bounds the model calls RunTurn makes in one turn.
	MaxIterations  int             `json:"max_iterations"`
	ToolExecutions []ToolExecution `json:"tool_executions"`
	// ReasoningSteps holds one short line per model call.
	ReasoningSteps []string `json:"reasoning_steps"`
	Confidence     float64  `json:"confidence"`
	// TotalTokens is PromptTokens + CompletionTokens, summed over the run.
	TotalTokens      int      `json:"total_tokens"`
	PromptTokens     int      `json:"prompt_tokens"`
	CompletionTokens int      `json:"completion_tokens"`
	Errors           []string `json:"errors"`
	// ProviderState is opaque state of the model provider, kept byte for
	// byte (key order, number spelling) but for insignificant whitespace,
	// which is compacted away. {} when there is none.
	ProviderState json.RawMessage `json:"provider_state"`
	// Metadata is opaque caller state, kept verbatim. {} when there is none.
	Metadata  json.RawMessage `json:"metadata"`
	StartedAt time.Time       `json:"started_at"`
	UpdatedAt time.Time       `json:"updated_at"`
}

// Message is one message of a conversation.
type Message struct {
	Role    Role   `json:"role"`
	Content string `json:"content"`
	// ToolCalls are the tools an assistant message asks to run.
	ToolCalls []ToolCall `json:"tool_calls"`
	// ToolCallID is, on a tool message, the id of the call it answers.
	ToolCallID string `json:"tool_call_id"`
	// Name is, on a tool message, the tool's name.
	Name string `json:"name"`
	// Metadata holds opaque annotations, kept verbatim. {} when there are none.
	Metadata json.RawMessage `json:"metadata"`
}

// ToolCall is a tool invocation requested by the model.
type ToolCall struct {
	ID   string `json:"id"`
	Name string `json:"name"`
	// Arguments is the JSON arguments object.
	Arguments json.RawMessage `json:"arguments"`
}

// ToolExecution records one tool call and its outcome.
type ToolExecution struct {
	ToolCallID string          `json:"tool_call_id"`
	Name       string          `json:"name"`
	Arguments  json.RawMessage `json:"arguments"`
	Result     string          `json:"result"`
	// Error is why the tool failed; "" when it succeeded.
	Error      string    `json:"error"`
	StartedAt  time.Time `json:"started_at"`
	FinishedAt time.Time `json:"finished_at"`
}

// emptyObject is the canonical value of an absent JSON object field.
var emptyObject = json.RawMessage(`{}`)

// NewState returns an empty, canonical state started at now. A
// maxIterations of zero or less means DefaultMaxIterations.
func NewState(runID, agentID string, maxIterations int, now time.Time) *State {
	if maxIterations <= 0 {
		maxIterations = DefaultMaxIterations
	}
	s := &State{
		RunID:         runID,
		AgentID:       agentID,
		MaxIterations: maxIterations,
		StartedAt:     now,
		UpdatedAt:     now,
	}
	s.normalize()
	return s
}

// Append adds a copy of m to the conversation, in canonical form: nil slices
// become empty, a nil Metadata or tool call Arguments becomes {}, and valid
// JSON in them is compacted. Invalid JSON is kept as given, for ToCheckpoint
// to report. Append does not touch UpdatedAt.
func (s *State) Append(m Message) {
	m = m.clone()
	m.normalize()
	s.Messages = append(s.Messages, m)
}

// Clone returns a deep copy of s: changing one never changes the other.
// Nil and empty slices stay as they were.
func (s *State) Clone() *State {
	c := *s
	c.Messages = cloneMessages(s.Messages)
	if s.ToolExecutions != nil {
		c.ToolExecutions = make([]ToolExecution, len(s.ToolExecutions))
		for i, e := range s.ToolExecutions {
			e.Arguments = bytes.Clone(e.Arguments)
			c.ToolExecutions[i] = e
		}
	}
	c.ReasoningSteps = slices.Clone(s.ReasoningSteps)
	c.Errors = slices.Clone(s.Errors)
	c.ProviderState = bytes.Clone(s.ProviderState)
	c.Metadata = bytes.Clone(s.Metadata)
	return &c
}

// cloneMessages deep-copies ms, keeping nil nil.
func cloneMessages(ms []Message) []Message {
	if ms == nil {
		return nil
	}
	out := make([]Message, len(ms))
	for i, m := range ms {
		out[i] = m.clone()
	}
	return out
}

func (m Message) clone() Message {
	if m.ToolCalls != nil {
		calls := make([]ToolCall, len(m.ToolCalls))
		for i, tc := range m.ToolCalls {
			tc.Arguments = bytes.Clone(tc.Arguments)
			calls[i] = tc
		}
		m.ToolCalls = calls
	}
	m.Metadata = bytes.Clone(m.Metadata)
	return m
}
