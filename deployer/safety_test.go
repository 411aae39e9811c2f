package deployer_test

// One test per fault that once deleted or stranded the serving set, each
// played on the simulation's world (sim_world_test.go), whose fakes fail
// a test the moment traffic reaches a server that does not exist or never
// passed a check (promise 1), or a serving server is deleted (promise 2).

import (
	"context"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/greenlight/greenlight/deployer"
)

// scenario is one scripted simulation.
type scenario struct {
	*simulation
	t *testing.T
}

func newScenario(t *testing.T) *scenario {
	t.Helper()
	s := &scenario{simulation: newSimulation(filepath.Join(t.TempDir(), "greenlight.db"), 1), t: t}
	s.opts = simServiceOptions{}
	s.maxJump = time.Minute // the longest backoff; deadlines are further
	t.Cleanup(func() {
		s.close()
		if len(s.w.violations) > 0 {
			t.Errorf("violations:\n  %s\nevents:\n  %s", strings.Join(s.w.violations, "\n  "), strings.Join(s.log, "\n  "))
		}
	})
	return s
}

// arm queues faults, each hitting the next call of its op.
func (s *scenario) arm(faults ...fault) {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	for _, f := range faults {
		if f.k == 0 {
			f.k = 1
		}
		s.w.faults = append(s.w.faults, &f)
	}
}

func (s *scenario) settled() { s.settle(); s.check() }

func (s *scenario) deploy(service string) deployer.Deployment {
	s.t.Helper()
	d, err := s.dep.Deploy(context.Background(), deployer.Request{Service: service, User: "alice"})
	if err != nil {
		s.t.Fatalf("deploy %s: %v", service, err)
	}
	s.settled()
	return s.get(d.ID)
}

func (s *scenario) approve(id uint64) {
	s.t.Helper()
	if _, err := s.dep.Approve(context.Background(), "", id, "bob"); err != nil {
		s.t.Fatalf("approve #%d: %v", id, err)
	}
	s.settled()
}

func (s *scenario) get(id uint64) deployer.Deployment {
	s.t.Helper()
	d, err := s.db.Deployment(id)
	if err != nil {
		s.t.Fatal(err)
	}
	return d
}

// live deploys ns and approves it: the deploy waits in its rollback window.
func (s *scenario) live() deployer.Deployment {
	s.t.Helper()
	d := s.deploy("ns")
	s.approve(d.ID)
	d = s.get(d.ID)
	if d.Phase != deployer.PhaseRollbackWindow {
		s.t.Fatalf("deploy #%d is %s, want it in its rollback window", d.ID, d.Phase)
	}
	return d
}

// traffic is the IDs ns's load balancer sends new queries to.
func (s *scenario) traffic(service string) []string {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	return slices.Clone(s.w.lbs[service].accepting)
}

func (s *scenario) exists(servers []deployer.Server) bool {
	s.w.mu.Lock()
	defer s.w.mu.Unlock()
	for _, sv := range servers {
		if _, ok := s.w.servers[sv.ID]; !ok {
			return false
		}
	}
	return true
}

func ids(servers []deployer.Server) []string {
	out := make([]string, len(servers))
	for i, sv := range servers {
		out[i] = sv.ID
	}
	return out
}

func (s *scenario) wantPhase(id uint64, want deployer.Phase) deployer.Deployment {
	s.t.Helper()
	d := s.get(id)
	if d.Phase != want {
		s.t.Fatalf("deploy #%d is %s (error %q), want %s\nevents:\n  %s", id, d.Phase, d.Error, want, strings.Join(s.log, "\n  "))
	}
	return d
}

// TestRollbackThatCannotDrain: Accept(old) works, Drain(next) keeps
// failing. Traffic must be put back on the next set and the chat told so;
// when the window closes, retire deletes the old set only, and nothing that
// serves was ever deleted.
func TestRollbackThatCannotDrain(t *testing.T) {
	s := newScenario(t)
	d := s.live()
	s.arm(fault{op: "drain", mode: faultError}, fault{op: "drain", mode: faultError}, fault{op: "drain", mode: faultError})
	if _, err := s.dep.Rollback(context.Background(), "ns", d.ID, "carol"); err != nil {
		t.Fatal(err)
	}
	s.settled()
	d = s.wantPhase(d.ID, deployer.PhaseRollbackWindow)
	if !sameSet(s.traffic("ns"), ids(d.Next)) || !d.Traffic.SettledOn(deployer.TrafficNext) {
		t.Fatalf("traffic on %v (recorded %+v), want it back on the next set %v", s.traffic("ns"), d.Traffic, ids(d.Next))
	}
	if len(d.RefusedRollbacks) != 1 || !strings.Contains(d.RefusedRollbacks[0].Reason, "traffic is back on the new set") {
		t.Errorf("refused rollbacks = %+v, want one saying traffic is back on the new set", d.RefusedRollbacks)
	}
	s.clock.Advance(16 * time.Minute)
	s.settled()
	d = s.wantPhase(d.ID, deployer.PhaseSucceeded)
	if !s.exists(d.Next) || s.exists(d.Old) {
		t.Errorf("after the window: next set exists %v, old set exists %v; want only the next", s.exists(d.Next), s.exists(d.Old))
	}
}

