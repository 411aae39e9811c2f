package deployer

import (
	"errors"
	"fmt"
	"time"
)

// Code classifies an error for the person who caused it.
type Code string

// Error codes.
const (
	CodeInvalid   Code = "invalid"   // the request is malformed
	CodeNotFound  Code = "not_found" // no such service or deployment
	CodeConflict  Code = "conflict"  // the state does not allow it (locked, already decided)
	CodeForbidden Code = "forbidden" // the user may not
	CodeFailed    Code = "failed"    // a step failed
)

// Error is an error whose Message is meant for the person in chat; Err keeps
// the cause for the log.
type Error struct {
	Code    Code
	Message string
	Err     error
}

func (e *Error) Error() string {
	if e.Err == nil {
		return e.Message
	}
	return e.Message + ": " + e.Err.Error()
}

func (e *Error) Unwrap() error { return e.Err }

// Errorf returns an *Error with a formatted message.
func Errorf(code Code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// ErrorCode returns err's code, or "" when it has none.
func ErrorCode(err error) Code {
	if e, ok := errors.AsType[*Error](err); ok {
		return e.Code
	}
	if _, ok := errors.AsType[*LockedError](err); ok {
		return CodeConflict
	}
	if _, ok := errors.AsType[*NotFoundError](err); ok {
		return CodeNotFound
	}
	if _, ok := errors.AsType[*FrozenError](err); ok {
		return CodeConflict
	}
	return ""
}

// LockedError says a service's lock is held, and by whom.
type LockedError struct {
	Lock Lock
	Step StepName // the step the holding deploy is on, when known
}

func (e *LockedError) Error() string {
	l := e.Lock
	who := l.Holder
	if l.DeployID != 0 {
		who = fmt.Sprintf("deploy #%d by %s", l.DeployID, l.Holder)
	}
	msg := fmt.Sprintf("%s is locked by %s since %s", l.Service, who, l.Since.UTC().Format(time.DateTime+" MST"))
	if e.Step != "" {
		msg += fmt.Sprintf(", now on step %q", e.Step)
	}
	if l.Reason != "" {
		msg += fmt.Sprintf(" (reason: %s)", l.Reason)
	}
	return msg
}

// NotFoundError says a thing does not exist.
type NotFoundError struct {
	What string // "deployment #12", "service web"
}

func (e *NotFoundError) Error() string { return e.What + " not found" }
