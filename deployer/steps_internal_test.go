package deployer

import (
	"slices"
	"testing"
	"time"
)

// TestStepTable checks the one description of the pipeline's steps against
// the names persisted with every deployment.
func TestStepTable(t *testing.T) {
	order := []StepName{StepLock, StepPlan, StepCreate, StepWaitRunning, StepProvision,
		StepCheckNext, StepApproval, StepSwitch, StepCheckLive, StepRollbackWindow, StepRetire}
	if got := Steps(); !slices.Equal(got, order) {
		t.Fatalf("Steps() = %v, want %v", got, order)
	}
	fresh := NewSteps()
	if len(fresh) != len(order) {
		t.Fatalf("NewSteps() has %d steps, want %d", len(fresh), len(order))
	}
	for i, st := range fresh {
		if st.Name != order[i] || st.Status != StatusPending {
			t.Errorf("NewSteps()[%d] = %s %s, want %s pending", i, st.Name, st.Status, order[i])
		}
	}

	svc := &Service{Timeouts: Timeouts{Create: 1 * time.Minute, WaitRunning: 2 * time.Minute, Provision: 3 * time.Minute,
		Check: 4 * time.Minute, Switch: 5 * time.Minute, Retire: 6 * time.Minute}}
	timeouts := map[StepName]time.Duration{
		StepCreate: svc.Timeouts.Create, StepWaitRunning: svc.Timeouts.WaitRunning, StepProvision: svc.Timeouts.Provision,
		StepCheckNext: svc.Timeouts.Check, StepSwitch: svc.Timeouts.Switch, StepCheckLive: svc.Timeouts.Check,
		StepRetire: svc.Timeouts.Retire,
	}
	waiting := []StepName{StepApproval, StepRollbackWindow}
	titles := map[string]StepName{}
	for _, s := range stepDefs {
		if s.title == "" || s.name.Title() != s.title {
			t.Errorf("step %s: title %q, Title() %q; want a title", s.name, s.title, s.name.Title())
		}
		if other, ok := titles[s.title]; ok {
			t.Errorf("steps %s and %s are both titled %q", other, s.name, s.title)
		}
		titles[s.title] = s.name
		if (s.do == nil) != (s.name == StepLock) {
			t.Errorf("step %s: has work %v; every step but the lock (taken by Deploy) has a function", s.name, s.do != nil)
		}
		if got, want := svc.stepTimeout(s.name), timeouts[s.name]; got != want {
			t.Errorf("step %s: timeout %s, want %s", s.name, got, want)
		}
		if got, want := waits(s.name), slices.Contains(waiting, s.name); got != want {
			t.Errorf("step %s: waits for people %v, want %v", s.name, got, want)
		}
	}

	svc.ApprovalTimeout, svc.RollbackWindow = 7*time.Minute, 8*time.Minute
	if got, want := svc.LockLimit(), (1+2+3+4+5+4+6+7+8)*time.Minute; got != want {
		t.Errorf("LockLimit() = %s, want %s: every step's timeout, the approval deadline and the rollback window", got, want)
	}

	gone := StepName("gone")
	if gone.Title() != "gone" || svc.stepTimeout(gone) != 0 || waits(gone) || stepOf(gone).do != nil {
		t.Errorf("a step the table does not have: title %q, timeout %s, waits %v; want its name, no bound, no wait, no work",
			gone.Title(), svc.stepTimeout(gone), waits(gone))
	}
}
