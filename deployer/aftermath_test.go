package deployer_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/greenlight/greenlight/bot"
	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/internal/eventually"
)

// failingThroughSwitch is a Checker whose checks through the load balancer
// fail, as when the new set stops answering right after the switch; the
// servers asked one by one still answer.
type failingThroughSwitch struct {
	deployer.Checker
	sw deployer.Switch
}

func (c failingThroughSwitch) Check(ctx context.Context, targets []deployer.CheckTarget, spec deployer.CheckSpec) deployer.CheckReport {
	for _, t := range targets {
		if slices.Contains(c.sw.Endpoints(), t.Addr) {
			return deployer.CheckReport{Problems: []string{t.Name + ": SOA example.test. answered SERVFAIL"}}
		}
	}
	return c.Checker.Check(ctx, targets, spec)
}

// undeletable is a cloud that cannot delete the servers of one role.
type undeletable struct {
	deployer.Cloud
	role string
}

func (c undeletable) Delete(ctx context.Context, s deployer.Server) error {
	if s.Role == c.role {
		return &deployer.Error{Code: deployer.CodeFailed, Message: "Linode answered 503"}
	}
	return c.Cloud.Delete(ctx, s)
}

// finished waits for the event that ended deploy id (it follows the
// record) and returns it with the summary the chat posts for it.
func (h *harness) finished(id uint64) (deployer.Event, string) {
	h.t.Helper()
	var ev deployer.Event
	eventually.True(h.t, fmt.Sprintf("the event that ends deploy #%d", id), func() bool {
		h.rep.mu.Lock()
		defer h.rep.mu.Unlock()
		for _, e := range h.rep.events {
			if e.Kind == deployer.EventFinished && e.Deployment.ID == id {
				ev = e
				return true
			}
		}
		return false
	})
	msgs := (&bot.Notifier{Now: h.clock.Now}).Messages(ev)
	if len(msgs) < 2 {
		h.t.Fatalf("the end of deploy #%d is %d messages, want the checklist and a summary", id, len(msgs))
	}
	return ev, msgs[1].Text
}

// TestAftermathIsRecordedApartFromError: what greenlight did about a
// failure or an abort is the deployment's Aftermath, written when it ends;
// Error stays why it ended, and the summaries say both.
func TestAftermathIsRecordedApartFromError(t *testing.T) {
	t.Run("a failure after the switch", func(t *testing.T) {
		h := newHarness(t, func(o *options) {
			o.checker = func(c deployer.Checker, sw deployer.Switch) deployer.Checker { return failingThroughSwitch{c, sw} }
		})
		d := h.deploy("alice", deployer.Options{})
		h.waitPhase(d.ID, deployer.PhaseAwaitingApproval)
		if _, err := h.dep.Approve(context.Background(), "ns", 0, "bob"); err != nil {
			t.Fatalf("Approve: %v", err)
		}
		d = h.waitPhase(d.ID, deployer.PhaseFailed)

		assertSteps(t, d, statuses(deployer.StepCheckLive, deployer.StatusFailed))
		why := d.Step(deployer.StepCheckLive).Detail
		if !strings.Contains(why, "SERVFAIL") {
			t.Errorf("check-live's detail = %q, want the check's problem", why)
		}
		if want := "Check through the load balancer failed: " + why; d.Error != want {
			t.Errorf("error = %q, want %q", d.Error, want)
		}
		aftermath := "Traffic is back on ns1-0, ns2-0; the next set (ns1-1, ns2-1) was deleted and the lock released."
		if d.Aftermath != aftermath {
			t.Errorf("aftermath = %q, want %q", d.Aftermath, aftermath)
		}
		ev, summary := h.finished(d.ID)
		took := bot.Round(d.Duration(h.clock.Now()))
		if want := fmt.Sprintf("Deploy #%d of ns failed after %s at Check through the load balancer (the checklist says why). %s", d.ID, took, aftermath); summary != want {
			t.Errorf("summary:\n%s\nwant:\n%s", summary, want)
		}
		if !strings.HasSuffix(ev.Text, why+". "+aftermath) {
			t.Errorf("the deployer's summary %q does not say why, then what was done", ev.Text)
		}
		h.assertServes(oldSet...)
		if left := h.tagged(d.ID); len(left) != 0 {
			t.Errorf("servers of deploy #%d left behind: %v", d.ID, left)
		}
		h.assertUnlocked()
	})

	t.Run("an abort that cannot delete a server", func(t *testing.T) {
		h := newHarness(t, func(o *options) {
			o.cloud = func(c deployer.Cloud) deployer.Cloud { return undeletable{Cloud: c, role: "ns2"} }
		})
		d := h.deploy("alice", deployer.Options{})
		h.waitPhase(d.ID, deployer.PhaseAwaitingApproval)
		h.advance(3 * time.Second)
		if _, err := h.dep.Abort(context.Background(), "ns", 0, "bob", "wrong day"); err != nil {
			t.Fatalf("Abort: %v", err)
		}
		d = h.waitPhase(d.ID, deployer.PhaseAborted)

		if want := "aborted by bob: wrong day"; d.Error != want {
			t.Errorf("error = %q, want %q", d.Error, want)
		}
		aftermath := "Traffic stayed on ns1-0, ns2-0. Could not delete every server of the next set (delete ns2-1: Linode answered 503); " +
			"the reconciler will report them. The lock is released."
		if d.Aftermath != aftermath {
			t.Errorf("aftermath = %q, want %q", d.Aftermath, aftermath)
		}
		_, summary := h.finished(d.ID)
		want := fmt.Sprintf("Deploy #%d of ns was aborted by bob (wrong day) after 3s; traffic stayed on ns1-0, ns2-0. "+
			"Could not delete every server of the next set (delete ns2-1: Linode answered 503); the reconciler will report them. The lock is released.", d.ID)
		if summary != want {
			t.Errorf("summary:\n%s\nwant:\n%s", summary, want)
		}
		if left := h.tagged(d.ID); !slices.Equal(left, []string{"ns2-1"}) {
			t.Errorf("servers of deploy #%d left = %v, want the one that could not be deleted", d.ID, left)
		}
		h.assertUnlocked()
		h.assertServes(oldSet...)
	})
}
