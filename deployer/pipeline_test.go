package deployer_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/greenlight/greenlight/deployer"
	"github.com/greenlight/greenlight/internal/eventually"
)

var (
	oldSet = []string{"ns1-0", "ns2-0"}
	newSet = []string{"ns1-1", "ns2-1"}
)

// Load phases: a query counts in the phase it started in.
const (
	beforeDeploy = iota // before Deploy was called
	duringDeploy        // from Deploy until the rollback window opened
	inWindow            // traffic switched, the old set kept
	afterRetire         // once the old set was retired
	loadPhases
)

// load is DNS traffic through the load balancer: UDP workers and TCP
// workers, each paced by a ticker, every query on a fresh socket (a fresh
// connection for TCP) asking for the zone's SOA with EDNS NSID.
type load struct {
	addr  string
	phase atomic.Int32
	start time.Time
	stop  context.CancelFunc
	wg    sync.WaitGroup

	mu       sync.Mutex
	udp, tcp int
	failed   int
	failures []string                   // the first few, for the failure message
	answered [loadPhases]map[string]int // phase → NSID → answers
	took     time.Duration
}

const (
	loadCap      = 30 * time.Second // hard cap on how long the load runs
	maxFailures  = 10               // failures quoted in the message
	minLoadQPS   = 500              // offered by the pacing below; what the machine achieves is logged
	minQueries   = 500
	loadUDPEvery = 3 * time.Millisecond // per UDP worker
	loadTCPEvery = 6 * time.Millisecond // per TCP worker
)

func startLoad(addr string, udpWorkers, tcpWorkers int) *load {
	ctx, cancel := context.WithTimeout(context.Background(), loadCap)
	l := &load{addr: addr, start: time.Now(), stop: cancel}
	for i := range l.answered {
		l.answered[i] = map[string]int{}
	}
	for range udpWorkers {
		l.wg.Go(func() { l.work(ctx, "udp", loadUDPEvery) })
	}
	for range tcpWorkers {
		l.wg.Go(func() { l.work(ctx, "tcp", loadTCPEvery) })
	}
	return l
}

func (l *load) work(ctx context.Context, network string, every time.Duration) {
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		phase := l.phase.Load()
		rcode, nsid, err := askNSID(network, l.addr)
		l.record(network, phase, rcode, nsid, err)
	}
}

func (l *load) record(network string, phase int32, rcode int, nsid string, err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if network == "udp" {
		l.udp++
	} else {
		l.tcp++
	}
	var failure string
	switch {
	case err != nil:
		failure = err.Error()
	case rcode != dns.RcodeSuccess:
		failure = "answered " + dns.RcodeToString[rcode] + " (NSID " + nsid + ")"
	case nsid == "":
		failure = "answered without an NSID"
	}
	if failure != "" {
		l.failed++
		if len(l.failures) < maxFailures {
			l.failures = append(l.failures, fmt.Sprintf("%s at +%s: %s", strings.ToUpper(network), time.Since(l.start).Round(time.Millisecond), failure))
		}
		return
	}
	l.answered[phase][nsid]++
}

// answers counts the queries of a phase that were answered.
func (l *load) answers(phase int) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, c := range l.answered[phase] {
		n += c
	}
	return n
}

// halt stops the workers and waits for their last queries.
func (l *load) halt() {
	l.stop()
	l.wg.Wait()
	l.mu.Lock()
	l.took = time.Since(l.start)
	l.mu.Unlock()
}

