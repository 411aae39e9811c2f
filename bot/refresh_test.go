package bot_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/greenlight/greenlight/bot"
	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/refresh"
)

// fakeRefresher records bakes asked for; err, when set, refuses them.
type fakeRefresher struct {
	calls     []string
	err       error
	schedules []refresh.Status
}

var _ bot.Refresher = (*fakeRefresher)(nil)

func (f *fakeRefresher) RunNow(_ context.Context, service, trigger string) (refresh.Event, error) {
	f.calls = append(f.calls, "refresh "+service+" by "+trigger)
	if f.err != nil {
		return refresh.Event{}, f.err
	}
	return refresh.Event{Service: service, Kind: refresh.EventStarted, BuildID: "20261123-1000", Trigger: trigger}, nil
}

func (f *fakeRefresher) Schedules(context.Context) []refresh.Status { return f.schedules }

func testSchedules() []refresh.Status {
	return []refresh.Status{
		{Service: "ns", Schedule: "0 4 * * *", Next: time.Date(2026, 11, 24, 4, 0, 0, 0, time.UTC),
			LastRun: time.Date(2026, 11, 23, 4, 0, 0, 0, time.UTC), LastResult: "ok: ns-golden-20261123-0400", LastImage: "private/123"},
		{Service: "web"},
		{Service: "api-gw", Schedule: "@daily", Next: time.Date(2026, 11, 23, 13, 0, 0, 0, time.UTC),
			LastRun: time.Date(2026, 11, 22, 9, 30, 0, 0, time.UTC), LastResult: "failed: quota", Running: true,
			Started: time.Date(2026, 11, 23, 9, 54, 0, 0, time.UTC), Keep: 3, AutoDeploy: true},
		{Service: "mail", Schedule: "@weekly", Next: time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)},
	}
}

const wantSchedule = `Image refresh (times in UTC):
ns: schedule 0 4 * * *
  next: 2026-11-24 04:00 UTC (in 18h)
  last: 2026-11-23 04:00 UTC (6h ago) — ok: ns-golden-20261123-0400 (private/123)
web: no schedule (bakes only on /deploy refresh web)
  last: never baked
api-gw: schedule @daily, keeps 3 images, deploys each new image — baking now (for 6m)
  next: 2026-11-23 13:00 UTC (in 3h)
  last: 2026-11-22 09:30 UTC (24h30m ago) — failed: quota
mail: schedule @weekly
  next: 2026-11-23 09:00 UTC (due now)
  last: never baked`

