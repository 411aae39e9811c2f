package linode

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/greenlight/greenlight/deployer"
	"github.com/linode/linodego"
)

// maxRetryWait caps the backoff between two attempts.
const maxRetryWait = 30 * time.Second

// operation describes one thing the Cloud asks of Linode, for its errors.
type operation struct {
	what string // "create ns1-7", said in errors: "gave up trying to create ns1-7"
	// values are what the request sent, by API field name, so a refusal
	// can name them: "type g6-nanode-9". Never secrets: a refused root_pass
	// or user data is named by its field alone.
	values map[string]string
}

// call runs fn until it succeeds, fails for good, or the retry budget is
// spent. 429 waits as long as Retry-After says; 5xx, "Linode busy." and
// dropped connections back off exponentially from RetryWait. Any other
// error is returned at once. A failure is a *deployer.Error: its message
// says in plain words what Linode refused, its Err is linodego's error (or
// ctx's), which whoever handles the failure logs.
func (c *Cloud) call(ctx context.Context, op operation, fn func(context.Context) error) error {
	start := c.clock.Now()
	for attempt := 1; ; attempt++ {
		actx := ctx
		if attempt > 1 {
			actx = withRetry(ctx)
		}
		err := fn(actx)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return interrupted(op, ctx.Err())
		}
		if _, ok := errors.AsType[*deployer.Error](err); ok {
			return err // already said in plain words, by fn
		}
		status := statusOf(err)
		wait, retry := c.retryWait(err, status, attempt)
		if !retry {
			return refused(op, status, err)
		}
		elapsed := c.clock.Now().Sub(start)
		if elapsed+wait > c.opts.RetryBudget {
			return gaveUp(op, status, attempt, elapsed, err)
		}
		c.log.Warn("Linode call failed; retrying", "op", op.what, "status", status, "attempt", attempt,
			"wait", wait, "err", err)
		select {
		case <-c.clock.After(wait):
		case <-ctx.Done():
			return interrupted(op, ctx.Err())
		}
	}
}

// retryWait says whether err is worth another attempt, and after how long.
func (c *Cloud) retryWait(err error, status, attempt int) (time.Duration, bool) {
	backoff := min(c.opts.RetryWait<<min(attempt-1, 20), maxRetryWait)
	switch {
	case status == http.StatusTooManyRequests:
		if d, ok := retryAfter(err, c.clock.Now()); ok {
			return max(d, c.opts.RetryWait), true // at least what Linode asks, never a tight loop
		}
		return backoff, true
	case status == http.StatusRequestTimeout || status >= 500:
		return backoff, true
	case status == http.StatusBadRequest && strings.Contains(apiMessage(err), "Linode busy."):
		return backoff, true
	case status < 100 && transientNetwork(apiMessage(err)):
		return backoff, true
	}
	return 0, false
}

// statusOf is the HTTP status of a linodego error; below 100 for errors
// that never got an answer (linodego's codes 0–3), 0 for other errors.
func statusOf(err error) int {
	if e, ok := errors.AsType[*linodego.Error](err); ok {
		return e.Code
	}
	if e, ok := errors.AsType[linodego.Error](err); ok {
		return e.Code
	}
	return 0
}

func apiMessage(err error) string {
	if e, ok := errors.AsType[*linodego.Error](err); ok {
		return e.Message
	}
	if e, ok := errors.AsType[linodego.Error](err); ok {
		return e.Message
	}
	return err.Error()
}

// retryAfter reads the Retry-After header of a linodego error: seconds, or
// an HTTP date.
func retryAfter(err error, now time.Time) (time.Duration, bool) {
	e, ok := errors.AsType[*linodego.Error](err)
	if !ok || e.Response == nil {
		return 0, false
	}
	v := strings.TrimSpace(e.Response.Header.Get("Retry-After"))
	if v == "" {
		return 0, false
	}
	if secs, err := strconv.Atoi(v); err == nil && secs >= 0 {
		return time.Duration(secs) * time.Second, true
	}
	if at, err := http.ParseTime(v); err == nil {
		return max(at.Sub(now), 0), true
	}
	return 0, false
}

// transientNetwork reports whether a transport error is worth retrying.
func transientNetwork(msg string) bool {
	for _, s := range []string{"connection refused", "connection reset", "broken pipe", "EOF",
		"i/o timeout", "TLS handshake timeout", "server closed idle connection", "http2: "} {
		if strings.Contains(msg, s) {
			return true
		}
	}
	return false
}

