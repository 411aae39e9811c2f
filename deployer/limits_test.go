package deployer

import (
	"strings"
	"testing"
)

func TestJudgeChanges(t *testing.T) {
	limits := ChangeLimits{MaxUpdatePct: 30, MaxDeletePct: 30, MinRRsets: 10}
	zone := func(live, changed, removedPct int) ZoneDiff {
		return ZoneDiff{Zone: "example.test.", Summary: "example.test.: summary", LiveRRsets: live, Changed: changed,
			UpdatedPct: float64(changed) * 100 / float64(live), DeletedPct: float64(removedPct)}
	}
	tests := []struct {
		name       string
		limits     ChangeLimits
		allowLarge bool
		diffs      []ZoneDiff
		wantErr    string // fragment; "" = no error
		wantLine   string // fragment of some line; "" = none needed
	}{
		{"small change", limits, false, []ZoneDiff{zone(20, 2, 0)}, "", "example.test.: summary"},
		{"exactly the limit", limits, false, []ZoneDiff{zone(10, 3, 30)}, "", ""},
		{"too many updates", limits, false, []ZoneDiff{zone(10, 4, 0)}, "40% of its 10 live RRsets would change, above the 30% limit by 10 points", ""},
		{"too many deletes", limits, false, []ZoneDiff{zone(20, 0, 50)}, "50% of its 20 live RRsets would be deleted, above the 30% limit by 20 points", ""},
		{"error names the flag", limits, false, []ZoneDiff{zone(10, 10, 0)}, "--allow-large-change", ""},
		{"allowed", limits, true, []ZoneDiff{zone(10, 10, 0)}, "", "large change allowed by --allow-large-change"},
		{"small zones are not limited", limits, false, []ZoneDiff{zone(9, 9, 90)}, "", ""},
		{"expect unchanged warns", ChangeLimits{MaxUpdatePct: 30, MaxDeletePct: 30, MinRRsets: 10, ExpectUnchanged: true},
			false, []ZoneDiff{{Zone: "example.test.", Added: 1, LiveRRsets: 3}}, "", "⚠ example.test.: content changes although this service expects none"},
		{"expect unchanged, none", ChangeLimits{ExpectUnchanged: true, MinRRsets: 10}, false, []ZoneDiff{{Zone: "example.test.", LiveRRsets: 3}}, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			lines, err := judgeChanges(tc.limits, tc.allowLarge, tc.diffs)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("error %v, want none", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("error %v, want %q", err, tc.wantErr)
			}
			joined := strings.Join(lines, "\n")
			if tc.wantLine != "" && !strings.Contains(joined, tc.wantLine) {
				t.Fatalf("lines %q lack %q", joined, tc.wantLine)
			}
			if strings.Contains(tc.name, "none") && strings.Contains(joined, "⚠") {
				t.Fatalf("unexpected warning: %q", joined)
			}
		})
	}
}