// TestDeployUnderLoad deploys the newest golden image while clients query
// the load balancer over UDP and TCP the whole time, from before the deploy
// until after the old set is retired, and no query may fail.
func TestDeployUnderLoad(t *testing.T) {
	h := newHarness(t)
	const udpWorkers, tcpWorkers = 4, 2
	if offered := udpWorkers*int(time.Second/loadUDPEvery) + tcpWorkers*int(time.Second/loadTCPEvery); offered < minLoadQPS {
		t.Fatalf("the load offers %d queries/s, want at least %d", offered, minLoadQPS)
	}
	l := startLoad(h.lb.Addr(), udpWorkers, tcpWorkers)
	defer l.halt()

	eventually.True(t, "200 answers before the deploy", func() bool { return l.answers(beforeDeploy) >= 200 })
	l.phase.Store(duringDeploy)
	d := h.deploy("alice", deployer.Options{Image: imageV2})
	if d.ID != 1 {
		t.Fatalf("first deploy got ID %d, want 1", d.ID)
	}
	h.waitPhase(d.ID, deployer.PhaseAwaitingApproval)
	if _, err := h.dep.Approve(context.Background(), "ns", 0, "bob"); err != nil {
		t.Fatalf("Approve: %v", err)
	}
	d = h.waitPhase(d.ID, deployer.PhaseRollbackWindow)
	l.phase.Store(inWindow)
	eventually.True(t, "100 answers in the rollback window", func() bool { return l.answers(inWindow) >= 100 })
	h.passDeadline(d.RollbackDeadline, "the rollback window to close")
	d = h.waitPhase(d.ID, deployer.PhaseSucceeded)
	l.phase.Store(afterRetire)
	eventually.True(t, "300 answers after the old set was retired", func() bool { return l.answers(afterRetire) >= 300 })
	l.halt()

	l.mu.Lock()
	udp, tcp, failed, took := l.udp, l.tcp, l.failed, l.took
	failures := slices.Clone(l.failures)
	var answered [loadPhases][]string
	for i, m := range l.answered {
		answered[i] = sortedKeys(boolKeys(m))
	}
	counts := fmt.Sprint(l.answered)
	l.mu.Unlock()
	qps := float64(udp+tcp) / took.Seconds()
	t.Logf("load: %d UDP + %d TCP queries, %d failed, in %s: %.0f queries/s; answers by phase (before, during, in the window, after): %s",
		udp, tcp, failed, took.Round(time.Millisecond), qps, counts)

	if failed != 0 {
		t.Errorf("%d of %d queries failed, want 0; first: %s", failed, udp+tcp, strings.Join(failures, "; "))
	}
	// The pacing offers at least minLoadQPS; the rate reached depends on
	// how busy the machine is, so it is logged, not asserted.
	if udp+tcp < minQueries {
		t.Errorf("the load sent %d queries, want at least %d", udp+tcp, minQueries)
	}
	if udp == 0 || tcp == 0 {
		t.Errorf("queries: %d UDP, %d TCP; want both", udp, tcp)
	}
	if got := answered[beforeDeploy]; !slices.Equal(got, oldSet) {
		t.Errorf("before the deploy answers came from %v, want %v", got, oldSet)
	}
	if got, both := answered[duringDeploy], append(slices.Clone(oldSet), newSet...); !isSubset(got, both) {
		t.Errorf("during the deploy answers came from %v, want only from %v", got, both)
	}
	if got := answered[inWindow]; !slices.Equal(got, newSet) {
		t.Errorf("once traffic was switched answers came from %v, want %v", got, newSet)
	}
	if got := answered[afterRetire]; !slices.Equal(got, newSet) {
		t.Errorf("after the deploy answers came from %v, want %v", got, newSet)
	}

	assertSteps(t, d, allDone())
	if d.ImageOld != imageV1 || d.ImageNew != imageV2 {
		t.Errorf("deploy images %s → %s, want %s → %s", d.ImageOld, d.ImageNew, imageV1, imageV2)
	}
	var labels []string
	for _, s := range h.all() {
		labels = append(labels, s.Name+"="+s.Label)
	}
	if want := []string{"ns1-1=ns1", "ns2-1=ns2"}; !slices.Equal(labels, want) {
		t.Errorf("cloud has %v, want %v (old set deleted, new set relabelled)", labels, want)
	}
	live := h.live()
	if got := serverNames(live.Servers); !slices.Equal(got, newSet) || live.Image != imageV2 || live.DeployID != d.ID {
		t.Errorf("live set = %v on %s by deploy #%d, want %v on %s by deploy #%d", got, live.Image, live.DeployID, newSet, imageV2, d.ID)
	}
	h.assertUnlocked()
}

