package deployer_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/internal/eventually"
)

// Outside its deploy windows a deploy is prepared and approved, but the
// switch waits at the approval gate until a window opens; the approval
// message and the approver are told when.
func TestDeployWindowHoldsTheSwitch(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	weekdays := deployer.DeployWindow{Days: []time.Weekday{time.Monday, time.Tuesday, time.Wednesday, time.Thursday},
		From: 9 * time.Hour, To: 16 * time.Hour, Location: berlin}
	// epoch is Sunday 1 Nov 2026, 12:00 UTC: outside the window.
	h := newHarness(t, func(o *options) { o.windows = []deployer.DeployWindow{weekdays} })
	ctx := context.Background()
	d := h.deploy("alice", deployer.Options{Image: imageV2})
	h.waitPhase(d.ID, deployer.PhaseAwaitingApproval)
	eventually.Within(t, waitLimit, "the approval message", func() bool { return len(h.rep.texts(deployer.EventApproval, d.ID)) > 0 })
	if got := h.rep.texts(deployer.EventApproval, d.ID)[0]; got != "Outside ns's deploy windows: once approved, it switches at 09:00 CET on Mon 2 Nov, when the next one opens." {
		t.Errorf("approval note %q", got)
	}
	approved, err := h.dep.Approve(ctx, "ns", d.ID, "bob")
	if err != nil {
		t.Fatal(err)
	}
	opens := time.Date(2026, 11, 2, 9, 0, 0, 0, berlin)
	if !approved.SwitchAt.Equal(opens) || !strings.HasPrefix(deployer.SwitchTime(approved.SwitchAt, approved.SwitchZone), "09:00 CET") {
		t.Fatalf("switch at %s (%s), want %s", approved.SwitchAt, approved.SwitchZone, opens)
	}
	eventually.Within(t, waitLimit, "the word that the switch waits", func() bool {
		return strings.Contains(strings.Join(h.rep.texts(deployer.EventInfo, d.ID), "\n"), "will switch at 09:00 CET on Mon 2 Nov")
	})
	h.waitIdle()
	if got := h.deployment(d.ID); got.Step(deployer.StepSwitch).Status != deployer.StatusPending || got.Traffic.Target != "" {
		t.Fatalf("outside the window the switch ran: %s", describeSteps(got))
	}
	h.assertServes("ns1-0", "ns2-0")
	if _, err := h.dep.Abort(ctx, "ns", d.ID, "carol", ""); err == nil || !strings.Contains(err.Error(), "waits for ns's deploy window (it switches at 09:00 CET on Mon 2 Nov)") {
		t.Errorf("abort while waiting for the window: %v", err)
	}

	h.passDeadline(opens, "the deploy window to open")
	d = h.waitPhase(d.ID, deployer.PhaseRollbackWindow)
	if !strings.Contains(d.Step(deployer.StepApproval).Detail, "opened at 09:00 CET on Mon 2 Nov") {
		t.Errorf("approval detail %q", d.Step(deployer.StepApproval).Detail)
	}
	h.assertServes("ns1-1", "ns2-1")
	h.closeWindow(d.ID)

	// Inside the window a deploy switches once approved.
	d = h.deploy("alice", deployer.Options{Image: imageV1, AutoApprove: true})
	h.waitPhase(d.ID, deployer.PhaseFailed) // v1's serial is lower; it did not wait for a window
	if got := h.deployment(d.ID); !got.SwitchAt.IsZero() {
		t.Errorf("inside the window, switch at %s", got.SwitchAt)
	}
}

// A window's next opening across DST and a week's end.
func TestDeployWindowNextOpening(t *testing.T) {
	berlin, _ := time.LoadLocation("Europe/Berlin")
	w := deployer.DeployWindow{Days: []time.Weekday{time.Monday}, From: 9 * time.Hour, To: 10 * time.Hour, Location: berlin}
	tests := []struct {
		at   time.Time
		want string
	}{
		{time.Date(2026, 3, 28, 12, 0, 0, 0, time.UTC), "09:00 CEST on Mon 30 Mar"},
		{time.Date(2026, 10, 24, 12, 0, 0, 0, time.UTC), "09:00 CET on Mon 26 Oct"},
		{time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC), "09:00 CET on Mon 9 Nov"},
	}
	for _, tc := range tests {
		if got := deployer.NextWindowOpening([]deployer.DeployWindow{w}, tc.at); got != tc.want {
			t.Errorf("at %s: %q, want %q", tc.at, got, tc.want)
		}
	}
}