func TestRouterRefreshAndSchedule(t *testing.T) {
	policy := map[string]bot.Policy{"ns": {Deployers: []string{"U_DEP"}, Approvers: []string{"U_APP"}, Admins: []string{"U_ADMIN"}, Channels: []string{"C_OPS"}}}
	running := deployer.Errorf(deployer.CodeConflict, "a bake of ns is already running (build 20261123-0400, started 04:00 UTC)")
	tests := []struct {
		name        string
		user        string
		channel     string
		text        string
		noRefresher bool
		err         error            // what RunNow answers
		schedules   []refresh.Status // what Schedules answers
		wantCalls   string           // RunNow calls, joined by "; "
		wantText    string           // the whole reply, or a fragment with wantPart
		wantPart    bool
		wantLevel   bot.Level
		wantAudit   string // the audited action, "" for none
	}{
		{name: "deployer bakes", user: "U_DEP", channel: "C_OPS", text: "/deploy refresh ns",
			wantCalls: "refresh ns by U_DEP", wantText: "Baking a new image of ns; it is announced here when it is ready, with the command that deploys it.", wantLevel: bot.LevelInfo, wantAudit: "refresh"},
		{name: "admin bakes", user: "U_ADMIN", channel: "C_OPS", text: "refresh ns",
			wantCalls: "refresh ns by U_ADMIN", wantText: "Baking a new image of ns; it is announced here when it is ready, with the command that deploys it.", wantLevel: bot.LevelInfo, wantAudit: "refresh"},
		{name: "stranger refused", user: "U_X", channel: "C_OPS", text: "/deploy refresh ns",
			wantText: "not allowed: you are not among the deployers of ns", wantLevel: bot.LevelError, wantAudit: "refused refresh"},
		{name: "approver is no deployer", user: "U_APP", channel: "C_OPS", text: "/deploy refresh ns",
			wantText: "not allowed: you are not among the deployers of ns", wantLevel: bot.LevelError, wantAudit: "refused refresh"},
		{name: "wrong channel", user: "U_DEP", channel: "C_RANDOM", text: "/deploy refresh ns",
			wantText: "not allowed: ns commands are not allowed in this channel; use C_OPS", wantLevel: bot.LevelError, wantAudit: "refused refresh"},
		{name: "already running", user: "U_DEP", channel: "C_OPS", text: "/deploy refresh ns", err: running,
			wantCalls: "refresh ns by U_DEP", wantText: running.Error(), wantLevel: bot.LevelError, wantAudit: "refused refresh"},
		{name: "not configured", user: "U_DEP", channel: "C_OPS", text: "/deploy refresh ns", noRefresher: true,
			wantText: "image refresh is not configured in this greenlight", wantLevel: bot.LevelError},
		{name: "unknown service", user: "U_DEP", channel: "C_OPS", text: "/deploy refresh web",
			wantText: `unknown service "web"; known services: ns`, wantPart: true, wantLevel: bot.LevelError},
		{name: "no service", user: "U_DEP", channel: "C_OPS", text: "/deploy refresh",
			wantText: "refresh needs a service: ns", wantPart: true, wantLevel: bot.LevelError},
		{name: "schedule for anyone", user: "U_X", channel: "C_RANDOM", text: "/deploy schedule", schedules: testSchedules(),
			wantText: wantSchedule, wantLevel: bot.LevelInfo},
		{name: "schedule empty", user: "U_X", text: "/deploy schedule", schedules: []refresh.Status{},
			wantText: "No service has image refresh configured.", wantLevel: bot.LevelInfo},
		{name: "schedule not configured", user: "U_X", text: "/deploy schedule", noRefresher: true,
			wantText: "image refresh is not configured in this greenlight", wantLevel: bot.LevelError},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fd := &fakeDeployer{services: []string{"ns"}}
			fr := &fakeRefresher{err: tc.err, schedules: tc.schedules}
			audit := &auditLog{}
			r := &bot.Router{Deployer: fd, Auth: &bot.Authorizer{Policies: policy}, Audit: audit, Refresher: fr}
			if tc.noRefresher {
				r.Refresher = nil
			}
			reply := r.Handle(context.Background(), bot.Request{User: tc.user, Channel: tc.channel, Text: tc.text})
			if got := strings.Join(fr.calls, "; "); got != tc.wantCalls {
				t.Errorf("RunNow calls %q, want %q", got, tc.wantCalls)
			}
			if len(fd.calls) != 0 {
				t.Errorf("deployer calls %q, want none", fd.calls)
			}
			if len(reply.Messages) != 1 {
				t.Fatalf("%d messages, want 1", len(reply.Messages))
			}
			m := reply.Messages[0]
			if tc.wantPart && !strings.Contains(m.Text, tc.wantText) || !tc.wantPart && m.Text != tc.wantText {
				t.Errorf("reply:\n%s\nwant:\n%s", m.Text, tc.wantText)
			}
			if m.Level != tc.wantLevel || !m.Ephemeral || m.User != tc.user {
				t.Errorf("reply %+v, want an ephemeral %s for %s", m, tc.wantLevel, tc.user)
			}
			var actions []string
			for _, e := range audit.entries {
				actions = append(actions, e.Action)
				if e.User != tc.user || e.Service != "ns" {
					t.Errorf("audit entry %+v, want user %s on ns", e, tc.user)
				}
			}
			if got := strings.Join(actions, "; "); got != tc.wantAudit {
				t.Errorf("audited %q, want %q", got, tc.wantAudit)
			}
		})
	}
}

