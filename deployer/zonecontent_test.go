package deployer_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/greenlight/greenlight/deployer"
)

// zoneSource is a ZoneSource whose content a test changes between deploys.
type zoneSource struct {
	mu      sync.Mutex
	content deployer.ZoneContent
	err     error
}

func (z *zoneSource) Load(context.Context) (deployer.ZoneContent, error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	return *z.content.Clone(), z.err
}

func (z *zoneSource) set(digest string, serial uint32, err error) {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.content = deployer.ZoneContent{Digest: "sha256:" + digest,
		Files: []deployer.ZoneFile{{Zone: "example.test.", File: "example.test.zone", Serial: serial, Digest: digest}}}
	z.err = err
}

// TestZonesRecordedAndSerialDiscipline deploys zone content, then refuses
// changed content whose serial did not grow before creating anything,
// unless --allow-same-serial; a source that fails refuses the deploy too.
func TestZonesRecordedAndSerialDiscipline(t *testing.T) {
	src := &zoneSource{}
	src.set("aaaa", 2026110102, nil)
	h := newHarness(t, func(o *options) { o.zones = src })

	first := h.deploy("alice", deployer.Options{AutoApprove: true})
	first = h.closeWindow(first.ID)
	if first.Zones == nil || first.Zones.Digest != "sha256:aaaa" || first.Zones.Serials()["example.test."] != 2026110102 {
		t.Fatalf("recorded zones = %+v", first.Zones)
	}
	if !strings.Contains(first.Step(deployer.StepPlan).Detail, "zones sha256:aaaa · example.test. 2026110102") {
		t.Errorf("plan detail = %q", first.Step(deployer.StepPlan).Detail)
	}

	tests := []struct {
		name    string
		digest  string
		serial  uint32
		loadErr error
		opts    deployer.Options
		wantErr string // "" = the plan passes
	}{
		{name: "changed, same serial", digest: "bbbb", serial: 2026110102,
			wantErr: "example.test changed but its serial 2026110102 did not grow: secondaries would never pick it up"},
		{name: "a syntax error", digest: "bbbb", serial: 2026110103, loadErr: deployer.Errorf(deployer.CodeInvalid, "example.test.zone line 6: bad A"),
			wantErr: "example.test.zone line 6: bad A"},
		{name: "changed, same serial, allowed", digest: "bbbb", serial: 2026110102, opts: deployer.Options{AllowSameSerial: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			src.set(tt.digest, tt.serial, tt.loadErr)
			dry, err := h.dep.Deploy(context.Background(), deployer.Request{Service: "ns", User: "alice",
				Options: deployer.Options{DryRun: true, AllowSameSerial: tt.opts.AllowSameSerial}})
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("dry run: err = %v, want %q", err, tt.wantErr)
				}
			} else if err != nil || dry.Zones == nil || dry.Zones.Digest != "sha256:"+tt.digest {
				t.Fatalf("dry run: %v, zones %+v", err, dry.Zones)
			}

			d := h.deploy("alice", tt.opts)
			if tt.wantErr == "" {
				d = h.waitPhase(d.ID, deployer.PhaseAwaitingApproval)
				if d.Zones.Digest != "sha256:"+tt.digest || !strings.Contains(d.Step(deployer.StepPlan).Detail, "same serial allowed") {
					t.Fatalf("zones %+v, plan %q", d.Zones, d.Step(deployer.StepPlan).Detail)
				}
				if _, err := h.dep.Abort(context.Background(), "ns", d.ID, "alice", "test"); err != nil {
					t.Fatal(err)
				}
				h.waitPhase(d.ID, deployer.PhaseAborted)
				return
			}
			d = h.waitPhase(d.ID, deployer.PhaseFailed)
			assertSteps(t, d, statuses(deployer.StepPlan, deployer.StatusFailed))
			if !strings.Contains(d.Error, tt.wantErr) {
				t.Errorf("error = %q, want %q", d.Error, tt.wantErr)
			}
			if left := h.tagged(d.ID); len(left) != 0 {
				t.Errorf("deploy #%d created %v", d.ID, left)
			}
			h.assertUnlocked()
			h.assertServes("ns1-1", "ns2-1")
		})
	}
}
