package bot_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/greenlight/greenlight/bot"
	"github.com/greenlight/greenlight/deployer"
)

// TestStatusTextSaysWhereTrafficIsFirst reads /deploy status as a person
// does at each stage of a deploy.
func TestStatusTextSaysWhereTrafficIsFirst(t *testing.T) {
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	old := []deployer.Server{{Name: "ns1-0", Addr: "127.0.0.1:5301"}, {Name: "ns2-0", Addr: "127.0.0.1:5302"}}
	next := []deployer.Server{{Name: "ns1-5", Addr: "127.0.0.1:5311"}, {Name: "ns2-5", Addr: "127.0.0.1:5312"}}
	live := deployer.ServiceState{Service: "ns", Image: "local/ns-v1", Servers: old}
	lock := &deployer.Lock{Service: "ns", DeployID: 5, Holder: "alice", Since: at}
	deploy := func(phase deployer.Phase, done int, edit func(*deployer.Deployment)) *deployer.Deployment {
		d := &deployer.Deployment{ID: 5, Service: "ns", Requester: "alice", Phase: phase, Steps: deployer.NewSteps(), Created: at,
			ImageOld: "local/ns-v1", ImageNew: "local/ns-v3", Old: old, Next: next,
			ApprovalDeadline: at.Add(30 * time.Minute), RollbackDeadline: at.Add(20 * time.Minute)}
		for i := range d.Steps[:done] {
			d.Steps[i].Status = deployer.StatusDone
		}
		if done < len(d.Steps) {
			d.Steps[done].Status = deployer.StatusRunning
		}
		if done >= 7 { // the switch has begun: the intent is recorded before it
			d.Traffic = deployer.Traffic{Target: deployer.TrafficNext, NextTouched: true, Settled: done > 7}
		}
		if edit != nil {
			edit(d)
		}
		return d
	}
	failed := deploy(deployer.PhaseFailed, 5, func(d *deployer.Deployment) {
		st := d.Step(deployer.StepCheckNext)
		st.Status, st.Detail = deployer.StatusFailed, "the next set failed its checks: ns1-5, ns2-5: SOA example.test. over UDP+TCP → SERVFAIL"
		d.Error = "Check the next set answers failed: " + st.Detail
		d.Finished = at.Add(3 * time.Second)
	})
	tests := []struct {
		name string
		st   deployer.Status
		want string
	}{
		{"idle", deployer.Status{Service: "ns", Live: live},
			"ns: traffic on ns1-0 (127.0.0.1:5301), ns2-0 (127.0.0.1:5302), image local/ns-v1\n" +
				"  lock: free\n"},
		{"checking the next set", deployer.Status{Service: "ns", Live: live, Lock: lock, Active: deploy(deployer.PhaseRunning, 5, nil)},
			"ns: traffic on ns1-0 (127.0.0.1:5301), ns2-0 (127.0.0.1:5302), image local/ns-v1\n" +
				"  lock: held by deploy #5 by alice since 10:00:00 UTC\n" +
				"  in flight: deploy #5 by alice, local/ns-v1 → local/ns-v3, at Check the next set answers, for 2m0s\n"},
		{"waiting for approval", deployer.Status{Service: "ns", Live: live, Lock: lock, Active: deploy(deployer.PhaseAwaitingApproval, 6, nil)},
			"ns: traffic on ns1-0 (127.0.0.1:5301), ns2-0 (127.0.0.1:5302), image local/ns-v1\n" +
				"  lock: held by deploy #5 by alice since 10:00:00 UTC\n" +
				"  in flight: deploy #5 by alice, local/ns-v1 → local/ns-v3, waiting for approval until 10:30:00 UTC, for 2m0s\n"},
		{"switching", deployer.Status{Service: "ns", Live: live, Lock: lock, Active: deploy(deployer.PhaseRunning, 7, nil)},
			"ns: traffic on ns1-0 (127.0.0.1:5301), ns2-0 (127.0.0.1:5302), image local/ns-v1\n" +
				"  ! deploy #5 is switching traffic from ns1-0, ns2-0 to ns1-5, ns2-5; queries may reach either set\n" +
				"  lock: held by deploy #5 by alice since 10:00:00 UTC\n" +
				"  in flight: deploy #5 by alice, local/ns-v1 → local/ns-v3, at Switch traffic, for 2m0s\n"},
		{"rollback window", deployer.Status{Service: "ns", Live: live, Lock: lock, Active: deploy(deployer.PhaseRollbackWindow, 9, nil)},
			"ns: traffic on ns1-5 (127.0.0.1:5311), ns2-5 (127.0.0.1:5312), image local/ns-v3 (deploy #5)\n" +
				"  kept for rollback until 10:20:00 UTC: ns1-0, ns2-0, image local/ns-v1 (/deploy rollback ns switches back)\n" +
				"  lock: held by deploy #5 by alice since 10:00:00 UTC\n" +
				"  in flight: deploy #5 by alice, local/ns-v1 → local/ns-v3, live, in its rollback window, for 2m0s\n"},
		{"rolling back", deployer.Status{Service: "ns", Live: live, Lock: lock, Active: deploy(deployer.PhaseRollbackWindow, 9, func(d *deployer.Deployment) {
			d.Rollback = &deployer.Decision{Kind: deployer.DecisionRollback, By: "bob", At: at.Add(time.Minute)}
		})},
			"ns: traffic on ns1-5 (127.0.0.1:5311), ns2-5 (127.0.0.1:5312), image local/ns-v3 (deploy #5)\n" +
				"  ! bob asked for a rollback at 10:01:00 UTC; traffic is moving back to ns1-0, ns2-0\n" +
				"  kept for rollback until 10:20:00 UTC: ns1-0, ns2-0, image local/ns-v1\n" +
				"  lock: held by deploy #5 by alice since 10:00:00 UTC\n" +
				"  in flight: deploy #5 by alice, local/ns-v1 → local/ns-v3, live, in its rollback window, for 2m0s\n"},
		{"needs attention", deployer.Status{Service: "ns", Live: live, Lock: lock, Active: deploy(deployer.PhaseNeedsAttention, 8, func(d *deployer.Deployment) {
			d.Step(deployer.StepCheckLive).Status = deployer.StatusFailed
			d.Traffic = deployer.Traffic{Target: deployer.TrafficOld, NextTouched: true}
			d.Attention = &deployer.Attention{Since: at, Reason: "switching traffic back to ns1-0, ns2-0 failed too: NodeBalancer 500"}
		})},
			"ns: traffic on ns1-0 (127.0.0.1:5301), ns2-0 (127.0.0.1:5302), image local/ns-v1\n" +
				"  ! deploy #5 is moving traffic back to ns1-0, ns2-0; queries may still reach ns1-5, ns2-5\n" +
				"  ✗ Deploy #5 of ns needs attention: switching traffic back to ns1-0, ns2-0 failed too: NodeBalancer 500. " +
				"Traffic was being moved to the old set (ns1-0, ns2-0) and may still reach the new set (ns1-5, ns2-5). " +
				"Both sets and the lock are kept. Check which set answers, then end it with /deploy resolve ns --to old (keep ns1-0, ns2-0) or /deploy resolve ns --to new (keep ns1-5, ns2-5).\n" +
				"  lock: held by deploy #5 by alice since 10:00:00 UTC\n" +
				"  in flight: deploy #5 by alice, local/ns-v1 → local/ns-v3, needs attention, for 2m0s\n"},
		{"last failed", deployer.Status{Service: "ns", Live: live, Last: failed},
			"ns: traffic on ns1-0 (127.0.0.1:5301), ns2-0 (127.0.0.1:5302), image local/ns-v1\n" +
				"  lock: free\n" +
				"  last: #5 2026-11-23 10:00 ns by alice, local/ns-v1 → local/ns-v3, failed in 3s at Check the next set answers: " +
				"the next set failed its checks: ns1-5, ns2-5: SOA example.test. over UDP+TCP → SERVFAIL\n"},
		{"nothing yet", deployer.Status{Service: "ns"}, "ns: no live set yet\n  lock: free\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := bot.StatusText(tc.st, at.Add(2*time.Minute)); got != tc.want {
				t.Errorf("status:\n%s\nwant:\n%s", got, tc.want)
			}
		})
	}
}

