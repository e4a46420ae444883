package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// TurnResult reports how a turn ended.
type TurnResult struct {
	// Iterations is the number of model calls the turn made.
	Iterations int
	// StopReason is StopReasonMaxIterations if the turn ran out of model
	// calls; otherwise the last call's stop reason, StopReasonStop when the
	// model gave none.
	StopReason string
}

// NoToolsError is the error RunTurn records for every tool call: it runs no
// tools, so a model that asks for one is told so and asked again.
const NoToolsError = "no tools available"

// RunTurn plays one user turn: it appends prompt as a user message (after
// SystemPrompt, if s has no system message yet) and calls m until it answers
// without tool calls, at most s.MaxIterations times. Each model reply is
// appended as an assistant message; each tool call it asks for is recorded as
// a ToolExecution failing with NoToolsError and answered with a tool message.
// RunTurn adds the calls to s.Iteration, their usage to the token counters and
// one line per call to s.ReasoningSteps, and sets s.UpdatedAt from now (in
// UTC; time.Now if now is nil).
//
// The turn is all or nothing: if it fails, s is unchanged, so the caller may
// retry it. Running out of model calls is not a failure: the turn ends with
// StopReasonMaxIterations and a line in s.Errors. On success s is canonical
// and ToCheckpoint will accept it.
func RunTurn(ctx context.Context, m Model, s *State, prompt string, now func() time.Time) (TurnResult, error) {
	switch {
	case m == nil:
		return TurnResult{}, errors.New("run turn: nil model")
	case s == nil:
		return TurnResult{}, errors.New("run turn: nil state")
	case strings.TrimSpace(prompt) == "":
		return TurnResult{}, errors.New("run turn: empty prompt")
	case s.MaxIterations <= 0:
		return TurnResult{}, fmt.Errorf("run turn: max_iterations is %d, want more than 0", s.MaxIterations)
	}
	if now == nil {
		now = time.Now
	}
	w := s.Clone()
	if !slices.ContainsFunc(w.Messages, func(x Message) bool { return x.Role == RoleSystem }) {
		sys := Message{Role: RoleSystem, Content: SystemPrompt}
		sys.normalize()
		w.Messages = slices.Insert(w.Messages, 0, sys)
	}
	w.Append(Message{Role: RoleUser, Content: prompt})

	var res TurnResult
	for {
		if res.Iterations == w.MaxIterations {
			res.StopReason = StopReasonMaxIterations
			w.Errors = append(w.Errors, fmt.Sprintf("turn stopped after %d model calls: max_iterations reached", res.Iterations))
			break
		}
		if err := ctx.Err(); err != nil {
			return TurnResult{}, fmt.Errorf("run turn: %w", err)
		}
		resp, err := m.Complete(ctx, Request{Messages: cloneMessages(w.Messages)})
		if err != nil {
			return TurnResult{}, fmt.Errorf("run turn: model call %d: %w", res.Iterations+1, err)
		}
		msg := resp.Message // Append below copies it
		switch msg.Role {
		case "":
			msg.Role = RoleAssistant
		case RoleAssistant:
		default:
			return TurnResult{}, fmt.Errorf("run turn: model call %d: model returned a %q message", res.Iterations+1, msg.Role)
		}
		res.Iterations++
		w.Iteration++
		w.PromptTokens += resp.Usage.PromptTokens
		w.CompletionTokens += resp.Usage.CompletionTokens
		w.TotalTokens += resp.Usage.PromptTokens + resp.Usage.CompletionTokens
		w.Append(msg)

		if len(msg.ToolCalls) == 0 {
			res.StopReason = resp.StopReason
			if res.StopReason == "" || res.StopReason == StopReasonToolCalls {
				res.StopReason = StopReasonStop
			}
			w.ReasoningSteps = append(w.ReasoningSteps, fmt.Sprintf("iteration %d: answered (%s, %d prompt + %d completion tokens)",
				w.Iteration, res.StopReason, resp.Usage.PromptTokens, resp.Usage.CompletionTokens))
			break
		}
		names := make([]string, len(msg.ToolCalls))
		for i, tc := range msg.ToolCalls {
			names[i] = tc.Name
		}
		w.ReasoningSteps = append(w.ReasoningSteps, fmt.Sprintf("iteration %d: asked for tools %s; none available",
			w.Iteration, strings.Join(names, ", ")))
		for _, tc := range w.Messages[len(w.Messages)-1].ToolCalls {
			t := normalizeTime(now())
			w.ToolExecutions = append(w.ToolExecutions, ToolExecution{
				ToolCallID: tc.ID,
				Name:       tc.Name,
				Arguments:  bytes.Clone(tc.Arguments),
				Error:      NoToolsError,
				StartedAt:  t,
				FinishedAt: t,
			})
			w.Append(Message{Role: RoleTool, Content: "error: " + NoToolsError, ToolCallID: tc.ID, Name: tc.Name})
		}
	}
	w.UpdatedAt = normalizeTime(now())
	if err := w.check(); err != nil {
		return TurnResult{}, fmt.Errorf("run turn: %w", err)
	}
	*s = *w
	return res, nil
}
