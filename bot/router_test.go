package bot_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/greenlight/greenlight/bot"
	"github.com/greenlight/greenlight/deployer"
)

// fakeDeployer records what the router asked; each method can be replaced.
type fakeDeployer struct {
	calls    []string
	requests []deployer.Request
	deploy   func(deployer.Request) (deployer.Deployment, error)
	approve  func(service string, id uint64, user string) (deployer.Deployment, error)
	status   deployer.Status
	history  []deployer.Deployment
	services []string
}

var _ bot.Deployer = (*fakeDeployer)(nil)

func (f *fakeDeployer) Services() []string { return f.services }
func (f *fakeDeployer) Deploy(_ context.Context, r deployer.Request) (deployer.Deployment, error) {
	call := "deploy " + r.Service + " by " + r.User
	if r.Options.Image != "" {
		call += " --image " + r.Options.Image
	}
	f.calls = append(f.calls, call)
	f.requests = append(f.requests, r)
	if f.deploy != nil {
		return f.deploy(r)
	}
	return deployer.Deployment{ID: 7, Service: r.Service}, nil
}
func (f *fakeDeployer) Approve(_ context.Context, s string, id uint64, u string) (deployer.Deployment, error) {
	f.calls = append(f.calls, "approve "+s+" by "+u)
	if f.approve != nil {
		return f.approve(s, id, u)
	}
	return deployer.Deployment{ID: id, Service: s}, nil
}
func (f *fakeDeployer) Abort(_ context.Context, s string, id uint64, u, _ string) (deployer.Deployment, error) {
	f.calls = append(f.calls, "abort "+s+" by "+u)
	return deployer.Deployment{ID: id, Service: s}, nil
}
func (f *fakeDeployer) Rollback(_ context.Context, s string, id uint64, u string) (deployer.Deployment, error) {
	f.calls = append(f.calls, "rollback "+s+" by "+u)
	return deployer.Deployment{ID: id, Service: s}, nil
}
func (f *fakeDeployer) Retire(_ context.Context, s string, id uint64, u string) (deployer.Deployment, error) {
	f.calls = append(f.calls, "retire "+s+" by "+u)
	return deployer.Deployment{ID: id, Service: s}, nil
}
func (f *fakeDeployer) Freeze(_ context.Context, req deployer.FreezeRequest) (deployer.Freeze, error) {
	f.calls = append(f.calls, "freeze "+req.Service+" by "+req.User)
	return deployer.Freeze{Service: req.Service, Reason: req.Reason, End: req.Until, By: req.User}, nil
}
func (f *fakeDeployer) Unfreeze(_ context.Context, s, u string) (deployer.Freeze, error) {
	f.calls = append(f.calls, "unfreeze "+s+" by "+u)
	return deployer.Freeze{Service: s, By: "ops", Reason: "r"}, nil
}
func (f *fakeDeployer) Lock(_ context.Context, s, u, r string) (deployer.Lock, error) {
	f.calls = append(f.calls, "lock "+s+" by "+u)
	return deployer.Lock{Service: s, Holder: u, Reason: r}, nil
}
func (f *fakeDeployer) Unlock(_ context.Context, s, u string, force bool) (deployer.Lock, error) {
	f.calls = append(f.calls, "unlock "+s+" by "+u)
	return deployer.Lock{Service: s, Holder: u}, nil
}
func (f *fakeDeployer) Resolve(_ context.Context, s string, id uint64, u string, to deployer.TrafficTarget) (deployer.Deployment, error) {
	f.calls = append(f.calls, fmt.Sprintf("resolve %s #%d --to %s by %s", s, id, to, u))
	return deployer.Deployment{ID: 4, Service: s, Old: []deployer.Server{{Name: "ns1-3"}}, Next: []deployer.Server{{Name: "ns1-4"}}}, nil
}
func (f *fakeDeployer) Status(_ context.Context, s string) (deployer.Status, error) {
	st := f.status
	st.Service = s
	return st, nil
}
func (f *fakeDeployer) History(context.Context, string, int) ([]deployer.Deployment, error) {
	return f.history, nil
}
func (f *fakeDeployer) Deployment(_ context.Context, id uint64) (deployer.Deployment, error) {
	if id == 7 {
		return deployer.Deployment{ID: 7, Service: "ns"}, nil
	}
	return deployer.Deployment{}, &deployer.NotFoundError{What: "deployment #1"}
}
func (f *fakeDeployer) Now() time.Time { return time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC) }

type auditLog struct{ entries []deployer.AuditEntry }

func (a *auditLog) Audit(e deployer.AuditEntry) error { a.entries = append(a.entries, e); return nil }