// interrupted says that ctx ended op; errors.Is finds ctx's error.
func interrupted(op operation, ctxErr error) error {
	return &deployer.Error{Code: deployer.CodeFailed, Message: "gave up trying to " + op.what + ": " + ctxWords(ctxErr), Err: ctxErr}
}

func ctxWords(err error) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "the time allowed ran out"
	}
	return "the deploy was stopped"
}

// refused says what Linode refused, from its errors[] reasons.
func refused(op operation, status int, err error) error {
	if status < 100 {
		return &deployer.Error{Code: deployer.CodeFailed, Message: fmt.Sprintf("could not %s on Linode: %s", op.what, apiMessage(err)), Err: err}
	}
	code := deployer.CodeFailed
	hint := ""
	switch status {
	case http.StatusBadRequest, http.StatusUnprocessableEntity:
		code = deployer.CodeInvalid
	case http.StatusUnauthorized:
		code, hint = deployer.CodeForbidden, " (is LINODE_TOKEN right?)"
	case http.StatusForbidden:
		code, hint = deployer.CodeForbidden, " (the token may lack the scope this needs, e.g. linodes:read_write)"
	case http.StatusNotFound:
		code = deployer.CodeNotFound
	case http.StatusConflict:
		code = deployer.CodeConflict
	}
	var fields, general []string
	for _, r := range reasons(apiMessage(err)) {
		reason := lowerFirst(r.Reason)
		switch v := op.values[r.Field]; {
		case r.Field == "":
			general = append(general, reason)
		case v != "" && v != "0":
			fields = append(fields, fmt.Sprintf("%s %s: %s", r.Field, v, reason))
		default:
			fields = append(fields, fmt.Sprintf("%s: %s", r.Field, reason))
		}
	}
	var msg string
	switch {
	case len(general) == 0 && len(fields) > 0:
		msg = "Linode refused " + strings.Join(fields, "; ")
	case len(general)+len(fields) > 0:
		msg = "Linode refused to " + op.what + ": " + strings.Join(append(general, fields...), "; ")
	default:
		msg = fmt.Sprintf("Linode refused to %s: %d %s", op.what, status, strings.ToLower(http.StatusText(status)))
	}
	return &deployer.Error{Code: code, Message: msg + hint, Err: err}
}

// reasons parses linodego's rendering of an errors[] list:
// "[field] reason; reason; …".
func reasons(msg string) []linodego.APIErrorReason {
	var out []linodego.APIErrorReason
	for part := range strings.SplitSeq(msg, "; ") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		r := linodego.APIErrorReason{Reason: part}
		if rest, ok := strings.CutPrefix(part, "["); ok {
			if field, reason, ok := strings.Cut(rest, "] "); ok {
				r = linodego.APIErrorReason{Field: field, Reason: reason}
			}
		}
		out = append(out, r)
	}
	return out
}

// lowerFirst lower-cases a reason's first letter to fit mid-sentence,
// unless it starts an acronym ("SSH key …").
func lowerFirst(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	if n == 0 || !unicode.IsUpper(r) {
		return s
	}
	if next, _ := utf8.DecodeRuneInString(s[n:]); unicode.IsUpper(next) {
		return s
	}
	return string(unicode.ToLower(r)) + s[n:]
}

func gaveUp(op operation, status, attempts int, elapsed time.Duration, err error) error {
	var why string
	switch {
	case status == http.StatusTooManyRequests:
		why = "Linode kept asking greenlight to slow down (429)"
	case status >= 100:
		why = fmt.Sprintf("Linode kept failing (%d: %s)", status, strings.Join(reasonTexts(apiMessage(err)), "; "))
	default:
		why = "greenlight could not reach Linode (" + apiMessage(err) + ")"
	}
	tries := fmt.Sprintf("%d attempts", attempts)
	if attempts == 1 {
		tries = "1 attempt"
	}
	return &deployer.Error{Code: deployer.CodeFailed, Message: fmt.Sprintf("%s while trying to %s: gave up after %s in %s",
		why, op.what, tries, roughly(elapsed)), Err: err}
}

func reasonTexts(msg string) []string {
	var out []string
	for _, r := range reasons(msg) {
		out = append(out, r.Reason)
	}
	return out
}
