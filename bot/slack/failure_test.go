package slack

import (
	"strings"
	"testing"
	"time"

	"github.com/greenlight/greenlight/bot"
	"github.com/greenlight/greenlight/deployer"
)

// TestFailureIsSaidOncePerMessage: a failed deploy's thread says why in the
// checklist line only; the reply at the failure and the summary name the
// step by its title and say what was done — traffic, servers, lock — as
// the deploy's Aftermath records it. A record from before Aftermath, with
// what was done at the end of its Error, is said as it is.
func TestFailureIsSaidOncePerMessage(t *testing.T) {
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	why := "the next set failed its checks: ns1-2, ns2-2: SOA example.test. and A ns1.example.test. over UDP+TCP answered SERVFAIL"
	old := []deployer.Server{{Name: "ns1-0"}, {Name: "ns2-0"}}
	next := []deployer.Server{{Name: "ns1-2"}, {Name: "ns2-2"}}
	failedAt := func(step deployer.StepName, aftermath string) deployer.Deployment {
		d := deployer.Deployment{ID: 2, Service: "ns", Requester: "U1", Steps: deployer.NewSteps(), Created: at,
			Finished: at.Add(2800 * time.Millisecond), Phase: deployer.PhaseFailed, Old: old, Next: next, ImageOld: "local/ns-v1", ImageNew: "local/ns-broken"}
		for i := range d.Steps {
			st := &d.Steps[i]
			switch {
			case st.Name == step:
				st.Status, st.Detail = deployer.StatusFailed, why
			case d.Step(step).Status == deployer.StatusFailed:
				st.Status = deployer.StatusSkipped
			default:
				st.Status = deployer.StatusDone
			}
		}
		d.Error = step.Title() + " failed: " + why
		if step == deployer.StepSwitch || step == deployer.StepCheckLive {
			d.Traffic = deployer.Traffic{Target: deployer.TrafficOld, Settled: true, NextTouched: true}
		}
		d.Aftermath = aftermath
		return d
	}
	neverMoved := "Traffic never moved from ns1-0, ns2-0; the next set (ns1-2, ns2-2) was deleted and the lock released."
	backOn := "Traffic is back on ns1-0, ns2-0; the next set (ns1-2, ns2-2) was deleted and the lock released."
	leftBehind := "Traffic is back on ns1-0, ns2-0. Could not delete every server of the next set (delete ns2-2: 503); the reconciler will report them. The lock is released."
	oldShape := failedAt(deployer.StepCheckLive, "")
	oldShape.Error += ". " + backOn
	tests := []struct {
		name    string
		d       deployer.Deployment
		summary string
	}{
		{"before the switch", failedAt(deployer.StepCheckNext, neverMoved),
			"Deploy #2 of ns failed after 2.8s at Check the next set answers (the checklist says why). " + neverMoved},
		{"after the switch", failedAt(deployer.StepCheckLive, backOn),
			"Deploy #2 of ns failed after 2.8s at Check through the load balancer (the checklist says why). " + backOn},
		{"servers left behind", failedAt(deployer.StepSwitch, leftBehind),
			"Deploy #2 of ns failed after 2.8s at Switch traffic (the checklist says why). " + leftBehind},
		{"a record from before Aftermath", oldShape,
			"Deploy #2 of ns failed after 2.8s: Check through the load balancer failed: " + why + ". " + backOn},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := &bot.Notifier{Now: func() time.Time { return at.Add(time.Hour) }}
			var step deployer.StepName
			for _, s := range tc.d.Steps {
				if s.Status == deployer.StatusFailed {
					step = s.Name
				}
			}
			problem := n.Messages(deployer.Event{Kind: deployer.EventProblem, Deployment: tc.d, Step: step, Text: "Deploy #2 failed at step " + string(step) + ": " + why})
			finished := n.Messages(deployer.Event{Kind: deployer.EventFinished, Deployment: tc.d, Step: step, Text: "Deploy #2 of ns failed after 2.8s: " + tc.d.Error})
			if len(problem) != 1 || len(finished) != 2 {
				t.Fatalf("%d and %d messages", len(problem), len(finished))
			}
			wantProblem := "Deploy #2 failed at " + step.Title() + "; cleaning up."
			if got := problem[0].Text; got != wantProblem {
				t.Errorf("problem %q, want %q", got, wantProblem)
			}
			if got := finished[1].Text; got != tc.summary {
				t.Errorf("summary:\n%s\nwant:\n%s", got, tc.summary)
			}
			for _, m := range append(problem, finished...) {
				text := strings.Join(blockTexts(t, Blocks(m)), "\n")
				if c := strings.Count(text, "SERVFAIL"); c > 1 {
					t.Errorf("the finding is said %d times in one message:\n%s", c, text)
				}
				for _, id := range []string{"check-next", "check-live", "step switch", "rollback-window", "wait-running"} {
					if strings.Contains(text, id) {
						t.Errorf("message speaks of %q:\n%s", id, text)
					}
				}
			}
			if text := strings.Join(blockTexts(t, Blocks(finished[0])), "\n"); !strings.Contains(text, "SERVFAIL") {
				t.Errorf("the checklist does not say why:\n%s", text)
			}
		})
	}
}

