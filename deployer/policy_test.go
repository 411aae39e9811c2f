package deployer_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/dnscheck"
	"github.com/greenlight/greenlight/storage"
)

// An explicit rollback window of zero retires the old set right after the
// check through the load balancer; an approval timeout of zero with
// auto-promote switches at once.
func TestZeroWindowRetiresAtOnce(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(*options)
		approve bool
	}{
		{"rollback window 0", func(o *options) { o.zeroWindow = true }, true},
		{"approval timeout 0 with auto-promote", func(o *options) { o.zeroWindow, o.zeroGate, o.autoPromote = true, true, true }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.edit)
			start := h.clock.Now()
			d := h.deploy("alice", deployer.Options{Image: imageV2})
			if tc.approve {
				h.waitPhase(d.ID, deployer.PhaseAwaitingApproval)
				if _, err := h.dep.Approve(context.Background(), "ns", d.ID, "bob"); err != nil {
					t.Fatalf("Approve: %v", err)
				}
			}
			d = h.waitPhase(d.ID, deployer.PhaseSucceeded)
			if !h.clock.Now().Equal(start) {
				t.Errorf("the clock moved %s; a window of zero waits for nothing", h.clock.Now().Sub(start))
			}
			if !d.RollbackDeadline.Equal(start) {
				t.Errorf("rollback deadline %s, want %s", d.RollbackDeadline, start)
			}
			assertSteps(t, d, allDone())
			h.assertServes("ns1-1", "ns2-1")
			h.assertUnlocked()
			if got := strings.Join(h.rep.texts(deployer.EventInfo, d.ID), "\n"); !strings.Contains(got, "The rollback window is 0, so the old set (ns1-0, ns2-0) is retired now.") {
				t.Errorf("no word that the window is 0; info: %s", got)
			}
			if _, err := h.dep.Rollback(context.Background(), "ns", d.ID, "bob"); err == nil || !strings.Contains(err.Error(), "was retired") {
				t.Errorf("rollback after a zero window: %v", err)
			}
		})
	}
}

// Unset durations still get their defaults; an explicit zero is kept.
func TestServiceDurationDefaults(t *testing.T) {
	tests := []struct {
		name                 string
		svc                  deployer.Service
		wantGate, wantWindow time.Duration
		wantErr              string
	}{
		{"unset", deployer.Service{}, deployer.DefaultApprovalTimeout, deployer.DefaultRollbackWindow, ""},
		{"zero window", deployer.Service{RollbackWindowSet: true}, deployer.DefaultApprovalTimeout, 0, ""},
		{"zero gate with auto-promote", deployer.Service{ApprovalTimeoutSet: true, AutoPromote: true}, 0, deployer.DefaultRollbackWindow, ""},
		{"zero gate without auto-promote", deployer.Service{ApprovalTimeoutSet: true}, 0, 0, "would abort every deploy"},
		{"given", deployer.Service{ApprovalTimeout: time.Minute, ApprovalTimeoutSet: true, RollbackWindow: time.Hour, RollbackWindowSet: true}, time.Minute, time.Hour, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			svc := tc.svc
			svc.Name, svc.Roles, svc.Check.Zones = "other", []string{"a"}, []string{zone}
			svc.Cloud, svc.Provisioner, svc.Switch, svc.Checker = h.cloud, h.cloud, h.lb, dnscheck.New(dnscheck.Options{})
			db, err := storage.Open(t.TempDir()+"/x.db", storage.Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			_, err = deployer.New(deployer.Config{Store: db, Services: []*deployer.Service{&svc}})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("New: %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if svc.ApprovalTimeout != tc.wantGate || svc.RollbackWindow != tc.wantWindow {
				t.Errorf("approval timeout %s, rollback window %s; want %s, %s", svc.ApprovalTimeout, svc.RollbackWindow, tc.wantGate, tc.wantWindow)
			}
		})
	}
}
