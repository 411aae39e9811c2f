package deployer_test

import (
	"context"
	"regexp"
	"slices"
	"testing"

	"github.com/greenlight/greenlight/deployer"
)

// TestAbortDuringTheRollbackWindowSaysItIsLive: once traffic has moved and
// been checked, abort says the deploy is live and names the way back.
func TestAbortDuringTheRollbackWindowSaysItIsLive(t *testing.T) {
	h := newHarness(t)
	d := h.deploy("alice", deployer.Options{AutoApprove: true})
	h.waitPhase(d.ID, deployer.PhaseRollbackWindow)
	_, err := h.dep.Abort(context.Background(), "ns", 0, "bob", "")
	want := regexp.MustCompile(`^deploy #1 is live \(approved by alice at \d\d:\d\d:\d\d UTC\), so there is nothing to abort; /deploy rollback ns switches back to ns1-0, ns2-0$`)
	if err == nil || !want.MatchString(err.Error()) {
		t.Fatalf("Abort in the rollback window = %v, want %s", err, want)
	}
	if got := h.deployment(d.ID); got.Phase != deployer.PhaseRollbackWindow || got.Approval.Kind != deployer.DecisionApprove {
		t.Fatalf("abort changed the deploy: %s, %+v", got.Phase, got.Approval)
	}
}

// TestDryRunNamesTheServersTheDeployBuilds: the dry run's plan names the
// servers the next deploy really creates.
func TestDryRunNamesTheServersTheDeployBuilds(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	first := h.deploy("alice", deployer.Options{})
	if _, err := h.dep.Abort(ctx, "ns", first.ID, "alice", ""); err != nil {
		t.Fatal(err)
	}
	h.waitPhase(first.ID, deployer.PhaseAborted)
	dry, err := h.dep.Deploy(ctx, deployer.Request{Service: "ns", User: "bob", Options: deployer.Options{DryRun: true}})
	if err != nil {
		t.Fatal(err)
	}
	d := h.deploy("bob", deployer.Options{})
	got := h.waitStep(d.ID, deployer.StepPlan, deployer.StatusDone)
	if names := serverNames(got.Next); !slices.Equal(serverNames(dry.Next), names) || !containsAll(dry.Step(deployer.StepPlan).Detail, names...) {
		t.Fatalf("the dry run planned %v (%q); the deploy builds %v", serverNames(dry.Next), dry.Step(deployer.StepPlan).Detail, names)
	}
}

// TestRefusalsNameStepsByTitle: a decision refused mid-deploy names the
// step the way the checklist does.
func TestRefusalsNameStepsByTitle(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	d := h.deploy("alice", deployer.Options{})
	h.waitPhase(d.ID, deployer.PhaseAwaitingApproval)
	_, err := h.dep.Rollback(ctx, "ns", d.ID, "bob")
	if want := "deploy #1 has not switched traffic yet (it is at Approval); use /deploy abort ns"; err == nil || err.Error() != want {
		t.Errorf("rollback before the switch = %v, want %q", err, want)
	}
	_, err = h.dep.Unlock(ctx, "ns", "bob", true)
	if want := "deploy #1 of ns is still in flight (at Approval); abort it or roll it back instead of forcing the lock"; err == nil || err.Error() != want {
		t.Errorf("unlock --force = %v, want %q", err, want)
	}
}