func TestSpanAndTook(t *testing.T) {
	spans := []struct {
		d    time.Duration
		want string
	}{
		{0, "under a minute"}, {29 * time.Second, "under a minute"}, {31 * time.Second, "1m"}, {42 * time.Minute, "42m"},
		{3 * time.Hour, "3h"}, {3*time.Hour + 5*time.Minute, "3h5m"}, {47 * time.Hour, "47h"},
		{48 * time.Hour, "2d"}, {52 * time.Hour, "2d4h"},
	}
	for _, tc := range spans {
		if got := bot.Span(tc.d); got != tc.want {
			t.Errorf("Span(%s) = %q, want %q", tc.d, got, tc.want)
		}
	}
	tooks := []struct {
		d    time.Duration
		want string
	}{
		{3 * time.Minute, "3m"}, {6*time.Minute + 12*time.Second + 300*time.Millisecond, "6m12s"}, {10 * time.Second, "10s"},
		{time.Hour, "1h"}, {time.Hour + 2*time.Minute, "1h2m"}, {time.Hour + 2*time.Second, "1h0m2s"}, {20 * time.Millisecond, "20ms"},
	}
	for _, tc := range tooks {
		if got := bot.Took(tc.d); got != tc.want {
			t.Errorf("Took(%s) = %q, want %q", tc.d, got, tc.want)
		}
	}
}

// chatLog is a bot.Chat that keeps what it was sent.
type chatLog struct {
	mu   sync.Mutex
	sent []bot.Message
}

func (c *chatLog) Send(_ context.Context, m bot.Message) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sent = append(c.sent, m)
	return nil
}

func TestNotifierAnnouncesRefresh(t *testing.T) {
	img := deployer.Image{ID: "private/123", Label: "ns-golden-20261123-0400", Golden: true}
	pruned := []deployer.Image{{ID: "private/100", Label: "ns-golden-20261101-0400"}, {ID: "private/99"}}
	started := refresh.Event{Service: "ns", Kind: refresh.EventStarted, BuildID: "20261123-0400", Trigger: "schedule", Base: "linode/debian12"}
	finished := refresh.Event{Service: "ns", Kind: refresh.EventFinished, BuildID: "20261123-0400", Trigger: "schedule", Base: "linode/debian12",
		Image: img, Took: 6*time.Minute + 12*time.Second + 400*time.Millisecond, Pruned: pruned}
	autoDeployed := finished
	autoDeployed.DeployID, autoDeployed.Pruned = 12, nil
	failed := refresh.Event{Service: "ns", Kind: refresh.EventFailed, BuildID: "20261123-0400", Trigger: "U0ALICE1", Base: "linode/debian12",
		Took: 3 * time.Minute, Err: &deployer.Error{Code: deployer.CodeFailed, Message: "the base image is gone", Err: errors.New("packer exited 1")}}
	byHand := started
	byHand.Trigger, byHand.BuildID, byHand.Channel = "U0ALICE1", "20261123-1012", "C_DNS"
	notDeployed := finished
	notDeployed.Pruned, notDeployed.Took = nil, 0
	notDeployed.PruneErr = deployer.Wrapf(&deployer.Error{Code: deployer.CodeForbidden, Message: "Linode refused: unauthorized", Err: errors.New("[403] Forbidden")},
		"could not delete old image private/98")
	notDeployed.DeployErr = deployer.Wrapf(deployer.Errorf(deployer.CodeConflict, "ns is locked by bob"), "could not start a deploy of private/123")

	deployNow := bot.Action{ID: bot.ActionDeployNow, Label: "Deploy now", Style: "primary", Value: "ns image=private/123",
		Confirm: "Start a deploy of ns with image ns-golden-20261123-0400?"}
	tests := []struct {
		name    string
		ev      refresh.Event
		want    string
		level   bot.Level
		user    string
		actions []bot.Action
	}{
		{"started", started, "Baking a new image of ns from linode/debian12 (build 20261123-0400, scheduled)", bot.LevelInfo, "", nil},
		{"started by hand", byHand, "Baking a new image of ns from linode/debian12 (build 20261123-1012, asked for by U0ALICE1)", bot.LevelInfo, "U0ALICE1", nil},
		{"finished, not deployed", notDeployed, "Image private/123 ready: ns-golden-20261123-0400\nSome old images were not pruned: could not delete old image private/98: Linode refused: unauthorized\n" +
			"No deploy was started with it: could not start a deploy of private/123: ns is locked by bob", bot.LevelSuccess, "", []bot.Action{deployNow}},
		{"finished", finished, "Image private/123 ready: ns-golden-20261123-0400, built in 6m12s; pruned 2 old images\n• ns-golden-20261101-0400\n• private/99",
			bot.LevelSuccess, "", []bot.Action{deployNow}},
		{"finished and deployed", autoDeployed, "Image private/123 ready: ns-golden-20261123-0400, built in 6m12s\nDeploy #12 started with it; it waits for approval.",
			bot.LevelSuccess, "", nil},
		{"failed", failed, "Baking an image of ns failed after 3m: the base image is gone", bot.LevelError, "U0ALICE1", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			chat := &chatLog{}
			n := &bot.Notifier{Chats: []bot.Chat{chat}}
			n.Refresh(context.Background(), tc.ev)
			if len(chat.sent) != 1 {
				t.Fatalf("%d messages, want 1", len(chat.sent))
			}
			m := chat.sent[0]
			if m.Text != tc.want || m.Level != tc.level || m.User != tc.user {
				t.Errorf("message %s %q for %q\nwant %s %q for %q", m.Level, m.Text, m.User, tc.level, tc.want, tc.user)
			}
			if m.Key != "refresh/ns/"+tc.ev.BuildID || m.Thread != "" || m.Ephemeral || m.DeployID != 0 || m.Service != "ns" {
				t.Errorf("message %+v: want a top-level announcement keyed by its build", m)
			}
			if got := m.Refs[deployer.RefChannel]; got != tc.ev.Channel {
				t.Errorf("announced in %q, want %q (the job's channel; \"\" is the default)", got, tc.ev.Channel)
			}
			if len(m.Actions) != len(tc.actions) || len(m.Actions) == 1 && m.Actions[0] != tc.actions[0] {
				t.Errorf("actions %+v, want %+v", m.Actions, tc.actions)
			}
		})
	}
	// One key per build: a build's outcome replaces its started message,
	// and another build gets its own.
	if bot.RefreshMessage(started).Key != bot.RefreshMessage(finished).Key || bot.RefreshMessage(started).Key != bot.RefreshMessage(failed).Key {
		t.Error("a build's events do not share a message key")
	}
	if bot.RefreshMessage(started).Key == bot.RefreshMessage(byHand).Key {
		t.Error("two builds share a message key")
	}
}