// TestStatusReachesSlackTrafficFirst: /deploy status in Slack reads the
// same as in the terminal: where traffic is, then what is kept for rollback.
func TestStatusReachesSlackTrafficFirst(t *testing.T) {
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	old := []deployer.Server{{Name: "ns1-0"}, {Name: "ns2-0"}}
	next := []deployer.Server{{Name: "ns1-5"}, {Name: "ns2-5"}}
	d := deployer.Deployment{ID: 5, Service: "ns", Requester: "U1", Phase: deployer.PhaseRollbackWindow, Steps: deployer.NewSteps(), Traffic: deployer.Traffic{Target: deployer.TrafficNext, Settled: true, NextTouched: true},
		Created: at, Old: old, Next: next, ImageOld: "local/ns-v1", ImageNew: "local/ns-v3", RollbackDeadline: at.Add(15 * time.Minute)}
	for i := range d.Steps[:9] {
		d.Steps[i].Status = deployer.StatusDone
	}
	st := deployer.Status{Service: "ns", Live: deployer.ServiceState{Image: "local/ns-v1", Servers: old}, Active: &d}
	m := bot.Message{Level: bot.LevelInfo, Text: bot.StatusText(st, at.Add(time.Minute)), Ephemeral: true, User: "U1"}
	text := strings.Join(blockTexts(t, Blocks(m)), "\n")
	traffic := strings.Index(text, "ns: traffic on ns1-5, ns2-5, image local/ns-v3 (deploy #5)")
	kept := strings.Index(text, "kept for rollback until 10:15:00 UTC: ns1-0, ns2-0, image local/ns-v1")
	if traffic < 0 || kept < traffic {
		t.Fatalf("Slack status does not say where traffic is first:\n%s", text)
	}
}

// TestAbortSummarySaysWhatWasDone: an aborted deploy's summary says who
// aborted it and why, then what was done, as its Aftermath records it; a
// record from before Aftermath is said as its Error has it.
func TestAbortSummarySaysWhatWasDone(t *testing.T) {
	at := time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC)
	base := deployer.Deployment{ID: 4, Service: "ns", Requester: "U1", Phase: deployer.PhaseAborted, Steps: deployer.NewSteps(),
		Created: at, Finished: at.Add(3 * time.Second), Old: []deployer.Server{{Name: "ns1-0"}, {Name: "ns2-0"}},
		Approval: &deployer.Decision{Kind: deployer.DecisionAbort, By: "bob", Reason: "wrong image"}, Error: "aborted by bob: wrong image",
		Aftermath: "Traffic stayed on ns1-0, ns2-0; nothing had been built, and the lock is released."}
	withNext := base
	withNext.Next = []deployer.Server{{Name: "ns1-4"}, {Name: "ns2-4"}}
	withNext.Aftermath = "Traffic stayed on ns1-0, ns2-0; the next set (ns1-4, ns2-4) was deleted and the lock released."
	leftOver := withNext
	leftOver.Aftermath = "Traffic stayed on ns1-0, ns2-0. Could not delete every server of the next set (delete ns2-4: 503); the reconciler will report them. The lock is released."
	oldShape := withNext
	oldShape.Aftermath = ""
	oldShape.Error += ". Could not delete every server of the next set (delete ns2-4: 503); the reconciler will report them."
	tests := []struct {
		d    deployer.Deployment
		want string
	}{
		{withNext, "Deploy #4 of ns was aborted by bob (wrong image) after 3s; traffic stayed on ns1-0, ns2-0; the next set (ns1-4, ns2-4) was deleted and the lock released."},
		{base, "Deploy #4 of ns was aborted by bob (wrong image) after 3s; traffic stayed on ns1-0, ns2-0; nothing had been built, and the lock is released."},
		{leftOver, "Deploy #4 of ns was aborted by bob (wrong image) after 3s; traffic stayed on ns1-0, ns2-0. Could not delete every server of the next set (delete ns2-4: 503); the reconciler will report them. The lock is released."},
		{oldShape, "Deploy #4 of ns ended after 3s: aborted by bob: wrong image. Could not delete every server of the next set (delete ns2-4: 503); the reconciler will report them."},
	}
	for _, tc := range tests {
		msgs := (&bot.Notifier{}).Messages(deployer.Event{Kind: deployer.EventFinished, Deployment: tc.d, Text: "Deploy #4 of ns was aborted"})
		if got := strings.Join(blockTexts(t, Blocks(msgs[1])), "\n"); !strings.Contains(got, tc.want) {
			t.Errorf("summary:\n%s\nwant:\n%s", got, tc.want)
		}
	}
}