// TestRollbackThatCanGoNowhere: the drain fails and so does putting
// traffic back: the deploy needs attention, both sets are kept, and the
// window closing retires nothing.
func TestRollbackThatCanGoNowhere(t *testing.T) {
	s := newScenario(t)
	d := s.live()
	s.arm(fault{op: "drain", mode: faultError}, fault{op: "drain", mode: faultError}, fault{op: "drain", mode: faultError},
		fault{op: "accept", mode: faultError, k: 2})
	if _, err := s.dep.Rollback(context.Background(), "ns", d.ID, "carol"); err != nil {
		t.Fatal(err)
	}
	s.settled()
	d = s.wantPhase(d.ID, deployer.PhaseNeedsAttention)
	s.clock.Advance(time.Hour)
	s.settled()
	s.wantPhase(d.ID, deployer.PhaseNeedsAttention)
	if !s.exists(d.Next) || !s.exists(d.Old) {
		t.Fatal("a set was deleted while the deploy needs attention")
	}
	if !strings.Contains(deployer.AttentionText(d), "/deploy resolve ns --to old") {
		t.Errorf("attention text %q lacks the command that ends it", deployer.AttentionText(d))
	}
}

// TestStoreErrorInRollbackWindow: one failed write while the window is
// open is retried; the live (next) set is never deleted.
func TestStoreErrorInRollbackWindow(t *testing.T) {
	s := newScenario(t)
	d := s.live()
	s.arm(fault{op: "store", mode: faultError})
	s.clock.Advance(16 * time.Minute)
	s.settled()
	d = s.wantPhase(d.ID, deployer.PhaseSucceeded)
	if !s.exists(d.Next) || !sameSet(s.traffic("ns"), ids(d.Next)) {
		t.Fatalf("the set traffic is on (%v) was deleted or left", ids(d.Next))
	}
}

// TestStoreErrorAtEveryWriteOfADeploy: a failed write at any point of a
// whole deploy leaves no deploy without a pipeline and the deploy ends.
func TestStoreErrorAtEveryWriteOfADeploy(t *testing.T) {
	for k := 1; k <= 30; k++ {
		s := newScenario(t)
		s.arm(fault{op: "store", mode: faultError, k: k})
		d, err := s.dep.Deploy(context.Background(), deployer.Request{Service: "ns", User: "alice"})
		s.settled()
		if err != nil {
			continue // refused before anything was recorded
		}
		if s.get(d.ID).Phase == deployer.PhaseAwaitingApproval {
			if _, err := s.dep.Approve(context.Background(), "", d.ID, "bob"); err != nil {
				s.approve(d.ID) // the failed write was the approval: a person tries again
			}
			s.settled()
		}
		s.clock.Advance(16 * time.Minute)
		s.settled()
		if ph := s.get(d.ID).Phase; !ph.Final() {
			t.Errorf("a store error at write %d left deploy #%d %s", k, d.ID, ph)
		}
	}
}