func TestParseDeployNowValue(t *testing.T) {
	tests := []struct {
		value, service, image string
		err                   string
	}{
		{"ns image=private/123", "ns", "private/123", ""},
		{"api-gw image=linode/debian12", "api-gw", "linode/debian12", ""},
		{"ns image=Local/NS-1", "ns", "Local/NS-1", ""},
		{"", "", "", `malformed Deploy now button value "": want SERVICE image=ID`},
		{"ns#7", "", "", "want SERVICE image=ID"},
		{"ns image=", "", "", `"" is not an image ID`},
		{" image=private/123", "", "", `"" is not a service name`},
		{"NS image=private/123", "", "", `"NS" is not a service name`},
		{"ns  image=private/123", "", "", `"ns " is not a service name`},
		{"ns image=private/123 ", "", "", `"private/123 " is not an image ID`},
		{"ns image=a image=b", "", "", "is not an image ID"},
		{"ns image=../etc", "", "", `"../etc" is not an image ID`},
		{"ns image=--auto-approve", "", "", "is not an image ID"},
		{"ns --image private/123", "", "", "want SERVICE image=ID"},
		{"ns image=" + strings.Repeat("a", 200), "", "", `"aaaa`},
	}
	for _, tc := range tests {
		service, image, err := bot.ParseDeployNowValue(tc.value)
		switch {
		case tc.err == "" && err != nil:
			t.Errorf("ParseDeployNowValue(%q): %v", tc.value, err)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseDeployNowValue(%q) = %q, %q, %v; want an error with %q", tc.value, service, image, err, tc.err)
		case service != tc.service || image != tc.image:
			t.Errorf("ParseDeployNowValue(%q) = %q, %q; want %q, %q", tc.value, service, image, tc.service, tc.image)
		}
		if err != nil && len(err.Error()) > 300 {
			t.Errorf("ParseDeployNowValue(%q): error of %d bytes echoes the whole value", tc.value, len(err.Error()))
		}
	}
}