func boolKeys(m map[string]int) map[string]bool {
	out := make(map[string]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

func isSubset(sub, set []string) bool {
	for _, s := range sub {
		if !slices.Contains(set, s) {
			return false
		}
	}
	return true
}

// TestBadImageFails deploys images whose servers must not pass the check of
// the next set: the deploy fails there, cleans up and leaves traffic alone.
func TestBadImageFails(t *testing.T) {
	cases := []struct {
		name    string
		image   string
		problem []string // in the EventProblem text and the deployment's error
	}{
		{"broken answers SERVFAIL", imageBroken, []string{"SERVFAIL"}},
		{"stale has a lower serial", imageStale, []string{"serial 2026110100 is lower than the live 2026110101"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t)
			d := h.deploy("alice", deployer.Options{Image: tc.image})
			d = h.waitPhase(d.ID, deployer.PhaseFailed)

			assertSteps(t, d, statuses(deployer.StepCheckNext, deployer.StatusFailed))
			if !containsAll(d.Error, tc.problem...) {
				t.Errorf("deployment error = %q, want it to contain %q", d.Error, tc.problem)
			}
			problems := h.rep.texts(deployer.EventProblem, d.ID)
			if !slices.ContainsFunc(problems, func(s string) bool { return containsAll(s, tc.problem...) }) {
				t.Errorf("problem events = %q, want one containing %q", problems, tc.problem)
			}
			if left := h.tagged(d.ID); len(left) != 0 {
				t.Errorf("servers of deploy #%d left behind: %v", d.ID, left)
			}
			h.assertUnlocked()
			h.assertServes(oldSet...)
			if got := serverNames(h.live().Servers); !slices.Equal(got, oldSet) {
				t.Errorf("live set = %v, want %v", got, oldSet)
			}
		})
	}
}

// TestLocks covers the deploy lock: a deploy in flight and a lock taken by
// hand both refuse a deploy and say who holds them; only the holder unlocks
// without --force, and --force never frees a deploy still in flight.
func TestLocks(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	first := h.deploy("alice", deployer.Options{})
	h.waitPhase(first.ID, deployer.PhaseAwaitingApproval)

	_, err := h.dep.Deploy(ctx, deployer.Request{Service: "ns", User: "bob"})
	le, ok := errors.AsType[*deployer.LockedError](err)
	if !ok {
		t.Fatalf("second Deploy: err = %v, want a *deployer.LockedError", err)
	}
	if msg := le.Error(); !containsAll(msg, "deploy #1", "alice", `"approval"`) {
		t.Errorf("second Deploy refused with %q, want it to name deploy #1, alice and step \"approval\"", msg)
	}

	_, err = h.dep.Unlock(ctx, "ns", "bob", true)
	if err == nil || !strings.Contains(err.Error(), "still in flight") {
		t.Errorf("Unlock --force of deploy #1's lock: err = %v, want a refusal saying it is still in flight", err)
	}
	if l := h.lock(); l == nil || l.DeployID != first.ID {
		t.Fatalf("lock after a refused forced unlock = %+v, want held by deploy #%d", l, first.ID)
	}

	if _, err := h.dep.Abort(ctx, "ns", 0, "alice", "testing the lock"); err != nil {
		t.Fatalf("Abort: %v", err)
	}
	h.waitPhase(first.ID, deployer.PhaseAborted)
	h.assertUnlocked()

	if _, err := h.dep.Lock(ctx, "ns", "alice", "maintenance"); err != nil {
		t.Fatalf("Lock by alice: %v", err)
	}
	_, err = h.dep.Deploy(ctx, deployer.Request{Service: "ns", User: "bob"})
	if le, ok := errors.AsType[*deployer.LockedError](err); !ok || le.Lock.Holder != "alice" || !strings.Contains(err.Error(), "alice") {
		t.Errorf("Deploy under alice's lock: err = %v, want a *deployer.LockedError naming alice", err)
	}

	_, err = h.dep.Unlock(ctx, "ns", "bob", false)
	if got := deployer.ErrorCode(err); got != deployer.CodeForbidden || !strings.Contains(err.Error(), "alice") {
		t.Errorf("Unlock by bob: code %q, err = %v; want %q naming alice", got, err, deployer.CodeForbidden)
	}
	if l := h.lock(); l == nil || l.Holder != "alice" {
		t.Fatalf("lock after bob's refused unlock = %+v, want alice's", l)
	}

	released, err := h.dep.Unlock(ctx, "ns", "bob", true)
	if err != nil {
		t.Fatalf("Unlock --force by bob: %v", err)
	}
	if released.Holder != "alice" {
		t.Errorf("forced unlock released %+v, want alice's lock", released)
	}
	h.assertUnlocked()
	audit, err := h.store.AuditLog(0)
	if err != nil {
		t.Fatalf("AuditLog: %v", err)
	}
	if !slices.ContainsFunc(audit, func(e deployer.AuditEntry) bool {
		return e.Action == "unlock --force" && e.User == "bob" && e.Service == "ns"
	}) {
		t.Errorf("audit log has no \"unlock --force\" by bob; it has %+v", audit)
	}

	// The lock is free again: a deploy starts.
	second := h.deploy("bob", deployer.Options{})
	h.waitPhase(second.ID, deployer.PhaseAwaitingApproval)
}

// TestAbort aborts before traffic moves, at the gate and while the next set
// boots: the next set is deleted, the lock freed, traffic never moved.
func TestAbort(t *testing.T) {
	cases := []struct {
		name      string
		bootDelay time.Duration
		step      deployer.StepName // where the abort lands
	}{
		{"at the approval gate", -1, deployer.StepApproval},
		{"while waiting for the next set to boot", time.Minute, deployer.StepWaitRunning},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(o *options) { o.bootDelay = tc.bootDelay })
			d := h.deploy("alice", deployer.Options{})
			if tc.step == deployer.StepApproval {
				h.waitPhase(d.ID, deployer.PhaseAwaitingApproval)
			} else {
				h.waitStep(d.ID, tc.step, deployer.StatusRunning)
				if got := h.tagged(d.ID); len(got) != 2 {
					t.Fatalf("servers of deploy #%d while booting = %v, want 2", d.ID, got)
				}
			}
			if _, err := h.dep.Abort(context.Background(), "ns", 0, "bob", "wrong day"); err != nil {
				t.Fatalf("Abort: %v", err)
			}
			d = h.waitPhase(d.ID, deployer.PhaseAborted)

			assertSteps(t, d, statuses(tc.step, deployer.StatusFailed))
			if d.Approval == nil || d.Approval.Kind != deployer.DecisionAbort || d.Approval.By != "bob" {
				t.Errorf("decision = %+v, want abort by bob", d.Approval)
			}
			if !containsAll(d.Error, "aborted by bob", "wrong day") {
				t.Errorf("deployment error = %q, want it to say bob aborted it and why", d.Error)
			}
			if left := h.tagged(d.ID); len(left) != 0 {
				t.Errorf("servers of deploy #%d left behind: %v", d.ID, left)
			}
			h.assertUnlocked()
			assertTrafficOnlyTo(t, h, oldSet)
			h.assertServes(oldSet...)
		})
	}
}

