package deployer_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/internal/logbuf"
)

// opaque wraps an error under a text of its own, as some libraries do.
type opaque struct{ err error }

func (o opaque) Error() string { return "something went wrong" }
func (o opaque) Unwrap() error { return o.err }

// TestErrorMessageKeepsTheCauseOut: the chat reads an error's message and
// the words wrapped around it, never the cause a message was given for.
func TestErrorMessageKeepsTheCauseOut(t *testing.T) {
	const secret = "token=s3cr3t dial tcp 10.0.0.9:443"
	cause := errors.New(secret)
	refused := &deployer.Error{Code: deployer.CodeInvalid, Message: "Linode refused type g6-nanode-9", Err: cause}
	locked := &deployer.LockedError{Lock: deployer.Lock{Service: "ns", Holder: "alice", Since: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}}
	tests := []struct {
		name string
		err  error
		want string
	}{
		{name: "nil", err: nil, want: ""},
		{name: "message alone", err: deployer.Errorf(deployer.CodeConflict, "deploy #3 already ended"), want: "deploy #3 already ended"},
		{name: "message with a cause", err: refused, want: "Linode refused type g6-nanode-9"},
		{name: "a cause alone", err: cause, want: deployer.InternalMessage},
		{name: "a cause wrapped", err: fmt.Errorf("read deployment #3: %w", cause), want: deployer.InternalMessage},
		{name: "a context error", err: context.DeadlineExceeded, want: deployer.InternalMessage},
		{name: "words around a message", err: fmt.Errorf("create ns1-7: %w", refused), want: "create ns1-7: Linode refused type g6-nanode-9"},
		{name: "words around words around a message", err: fmt.Errorf("not allowed: %w", fmt.Errorf("create ns1-7: %w", refused)),
			want: "not allowed: create ns1-7: Linode refused type g6-nanode-9"},
		{name: "a message around a message", err: &deployer.Error{Message: "the deploy stopped", Err: refused}, want: "the deploy stopped"},
		{name: "several messages", err: errors.Join(fmt.Errorf("create ns1-7: %w", refused), deployer.Errorf(deployer.CodeFailed, "ns2-7 did not start")),
			want: "create ns1-7: Linode refused type g6-nanode-9\nns2-7 did not start"},
		{name: "messages and causes", err: errors.Join(cause, refused, fmt.Errorf("ns3-7: %w", cause)),
			want: deployer.InternalMessage + "\nLinode refused type g6-nanode-9"},
		{name: "causes only, joined", err: errors.Join(cause, cause), want: deployer.InternalMessage},
		{name: "two wrapped in one sentence", err: fmt.Errorf("%w, and then %w", refused, cause),
			want: "Linode refused type g6-nanode-9, and then " + deployer.InternalMessage},
		{name: "a wrapper with a text of its own", err: opaque{refused}, want: "Linode refused type g6-nanode-9"},
		{name: "a lock", err: fmt.Errorf("%w", locked), want: locked.Error()},
		{name: "not found", err: &deployer.NotFoundError{What: "deployment #12"}, want: "deployment #12 not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := deployer.ErrorMessage(tt.err)
			if got != tt.want {
				t.Errorf("ErrorMessage = %q, want %q", got, tt.want)
			}
			if strings.Contains(got, secret) {
				t.Errorf("ErrorMessage = %q: the cause reached the chat", got)
			}
		})
	}
}

// TestErrorKeepsTheCauseForTheLog: Error() is what the log records, cause
// included, and errors.Is/As still reach the cause through wrappers.
func TestErrorKeepsTheCauseForTheLog(t *testing.T) {
	err := fmt.Errorf("create ns1-7: %w", &deployer.Error{Code: deployer.CodeFailed, Message: "gave up trying to create ns1-7", Err: context.DeadlineExceeded})
	if got, want := err.Error(), "create ns1-7: gave up trying to create ns1-7: context deadline exceeded"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Error("errors.Is does not find the cause")
	}
	if got := deployer.ErrorCode(err); got != deployer.CodeFailed {
		t.Errorf("ErrorCode = %q, want %q", got, deployer.CodeFailed)
	}
}

