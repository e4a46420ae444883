package events_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/cairn-io/cairn/events"
)

func TestErrorKinds(t *testing.T) {
	sentinels := map[events.Code]error{
		events.Invalid:     events.ErrInvalid,
		events.NotFound:    events.ErrNotFound,
		events.Conflict:    events.ErrConflict,
		events.Unavailable: events.ErrUnavailable,
	}
	for code := range sentinels {
		err := fmt.Errorf("apply batch: %w", events.Errorf(code, "thing %d", 1))
		for other, sentinel := range sentinels {
			if got, want := errors.Is(err, sentinel), other == code; got != want {
				t.Errorf("errors.Is(%s error, %s sentinel): got %v, want %v", code, other, got, want)
			}
		}
		if got, want := events.ErrorCode(err), code; got != want {
			t.Errorf("ErrorCode: got %q, want %q", got, want)
		}
		if got, want := err.Error(), "apply batch: thing 1"; got != want {
			t.Errorf("Error: got %q, want %q", got, want)
		}
	}
}

func TestErrorCause(t *testing.T) {
	cause := errors.New("connection refused")
	err := events.Errorf(events.Unavailable, "open store: %w", cause)
	if !errors.Is(err, cause) {
		t.Errorf("errors.Is(err, cause): got false, want true")
	}
	if !errors.Is(err, events.ErrUnavailable) {
		t.Errorf("errors.Is(err, ErrUnavailable): got false, want true")
	}
	var e *events.Error
	if !errors.As(err, &e) {
		t.Fatalf("errors.As: got false, want true")
	}
	if got, want := e.Message, "open store: connection refused"; got != want {
		t.Errorf("Message: got %q, want %q", got, want)
	}
	// A coded error that is not a sentinel does not match as one.
	if errors.Is(events.ErrInvalid, err) {
		t.Errorf("errors.Is(ErrInvalid, err): got true, want false")
	}
}

func TestErrorCode(t *testing.T) {
	tests := []struct {
		err  error
		want events.Code
	}{
		{nil, ""},
		{errors.New("boom"), events.Internal},
		{events.ErrConflict, events.Conflict},
		{fmt.Errorf("x: %w", events.Errorf(events.NotFound, "thread %q", "t")), events.NotFound},
	}
	for _, tt := range tests {
		if got := events.ErrorCode(tt.err); got != tt.want {
			t.Errorf("ErrorCode(%v): got %q, want %q", tt.err, got, tt.want)
		}
	}
	if got, want := events.ErrInvalid.Error(), "invalid"; got != want {
		t.Errorf("sentinel Error: got %q, want %q", got, want)
	}
}
