package deployer_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/deployer/dnscheck"
	"github.com/greenlight/greenlight/deployer/local"
	"github.com/greenlight/greenlight/internal/eventually"
	"github.com/greenlight/greenlight/storage"
)

// The zone every local image serves, and the images the tests deploy.
const (
	zone        = "example.test"
	imageV1     = "local/ns-v1"
	imageV2     = "local/ns-v2"
	imageBroken = "local/ns-broken"
	imageStale  = "local/ns-stale"
)

// epoch is where the ManualClock starts.
var epoch = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// Timeouts of the service the harness deploys.
const (
	approvalTimeout = 30 * time.Minute
	rollbackWindow  = 15 * time.Minute
)

// waitLimit bounds every wait for the pipeline to reach a state.
const waitLimit = 15 * time.Second

// recorder is a Reporter that keeps every event for assertions.
type recorder struct {
	mu     sync.Mutex
	events []deployer.Event
}

func (r *recorder) Report(_ context.Context, ev deployer.Event) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, ev)
}

// texts returns the texts of the events of kind about deploy id.
func (r *recorder) texts(kind deployer.EventKind, id uint64) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, ev := range r.events {
		if ev.Kind == kind && ev.Deployment.ID == id {
			out = append(out, ev.Text)
		}
	}
	return out
}

// options change how a harness is built.
type options struct {
	bootDelay   time.Duration // the local cloud's; negative = servers boot at once
	autoPromote bool
	fourEyes    bool
	compare     bool // compare zones before approval, with these limits
	limits      deployer.ChangeLimits
	comparer    deployer.ZoneComparer // overrides the real comparison when set
	zones       deployer.ZoneSource   // the service's zones source, when set
	zeroWindow  bool                  // rollback_window: 0s, given explicitly
	zeroGate    bool                  // approval_timeout: 0s, given explicitly
	freezes     []deployer.FreezeWindow
	windows     []deployer.DeployWindow
	cloud       func(deployer.Cloud) deployer.Cloud                      // wraps the local cloud, when set
	checker     func(deployer.Checker, deployer.Switch) deployer.Checker // wraps the DNS checker, given the load balancer, when set
	logs        io.Writer                                                // the deployer's log, as text; discarded when nil
}

// harness is greenlight's deployer wired to real parts: a bbolt store, the
// local cloud of in-process DNS servers, the local load balancer and DNS
// checks, all driven by one ManualClock.
type harness struct {
	t     *testing.T
	opts  options
	dir   string
	clock *testClock // a fresh one, at the same time, after each restart
	rep   *recorder

	// Rebuilt by restart.
	store  *storage.DB
	cloud  *local.Cloud
	lb     *local.Balancer
	dep    *deployer.Deployer
	cancel context.CancelFunc
	closed bool
}