// assertTrafficOnlyTo fails when the load balancer ever sent a query to a
// server other than the live ones named.
func assertTrafficOnlyTo(t *testing.T, h *harness, names []string) {
	t.Helper()
	allowed := map[string]string{}
	for _, s := range h.live().Servers {
		if slices.Contains(names, s.Name) {
			allowed[s.Addr] = s.Name
		}
	}
	for addr, n := range h.lb.Stats() {
		if _, ok := allowed[addr]; !ok && n > 0 {
			t.Errorf("load balancer sent %d queries to %s, which is none of %v", n, addr, names)
		}
	}
}

// TestApprovalDeadline lets the approval deadline pass: the deploy is
// aborted by "deadline", or promoted when the service auto-promotes.
func TestApprovalDeadline(t *testing.T) {
	cases := []struct {
		name        string
		autoPromote bool
		phase       deployer.Phase
		decision    deployer.DecisionKind
	}{
		{"aborts", false, deployer.PhaseAborted, deployer.DecisionAbort},
		{"auto-promotes", true, deployer.PhaseRollbackWindow, deployer.DecisionApprove},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(o *options) { o.autoPromote = tc.autoPromote })
			d := h.deploy("alice", deployer.Options{})
			d = h.waitPhase(d.ID, deployer.PhaseAwaitingApproval)
			if want := epoch.Add(approvalTimeout); !d.ApprovalDeadline.Equal(want) {
				t.Errorf("approval deadline = %s, want %s", d.ApprovalDeadline, want)
			}
			h.passDeadline(d.ApprovalDeadline, "the approval deadline")
			d = h.waitPhase(d.ID, tc.phase)

			if d.Approval == nil || d.Approval.By != "deadline" || d.Approval.Kind != tc.decision {
				t.Fatalf("decision = %+v, want %s by deadline", d.Approval, tc.decision)
			}
			if !tc.autoPromote {
				assertSteps(t, d, statuses(deployer.StepApproval, deployer.StatusFailed))
				if !strings.Contains(d.Error, "deadline") {
					t.Errorf("deployment error = %q, want it to name the deadline", d.Error)
				}
				if left := h.tagged(d.ID); len(left) != 0 {
					t.Errorf("servers of deploy #%d left behind: %v", d.ID, left)
				}
				h.assertUnlocked()
				h.assertServes(oldSet...)
				return
			}
			decisions := h.rep.texts(deployer.EventDecision, d.ID)
			if !slices.ContainsFunc(decisions, func(s string) bool { return strings.Contains(s, "Promoted automatically") }) {
				t.Errorf("decision events = %q, want one saying it was promoted automatically", decisions)
			}
			h.assertServes(newSet...)
			d = h.closeWindow(d.ID)
			assertSteps(t, d, allDone())
			h.assertUnlocked()
		})
	}
}