func TestRouter(t *testing.T) {
	policy := map[string]bot.Policy{"ns": {Deployers: []string{"U_DEP"}, Approvers: []string{"U_APP"}, Admins: []string{"U_ADMIN"}, Channels: []string{"C_OPS"}}}
	tests := []struct {
		name      string
		user      string
		channel   string
		text      string
		auth      map[string]bot.Policy
		wantCalls string // the deployer calls, joined by "; "
		wantText  string // a fragment of the reply
		wantLevel bot.Level
		audited   bool
	}{
		{"deploy", "U1", "", "/deploy ns --reason 'new image'", nil, "deploy ns by U1", "Started deploy #7 of ns.", bot.LevelInfo, false},
		{"typo", "U1", "", "/deploy stauts", nil, "", "did you mean status?", bot.LevelError, false},
		{"unknown service", "U1", "", "/deploy web", nil, "", `"web"`, bot.LevelError, false},
		{"help", "U1", "", "/deploy help", nil, "", "/deploy history", bot.LevelInfo, false},
		{"refresh not configured", "U1", "", "/deploy refresh ns", nil, "", "image refresh is not configured in this greenlight", bot.LevelError, false},
		{"schedule not configured", "U1", "", "/deploy schedule", nil, "", "image refresh is not configured in this greenlight", bot.LevelError, false},
		{"deployer allowed", "U_DEP", "C_OPS", "/deploy ns", policy, "deploy ns by U_DEP", "Started", bot.LevelInfo, false},
		{"deployer refused", "U_X", "C_OPS", "/deploy ns", policy, "", "not allowed: you are not among the deployers of ns", bot.LevelError, true},
		{"wrong channel", "U_DEP", "C_RANDOM", "/deploy ns", policy, "", "not allowed in this channel; use C_OPS", bot.LevelError, true},
		{"approver allowed", "U_APP", "C_OPS", "/deploy approve ns", policy, "approve ns by U_APP", "Approved deploy", bot.LevelSuccess, false},
		{"deployer cannot approve", "U_DEP", "C_OPS", "approve", policy, "", "not among the approvers of ns", bot.LevelError, true},
		{"admin may approve", "U_ADMIN", "C_OPS", "/deploy approve ns", policy, "approve ns by U_ADMIN", "Approved", bot.LevelSuccess, false},
		{"force needs admin", "U_DEP", "C_OPS", "/deploy unlock ns --force", policy, "", "not an admin of ns", bot.LevelError, true},
		{"admin forces", "U_ADMIN", "C_OPS", "/deploy unlock ns --force", policy, "unlock ns by U_ADMIN", "is unlocked", bot.LevelInfo, false},
		{"status needs nothing", "U_X", "C_RANDOM", "/deploy status ns", policy, "", "ns: no live set yet", bot.LevelInfo, false},
		{"bare rollback", "U1", "", "rollback", nil, "rollback ns by U1", "Rolling back", bot.LevelWarning, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fd := &fakeDeployer{services: []string{"ns"}}
			audit := &auditLog{}
			r := &bot.Router{Deployer: fd, Auth: &bot.Authorizer{Policies: tc.auth}, Audit: audit}
			reply := r.Handle(context.Background(), bot.Request{User: tc.user, Channel: tc.channel, Text: tc.text})
			if got := strings.Join(fd.calls, "; "); got != tc.wantCalls {
				t.Errorf("calls %q, want %q", got, tc.wantCalls)
			}
			if len(reply.Messages) != 1 {
				t.Fatalf("%d messages, want 1", len(reply.Messages))
			}
			m := reply.Messages[0]
			if !strings.Contains(m.Text, tc.wantText) || m.Level != tc.wantLevel || !m.Ephemeral || m.User != tc.user {
				t.Errorf("reply %+v; want level %s with %q", m, tc.wantLevel, tc.wantText)
			}
			if got := len(audit.entries) > 0; got != tc.audited {
				t.Errorf("audited %v, want %v (%+v)", got, tc.audited, audit.entries)
			}
		})
	}
}

func TestRouterDeployErrorsReachThePerson(t *testing.T) {
	fd := &fakeDeployer{services: []string{"ns"}, deploy: func(deployer.Request) (deployer.Deployment, error) {
		return deployer.Deployment{}, &deployer.LockedError{Lock: deployer.Lock{Service: "ns", DeployID: 3, Holder: "bob", Since: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)}, Step: deployer.StepApproval}
	}}
	r := &bot.Router{Deployer: fd}
	reply := r.Handle(context.Background(), bot.Request{User: "alice", Text: "/deploy ns"})
	want := `ns is locked by deploy #3 by bob since 2026-11-23 09:00:00 UTC, now at Approval; /deploy status ns says more`
	if got := reply.Messages[0].Text; got != want {
		t.Fatalf("reply %q, want %q", got, want)
	}
}

