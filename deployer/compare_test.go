package deployer_test

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/greenlight/greenlight/deployer"
)

// TestZoneComparison: before approval the approver sees what the switch
// changes in each zone (real AXFR between the live and next local servers);
// next servers that disagree, or a change above the limits, fail the check
// and nothing is switched — unless --allow-large-change.
func TestZoneComparison(t *testing.T) {
	tight := deployer.ChangeLimits{MaxUpdatePct: 5, MaxDeletePct: 5, MinRRsets: 1}
	disagree := deployer.ZoneComparerFunc(func(context.Context, deployer.CheckTarget, []deployer.CheckTarget, []string) ([]deployer.ZoneDiff, error) {
		return nil, deployer.Errorf(deployer.CodeFailed, "ns2-1 serves example.test. differently from ns1-1: + api2.example.test. 300 IN A 192.0.2.21")
	})
	cases := []struct {
		name       string
		limits     deployer.ChangeLimits
		comparer   deployer.ZoneComparer
		allowLarge bool
		wantPhase  deployer.Phase
		wantCheck  string // in the approver's check lines, or the deployment's error
	}{
		{"diff shown", deployer.ChangeLimits{}, nil, false, deployer.PhaseAwaitingApproval,
			"example.test.: serial 2026110101 → 2026110102 · 1 added · 1 changed"},
		{"too large", tight, nil, false, deployer.PhaseFailed,
			"the change is too large: example.test.: 12.5% of its 8 live RRsets would change, above the 5% limit by 7.5 points; deploy with --allow-large-change"},
		{"too large but allowed", tight, nil, true, deployer.PhaseAwaitingApproval,
			"⚠ large change allowed by --allow-large-change"},
		{"next servers disagree", deployer.ChangeLimits{}, disagree, false, deployer.PhaseFailed,
			"zone comparison failed: ns2-1 serves example.test. differently from ns1-1"},
		{"expect unchanged", deployer.ChangeLimits{ExpectUnchanged: true}, nil, false, deployer.PhaseAwaitingApproval,
			"⚠ example.test.: content changes although this service expects none"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(o *options) { o.compare, o.limits, o.comparer = true, tc.limits, tc.comparer })
			d := h.deploy("alice", deployer.Options{AllowLargeChange: tc.allowLarge})
			d = h.waitPhase(d.ID, tc.wantPhase)
			if got := strings.Join(d.Checks, "\n") + "\n" + d.Error; !strings.Contains(got, tc.wantCheck) {
				t.Fatalf("checks and error:\n%s\nwant %q", got, tc.wantCheck)
			}
			if tc.wantPhase == deployer.PhaseFailed {
				if left := h.tagged(d.ID); len(left) != 0 {
					t.Errorf("servers of deploy #%d left behind: %v", d.ID, left)
				}
				h.assertUnlocked()
				h.assertServes(oldSet...)
				return
			}
			if tc.comparer == nil {
				if len(d.Diffs) != 1 || !slices.Contains(d.Diffs[0].Lines, "+ api.example.test.\t300\tIN\tA\t192.0.2.20") {
					t.Errorf("diffs kept with the deploy: %+v", d.Diffs)
				}
			}
		})
	}
}
