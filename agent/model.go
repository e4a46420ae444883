package agent

import (
	"context"
	"encoding/json"
)

// Model is a chat model. Complete answers the conversation in req with one
// assistant message, which may ask for tool calls. Complete must not modify
// req, must return promptly with ctx's error once ctx is done, and must be
// safe for concurrent use.
type Model interface {
	Complete(ctx context.Context, req Request) (Response, error)
}

// Request is what a model is asked to complete.
type Request struct {
	// Messages is the conversation so far, oldest first.
	Messages []Message
	// Tools are the tools the model may call; none when empty.
	Tools []ToolSpec
}

// ToolSpec describes a tool a model may call.
type ToolSpec struct {
	Name        string
	Description string
	// Parameters is the JSON Schema of the tool's arguments object.
	Parameters json.RawMessage
}

// Response is a model's answer.
type Response struct {
	// Message is the assistant message; it may carry tool calls.
	Message Message
	Usage   Usage
	// StopReason is StopReasonStop or StopReasonToolCalls.
	StopReason string
}

// Usage is the tokens one model call consumed.
type Usage struct {
	PromptTokens     int
	CompletionTokens int
}

// Stop reasons, of a model call (Response) and of a turn (TurnResult).
const (
	// StopReasonStop: the model answered.
	StopReasonStop = "stop"
	// StopReasonToolCalls: the model asked for tool calls.
	StopReasonToolCalls = "tool_calls"
	// StopReasonMaxIterations: the turn used its whole model-call budget
	// (State.MaxIterations) while the model still asked for tools.
	StopReasonMaxIterations = "max_iterations"
)