func TestHandleClick(t *testing.T) {
	tests := []struct {
		action, value string
		wantCall      string
		wantText      string
	}{
		{bot.ActionApprove, "ns#7", "approve ns by U1", "Approved deploy #7"},
		{bot.ActionAbort, "ns#7", "abort ns by U1", "Aborting deploy #7"},
		{bot.ActionRollback, "ns#7", "rollback ns by U1", "Rolling back deploy #7"},
		{bot.ActionApprove, "ns#x", "", "malformed deploy number"},
		{bot.ActionApprove, "ns", "", "malformed button value"},
		{"explode", "ns#7", "", `unknown button "explode"`},
	}
	for _, tc := range tests {
		fd := &fakeDeployer{services: []string{"ns"}}
		r := &bot.Router{Deployer: fd}
		reply := r.HandleClick(context.Background(), bot.Click{User: "U1", Action: tc.action, Value: tc.value})
		if got := strings.Join(fd.calls, "; "); got != tc.wantCall {
			t.Errorf("%s %s: calls %q, want %q", tc.action, tc.value, got, tc.wantCall)
		}
		if !strings.Contains(reply.Messages[0].Text, tc.wantText) {
			t.Errorf("%s %s: reply %q, want %q", tc.action, tc.value, reply.Messages[0].Text, tc.wantText)
		}
	}
}

func TestApproveRefusalIsShown(t *testing.T) {
	fd := &fakeDeployer{services: []string{"ns"}, approve: func(string, uint64, string) (deployer.Deployment, error) {
		return deployer.Deployment{}, deployer.Errorf(deployer.CodeConflict, "deploy #7 was already approved by bob at 14:03:00 UTC")
	}}
	r := &bot.Router{Deployer: fd}
	reply := r.HandleClick(context.Background(), bot.Click{User: "alice", Action: bot.ActionApprove, Value: "ns#7"})
	if m := reply.Messages[0]; !m.Ephemeral || m.Text != "deploy #7 was already approved by bob at 14:03:00 UTC" {
		t.Fatalf("reply %+v", m)
	}
}

func FuzzParseActionValue(f *testing.F) {
	for _, s := range []string{"ns#7", "ns#", "#7", "ns#18446744073709551615", "ns#-1", "a#b#c", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		service, id, err := bot.ParseActionValue(v)
		if err != nil {
			return
		}
		if service == "" || id == 0 {
			t.Fatalf("%q parsed to %q #%d", v, service, id)
		}
		if s2, id2, err := bot.ParseActionValue(bot.ActionValue(service, id)); err != nil || s2 != service || id2 != id {
			t.Fatalf("round trip of %q: %q #%d %v", v, s2, id2, err)
		}
	})
}

// TestAFailedCommandShowsTheMessageNotTheCause: what the deployer refuses
// with reaches the person in its words only; a cause under them goes to
// the log, once, and a refusal that is all words is not logged.
func TestAFailedCommandShowsTheMessageNotTheCause(t *testing.T) {
	const secret = "bolt: token=s3cr3t"
	since := time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		err    error
		want   string
		logged bool // whether the cause is logged
	}{
		{name: "a refusal", err: deployer.Errorf(deployer.CodeConflict, "deploy #3 already ended: succeeded"),
			want: "deploy #3 already ended: succeeded"},
		{name: "a message with a cause", err: &deployer.Error{Code: deployer.CodeNotFound, Message: `image "v9" does not exist for ns`, Err: errors.New(secret)},
			want: `image "v9" does not exist for ns`, logged: true},
		{name: "words around a message with a cause", err: fmt.Errorf("plan: %w", &deployer.Error{Code: deployer.CodeFailed, Message: "the zone files do not parse", Err: errors.New(secret)}),
			want: "plan: the zone files do not parse", logged: true},
		{name: "a cause alone", err: fmt.Errorf("read the live set: %w", errors.New(secret)),
			want: deployer.InternalMessage, logged: true},
		{name: "a held lock", err: &deployer.LockedError{Lock: deployer.Lock{Service: "ns", Holder: "bob", Since: since}},
			want: "ns is locked by bob since 2026-11-23 09:00:00 UTC"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs strings.Builder
			fd := &fakeDeployer{services: []string{"ns"}, deploy: func(deployer.Request) (deployer.Deployment, error) { return deployer.Deployment{}, tt.err }}
			r := &bot.Router{Deployer: fd, Log: slog.New(slog.NewTextHandler(&logs, nil))}
			reply := r.Handle(context.Background(), bot.Request{User: "alice", Text: "/deploy ns"})
			if len(reply.Messages) != 1 || reply.Messages[0].Text != tt.want || reply.Messages[0].Level != bot.LevelError {
				t.Fatalf("reply %+v, want %q", reply.Messages, tt.want)
			}
			if got := bot.ErrorText(tt.err); got != tt.want {
				t.Errorf("ErrorText = %q, want %q", got, tt.want)
			}
			want := 0
			if tt.logged {
				want = 1
			}
			if n := strings.Count(logs.String(), "s3cr3t"); n != want {
				t.Errorf("the cause is logged %d times, want %d:\n%s", n, want, logs.String())
			}
			if tt.logged && !strings.Contains(logs.String(), "user=alice") {
				t.Errorf("the log does not say who asked:\n%s", logs.String())
			}
		})
	}
}
