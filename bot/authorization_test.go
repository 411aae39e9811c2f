package bot_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/greenlight/greenlight/bot"
	"github.com/greenlight/greenlight/deployer"
)

// fleet is a deployer of two services, ns and web, with deploys in flight
// given by phase; it records every call that would change something.
type fleet struct {
	active map[string]*deployer.Deployment // by service
	calls  []string
}

func newFleet(active ...deployer.Deployment) *fleet {
	f := &fleet{active: map[string]*deployer.Deployment{}}
	for _, d := range active {
		f.active[d.Service] = &d
	}
	return f
}

func (f *fleet) Services() []string { return []string{"ns", "web"} }
func (f *fleet) Deploy(_ context.Context, r deployer.Request) (deployer.Deployment, error) {
	f.calls = append(f.calls, fmt.Sprintf("deploy %s auto-approve=%v", r.Service, r.Options.AutoApprove))
	return deployer.Deployment{ID: 9, Service: r.Service}, nil
}
func (f *fleet) decide(verb, s string, id uint64, u string) (deployer.Deployment, error) {
	f.calls = append(f.calls, fmt.Sprintf("%s %s #%d by %s", verb, s, id, u))
	return deployer.Deployment{ID: id, Service: s}, nil
}
func (f *fleet) Approve(_ context.Context, s string, id uint64, u string) (deployer.Deployment, error) {
	return f.decide("approve", s, id, u)
}
func (f *fleet) Abort(_ context.Context, s string, id uint64, u, _ string) (deployer.Deployment, error) {
	return f.decide("abort", s, id, u)
}
func (f *fleet) Rollback(_ context.Context, s string, id uint64, u string) (deployer.Deployment, error) {
	return f.decide("rollback", s, id, u)
}
func (f *fleet) Retire(_ context.Context, s string, id uint64, u string) (deployer.Deployment, error) {
	return f.decide("retire", s, id, u)
}
func (f *fleet) Freeze(_ context.Context, req deployer.FreezeRequest) (deployer.Freeze, error) {
	f.calls = append(f.calls, "freeze "+req.Service)
	return deployer.Freeze{Service: req.Service, Reason: req.Reason, By: req.User}, nil
}
func (f *fleet) Unfreeze(_ context.Context, s, u string) (deployer.Freeze, error) {
	f.calls = append(f.calls, "unfreeze "+s)
	return deployer.Freeze{Service: s, By: u}, nil
}
func (f *fleet) Lock(_ context.Context, s, u, r string) (deployer.Lock, error) {
	f.calls = append(f.calls, "lock "+s)
	return deployer.Lock{Service: s, Holder: u}, nil
}
func (f *fleet) Unlock(_ context.Context, s, u string, _ bool) (deployer.Lock, error) {
	f.calls = append(f.calls, "unlock "+s)
	return deployer.Lock{Service: s, Holder: u}, nil
}
func (f *fleet) Resolve(_ context.Context, s string, id uint64, u string, to deployer.TrafficTarget) (deployer.Deployment, error) {
	f.calls = append(f.calls, fmt.Sprintf("resolve %s #%d --to %s by %s", s, id, to, u))
	return deployer.Deployment{ID: id, Service: s}, nil
}
func (f *fleet) Status(_ context.Context, s string) (deployer.Status, error) {
	st := deployer.Status{Service: s}
	if d := f.active[s]; d != nil {
		cp := *d
		st.Active = &cp
	}
	return st, nil
}
func (f *fleet) History(context.Context, string, int) ([]deployer.Deployment, error) { return nil, nil }
func (f *fleet) Deployment(_ context.Context, id uint64) (deployer.Deployment, error) {
	for _, d := range f.active {
		if d.ID == id {
			return *d, nil
		}
	}
	return deployer.Deployment{}, &deployer.NotFoundError{What: fmt.Sprintf("deployment #%d", id)}
}
func (f *fleet) Now() time.Time { return time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC) }

