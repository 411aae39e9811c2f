package slack

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/greenlight/greenlight/bot"
	"github.com/greenlight/greenlight/bot/slack/slacktest"
	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/internal/eventually"
)

// homeDeployer is a bot.Deployer with a fixed state for the App Home.
type homeDeployer struct {
	bot.Deployer
	status  deployer.Status
	history []deployer.Deployment
}

func (h homeDeployer) Services() []string { return []string{"ns"} }
func (h homeDeployer) Now() time.Time     { return time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC) }
func (h homeDeployer) Status(_ context.Context, s string) (deployer.Status, error) {
	return h.status, nil
}
func (h homeDeployer) History(context.Context, string, int) ([]deployer.Deployment, error) {
	return h.history, nil
}

// TestHomeViewRollbackWindow: once traffic has moved, the App Home says
// where it is first, then what is kept for a rollback and until when.
func TestHomeViewRollbackWindow(t *testing.T) {
	api := slacktest.New(t)
	client := api.Client()
	since := time.Date(2026, 11, 23, 9, 58, 0, 0, time.UTC)
	old := []deployer.Server{{Name: "ns1-0"}, {Name: "ns2-0"}}
	next := []deployer.Server{{Name: "ns1-5"}, {Name: "ns2-5"}}
	active := deployer.Deployment{ID: 5, Service: "ns", Requester: "U123", Phase: deployer.PhaseRollbackWindow, Traffic: deployer.Traffic{Target: deployer.TrafficNext, Settled: true, NextTouched: true},
		Steps: deployer.NewSteps(), Created: since, Old: old, Next: next, ImageOld: "local/ns-v1", ImageNew: "local/ns-v3",
		RollbackDeadline: since.Add(15 * time.Minute)}
	for i := range active.Steps[:9] {
		active.Steps[i].Status = deployer.StatusDone
	}
	d := homeDeployer{status: deployer.Status{Service: "ns",
		Live:   deployer.ServiceState{Image: "local/ns-v1", Servers: old},
		Lock:   &deployer.Lock{Service: "ns", DeployID: 5, Holder: "U123", Since: since},
		Active: &active}}
	h := NewHome(client, d, nil)
	if err := h.Opened(t.Context(), "U555"); err != nil {
		t.Fatal(err)
	}
	published := api.CallsTo("views.publish")[0]
	body := strings.NewReplacer(`\u003c`, "<", `\u003e`, ">").Replace(published.View)
	want := "*ns*\\nTraffic on ns1-5, ns2-5, `local/ns-v3`\\nKept for rollback until 10:13 UTC: ns1-0, ns2-0, `local/ns-v1`\\n"
	if !strings.Contains(body, want) {
		t.Errorf("published view lacks %q:\n%s", want, body)
	}
	if !strings.Contains(body, "In flight: deploy #5 by <@U123>, live, in its rollback window") {
		t.Errorf("published view lacks the deploy in flight:\n%s", body)
	}
}

func TestHomeView(t *testing.T) {
	api := slacktest.New(t)
	client := api.Client()
	since := time.Date(2026, 11, 23, 9, 58, 0, 0, time.UTC)
	active := deployer.Deployment{ID: 7, Service: "ns", Requester: "U123", Phase: deployer.PhaseAwaitingApproval,
		Steps: deployer.NewSteps(), Created: since}
	for i := range active.Steps[:6] {
		active.Steps[i].Status = deployer.StatusDone
	}
	d := homeDeployer{
		status: deployer.Status{Service: "ns",
			Live:   deployer.ServiceState{Image: "local/ns-v1", Servers: []deployer.Server{{Name: "ns1-6"}, {Name: "ns2-6"}}},
			Lock:   &deployer.Lock{Service: "ns", DeployID: 7, Holder: "U123", Since: since},
			Active: &active},
		history: []deployer.Deployment{{ID: 6, Requester: "U9", ImageOld: "local/ns-v1", ImageNew: "local/ns-v1", Phase: deployer.PhaseSucceeded,
			Created: since.Add(-time.Hour), Finished: since.Add(-time.Hour + 3*time.Second)}},
	}
	h := NewHome(client, d, nil)
	if err := h.Opened(t.Context(), "U555"); err != nil {
		t.Fatal(err)
	}
	if n := len(api.CallsTo("views.publish")); n != 1 {
		t.Fatalf("views.publish called %d times, want 1", n)
	}
	published := api.CallsTo("views.publish")[0]
	body := strings.NewReplacer(`\u003c`, "<", `\u003e`, ">").Replace(published.View)
	if published.User != "U555" {
		t.Errorf("published for %q, want U555", published.User)
	}
	for _, want := range []string{`"type":"home"`, "Traffic on ns1-6, ns2-6, `local/ns-v1`",
		"Lock: held by deploy #7 by <@U123> since 09:58 UTC", "In flight: deploy #7 by <@U123>, waiting for approval (2m0s)",
		"• #6 <@U9> local/ns-v1 → local/ns-v1, succeeded in 3s"} {
		if !strings.Contains(body, want) {
			t.Errorf("published view lacks %q:\n%s", want, body)
		}
	}

	// A step change republishes for whoever opened the tab.
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { h.Run(ctx); close(done) }()
	h.Send(ctx, bot.Message{Checklist: &bot.Checklist{Title: "x"}})
	eventually.True(t, "the view republished", func() bool { return len(api.CallsTo("views.publish")) >= 2 })
	cancel()
	<-done
	if n := len(api.CallsTo("views.publish")); n != 2 {
		t.Fatalf("views.publish called %d times after a step change, want 2", n)
	}
}