// TestRollbackInsideWindow rolls back while the old set is kept: traffic is
// back on it and the next set is gone.
func TestRollbackInsideWindow(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	d := h.deploy("alice", deployer.Options{})
	h.waitPhase(d.ID, deployer.PhaseAwaitingApproval)
	if _, err := h.dep.Approve(ctx, "ns", d.ID, "bob"); err != nil {
		t.Fatalf("Approve: %v", err)
	}
	h.waitPhase(d.ID, deployer.PhaseRollbackWindow)
	h.assertServes(newSet...)
	h.advance(rollbackWindow / 2)

	if _, err := h.dep.Rollback(ctx, "ns", 0, "carol"); err != nil {
		t.Fatalf("Rollback: %v", err)
	}
	d = h.waitPhase(d.ID, deployer.PhaseRolledBack)

	assertSteps(t, d, statuses(deployer.StepRetire, deployer.StatusSkipped))
	if d.Rollback == nil || d.Rollback.By != "carol" {
		t.Errorf("rollback decision = %+v, want by carol", d.Rollback)
	}
	h.assertServes(oldSet...)
	if left := h.tagged(d.ID); len(left) != 0 {
		t.Errorf("servers of deploy #%d left behind: %v", d.ID, left)
	}
	if got := serverNames(h.all()); !slices.Equal(got, oldSet) {
		t.Errorf("cloud has %v, want %v", got, oldSet)
	}
	h.assertUnlocked()
	live := h.live()
	if got := serverNames(live.Servers); !slices.Equal(got, oldSet) || live.Image != imageV1 {
		t.Errorf("live set = %v on %s, want %v on %s", got, live.Image, oldSet, imageV1)
	}
}

// TestRollbackAfterWindow is refused: the old set is gone.
func TestRollbackAfterWindow(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	d := h.deploy("alice", deployer.Options{})
	h.waitPhase(d.ID, deployer.PhaseAwaitingApproval)
	if _, err := h.dep.Approve(ctx, "ns", d.ID, "bob"); err != nil {
		t.Fatalf("Approve: %v", err)
	}
	h.closeWindow(d.ID)

	_, err := h.dep.Rollback(ctx, "ns", 0, "carol")
	if err == nil || !strings.Contains(err.Error(), "window") || !strings.Contains(err.Error(), "closed") {
		t.Fatalf("Rollback after the window: err = %v, want a refusal saying the window closed", err)
	}
	if got := deployer.ErrorCode(err); got != deployer.CodeConflict {
		t.Errorf("Rollback after the window: code %q, want %q", got, deployer.CodeConflict)
	}
	if d = h.deployment(d.ID); d.Phase != deployer.PhaseSucceeded || d.Rollback != nil {
		t.Errorf("after the refused rollback: phase %s, rollback %+v; want succeeded, none", d.Phase, d.Rollback)
	}
	h.assertServes(newSet...)
}