// TestAuthorizationHoldsOnEveryPath: a person who may approve and deploy ns
// only, or who is not in ns's channel, changes nothing of web (or of ns
// from elsewhere) by any path a command can take, and is told why.
func TestAuthorizationHoldsOnEveryPath(t *testing.T) {
	policies := map[string]bot.Policy{
		"ns":  {Deployers: []string{"U_NS"}, Approvers: []string{"U_NS"}, Channels: []string{"C_NS"}},
		"web": {Deployers: []string{"U_WEB", "U_WEBDEP"}, Approvers: []string{"U_WEB"}, Channels: []string{"C_WEB"}},
	}
	webWaits := deployer.Deployment{ID: 7, Service: "web", Phase: deployer.PhaseAwaitingApproval}
	webLive := deployer.Deployment{ID: 7, Service: "web", Phase: deployer.PhaseRollbackWindow}
	nsWaits := deployer.Deployment{ID: 3, Service: "ns", Phase: deployer.PhaseAwaitingApproval}

	type path struct {
		text  string     // typed (a slash command, the shell, or a mention without the mention)
		click *bot.Click // or a button
	}
	typed := func(s string) path { return path{text: s} }
	button := func(action, value string) path { return path{click: &bot.Click{Action: action, Value: value}} }
	tests := []struct {
		name    string
		active  []deployer.Deployment
		user    string
		channel string
		path    path
		want    string // the reply
	}{
		{"typed approve of another service", []deployer.Deployment{webWaits}, "U_NS", "C_WEB", typed("/deploy approve web"),
			"not allowed: you are not among the approvers of web"},
		{"bare approve resolves to web", []deployer.Deployment{webWaits}, "U_NS", "C_WEB", typed("/deploy approve"),
			"not allowed: you are not among the approvers of web"},
		{"bare approve #7", []deployer.Deployment{webWaits}, "U_NS", "C_WEB", typed("approve #7"),
			"not allowed: you are not among the approvers of web"},
		{"bare rollback #7", []deployer.Deployment{webLive}, "U_NS", "C_WEB", typed("/deploy rollback #7"),
			"not allowed: you are not among the approvers of web"},
		{"bare abort", []deployer.Deployment{webWaits}, "U_NS", "C_WEB", typed("/deploy abort"),
			"not allowed: you are not among the approvers of web"},
		{"bare abort in the wrong channel", []deployer.Deployment{webWaits}, "U_WEB", "C_NS", typed("abort"),
			"not allowed: web commands are not allowed in this channel; use C_WEB"},
		{"mention: approve #7", []deployer.Deployment{webWaits, nsWaits}, "U_NS", "C_WEB", typed("approve #7"),
			"not allowed: you are not among the approvers of web"},
		{"approve button", []deployer.Deployment{webWaits}, "U_NS", "C_WEB", button(bot.ActionApprove, "web#7"),
			"not allowed: you are not among the approvers of web"},
		{"abort button", []deployer.Deployment{webWaits}, "U_NS", "C_WEB", button(bot.ActionAbort, "web#7"),
			"not allowed: you are not among the approvers of web"},
		{"rollback button", []deployer.Deployment{webLive}, "U_NS", "C_WEB", button(bot.ActionRollback, "web#7"),
			"not allowed: you are not among the approvers of web"},
		{"retire button", []deployer.Deployment{webLive}, "U_NS", "C_WEB", button(bot.ActionRetire, "web#7"),
			"not allowed: you are not among the approvers of web"},
		{"bare retire #7", []deployer.Deployment{webLive}, "U_NS", "C_WEB", typed("/deploy retire #7"),
			"not allowed: you are not among the approvers of web"},
		{"retire by a deployer", []deployer.Deployment{webLive}, "U_WEBDEP", "C_WEB", typed("/deploy retire web"),
			"not allowed: you are not among the approvers of web"},
		{"freeze by an approver", nil, "U_WEB", "C_WEB", typed("/deploy freeze web --reason x"),
			"not allowed: you are not an admin of web, so you cannot freeze or unfreeze its deploys"},
		{"freeze --all by an admin of one", nil, "U_NS", "C_WEB", typed("/deploy freeze --all --reason x"),
			"not allowed: ns commands are not allowed in this channel; use C_NS"},
		{"unfreeze by an approver", nil, "U_WEB", "C_WEB", typed("/deploy unfreeze web"),
			"not allowed: you are not an admin of web, so you cannot freeze or unfreeze its deploys"},
		{"override by a deployer", nil, "U_WEBDEP", "C_WEB", typed("/deploy web --override-freeze"),
			"not allowed: you are not an admin of web, so you cannot deploy it during a freeze (--override-freeze)"},
		{"button from the wrong channel", []deployer.Deployment{webWaits}, "U_WEB", "C_NS", button(bot.ActionApprove, "web#7"),
			"not allowed: web commands are not allowed in this channel; use C_WEB"},
		{"deploy of another service", nil, "U_NS", "C_WEB", typed("/deploy web"),
			"not allowed: you are not among the deployers of web"},
		{"--auto-approve by a deployer who may not approve", nil, "U_WEBDEP", "C_WEB", typed("/deploy web --auto-approve"),
			"not allowed: --auto-approve approves the deploy as you: you are not among the approvers of web"},
		{"Deploy now button", nil, "U_NS", "C_WEB", button(bot.ActionDeployNow, bot.DeployNowValue("web", "local/ns-v3")),
			"not allowed: you are not among the deployers of web"},
		{"lock", nil, "U_NS", "C_WEB", typed("/deploy lock web"),
			"not allowed: you are not among the deployers of web"},
		{"unlock --force", nil, "U_WEB", "C_WEB", typed("/deploy unlock web --force"),
			"not allowed: you are not an admin of web, so you cannot force its lock or resolve its deploys"},
		{"resolve by an approver", nil, "U_WEB", "C_WEB", typed("/deploy resolve web --to old"),
			"not allowed: you are not an admin of web, so you cannot force its lock or resolve its deploys"},
		{"resolve of another service's deploy", nil, "U_NS", "C_WEB", typed("/deploy resolve web #7 --to new"),
			"not allowed: you are not an admin of web, so you cannot force its lock or resolve its deploys"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet(tc.active...)
			audit := &auditLog{}
			r := &bot.Router{Deployer: f, Auth: &bot.Authorizer{Policies: policies}, Audit: audit}
			var reply bot.Reply
			if c := tc.path.click; c != nil {
				click := *c
				click.User, click.Channel = tc.user, tc.channel
				reply = r.HandleClick(context.Background(), click)
			} else {
				reply = r.Handle(context.Background(), bot.Request{User: tc.user, Channel: tc.channel, Text: tc.path.text})
			}
			if len(f.calls) > 0 {
				t.Errorf("the deployer was asked: %s", strings.Join(f.calls, "; "))
			}
			if len(reply.Messages) != 1 {
				t.Fatalf("%d messages, want 1", len(reply.Messages))
			}
			if m := reply.Messages[0]; m.Text != tc.want || m.Level != bot.LevelError || !m.Ephemeral {
				t.Errorf("reply %q (%s), want %q", m.Text, m.Level, tc.want)
			}
			if strings.HasPrefix(tc.want, "not allowed") && len(audit.entries) != 1 {
				t.Errorf("%d audit entries, want the refusal recorded once", len(audit.entries))
			}
		})
	}
}