func TestGroupsCacheAndFallback(t *testing.T) {
	api := slacktest.New(t)
	client := api.Client()
	api.SetUserGroup("S1", "U1", "U2")
	api.SetUserGroup("S2", "U1", "U2")
	now := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	g := NewGroups(client, time.Minute, func() time.Time { return now })
	for range 3 {
		m, err := g.Members(t.Context(), "S1")
		if err != nil || strings.Join(m, ",") != "U1,U2" {
			t.Fatalf("members %v, err %v", m, err)
		}
	}
	if n, _ := api.Counts("usergroups.users.list"); n != 1 {
		t.Fatalf("usergroups.users.list called %d times within the TTL, want 1", n)
	}
	now = now.Add(2 * time.Minute)
	api.SetFault(func(slacktest.Attempt) *slacktest.Fault { return slacktest.Error("fatal_error") })
	if m, err := g.Members(t.Context(), "S1"); err != nil || len(m) != 2 {
		t.Fatalf("with Slack failing, the cached members should serve: %v %v", m, err)
	}
	if _, err := g.Members(t.Context(), "S2"); err == nil || !strings.Contains(err.Error(), "user group S2") {
		t.Fatalf("unknown group with Slack failing: err %v", err)
	}
	auth := &bot.Authorizer{Policies: map[string]bot.Policy{"ns": {Approvers: []string{"S1"}}}, Groups: g}
	api.SetFault(nil)
	now = now.Add(2 * time.Minute)
	if err := auth.Allow(t.Context(), "U2", "", "ns", bot.PermApprove); err != nil {
		t.Fatalf("U2 is in approver group S1: %v", err)
	}
	if err := auth.Allow(t.Context(), "U3", "", "ns", bot.PermApprove); err == nil {
		t.Fatalf("U3 is not in S1 but was allowed")
	}
}

// TestHomeViewFreezes: the App Home shows the freezes in force and the next one.
func TestHomeViewFreezes(t *testing.T) {
	api := slacktest.New(t)
	client := api.Client()
	end := time.Date(2027, 1, 2, 7, 0, 0, 0, time.UTC)
	next := deployer.Freeze{Name: "year-end", Reason: "holidays", Start: time.Date(2027, 12, 23, 17, 0, 0, 0, time.UTC), End: time.Date(2028, 1, 2, 7, 0, 0, 0, time.UTC)}
	d := homeDeployer{status: deployer.Status{Service: "ns",
		Live:       deployer.ServiceState{Image: "local/ns-v1", Servers: []deployer.Server{{Name: "ns1-0"}}},
		Frozen:     []deployer.Freeze{{Name: "year-end", Reason: "holidays", End: end}},
		NextFreeze: &next}}
	h := NewHome(client, d, nil)
	if err := h.Opened(t.Context(), "U555"); err != nil {
		t.Fatal(err)
	}
	body := api.CallsTo("views.publish")[0].View
	for _, want := range []string{
		"Frozen (year-end: holidays) until Sat 2 Jan 07:00 UTC, set in the config",
		"Next freeze: year-end: holidays from Thu 23 Dec 17:00 UTC until Sun 2 Jan 07:00 UTC",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("published view lacks %q:\n%s", want, body)
		}
	}
}