// TestApprovals: a deploy is approved once, and with four eyes not by the
// person who asked for it.
func TestApprovals(t *testing.T) {
	cases := []struct {
		name      string
		fourEyes  bool
		first     string // who approves first
		firstErr  string // "" = accepted
		second    string // who approves next
		secondErr string
		approver  string // whose approval is recorded
	}{
		{"approved twice", false, "bob", "", "carol", "already approved by bob", "bob"},
		{"four eyes", true, "alice", "four-eyes", "bob", "", "bob"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(o *options) { o.fourEyes = tc.fourEyes })
			d := h.deploy("alice", deployer.Options{})
			h.waitPhase(d.ID, deployer.PhaseAwaitingApproval)
			for _, a := range []struct{ user, err string }{{tc.first, tc.firstErr}, {tc.second, tc.secondErr}} {
				_, err := h.dep.Approve(context.Background(), "ns", d.ID, a.user)
				switch {
				case a.err == "" && err != nil:
					t.Fatalf("Approve by %s: %v", a.user, err)
				case a.err != "" && (err == nil || !strings.Contains(err.Error(), a.err)):
					t.Fatalf("Approve by %s: err = %v, want a refusal containing %q", a.user, err, a.err)
				}
			}
			d = h.waitPhase(d.ID, deployer.PhaseRollbackWindow)
			if d.Approval == nil || d.Approval.Kind != deployer.DecisionApprove || d.Approval.By != tc.approver {
				t.Errorf("approval = %+v, want approved by %s", d.Approval, tc.approver)
			}
		})
	}
}