// newHarness starts a deployer for service "ns" and seeds it with local/ns-v1:
// ns1-0 and ns2-0 serve behind the load balancer.
func newHarness(t *testing.T, edit ...func(*options)) *harness {
	t.Helper()
	o := options{bootDelay: -1}
	for _, e := range edit {
		e(&o)
	}
	h := &harness{t: t, opts: o, dir: t.TempDir(), clock: newTestClock(epoch), rep: &recorder{}}
	h.open()
	t.Cleanup(h.close)
	h.seed()
	return h
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// open builds store, cloud, balancer and deployer on h's directories and
// starts the deployer.
func (h *harness) open() {
	t := h.t
	t.Helper()
	var err error
	h.store, err = storage.Open(filepath.Join(h.dir, "greenlight.db"), storage.Options{Clock: h.clock})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	h.cloud, err = local.New(local.Options{Dir: filepath.Join(h.dir, "cloud"), BootDelay: h.opts.bootDelay, Clock: h.clock, Logger: discard()})
	if err != nil {
		t.Fatalf("open local cloud: %v", err)
	}
	h.lb, err = local.NewBalancer("127.0.0.1:0", local.BalancerOptions{Logger: discard()})
	if err != nil {
		t.Fatalf("start load balancer: %v", err)
	}
	svc := &deployer.Service{
		Name:  "ns",
		Roles: []string{"ns1", "ns2"},
		Check: deployer.CheckSpec{
			Zones:    []string{zone},
			Passes:   2,
			Interval: 0,
			Timeout:  time.Second,
		},
		ApprovalTimeout: approvalTimeout,
		AutoPromote:     h.opts.autoPromote,
		FourEyes:        h.opts.fourEyes,
		RollbackWindow:  rollbackWindow,
		Cloud:           h.cloud,
		Provisioner:     h.cloud,
		Switch:          h.lb,
		Checker:         dnscheck.New(dnscheck.Options{Clock: h.clock}),
		Zones:           h.opts.zones,
	}
	if h.opts.cloud != nil {
		svc.Cloud = h.opts.cloud(h.cloud)
	}
	svc.Freezes = h.opts.freezes
	svc.DeployWindows = h.opts.windows
	if h.opts.zeroWindow {
		svc.RollbackWindow, svc.RollbackWindowSet = 0, true
	}
	if h.opts.zeroGate {
		svc.ApprovalTimeout, svc.ApprovalTimeoutSet = 0, true
	}
	if h.opts.compare {
		svc.Compare, svc.Limits = svc.Checker.(*dnscheck.Checker).Comparer(dnscheck.CompareOptions{}), h.opts.limits
		if h.opts.comparer != nil {
			svc.Compare = h.opts.comparer
		}
	}
	if h.opts.checker != nil {
		svc.Checker = h.opts.checker(svc.Checker, svc.Switch)
	}
	log := discard()
	if h.opts.logs != nil {
		log = slog.New(slog.NewTextHandler(h.opts.logs, nil))
	}
	h.dep, err = deployer.New(deployer.Config{
		Store:    h.store,
		Clock:    h.clock,
		Reporter: h.rep,
		Logger:   log,
		Services: []*deployer.Service{svc},
	})
	if err != nil {
		t.Fatalf("new deployer: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.closed = false
	if err := h.dep.Start(ctx); err != nil {
		t.Fatalf("start deployer: %v", err)
	}
}

// close stops the deployer, waits for its pipelines, then closes the
// balancer, the cloud and the store. It is what a shutdown does.
func (h *harness) close() {
	if h.closed {
		return
	}
	h.closed = true
	h.cancel()
	h.dep.Wait()
	h.lb.Close()
	h.cloud.Close()
	if err := h.store.Close(); err != nil {
		h.t.Errorf("close store: %v", err)
	}
}

// restart is greenlight stopped and started again on the same data: the
// balancer comes back on a new port, and the clock is a new one that goes
// on from the old one's time, so no waiter of the stopped run is left on it.
func (h *harness) restart() {
	h.t.Helper()
	h.close()
	h.clock = newTestClock(h.clock.Now())
	h.open()
}

// crashRestart is greenlight killed between two writes of deployment id and
// started again: edit makes the stored deployment what the crash left.
func (h *harness) crashRestart(id uint64, edit func(*deployer.Deployment)) {
	h.t.Helper()
	h.close()
	db, err := storage.Open(filepath.Join(h.dir, "greenlight.db"), storage.Options{Clock: h.clock})
	if err != nil {
		h.t.Fatalf("open store: %v", err)
	}
	_, err = db.UpdateDeployment(id, func(d *deployer.Deployment) error { edit(d); return nil })
	if cerr := db.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		h.t.Fatalf("stage the crash of deploy #%d: %v", id, err)
	}
	h.clock = newTestClock(h.clock.Now())
	h.open()
}

// seed builds the first live set from local/ns-v1. With a boot delay the
// servers wait for the clock, so seed advances it once both are booting.
func (h *harness) seed() {
	t := h.t
	t.Helper()
	type result struct {
		live deployer.ServiceState
		err  error
	}
	done := make(chan result, 1)
	go func() {
		live, err := h.dep.Seed(context.Background(), "ns", imageV1)
		done <- result{live, err}
	}()
	if h.opts.bootDelay > 0 {
		h.boot("the seed servers")
	}
	var res result
	select {
	case res = <-done:
	case <-time.After(waitLimit):
		t.Fatalf("Seed did not return within %s", waitLimit)
	}
	if res.err != nil {
		t.Fatalf("Seed: %v", res.err)
	}
	if got, want := serverNames(res.live.Servers), []string{"ns1-0", "ns2-0"}; !slices.Equal(got, want) {
		t.Fatalf("seeded set = %v, want %v", got, want)
	}
}

// deploy asks for a deploy of ns by user and fails the test if it is refused.
func (h *harness) deploy(user string, opts deployer.Options) deployer.Deployment {
	h.t.Helper()
	d, err := h.dep.Deploy(context.Background(), deployer.Request{Service: "ns", User: user, Options: opts})
	if err != nil {
		h.t.Fatalf("Deploy by %s (%+v): %v", user, opts, err)
	}
	return d
}

// deployment reads deployment id from the store.
func (h *harness) deployment(id uint64) deployer.Deployment {
	h.t.Helper()
	d, err := h.store.Deployment(id)
	if err != nil {
		h.t.Fatalf("read deployment #%d: %v", id, err)
	}
	return d
}

// waitPhase polls the store until deployment id is in phase want. A final
// phase other than want fails the test at once, with the deployment's error.
func (h *harness) waitPhase(id uint64, want deployer.Phase) deployer.Deployment {
	h.t.Helper()
	var d deployer.Deployment
	reached := eventually.Holds(waitLimit, func() bool {
		d = h.deployment(id)
		if d.Phase != want && d.Phase.Final() {
			h.t.Fatalf("deploy #%d ended %s, want %s; error: %s; steps: %s", id, d.Phase, want, d.Error, describeSteps(d))
		}
		return d.Phase == want
	})
	if !reached {
		h.t.Fatalf("deploy #%d is %s on step %s after %s, want %s; steps: %s", id, d.Phase, d.CurrentStep(), waitLimit, want, describeSteps(d))
	}
	return d
}

// waitStep polls the store until deployment id's step name has status want.
func (h *harness) waitStep(id uint64, name deployer.StepName, want deployer.StepStatus) deployer.Deployment {
	h.t.Helper()
	var d deployer.Deployment
	eventually.Within(h.t, waitLimit, fmt.Sprintf("step %s of deploy #%d to be %s", name, id, want), func() bool {
		d = h.deployment(id)
		return d.Step(name).Status == want
	})
	return d
}

// advance moves the ManualClock forward by d.
func (h *harness) advance(d time.Duration) { h.clock.Advance(d) }

// passDeadline waits until something waits on the clock for deadline (the
// approval gate, the rollback window), then moves the clock a second past it.
func (h *harness) passDeadline(deadline time.Time, what string) {
	h.t.Helper()
	eventually.Within(h.t, waitLimit, fmt.Sprintf("the pipeline to wait for %s at %s", what, deadline.Format(time.TimeOnly)),
		func() bool { return h.clock.waiting(deadline) > 0 })
	h.advance(deadline.Sub(h.clock.Now()) + time.Second)
}

// boot lets two booting servers of the local cloud finish: it waits until
// both wait for the boot delay on the clock, then advances it.
func (h *harness) boot(what string) {
	h.t.Helper()
	at := h.clock.Now().Add(h.opts.bootDelay)
	eventually.Within(h.t, waitLimit, what+" to boot", func() bool { return h.clock.waiting(at) >= 2 })
	h.advance(h.opts.bootDelay)
}

// bootNext lets the servers of deploy id finish booting.
func (h *harness) bootNext(id uint64) {
	h.t.Helper()
	h.waitStep(id, deployer.StepWaitRunning, deployer.StatusRunning)
	h.boot(fmt.Sprintf("the servers of deploy #%d", id))
}

// closeWindow waits until deploy id is in its rollback window, lets the
// window pass and waits until the deploy has succeeded.
func (h *harness) closeWindow(id uint64) deployer.Deployment {
	h.t.Helper()
	d := h.waitPhase(id, deployer.PhaseRollbackWindow)
	h.passDeadline(d.RollbackDeadline, fmt.Sprintf("the rollback window of deploy #%d to close", id))
	return h.waitPhase(id, deployer.PhaseSucceeded)
}

// testClock is the ManualClock of one greenlight run, which also notes
// when each caller of After wants to wake, so a test moves time only once
// the code under test waits for it. Moving it earlier can lose a wake-up:
// code that reads Now and then calls After(deadline-now) waits too long
// when the clock moves in between.
type testClock struct {
	*deployer.ManualClock
	mu      sync.Mutex  // Advance and After; Advance only under it
	pending []time.Time // wake-up times not reached yet
}

func newTestClock(now time.Time) *testClock {
	return &testClock{ManualClock: deployer.NewManualClock(now)}
}

func (c *testClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d > 0 {
		c.pending = append(c.pending, c.ManualClock.Now().Add(d))
	}
	return c.ManualClock.After(d)
}

// Until is After(t - Now()) in one step. ManualClock has no Until; this
// one is here so that code which waits with an Until its clock may have
// still goes through the record, instead of a method promoted from an
// embedded ManualClock that would bypass it.
func (c *testClock) Until(t time.Time) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	d := t.Sub(c.ManualClock.Now())
	if d > 0 {
		c.pending = append(c.pending, t)
	}
	return c.ManualClock.After(d)
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.ManualClock.Advance(d)
	now := c.ManualClock.Now()
	c.pending = slices.DeleteFunc(c.pending, func(at time.Time) bool { return !at.After(now) })
}

// waiting counts the callers of After and Until waiting to wake at exactly at.
func (c *testClock) waiting(at time.Time) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, p := range c.pending {
		if p.Equal(at) {
			n++
		}
	}
	return n
}