// TestSwitchBackFailureNeedsAttention: the switch fails and switching back
// fails too. The deploy needs attention: both sets and the lock are kept,
// the reconciler deletes nothing, a restart touches no traffic, unlock
// --force is refused, and /deploy resolve ends it.
func TestSwitchBackFailureNeedsAttention(t *testing.T) {
	s := newScenario(t)
	d := s.deploy("ns")
	s.arm(fault{op: "accept", mode: faultLost}, fault{op: "accept", mode: faultError})
	s.approve(d.ID)
	d = s.wantPhase(d.ID, deployer.PhaseNeedsAttention)
	traffic := s.traffic("ns")

	report, err := s.dep.Reconcile(context.Background(), deployer.ReconcileOptions{Delete: true, Grace: time.Nanosecond})
	if err != nil || len(report.Orphans) != 0 {
		t.Fatalf("reconcile of a deploy that needs attention: %+v, %v; want no orphans", report.Orphans, err)
	}
	s.restart()
	s.settled()
	if got := s.traffic("ns"); !slices.Equal(got, traffic) {
		t.Fatalf("a restart moved traffic from %v to %v", traffic, got)
	}
	s.wantPhase(d.ID, deployer.PhaseNeedsAttention)
	if _, err := s.dep.Unlock(context.Background(), "ns", "ops", true); err == nil || !strings.Contains(err.Error(), "/deploy resolve ns") {
		t.Fatalf("unlock --force = %v, want a refusal naming /deploy resolve", err)
	}
	if _, err := s.dep.Resolve(context.Background(), "ns", 0, "ops", deployer.TrafficOld); err != nil {
		t.Fatal(err)
	}
	s.settled()
	d = s.wantPhase(d.ID, deployer.PhaseFailed)
	if !sameSet(s.traffic("ns"), ids(d.Old)) || s.exists(d.Next) {
		t.Errorf("after resolve --to old: traffic on %v, next set exists %v", s.traffic("ns"), s.exists(d.Next))
	}
	if want := "Resolved by ops: ns stays on " + strings.Join(serverNames(d.Old), ", ") + "."; d.Aftermath != want || strings.Contains(d.Error, "Resolved") {
		t.Errorf("after resolve --to old: error %q, aftermath %q; want the aftermath %q apart from the error", d.Error, d.Aftermath, want)
	}
	if l, _ := s.db.CurrentLock("ns"); l != nil {
		t.Errorf("lock still held after resolve: %+v", l)
	}
	if _, err := s.dep.Resolve(context.Background(), "ns", d.ID, "ops", deployer.TrafficNext); err == nil {
		t.Error("a second resolve was taken")
	}
}

// TestResolveToNew keeps the next set: it becomes live and the old one goes.
func TestResolveToNew(t *testing.T) {
	s := newScenario(t)
	d := s.deploy("ns")
	s.arm(fault{op: "accept", mode: faultLost}, fault{op: "accept", mode: faultError})
	s.approve(d.ID)
	s.wantPhase(d.ID, deployer.PhaseNeedsAttention)
	if _, err := s.dep.Resolve(context.Background(), "ns", d.ID, "ops", deployer.TrafficNext); err != nil {
		t.Fatal(err)
	}
	s.settled()
	d = s.wantPhase(d.ID, deployer.PhaseSucceeded)
	live, _ := s.db.Service("ns")
	if !sameSet(ids(live.Servers), ids(d.Next)) || s.exists(d.Old) {
		t.Errorf("live set %v, old set exists %v; want the next set live and the old one deleted", ids(live.Servers), s.exists(d.Old))
	}
}

// TestRestartFollowsTheRecordedIntent: greenlight killed between changing
// traffic and recording what came of it. Start points traffic where the
// record says, never at a deleted set or one that failed its check.
func TestRestartFollowsTheRecordedIntent(t *testing.T) {
	tests := []struct {
		name  string
		stage func(s *scenario, d *deployer.Deployment) // the world and record the kill left
		want  deployer.Phase
	}{
		{
			name: "inside a rollback, after the next set was deleted",
			stage: func(s *scenario, d *deployer.Deployment) {
				s.w.mu.Lock()
				s.w.lbs["ns"].accepting = ids(d.Old)
				for _, sv := range d.Next {
					delete(s.w.servers, sv.ID)
				}
				s.w.mu.Unlock()
				d.Rollback = &deployer.Decision{Kind: deployer.DecisionRollback, By: "carol", At: s.clock.Now()}
				d.Traffic = deployer.Traffic{Target: deployer.TrafficOld, Settled: true, NextTouched: true}
			},
			want: deployer.PhaseRolledBack,
		},
		{
			name: "in check-live, after switching back",
			stage: func(s *scenario, d *deployer.Deployment) {
				s.w.mu.Lock()
				s.w.lbs["ns"].accepting = ids(d.Old)
				s.w.mu.Unlock()
				d.Phase = deployer.PhaseRunning
				d.Step(deployer.StepCheckLive).Status = deployer.StatusRunning
				d.Step(deployer.StepRollbackWindow).Status = deployer.StatusPending
				d.Traffic = deployer.Traffic{Target: deployer.TrafficOld, Settled: true, NextTouched: true}
			},
			want: deployer.PhaseFailed,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := newScenario(t)
			d := s.live()
			s.close()
			if _, err := s.db.Deployment(d.ID); err == nil {
				t.Fatal("store still open")
			}
			s.gen-- // open() below is the same process coming back
			s.open()
			s.stop()
			s.dep.Wait()
			if _, err := s.db.UpdateDeployment(d.ID, func(x *deployer.Deployment) error { tc.stage(s, x); return nil }); err != nil {
				t.Fatal(err)
			}
			s.restart()
			s.settled()
			d = s.wantPhase(d.ID, tc.want)
			if !sameSet(s.traffic("ns"), ids(d.Old)) {
				t.Errorf("traffic on %v, want the old set %v", s.traffic("ns"), ids(d.Old))
			}
			if s.exists(d.Next) {
				t.Error("the next set was left behind")
			}
		})
	}
}

