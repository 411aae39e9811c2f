package deployer_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/greenlight/greenlight/deployer"
)

// TestReconcile leaves servers behind the way crashes and hand edits do and
// checks which the reconciler calls orphans, which it deletes, and which it
// must never touch.
func TestReconcile(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()

	// Deploy #1 is aborted at the gate; its cleanup deletes its servers.
	d := h.deploy("alice", deployer.Options{})
	h.waitPhase(d.ID, deployer.PhaseAwaitingApproval)
	if _, err := h.dep.Abort(ctx, "ns", 0, "bob", "not today"); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	h.waitPhase(d.ID, deployer.PhaseAborted)

	create := func(name string, tags ...string) deployer.Server {
		t.Helper()
		spec := deployer.ServerSpec{Service: "ns", Role: "ns1", Name: name, Image: imageV1}
		for _, tag := range tags {
			switch {
			case strings.HasPrefix(tag, "deploy:"):
				spec.DeployID = parseID(t, tag)
			case strings.HasPrefix(tag, "service:"):
				spec.Service = strings.TrimPrefix(tag, "service:")
				spec.Image = "local/" + spec.Service + "-v1"
			default:
				spec.Tags = append(spec.Tags, tag)
			}
		}
		// The pipeline's tags, as the clouds are given them.
		spec.Tags = append(spec.Tags, deployer.TagGreenlight, deployer.ServiceTag(spec.Service), deployer.DeployTag(spec.DeployID))
		s, err := h.cloud.Create(ctx, spec)
		if err != nil {
			t.Fatalf("create %s: %v", name, err)
		}
		return s
	}
	// What a crash during that cleanup would have left, and other strays.
	create("ns1-1x", "deploy:1")
	create("ns1-99", "deploy:99")
	create("web1-3", "service:web", "deploy:3")
	create("ns-build-1", "deploy:0", deployer.BakeTagPrefix+"20261101-1200")

	// Within the grace period deploy #1's leftovers are still its own.
	report, err := h.dep.Reconcile(ctx, deployer.ReconcileOptions{})
	if err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	if got, want := orphanNames(report), []string{"ns1-99", "web1-3"}; !slices.Equal(got, want) {
		t.Fatalf("orphans within the grace period = %v, want %v\n%s", got, want, report.Summary())
	}

	h.advance(deployer.DefaultOrphanGrace + time.Second)
	report, err = h.dep.Reconcile(ctx, deployer.ReconcileOptions{})
	if err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	want := map[string]string{
		"ns1-1x": "deploy #1 was aborted",
		"ns1-99": "no deploy #99 is known",
		"web1-3": `no service "web"`,
	}
	if got := orphanNames(report); !slices.Equal(got, []string{"ns1-1x", "ns1-99", "web1-3"}) {
		t.Fatalf("orphans = %v, want %v\n%s", got, want, report.Summary())
	}
	for _, o := range report.Orphans {
		if !strings.Contains(o.Why, want[o.Server.Name]) {
			t.Errorf("%s: why = %q, want it to say %q", o.Server.Name, o.Why, want[o.Server.Name])
		}
		if o.Deleted {
			t.Errorf("%s deleted without delete_orphans", o.Server.Name)
		}
	}
	if report.Checked != 6 {
		t.Errorf("checked %d servers, want 6 (2 live, 4 strays)", report.Checked)
	}
	if s := report.Summary(); !strings.Contains(s, "3 of 6 servers") || !strings.Contains(s, "delete_orphans is off") {
		t.Errorf("summary = %q", s)
	}

	report, err = h.dep.Reconcile(ctx, deployer.ReconcileOptions{Delete: true})
	if err != nil {
		t.Fatalf("Reconcile with delete: %v", err)
	}
	for _, o := range report.Orphans {
		wantDeleted := o.Server.Name != "web1-3"
		if o.Deleted != wantDeleted {
			t.Errorf("%s deleted = %v, want %v (%s)", o.Server.Name, o.Deleted, wantDeleted, o.Kept)
		}
	}
	var left []string
	for _, s := range h.all() {
		left = append(left, s.Name)
	}
	if want := []string{"ns-build-1", "ns1-0", "ns2-0", "web1-3"}; !slices.Equal(left, want) {
		t.Errorf("servers after deleting orphans = %v, want %v", left, want)
	}
	h.assertServes("ns1-0", "ns2-0")
}

// TestReconcileLeavesDeploysInFlight runs the reconciler, deleting, while a
// deploy waits at the gate: its servers are not orphans.
func TestReconcileLeavesDeploysInFlight(t *testing.T) {
	h := newHarness(t)
	d := h.deploy("alice", deployer.Options{})
	h.waitPhase(d.ID, deployer.PhaseAwaitingApproval)
	h.advance(2 * deployer.DefaultOrphanGrace)
	report, err := h.dep.Reconcile(context.Background(), deployer.ReconcileOptions{Delete: true})
	if err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	if len(report.Orphans) != 0 || report.Checked != 4 {
		t.Fatalf("report = %s (checked %d), want no orphans among 4", report.Summary(), report.Checked)
	}
	if got := h.tagged(d.ID); len(got) != 2 {
		t.Fatalf("servers of deploy #%d = %v, want both kept", d.ID, got)
	}
}

func orphanNames(r deployer.ReconcileReport) []string {
	var names []string
	for _, o := range r.Orphans {
		names = append(names, o.Server.Name)
	}
	slices.Sort(names)
	return names
}

func parseID(t *testing.T, tag string) uint64 {
	t.Helper()
	var id uint64
	for _, c := range strings.TrimPrefix(tag, "deploy:") {
		id = id*10 + uint64(c-'0')
	}
	return id
}