// lock is the service's lock, or nil.
func (h *harness) lock() *deployer.Lock {
	h.t.Helper()
	l, err := h.store.CurrentLock("ns")
	if err != nil {
		h.t.Fatalf("CurrentLock: %v", err)
	}
	return l
}

// assertUnlocked fails when the service's lock is held.
func (h *harness) assertUnlocked() {
	h.t.Helper()
	if l := h.lock(); l != nil {
		h.t.Errorf("lock of ns = %+v, want free", *l)
	}
}

// tagged lists the names of the servers the cloud has with deploy id's
// tag, sorted.
func (h *harness) tagged(id uint64) []string {
	h.t.Helper()
	servers, err := h.cloud.ListByTag(context.Background(), deployer.DeployTag(id))
	if err != nil {
		h.t.Fatalf("ListByTag %s: %v", deployer.DeployTag(id), err)
	}
	names := serverNames(servers)
	slices.Sort(names)
	return names
}

// all lists every server greenlight has in the cloud, sorted by name.
func (h *harness) all() []deployer.Server {
	h.t.Helper()
	servers, err := h.cloud.ListByTag(context.Background(), deployer.TagGreenlight)
	if err != nil {
		h.t.Fatalf("ListByTag %s: %v", deployer.TagGreenlight, err)
	}
	sort.Slice(servers, func(i, j int) bool { return servers[i].Name < servers[j].Name })
	return servers
}