func TestHistoryLines(t *testing.T) {
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	old := []deployer.Server{{Name: "ns1-0"}, {Name: "ns2-0"}}
	next := []deployer.Server{{Name: "ns1-5"}, {Name: "ns2-5"}}
	live := deployer.Deployment{ID: 5, Service: "ns", Requester: "alice", Phase: deployer.PhaseRollbackWindow, Created: at, Traffic: deployer.Traffic{Target: deployer.TrafficNext, Settled: true, NextTouched: true},
		ImageOld: "local/ns-v1", ImageNew: "local/ns-v3", Old: old, Next: next, RollbackDeadline: at.Add(15 * time.Minute)}
	done := live
	done.ID, done.Phase, done.Finished = 4, deployer.PhaseRolledBack, at.Add(-time.Minute)
	done.Created = at.Add(-2 * time.Minute)
	r := &bot.Router{Deployer: &fakeDeployer{services: []string{"ns"}, history: []deployer.Deployment{live, done}}}
	reply := r.Handle(context.Background(), bot.Request{User: "U1", Text: "/deploy history ns"})
	want := "#5 2026-11-23 10:00 ns by alice, local/ns-v1 → local/ns-v3, live, in its rollback window, 0s so far: traffic on ns1-5, ns2-5; ns1-0, ns2-0 kept until 10:15:00 UTC\n" +
		"#4 2026-11-23 09:58 ns by alice, local/ns-v1 → local/ns-v3, rolled back in 1m0s"
	if got := reply.Messages[0].Text; got != want {
		t.Errorf("history:\n%s\nwant:\n%s", got, want)
	}
}