// TestAbortIsNeverOverwritten: an abort recorded while the gate had not
// yet written its phase is kept; a later approve gets it back.
func TestAbortIsNeverOverwritten(t *testing.T) {
	s := newScenario(t)
	d := s.deploy("ns")
	s.stop()
	s.dep.Wait()
	abort := deployer.Decision{Kind: deployer.DecisionAbort, By: "carol", At: s.clock.Now()}
	if _, err := s.db.UpdateDeployment(d.ID, func(x *deployer.Deployment) error {
		x.Approval = &abort // the phase stays awaiting-approval: the race's leftover
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s.restart()
	_, err := s.dep.Approve(context.Background(), "ns", d.ID, "bob")
	if err == nil || !strings.Contains(err.Error(), "already aborted by carol") {
		t.Fatalf("approve after an abort = %v, want the abort back", err)
	}
	s.settled()
	d = s.wantPhase(d.ID, deployer.PhaseAborted)
	if d.Approval.Kind != deployer.DecisionAbort || d.Approval.By != "carol" {
		t.Errorf("decision = %+v, want carol's abort", d.Approval)
	}
}

// TestSeedGivesUp: a first set that never becomes running does not hang
// start-up; what was made is deleted.
func TestSeedGivesUp(t *testing.T) {
	s := newScenario(t)
	s.w.mu.Lock()
	for id := range s.w.servers {
		delete(s.w.servers, id) // a service with no live set yet
	}
	s.w.lbs["ns"].accepting = nil
	s.w.mu.Unlock()
	if err := s.db.SetService(deployer.ServiceState{Service: "ns"}); err != nil {
		t.Fatal(err)
	}
	s.arm(fault{op: "wait", mode: faultHang})
	done := make(chan error, 1)
	go func() { _, err := s.dep.Seed(context.Background(), "ns", simImgOld); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "was not ready within") {
			t.Fatalf("Seed = %v, want it to give up", err)
		}
	case <-time.After(waitLimit):
		t.Fatal("Seed hung")
	}
	s.w.mu.Lock()
	left := len(s.w.servers)
	s.w.mu.Unlock()
	if left != 0 {
		t.Errorf("%d servers of the failed first set were left", left)
	}
}

// TestStepAttemptsAreCapped: a step restarted again and again without
// finishing ends in needs attention instead of looping.
func TestStepAttemptsAreCapped(t *testing.T) {
	s := newScenario(t)
	d := s.deploy("ns")
	s.stop()
	s.dep.Wait()
	if _, err := s.db.UpdateDeployment(d.ID, func(x *deployer.Deployment) error {
		x.Phase = deployer.PhaseRunning
		x.Step(deployer.StepCheckNext).Status, x.Step(deployer.StepCheckNext).Attempts = deployer.StatusRunning, 5
		x.Step(deployer.StepApproval).Status = deployer.StatusPending
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s.restart()
	s.settled()
	d = s.wantPhase(d.ID, deployer.PhaseNeedsAttention)
	if !strings.Contains(d.Attention.Reason, "started 5 times without finishing") {
		t.Errorf("reason %q", d.Attention.Reason)
	}
}

// TestStepPanicFailsTheStep: a bug in a step fails that deploy, cleanly,
// and greenlight goes on.
func TestStepPanicFailsTheStep(t *testing.T) {
	s := newScenario(t)
	s.w.provisionPanics.Store(true)
	d, err := s.dep.Deploy(context.Background(), deployer.Request{Service: "ns", User: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	s.settled()
	d = s.wantPhase(d.ID, deployer.PhaseFailed)
	if !strings.Contains(d.Error, "internal error") || s.exists(d.Next) {
		t.Errorf("error %q, next set exists %v", d.Error, s.exists(d.Next))
	}
	s.w.provisionPanics.Store(false)
	s.deploy("web") // greenlight still works
}

// TestLockDetailInOneTransaction: the deploy's first record already says
// which deploy holds the lock.
func TestLockDetailInOneTransaction(t *testing.T) {
	s := newScenario(t)
	s.arm(fault{op: "store", mode: faultCrashAfter}) // killed right after BeginDeployment
	_, _ = s.dep.Deploy(context.Background(), deployer.Request{Service: "ns", User: "alice"})
	s.settled()
	all, err := s.db.Deployments("ns", 1)
	if err != nil || len(all) != 1 {
		t.Fatalf("deployments: %v %v", all, err)
	}
	if got := all[0].Step(deployer.StepLock).Detail; got != "ns locked by deploy #1" {
		t.Errorf("lock step detail = %q", got)
	}
}
