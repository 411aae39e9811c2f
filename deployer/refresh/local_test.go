package refresh

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/dnscheck"
	"github.com/greenlight/greenlight/deployer/local"
	"github.com/greenlight/greenlight/internal/eventually"
	"github.com/greenlight/greenlight/storage"
)

// localMode is greenlight in its embedded mode, as main wires it: a bbolt
// store, the local cloud, its load balancer and the DNS checker behind a
// real Deployer of service "ns", seeded with local/ns-v1, and a Refresher
// baking on the same cloud.
type localMode struct {
	clock *deployer.ManualClock
	store *storage.DB
	cloud *local.Cloud
	lb    *local.Balancer
	dep   *deployer.Deployer
	evs   *events
	r     *Refresher
}

func newLocalMode(t *testing.T, job Job) *localMode {
	t.Helper()
	dir := t.TempDir()
	m := &localMode{clock: deployer.NewManualClock(monday), evs: newEvents()}
	var err error
	if m.store, err = storage.Open(filepath.Join(dir, "greenlight.db"), storage.Options{Clock: m.clock}); err != nil {
		t.Fatal(err)
	}
	if m.cloud, err = local.New(local.Options{Dir: filepath.Join(dir, "cloud"), BootDelay: -1, Clock: m.clock, Logger: discard()}); err != nil {
		t.Fatal(err)
	}
	if m.lb, err = local.NewBalancer("127.0.0.1:0", local.BalancerOptions{Logger: discard()}); err != nil {
		t.Fatal(err)
	}
	m.dep, err = deployer.New(deployer.Config{Store: m.store, Clock: m.clock, Logger: discard(), Services: []*deployer.Service{{
		Name:        "ns",
		Roles:       []string{"ns1", "ns2"},
		Check:       deployer.CheckSpec{Zones: []string{"example.test"}, Passes: 2, Timeout: time.Second},
		Cloud:       m.cloud,
		Provisioner: m.cloud,
		Switch:      m.lb,
		Checker:     dnscheck.New(dnscheck.Options{Clock: m.clock}),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() {
		cancel()
		m.dep.Wait()
		m.lb.Close()
		m.cloud.Close()
		m.store.Close()
	})
	if err := m.dep.Start(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := m.dep.Seed(ctx, "ns", "local/ns-v1"); err != nil {
		t.Fatalf("Seed: %v", err)
	}
	m.r, err = New(Options{Jobs: []Job{job}, Baker: m.cloud, Images: m.cloud, State: m.store,
		Deploys: FromDeployer(m.dep), Reporter: m.evs, Clock: m.clock, Logger: discard()})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// waitPhase polls deploy id until it is in phase want.
func (m *localMode) waitPhase(t *testing.T, id uint64, want deployer.Phase) deployer.Deployment {
	t.Helper()
	var d deployer.Deployment
	eventually.Within(t, waitLimit, fmt.Sprintf("deploy #%d to be %s", id, want), func() bool {
		var err error
		if d, err = m.store.Deployment(id); err != nil {
			t.Fatal(err)
		}
		if d.Phase != want && d.Phase.Final() {
			t.Fatalf("deploy #%d ended %s: %s", id, d.Phase, d.Error)
		}
		return d.Phase == want
	})
	return d
}

// ask queries addr over UDP.
func ask(t *testing.T, addr, name string, qtype uint16) *dns.Msg {
	t.Helper()
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	r, _, err := (&dns.Client{Timeout: 2 * time.Second}).Exchange(q, addr)
	if err != nil {
		t.Fatalf("%s %s @%s: %v", name, dns.TypeToString[qtype], addr, err)
	}
	return r
}

// serialAndVersion is what addr serves: the SOA serial and the version TXT.
func serialAndVersion(t *testing.T, addr string) (uint32, string) {
	t.Helper()
	var serial uint32
	if r := ask(t, addr, "example.test", dns.TypeSOA); len(r.Answer) == 1 {
		if soa, ok := r.Answer[0].(*dns.SOA); ok {
			serial = soa.Serial
		}
	}
	var version string
	if r := ask(t, addr, "version.example.test", dns.TypeTXT); len(r.Answer) == 1 {
		if txt, ok := r.Answer[0].(*dns.TXT); ok {
			version = strings.Join(txt.Txt, "")
		}
	}
	return serial, version
}

// /deploy refresh ns in local mode bakes local/ns-v3, prunes v2 (v1 is
// live), and a deploy of the announced image puts servers serving v3's
// serial live behind the load balancer.
func TestLocalRefreshThenDeploy(t *testing.T) {
	m := newLocalMode(t, Job{Service: "ns", Keep: 1, BaseImage: "local"})
	ctx := context.Background()
	if _, err := m.r.RunNow(ctx, "ns", "U1"); err != nil {
		t.Fatal(err)
	}
	m.evs.next(t, EventStarted)
	ev := m.evs.next(t, EventFinished)
	m.r.Wait()
	if ev.Image.ID != "local/ns-v3" || ev.Image.Label != "ns-golden-20261123-0300" ||
		ev.Image.Description != "baked from local by greenlight build 20261123-0300" || !ev.Image.Golden {
		t.Errorf("baked image = %+v", ev.Image)
	}
	if got := ids(ev.Pruned); !slices.Equal(got, []string{"local/ns-v2"}) || ev.PruneErr != nil {
		t.Errorf("pruned %q (%v), want local/ns-v2 only: v1 is live", got, ev.PruneErr)
	}
	images, _ := m.cloud.Images(ctx, "ns")
	if got := ids(images); !slices.Equal(got, []string{"local/ns-v3", "local/ns-v1", "local/ns-broken", "local/ns-stale"}) {
		t.Errorf("images after the refresh = %q", got)
	}

	d, err := m.dep.Deploy(ctx, deployer.Request{Service: "ns", User: "U1",
		Options: deployer.Options{Image: ev.Image.ID, AutoApprove: true}})
	if err != nil {
		t.Fatalf("deploy of the baked image: %v", err)
	}
	d = m.waitPhase(t, d.ID, deployer.PhaseRollbackWindow)
	if serial, version := serialAndVersion(t, m.lb.Addr()); serial != 2026110103 || version != "image v3" {
		t.Errorf("through the load balancer: serial %d, %q; want 2026110103, image v3", serial, version)
	}
	eventually.Within(t, waitLimit, "the rollback window's wait", func() bool { return m.clock.Waiters() > 0 })
	m.clock.Advance(d.RollbackDeadline.Sub(m.clock.Now()) + time.Second)
	m.waitPhase(t, d.ID, deployer.PhaseSucceeded)

	live, err := m.store.Service("ns")
	if err != nil || live.Image != "local/ns-v3" || len(live.Servers) != 2 {
		t.Fatalf("live set = %+v, %v", live, err)
	}
	for _, s := range live.Servers {
		if serial, version := serialAndVersion(t, s.Addr); serial != 2026110103 || version != "image v3" {
			t.Errorf("%s answers serial %d, %q; want 2026110103, image v3", s.Name, serial, version)
		}
	}
}

// With auto_deploy, the scheduled bake starts a deploy of the new image by
// itself, which waits at the approval gate; a bake while that deploy holds
// the lock still succeeds and says why it did not deploy.
func TestLocalAutoDeployWaitsForApproval(t *testing.T) {
	m := newLocalMode(t, Job{Service: "ns", Schedule: weekly, AutoDeploy: true, Keep: 5})
	rr := run(t, m.r)
	waitLoops(t, m.clock, 1)
	m.clock.Advance(time.Hour)
	started := m.evs.next(t, EventStarted)
	ev := m.evs.next(t, EventFinished)
	if started.Trigger != TriggerSchedule || ev.Image.ID != "local/ns-v3" || ev.DeployID == 0 || ev.DeployErr != nil {
		t.Fatalf("finished event: image %s, deploy %d (%v)", ev.Image.ID, ev.DeployID, ev.DeployErr)
	}
	d := m.waitPhase(t, ev.DeployID, deployer.PhaseAwaitingApproval)
	if d.Requester != "greenlight (scheduled refresh)" || d.ImageNew != "local/ns-v3" || d.ImageOld != "local/ns-v1" || d.Approval != nil {
		t.Errorf("auto deploy = requester %q, %s → %s, approval %+v", d.Requester, d.ImageOld, d.ImageNew, d.Approval)
	}
	if live, _ := m.store.Service("ns"); live.Image != "local/ns-v1" {
		t.Errorf("live image = %s before approval, want local/ns-v1", live.Image)
	}

	if _, err := m.r.RunNow(context.Background(), "ns", "U2"); err != nil {
		t.Fatal(err)
	}
	m.evs.next(t, EventStarted)
	ev2 := m.evs.next(t, EventFinished)
	if ev2.Image.ID != "local/ns-v4" || ev2.Image.Label != "ns-golden-20261123-0400-2" || ev2.DeployID != 0 || ev2.DeployErr == nil ||
		!strings.Contains(ev2.DeployErr.Error(), "ns is locked by deploy #1 by greenlight (scheduled refresh)") {
		t.Errorf("bake during the deploy: image %s, deploy %d, %v", ev2.Image.ID, ev2.DeployID, ev2.DeployErr)
	}
	if st := m.r.Schedules(context.Background())[0]; st.LastResult != "ok: ns-golden-20261123-0400-2" || !st.AutoDeploy {
		t.Errorf("status = %+v", st)
	}

	if _, err := m.dep.Abort(context.Background(), "ns", ev.DeployID, "U2", "test over"); err != nil {
		t.Fatal(err)
	}
	m.waitPhase(t, ev.DeployID, deployer.PhaseAborted)
	rr.stop()
}