// TestDecisionsActOnTheDeployAuthorised: a bare verb names the deploy it
// was authorised for, so the deployer decides about exactly that one.
func TestDecisionsActOnTheDeployAuthorised(t *testing.T) {
	policies := map[string]bot.Policy{"ns": {Approvers: []string{"U_NS"}}, "web": {Approvers: []string{"U_WEB"}}}
	tests := []struct {
		name   string
		active []deployer.Deployment
		user   string
		text   string
		want   string // the deployer call, or the reply when there is none
	}{
		{"bare approve", []deployer.Deployment{{ID: 3, Service: "ns", Phase: deployer.PhaseAwaitingApproval}}, "U_NS", "approve", "approve ns #3 by U_NS"},
		{"bare approve prefers the waiting deploy",
			[]deployer.Deployment{{ID: 3, Service: "ns", Phase: deployer.PhaseAwaitingApproval}, {ID: 7, Service: "web", Phase: deployer.PhaseRunning}},
			"U_NS", "approve", "approve ns #3 by U_NS"},
		{"bare rollback #7", []deployer.Deployment{{ID: 7, Service: "web", Phase: deployer.PhaseRollbackWindow}}, "U_WEB", "rollback #7", "rollback web #7 by U_WEB"},
		{"bare abort, two in flight",
			[]deployer.Deployment{{ID: 3, Service: "ns", Phase: deployer.PhaseAwaitingApproval}, {ID: 7, Service: "web", Phase: deployer.PhaseRunning}},
			"U_NS", "abort", "2 deploys are in flight: #3 (ns), #7 (web); name the service or the deploy, like /deploy abort ns #3"},
		{"bare approve, none in flight", nil, "U_NS", "approve", "no deploy is in flight"},
		{"approve #8 that does not exist", nil, "U_NS", "approve #8", "deployment #8 not found"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := newFleet(tc.active...)
			r := &bot.Router{Deployer: f, Auth: &bot.Authorizer{Policies: policies}}
			reply := r.Handle(context.Background(), bot.Request{User: tc.user, Text: tc.text})
			got := strings.Join(f.calls, "; ")
			if got == "" {
				got = reply.Messages[0].Text
			}
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}
