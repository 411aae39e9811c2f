package deployer

import (
	"errors"
	"fmt"
	"strings"
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

// Error is an error whose Message is meant for the person in chat; Err
// keeps the cause for the log. Error() is both, for the log; ErrorMessage
// is what the chat shows.
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

// Wrapf puts words before err, for the chat and the log alike: the chat
// reads them before err's message, or alone when err has no words for
// people; the log reads them before all of err.
func Wrapf(err error, format string, args ...any) error {
	words := fmt.Sprintf(format, args...)
	if _, ok := message(err); ok {
		return fmt.Errorf("%s: %w", words, err)
	}
	return &Error{Code: CodeFailed, Message: words, Err: err}
}

// InternalMessage is what a person reads of an error with no words for
// them: a cause from inside greenlight or below it, which only the log shows.
const InternalMessage = "greenlight hit an internal error; the log has the details"

// ErrorMessage is err as the person in chat should read it: the Message of
// an *Error (never its cause), the text of a LockedError, NotFoundError or
// FrozenError, and the words a wrapper (fmt.Errorf's %w, errors.Join) puts
// around those. An error with none of these is a cause, and reads as
// InternalMessage. "" for nil.
func ErrorMessage(err error) string {
	if err == nil {
		return ""
	}
	if msg, ok := message(err); ok {
		return msg
	}
	return InternalMessage
}

// message is err's words for people, and whether it has any.
func message(err error) (string, bool) {
	switch e := err.(type) {
	case *Error:
		return e.Message, true
	case *LockedError, *NotFoundError, *FrozenError:
		return err.Error(), true
	case interface{ Unwrap() []error }:
		return around(err.Error(), e.Unwrap())
	case interface{ Unwrap() error }:
		if inner := e.Unwrap(); inner != nil {
			return around(err.Error(), []error{inner})
		}
	}
	return "", false
}

// around is a wrapper's text with each wrapped error's text replaced by its
// message; wrapped errors without words read as InternalMessage. It has no
// words when none of the wrapped errors has: the wrapper's own words then
// describe a cause ("dial tcp 10.0.0.1:22: …").
func around(text string, wrapped []error) (string, bool) {
	var msgs, texts []string
	words := false
	for _, w := range wrapped {
		if w == nil {
			continue
		}
		msg, ok := message(w)
		if !ok {
			msg = InternalMessage
		}
		words = words || ok
		msgs, texts = append(msgs, msg), append(texts, w.Error())
	}
	if !words {
		return "", false
	}
	if text == strings.Join(texts, "\n") { // errors.Join
		return strings.Join(once(msgs), "\n"), true
	}
	var b strings.Builder
	for i, t := range texts {
		at := strings.Index(text, t)
		if at < 0 {
			// A wrapper whose text does not hold its parts': say the parts.
			return strings.Join(once(msgs), "; "), true
		}
		b.WriteString(text[:at])
		b.WriteString(msgs[i])
		text = text[at+len(t):]
	}
	b.WriteString(text)
	return b.String(), true
}

// once drops repeats of InternalMessage: several causes read as one.
func once(msgs []string) []string {
	var out []string
	seen := false
	for _, m := range msgs {
		if m == InternalMessage {
			if seen {
				continue
			}
			seen = true
		}
		out = append(out, m)
	}
	return out
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