// TestRestart stops greenlight mid-deploy and starts it again on the same
// data: the deployment carries on where it was.
func TestRestart(t *testing.T) {
	t.Run("awaiting approval", func(t *testing.T) {
		h := newHarness(t)
		d := h.deploy("alice", deployer.Options{})
		before := h.waitPhase(d.ID, deployer.PhaseAwaitingApproval)
		h.restart()
		after := h.waitPhase(d.ID, deployer.PhaseAwaitingApproval)
		if !after.ApprovalDeadline.Equal(before.ApprovalDeadline) {
			t.Errorf("approval deadline after restart = %s, want %s", after.ApprovalDeadline, before.ApprovalDeadline)
		}
		h.assertServes(oldSet...)
		if _, err := h.dep.Approve(context.Background(), "ns", 0, "bob"); err != nil {
			t.Fatalf("Approve after restart: %v", err)
		}
		d = h.closeWindow(d.ID)
		assertSteps(t, d, allDone())
		h.assertServes(newSet...)
		h.assertUnlocked()
		infos := h.rep.texts(deployer.EventInfo, d.ID)
		if !slices.ContainsFunc(infos, func(s string) bool { return strings.Contains(s, "resuming deploy #1") }) {
			t.Errorf("info events = %q, want one saying deploy #1 resumed", infos)
		}
	})

	t.Run("waiting for the next set to boot", func(t *testing.T) {
		h := newHarness(t, func(o *options) { o.bootDelay = time.Minute })
		d := h.deploy("alice", deployer.Options{})
		h.waitStep(d.ID, deployer.StepWaitRunning, deployer.StatusRunning)
		h.restart()
		h.assertServes(oldSet...)
		h.boot("the next set, again after the restart,")
		d = h.waitPhase(d.ID, deployer.PhaseAwaitingApproval)
		if got := h.tagged(d.ID); !slices.Equal(got, newSet) {
			t.Errorf("servers of deploy #%d = %v, want exactly %v", d.ID, got, newSet)
		}
		if got := serverNames(h.all()); !slices.Equal(got, []string{"ns1-0", "ns1-1", "ns2-0", "ns2-1"}) {
			t.Errorf("cloud has %v, want the live set and one next set", got)
		}
		if got := d.Step(deployer.StepCreate).Attempts; got != 1 {
			t.Errorf("create ran %d times, want 1", got)
		}
		if got := d.Step(deployer.StepWaitRunning).Attempts; got != 2 {
			t.Errorf("wait-running ran %d times, want 2 (once before the restart, once after)", got)
		}
		if _, err := h.dep.Approve(context.Background(), "ns", 0, "bob"); err != nil {
			t.Fatalf("Approve: %v", err)
		}
		h.closeWindow(d.ID)
		if got := serverNames(h.all()); !slices.Equal(got, newSet) {
			t.Errorf("cloud has %v, want %v", got, newSet)
		}
		h.assertServes(newSet...)
		h.assertUnlocked()
	})

	t.Run("in the rollback window", func(t *testing.T) {
		h := newHarness(t)
		d := h.deploy("alice", deployer.Options{})
		h.waitPhase(d.ID, deployer.PhaseAwaitingApproval)
		if _, err := h.dep.Approve(context.Background(), "ns", 0, "bob"); err != nil {
			t.Fatalf("Approve: %v", err)
		}
		before := h.waitPhase(d.ID, deployer.PhaseRollbackWindow)
		h.restart()
		h.assertServes(newSet...)
		after := h.waitPhase(d.ID, deployer.PhaseRollbackWindow)
		if !after.RollbackDeadline.Equal(before.RollbackDeadline) {
			t.Errorf("rollback deadline after restart = %s, want %s", after.RollbackDeadline, before.RollbackDeadline)
		}
		if l := h.lock(); l == nil || l.DeployID != d.ID {
			t.Errorf("lock in the rollback window = %+v, want held by deploy #%d", l, d.ID)
		}
		h.passDeadline(after.RollbackDeadline, "the rollback window to close")
		d = h.waitPhase(d.ID, deployer.PhaseSucceeded)
		assertSteps(t, d, allDone())
		if got := serverNames(h.all()); !slices.Equal(got, newSet) {
			t.Errorf("cloud has %v, want %v", got, newSet)
		}
		h.assertServes(newSet...)
		h.assertUnlocked()
	})

	// greenlight killed after a step's failure was recorded and before the
	// deploy was cleaned up: Start points traffic where the failure left it,
	// and the cleanup finishes.
	crashes := []struct {
		name   string
		failed deployer.StepName
		serves []string // the set traffic must be on, and stay on
		live   []string // the service's live set afterwards
		cloud  []string // what the cloud has afterwards, sorted
	}{
		// check-live switched back to the old set before recording its failure.
		{"after check-live failed", deployer.StepCheckLive, oldSet, oldSet, oldSet},
		// retire failed with traffic on the new set: it stays there.
		{"after retire failed", deployer.StepRetire, newSet, newSet, []string{"ns1-0", "ns1-1", "ns2-0", "ns2-1"}},
	}
	for _, tc := range crashes {
		t.Run("crashed "+tc.name, func(t *testing.T) {
			h := newHarness(t)
			d := h.deploy("alice", deployer.Options{})
			h.waitPhase(d.ID, deployer.PhaseAwaitingApproval)
			if _, err := h.dep.Approve(context.Background(), "ns", 0, "bob"); err != nil {
				t.Fatalf("Approve: %v", err)
			}
			h.waitPhase(d.ID, deployer.PhaseRollbackWindow)
			h.crashRestart(d.ID, func(x *deployer.Deployment) {
				seen := false
				for i := range x.Steps {
					st := &x.Steps[i]
					switch {
					case st.Name == tc.failed:
						st.Status, st.Detail, seen = deployer.StatusFailed, "staged failure", true
						x.Error = fmt.Sprintf("%s failed: staged failure", tc.failed)
					case seen:
						*st = deployer.StepState{Name: st.Name, Status: deployer.StatusPending}
					default:
						st.Status = deployer.StatusDone
					}
				}
				x.Phase = deployer.PhaseRunning
			})
			d = h.waitPhase(d.ID, deployer.PhaseFailed)

			assertSteps(t, d, statuses(tc.failed, deployer.StatusFailed))
			h.assertServes(tc.serves...)
			assertTrafficOnlyTo(t, h, tc.serves)
			if got := serverNames(h.live().Servers); !slices.Equal(got, tc.live) {
				t.Errorf("live set = %v, want %v", got, tc.live)
			}
			if got := serverNames(h.all()); !slices.Equal(got, tc.cloud) {
				t.Errorf("cloud has %v, want %v", got, tc.cloud)
			}
			h.assertUnlocked()
		})
	}
}

