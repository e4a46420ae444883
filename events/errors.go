package events

import (
	"errors"
	"fmt"
)

// Code is one of cairn's closed set of error kinds. Every error that crosses a
// package boundary carries one, so that the writer can map it to a JetStream
// action and the query service to an HTTP status, each in exactly one place.
type Code string

// The error kinds.
const (
	// Invalid means the input can never succeed as given: a malformed event,
	// a bad query parameter. Retrying does not help.
	Invalid Code = "invalid"
	// NotFound means the thing asked for does not exist (or is not visible).
	NotFound Code = "not_found"
	// Conflict means the request contradicts what is already recorded.
	Conflict Code = "conflict"
	// Unavailable means a dependency (database, broker) cannot serve the
	// request now; the same request may succeed later.
	Unavailable Code = "unavailable"
	// Internal is every error that carries no code: a bug or an unexpected
	// failure.
	Internal Code = "internal"
)

// Error is an error with a Code. Compare kinds with errors.Is against the
// sentinels ErrInvalid, ErrNotFound, ErrConflict and ErrUnavailable.
type Error struct {
	Code    Code
	Message string
	Err     error // optional cause
}

// Sentinels for errors.Is: errors.Is(err, events.ErrInvalid) is true for
// every *Error whose Code is Invalid, anywhere in err's chain.
var (
	ErrInvalid     = &Error{Code: Invalid}
	ErrNotFound    = &Error{Code: NotFound}
	ErrConflict    = &Error{Code: Conflict}
	ErrUnavailable = &Error{Code: Unavailable}
)

// Errorf returns an *Error of the given code with a formatted message. A %w
// verb in format sets the cause.
func Errorf(code Code, format string, args ...any) error {
	err := fmt.Errorf(format, args...)
	return &Error{Code: code, Message: err.Error(), Err: errors.Unwrap(err)}
}

// Error implements error.
func (e *Error) Error() string {
	if e.Message == "" {
		return string(e.Code)
	}
	return e.Message
}

// Unwrap returns the cause, if any.
func (e *Error) Unwrap() error { return e.Err }

// Is reports whether target is the sentinel of e's code.
func (e *Error) Is(target error) bool {
	t, ok := target.(*Error)
	return ok && t.Message == "" && t.Err == nil && t.Code == e.Code
}

// ErrorCode returns the code of the first *Error in err's chain, Internal if
// there is none, and "" for a nil error.
func ErrorCode(err error) Code {
	if err == nil {
		return ""
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return Internal
}