// live is the service's live state as stored.
func (h *harness) live() deployer.ServiceState {
	h.t.Helper()
	s, err := h.store.Service("ns")
	if err != nil {
		h.t.Fatalf("store.Service: %v", err)
	}
	return s
}

// query asks the load balancer for the zone's SOA over network with EDNS
// NSID, failing the test when no reply comes.
func (h *harness) query(network string) (rcode int, nsid string) {
	h.t.Helper()
	rcode, nsid, err := askNSID(network, h.lb.Addr())
	if err != nil {
		h.t.Fatalf("query the load balancer %s over %s: %v", h.lb.Addr(), network, err)
	}
	return rcode, nsid
}

// answering asks the load balancer n times over UDP and n times over TCP
// and returns the NSIDs that answered, sorted. Every answer must be NOERROR.
func (h *harness) answering(n int) []string {
	h.t.Helper()
	seen := map[string]bool{}
	for range n {
		for _, network := range []string{"udp", "tcp"} {
			rcode, nsid := h.query(network)
			if rcode != dns.RcodeSuccess {
				h.t.Fatalf("load balancer answered %s over %s (NSID %q), want NOERROR", dns.RcodeToString[rcode], network, nsid)
			}
			seen[nsid] = true
		}
	}
	return sortedKeys(seen)
}

