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
			d, err := deployer.New(deployer.Config{Store: db, Services: []*deployer.Service{&svc}})
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("New: %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := d.Service("other")
			if err != nil {
				t.Fatal(err)
			}
			if got.ApprovalTimeout != tc.wantGate || got.RollbackWindow != tc.wantWindow {
				t.Errorf("approval timeout %s, rollback window %s; want %s, %s", got.ApprovalTimeout, got.RollbackWindow, tc.wantGate, tc.wantWindow)
			}
		})
	}
}

// Retire now ends the rollback window at once: the old set is deleted, the
// lock released; a second retire, a late one and a rollback after it get
// the outcome back and change nothing.
func TestRetireNow(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	d := h.deploy("alice", deployer.Options{Image: imageV2})
	h.waitPhase(d.ID, deployer.PhaseAwaitingApproval)
	if _, err := h.dep.Retire(ctx, "ns", d.ID, "bob"); err == nil || !strings.Contains(err.Error(), "has not switched traffic yet") {
		t.Fatalf("retire before the switch: %v", err)
	}
	if _, err := h.dep.Approve(ctx, "ns", d.ID, "bob"); err != nil {
		t.Fatal(err)
	}
	h.waitPhase(d.ID, deployer.PhaseRollbackWindow)
	start := h.clock.Now()

	// A double click: exactly one is taken.
	errs := make(chan error, 2)
	for range 2 {
		go func() { _, err := h.dep.Retire(ctx, "ns", 0, "bob"); errs <- err }()
	}
	var taken int
	for range 2 {
		if err := <-errs; err == nil {
			taken++
		} else if !strings.Contains(err.Error(), "already retired early by bob") && !strings.Contains(err.Error(), "was already retired") {
			t.Errorf("second retire: %v", err)
		}
	}
	if taken != 1 {
		t.Fatalf("%d retires taken, want 1", taken)
	}
	d = h.waitPhase(d.ID, deployer.PhaseSucceeded)
	if !h.clock.Now().Equal(start) {
		t.Errorf("the clock moved %s", h.clock.Now().Sub(start))
	}
	if d.Retire == nil || d.Retire.By != "bob" || d.Retire.Kind != deployer.DecisionRetire {
		t.Fatalf("retire decision %+v", d.Retire)
	}
	assertSteps(t, d, allDone())
	h.assertServes("ns1-1", "ns2-1")
	h.assertUnlocked()
	if tagged := h.tagged(0); len(tagged) != 0 {
		t.Errorf("the old set is still there: %v", tagged)
	}

	for _, tc := range []struct {
		name string
		do   func() error
		want string
	}{
		{"retire after", func() error { _, err := h.dep.Retire(ctx, "ns", d.ID, "carol"); return err }, "already retired early by bob"},
		{"rollback after", func() error { _, err := h.dep.Rollback(ctx, "ns", d.ID, "carol"); return err }, "bob retired the old set (ns1-0, ns2-0) of deploy #1 early"},
	} {
		if err := tc.do(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	log, _ := h.store.AuditLog(20)
	var retires int
	for _, e := range log {
		if e.Action == "retire" {
			retires++
		}
	}
	if retires != 1 {
		t.Errorf("%d retires audited, want 1", retires)
	}
}

// After the window closed on its own, Retire now says so; a rollback
// requested first wins over a later retire.
func TestRetireAfterWindowAndAfterRollback(t *testing.T) {
	ctx := context.Background()
	t.Run("window closed", func(t *testing.T) {
		h := newHarness(t)
		d := h.deploy("alice", deployer.Options{Image: imageV2, AutoApprove: true})
		h.closeWindow(d.ID)
		if _, err := h.dep.Retire(ctx, "ns", d.ID, "bob"); err == nil || !strings.Contains(err.Error(), "closed at") || !strings.Contains(err.Error(), "was already retired") {
			t.Fatalf("retire after the window: %v", err)
		}
	})
	t.Run("rollback first", func(t *testing.T) {
		h := newHarness(t)
		d := h.deploy("alice", deployer.Options{Image: imageV2, AutoApprove: true})
		h.waitPhase(d.ID, deployer.PhaseRollbackWindow)
		if _, err := h.dep.Rollback(ctx, "ns", d.ID, "bob"); err != nil {
			t.Fatal(err)
		}
		_, err := h.dep.Retire(ctx, "ns", d.ID, "carol")
		if err == nil || !(strings.Contains(err.Error(), "rollback of deploy #1 was already requested by bob") || strings.Contains(err.Error(), "rolled back by bob")) {
			t.Fatalf("retire after a rollback: %v", err)
		}
		h.waitPhase(d.ID, deployer.PhaseRolledBack)
	})
}

// A retire recorded just before a crash is carried out after the restart,
// without waiting for the window's deadline.
func TestRetireSurvivesCrash(t *testing.T) {
	h := newHarness(t)
	d := h.deploy("alice", deployer.Options{Image: imageV2, AutoApprove: true})
	d = h.waitPhase(d.ID, deployer.PhaseRollbackWindow)
	h.crashRestart(d.ID, func(x *deployer.Deployment) {
		x.Retire = &deployer.Decision{Kind: deployer.DecisionRetire, By: "bob", At: h.clock.Now()}
	})
	d = h.waitPhase(d.ID, deployer.PhaseSucceeded)
	if d.Retire == nil || d.Retire.By != "bob" || !h.clock.Now().Before(d.RollbackDeadline) {
		t.Fatalf("after the crash: retire %+v, now %s, deadline %s", d.Retire, h.clock.Now(), d.RollbackDeadline)
	}
	h.assertServes("ns1-1", "ns2-1")
	h.assertUnlocked()
}