// TestDryRun plans a deploy and does nothing else, even under a lock.
func TestDryRun(t *testing.T) {
	for _, locked := range []bool{false, true} {
		t.Run(fmt.Sprintf("locked=%v", locked), func(t *testing.T) {
			h := newHarness(t)
			ctx := context.Background()
			if locked {
				if _, err := h.dep.Lock(ctx, "ns", "alice", "maintenance"); err != nil {
					t.Fatalf("Lock: %v", err)
				}
			}
			d, err := h.dep.Deploy(ctx, deployer.Request{Service: "ns", User: "bob", Options: deployer.Options{DryRun: true}})
			if err != nil {
				t.Fatalf("dry run: %v", err)
			}
			if d.ID != 0 || d.Phase != deployer.PhasePlanned {
				t.Errorf("dry run = deploy #%d %s, want #0 %s", d.ID, d.Phase, deployer.PhasePlanned)
			}
			plan := d.Step(deployer.StepPlan)
			if plan.Status != deployer.StatusDone || !containsAll(plan.Detail, imageV2, "ns1-1", "ns2-1") {
				t.Errorf("plan step = %s %q, want done naming %s, ns1-1 and ns2-1", plan.Status, plan.Detail, imageV2)
			}
			if got := serverNames(h.all()); !slices.Equal(got, oldSet) {
				t.Errorf("cloud has %v after a dry run, want %v", got, oldSet)
			}
			switch l := h.lock(); {
			case locked && (l == nil || l.Holder != "alice"):
				t.Errorf("lock after a dry run = %+v, want alice's", l)
			case !locked && l != nil:
				t.Errorf("lock after a dry run = %+v, want free", *l)
			}
			if hist, err := h.dep.History(ctx, "ns", 10); err != nil || len(hist) != 0 {
				t.Errorf("History after a dry run = %d deploys, %v; want none", len(hist), err)
			}
		})
	}
}

// TestStatusAndHistory reads status and history after a deploy that
// succeeded and one that failed.
func TestStatusAndHistory(t *testing.T) {
	// Servers take a minute to boot on the ManualClock, so every deploy
	// takes time.
	h := newHarness(t, func(o *options) { o.bootDelay = time.Minute })
	ctx := context.Background()

	ok := h.deploy("alice", deployer.Options{})
	h.bootNext(ok.ID)
	h.waitPhase(ok.ID, deployer.PhaseAwaitingApproval)
	if _, err := h.dep.Approve(ctx, "ns", 0, "bob"); err != nil {
		t.Fatalf("Approve: %v", err)
	}
	h.closeWindow(ok.ID)

	bad := h.deploy("carol", deployer.Options{Image: imageBroken})
	h.bootNext(bad.ID)
	h.waitPhase(bad.ID, deployer.PhaseFailed)

	st, err := h.dep.Status(ctx, "ns")
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if got := serverNames(st.Live.Servers); !slices.Equal(got, newSet) || st.Live.Image != imageV2 {
		t.Errorf("status live = %v on %s, want %v on %s", got, st.Live.Image, newSet, imageV2)
	}
	if st.Lock != nil {
		t.Errorf("status lock = %+v, want free", *st.Lock)
	}
	if st.Active != nil {
		t.Errorf("status active = deploy #%d, want none", st.Active.ID)
	}
	if st.Last == nil || st.Last.ID != bad.ID || st.Last.Phase != deployer.PhaseFailed {
		t.Errorf("status last = %+v, want deploy #%d failed", st.Last, bad.ID)
	}

	hist, err := h.dep.History(ctx, "ns", 10)
	if err != nil {
		t.Fatalf("History: %v", err)
	}
	type entry struct {
		id    uint64
		phase deployer.Phase
	}
	var got []entry
	for _, d := range hist {
		got = append(got, entry{d.ID, d.Phase})
		if took := d.Duration(h.dep.Now()); took <= 0 {
			t.Errorf("deploy #%d took %s, want more than 0", d.ID, took)
		}
	}
	if want := []entry{{bad.ID, deployer.PhaseFailed}, {ok.ID, deployer.PhaseSucceeded}}; !slices.Equal(got, want) {
		t.Errorf("history = %+v, want %+v", got, want)
	}
}
