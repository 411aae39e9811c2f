package deployer_test

import (
	"context"
	"testing"

	"github.com/greenlight/greenlight/deployer"
)

// TestAutoApproveRefusedUnderFourEyes: on a four-eyes service a deploy
// cannot approve itself; nothing is started and the lock stays free.
func TestAutoApproveRefusedUnderFourEyes(t *testing.T) {
	h := newHarness(t, func(o *options) { o.fourEyes = true })
	_, err := h.dep.Deploy(context.Background(), deployer.Request{Service: "ns", User: "alice", Options: deployer.Options{AutoApprove: true}})
	want := "ns follows the four-eyes rule: a deploy cannot approve itself, so --auto-approve is refused; deploy without it and ask another approver"
	if err == nil || err.Error() != want {
		t.Fatalf("Deploy --auto-approve = %v, want %q", err, want)
	}
	if deployer.ErrorCode(err) != deployer.CodeForbidden {
		t.Errorf("code %q, want forbidden", deployer.ErrorCode(err))
	}
	h.assertUnlocked()
	if d, err := h.dep.Deploy(context.Background(), deployer.Request{Service: "ns", User: "alice", Options: deployer.Options{AutoApprove: true, DryRun: true}}); err != nil || d.Phase != deployer.PhasePlanned {
		t.Fatalf("a dry run with --auto-approve: %v, %v", d.Phase, err)
	}
}
