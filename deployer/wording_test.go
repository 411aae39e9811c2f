package deployer_test

import (
	"context"
	"regexp"
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