// assertServes fails unless the load balancer's answers come from exactly
// the servers named.
func (h *harness) assertServes(want ...string) {
	h.t.Helper()
	if got := h.answering(4); !slices.Equal(got, want) {
		h.t.Errorf("load balancer answers from %v, want %v", got, want)
	}
}

// askNSID sends one SOA query for the zone, with an empty EDNS NSID option,
// to addr over network on a fresh socket; it returns the rcode and the
// server name the NSID option carries (hex-decoded).
func askNSID(network, addr string) (int, string, error) {
	m := new(dns.Msg).SetQuestion(dns.Fqdn(zone), dns.TypeSOA)
	m.RecursionDesired = false
	m.SetEdns0(1232, false)
	opt := m.IsEdns0()
	opt.Option = append(opt.Option, &dns.EDNS0_NSID{Code: dns.EDNS0NSID})
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		return 0, "", err
	}
	return r.Rcode, dnscheck.NSIDOf(r), nil
}

// assertSteps compares the statuses of the steps named in want.
func assertSteps(t testing.TB, d deployer.Deployment, want map[deployer.StepName]deployer.StepStatus) {
	t.Helper()
	for _, name := range deployer.Steps() {
		w, ok := want[name]
		if !ok {
			continue
		}
		if got := d.Step(name).Status; got != w {
			t.Errorf("deploy #%d step %s = %s, want %s (detail %q)", d.ID, name, got, w, d.Step(name).Detail)
		}
	}
}

// statuses builds a want map for assertSteps: steps before from are done,
// from has status at, and the ones after it are skipped.
func statuses(from deployer.StepName, at deployer.StepStatus) map[deployer.StepName]deployer.StepStatus {
	want := map[deployer.StepName]deployer.StepStatus{}
	seen := false
	for _, name := range deployer.Steps() {
		switch {
		case name == from:
			want[name], seen = at, true
		case seen:
			want[name] = deployer.StatusSkipped
		default:
			want[name] = deployer.StatusDone
		}
	}
	return want
}

// allDone is the want map of a deploy that ran every step.
func allDone() map[deployer.StepName]deployer.StepStatus {
	want := map[deployer.StepName]deployer.StepStatus{}
	for _, name := range deployer.Steps() {
		want[name] = deployer.StatusDone
	}
	return want
}

func describeSteps(d deployer.Deployment) string {
	parts := make([]string, len(d.Steps))
	for i, s := range d.Steps {
		parts[i] = fmt.Sprintf("%s=%s", s.Name, s.Status)
		if s.Detail != "" {
			parts[i] += fmt.Sprintf(" (%s)", s.Detail)
		}
	}
	return strings.Join(parts, ", ")
}

func serverNames(servers []deployer.Server) []string {
	out := make([]string, len(servers))
	for i, s := range servers {
		out[i] = s.Name
	}
	return out
}

func sortedKeys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// containsAll reports whether s contains every one of subs.
func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		if !strings.Contains(s, sub) {
			return false
		}
	}
	return true
}

// waitIdle waits until no deployment is in an active step.
func (h *harness) waitIdle() {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitLimit)
	defer cancel()
	if err := h.dep.WaitIdle(ctx); err != nil {
		h.t.Fatalf("deployer still busy after %s", waitLimit)
	}
}