func FuzzParseDeployNowValue(f *testing.F) {
	for _, s := range []string{"ns image=private/123", "ns image=", "image=x", "ns image=a image=b", "ns#7", "", "ns image=é", "a-b image=x:y@z+1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		service, image, err := bot.ParseDeployNowValue(v)
		if err != nil {
			if service != "" || image != "" {
				t.Fatalf("%q: error %v but %q, %q", v, err, service, image)
			}
			return
		}
		if got := bot.DeployNowValue(service, image); got != v {
			t.Fatalf("%q parsed to %q, %q, which encode as %q", v, service, image, got)
		}
		if s2, i2, err := bot.ParseDeployNowValue(bot.DeployNowValue(service, image)); err != nil || s2 != service || i2 != image {
			t.Fatalf("round trip of %q: %q %q %v", v, s2, i2, err)
		}
	})
}

func TestDeployNowClick(t *testing.T) {
	policy := map[string]bot.Policy{"ns": {Deployers: []string{"U_DEP"}, Approvers: []string{"U_APP"}}}
	tests := []struct {
		name, user, value string
		wantCall          string // "" = the deployer is not asked
		wantText          string
	}{
		{"deployer", "U_DEP", "ns image=private/123", "deploy ns by U_DEP --image private/123", "Started deploy #7 of ns."},
		{"approver is no deployer", "U_APP", "ns image=private/123", "", "not allowed: you are not among the deployers of ns"},
		{"stranger", "U_X", "ns image=private/123", "", "not allowed: you are not among the deployers of ns"},
		{"malformed", "U_DEP", "ns#7", "", "malformed Deploy now button value"},
		{"bad image", "U_DEP", "ns image=../x", "", `"../x" is not an image ID`},
		{"unknown service", "U_DEP", "web image=private/123", "", `unknown service "web"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			fd := &fakeDeployer{services: []string{"ns"}}
			audit := &auditLog{}
			r := &bot.Router{Deployer: fd, Auth: &bot.Authorizer{Policies: policy}, Audit: audit}
			reply := r.HandleClick(context.Background(), bot.Click{User: tc.user, Channel: "C_OPS", Action: bot.ActionDeployNow, Value: tc.value})
			if got := strings.Join(fd.calls, "; "); got != tc.wantCall {
				t.Errorf("calls %q, want %q", got, tc.wantCall)
			}
			if m := reply.Messages[0]; !strings.Contains(m.Text, tc.wantText) || !m.Ephemeral || m.User != tc.user {
				t.Errorf("reply %+v, want %q", m, tc.wantText)
			}
			if tc.wantCall == "" {
				return
			}
			// The same request a typed /deploy ns --image private/123 makes:
			// no approval skipped, the channel kept for the deploy's thread.
			req := fd.requests[0]
			want := deployer.Request{Service: "ns", User: tc.user, Options: deployer.Options{Image: "private/123"},
				Refs: map[string]string{deployer.RefChannel: "C_OPS"}}
			if req.Service != want.Service || req.User != want.User || req.Options != want.Options || req.Reason != "" || req.Refs[deployer.RefChannel] != "C_OPS" {
				t.Errorf("request %+v, want %+v", req, want)
			}
			typed := &fakeDeployer{services: []string{"ns"}}
			(&bot.Router{Deployer: typed, Auth: &bot.Authorizer{Policies: policy}}).Handle(context.Background(),
				bot.Request{User: tc.user, Channel: "C_OPS", Text: bot.DeployNowCommand("ns", "private/123")})
			if got := strings.Join(typed.calls, "; "); got != tc.wantCall {
				t.Errorf("typed %q: calls %q, want the click's %q", bot.DeployNowCommand("ns", "private/123"), got, tc.wantCall)
			}
		})
	}
	if got := bot.DeployNowCommand("ns", "private/123"); got != "/deploy ns --image private/123" {
		t.Errorf("DeployNowCommand = %q", got)
	}
	if got := bot.DeployNowCommand("status", "private/123"); got != "/deploy deploy status --image private/123" {
		t.Errorf("DeployNowCommand for a service named like a verb = %q", got)
	}
}
