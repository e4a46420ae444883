package agent

import (
	"context"
	"errors"
	"fmt"
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

// RunTurn plays one user turn: it starts the turn with BeginTurn and calls
// m until it answers without tool calls, at most s.MaxIterations times,
// applying each call with ApplyStep. RunTurn offers the model no tools: each
// tool call it asks for is recorded as a ToolExecution failing with
// NoToolsError, and the model is asked again. Each step sets s.UpdatedAt
// from now (in UTC; time.Now if now is nil). A runtime that runs tools and
// checkpoints between steps uses BeginTurn, PrepareResponse and ApplyStep
// itself.
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
	}
	if now == nil {
		now = time.Now
	}
	w := s.Clone()
	if err := w.BeginTurn(prompt); err != nil {
		return TurnResult{}, fmt.Errorf("run turn: %w", err)
	}
	var res TurnResult
	for w.InTurn() {
		if err := ctx.Err(); err != nil {
			return TurnResult{}, fmt.Errorf("run turn: %w", err)
		}
		resp, err := m.Complete(ctx, Request{Messages: cloneMessages(w.Messages)})
		if err == nil {
			resp, err = w.PrepareResponse(resp)
		}
		if err != nil {
			return TurnResult{}, fmt.Errorf("run turn: model call %d: %w", res.Iterations+1, err)
		}
		execs := make([]ToolExecution, len(resp.Message.ToolCalls))
		for i, tc := range resp.Message.ToolCalls {
			t := now()
			execs[i] = ToolExecution{ToolCallID: tc.ID, Name: tc.Name, Arguments: tc.Arguments,
				Error: NoToolsError, StartedAt: t, FinishedAt: t}
		}
		res.StopReason, err = w.ApplyStep(resp, execs, now())
		if err != nil {
			return TurnResult{}, fmt.Errorf("run turn: %w", err)
		}
		res.Iterations++
	}
	*s = *w
	return res, nil
}