// TestRepliesAgreeInNumber: "1 server answers", "2 servers answer".
func TestRepliesAgreeInNumber(t *testing.T) {
	one := []deployer.Server{{Name: "ns1-0"}}
	two := []deployer.Server{{Name: "ns1-0"}, {Name: "ns2-0"}}
	for _, tc := range []struct {
		old, next []deployer.Server
		rollback  string
		approval  string
	}{
		{one, []deployer.Server{{Name: "ns1-1"}}, "Rolling back deploy #7 of ns: checking that ns1-0 still answers, then switching traffic back.",
			"Deploy #7 of ns is ready to switch: local/ns-v1 → local/ns-v2 (ns1-1 replaces ns1-0)."},
		{two, []deployer.Server{{Name: "ns1-1"}, {Name: "ns2-1"}}, "Rolling back deploy #7 of ns: checking that ns1-0, ns2-0 still answer, then switching traffic back.",
			"Deploy #7 of ns is ready to switch: local/ns-v1 → local/ns-v2 (ns1-1, ns2-1 replace ns1-0, ns2-0)."},
	} {
		d := deployer.Deployment{ID: 7, Service: "ns", Old: tc.old, Next: tc.next, ImageOld: "local/ns-v1", ImageNew: "local/ns-v2", Steps: deployer.NewSteps()}
		r := &bot.Router{Deployer: &rollbackDeployer{fakeDeployer: fakeDeployer{services: []string{"ns"}}, d: d}}
		if got := r.Handle(context.Background(), bot.Request{User: "U1", Text: "/deploy rollback ns"}).Messages[0].Text; got != tc.rollback {
			t.Errorf("rollback reply %q, want %q", got, tc.rollback)
		}
		msgs := (&bot.Notifier{}).Messages(deployer.Event{Kind: deployer.EventApproval, Deployment: d})
		if got, _, _ := strings.Cut(msgs[1].Text, "\n"); got != tc.approval {
			t.Errorf("approval %q, want %q", got, tc.approval)
		}
	}
}

type rollbackDeployer struct {
	fakeDeployer
	d deployer.Deployment
}

func (r *rollbackDeployer) Rollback(context.Context, string, uint64, string) (deployer.Deployment, error) {
	return r.d, nil
}