// refusingCloud fails to create the deploy's servers of one role with err.
type refusingCloud struct {
	deployer.Cloud
	role string
	err  error
}

func (c refusingCloud) Create(ctx context.Context, spec deployer.ServerSpec) (deployer.Server, error) {
	if spec.DeployID != 0 && spec.Role == c.role {
		return deployer.Server{}, c.err
	}
	return c.Cloud.Create(ctx, spec)
}

// TestAFailedStepShowsItsMessageAndLogsItsCauseOnce: whatever a cloud's
// error holds beneath its message (a token, an address, a library's words)
// stays out of everything the chat shows of the deploy (its error, the
// checklist's details, the events), and is in the log once, with the deploy
// and the service.
func TestAFailedStepShowsItsMessageAndLogsItsCauseOnce(t *testing.T) {
	const secret = "Authorization: Bearer s3cr3t-t0ken"
	tests := []struct {
		name       string
		err        error
		wantDetail string // the create step's, as the checklist shows it
	}{
		{name: "a refusal said in words",
			err:        &deployer.Error{Code: deployer.CodeForbidden, Message: "Linode refused to create ns1-1: unauthorized", Err: errors.New("[401] " + secret)},
			wantDetail: "create ns1-1: Linode refused to create ns1-1: unauthorized"},
		{name: "words around a refusal",
			err: deployer.Wrapf(&deployer.Error{Code: deployer.CodeFailed, Message: "Linode kept failing (500)", Err: errors.New("[500] " + secret)},
				"gave up on ns1-1"),
			wantDetail: "create ns1-1: gave up on ns1-1: Linode kept failing (500)"},
		{name: "a cause with no words for people",
			err:        fmt.Errorf("POST https://api.linode.com/v4/linode/instances: %s: connection reset by peer", secret),
			wantDetail: deployer.InternalMessage},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := &logbuf.Buffer{}
			h := newHarness(t, func(o *options) {
				o.cloud = func(c deployer.Cloud) deployer.Cloud { return refusingCloud{Cloud: c, role: "ns1", err: tt.err} }
				o.logs = logs
			})
			d := h.deploy("alice", deployer.Options{})
			d = h.waitPhase(d.ID, deployer.PhaseFailed)

			if got := d.Step(deployer.StepCreate).Detail; got != tt.wantDetail {
				t.Errorf("create's detail = %q, want %q", got, tt.wantDetail)
			}
			shown := []string{d.Error}
			for _, st := range d.Steps {
				shown = append(shown, st.Detail)
			}
			for _, kind := range []deployer.EventKind{deployer.EventStep, deployer.EventProblem, deployer.EventInfo, deployer.EventDecision, deployer.EventFinished} {
				shown = append(shown, h.rep.texts(kind, d.ID)...)
			}
			if chat := strings.Join(shown, "\n"); strings.Contains(chat, "s3cr3t") || !strings.Contains(chat, tt.wantDetail) {
				t.Errorf("the chat shows:\n%s\nwant %q and nothing of the cause", chat, tt.wantDetail)
			}

			var lines []string
			for line := range strings.Lines(logs.String()) {
				if strings.Contains(line, "s3cr3t") {
					lines = append(lines, line)
				}
			}
			if len(lines) != 1 {
				t.Fatalf("the cause is in %d log lines, want 1:\n%s", len(lines), strings.Join(lines, ""))
			}
			for _, attr := range []string{fmt.Sprintf("deploy=%d", d.ID), "service=ns"} {
				if !strings.Contains(lines[0], attr) {
					t.Errorf("the log line with the cause does not say %s:\n%s", attr, lines[0])
				}
			}
		})
	}
}
